#include "step/transform.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include "codec/content.hpp"
#include "core/ascii.hpp"
#include "core/json.hpp"
#include "filter/expr.hpp"
#include "layer/http1_wire.hpp"
#include "layer/mode_spec.hpp"
#include "step/process_step.hpp"
#include "step/rules.hpp"

namespace sluice::step {

namespace {

bool is_octal(char c) { return c >= '0' && c <= '7'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
int hex_value(char c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}
// The one-letter escapes Python's string literals and re templates share.
std::optional<char> simple_escape(char c) {
  switch (c) {
    case 'a': return '\a';
    case 'b': return '\b';
    case 'f': return '\f';
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'v': return '\v';
    case '\\': return '\\';
    default: return std::nullopt;
  }
}

}  // namespace

core::Result<core::Bytes> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return core::make_error("cannot read " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return core::make_error("cannot read " + path);
  return ss.str();
}

envelope::Envelope answer(const envelope::Envelope& request, int status, envelope::Headers headers, core::Bytes body,
                          const std::string& rule) {
  envelope::HttpMessage m;
  m.kind = envelope::HttpMessage::Kind::response;
  m.version = "HTTP/1.1";
  m.status = status;
  m.reason = std::string(layer::reason_phrase(status));
  m.headers = std::move(headers);
  m.headers.push_back({"content-length", std::to_string(body.size())});  // (as mitmproxy writes it)
  m.body = std::move(body);
  envelope::Envelope reply = envelope::reply_to(request, core::now_wall());
  reply.raw = layer::encode_http1(m);
  reply.message = std::move(m);
  reply.tags.emplace_back("synthesized", rule);
  return reply;
}

core::Result<core::Value> read_policy_file(const std::string& path) {
  auto text = read_file(path);
  if (!text) return text.error();
  auto doc = core::json_parse(*text);
  if (!doc) return core::make_error(path + ": not JSON: " + doc.error().message);
  if (!doc->is_object()) return core::make_error(path + ": a policy is a JSON object");
  return std::move(*doc);
}

core::Result<core::Bytes> escape_decode(std::string_view s) {
  core::Bytes out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c != '\\') {
      out.push_back(c);
      continue;
    }
    if (i + 1 >= s.size()) return core::make_error("Trailing \\ in string");
    char e = s[++i];
    if (auto simple = simple_escape(e)) {
      out.push_back(*simple);
    } else if (e == '\'' || e == '"') {
      out.push_back(e);
    } else if (e == '\n') {
      // a line continuation: nothing
    } else if (is_octal(e)) {
      int v = e - '0';
      for (int k = 0; k < 2 && i + 1 < s.size() && is_octal(s[i + 1]); ++k) v = v * 8 + (s[++i] - '0');
      out.push_back(static_cast<char>(v & 0xff));
    } else if (e == 'x') {
      if (i + 2 >= s.size() || hex_value(s[i + 1]) < 0 || hex_value(s[i + 2]) < 0)
        return core::make_error("invalid \\x escape at position " + std::to_string(i - 1));
      out.push_back(static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2])));
      i += 2;
    } else {
      out.push_back('\\');
      out.push_back(e);
    }
  }
  return out;
}

