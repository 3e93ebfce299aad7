#include "export/export.hpp"

#include <algorithm>
#include <unordered_map>

#include "core/ascii.hpp"
#include "core/base64.hpp"
#include "core/json.hpp"
#include "core/time.hpp"
#include "core/utf8.hpp"

namespace sluice::exporter {

namespace {

using core::Value;
using envelope::HttpMessage;

const HttpMessage* http(const envelope::Envelope* e) { return e ? std::get_if<HttpMessage>(&e->message) : nullptr; }

Value str(std::string_view s) { return Value(std::string(s)); }
Value num(int64_t n) { return Value(n); }

std::string header(const envelope::Headers& h, std::string_view name) {
  for (const auto& [k, v] : h)
    if (core::iequals(k, name)) return v;
  return {};
}

Value headers_json(const envelope::Headers& h) {
  Value a = Value::array();
  for (const auto& [k, v] : h) {
    Value o = Value::object();
    o.add("name", str(k));
    o.add("value", str(v));
    a.as_array().push_back(std::move(o));
  }
  return a;
}

// Text as it is, or base64 (and `encoding` says so) when it is not UTF-8.
void text_field(Value& o, const std::string& body, const char* encoding_key) {
  if (core::is_valid_utf8(body)) {
    o.add("text", str(body));
  } else {
    o.add("text", str(core::base64_encode(body)));
    o.add(encoding_key, str("base64"));
  }
}

Value query_json(const std::string& url) {
  Value a = Value::array();
  size_t q = url.find('?');
  if (q == std::string::npos) return a;
  std::string_view query = std::string_view(url).substr(q + 1);
  size_t start = 0;
  while (start < query.size()) {
    size_t amp = query.find('&', start);
    std::string_view part = query.substr(start, amp == std::string_view::npos ? std::string_view::npos : amp - start);
    size_t eq = part.find('=');
    Value o = Value::object();
    o.add("name", str(part.substr(0, eq)));
    o.add("value", str(eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1)));
    a.as_array().push_back(std::move(o));
    if (amp == std::string_view::npos) break;
    start = amp + 1;
  }
  return a;
}

int64_t head_size(const envelope::Envelope* e) {
  if (!e || e->raw.empty()) return -1;
  size_t end = e->raw.find("\r\n\r\n");
  return end == std::string::npos ? -1 : static_cast<int64_t>(end + 4);
}

std::string shell_quote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out.push_back(c);
  }
  return out + "'";
}

// printf %b argument for any bytes: printable ASCII as is, the rest as \0NNN octal escapes.
std::string printf_bytes(std::string_view s) {
  std::string out;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '\\') {
      out += "\\\\";
    } else if (c >= 0x20 && c < 0x7f && c != '\'') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\0%03o", c);
      out += buf;
    }
  }
  return "'" + out + "'";
}

std::string version_of(std::string v) {
  std::string l = core::to_lower(v);
  if (l == "http/2" || l == "http/2.0" || l == "h2" || l == "h2c") return "HTTP/2";
  if (l == "http/1.0") return "HTTP/1.0";
  if (l == "http/3" || l == "http/3.0" || l == "h3") return "HTTP/3";
  return "HTTP/1.1";
}

}  // namespace

void Collector::add(envelope::Record r) { records_.push_back(std::move(r)); }

namespace {

// The message of a request the exports list: not a variant, overlay or CONNECT.
const HttpMessage* exported_request(const envelope::Envelope& e) {
  const HttpMessage* m = e.modified || !e.overlay.empty() ? nullptr : http(&e);
  return m && m->kind == HttpMessage::Kind::request && m->method != "CONNECT" ? m : nullptr;
}

}  // namespace

