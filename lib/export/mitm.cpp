#include "export/mitm.hpp"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <random>

#include "core/ascii.hpp"
#include "core/time.hpp"

namespace sluice::exporter {

using envelope::Direction;
using envelope::HttpMessage;
using Kind = TNet::Kind;

// ---- tnetstrings ---------------------------------------------------------------------------------

const TNet* TNet::find(std::string_view key) const {
  if (kind != Kind::dict) return nullptr;
  for (size_t i = 0; i < keys.size(); ++i)
    if (keys[i] == key) return &items[i];
  return nullptr;
}

std::string TNet::str() const {
  if (kind == Kind::bytes || kind == Kind::text) return s;
  if (kind == Kind::integer) return std::to_string(i);
  return {};
}

double TNet::number() const {
  if (kind == Kind::integer) return static_cast<double>(i);
  if (kind == Kind::floating) return d;
  return 0;
}

namespace {

TNet of(Kind kind, std::string s = {}) {
  TNet v;
  v.kind = kind;
  v.s = std::move(s);
  return v;
}

constexpr int kMaxDepth = 64;

core::Result<TNet> parse_at(std::string_view data, size_t& used, int depth) {
  if (depth > kMaxDepth) return core::make_error("nested deeper than " + std::to_string(kMaxDepth));
  size_t colon = data.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon > 12) {
    if (data.size() < 13 && colon == std::string_view::npos) return core::make_error("cut short");
    return core::make_error("no length");
  }
  size_t n = 0;
  auto [end, ec] = std::from_chars(data.data(), data.data() + colon, n);
  if (ec != std::errc() || end != data.data() + colon) return core::make_error("a bad length");
  if (data.size() - colon - 1 < n + 1) return core::make_error("cut short");
  std::string_view body = data.substr(colon + 1, n);
  char type = data[colon + 1 + n];
  used = colon + 2 + n;
  TNet v;
  switch (type) {
    case ',':
      v.kind = Kind::bytes;
      v.s = std::string(body);
      return v;
    case ';':
      v.kind = Kind::text;
      v.s = std::string(body);
      return v;
    case '#': {
      v.kind = Kind::integer;
      auto [p, e] = std::from_chars(body.data(), body.data() + body.size(), v.i);
      if (e != std::errc() || p != body.data() + body.size()) return core::make_error("a bad integer");
      return v;
    }
    case '^': {
      v.kind = Kind::floating;
      std::string text(body);
      char* stop = nullptr;
      v.d = std::strtod(text.c_str(), &stop);
      if (text.empty() || stop != text.c_str() + text.size()) return core::make_error("a bad float");
      return v;
    }
    case '!':
      if (body != "true" && body != "false") return core::make_error("a bad boolean");
      v.kind = Kind::boolean;
      v.b = body == "true";
      return v;
    case '~':
      if (!body.empty()) return core::make_error("a null with data");
      return v;
    case ']':
    case '}': {
      v.kind = type == ']' ? Kind::list : Kind::dict;
      // How many elements, from their lengths alone (no element is made twice, none moved on growth).
      size_t count = 0;
      for (size_t at = 0; at < body.size(); ++count) {
        size_t colon = body.find(':', at);
        size_t len = 0;
        if (colon == std::string_view::npos ||
            std::from_chars(body.data() + at, body.data() + colon, len).ec != std::errc() || len > body.size())
          break;
        at = colon + 2 + len;
      }
      v.items.reserve(v.kind == Kind::dict ? count / 2 : count);
      if (v.kind == Kind::dict) v.keys.reserve(count / 2);
      size_t pos = 0;
      while (pos < body.size()) {
        size_t took = 0;
        auto item = parse_at(body.substr(pos), took, depth + 1);
        if (!item) return item.error().message == "cut short" ? core::make_error("a bad container") : item;
        pos += took;
        if (v.kind == Kind::list) {
          v.items.push_back(std::move(*item));
          continue;
        }
        if (item->kind != Kind::bytes && item->kind != Kind::text) return core::make_error("a dict key that is not a string");
        if (pos >= body.size()) return core::make_error("a dict key without a value");
        auto value = parse_at(body.substr(pos), took, depth + 1);
        if (!value) return value.error().message == "cut short" ? core::make_error("a bad container") : value;
        pos += took;
        v.keys.push_back(std::move(item->s));
        v.items.push_back(std::move(*value));
      }
      return v;
    }
    default:
      return core::make_error(std::string("an unknown type '") + type + "'");
  }
}

void dump_to(const TNet& v, std::string& out) {
  std::string body;
  char type = '~';
  switch (v.kind) {
    case Kind::bytes: body = v.s, type = ','; break;
    case Kind::text: body = v.s, type = ';'; break;
    case Kind::integer: body = std::to_string(v.i), type = '#'; break;
    case Kind::floating: {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.17g", v.d);
      body = buf;
      if (body.find_first_of(".eEn") == std::string::npos) body += ".0";  // Python's float() reads it either way
      type = '^';
      break;
    }
    case Kind::boolean: body = v.b ? "true" : "false", type = '!'; break;
    case Kind::null: break;
    case Kind::list:
      for (const auto& x : v.items) dump_to(x, body);
      type = ']';
      break;
    case Kind::dict:
      for (size_t i = 0; i < v.items.size(); ++i) {
        dump_to(of(Kind::text, v.keys[i]), body);
        dump_to(v.items[i], body);
      }
      type = '}';
      break;
  }
  out += std::to_string(body.size());
  out += ':';
  out += body;
  out += type;
}

}  // namespace