core::Result<Replacement> Replacement::parse(core::ByteView t, size_t groups) {
  Replacement r;
  auto literal = [&](std::string_view bytes) {
    if (r.pieces_.empty() || r.pieces_.back().group >= 0) r.pieces_.push_back({});
    r.pieces_.back().literal.append(bytes);
  };
  auto group = [&](size_t g) -> core::Result<void> {
    if (g > groups) return core::make_error("invalid group reference " + std::to_string(g));
    r.pieces_.push_back({{}, static_cast<int>(g)});
    return {};
  };
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] != '\\') {
      literal(t.substr(i, 1));
      continue;
    }
    if (i + 1 >= t.size()) return core::make_error("bad escape (end of pattern)");
    char c = t[++i];
    if (c == 'g') {
      size_t close = t.find('>', i);
      if (i + 1 >= t.size() || t[i + 1] != '<' || close == core::ByteView::npos)
        return core::make_error("missing group name in \\g<...>");
      std::string_view name = t.substr(i + 2, close - i - 2);
      if (name.empty() || name.size() > 6 || !std::all_of(name.begin(), name.end(), is_digit))
        return core::make_error("bad group name '" + std::string(name) + "' (named groups are not supported)");
      if (auto g = group(std::stoul(std::string(name))); !g) return core::make_error(g.error().message);
      i = close;
    } else if (c == '0') {
      int v = 0;
      for (int k = 0; k < 2 && i + 1 < t.size() && is_octal(t[i + 1]); ++k) v = v * 8 + (t[++i] - '0');
      literal(std::string(1, static_cast<char>(v & 0xff)));
    } else if (is_digit(c)) {
      // \1..\99, or three octal digits.
      if (i + 2 < t.size() && is_octal(c) && is_octal(t[i + 1]) && is_octal(t[i + 2])) {
        int v = (c - '0') * 64 + (t[i + 1] - '0') * 8 + (t[i + 2] - '0');
        if (v > 0377) return core::make_error("octal escape value outside of range 0-0o377");
        literal(std::string(1, static_cast<char>(v)));
        i += 2;
        continue;
      }
      size_t g = static_cast<size_t>(c - '0');
      if (i + 1 < t.size() && is_digit(t[i + 1])) g = g * 10 + static_cast<size_t>(t[++i] - '0');
      if (auto ok = group(g); !ok) return core::make_error(ok.error().message);
    } else if (auto simple = simple_escape(c)) {
      literal(std::string(1, *simple));
    } else if (is_letter(c)) {
      return core::make_error(std::string("bad escape \\") + c);
    } else {
      literal(t.substr(i - 1, 2));
    }
  }
  return r;
}

void Replacement::expand(core::ByteView text, const filter::Regex::Match& m, core::Bytes& out) const {
  for (const auto& p : pieces_) {
    if (p.group < 0) {
      out += p.literal;
      continue;
    }
    size_t k = static_cast<size_t>(p.group) * 2;
    if (k + 1 < m.slots.size() && m.slots[k] >= 0 && m.slots[k + 1] >= m.slots[k])
      out.append(text.substr(static_cast<size_t>(m.slots[k]), static_cast<size_t>(m.slots[k + 1] - m.slots[k])));
  }
}

size_t regex_sub(const filter::Regex& re, const Replacement& repl, core::ByteView text, core::Bytes& out) {
  size_t count = 0, copied = 0, pos = 0;
  while (pos <= text.size()) {
    auto m = re.find(text, pos);
    if (!m) break;
    out.append(text.substr(copied, m->begin() - copied));
    repl.expand(text, *m, out);
    ++count;
    copied = m->end();
    if (m->begin() == m->end()) {
      if (m->end() >= text.size()) break;
      out.push_back(text[m->end()]);  // an empty match: the next search starts past the byte after it
      copied = m->end() + 1;
      pos = m->end() + 1;
    } else {
      pos = m->end();
    }
  }
  if (copied < text.size()) out.append(text.substr(copied));
  return count;
}

bool set_url(envelope::HttpMessage& m, std::string_view url) {
  auto u = layer::parse_absolute_url(url);
  if (!u) return false;
  std::string host = core::to_lower(u->host);
  std::string authority = layer::authority_of(host, u->port, u->scheme == "https" ? 443 : 80);
  bool absolute = m.path.find("://") != std::string::npos;
  m.scheme = u->scheme;
  m.authority = authority;
  m.path = absolute ? u->scheme + "://" + authority + u->origin_form : u->origin_form;
  // Host as mitmproxy's headers["Host"] = ... does: the first field's value in place, the others gone.
  bool seen = false;
  std::erase_if(m.headers, [&](envelope::Header& h) {
    if (!core::iequals(h.name, "host")) return false;
    if (seen) return true;
    seen = true;
    h.value = authority;
    return false;
  });
  return true;
}

