#include "step/redact.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>

#include "codec/content.hpp"
#include "codec/grpc.hpp"
#include "codec/http2.hpp"
#include "codec/sse.hpp"
#include "codec/ws.hpp"
#include "core/ascii.hpp"
#include "core/base64.hpp"
#include "layer/http1_wire.hpp"
#include "step/process_step.hpp"
#include "step/transform.hpp"

namespace sluice::step {

namespace {

using core::Bytes;

constexpr char kMask = '*';
constexpr size_t kMaxDecoded = size_t{256} << 20;  // a body decoded to look inside (a bomb stops there)
constexpr size_t kRecodedKept = 4096;              // messages remembered for their overlays

bool alnum(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool digit(char c) { return c >= '0' && c <= '9'; }
char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

// Masks [b, e); true when any byte was not masked already.
bool mask(Bytes& t, size_t b, size_t e) {
  bool any = false;
  for (size_t i = b; i < e && i < t.size(); ++i)
    if (t[i] != kMask) {
      t[i] = kMask;
      any = true;
    }
  return any;
}

bool icase_at(const Bytes& t, size_t i, std::string_view word) {
  if (i + word.size() > t.size()) return false;
  for (size_t k = 0; k < word.size(); ++k)
    if (lower(t[i + k]) != word[k]) return false;
  return true;
}

// ---- the kinds ----------------------------------------------------------------------------------

void private_keys(Bytes& t, Found& found) {
  for (size_t p = 0; (p = t.find("-----BEGIN ", p)) != Bytes::npos;) {
    size_t label_end = t.find("-----", p + 11);
    if (label_end == Bytes::npos) break;
    std::string_view label(t.data() + p + 11, label_end - p - 11);
    if (label.size() > 40 || !label.ends_with("PRIVATE KEY")) {
      p = label_end;
      continue;
    }
    size_t start = label_end + 5, end = t.find("-----END ", start);
    if (end == Bytes::npos) end = t.size();
    bool any = false;
    for (size_t i = start; i < end; ++i)
      if (t[i] != '\n' && t[i] != '\r' && t[i] != kMask) {
        t[i] = kMask;
        any = true;
      }
    if (any) found.add("private_key");
    p = end;
  }
}

// Field names whose values are secrets: these names, or names ending in them (db_password,
// x_auth_token); `exact` ones only as they are.
constexpr std::array kFieldSuffixes{std::string_view("password"), std::string_view("passwd"),
                                    std::string_view("passphrase"), std::string_view("secret"),
                                    std::string_view("token"), std::string_view("apikey"),
                                    std::string_view("api_key"), std::string_view("api-key"),
                                    std::string_view("access_key"), std::string_view("secret_key"),
                                    std::string_view("private_key"), std::string_view("credentials")};
constexpr std::array kFieldExact{std::string_view("pwd"), std::string_view("pass"), std::string_view("auth"),
                                 std::string_view("authorization"), std::string_view("proxy-authorization"),
                                 std::string_view("cookie"), std::string_view("set-cookie")};

bool secret_field(const std::string& key, const RedactPolicy& policy) {
  for (auto s : kFieldSuffixes)
    if (key.ends_with(s)) return true;
  for (auto s : kFieldExact)
    if (key == s) return true;
  for (const auto& s : policy.fields)
    if (key == s || (key.size() > s.size() && key.ends_with(s) && !alnum(key[key.size() - s.size() - 1]))) return true;
  return false;
}

// `"password": "x"`, `password=x` (forms, query strings), `password: x` (text): the value masked.
void fields(const RedactPolicy& policy, bool builtin, Bytes& t, Found& found) {
  for (size_t q = 0; q < t.size(); ++q) {
    char sep = t[q];
    if (sep != ':' && sep != '=') continue;
    size_t k = q;
    while (k > 0 && t[k - 1] == ' ') --k;
    if (k > 0 && (t[k - 1] == '"' || t[k - 1] == '\'')) --k;
    if (k > 0 && t[k - 1] == '\\') --k;  // JSON inside a JSON string: \"password\": \"x\"
    if (k > 0 && t[k - 1] == ']') --k;
    else if (k >= 3 && icase_at(t, k - 3, "%5d")) k -= 3;
    size_t ks = k;
    while (ks > 0 && k - ks < 64 && (alnum(t[ks - 1]) || t[ks - 1] == '_' || t[ks - 1] == '-')) --ks;
    if (ks == k || (ks > 0 && alnum(t[ks - 1]))) continue;
    std::string key(t.data() + ks, k - ks);
    for (auto& c : key) c = lower(c);
    bool hit = builtin ? secret_field(key, policy) : false;
    if (!hit)
      for (const auto& s : policy.fields) hit = hit || key == s;
    if (!hit) continue;
    size_t v = q + 1;
    while (v < t.size() && t[v] == ' ') ++v;
    if (v >= t.size()) break;
    size_t e = v;
    if (t[v] == '"' || t[v] == '\'') {
      char quote = t[v];
      e = ++v;
      while (e < t.size() && t[e] != quote) e += t[e] == '\\' ? 2 : 1;
      e = std::min(e, t.size());
    } else if (t[v] == '\\' && v + 1 < t.size() && (t[v + 1] == '"' || t[v + 1] == '\'')) {
      std::string quote{'\\', t[v + 1]};  // an escaped quote: JSON inside a JSON string
      v += 2;
      e = t.find(quote, v);
      if (e == Bytes::npos) e = t.size();
    } else {
      if (sep == ':') {  // JSON's own values (numbers, true, false, null, objects) are not secrets
        std::string_view rest(t.data() + v, std::min<size_t>(5, t.size() - v));
        if (t[v] == '{' || t[v] == '[' || t[v] == '-' || digit(t[v]) || rest.starts_with("true") ||
            rest.starts_with("false") || rest.starts_with("null"))
          continue;
      }
      while (e < t.size() && !std::strchr("&;, \t\r\n\"'<>}])", t[e])) ++e;
    }
    if (e > v && mask(t, v, e)) found.add("password");
    q = e > q ? e - 1 : q;
  }
}

bool b64url(char c) { return alnum(c) || c == '-' || c == '_'; }

void jwts(Bytes& t, Found& found) {
  for (size_t p = 0; (p = t.find("eyJ", p)) != Bytes::npos;) {
    if (p > 0 && b64url(t[p - 1])) {
      p += 3;
      continue;
    }
    size_t i = p, parts = 0, len[3] = {0, 0, 0};
    while (parts < 3) {
      size_t s = i;
      while (i < t.size() && b64url(t[i])) ++i;
      len[parts++] = i - s;
      if (parts < 3 && i < t.size() && t[i] == '.') ++i;
      else break;
    }
    bool jwt = parts == 3 && len[0] >= 10 && len[1] >= 10 && i > p && t.compare(p + len[0] + 1, 3, "eyJ") == 0;
    if (jwt && mask(t, p, i)) found.add("jwt");
    p = std::max(i, p + 3);
  }
}

bool token_char(char c) { return alnum(c) || (c != '\0' && std::strchr("-._~+/=", c)); }

void bearers(Bytes& t, Found& found) {
  for (size_t i = 0; i + 7 < t.size(); ++i) {
    if (lower(t[i]) != 'b' || !icase_at(t, i, "bearer") || (i > 0 && alnum(t[i - 1]))) continue;
    size_t v = i + 6;
    if (v >= t.size() || (t[v] != ' ' && t[v] != '+' && !icase_at(t, v, "%20"))) continue;
    v += t[v] == '%' ? 3 : 1;
    while (v < t.size() && t[v] == ' ') ++v;
    size_t e = v;
    while (e < t.size() && token_char(t[e])) ++e;
    if (e - v >= 12 && mask(t, v, e)) found.add("bearer");
    i = e > i ? e - 1 : i;
  }
}

// Tokens known by their shape: the prefix is kept (it says what the token was), the rest masked.
struct TokenShape {
  std::string_view prefix;
  int charset;  // 0: A-Z 0-9; 1: alnum; 2: alnum _ -; 3: alnum -; 4: alnum _ . -; 5: alnum _; 6: alnum /
  size_t min, max;
};
constexpr TokenShape kTokens[] = {
    {"AKIA", 0, 16, 16},      {"ASIA", 0, 16, 16},       {"AIza", 2, 35, 35},       {"ghp_", 1, 36, 255},
    {"gho_", 1, 36, 255},     {"ghu_", 1, 36, 255},      {"ghs_", 1, 36, 255},      {"ghr_", 1, 36, 255},
    {"github_pat_", 5, 22, 255}, {"glpat-", 2, 20, 255}, {"xoxb-", 3, 10, 255},     {"xoxp-", 3, 10, 255},
    {"xoxa-", 3, 10, 255},    {"xoxr-", 3, 10, 255},     {"xoxs-", 3, 10, 255},     {"xoxe-", 3, 10, 255},
    {"sk_live_", 1, 16, 255}, {"sk_test_", 1, 16, 255},  {"rk_live_", 1, 16, 255},  {"rk_test_", 1, 16, 255},
    {"whsec_", 1, 16, 255},   {"SG.", 4, 60, 255},       {"npm_", 1, 36, 36},       {"sk-", 2, 32, 255},
    {"ya29.", 4, 20, 2048},   {"hooks.slack.com/services/", 6, 20, 255},
};

bool in_charset(int charset, char c) {
  switch (charset) {
    case 0: return digit(c) || (c >= 'A' && c <= 'Z');
    case 1: return alnum(c);
    case 2: return alnum(c) || c == '_' || c == '-';
    case 3: return alnum(c) || c == '-';
    case 4: return alnum(c) || c == '_' || c == '.' || c == '-';
    case 5: return alnum(c) || c == '_';
    default: return alnum(c) || c == '/';
  }
}

void tokens(Bytes& t, Found& found) {
  for (const auto& shape : kTokens)
    for (size_t p = 0; (p = t.find(shape.prefix, p)) != Bytes::npos;) {
      size_t v = p + shape.prefix.size(), e = v;
      bool bounded = p == 0 || !(alnum(t[p - 1]) || (shape.prefix[0] != 'h' && t[p - 1] == '_'));
      while (e < t.size() && e - v <= shape.max && in_charset(shape.charset, t[e])) ++e;
      if (bounded && e - v >= shape.min && e - v <= shape.max && mask(t, v, e)) found.add("api_key");
      p = e;
    }
}

bool local_char(char c) { return alnum(c) || (c != '\0' && std::strchr("._%+-", c)); }
bool domain_char(char c) { return alnum(c) || c == '.' || c == '-'; }

void emails(Bytes& t, Found& found) {
  for (size_t i = 0; i < t.size(); ++i) {
    size_t at_len = t[i] == '@' ? 1 : (t[i] == '%' && icase_at(t, i, "%40") ? 3 : 0);
    if (!at_len) continue;
    size_t b = i;
    while (b > 0 && local_char(t[b - 1])) --b;
    size_t d = i + at_len, e = d;
    while (e < t.size() && domain_char(t[e])) ++e;
    while (e > d && (t[e - 1] == '.' || t[e - 1] == '-')) --e;
    size_t dot = std::string_view(t.data() + d, e - d).rfind('.');
    bool ok = b < i && dot != std::string_view::npos && dot > 0 && e - (d + dot + 1) >= 2;
    for (size_t k = d + (dot == std::string_view::npos ? 0 : dot + 1); ok && k < e; ++k) ok = !digit(t[k]);
    if (ok) {
      bool any = mask(t, b, i);
      any = mask(t, d, e) || any;
      if (any) found.add("email");
      i = e - 1;
    }
  }
}

// Runs of digits with single separators between them: a card number, a telephone number.
void numbers(const RedactPolicy& policy, Bytes& t, Found& found) {
  bool cards = policy.has("credit_card"), phones = policy.has("phone");
  for (size_t i = 0; i < t.size(); ++i) {
    if (!digit(t[i]) || (i > 0 && (alnum(t[i - 1]) || t[i - 1] == '.' || t[i - 1] == kMask))) continue;
    bool plus = i > 0 && t[i - 1] == '+';
    if (!plus && i >= 3 && icase_at(t, i - 3, "%2b")) plus = true;
    bool paren = i > 0 && t[i - 1] == '(';
    std::string digits;
    std::vector<size_t> groups;  // digits per group
    bool card_seps = true;       // only ' ' and '-' between groups
    size_t e = i;
    while (e < t.size()) {
      size_t s = e;
      while (e < t.size() && digit(t[e])) ++e;
      groups.push_back(e - s);
      digits.append(t.data() + s, e - s);
      if (e + 1 < t.size() && std::strchr(" -.)", t[e]) && t[e] != '\0') {
        size_t n = e + 1;
        if (t[e] == ')' && n < t.size() && t[n] == ' ') ++n;
        if (n < t.size() && digit(t[n]) && digits.size() < 19) {
          if (t[e] != ' ' && t[e] != '-') card_seps = false;
          e = n;
          continue;
        }
      }
      break;
    }
    if (e < t.size() && (alnum(t[e]) || t[e] == kMask)) {
      i = e;
      continue;
    }
    size_t n = digits.size();
    bool card = cards && card_seps && !plus && n >= 13 && n <= 19 && digits[0] >= '2' && digits[0] <= '6' && luhn(digits);
    bool nanp = groups.size() == 3 && groups[0] == 3 && groups[1] == 3 && groups[2] == 4;
    bool phone = phones && ((plus && n >= 8 && n <= 15) || (nanp && (paren ? t[i + 3] == ')' : t[i + 3] != ')')));
    if (card || phone) {
      for (size_t k = i; k < e; ++k)
        if (digit(t[k])) t[k] = kMask;
      found.add(card ? "credit_card" : "phone");
    }
    i = e - 1;
  }
}

void patterns(const RedactPolicy& policy, Bytes& t, Found& found) {
  for (const auto& p : policy.patterns)
    for (size_t from = 0; from <= t.size();) {
      auto m = p.regex.find(t, from);
      if (!m) break;
      size_t b = m->begin(), e = m->end();
      if (m->slots.size() >= 4 && m->slots[2] >= 0) {
        b = static_cast<size_t>(m->slots[2]);
        e = static_cast<size_t>(m->slots[3]);
      }
      if (mask(t, b, e)) found.add(p.name);
      from = std::max(m->end(), m->begin() + 1);
    }
}

// ---- headers and messages -----------------------------------------------------------------------

constexpr std::array kKeyHeaders{std::string_view("x-api-key"),       std::string_view("api-key"),
                                 std::string_view("x-auth-token"),    std::string_view("x-access-token"),
                                 std::string_view("x-amz-security-token"), std::string_view("x-goog-api-key"),
                                 std::string_view("private-token"),   std::string_view("x-vault-token")};

bool headers(const RedactPolicy& policy, envelope::Headers& hs, Found& found) {
  bool changed = false;
  for (auto& h : hs) {
    std::string name = core::to_lower(h.name);
    Bytes& v = h.value;
    auto masked = [&](size_t b, size_t e, std::string_view kind) {
      while (b < e && v[b] == ' ') ++b;
      while (e > b && v[e - 1] == ' ') --e;
      if (mask(v, b, e)) {
        found.add(kind);
        changed = true;
      }
    };
    if ((name == "authorization" || name == "proxy-authorization") && policy.has("authorization")) {
      size_t sp = v.find(' ');
      masked(sp == Bytes::npos ? 0 : sp + 1, v.size(), "authorization");
    } else if ((name == "cookie" || name == "set-cookie") && policy.has("cookie")) {
      for (size_t p = 0; p < v.size();) {
        size_t end = v.find(';', p);
        if (end == Bytes::npos) end = v.size();
        size_t eq = v.find('=', p);
        if (eq != Bytes::npos && eq < end) masked(eq + 1, end, "cookie");
        if (name == "set-cookie") break;  // the attributes after the first pair are not secret
        p = end + 1;
      }
    } else if (std::find(policy.headers.begin(), policy.headers.end(), name) != policy.headers.end()) {
      masked(0, v.size(), "header");
    } else if (policy.has("api_key") && std::find(kKeyHeaders.begin(), kKeyHeaders.end(), name) != kKeyHeaders.end()) {
      masked(0, v.size(), "api_key");
    } else {
      changed = redact_text(policy, v, found) || changed;
    }
  }
  return changed;
}

// An HTTP/1 message's bytes made to say what its redacted view says, in the same places: the masks of
// the head's values and of the body (plain, or chunk by chunk) copied over. False when the bytes and
// the view do not correspond one to one (then they are made again from the view).
bool patch_http1(Bytes& raw, const envelope::HttpMessage& before, const envelope::HttpMessage& after) {
  if (before.trailers != after.trailers || before.body.size() != after.body.size()) return false;
  size_t sep = 4, he = raw.find("\r\n\r\n");
  if (he == Bytes::npos) {
    sep = 2;
    he = raw.find("\n\n");
  }
  if (he == Bytes::npos) return false;
  // The head: the start line, then one line per field, in order.
  std::vector<std::pair<size_t, size_t>> lines;
  for (size_t p = 0; p < he;) {
    size_t e = raw.find('\n', p);
    if (e == Bytes::npos || e > he) e = he;
    lines.emplace_back(p, e);
    p = e + 1;
  }
  if (lines.size() != before.headers.size() + 1) return false;
  auto replace_in = [&](size_t line, size_t from, const Bytes& was, const Bytes& now) {
    if (was == now) return true;
    auto [b, e] = lines[line];
    size_t at = std::string_view(raw.data() + b, e - b).find(was, from);
    if (at == std::string_view::npos || was.size() != now.size()) return false;
    raw.replace(b + at, now.size(), now);
    return true;
  };
  if (!replace_in(0, 0, before.path, after.path)) return false;
  for (size_t k = 0; k < before.headers.size(); ++k) {
    auto [b, e] = lines[k + 1];
    size_t colon = std::string_view(raw.data() + b, e - b).find(':');
    if (colon == std::string_view::npos || !replace_in(k + 1, colon + 1, before.headers[k].value, after.headers[k].value))
      return false;
  }
  if (before.body == after.body) return true;
  size_t body = he + sep;
  std::string_view rest(raw.data() + body, raw.size() - body);
  if (rest.size() <= before.body.size() && before.body.compare(0, rest.size(), rest) == 0) {
    raw.replace(body, rest.size(), after.body, 0, rest.size());  // whole, or the part recorded
    return true;
  }
  if (!core::to_lower(layer::header_value(before.headers, "transfer-encoding")).ends_with("chunked")) return false;
  size_t p = body, bi = 0;
  while (p < raw.size()) {
    size_t le = raw.find('\n', p);
    if (le == Bytes::npos) return false;
    size_t size = 0, k = p;
    for (; k < le && std::isxdigit(static_cast<unsigned char>(raw[k])) && size < (size_t{1} << 40); ++k)
      size = size * 16 + static_cast<size_t>(digit(raw[k]) ? raw[k] - '0' : lower(raw[k]) - 'a' + 10);
    if (k == p) return false;
    if (size == 0) break;
    size_t d = le + 1, n = std::min(size, raw.size() - d);
    if (bi + n > before.body.size() || raw.compare(d, n, before.body, bi, n) != 0) return false;
    raw.replace(d, n, after.body, bi, n);
    bi += n;
    p = d + size + 2;
  }
  return true;
}

int32_t h2_stream_number(const std::string& stream_id) {
  size_t dot = stream_id.rfind('.');
  int32_t n = 0;
  for (size_t i = dot == std::string::npos ? 0 : dot + 1; i < stream_id.size() && digit(stream_id[i]) && n < (1 << 27); ++i)
    n = n * 10 + (stream_id[i] - '0');
  return n > 0 ? n : 1;
}

// How many bytes differ: what a redaction masked.
size_t masked_count(const Bytes& a, const Bytes& b) {
  size_t n = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) n += a[i] != b[i];
  return n;
}

bool redact_http(const RedactPolicy& policy, envelope::Envelope& e, envelope::HttpMessage& m, Found& found, bool& recoded) {
  envelope::HttpMessage before = m;
  bool changed = headers(policy, m.headers, found);
  changed = headers(policy, m.trailers, found) || changed;
  if (m.kind == envelope::HttpMessage::Kind::request) changed = redact_text(policy, m.path, found) || changed;
  std::string codings = core::to_lower(core::trim_ows(layer::header_value(m.headers, "content-encoding")));
  if (codings.empty() || codings == "identity") {
    changed = redact_text(policy, m.body, found) || changed;
  } else if (auto decoded = codec::decode_content(m.body, codings, kMaxDecoded); decoded && redact_text(policy, *decoded, found)) {
    auto encoded = codec::encode_content(*decoded, codings);
    m.body = encoded ? std::move(*encoded) : Bytes();  // never the secret, coded or not
    for (auto& h : m.headers)  // the view says what the bytes made from it will
      if (core::iequals(h.name, "content-length") && m.body_omitted == 0) h.value = std::to_string(m.body.size());
    recoded = changed = true;
  }
  if (!changed || e.raw.empty()) return changed;
  if (m.version == "HTTP/2") {
    codec::H2Encoder encoder;  // HPACK-coded frames cannot be masked in place: they are made again
    e.raw = encoder.message(h2_stream_number(e.stream_id), m);
  } else if (!patch_http1(e.raw, before, m)) {
    if (is_head_unit(e)) {
      envelope::Headers framing;
      for (const auto& h : m.headers)
        if (layer::is_framing_field(h.name)) framing.push_back(h);
      e.raw = layer::encode_http1_head(m, framing);
    } else {
      e.raw = layer::encode_http1(m);
    }
  }
  return true;
}

// A WebSocket frame's bytes with the redacted payload, masked with the frame's own key; made again
// when the frame does not hold the end of the payload as it is (a compressed message).
bool redact_ws(const RedactPolicy& policy, envelope::Envelope& e, envelope::WsMessage& w, Found& found) {
  Bytes before = w.payload, before_reason = w.close_reason;
  bool changed = redact_text(policy, w.payload, found);
  changed = redact_text(policy, w.close_reason, found) || changed;
  if (!changed || e.raw.empty()) return changed;
  const Bytes& raw = e.raw;
  bool patched = false;
  if (!w.compressed && raw.size() >= 2) {
    size_t hl = 2, len = static_cast<unsigned char>(raw[1]) & 0x7f;
    bool masked = static_cast<unsigned char>(raw[1]) & 0x80;
    if (len >= 126) {
      size_t ext = len == 126 ? 2 : 8;
      len = 0;
      for (size_t k = 0; k < ext && hl + k < raw.size(); ++k) len = (len << 8) | static_cast<unsigned char>(raw[hl + k]);
      hl += ext;
    }
    std::array<unsigned char, 4> key{0, 0, 0, 0};
    if (masked && hl + 4 <= raw.size()) {
      for (size_t k = 0; k < 4; ++k) key[k] = static_cast<unsigned char>(raw[hl + k]);
      hl += 4;
    }
    if (hl <= raw.size() && raw.size() - hl == len) {
      Bytes plain = raw.substr(hl);
      for (size_t k = 0; k < plain.size(); ++k) plain[k] = static_cast<char>(plain[k] ^ key[k % 4]);
      const Bytes& was = w.opcode == 8 ? before_reason : before;
      const Bytes& now = w.opcode == 8 ? w.close_reason : w.payload;
      size_t n = std::min(plain.size(), was.size());
      if (plain.compare(plain.size() - n, n, was, was.size() - n, n) == 0) {
        plain.replace(plain.size() - n, n, now, now.size() - n, n);
        for (size_t k = 0; k < plain.size(); ++k) plain[k] = static_cast<char>(plain[k] ^ key[k % 4]);
        e.raw = raw.substr(0, hl) + plain;
        patched = true;
      }
    }
  }
  if (!patched) e.raw = codec::ws_encode(w, w.masked, codec::ws_window_bits(e));
  return true;
}

// Bytes that are the view's own text (an event block, a gRPC-Web trailer frame): masked as the view
// was, or made again when the two do not mask alike.
void redact_alike(const RedactPolicy& policy, Bytes& raw, size_t view_masked, const std::function<Bytes()>& remake) {
  Bytes copy = raw;
  Found ignored;
  redact_text(policy, copy, ignored);
  raw = masked_count(raw, copy) == view_masked ? std::move(copy) : remake();
}

std::string overlay_key(const envelope::Envelope& e) {
  return e.stream_id + '\n' + e.flow_id + (e.direction == envelope::Direction::send ? ">" : "<");
}

}  // namespace

// ---- the public face ----------------------------------------------------------------------------

const std::vector<std::string>& redact_kinds() {
  static const std::vector<std::string> kinds{"private_key", "password", "jwt",   "bearer",      "authorization",
                                              "cookie",      "api_key",  "email", "credit_card", "phone"};
  return kinds;
}

bool RedactPolicy::has(std::string_view kind) const { return std::find(kinds.begin(), kinds.end(), kind) != kinds.end(); }

void Found::add(std::string_view kind) {
  if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end()) kinds.emplace_back(kind);
}