core::Result<TNet> tnet_parse(std::string_view data, size_t& used) { return parse_at(data, used, 0); }

std::string tnet_dump(const TNet& v) {
  std::string out;
  dump_to(v, out);
  return out;
}

bool looks_like_mitm(std::string_view data) {
  size_t colon = data.find(':');
  if (colon == 0 || colon == std::string_view::npos || colon > 12) return false;
  for (size_t i = 0; i < colon; ++i)
    if (data[i] < '0' || data[i] > '9') return false;
  // The flow is a dict: its first member's key follows (a tnetstring length), or it is empty ("0:}").
  return colon + 1 < data.size() && (std::isdigit(static_cast<unsigned char>(data[colon + 1])) || data[colon + 1] == '}');
}

// ---- import --------------------------------------------------------------------------------------

namespace {

std::string member(const TNet* o, std::string_view key) {
  const TNet* v = o ? o->find(key) : nullptr;
  return v ? v->str() : std::string();
}

core::Timestamp time_of(const TNet* o, std::string_view key) {
  const TNet* v = o ? o->find(key) : nullptr;
  return core::Timestamp{v ? static_cast<int64_t>(std::llround(v->number() * 1e9)) : 0};
}

// An address: (host, port) in every version since 2.0; {"address": (host, port)} before.
std::string address(const TNet* conn, std::string_view key) {
  const TNet* a = conn ? conn->find(key) : nullptr;
  if (a && a->kind == Kind::dict) a = a->find("address");
  if (!a || a->kind != Kind::list || a->items.size() < 2) return {};
  std::string host = a->items[0].str();
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return host + ":" + a->items[1].str();
}

envelope::Headers headers_of(const TNet* o, std::string_view key) {
  envelope::Headers out;
  const TNet* h = o ? o->find(key) : nullptr;
  if (!h || h->kind != Kind::list) return out;
  for (const auto& f : h->items)
    if (f.kind == Kind::list && f.items.size() == 2) out.push_back({f.items[0].str(), f.items[1].str()});
  return out;
}

// A message's body: "content" (since 0.16), "body" before.
std::string content_of(const TNet* m) {
  const TNet* c = m->find("content");
  if (!c) c = m->find("body");
  return c ? c->str() : std::string();
}

// The HTTP version: "HTTP/1.1" (since 0.14), a (1, 1) tuple ("httpversion") before.
std::string http_version(const TNet* m) {
  std::string v = member(m, "http_version");
  if (v.empty())
    if (const TNet* t = m->find("httpversion"); t && t->kind == Kind::list && t->items.size() == 2)
      v = "HTTP/" + t->items[0].str() + "." + t->items[1].str();
  if (v == "HTTP/2.0") v = "HTTP/2";
  return v.empty() ? "HTTP/1.1" : v;
}

std::string head_bytes(const HttpMessage& m) {
  std::string s = m.kind == HttpMessage::Kind::request
                      ? m.method + " " + m.path + " " + (m.version == "HTTP/2" ? "HTTP/1.1" : m.version) + "\r\n"
                      : "HTTP/1.1 " + std::to_string(m.status) + " " + m.reason + "\r\n";
  for (const auto& [k, v] : m.headers) s += k + ": " + v + "\r\n";
  return s + "\r\n";
}

struct FlowReader {
  FlowReader(const std::function<void(envelope::Record&&)>& emit, size_t before, const TNet& f)
      : emit_record(emit), n(before), flow(f) {}