namespace {

// mitmproxy's parse_spec: "[SEP FILTER] SEP SUBJECT SEP REPLACEMENT", the first character the separator.
struct Spec {
  std::optional<std::string> filter;
  std::string subject, replacement;
};

core::Result<Spec> split_spec(std::string_view option) {
  if (option.empty()) return core::make_error("Invalid number of parameters (2 or 3 are expected)");
  char sep = option[0];
  std::vector<std::string> parts;
  std::string_view rem = option.substr(1);
  while (parts.size() < 2) {  // split(sep, 2): at most three parts, the last one keeps its separators
    size_t at = rem.find(sep);
    if (at == std::string_view::npos) break;
    parts.emplace_back(rem.substr(0, at));
    rem.remove_prefix(at + 1);
  }
  parts.emplace_back(rem);
  if (parts.size() == 2) return Spec{std::nullopt, parts[0], parts[1]};
  if (parts.size() == 3) return Spec{parts[0], parts[1], parts[2]};
  return core::make_error("Invalid number of parameters (2 or 3 are expected)");
}

core::Result<std::optional<filter::Filter>> parse_filter(const std::optional<std::string>& text) {
  if (!text) return std::optional<filter::Filter>{};
  auto f = filter::Filter::parse(*text);
  if (!f) return core::make_error("Invalid filter pattern: " + *text + " (" + f.error().message + ")");
  return std::optional<filter::Filter>(std::move(*f));
}

// A rule's parts, its filter parsed.
struct Rule {
  Spec spec;
  std::optional<filter::Filter> filter;
};

core::Result<Rule> parse_rule(std::string_view option) {
  auto spec = split_spec(option);
  if (!spec) return spec.error();
  auto f = parse_filter(spec->filter);
  if (!f) return f.error();
  return Rule{std::move(*spec), std::move(*f)};
}

core::Result<filter::Regex> compile_pattern(const std::string& pattern) {
  auto re = filter::Regex::compile(pattern, false);
  if (!re) return core::make_error("Invalid regular expression " + pattern + " (" + re.error().message + ")");
  return re;
}

std::string expand_user(const std::string& path) {
  if (path == "~" || path.starts_with("~/")) {
    const char* home = std::getenv("HOME");
    if (home) return home + path.substr(1);
  }
  return path;
}

// A replacement value: its bytes (escapes undone), or a file's (`@PATH`), read when used.
struct Value {
  core::Bytes bytes;
  std::string file;
  core::Result<core::Bytes> read() const { return file.empty() ? core::Result<core::Bytes>(bytes) : read_file(file); }
};

core::Result<Value> parse_value(const std::string& replacement) {
  Value v;
  if (replacement.starts_with('@')) {
    v.file = expand_user(replacement.substr(1));
    if (auto r = read_file(v.file); !r) return core::make_error("Invalid file path: " + replacement.substr(1) + " (" + r.error().message + ")");
    return v;
  }
  auto b = escape_decode(replacement);
  if (!b) return core::make_error(b.error().message);
  v.bytes = std::move(*b);
  return v;
}

struct HeaderRule {
  std::string name;  // for modified_by
  std::optional<filter::Filter> filter;
  core::Bytes header;
  Value value;
};

struct BodyRule {
  std::string name;
  std::optional<filter::Filter> filter;
  filter::Regex regex;
  Value value;
  std::optional<Replacement> replacement;  // parsed once, unless it is read from a file at each use
};

struct LocalRule {
  std::string name;
  std::optional<filter::Filter> filter;
  filter::Regex regex;
  std::string path;  // resolved: a file or a directory
};

struct RemoteRule {
  std::string name;
  std::optional<filter::Filter> filter;
  filter::Regex regex;
  Replacement replacement;
};

struct BlockRule {
  std::string name;
  filter::Filter filter;
  int status = 0;
};

bool judged(const std::optional<filter::Filter>& f, const filter::FlowView& flow) { return !f || f->matches(flow); }

// Content types by file extension: /etc/mime.types (as Python's mimetypes reads it), then a few common
// ones for a machine without it.
class MimeTypes {
 public:
  MimeTypes() {
    types_ = {{"html", "text/html"}, {"htm", "text/html"}, {"css", "text/css"}, {"js", "text/javascript"},
              {"json", "application/json"}, {"txt", "text/plain"}, {"xml", "text/xml"}, {"png", "image/png"},
              {"jpg", "image/jpeg"}, {"jpeg", "image/jpeg"}, {"gif", "image/gif"}, {"svg", "image/svg+xml"},
              {"ico", "image/vnd.microsoft.icon"}, {"pdf", "application/pdf"}, {"wasm", "application/wasm"},
              {"woff2", "font/woff2"}, {"mp4", "video/mp4"}, {"zip", "application/zip"}};
    std::ifstream in("/etc/mime.types");
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      std::istringstream words(line);
      std::string type, ext;
      if (!(words >> type)) continue;
      while (words >> ext) types_[core::to_lower(ext)] = type;
    }
  }
  std::string of(const std::string& path) const {
    size_t slash = path.rfind('/');
    size_t dot = path.rfind('.');
    if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return {};
    auto it = types_.find(core::to_lower(path.substr(dot + 1)));
    return it == types_.end() ? std::string() : it->second;
  }