const envelope::Envelope* RequestPicker::pick(const envelope::Record& r) {
  if (const auto* end = std::get_if<envelope::EndRecord>(&r); end && end->scope == "stream") {
    // '.' sorts just before '/': the streams nested in this one are [id ".", id "/").
    flows_.erase(end->stream_id);
    flows_.erase(flows_.lower_bound(end->stream_id + "."), flows_.lower_bound(end->stream_id + "/"));
    return nullptr;
  }
  const auto* e = std::get_if<envelope::Envelope>(&r);
  if (!e || !exported_request(*e)) return nullptr;
  Seen& seen = flows_[e->stream_id];
  if (!seen.ids.insert(e->flow_id).second) return nullptr;
  seen.order.push_back(e->flow_id);
  if (seen.order.size() > kKeep) {  // a long connection: its old flows are done
    seen.ids.erase(seen.order.front());
    seen.order.pop_front();
  }
  return e;
}

size_t RequestPicker::remembered() const {
  size_t n = 0;
  for (const auto& [stream, seen] : flows_) n += seen.ids.size();
  return n;
}

std::vector<Exchange> Collector::exchanges() const {
  std::vector<Exchange> out;
  std::unordered_map<std::string, size_t> index;
  for (const auto& r : records_) {
    if (const auto* err = std::get_if<envelope::ErrorRecord>(&r)) {
      if (auto it = index.find(err->flow_id); it != index.end()) out[it->second].errors.push_back(err->message);
      continue;
    }
    const auto* e = std::get_if<envelope::Envelope>(&r);
    if (!e || e->modified || !e->overlay.empty()) continue;
    if (e->protocol == envelope::Protocol::ws) {
      if (auto it = index.find(e->flow_id); it != index.end()) out[it->second].ws.push_back(e);
      continue;
    }
    const auto* m = http(e);
    if (!m) continue;
    if (m->kind == HttpMessage::Kind::request) {
      if (!exported_request(*e) || index.count(e->flow_id)) continue;
      index[e->flow_id] = out.size();
      out.push_back(Exchange{e, nullptr, {}, {}});
    } else if (auto it = index.find(e->flow_id); it != index.end() && (m->status >= 200 || m->status == 101)) {
      out[it->second].response = e;
    }
  }
  return out;
}

