#include "filter/scan.hpp"

#include <cstdint>
#include <string>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "core/base64.hpp"

namespace sluice::filter {

namespace {

using envelope::Envelope;
using envelope::HttpMessage;

// The offset of the first '"' or '\\' in p[0, n), or npos: where a JSON string ends or escapes.
size_t quote_or_backslash(const char* p, size_t n) {
  size_t i = 0;
#ifdef __SSE2__
  const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
  for (; i + 16 <= n; i += 16) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    int m = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)));
    if (m) return i + static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(m)));
  }
#endif
  for (; i < n; ++i)
    if (p[i] == '"' || p[i] == '\\') return i;
  return std::string_view::npos;
}

struct Scanner {
  core::ByteView s;
  size_t pos = 0;
  bool bad = false;

  void ws() {
    while (pos < s.size() && (s[pos] == ' ' || s[pos] == '\t' || s[pos] == '\r' || s[pos] == '\n')) ++pos;
  }
  bool eat(char c) {
    ws();
    if (pos < s.size() && s[pos] == c) {
      ++pos;
      return true;
    }
    return false;
  }
  bool fail() {
    bad = true;
    return false;
  }
  // A member met for the first time in its object (bit `bit` of `seen`); a repeated one fails: the
  // full decoder decides which one counts.
  bool once(uint32_t& seen, int bit) {
    if (seen >> bit & 1u) return fail();
    seen |= 1u << bit;
    return true;
  }

  static void utf8(uint32_t cp, std::string& out) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xc0 | cp >> 6));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xe0 | cp >> 12));
      out.push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
      out.push_back(static_cast<char>(0xf0 | cp >> 18));
      out.push_back(static_cast<char>(0x80 | (cp >> 12 & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
  }
  bool hex4(uint32_t& v) {
    if (pos + 4 > s.size()) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = s[pos++];
      v = v << 4 | static_cast<uint32_t>(c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                                                          : c >= 'A' && c <= 'F' ? c - 'A' + 10 : 99);
      if (v > 0xffff) return false;
    }
    return true;
  }

  // A string; unescaped into *out when given, else skipped.
  bool str(std::string* out) {
    ws();
    if (pos >= s.size() || s[pos] != '"') return fail();
    ++pos;
    if (out) out->clear();
    while (true) {
      size_t n = quote_or_backslash(s.data() + pos, s.size() - pos);
      if (n == std::string_view::npos) return fail();
      if (out) out->append(s.data() + pos, n);
      pos += n + 1;
      if (s[pos - 1] == '"') return true;
      if (pos >= s.size()) return fail();
      char e = s[pos++];
      if (!out) {
        if (e == 'u') {
          if (pos + 4 > s.size()) return fail();
          pos += 4;
        }
        continue;
      }
      switch (e) {
        case '"': out->push_back('"'); break;
        case '\\': out->push_back('\\'); break;
        case '/': out->push_back('/'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'u': {
          uint32_t cp;
          if (!hex4(cp)) return fail();
          if (cp >= 0xd800 && cp < 0xdc00 && pos + 6 <= s.size() && s[pos] == '\\' && s[pos + 1] == 'u') {
            pos += 2;
            uint32_t lo;
            if (!hex4(lo) || lo < 0xdc00 || lo > 0xdfff) return fail();
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          }
          utf8(cp, *out);
          break;
        }
        default: return fail();
      }
    }
  }

  bool skip() {
    ws();
    if (pos >= s.size()) return fail();
    char c = s[pos];
    if (c == '"') return str(nullptr);
    if (c == '{' || c == '[') {
      char close = c == '{' ? '}' : ']';
      ++pos;
      if (eat(close)) return true;
      do {
        if (c == '{') {
          if (!str(nullptr) || !eat(':')) return fail();
        }
        if (!skip()) return false;
      } while (eat(','));
      return eat(close) || fail();
    }
    while (pos < s.size() && s[pos] != ',' && s[pos] != '}' && s[pos] != ']' && s[pos] != ' ') ++pos;
    return true;
  }

  bool number(int64_t& v) {
    ws();
    size_t start = pos;
    bool neg = pos < s.size() && s[pos] == '-';
    if (neg) ++pos;
    int64_t n = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
      if (n > (INT64_MAX - 9) / 10) return fail();  // the full decoder reads numbers this large
      n = n * 10 + (s[pos++] - '0');
    }
    if (pos == start + (neg ? 1 : 0)) return fail();
    if (pos < s.size() && (s[pos] == '.' || s[pos] == 'e' || s[pos] == 'E')) return fail();
    v = neg ? -n : n;
    return true;
  }

  bool boolean(bool& v) {
    ws();
    if (s.substr(pos, 4) == "true") {
      pos += 4;
      v = true;
      return true;
    }
    if (s.substr(pos, 5) == "false") {
      pos += 5;
      v = false;
      return true;
    }
    return fail();
  }

  // A byte string: a JSON string, or {"base64": "..."}.
  bool bytes(std::string& out) {
    ws();
    if (pos < s.size() && s[pos] == '"') return str(&out);
    if (!eat('{')) return fail();
    std::string key, b64;
    bool got = false;
    if (!eat('}')) {
      do {
        if (!str(&key) || !eat(':')) return fail();
        if (key == "base64") {
          if (!str(&b64)) return false;
          got = true;
        } else if (!skip()) {
          return false;
        }
      } while (eat(','));
      if (!eat('}')) return fail();
    }
    auto d = core::base64_decode(b64);
    if (!got || !d) return fail();
    out = std::move(*d);
    return true;
  }

  // A string as a view of the line (of `scratch` when it has escapes): member names, short values.
  bool view(std::string_view& out, std::string& scratch) {
    ws();
    if (pos >= s.size() || s[pos] != '"') return fail();
    const char* start = s.data() + pos + 1;
    size_t n = quote_or_backslash(start, s.size() - pos - 1);
    if (n != std::string_view::npos && start[n] == '"') {
      out = std::string_view(start, n);
      pos += n + 2;
      return true;
    }
    if (!str(&scratch)) return false;
    out = scratch;
    return true;
  }

  // Iterates an object's members: fn(key) must consume the value.
  template <class F>
  bool object(F&& fn) {
    if (!eat('{')) return fail();
    if (eat('}')) return true;
    std::string scratch;
    std::string_view k;
    do {
      if (!view(k, scratch) || !eat(':')) return fail();
      if (!fn(k)) return false;
    } while (eat(','));
    return eat('}') || fail();
  }
  template <class F>
  bool array(F&& fn) {
    if (!eat('[')) return fail();
    if (eat(']')) return true;
    do {
      if (!fn()) return false;
    } while (eat(','));
    return eat(']') || fail();
  }

  // Into `h`, reusing the strings it already holds.
  bool headers(envelope::Headers& h) {
    size_t n = 0;
    bool ok = array([&] {
      if (n == h.size()) h.emplace_back();
      auto& field = h[n++];
      return eat('[') && str(&field.name) && eat(',') && bytes(field.value) && (eat(']') || fail());
    });
    h.resize(ok ? n : 0);
    return ok;
  }
};