 private:
  std::unordered_map<std::string, std::string> types_;
};

bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// werkzeug's safe_join over the path's parts: nothing that climbs out of the root.
std::optional<std::string> safe_join(const std::string& root, const std::string& untrusted) {
  std::string joined = root;
  std::string_view rest = untrusted;
  while (!rest.empty()) {
    size_t slash = rest.find('/');
    std::string_view part = rest.substr(0, slash);
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    if (part.empty() || part == ".") continue;
    if (part == "..") return std::nullopt;
    joined += "/";
    joined += part;
  }
  return joined;
}

// mitmproxy's map_local file_candidates: the URL's part after the match (or the first group), without
// its query and slashes, decoded; then that with index.html, and the same with odd bytes made `_`.
std::vector<std::string> file_candidates(const std::string& url, const LocalRule& rule) {
  auto m = rule.regex.find(url);
  if (!m) return {};
  std::string suffix;
  if (rule.regex.groups() > 0) {
    if (m->slots[2] >= 0) suffix = url.substr(static_cast<size_t>(m->slots[2]), static_cast<size_t>(m->slots[3] - m->slots[2]));
  } else {
    suffix = url.substr(m->end());
    suffix = suffix.substr(0, suffix.find('?'));
    while (!suffix.empty() && suffix.front() == '/') suffix.erase(0, 1);
    while (!suffix.empty() && suffix.back() == '/') suffix.pop_back();
  }
  if (suffix.empty()) return {rule.path + "/index.html"};
  std::string decoded = url_unquote(suffix);
  std::vector<std::string> names{decoded, decoded + "/index.html"};
  std::string escaped = decoded;
  for (auto& c : escaped)
    if (!(is_digit(c) || is_letter(c) || std::string_view("-_.=(),/").find(c) != std::string_view::npos)) c = '_';
  if (escaped != decoded) {
    names.push_back(escaped);
    names.push_back(escaped + "/index.html");
  }
  std::vector<std::string> out;
  for (const auto& n : names) {
    auto joined = safe_join(rule.path, n);
    if (!joined) return {};
    out.push_back(*joined);
  }
  return out;
}


constexpr size_t kMaxDecoded = 64u << 20;  // a body decoded past this is matched as it came

}  // namespace

std::string url_unquote(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2])));
      i += 2;
    } else {
      out.push_back(plus_is_space && s[i] == '+' ? ' ' : s[i]);
    }
  }
  return out;
}

void remove_headers(envelope::Headers& headers, std::string_view name) {
  std::erase_if(headers, [&](const envelope::Header& h) { return core::iequals(h.name, name); });
}

std::string header_value(const envelope::Headers& headers, std::string_view name) {
  for (const auto& h : headers)
    if (core::iequals(h.name, name)) return h.value;
  return {};
}

std::string mime_type_of(const std::string& path) {
  static const MimeTypes types;
  return types.of(path);
}

bool edit_body(envelope::HttpMessage& m, const std::function<bool(core::Bytes&)>& edit) {
  std::string coding = header_value(m.headers, "content-encoding");
  std::optional<core::Bytes> decoded =
      coding.empty() ? std::optional<core::Bytes>(m.body) : codec::decode_content(m.body, coding, kMaxDecoded);
  if (!decoded) {
    decoded = m.body;
    coding.clear();  // not decodable: matched and changed as it came
  }
  if (!edit(*decoded)) return false;
  std::optional<core::Bytes> encoded = coding.empty() ? decoded : codec::encode_content(*decoded, coding);
  if (encoded) {
    m.body = std::move(*encoded);
  } else {  // a coding we cannot apply again: the body goes as it reads, without it
    m.body = std::move(*decoded);
    remove_headers(m.headers, "content-encoding");
  }
  // The view says the length the bytes will say (as mitmproxy's content setter does).
  for (auto& h : m.headers)
    if (core::iequals(h.name, "content-length")) h.value = std::to_string(m.body.size());
  return true;
}