Value to_har(const std::vector<Exchange>& exchanges, const std::string& creator_version) {
  Value entries = Value::array();
  for (const auto& x : exchanges) {
    const HttpMessage& q = *http(x.request);
    const HttpMessage* s = http(x.response);
    std::string url = envelope::url_of(q);
    Value req = Value::object();
    req.add("method", str(q.method));
    req.add("url", str(url));
    req.add("httpVersion", str(q.version.empty() ? "HTTP/1.1" : q.version));
    req.add("cookies", Value::array());
    req.add("headers", headers_json(q.headers));
    req.add("queryString", query_json(url));
    if (!q.body.empty()) {
      Value post = Value::object();
      post.add("mimeType", str(header(q.headers, "content-type")));
      text_field(post, q.body, "_encoding");
      req.add("postData", std::move(post));
    }
    req.add("headersSize", num(head_size(x.request)));
    req.add("bodySize", num(static_cast<int64_t>(q.body.size())));

    Value resp = Value::object();
    int64_t wait_ms = 0;
    if (s) {
      resp.add("status", num(s->status));
      resp.add("statusText", str(s->reason));
      resp.add("httpVersion", str(s->version.empty() ? "HTTP/1.1" : s->version));
      resp.add("cookies", Value::array());
      resp.add("headers", headers_json(s->headers));
      Value content = Value::object();
      content.add("size", num(static_cast<int64_t>(s->body.size() + s->body_omitted)));
      content.add("mimeType", str(header(s->headers, "content-type")));
      text_field(content, s->body, "encoding");
      resp.add("content", std::move(content));
      resp.add("redirectURL", str(header(s->headers, "location")));
      resp.add("headersSize", num(head_size(x.response)));
      resp.add("bodySize", num(static_cast<int64_t>(s->body.size())));
      wait_ms = std::max<int64_t>(0, (x.response->time.ns - x.request->time.ns) / 1'000'000);
    } else {  // no answer: status 0, as browsers write failed requests
      resp.add("status", num(0));
      resp.add("statusText", str(""));
      resp.add("httpVersion", str(""));
      resp.add("cookies", Value::array());
      resp.add("headers", Value::array());
      Value content = Value::object();
      content.add("size", num(0));
      content.add("mimeType", str("x-unknown"));
      resp.add("content", std::move(content));
      resp.add("redirectURL", str(""));
      resp.add("headersSize", num(-1));
      resp.add("bodySize", num(-1));
      if (!x.errors.empty()) resp.add("_error", str(x.errors.front()));
    }
    Value timings = Value::object();
    timings.add("send", num(0));
    timings.add("wait", num(wait_ms));
    timings.add("receive", num(0));

    Value entry = Value::object();
    entry.add("startedDateTime", str(core::format_rfc3339(x.request->time)));
    entry.add("time", num(wait_ms));
    entry.add("request", std::move(req));
    entry.add("response", std::move(resp));
    entry.add("cache", Value::object());
    entry.add("timings", std::move(timings));
    entry.add("connection", str(x.request->context.conn_id));
    if (!x.ws.empty()) {
      Value msgs = Value::array();
      for (const auto* f : x.ws) {
        const auto& w = std::get<envelope::WsMessage>(f->message);
        Value m = Value::object();
        m.add("type", str(f->direction == envelope::Direction::send ? "send" : "receive"));
        m.add("time", Value(static_cast<double>(f->time.ns) / 1e9));
        m.add("opcode", num(w.opcode));
        m.add("data", str(core::is_valid_utf8(w.payload) ? w.payload : core::base64_encode(w.payload)));
        msgs.as_array().push_back(std::move(m));
      }
      entry.add("_webSocketMessages", std::move(msgs));
    }
    Value extra = Value::object();
    extra.add("flow_id", str(x.request->flow_id));
    extra.add("stream_id", str(x.request->stream_id));
    Value anomalies = Value::array();
    for (const auto* e : {x.request, x.response}) {
      if (!e) continue;
      for (const auto& a : e->anomalies) {
        Value o = Value::object();
        o.add("name", str(a.name));
        o.add("detail", str(a.detail));
        anomalies.as_array().push_back(std::move(o));
      }
    }
    extra.add("anomalies", std::move(anomalies));
    entry.add("_sluice", std::move(extra));
    entries.as_array().push_back(std::move(entry));
  }
  Value creator = Value::object();
  creator.add("name", str("sluice"));
  creator.add("version", str(creator_version));
  Value log = Value::object();
  log.add("version", str("1.2"));
  log.add("creator", std::move(creator));
  log.add("pages", Value::array());
  log.add("entries", std::move(entries));
  Value doc = Value::object();
  doc.add("log", std::move(log));
  return doc;
}

std::string to_curl(const HttpMessage& q) {
  std::string cmd;
  if (!q.body.empty()) cmd += "printf '%b' " + printf_bytes(q.body) + " | ";
  cmd += "curl -sS --http1.1 --path-as-is -X " + shell_quote(q.method) + " " + shell_quote(envelope::url_of(q));
  bool has_ua = false, has_accept = false;
  for (const auto& [k, v] : q.headers) {
    has_ua |= core::iequals(k, "user-agent");
    has_accept |= core::iequals(k, "accept");
    // curl's -H 'Name:' removes a header; a header whose value is empty needs 'Name;'.
    cmd += " -H " + shell_quote(v.empty() ? k + ";" : k + ": " + v);
  }
  if (!has_ua) cmd += " -H 'User-Agent:'";  // curl's own defaults, absent from the original
  if (!has_accept) cmd += " -H 'Accept:'";
  if (!q.body.empty()) cmd += " --data-binary @-";
  return cmd;
}