std::string Found::joined() const {
  std::string out;
  for (const auto& k : kinds) out += (out.empty() ? "" : ",") + k;
  return out;
}

bool luhn(std::string_view digits) {
  int sum = 0;
  bool twice = false;
  for (size_t i = digits.size(); i-- > 0;) {
    int d = digits[i] - '0';
    if (twice) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
    twice = !twice;
  }
  return !digits.empty() && sum % 10 == 0;
}

bool redact_text(const RedactPolicy& policy, Bytes& text, Found& found) {
  if (text.empty()) return false;
  // The most specific kinds first: a JWT is masked whole before a bearer's token or a field is looked
  // for, a key's BEGIN line is not read as anything else.
  Found local;
  if (policy.has("private_key")) private_keys(text, local);
  if (policy.has("jwt")) jwts(text, local);
  if (policy.has("bearer")) bearers(text, local);
  if (policy.has("api_key")) tokens(text, local);
  if (policy.has("password") || !policy.fields.empty()) fields(policy, policy.has("password"), text, local);
  if (policy.has("email")) emails(text, local);
  if (policy.has("credit_card") || policy.has("phone")) numbers(policy, text, local);
  if (!policy.patterns.empty()) patterns(policy, text, local);
  for (const auto& k : local.kinds) found.add(k);
  return !local.kinds.empty();
}