struct TransformStep::Impl {
  std::vector<BlockRule> block;
  std::vector<LocalRule> local;
  std::vector<RemoteRule> remote;
  std::vector<BodyRule> body;
  std::vector<HeaderRule> headers;
  std::string rules_path;
  std::mutex file_mu;
  std::shared_ptr<const RuleFile> file;  // --rules FILE, replaced whole by reload()
  std::shared_ptr<const RuleFile> rule_file() {
    if (rules_path.empty()) return nullptr;  // (no file: no lock on the way of every unit)
    std::lock_guard lock(file_mu);
    return file;
  }
  bool responses_need_request = false;  // a rule on responses has a filter (it may look at the request)
  bool responses_need_body = false;     // ... that reads bodies

  // Requests, until their response, for the filters of the rules on responses (bounded: the oldest go).
  static constexpr size_t kMaxRemembered = 65536;
  std::mutex mu;
  std::unordered_map<std::string, envelope::Envelope> requests;
  std::deque<std::string> order;

  static std::string key(const envelope::Envelope& e) { return e.stream_id + '\n' + e.flow_id; }

  void remember(const envelope::Envelope& request, bool need_body) {
    envelope::Envelope copy;
    copy.stream_id = request.stream_id;
    copy.flow_id = request.flow_id;
    copy.direction = request.direction;
    copy.protocol = request.protocol;
    copy.context = request.context;
    copy.tags = request.tags;
    const auto& m = std::get<envelope::HttpMessage>(request.message);
    envelope::HttpMessage kept;  // what the filters read: all but the body, unless one reads bodies
    kept.kind = m.kind;
    kept.method = m.method;
    kept.scheme = m.scheme;
    kept.authority = m.authority;
    kept.path = m.path;
    kept.version = m.version;
    kept.headers = m.headers;
    if (need_body) kept.body = m.body;
    copy.message = std::move(kept);
    std::lock_guard lock(mu);
    auto k = key(request);
    if (requests.insert_or_assign(k, std::move(copy)).second) order.push_back(std::move(k));
    while (requests.size() > kMaxRemembered && !order.empty()) {
      requests.erase(order.front());
      order.pop_front();
    }
    if (order.size() > 2 * kMaxRemembered) {  // keys of requests answered already
      std::erase_if(order, [&](const std::string& k2) { return !requests.count(k2); });
    }
  }

  std::optional<envelope::Envelope> take_request(const envelope::Envelope& response) {
    std::lock_guard lock(mu);
    auto it = requests.find(key(response));
    if (it == requests.end()) return std::nullopt;
    auto e = std::move(it->second);
    requests.erase(it);
    return e;
  }

  // -B: every matching rule's replacements, on the body as its Content-Encoding decodes.
  void modify_body(envelope::HttpMessage& m, const filter::FlowView& flow, std::vector<std::string_view>& applied) {
    std::vector<const BodyRule*> matching;
    for (const auto& rule : body)
      if (judged(rule.filter, flow)) matching.push_back(&rule);
    if (matching.empty()) return;
    edit_body(m, [&](core::Bytes& decoded) {
      bool changed = false;
      for (const auto* rule : matching) {
        std::optional<Replacement> from_file;
        if (!rule->replacement) {
          auto text = rule->value.read();
          if (!text) continue;  // (mitmproxy: a warning, and the rule is skipped)
          auto parsed = Replacement::parse(*text, rule->regex.groups());
          if (!parsed) continue;
          from_file = std::move(*parsed);
        }
        core::Bytes out;
        if (regex_sub(rule->regex, rule->replacement ? *rule->replacement : *from_file, decoded, out) == 0 || out == decoded)
          continue;
        decoded = std::move(out);
        changed = true;
        applied.push_back(rule->name);
      }
      return changed;
    });
  }