// Reads `m`'s members into it, reusing its strings; headers and bodies only when `needs` asks. A body
// written once (`body_at`) leaves its offset in raw in `at`.
bool http_message(Scanner& sc, uint32_t needs, HttpMessage& m, int64_t& at) {
  m.kind = HttpMessage::Kind::request;
  m.method.clear();
  m.scheme.clear();
  m.authority.clear();
  m.path.clear();
  m.status = 0;
  m.reason.clear();
  m.version.clear();
  m.headers.clear();
  m.trailers.clear();
  m.body.clear();
  uint32_t seen = 0;
  auto once = [&](int bit) { return sc.once(seen, bit); };
  return sc.object([&](std::string_view k) {
    if (k == "kind") {
      std::string_view kind;
      std::string scratch;
      if (!once(0) || !sc.view(kind, scratch)) return false;
      m.kind = kind == "response" ? HttpMessage::Kind::response : HttpMessage::Kind::request;
      return true;
    }
    if (k == "method") return once(1) && sc.bytes(m.method);
    if (k == "scheme") return once(2) && sc.bytes(m.scheme);
    if (k == "authority") return once(3) && sc.bytes(m.authority);
    if (k == "path") return once(4) && sc.bytes(m.path);
    if (k == "status") {
      int64_t v;
      if (!once(5) || !sc.number(v)) return false;
      m.status = static_cast<int>(v);
      return true;
    }
    if (k == "reason") return once(6) && sc.bytes(m.reason);
    if (k == "version") return once(7) && sc.str(&m.version);
    if (k == "headers") return once(8) && (needs & reads_headers ? sc.headers(m.headers) : sc.skip());
    if (k == "trailers") return once(9) && (needs & reads_headers ? sc.headers(m.trailers) : sc.skip());
    if (k == "body") return once(10) && (needs & reads_bodies ? sc.bytes(m.body) : sc.skip());
    if (k == "body_at") return once(11) && sc.number(at) && at >= 0;
    return sc.skip();
  });
}