bool Redactor::overlay(envelope::Envelope& e, Found& found) {
  bool recoded;
  {
    std::lock_guard<std::mutex> lock(mu_);
    recoded = std::find(recoded_.begin(), recoded_.end(), overlay_key(e)) != recoded_.end();
  }
  if (recoded) {  // a piece of a body under a content coding whose secrets were masked: it goes
    if (e.raw.empty()) return false;
    e.raw.clear();
    found.add("recoded_body");
    return true;
  }
  // The piece's own bytes after its framing: an HTTP/1 chunk's size line, an HTTP/2 frame's header, a
  // gRPC message's prefix.
  size_t skip = 0;
  if (e.overlay == "h1-chunk") skip = std::min(e.raw.find('\n'), e.raw.size() - 1) + 1;  // its size line
  else if (e.overlay == "h2-frame") skip = 9;
  else if (e.overlay == "grpc-lpm-frame") skip = 5;
  if (e.overlay == "grpcweb-base64") {
    auto decoded = core::base64_decode(e.raw);
    if (!decoded || !redact_text(policy_, *decoded, found)) return false;
    e.raw = core::base64_encode(*decoded);  // masks keep the length: the text stays as long
    return true;
  }
  if (skip >= e.raw.size()) return false;
  Bytes piece = e.raw.substr(skip);
  if (!redact_text(policy_, piece, found)) return false;
  e.raw.replace(skip, piece.size(), piece);
  return true;
}