  // -H: every matching rule's field removed, then each set (all judged on the message before).
  void modify_headers(envelope::HttpMessage& m, const filter::FlowView& flow, std::vector<std::string_view>& applied) {
    std::vector<const HeaderRule*> matching;
    matching.reserve(headers.size());
    for (const auto& rule : headers)
      if (judged(rule.filter, flow)) matching.push_back(&rule);
    if (matching.empty()) return;
    // A copy to compare with only when a field goes (without, the fields changed iff one was added).
    std::optional<envelope::Headers> before;
    for (const auto* rule : matching)
      if (!before && std::any_of(m.headers.begin(), m.headers.end(),
                                 [&](const envelope::Header& h) { return core::iequals(h.name, rule->header); }))
        before = m.headers;
    size_t fields = m.headers.size();
    m.headers.reserve(fields + matching.size());
    for (const auto* rule : matching) remove_headers(m.headers, rule->header);
    for (const auto* rule : matching) {
      auto value = rule->value.read();
      if (!value) continue;
      if (!value->empty()) m.headers.push_back({rule->header, *value});
    }
    if (before ? m.headers == *before : m.headers.size() == fields) return;
    for (const auto* rule : matching) applied.push_back(rule->name);
  }

  // map_remote: each matching rule's re.sub on the URL; a changed URL that parses is the request's.
  void map_remote(envelope::HttpMessage& m, const filter::FlowView& flow, std::vector<std::string_view>& applied) {
    for (const auto& rule : remote) {
      if (!judged(rule.filter, flow)) continue;
      std::string url = envelope::url_of(m);
      core::Bytes changed;
      if (regex_sub(rule.regex, rule.replacement, url, changed) == 0 || changed == url) continue;
      if (!set_url(m, changed)) continue;  // (mitmproxy: the flow fails on a URL that does not parse)
      applied.push_back(rule.name);
    }
  }

  // A response a rule made for `request` goes through the rules on responses, as mitmproxy's response
  // hook sees it; it is recorded as it leaves (no variant: nothing else was ever sent).
  void on_answer(const envelope::Envelope& request, envelope::Envelope& reply) {
    auto* m = std::get_if<envelope::HttpMessage>(&reply.message);
    if (!m) return;
    filter::FlowView flow;
    flow.envelopes = {&request, &reply};
    std::vector<std::string_view> applied;
    modify_body(*m, flow, applied);
    modify_headers(*m, flow, applied);
    if (!applied.empty()) reply.raw = layer::encode_http1(*m);
  }

  // map_local: the first rule whose file exists answers.
  std::optional<envelope::Envelope> map_local(const envelope::Envelope& env, const envelope::HttpMessage& m,
                                              const filter::FlowView& flow) {
    std::string url = envelope::url_of(m);
    std::vector<std::string> all;
    for (const auto& rule : local) {
      if (!judged(rule.filter, flow) || !rule.regex.search(url)) continue;
      std::vector<std::string> candidates = is_file(rule.path) ? std::vector<std::string>{rule.path} : file_candidates(url, rule);
      all.insert(all.end(), candidates.begin(), candidates.end());
      for (const auto& c : candidates) {
        if (!is_file(c)) continue;
        auto contents = read_file(c);
        if (!contents) break;  // (mitmproxy: a warning, and the next rule)
        envelope::Headers h{{"Server", "sluice"}};
        if (auto type = mime_type_of(c); !type.empty()) h.push_back({"Content-Type", type});
        return answer(env, 200, std::move(h), std::move(*contents), rule.name);
      }
    }
    if (all.empty()) return std::nullopt;
    return answer(env, 404, {{"Server", "sluice"}}, {}, "map_local");
  }
};

