#include "filter/scan.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/base64.hpp"
#include "core/time.hpp"

namespace sluice::filter {

namespace {

using envelope::Envelope;
using envelope::HttpMessage;

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
      if (pos >= s.size()) return fail();
      const char* start = s.data() + pos;
      const void* q = std::memchr(start, '"', s.size() - pos);
      if (!q) return fail();
      const void* b = std::memchr(start, '\\', static_cast<const char*>(q) - start);
      if (!b) {  // no escape before the end
        size_t n = static_cast<const char*>(q) - start;
        if (out) out->append(start, n);
        pos += n + 1;
        return true;
      }
      size_t n = static_cast<const char*>(b) - start;
      if (out) out->append(start, n);
      pos += n + 1;
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

  // Iterates an object's members: fn(key) must consume the value.
  template <class F>
  bool object(F&& fn) {
    if (!eat('{')) return fail();
    if (eat('}')) return true;
    std::string key;
    do {
      if (!str(&key) || !eat(':')) return fail();
      if (!fn(key)) return false;
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

  bool headers(envelope::Headers& h) {
    return array([&] {
      std::string name, value;
      return eat('[') && str(&name) && eat(',') && bytes(value) && (eat(']') || fail()) &&
             (h.push_back({std::move(name), std::move(value)}), true);
    });
  }
};

bool http_message(Scanner& sc, HttpMessage& m) {
  return sc.object([&](const std::string& k) {
    if (k == "kind") {
      std::string kind;
      if (!sc.str(&kind)) return false;
      m.kind = kind == "response" ? HttpMessage::Kind::response : HttpMessage::Kind::request;
      return true;
    }
    if (k == "method") return sc.bytes(m.method);
    if (k == "scheme") return sc.bytes(m.scheme);
    if (k == "authority") return sc.bytes(m.authority);
    if (k == "path") return sc.bytes(m.path);
    if (k == "status") {
      int64_t v;
      if (!sc.number(v)) return false;
      m.status = static_cast<int>(v);
      return true;
    }
    if (k == "reason") return sc.bytes(m.reason);
    if (k == "version") return sc.str(&m.version);
    if (k == "headers") return sc.headers(m.headers);
    if (k == "trailers") return sc.headers(m.trailers);
    if (k == "body") return sc.bytes(m.body);
    return sc.skip();
  });
}

bool message(Scanner& sc, Envelope& e) {
  // The kind decides the shape: read the members into the matching alternative.
  size_t start = sc.pos;
  std::string kind;
  bool ok = sc.object([&](const std::string& k) { return k == "kind" ? sc.str(&kind) : sc.skip(); });
  if (!ok) return false;
  sc.pos = start;
  if (kind == "request" || kind == "response") {
    HttpMessage m;
    if (!http_message(sc, m)) return false;
    e.message = std::move(m);
    return true;
  }
  if (kind == "frame") {
    envelope::WsMessage m;
    if (!sc.object([&](const std::string& k) {
          if (k == "opcode") {
            int64_t v;
            return sc.number(v) && (m.opcode = static_cast<int>(v), true);
          }
          if (k == "payload") return sc.bytes(m.payload);
          return sc.skip();
        }))
      return false;
    e.message = std::move(m);
    return true;
  }
  if (kind == "start") {
    envelope::GrpcStartMessage m;
    if (!sc.object([&](const std::string& k) {
          if (k == "service") return sc.str(&m.service);
          if (k == "method") return sc.str(&m.method);
          return sc.skip();
        }))
      return false;
    e.message = std::move(m);
    return true;
  }
  if (kind == "data") {
    envelope::GrpcDataMessage m;
    if (!sc.object([&](const std::string& k) { return k == "payload" ? sc.bytes(m.payload) : sc.skip(); })) return false;
    e.message = std::move(m);
    return true;
  }
  if (kind == "event") {
    envelope::SseMessage m;
    if (!sc.object([&](const std::string& k) { return k == "data" ? sc.bytes(m.data) : sc.skip(); })) return false;
    e.message = std::move(m);
    return true;
  }
  if (kind == "chunk") {
    e.message = envelope::RawMessage{};
    return sc.skip();
  }
  // end (gRPC), handshake and unknown kinds: nothing a filter reads beyond the protocol.
  e.message = envelope::RawMessage{};
  return sc.skip();
}

}  // namespace

core::Result<envelope::Record> scan_jsonl(core::ByteView line) {
  Scanner sc{line};
  std::string type;
  Envelope e;
  envelope::ErrorRecord err;
  envelope::EndRecord end;
  size_t raw_at = std::string_view::npos;
  std::string protocol;
  std::vector<std::string> seen;  // a repeated member: the full decoder decides which one counts
  bool ok = sc.object([&](const std::string& k) {
    if (std::find(seen.begin(), seen.end(), k) != seen.end()) return sc.fail();
    seen.push_back(k);
    if (k == "type") return sc.str(&type);
    if (k == "stream_id") return sc.str(&e.stream_id) && (err.stream_id = end.stream_id = e.stream_id, true);
    if (k == "flow_id") return sc.str(&e.flow_id) && (err.flow_id = end.flow_id = e.flow_id, true);
    if (k == "seq") {
      int64_t v;
      return sc.number(v) && (e.seq = static_cast<uint64_t>(v), true);
    }
    if (k == "direction") {
      std::string d;
      return sc.str(&d) && (e.direction = d == "receive" ? envelope::Direction::receive : envelope::Direction::send, true);
    }
    if (k == "protocol") return sc.str(&protocol);
    if (k == "overlay") return sc.str(&e.overlay);
    if (k == "variant") {
      std::string v;
      return sc.str(&v) && (e.modified = v == "modified", true);
    }
    if (k == "raw") {  // decoded only for raw chunks, once the protocol is known
      sc.ws();
      raw_at = sc.pos;
      return sc.skip();
    }
    if (k == "message") return message(sc, e);
    if (k == "context")
      return sc.object([&](const std::string& c) {
        if (c == "client") return sc.str(&e.context.client);
        if (c == "server") return sc.str(&e.context.server);
        if (c == "conn_id") return sc.str(&e.context.conn_id);
        return sc.skip();
      });
    if (k == "tags")
      return sc.object([&](const std::string& t) {
        std::string v;
        return sc.str(&v) && (e.tags.emplace_back(t, std::move(v)), true);
      });
    if (k == "anomalies")
      return sc.array([&] {
        envelope::Anomaly a;
        return sc.object([&](const std::string& f) {
                 if (f == "name") return sc.str(&a.name);
                 if (f == "detail") return sc.str(&a.detail);
                 return sc.skip();
               }) &&
               (e.anomalies.push_back(std::move(a)), true);
      });
    if (k == "scope") return sc.str(&end.scope);
    if (k == "code") return sc.str(&err.code);
    return sc.skip();
  });
  if (!ok || sc.bad) return core::make_error("not a record this scanner reads");
  if (type == "envelope") {
    e.protocol = envelope::parse_protocol(protocol);
    if (e.protocol == envelope::Protocol::other) e.protocol_name = protocol;
    if (e.protocol == envelope::Protocol::raw && raw_at != std::string_view::npos) {
      Scanner r{line, raw_at};
      std::string b64;
      if (!r.str(&b64)) return core::make_error("bad raw");
      auto d = core::base64_decode(b64);
      if (!d) return core::make_error("bad raw");
      e.raw = std::move(*d);
    }
    return envelope::Record{std::move(e)};
  }
  if (type == "error") return envelope::Record{std::move(err)};
  if (type == "end") return envelope::Record{std::move(end)};
  return core::make_error("decoded the full way");  // the header and unknown kinds
}

}  // namespace sluice::filter