  const std::function<void(envelope::Record&&)>& emit_record;
  size_t n;  // flows before it
  const TNet& flow;
  std::string stream, id;
  envelope::Context context;
  envelope::Tags tags;
  uint64_t seq = 0;

  envelope::Envelope envelope(const std::string& on, Direction d, core::Timestamp t) {
    envelope::Envelope e;
    e.stream_id = on;
    e.flow_id = id;
    e.seq = seq++;
    e.direction = d;
    e.time = t;
    e.context = context;
    e.tags = tags;
    return e;
  }

  void read() {
    const TNet* client = flow.find("client_conn");
    const TNet* server = flow.find("server_conn");
    id = member(&flow, "id");
    if (id.empty()) id = "mitm-" + std::to_string(n);
    stream = member(client, "id");
    if (stream.empty()) stream = id;
    context.conn_id = stream;
    context.client = address(client, "address");
    context.server = address(server, "address");
    context.opened = time_of(client, "timestamp_start");
    bool tls = false;
    for (const char* key : {"tls_established", "ssl_established"})
      if (const TNet* t = client ? client->find(key) : nullptr; t && t->kind == Kind::boolean) tls = tls || t->b;
    if (tls) {
      envelope::TlsInfo info;
      info.version = member(client, "tls_version");
      info.cipher = member(client, "cipher_name");
      info.sni = member(client, "sni");
      info.alpn = member(client, "alpn");
      if (info.alpn.empty()) info.alpn = member(client, "alpn_proto_negotiated");
      context.tls = info;
    }
    tags.emplace_back("imported", "mitmproxy");
    if (std::string c = member(&flow, "comment"); !c.empty()) tags.emplace_back("comment", c);
    if (const TNet* m = flow.find("marked")) {  // ":default:" or an emoji name since 13; a boolean before
      if (m->kind == Kind::boolean && m->b) tags.emplace_back("marked", ":default:");
      else if (!m->str().empty()) tags.emplace_back("marked", m->str());
    }
    std::string type = member(&flow, "type");
    if (type == "http" || type.empty())
      http();
    else if (type == "tcp" || type == "udp")
      chunks(type);
    if (const TNet* err = flow.find("error"); err && err->kind == Kind::dict) {
      envelope::ErrorRecord e;
      e.stream_id = stream;
      e.flow_id = id;
      e.time = time_of(err, "timestamp");
      e.code = "mitmproxy_error";
      e.message = member(err, "msg");
      emit_record(std::move(e));
    }
  }

  // A request or response: what they share from `src` (version, headers, trailers, body), its raw
  // made from it, recorded.
  void emit(HttpMessage&& m, const TNet* src, Direction d) {
    m.version = http_version(src);
    m.headers = headers_of(src, "headers");
    m.trailers = headers_of(src, "trailers");
    m.body = content_of(src);
    envelope::Envelope e = envelope(stream, d, time_of(src, "timestamp_start"));
    e.protocol = envelope::Protocol::http;
    e.raw = head_bytes(m) + m.body;
    e.message = std::move(m);
    emit_record(std::move(e));
  }