core::Result<std::shared_ptr<TransformStep>> TransformStep::create(const TransformOptions& o) {
  auto impl = std::make_shared<Impl>();
  auto fail = [](std::string_view option, const std::string& value, const std::string& why) {
    return core::make_error("Cannot parse " + std::string(option) + " option " + value + ": " + why);
  };
  for (size_t i = 0; i < o.modify_headers.size(); ++i) {
    const auto& v = o.modify_headers[i];
    auto rule = parse_rule(v);
    if (!rule) return fail("modify_headers", v, rule.error().message);
    auto& spec = rule->spec;
    auto header = escape_decode(spec.subject);
    if (!header) return fail("modify_headers", v, header.error().message);
    auto value = parse_value(spec.replacement);
    if (!value) return fail("modify_headers", v, value.error().message);
    impl->headers.push_back({"modify_headers#" + std::to_string(i + 1), std::move(rule->filter), std::move(*header), std::move(*value)});
  }
  for (size_t i = 0; i < o.modify_body.size(); ++i) {
    const auto& v = o.modify_body[i];
    auto rule = parse_rule(v);
    if (!rule) return fail("modify_body", v, rule.error().message);
    auto& spec = rule->spec;
    auto pattern = escape_decode(spec.subject);
    if (!pattern) return fail("modify_body", v, pattern.error().message);
    auto re = compile_pattern(*pattern);
    if (!re) return fail("modify_body", v, re.error().message);
    auto value = parse_value(spec.replacement);
    if (!value) return fail("modify_body", v, value.error().message);
    std::optional<Replacement> replacement;
    if (value->file.empty()) {
      auto t = Replacement::parse(value->bytes, re->groups());
      if (!t) return fail("modify_body", v, t.error().message);
      replacement = std::move(*t);
    }
    impl->body.push_back({"modify_body#" + std::to_string(i + 1), std::move(rule->filter), std::move(*re), std::move(*value),
                          std::move(replacement)});
  }
  for (size_t i = 0; i < o.map_local.size(); ++i) {
    const auto& v = o.map_local[i];
    auto rule = parse_rule(v);
    if (!rule) return fail("map_local", v, rule.error().message);
    auto& spec = rule->spec;
    auto re = compile_pattern(spec.subject);
    if (!re) return fail("map_local", v, re.error().message);
    std::string path = expand_user(spec.replacement);
    char resolved[PATH_MAX];
    if (!::realpath(path.c_str(), resolved))
      return fail("map_local", v, "Invalid file path: " + spec.replacement + " (" + std::strerror(errno) + ")");
    impl->local.push_back({"map_local#" + std::to_string(i + 1), std::move(rule->filter), std::move(*re), resolved});
  }
  for (size_t i = 0; i < o.map_remote.size(); ++i) {
    const auto& v = o.map_remote[i];
    auto rule = parse_rule(v);
    if (!rule) return fail("map_remote", v, rule.error().message);
    auto& spec = rule->spec;
    auto re = compile_pattern(spec.subject);
    if (!re) return fail("map_remote", v, re.error().message);
    auto replacement = Replacement::parse(spec.replacement, re->groups());
    if (!replacement) return fail("map_remote", v, replacement.error().message);
    impl->remote.push_back({"map_remote#" + std::to_string(i + 1), std::move(rule->filter), std::move(*re), std::move(*replacement)});
  }
  for (size_t i = 0; i < o.block_list.size(); ++i) {
    const auto& v = o.block_list[i];
    // mitmproxy's own parse: exactly a filter and a status, the whole option lower-cased.
    std::string rem = v.empty() ? std::string() : core::to_lower(std::string_view(v).substr(1));
    size_t sep = v.empty() ? std::string::npos : rem.find(v[0]);
    if (v.empty() || sep == std::string::npos || rem.find(v[0], sep + 1) != std::string::npos)
      return fail("block_list", v, "Invalid number of parameters (2 are expected)");
    std::string status = rem.substr(sep + 1);
    int code = 0;
    bool number = !status.empty() && status.size() < 4 && std::all_of(status.begin(), status.end(), is_digit);
    if (number) code = std::stoi(status);
    if (!number || layer::reason_phrase(code).empty()) return fail("block_list", v, "Invalid HTTP status code: " + status);
    auto f = filter::Filter::parse(rem.substr(0, sep));
    if (!f) return fail("block_list", v, "Invalid filter pattern: " + rem.substr(0, sep) + " (" + f.error().message + ")");
    impl->block.push_back({"block_list#" + std::to_string(i + 1), std::move(*f), code});
  }
  if (!o.rules_file.empty()) {
    auto file = RuleFile::load(o.rules_file);
    if (!file) return file.error();
    impl->rules_path = o.rules_file;
    impl->file = std::move(*file);
  }
  for (const auto& r : impl->body)
    if (r.filter) {
      impl->responses_need_request = true;
      impl->responses_need_body |= (r.filter->needs() & filter::reads_bodies) != 0;
    }
  for (const auto& r : impl->headers)
    if (r.filter) {
      impl->responses_need_request = true;
      impl->responses_need_body |= (r.filter->needs() & filter::reads_bodies) != 0;
    }
  return std::shared_ptr<TransformStep>(new TransformStep(std::move(impl)));
}