std::string to_httpie(const HttpMessage& q) {
  // The body as an argument ($'...' keeps every byte but NUL, and HTTPie then sends a Content-Length);
  // a body with NUL bytes can only go through standard input (sent chunked).
  bool nul = q.body.find('\0') != std::string::npos;
  std::string cmd;
  if (!q.body.empty() && nul) cmd += "printf '%b' " + printf_bytes(q.body) + " | ";
  // --print=b: the response body on standard output, as curl prints it.
  cmd += "http --print=b " + std::string(q.body.empty() || !nul ? "--ignore-stdin " : "") + shell_quote(q.method) + " " +
         shell_quote(envelope::url_of(q));
  std::vector<std::string> present;
  for (const auto& [k, v] : q.headers) {
    present.push_back(core::to_lower(k));
    // HTTPie reads "Name:@file" from a file: a value starting with '@' is escaped.
    cmd += " " + shell_quote(v.empty() ? k + ";" : k + ":" + (v[0] == '@' ? "\\" + v : v));
  }
  // HTTPie's defaults, absent from the original, are unset (its HTTP library still sends a User-Agent and
  // Accept-Encoding when the original has none).
  for (const char* d : {"User-Agent", "Accept-Encoding", "Accept", "Connection", "Content-Type"})
    if (std::find(present.begin(), present.end(), core::to_lower(d)) == present.end()) cmd += " " + shell_quote(std::string(d) + ":");
  if (!q.body.empty() && !nul) {
    std::string arg = "$'";
    for (char ch : q.body) {
      auto c = static_cast<unsigned char>(ch);
      if (c == '\\' || c == '\'') {
        arg.push_back('\\');
        arg.push_back(static_cast<char>(c));
      } else if (c >= 0x20 && c < 0x7f) {
        arg.push_back(static_cast<char>(c));
      } else {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\x%02x", c);
        arg += buf;
      }
    }
    cmd += " --raw " + arg + "'";
  }
  return cmd;
}

// ---- import ----------------------------------------------------------------------------------------

namespace {

std::string string_at(const Value* o, std::string_view key) {
  const Value* v = o ? o->find(key) : nullptr;
  if (!v) return {};
  if (v->is_string()) return v->as_string();
  if (v->is_number()) return v->is_int() ? std::to_string(v->as_int()) : std::to_string(v->as_double());
  return {};
}

// Headers as [{"name","value"}] (the spec, Chrome, Firefox) or [["name","value"]] (some exporters).
envelope::Headers headers_from(const Value* a) {
  envelope::Headers out;
  if (!a || !a->is_array()) return out;
  for (const auto& h : a->as_array()) {
    if (h.is_object()) out.push_back({string_at(&h, "name"), string_at(&h, "value")});
    else if (h.is_array() && h.as_array().size() == 2 && h.as_array()[0].is_string() && h.as_array()[1].is_string())
      out.push_back({h.as_array()[0].as_string(), h.as_array()[1].as_string()});
  }
  return out;
}

std::string body_from(const Value* o, std::string_view encoding_key) {
  if (!o) return {};
  std::string text = string_at(o, "text");
  std::string enc = string_at(o, encoding_key);
  if (enc.empty()) enc = string_at(o, "encoding");
  if (core::iequals(enc, "base64")) {
    if (auto d = core::base64_decode(text)) return *d;
  }
  return text;
}

envelope::Envelope imported(const std::string& stream, const std::string& flow, uint64_t seq, envelope::Direction d,
                            core::Timestamp time, const envelope::Context& context) {
  envelope::Envelope e;
  e.stream_id = stream;
  e.flow_id = flow;
  e.seq = seq;
  e.direction = d;
  e.time = time;
  e.context = context;
  e.tags.emplace_back("imported", "har");
  return e;
}

std::string head_bytes(const HttpMessage& m, bool request) {
  std::string s = request ? m.method + " " + m.path + " HTTP/1.1\r\n"
                          : "HTTP/1.1 " + std::to_string(m.status) + " " + m.reason + "\r\n";
  for (const auto& [k, v] : m.headers) s += k + ": " + v + "\r\n";
  return s + "\r\n";
}

}  // namespace