// `at`: the offset in raw of a body or payload written once, -1 when none.
bool message(Scanner& sc, uint32_t needs, Envelope& e, int64_t& at) {
  // The kind decides the shape: read the members into the matching alternative.
  size_t start = sc.pos;
  std::string_view kind, first;
  std::string scratch;
  // Writers put the kind first; otherwise it is looked for.
  bool peeked = sc.eat('{') && sc.view(first, scratch) && first == "kind" && sc.eat(':') && sc.view(kind, scratch);
  sc.pos = start;
  sc.bad = false;
  uint32_t seen = 0;
  if (!peeked && !sc.object([&](std::string_view k) {
        return k == "kind" ? sc.once(seen, 0) && sc.view(kind, scratch) : sc.skip();
      }))
    return false;
  sc.pos = start;
  seen = 0;
  if (kind == "request" || kind == "response") {
    auto* m = std::get_if<HttpMessage>(&e.message);
    if (!m) m = &e.message.emplace<HttpMessage>();
    return http_message(sc, needs, *m, at);
  }
  bool bodies = needs & reads_bodies;
  if (kind == "frame") {
    auto& m = e.message.emplace<envelope::WsMessage>();
    return sc.object([&](std::string_view k) {
      if (k == "opcode") {
        int64_t v;
        return sc.once(seen, 0) && sc.number(v) && (m.opcode = static_cast<int>(v), true);
      }
      if (k == "payload" && bodies) return sc.once(seen, 1) && sc.bytes(m.payload);
      if (k == "payload_at") return sc.once(seen, 2) && sc.number(at) && at >= 0;
      return sc.skip();
    });
  }
  if (kind == "start") {
    auto& m = e.message.emplace<envelope::GrpcStartMessage>();
    return sc.object([&](std::string_view k) {
      if (k == "service") return sc.once(seen, 0) && sc.str(&m.service);
      if (k == "method") return sc.once(seen, 1) && sc.str(&m.method);
      return sc.skip();
    });
  }
  if (kind == "data") {
    auto& m = e.message.emplace<envelope::GrpcDataMessage>();
    return sc.object([&](std::string_view k) {
      if (k == "payload_at") return sc.once(seen, 1) && sc.number(at) && at >= 0;
      return k == "payload" && bodies ? sc.once(seen, 0) && sc.bytes(m.payload) : sc.skip();
    });
  }
  if (kind == "event") {
    auto& m = e.message.emplace<envelope::SseMessage>();
    return sc.object([&](std::string_view k) {
      return k == "data" && bodies ? sc.once(seen, 0) && sc.bytes(m.data) : sc.skip();
    });
  }
  // chunk, end (gRPC), handshake and unknown kinds: nothing a filter reads beyond the protocol.
  e.message.emplace<envelope::RawMessage>();
  return sc.skip();
}

// The top-level members a record may have once (a repeated one: the full decoder decides which counts).
enum Member : uint32_t {
  m_type = 1, m_stream = 2, m_flow = 4, m_seq = 8, m_direction = 16, m_protocol = 32, m_overlay = 64,
  m_variant = 128, m_raw = 256, m_message = 512, m_context = 1024, m_tags = 2048, m_anomalies = 4096,
  m_scope = 8192, m_code = 16384,
};

enum class Type : uint8_t { envelope, error, end, other };