bool Redactor::apply(envelope::Envelope& e) {
  Found found;
  bool changed = false, recoded = false;
  if (!e.overlay.empty() && e.overlay != "head") {
    changed = overlay(e, found);
  } else if (auto* m = std::get_if<envelope::HttpMessage>(&e.message)) {
    changed = redact_http(policy_, e, *m, found, recoded);
  } else if (auto* w = std::get_if<envelope::WsMessage>(&e.message)) {
    changed = redact_ws(policy_, e, *w, found);
  } else if (auto* ev = std::get_if<envelope::SseMessage>(&e.message)) {
    envelope::SseMessage before = *ev;
    bool c = redact_text(policy_, ev->id, found);
    c = redact_text(policy_, ev->event, found) || c;
    c = redact_text(policy_, ev->data, found) || c;
    if (c && !e.raw.empty()) {
      size_t n = masked_count(before.id, ev->id) + masked_count(before.event, ev->event) + masked_count(before.data, ev->data);
      redact_alike(policy_, e.raw, n, [&] { return codec::sse_encode(*ev); });
    }
    changed = c;
  } else if (auto* g = std::get_if<envelope::GrpcDataMessage>(&e.message)) {
    if (redact_text(policy_, g->payload, found)) {
      changed = true;
      if (!g->compressed && e.raw.size() == 5 + g->payload.size()) {
        e.raw.replace(5, g->payload.size(), g->payload);
      } else if (!e.raw.empty()) {
        g->compressed = false;  // as a step's change goes out: uncompressed
        e.raw = codec::grpc_frame(g->payload);
      }
    }
  } else if (auto* s = std::get_if<envelope::GrpcStartMessage>(&e.message)) {
    changed = headers(policy_, s->metadata, found);
    if (changed && !e.raw.empty()) e.raw.clear();  // fields; their frames are the HTTP/2 request's
  } else if (auto* end = std::get_if<envelope::GrpcEndMessage>(&e.message)) {
    envelope::GrpcEndMessage before = *end;
    bool c = headers(policy_, end->trailers, found);
    c = redact_text(policy_, end->message, found) || c;
    if (c && !e.raw.empty()) {
      size_t n = masked_count(before.message, end->message);
      for (size_t k = 0; k < before.trailers.size(); ++k) n += masked_count(before.trailers[k].value, end->trailers[k].value);
      redact_alike(policy_, e.raw, n, [&] { return codec::grpc_web_trailer_frame(end->trailers); });
    }
    changed = c;
  } else if (std::holds_alternative<envelope::RawMessage>(e.message)) {
    changed = redact_text(policy_, e.raw, found);
  }
  if (recoded) {
    std::lock_guard<std::mutex> lock(mu_);
    if (recoded_.size() >= kRecodedKept) recoded_.erase(recoded_.begin());
    recoded_.push_back(overlay_key(e));
  }
  if (!changed) return false;
  auto tag = std::find_if(e.tags.begin(), e.tags.end(), [](const auto& t) { return t.first == "redacted"; });
  if (tag == e.tags.end()) {
    e.tags.emplace_back("redacted", found.joined());
  } else {  // redacted again (a capture redacted before): the kinds of both
    Found both;
    for (size_t p = 0; p <= tag->second.size();) {
      size_t c = std::min(tag->second.find(',', p), tag->second.size());
      if (c > p) both.add(std::string_view(tag->second).substr(p, c - p));
      p = c + 1;
    }
    for (const auto& k : found.kinds) both.add(k);
    tag->second = both.joined();
  }
  return true;
}