  void http() {
    const TNet* req = flow.find("request");
    if (!req || req->kind != Kind::dict) return;
    HttpMessage q;
    q.kind = HttpMessage::Kind::request;
    q.method = member(req, "method");
    q.scheme = member(req, "scheme");
    q.authority = member(req, "authority");
    std::string host = member(req, "host");
    std::string port = member(req, "port");
    if (q.authority.empty()) {
      bool default_port = (q.scheme == "https" && port == "443") || (q.scheme == "http" && port == "80");
      q.authority = host.find(':') != std::string::npos ? "[" + host + "]" : host;
      if (!port.empty() && !default_port) q.authority += ":" + port;
    }
    q.path = member(req, "path");
    if (context.server.empty() && !host.empty()) context.server = host + ":" + port;
    emit(std::move(q), req, Direction::send);
    const TNet* resp = flow.find("response");
    if (resp && resp->kind == Kind::dict) {
      HttpMessage s;
      s.kind = HttpMessage::Kind::response;
      const TNet* code = resp->find("status_code");
      if (!code) code = resp->find("code");
      s.status = code ? static_cast<int>(code->number()) : 0;
      s.reason = member(resp, "reason");
      if (s.reason.empty()) s.reason = member(resp, "msg");
      emit(std::move(s), resp, Direction::receive);
    }
    // WebSocket messages (since 12 in "websocket"; before, a flow of their own, migrated the same way).
    const TNet* ws = flow.find("websocket");
    const TNet* messages = ws && ws->kind == Kind::dict ? ws->find("messages") : nullptr;
    if (!messages || messages->kind != Kind::list) return;
    std::string sub = stream + "." + std::to_string(seq);
    seq = 0;
    for (const auto& m : messages->items) {
      // (type, from_client, content, timestamp[, dropped][, injected])
      if (m.kind != Kind::list || m.items.size() < 4) continue;
      bool from_client = m.items[1].kind == Kind::boolean && m.items[1].b;
      envelope::Envelope we =
          envelope(sub, from_client ? Direction::send : Direction::receive,
                   core::Timestamp{static_cast<int64_t>(std::llround(m.items[3].number() * 1e9))});
      we.protocol = envelope::Protocol::ws;
      envelope::WsMessage w;
      w.opcode = static_cast<int>(m.items[0].number());
      w.payload = m.items[2].str();
      w.masked = from_client;
      we.message = std::move(w);
      if (m.items.size() > 4 && m.items[4].kind == Kind::boolean && m.items[4].b) we.tags.emplace_back("dropped", "true");
      emit_record(std::move(we));
    }
  }

  void chunks(const std::string& type) {
    const TNet* messages = flow.find("messages");
    if (!messages || messages->kind != Kind::list) return;
    for (const auto& m : messages->items) {  // (from_client, content, timestamp)
      if (m.kind != Kind::list || m.items.size() < 3) continue;
      bool from_client = m.items[0].kind == Kind::boolean && m.items[0].b;
      envelope::Envelope e = envelope(stream, from_client ? Direction::send : Direction::receive,
                                      core::Timestamp{static_cast<int64_t>(std::llround(m.items[2].number() * 1e9))});
      e.protocol = envelope::Protocol::raw;
      e.raw = m.items[1].str();
      e.message = envelope::RawMessage{};
      if (type == "udp") e.tags.emplace_back("transport", "udp");
      emit_record(std::move(e));
    }
  }
};

}  // namespace

envelope::StreamHeader mitm_header() {
  envelope::StreamHeader header;
  header.producer = "sluice import (mitmproxy)";
  header.time = core::now_wall();
  return header;
}

bool mitm_next_flow(std::string_view data, size_t& pos, MitmImport& out,
                    const std::function<void(envelope::Record&&)>& emit) {
  while (pos < data.size()) {
    size_t used = 0;
    auto flow = tnet_parse(data.substr(pos), used);
    if (!flow || flow->kind != Kind::dict) {
      out.error = "flow " + std::to_string(out.flows + out.skipped_dns + 1) + " at byte " + std::to_string(pos) + ": " +
                  (flow ? std::string("not a dict") : flow.error().message);
      pos = data.size();
      return false;
    }
    pos += used;
    if (member(&*flow, "type") == "dns") {
      ++out.skipped_dns;
      continue;
    }
    FlowReader(emit, out.flows, *flow).read();
    ++out.flows;
    return true;
  }
  return false;
}

MitmImport from_mitm(std::string_view data, const std::function<void(envelope::Record&&)>& emit) {
  MitmImport out;
  emit(mitm_header());
  size_t pos = 0;
  while (mitm_next_flow(data, pos, out, emit)) {
  }
  return out;
}

// ---- export --------------------------------------------------------------------------------------