core::Result<std::vector<envelope::Record>> from_har(std::string_view json) {
  if (json.starts_with("\xEF\xBB\xBF")) json.remove_prefix(3);  // a UTF-8 byte order mark (some Windows tools write one)
  auto doc = core::json_parse(json);
  if (!doc) return core::make_error("not JSON: " + doc.error().message);
  const Value* log = doc->find("log");
  const Value* entries = log ? log->find("entries") : nullptr;
  if (!entries || !entries->is_array()) return core::make_error("not a HAR file (no log.entries)");
  std::vector<envelope::Record> out;
  envelope::StreamHeader header;
  header.producer = "sluice import (" + string_at(log ? log->find("creator") : nullptr, "name") + ")";
  header.time = core::now_wall();
  out.push_back(header);
  size_t n = 0;
  for (const auto& entry : entries->as_array()) {
    const Value* req = entry.find("request");
    if (!req) continue;
    const Value* sl = entry.find("_sluice");
    std::string flow = string_at(sl, "flow_id");
    if (flow.empty()) flow = "har-" + std::to_string(n);
    std::string stream = string_at(sl, "stream_id");
    if (stream.empty()) stream = string_at(&entry, "connection");
    if (stream.empty()) stream = flow;
    ++n;
    core::Timestamp started = core::parse_rfc3339(string_at(&entry, "startedDateTime")).value_or(core::Timestamp{});
    int64_t elapsed_ms = 0;
    if (const Value* t = entry.find("time"); t && t->is_number()) elapsed_ms = static_cast<int64_t>(t->as_double());

    HttpMessage q;
    q.kind = HttpMessage::Kind::request;
    q.method = string_at(req, "method");
    std::string url = string_at(req, "url");
    size_t scheme_end = url.find("://");
    if (scheme_end != std::string::npos) {
      q.scheme = core::to_lower(url.substr(0, scheme_end));
      size_t path = url.find('/', scheme_end + 3);
      q.authority = url.substr(scheme_end + 3, path == std::string::npos ? std::string::npos : path - scheme_end - 3);
      q.path = path == std::string::npos ? "/" : url.substr(path);
      if (size_t hash = q.path.find('#'); hash != std::string::npos) q.path.resize(hash);
    } else {
      q.path = url;
    }
    q.version = version_of(string_at(req, "httpVersion"));
    q.headers = headers_from(req->find("headers"));
    q.body = body_from(req->find("postData"), "_encoding");
    envelope::Context context;
    context.conn_id = stream;
    context.server = q.authority;
    envelope::Envelope qe = imported(stream, flow, 0, envelope::Direction::send, started, context);
    qe.protocol = envelope::Protocol::http;
    qe.raw = head_bytes(q, true) + q.body;
    if (sl)
      if (const Value* a = sl->find("anomalies"); a && a->is_array())
        for (const auto& x : a->as_array()) qe.anomalies.push_back({string_at(&x, "name"), string_at(&x, "detail")});
    qe.message = q;
    out.push_back(qe);

    const Value* resp = entry.find("response");
    int status = 0;
    if (resp)
      if (const Value* st = resp->find("status"); st && st->is_number()) status = static_cast<int>(st->as_double());
    if (resp && status > 0) {
      HttpMessage s;
      s.kind = HttpMessage::Kind::response;
      s.status = status;
      s.reason = string_at(resp, "statusText");
      s.version = version_of(string_at(resp, "httpVersion"));
      s.headers = headers_from(resp->find("headers"));
      s.body = body_from(resp->find("content"), "encoding");
      envelope::Envelope se = imported(stream, flow, 1, envelope::Direction::receive,
                                       core::Timestamp{started.ns + elapsed_ms * 1'000'000}, context);
      se.protocol = envelope::Protocol::http;
      se.raw = head_bytes(s, false) + s.body;
      se.message = s;
      out.push_back(se);
    }
    if (const Value* ws = entry.find("_webSocketMessages"); ws && ws->is_array()) {
      uint64_t seq = 2;
      for (const auto& m : ws->as_array()) {
        core::Timestamp at = started;
        if (const Value* t = m.find("time"); t && t->is_number())
          at = core::Timestamp{static_cast<int64_t>(t->as_double() * 1e9)};
        auto direction = string_at(&m, "type") == "send" ? envelope::Direction::send : envelope::Direction::receive;
        envelope::Envelope we = imported(stream, flow, seq++, direction, at, context);
        we.protocol = envelope::Protocol::ws;
        envelope::WsMessage w;
        if (const Value* op = m.find("opcode"); op && op->is_number()) w.opcode = static_cast<int>(op->as_double());
        w.payload = string_at(&m, "data");
        w.masked = we.direction == envelope::Direction::send;
        we.message = w;
        out.push_back(we);
      }
    }
  }
  return out;
}

}  // namespace sluice::exporter