bool Redactor::apply(envelope::Record& r) {
  if (auto* e = std::get_if<envelope::Envelope>(&r)) return apply(*e);
  if (auto* err = std::get_if<envelope::ErrorRecord>(&r)) {
    Found found;
    return redact_text(policy_, err->message, found);
  }
  return false;
}

// ---- policies -----------------------------------------------------------------------------------

namespace {

core::Result<void> add_kinds(RedactPolicy& policy, std::string_view list, const std::string& where) {
  for (size_t p = 0; p <= list.size();) {
    size_t c = std::min(list.find(',', p), list.size());
    std::string name(core::trim_ows(list.substr(p, c - p)));
    p = c + 1;
    const auto& all = redact_kinds();
    auto add = [&](std::string_view k) {
      if (!policy.has(k)) policy.kinds.emplace_back(k);
    };
    if (name == "default") {
      for (const auto& k : all) add(k);
    } else if (name == "pii") {
      for (auto k : {"email", "credit_card", "phone"}) add(k);
    } else if (name == "credentials") {
      for (const auto& k : all)
        if (k != "email" && k != "credit_card" && k != "phone") add(k);
    } else if (std::find(all.begin(), all.end(), name) != all.end()) {
      add(name);
    } else {
      std::string known = "default, credentials, pii";
      for (const auto& k : all) known += ", " + k;
      return core::make_error(where + "no preset or kind named '" + name + "' (known: " + known + ")");
    }
  }
  return {};
}

core::Result<RedactPolicy> policy_file(const std::string& path) {
  auto doc = read_policy_file(path);
  if (!doc) return doc.error();
  RedactPolicy policy;
  auto strings = [&](const char* member, auto&& each) -> core::Result<void> {
    const core::Value* v = doc->find(member);
    if (!v) return {};
    if (!v->is_array()) return core::make_error(path + ": " + member + ": an array is expected");
    for (size_t i = 0; i < v->as_array().size(); ++i) {
      const auto& item = v->as_array()[i];
      std::string where = path + ": " + member + "[" + std::to_string(i) + "]";
      if (auto r = each(item, where); !r) return r;
    }
    return {};
  };
  for (const auto& m : doc->as_object())
    if (m.key != "kinds" && m.key != "patterns" && m.key != "headers" && m.key != "fields" && m.key != "$schema")
      return core::make_error(path + ": unknown member '" + m.key + "' (kinds, patterns, headers, fields)");
  auto a_string = [](const core::Value& item, const std::string& where) -> core::Result<std::string> {
    if (!item.is_string() || item.as_string().empty()) return core::make_error(where + ": a non-empty string is expected");
    return item.as_string();
  };
  if (!doc->find("kinds")) {
    if (auto r = add_kinds(policy, "default", ""); !r) return r.error();
  }
  if (auto r = strings("kinds", [&](const core::Value& item, const std::string& where) -> core::Result<void> {
        auto s = a_string(item, where);
        if (!s) return s.error();
        return add_kinds(policy, *s, where + ": ");
      }); !r)
    return r.error();
  for (const auto& named : {std::pair{"headers", &policy.headers}, std::pair{"fields", &policy.fields}}) {
    std::vector<std::string>* list = named.second;
    if (auto r = strings(named.first, [&](const core::Value& item, const std::string& where) -> core::Result<void> {
          auto s = a_string(item, where);
          if (!s) return s.error();
          list->push_back(core::to_lower(*s));
          return {};
        }); !r)
      return r.error();
  }
  if (auto r = strings("patterns", [&](const core::Value& item, const std::string& where) -> core::Result<void> {
        const core::Value* name = item.find("name");
        const core::Value* regex = item.find("regex");
        const core::Value* icase = item.find("ignore_case");
        if (!item.is_object() || !name || !regex || !name->is_string() || !regex->is_string() ||
            (icase && !icase->is_bool()))
          return core::make_error(where + ": {\"name\": STRING, \"regex\": STRING, \"ignore_case\": BOOL} is expected");
        for (const auto& m : item.as_object())
          if (m.key != "name" && m.key != "regex" && m.key != "ignore_case")
            return core::make_error(where + ": unknown member '" + m.key + "'");
        auto re = filter::Regex::compile(regex->as_string(), icase && icase->as_bool());
        if (!re) return core::make_error(where + ".regex: " + re.error().message);
        policy.patterns.push_back({name->as_string(), std::move(*re)});
        return {};
      }); !r)
    return r.error();
  return policy;
}

}  // namespace

core::Result<RedactPolicy> redact_policy(const std::string& spec) {
  struct stat st {};
  bool file = ::stat(spec.c_str(), &st) == 0 && S_ISREG(st.st_mode);
  if (file || spec.find('/') != std::string::npos || spec.ends_with(".json")) return policy_file(spec);
  RedactPolicy policy;
  if (auto r = add_kinds(policy, spec.empty() ? "default" : spec, ""); !r) return r.error();
  return policy;
}

}  // namespace sluice::step