namespace {

TNet text(std::string s) { return of(Kind::text, std::move(s)); }
TNet bytes(std::string s) { return of(Kind::bytes, std::move(s)); }
TNet integer(int64_t i) {
  TNet v = of(Kind::integer);
  v.i = i;
  return v;
}
TNet floating(double d) {
  TNet v = of(Kind::floating);
  v.d = d;
  return v;
}
TNet boolean(bool b) {
  TNet v = of(Kind::boolean);
  v.b = b;
  return v;
}
TNet null() { return TNet(); }
TNet list(std::vector<TNet> items) {
  TNet v = of(Kind::list);
  v.items = std::move(items);
  return v;
}
TNet dict(std::vector<std::pair<std::string, TNet>> members) {
  TNet v = of(Kind::dict);
  for (auto& [k, x] : members) {
    v.keys.push_back(k);
    v.items.push_back(std::move(x));
  }
  return v;
}
double seconds(core::Timestamp t) { return static_cast<double>(t.ns) / 1e9; }

// (host, port) from "host:port" or "[v6]:port" (`default_port` when it names none).
TNet address_of(const std::string& hostport, int default_port) {
  std::string host = hostport;
  int port = default_port;
  if (!hostport.empty() && hostport.front() == '[') {
    size_t close = hostport.find(']');
    host = hostport.substr(1, close == std::string::npos ? std::string::npos : close - 1);
    if (close != std::string::npos && close + 1 < hostport.size() && hostport[close + 1] == ':')
      port = std::atoi(hostport.c_str() + close + 2);
  } else if (size_t colon = hostport.find(':'); colon != std::string::npos && colon == hostport.rfind(':')) {
    host = hostport.substr(0, colon);
    port = std::atoi(hostport.c_str() + colon + 1);
  }
  return list({text(host), integer(port)});
}

TNet headers_tnet(const envelope::Headers& h) {
  std::vector<TNet> out;
  for (const auto& [k, v] : h) out.push_back(list({bytes(k), bytes(v)}));
  return list(std::move(out));
}

std::string uuid4() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t a = rng(), b = rng();
  a = (a & ~0xf000ull) | 0x4000ull;                       // version 4
  b = (b & 0x3fffffffffffffffull) | 0x8000000000000000ull;  // variant 10
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(a >> 32),
                static_cast<unsigned>(a >> 16 & 0xffff), static_cast<unsigned>(a & 0xffff),
                static_cast<unsigned>(b >> 48), static_cast<unsigned long long>(b & 0xffffffffffffull));
  return buf;
}

TNet client_conn(const envelope::Context& c, double start) {
  const auto& tls = c.tls;
  return dict({{"address", address_of(c.client, 0)},
               {"alpn", tls && !tls->alpn.empty() ? bytes(tls->alpn) : null()},
               {"alpn_offers", list({})},
               {"certificate_list", list({})},
               {"cipher_list", list({})},
               {"cipher_name", tls && !tls->cipher.empty() ? text(tls->cipher) : null()},
               {"error", null()},
               {"id", text(c.conn_id.empty() ? uuid4() : c.conn_id)},
               {"mitmcert", null()},
               {"sni", tls && !tls->sni.empty() ? text(tls->sni) : null()},
               {"sockname", list({text(""), integer(0)})},
               {"state", integer(0)},
               {"timestamp_end", null()},
               {"timestamp_start", floating(c.opened.ns ? seconds(c.opened) : start)},
               {"timestamp_tls_setup", tls ? floating(start) : null()},
               {"tls", boolean(tls.has_value())},
               {"tls_established", boolean(tls.has_value())},
               {"tls_extensions", list({})},
               {"tls_version", tls && !tls->version.empty() ? text(tls->version) : null()}});
}

TNet server_conn(const envelope::Context& c, bool tls, double start) {
  return dict({{"address", address_of(c.server, tls ? 443 : 80)},
               {"alpn", null()},
               {"alpn_offers", list({})},
               {"certificate_list", list({})},
               {"cipher_list", list({})},
               {"cipher_name", null()},
               {"error", null()},
               {"id", text(uuid4())},
               {"ip_address", null()},
               {"sni", null()},
               {"source_address", null()},
               {"state", integer(0)},
               {"timestamp_end", null()},
               {"timestamp_start", floating(start)},
               {"timestamp_tcp_setup", floating(start)},
               {"timestamp_tls_setup", tls ? floating(start) : null()},
               {"tls", boolean(tls)},
               {"tls_established", boolean(tls)},
               {"tls_version", null()},
               {"via", null()},
               {"via2", null()}});
}