size_t TransformStep::rules() const {
  auto file = impl_->rule_file();
  return impl_->block.size() + impl_->local.size() + impl_->remote.size() + impl_->body.size() + impl_->headers.size() +
         (file ? file->size() : 0);
}

void TransformStep::cancel(std::string_view conn_id) {
  std::lock_guard lock(impl_->mu);
  std::erase_if(impl_->requests, [&](const auto& kv) { return kv.second.context.conn_id == conn_id; });
}

namespace {

// The rules that changed a unit, each once, in their order: its variant's name.
void name_change(envelope::Envelope& env, const std::vector<std::string_view>& applied) {
  std::string names;
  for (auto it = applied.begin(); it != applied.end(); ++it) {
    if (std::find(applied.begin(), it, *it) != it) continue;
    if (!names.empty()) names += ',';
    names += *it;
  }
  env.modified_by = std::move(names);
}

}  // namespace

pipeline::Outcome TransformStep::process(envelope::Envelope& env, pipeline::Reply& reply, const pipeline::Resume&) {
  Impl& d = *impl_;
  if (env.modified) return pipeline::Outcome::next;
  auto file = d.rule_file();
  auto* m = std::get_if<envelope::HttpMessage>(&env.message);
  if (!m || env.protocol != envelope::Protocol::http) {
    if (!file) return pipeline::Outcome::next;
    std::vector<std::string_view> applied;
    auto outcome = file->apply_unit(env, reply, applied);
    if (!applied.empty()) name_change(env, applied);
    return outcome;
  }
  bool need_request = d.responses_need_request || (file && file->responses_filtered());
  bool need_body = d.responses_need_body || (file && file->responses_read_bodies());
  bool head = is_head_unit(env);
  if (!head && !env.overlay.empty()) return pipeline::Outcome::next;
  bool request = m->kind == envelope::HttpMessage::Kind::request;
  if (request && m->method == "CONNECT") return pipeline::Outcome::next;  // (mitmproxy's http_connect, not request)
  std::vector<std::string_view> applied;
  std::optional<envelope::Envelope> req;
  filter::FlowView flow;
  if (request) {
    flow.envelopes.push_back(&env);
    for (const auto& rule : d.block) {
      if (!rule.filter.matches(flow)) continue;
      if (rule.status == 444) return pipeline::Outcome::kill;  // mitmproxy's NO_RESPONSE: no answer at all
      reply = answer(env, rule.status, {{"Server", "sluice"}}, {}, rule.name);
      reply->tags.emplace_back("blocklisted", rule.name);
      d.on_answer(env, *reply);
      return pipeline::Outcome::respond;
    }
    if (!d.local.empty())
      if (auto r = d.map_local(env, *m, flow)) {
        reply = std::move(r);
        d.on_answer(env, *reply);
        return pipeline::Outcome::respond;
      }
  } else {
    if (need_request) req = d.take_request(env);
    if (req) flow.envelopes.push_back(&*req);
    flow.envelopes.push_back(&env);
  }
  // Each rule judges the flow as the rules before it left it: the message is the unit as changed so far.
  HttpOrigin origin = http_origin(env);
  if (request) d.map_remote(*m, flow, applied);
  if (!head) d.modify_body(*m, flow, applied);
  d.modify_headers(*m, flow, applied);
  if (file) {
    auto outcome = file->apply_http(env, head, flow, reply, applied);
    if (outcome == pipeline::Outcome::respond && reply) d.on_answer(env, *reply);
    if (outcome != pipeline::Outcome::next) return outcome;
  }
  if (request && need_request) d.remember(env, need_body);
  if (applied.empty()) return pipeline::Outcome::next;
  settle_http(origin, env);
  name_change(env, applied);
  return pipeline::Outcome::next;
}

core::Result<size_t> TransformStep::reload() {
  Impl& d = *impl_;
  if (d.rules_path.empty()) return core::make_error("no --rules file");
  auto file = RuleFile::load(d.rules_path);
  if (!file) return file.error();
  size_t n = (*file)->size();
  std::lock_guard lock(d.file_mu);
  d.file = std::move(*file);
  return n;
}

}  // namespace sluice::step