// One line into `e` (reused: every member the scanner reads is reset first) and, for `end` and `error`
// records, their scope and code. False when the line is not one this scanner reads.
bool scan_line(core::ByteView line, uint32_t needs, Envelope& e, Type& type, std::string& scope, std::string& code) {
  Scanner sc{line};
  e.stream_id.clear();
  e.flow_id.clear();
  e.seq = 0;
  e.direction = envelope::Direction::send;
  e.protocol = envelope::Protocol::raw;
  e.protocol_name.clear();
  e.overlay.clear();
  e.raw.clear();
  e.context.conn_id.clear();
  e.context.client.clear();
  e.context.server.clear();
  e.modified = false;
  e.anomalies.clear();
  e.tags.clear();
  std::string_view protocol;
  std::string protocol_scratch, scratch;
  size_t raw_at = std::string_view::npos;
  int64_t body_at = -1;  // a body or payload written once: its offset in raw
  uint32_t seen = 0;
  bool has_message = false;
  type = Type::other;
  auto once = [&](Member m) {
    if (seen & m) return false;
    seen |= m;
    return true;
  };
  bool ok = sc.object([&](std::string_view k) {
    if (k == "type") {
      std::string_view t;
      if (!once(m_type) || !sc.view(t, scratch)) return sc.fail();
      type = t == "envelope" ? Type::envelope : t == "error" ? Type::error : t == "end" ? Type::end : Type::other;
      return true;
    }
    if (k == "stream_id") return once(m_stream) ? sc.str(&e.stream_id) : sc.fail();
    if (k == "flow_id") return once(m_flow) ? sc.str(&e.flow_id) : sc.fail();
    if (k == "seq") {
      int64_t v;
      return once(m_seq) && sc.number(v) && (e.seq = static_cast<uint64_t>(v), true);
    }
    if (k == "direction") {
      std::string_view d;
      return once(m_direction) && sc.view(d, scratch) &&
             (e.direction = d == "receive" ? envelope::Direction::receive : envelope::Direction::send, true);
    }
    if (k == "protocol") return once(m_protocol) ? sc.view(protocol, protocol_scratch) : sc.fail();
    if (k == "overlay") return once(m_overlay) ? sc.str(&e.overlay) : sc.fail();
    if (k == "variant") {
      std::string_view v;
      return once(m_variant) && sc.view(v, scratch) && (e.modified = v == "modified", true);
    }
    if (k == "raw") {  // decoded only for raw chunks, once the protocol is known
      if (!once(m_raw)) return sc.fail();
      sc.ws();
      raw_at = sc.pos;
      return sc.skip();
    }
    if (k == "message") return once(m_message) && (has_message = true, message(sc, needs, e, body_at));
    if (k == "context") {
      if (!once(m_context)) return sc.fail();
      if (!(needs & reads_context)) return sc.skip();
      uint32_t members = 0;
      return sc.object([&](std::string_view c) {
        if (c == "client") return sc.once(members, 0) && sc.str(&e.context.client);
        if (c == "server") return sc.once(members, 1) && sc.str(&e.context.server);
        if (c == "conn_id") return sc.once(members, 2) && sc.str(&e.context.conn_id);
        return sc.skip();
      });
    }
    if (k == "tags")
      return once(m_tags) && sc.object([&](std::string_view t) {
               std::string v;
               return sc.str(&v) && (e.tags.emplace_back(std::string(t), std::move(v)), true);
             });
    if (k == "anomalies")
      return once(m_anomalies) && sc.array([&] {
               envelope::Anomaly a;
               return sc.object([&](std::string_view f) {
                        if (f == "name") return sc.str(&a.name);
                        if (f == "detail") return sc.str(&a.detail);
                        return sc.skip();
                      }) &&
                      (e.anomalies.push_back(std::move(a)), true);
             });
    if (k == "scope") return once(m_scope) ? sc.str(&scope) : sc.fail();
    if (k == "code") return once(m_code) ? sc.str(&code) : sc.fail();
    return sc.skip();
  });
  if (!ok || sc.bad) return false;
  sc.ws();
  if (sc.pos != line.size()) return false;  // text after the object: the full decoder's call
  if (type != Type::envelope) return true;
  if (!has_message) e.message.emplace<envelope::RawMessage>();
  e.protocol = envelope::parse_protocol(protocol);
  if (e.protocol == envelope::Protocol::other) e.protocol_name = protocol;
  bool held = body_at >= 0 && (needs & reads_bodies);
  if ((e.protocol == envelope::Protocol::raw || held) && raw_at != std::string_view::npos && (needs & reads_bodies)) {
    Scanner r{line, raw_at};
    std::string b64;
    if (!r.str(&b64)) return false;
    auto d = core::base64_decode(b64);
    if (!d) return false;
    e.raw = std::move(*d);
  }
  if (held) {
    // The body (or payload) is the end of raw; a copy written too counts, as in the full decoder.
    if (static_cast<uint64_t>(body_at) > e.raw.size()) return false;
    core::ByteView tail = core::ByteView(e.raw).substr(static_cast<size_t>(body_at));
    if (auto* h = std::get_if<HttpMessage>(&e.message)) {
      if (h->body.empty()) h->body.assign(tail);
    } else if (auto* w = std::get_if<envelope::WsMessage>(&e.message)) {
      if (w->payload.empty()) w->payload.assign(tail);
    } else if (auto* g = std::get_if<envelope::GrpcDataMessage>(&e.message)) {
      if (g->payload.empty()) g->payload.assign(tail);
    }
  }
  return true;
}

}  // namespace

bool scan_envelope(core::ByteView line, uint32_t needs, envelope::Envelope& into) {
  Type type;
  std::string scope, code;
  return scan_line(line, needs, into, type, scope, code) && type == Type::envelope;
}

core::Result<envelope::Record> scan_jsonl(core::ByteView line) {
  Envelope e;
  Type type;
  std::string scope, code;
  if (!scan_line(line, reads_all, e, type, scope, code)) return core::make_error("not a record this scanner reads");
  switch (type) {
    case Type::envelope: return envelope::Record{std::move(e)};
    case Type::error: {
      envelope::ErrorRecord err;
      err.stream_id = std::move(e.stream_id);
      err.flow_id = std::move(e.flow_id);
      err.code = std::move(code);
      return envelope::Record{std::move(err)};
    }
    case Type::end: {
      envelope::EndRecord end;
      end.stream_id = std::move(e.stream_id);
      end.flow_id = std::move(e.flow_id);
      end.scope = std::move(scope);
      return envelope::Record{std::move(end)};
    }
    case Type::other: break;
  }
  return core::make_error("decoded the full way");  // the header and unknown kinds
}

}  // namespace sluice::filter