std::string mitm_version(const std::string& v) { return v == "HTTP/2" ? "HTTP/2.0" : v.empty() ? "HTTP/1.1" : v; }

// host and port of a request: its authority, else the server it went to.
std::pair<std::string, int> host_port(const HttpMessage& q, const envelope::Context& c) {
  TNet a = address_of(q.authority.empty() ? c.server : q.authority, q.scheme == "https" ? 443 : 80);
  return {a.items[0].s, static_cast<int>(a.items[1].i)};
}

}  // namespace

std::string to_mitm(const std::vector<Exchange>& exchanges) {
  std::string out;
  for (const auto& x : exchanges) {
    const auto& qe = *x.request;
    const auto& q = std::get<HttpMessage>(qe.message);
    double start = seconds(qe.time);
    auto [host, port] = host_port(q, qe.context);
    bool https = q.scheme == "https";
    bool absolute = q.path.starts_with("http://") || q.path.starts_with("https://");
    TNet request = dict({{"authority", bytes(q.method == "CONNECT" ? q.authority : "")},
                         {"content", bytes(q.body)},
                         {"headers", headers_tnet(q.headers)},
                         {"host", text(host)},
                         {"http_version", bytes(mitm_version(q.version))},
                         {"method", bytes(q.method)},
                         {"path", bytes(absolute ? q.path.substr(q.path.find('/', q.path.find("//") + 2)) : q.path)},
                         {"port", integer(port)},
                         {"scheme", bytes(q.scheme.empty() ? "http" : q.scheme)},
                         {"timestamp_end", floating(start)},
                         {"timestamp_start", floating(start)},
                         {"trailers", q.trailers.empty() ? null() : headers_tnet(q.trailers)}});
    TNet response = null();
    if (x.response) {
      const auto& s = std::get<HttpMessage>(x.response->message);
      double at = seconds(x.response->time);
      response = dict({{"content", bytes(s.body)},
                       {"headers", headers_tnet(s.headers)},
                       {"http_version", bytes(mitm_version(s.version))},
                       {"reason", bytes(s.reason)},
                       {"status_code", integer(s.status)},
                       {"timestamp_end", floating(at)},
                       {"timestamp_start", floating(at)},
                       {"trailers", s.trailers.empty() ? null() : headers_tnet(s.trailers)}});
    }
    TNet websocket = null();
    if (!x.ws.empty()) {
      std::vector<TNet> messages;
      for (const auto* w : x.ws) {
        const auto* m = std::get_if<envelope::WsMessage>(&w->message);
        if (!m || m->opcode >= 8) continue;  // (control frames are not messages there)
        messages.push_back(list({integer(m->opcode == 0 ? 1 : m->opcode), boolean(w->direction == Direction::send),
                                 bytes(m->payload), floating(seconds(w->time)), boolean(false), boolean(false)}));
      }
      websocket = dict({{"close_code", integer(1000)},
                        {"close_reason", text("")},
                        {"closed_by_client", boolean(false)},
                        {"messages", list(std::move(messages))},
                        {"timestamp_end", null()}});
    }
    TNet error = null();
    if (!x.errors.empty()) error = dict({{"msg", text(x.errors.front())}, {"timestamp", floating(start)}});
    std::string comment, marked;
    for (const auto& [k, v] : qe.tags) {
      if (k == "comment") comment = v;
      if (k == "marked") marked = v;
    }
    TNet flow = dict({{"client_conn", client_conn(qe.context, start)},
                      {"comment", text(comment)},
                      {"error", error},
                      {"id", text(uuid4())},
                      {"intercepted", boolean(false)},
                      {"is_replay", null()},
                      {"marked", text(marked)},
                      {"metadata", dict({})},
                      {"request", request},
                      {"response", response},
                      {"server_conn", server_conn(qe.context, https, start)},
                      {"timestamp_created", floating(start)},
                      {"type", text("http")},
                      {"version", integer(17)},
                      {"websocket", websocket}});
    out += tnet_dump(flow);
  }
  return out;
}

}  // namespace sluice::exporter
