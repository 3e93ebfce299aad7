#include "envelope/record_codec.hpp"

#include "core/base64.hpp"
#include "core/utf8.hpp"

namespace sluice::envelope {
namespace {

using core::Value;

// ---------------------------------------------------------------------------------------------
// Encoding

Value text_or_bytes(const Bytes& b, Target t) {
  if (t == Target::cbor) return Value::bytes(b);
  if (core::is_valid_utf8(b)) return Value(b);
  Value o = Value::object();
  o.add("base64", Value(core::base64_encode(b)));
  return o;
}

Value raw_bytes(const Bytes& b, Target t) {
  if (t == Target::cbor) return Value::bytes(b);
  return Value(core::base64_encode(b));
}

Value headers_value(const Headers& hs, Target t) {
  Value::Array a;
  a.reserve(hs.size());
  for (const auto& h : hs) a.push_back(Value(Value::Array{text_or_bytes(h.name, t), text_or_bytes(h.value, t)}));
  return Value(std::move(a));
}

Value strings_value(const std::vector<std::string>& v) {
  Value::Array a;
  for (const auto& s : v) a.emplace_back(s);
  return Value(std::move(a));
}

void append_extra(Value& o, const Extra& extra) {
  for (const auto& m : extra) o.as_object().push_back(m);
}

Value time_value(Timestamp t) { return Value(core::format_rfc3339(t)); }

struct MessageEncoder {
  Target t;
  Value o = Value::object();

  Value operator()(const HttpMessage& m) {
    o.add("kind", Value(message_kind(Message{m})));
    if (m.kind == HttpMessage::Kind::request) {
      o.add("method", text_or_bytes(m.method, t));
      o.add("scheme", text_or_bytes(m.scheme, t));
      o.add("authority", text_or_bytes(m.authority, t));
      o.add("path", text_or_bytes(m.path, t));
    } else {
      o.add("status", Value(m.status));
      o.add("reason", text_or_bytes(m.reason, t));
    }
    o.add("version", Value(m.version));
    o.add("headers", headers_value(m.headers, t));
    if (!m.trailers.empty()) o.add("trailers", headers_value(m.trailers, t));
    o.add("body", text_or_bytes(m.body, t));
    if (m.body_omitted) o.add("body_omitted", Value(m.body_omitted));
    return finish(m.extra);
  }
  Value operator()(const WsMessage& m) {
    o.add("kind", Value("frame"));
    o.add("opcode", Value(m.opcode));
    o.add("fin", Value(m.fin));
    if (m.rsv1) o.add("rsv1", Value(true));
    if (m.rsv2) o.add("rsv2", Value(true));
    if (m.rsv3) o.add("rsv3", Value(true));
    o.add("masked", Value(m.masked));
    if (m.compressed) o.add("compressed", Value(true));
    o.add("payload", text_or_bytes(m.payload, t));
    if (m.close_code) {
      o.add("close_code", Value(*m.close_code));
      o.add("close_reason", text_or_bytes(m.close_reason, t));
    }
    return finish(m.extra);
  }
  Value operator()(const GrpcStartMessage& m) {
    o.add("kind", Value("start"));
    o.add("service", Value(m.service));
    o.add("method", Value(m.method));
    o.add("metadata", headers_value(m.metadata, t));
    if (!m.timeout.empty()) o.add("timeout", Value(m.timeout));
    return finish(m.extra);
  }
  Value operator()(const GrpcDataMessage& m) {
    o.add("kind", Value("data"));
    o.add("compressed", Value(m.compressed));
    o.add("payload", text_or_bytes(m.payload, t));
    return finish(m.extra);
  }
  Value operator()(const GrpcEndMessage& m) {
    o.add("kind", Value("end"));
    o.add("status", Value(m.status));
    o.add("message", text_or_bytes(m.message, t));
    o.add("trailers", headers_value(m.trailers, t));
    return finish(m.extra);
  }
  Value operator()(const SseMessage& m) {
    o.add("kind", Value("event"));
    o.add("id", text_or_bytes(m.id, t));
    o.add("event", text_or_bytes(m.event, t));
    o.add("data", text_or_bytes(m.data, t));
    if (m.retry) o.add("retry", Value(*m.retry));
    return finish(m.extra);
  }
  Value operator()(const RawMessage& m) {
    o.add("kind", Value("chunk"));
    return finish(m.extra);
  }
  Value operator()(const TlsHandshakeMessage& m) {
    o.add("kind", Value("handshake"));
    o.add("side", Value(m.side));
    o.add("sni", Value(m.sni));
    o.add("alpn_offered", strings_value(m.alpn_offered));
    o.add("alpn", Value(m.alpn));
    o.add("version", Value(m.version));
    o.add("cipher", Value(m.cipher));
    if (!m.ja3.empty()) o.add("ja3", Value(m.ja3));
    if (!m.ja3_hash.empty()) o.add("ja3_hash", Value(m.ja3_hash));
    if (!m.ja4.empty()) o.add("ja4", Value(m.ja4));
    if (m.certificate) {
      Value c = Value::object();
      c.add("subject", Value(m.certificate->subject));
      c.add("issuer", Value(m.certificate->issuer));
      c.add("sans", strings_value(m.certificate->sans));
      c.add("sha256", Value(m.certificate->sha256));
      append_extra(c, m.certificate->extra);
      o.add("certificate", std::move(c));
    }
    return finish(m.extra);
  }
  Value operator()(const OpaqueMessage& m) { return m.value; }

  Value finish(const Extra& extra) {
    append_extra(o, extra);
    return std::move(o);
  }
};

Value context_value(const Context& c) {
  Value o = Value::object();
  o.add("conn_id", Value(c.conn_id));
  o.add("client", Value(c.client));
  o.add("server", Value(c.server));
  if (c.tls) {
    Value tls = Value::object();
    tls.add("version", Value(c.tls->version));
    tls.add("cipher", Value(c.tls->cipher));
    tls.add("sni", Value(c.tls->sni));
    tls.add("alpn", Value(c.tls->alpn));
    append_extra(tls, c.tls->extra);
    o.add("tls", std::move(tls));
  }
  o.add("opened", time_value(c.opened));
  append_extra(o, c.extra);
  return o;
}

struct RecordEncoder {
  Target t;

  Value operator()(const StreamHeader& h) const {
    Value o = Value::object();
    o.add("type", Value("header"));
    o.add("format", Value(h.format));
    o.add("version", Value(h.version));
    o.add("producer", Value(h.producer));
    o.add("time", time_value(h.time));
    o.add("listeners", Value(h.listeners));
    append_extra(o, h.extra);
    return o;
  }
  Value operator()(const Envelope& e) const {
    Value o = Value::object();
    o.add("type", Value("envelope"));
    o.add("stream_id", Value(e.stream_id));
    o.add("flow_id", Value(e.flow_id));
    o.add("seq", Value(e.seq));
    o.add("direction", Value(to_string(e.direction)));
    o.add("protocol", Value(e.protocol == Protocol::other ? std::string_view(e.protocol_name) : to_string(e.protocol)));
    o.add("time", time_value(e.time));
    if (!e.overlay.empty()) o.add("overlay", Value(e.overlay));
    o.add("raw", raw_bytes(e.raw, t));
    o.add("message", std::visit(MessageEncoder{t}, e.message));
    o.add("context", context_value(e.context));
    o.add("variant", Value(e.modified ? "modified" : "original"));
    if (e.variant_of) o.add("variant_of", Value(*e.variant_of));
    if (!e.modified_by.empty()) o.add("modified_by", Value(e.modified_by));
    Value::Array anomalies;
    for (const auto& a : e.anomalies) {
      Value av = Value::object();
      av.add("name", Value(a.name));
      av.add("detail", Value(a.detail));
      anomalies.push_back(std::move(av));
    }
    o.add("anomalies", Value(std::move(anomalies)));
    Value tags = Value::object();
    for (const auto& [k, v] : e.tags) tags.add(k, Value(v));
    o.add("tags", std::move(tags));
    append_extra(o, e.extra);
    return o;
  }
  Value operator()(const EndRecord& r) const {
    Value o = Value::object();
    o.add("type", Value("end"));
    o.add("scope", Value(r.scope));
    o.add("stream_id", Value(r.stream_id));
    if (!r.flow_id.empty()) o.add("flow_id", Value(r.flow_id));
    o.add("time", time_value(r.time));
    o.add("reason", Value(r.reason));
    o.add("bytes_sent", Value(r.bytes_sent));
    o.add("bytes_received", Value(r.bytes_received));
    append_extra(o, r.extra);
    return o;
  }
  Value operator()(const ErrorRecord& r) const {
    Value o = Value::object();
    o.add("type", Value("error"));
    o.add("stream_id", Value(r.stream_id));
    if (!r.flow_id.empty()) o.add("flow_id", Value(r.flow_id));
    o.add("time", time_value(r.time));
    o.add("code", Value(r.code));
    o.add("message", Value(r.message));
    append_extra(o, r.extra);
    return o;
  }
  Value operator()(const UnknownRecord& r) const { return r.value; }
};

// ---------------------------------------------------------------------------------------------
// Decoding

// Takes members out of one object by name; whatever is not taken becomes `extra`.
class Fields {
 public:
  Fields(Value::Object obj, std::string where, std::string& err)
      : obj_(std::move(obj)), used_(obj_.size(), false), where_(std::move(where)), err_(err) {}

  Value* take(std::string_view key) {
    for (size_t i = 0; i < obj_.size(); ++i) {
      if (!used_[i] && obj_[i].key == key) {
        used_[i] = true;
        return &obj_[i].value;
      }
    }
    return nullptr;
  }
  Extra rest() {
    Extra e;
    for (size_t i = 0; i < obj_.size(); ++i)
      if (!used_[i]) e.push_back(std::move(obj_[i]));
    return e;
  }
  bool fail(std::string_view key, std::string_view expected) {
    if (err_.empty()) err_ = where_ + "'" + std::string(key) + "': expected " + std::string(expected);
    return false;
  }

  bool str(std::string_view key, std::string& out) {
    Value* v = take(key);
    if (!v || v->is_null()) return true;
    if (!v->is_string()) return fail(key, "a string");
    out = std::move(v->as_string());
    return true;
  }
  bool text_or_bytes(std::string_view key, Bytes& out) {
    Value* v = take(key);
    return !v || decode_bytes(*v, key, out);
  }
  bool decode_bytes(Value& v, std::string_view key, Bytes& out) {
    if (v.is_null()) return true;
    if (v.is_string()) {
      out = std::move(v.as_string());
      return true;
    }
    if (v.is_bytes()) {
      out = std::move(v.as_bytes());
      return true;
    }
    if (const Value* b = v.find("base64"); b && b->is_string()) {
      auto decoded = core::base64_decode(b->as_string());
      if (!decoded) return fail(key, "valid base64");
      out = std::move(*decoded);
      return true;
    }
    return fail(key, "a string, byte string or {\"base64\": ...}");
  }
  bool raw(std::string_view key, Bytes& out) {
    Value* v = take(key);
    if (!v || v->is_null()) return true;
    if (v->is_string()) {
      auto decoded = core::base64_decode(v->as_string());
      if (!decoded) return fail(key, "valid base64");
      out = std::move(*decoded);
      return true;
    }
    return decode_bytes(*v, key, out);
  }
  template <typename Int>
  bool integer(std::string_view key, Int& out) {
    Value* v = take(key);
    if (!v || v->is_null()) return true;
    if (v->is_int()) {
      int64_t i = v->as_int();
      if constexpr (std::is_unsigned_v<Int>) {
        if (i < 0) return fail(key, "an unsigned integer");
      }
      out = static_cast<Int>(i);
      return true;
    }
    if (v->kind() == Value::Kind::uinteger && std::is_same_v<Int, uint64_t>) {
      out = static_cast<Int>(v->as_uint());
      return true;
    }
    return fail(key, "an integer");
  }
  bool boolean(std::string_view key, bool& out) {
    Value* v = take(key);
    if (!v || v->is_null()) return true;
    if (!v->is_bool()) return fail(key, "a boolean");
    out = v->as_bool();
    return true;
  }
  bool time(std::string_view key, Timestamp& out) {
    Value* v = take(key);
    if (!v || v->is_null()) return true;
    if (v->is_string()) {
      if (auto t = core::parse_rfc3339(v->as_string())) {
        out = *t;
        return true;
      }
    }
    return fail(key, "an RFC 3339 time");
  }
  bool headers(std::string_view key, Headers& out) {
    Value* v = take(key);
    if (!v || v->is_null()) return true;
    if (!v->is_array()) return fail(key, "a list of [name, value] pairs");
    for (auto& pair : v->as_array()) {
      if (!pair.is_array() || pair.as_array().size() != 2) return fail(key, "a list of [name, value] pairs");
      Header h;
      if (!decode_bytes(pair.as_array()[0], key, h.name) || !decode_bytes(pair.as_array()[1], key, h.value))
        return false;
      out.push_back(std::move(h));
    }
    return true;
  }
  bool strings(std::string_view key, std::vector<std::string>& out) {
    Value* v = take(key);
    if (!v || v->is_null()) return true;
    if (!v->is_array()) return fail(key, "a list of strings");
    for (auto& s : v->as_array()) {
      if (!s.is_string()) return fail(key, "a list of strings");
      out.push_back(std::move(s.as_string()));
    }
    return true;
  }
  // An object member, handed to `f(Fields&)`.
  template <typename F>
  bool object(std::string_view key, F&& f) {
    Value* v = take(key);
    if (!v || v->is_null()) return true;
    if (!v->is_object()) return fail(key, "an object");
    Fields sub(std::move(v->as_object()), where_ + std::string(key) + ".", err_);
    return f(sub);
  }

  std::string& err() { return err_; }

 private:
  Value::Object obj_;
  std::vector<bool> used_;
  std::string where_;
  std::string& err_;
};

bool decode_certificate(Fields& f, Certificate& c) {
  bool ok = f.str("subject", c.subject) && f.str("issuer", c.issuer) && f.strings("sans", c.sans) &&
            f.str("sha256", c.sha256);
  c.extra = f.rest();
  return ok;
}

// Decodes `message` given the envelope's protocol; unknown combinations stay opaque.
bool decode_message(Value v, Protocol protocol, Message& out, std::string& err) {
  if (!v.is_object()) {
    err = "field 'message': expected an object";
    return false;
  }
  std::string kind;
  if (const Value* k = v.find("kind"); k && k->is_string()) kind = k->as_string();
  bool grpc = protocol == Protocol::grpc || protocol == Protocol::grpc_web;
  bool known = (protocol == Protocol::http && (kind == "request" || kind == "response")) ||
               (protocol == Protocol::ws && kind == "frame") ||
               (grpc && (kind == "start" || kind == "data" || kind == "end")) ||
               (protocol == Protocol::sse && kind == "event") || kind == "chunk" ||
               (protocol == Protocol::tls_handshake && kind == "handshake");
  if (!known) {
    out = OpaqueMessage{std::move(v)};
    return true;
  }
  Fields f(std::move(v.as_object()), "message.", err);
  f.take("kind");
  bool ok = true;
  bool is_grpc = grpc;
  if (protocol == Protocol::http && (kind == "request" || kind == "response")) {
    HttpMessage m;
    m.kind = kind == "request" ? HttpMessage::Kind::request : HttpMessage::Kind::response;
    ok = f.text_or_bytes("method", m.method) && f.text_or_bytes("scheme", m.scheme) &&
         f.text_or_bytes("authority", m.authority) && f.text_or_bytes("path", m.path) &&
         f.integer("status", m.status) && f.text_or_bytes("reason", m.reason) && f.str("version", m.version) &&
         f.headers("headers", m.headers) && f.headers("trailers", m.trailers) && f.text_or_bytes("body", m.body) &&
         f.integer("body_omitted", m.body_omitted);
    m.extra = f.rest();
    out = std::move(m);
  } else if (protocol == Protocol::ws && kind == "frame") {
    WsMessage m;
    int close_code = -1;
    ok = f.integer("opcode", m.opcode) && f.boolean("fin", m.fin) && f.boolean("rsv1", m.rsv1) &&
         f.boolean("rsv2", m.rsv2) && f.boolean("rsv3", m.rsv3) && f.boolean("masked", m.masked) &&
         f.boolean("compressed", m.compressed) && f.text_or_bytes("payload", m.payload) &&
         f.integer("close_code", close_code) && f.text_or_bytes("close_reason", m.close_reason);
    if (close_code >= 0) m.close_code = close_code;
    m.extra = f.rest();
    out = std::move(m);
  } else if (is_grpc && kind == "start") {
    GrpcStartMessage m;
    ok = f.str("service", m.service) && f.str("method", m.method) && f.headers("metadata", m.metadata) &&
         f.str("timeout", m.timeout);
    m.extra = f.rest();
    out = std::move(m);
  } else if (is_grpc && kind == "data") {
    GrpcDataMessage m;
    ok = f.boolean("compressed", m.compressed) && f.text_or_bytes("payload", m.payload);
    m.extra = f.rest();
    out = std::move(m);
  } else if (is_grpc && kind == "end") {
    GrpcEndMessage m;
    ok = f.integer("status", m.status) && f.text_or_bytes("message", m.message) && f.headers("trailers", m.trailers);
    m.extra = f.rest();
    out = std::move(m);
  } else if (protocol == Protocol::sse && kind == "event") {
    SseMessage m;
    int64_t retry = -1;
    ok = f.text_or_bytes("id", m.id) && f.text_or_bytes("event", m.event) && f.text_or_bytes("data", m.data) &&
         f.integer("retry", retry);
    if (retry >= 0) m.retry = retry;
    m.extra = f.rest();
    out = std::move(m);
  } else if (kind == "chunk") {
    RawMessage m;
    m.extra = f.rest();
    out = std::move(m);
  } else {
    TlsHandshakeMessage m;
    ok = f.str("side", m.side) && f.str("sni", m.sni) && f.strings("alpn_offered", m.alpn_offered) &&
         f.str("alpn", m.alpn) && f.str("version", m.version) && f.str("cipher", m.cipher) && f.str("ja3", m.ja3) &&
         f.str("ja3_hash", m.ja3_hash) && f.str("ja4", m.ja4) &&
         f.object("certificate", [&](Fields& c) { return decode_certificate(c, m.certificate.emplace()); });
    m.extra = f.rest();
    out = std::move(m);
  }
  return ok;
}

bool decode_context(Fields& f, Context& c) {
  bool ok = f.str("conn_id", c.conn_id) && f.str("client", c.client) && f.str("server", c.server) &&
            f.object("tls",
                     [&](Fields& t) {
                       TlsInfo& tls = c.tls.emplace();
                       bool r = t.str("version", tls.version) && t.str("cipher", tls.cipher) &&
                                t.str("sni", tls.sni) && t.str("alpn", tls.alpn);
                       tls.extra = t.rest();
                       return r;
                     }) &&
            f.time("opened", c.opened);
  c.extra = f.rest();
  return ok;
}

bool decode_envelope(Fields& f, Envelope& e) {
  std::string direction, protocol, variant;
  bool ok = f.str("stream_id", e.stream_id) && f.str("flow_id", e.flow_id) && f.integer("seq", e.seq) &&
            f.str("direction", direction) && f.str("protocol", protocol) && f.time("time", e.time) &&
            f.str("overlay", e.overlay) && f.raw("raw", e.raw) && f.str("variant", variant) &&
            f.str("modified_by", e.modified_by);
  if (!ok) return false;
  if (auto d = parse_direction(direction)) {
    e.direction = *d;
  } else {
    return f.fail("direction", "\"send\" or \"receive\"");
  }
  e.protocol = parse_protocol(protocol);
  if (e.protocol == Protocol::other) e.protocol_name = protocol;
  if (variant == "modified") {
    e.modified = true;
  } else if (!variant.empty() && variant != "original") {
    return f.fail("variant", "\"original\" or \"modified\"");
  }
  return true;
}

}  // namespace

core::Value to_value(const Record& r, Target target) { return std::visit(RecordEncoder{target}, r); }
core::Value to_value(const Envelope& e, Target target) { return RecordEncoder{target}(e); }

core::Result<Record> from_value(Value v) {
  if (!v.is_object()) return core::make_error("record is not an object");
  std::string type;
  if (const Value* t = v.find("type"); t && t->is_string()) type = t->as_string();
  if (type != "header" && type != "envelope" && type != "end" && type != "error")
    return Record{UnknownRecord{std::move(v)}};

  std::string err;
  Fields f(std::move(v.as_object()), type + " field ", err);
  f.take("type");
  bool ok = true;
  Record out;
  if (type == "header") {
    StreamHeader h;
    ok = f.str("format", h.format) && f.integer("version", h.version) && f.str("producer", h.producer) &&
         f.time("time", h.time);
    if (Value* l = f.take("listeners"); ok && l && l->is_array()) h.listeners = std::move(l->as_array());
    h.extra = f.rest();
    out = std::move(h);
  } else if (type == "envelope") {
    Envelope e;
    ok = decode_envelope(f, e);
    // variant_of, message, context, anomalies and tags need more than a scalar reader.
    if (ok) {
      if (Value* vo = f.take("variant_of"); vo && !vo->is_null()) {
        if (!vo->is_int() || vo->as_int() < 0) ok = f.fail("variant_of", "an unsigned integer");
        else e.variant_of = static_cast<uint64_t>(vo->as_int());
      }
    }
    if (ok) {
      if (Value* m = f.take("message"); m && !m->is_null()) ok = decode_message(std::move(*m), e.protocol, e.message, err);
    }
    ok = ok && f.object("context", [&](Fields& c) { return decode_context(c, e.context); });
    if (ok) {
      if (Value* a = f.take("anomalies"); a && !a->is_null()) {
        if (!a->is_array()) {
          ok = f.fail("anomalies", "a list");
        } else {
          for (auto& item : a->as_array()) {
            const Value* name = item.find("name");
            const Value* detail = item.find("detail");
            if (!name || !name->is_string()) {
              ok = f.fail("anomalies", "objects with a string 'name'");
              break;
            }
            e.anomalies.push_back(
                Anomaly{name->as_string(), detail && detail->is_string() ? detail->as_string() : std::string()});
          }
        }
      }
    }
    if (ok) {
      if (Value* tags = f.take("tags"); tags && !tags->is_null()) {
        if (!tags->is_object()) {
          ok = f.fail("tags", "an object of strings");
        } else {
          for (auto& m : tags->as_object()) {
            if (!m.value.is_string()) {
              ok = f.fail("tags", "an object of strings");
              break;
            }
            e.tags.emplace_back(m.key, std::move(m.value.as_string()));
          }
        }
      }
    }
    e.extra = f.rest();
    out = std::move(e);
  } else if (type == "end") {
    EndRecord r;
    ok = f.str("scope", r.scope) && f.str("stream_id", r.stream_id) && f.str("flow_id", r.flow_id) &&
         f.time("time", r.time) && f.str("reason", r.reason) && f.integer("bytes_sent", r.bytes_sent) &&
         f.integer("bytes_received", r.bytes_received);
    r.extra = f.rest();
    out = std::move(r);
  } else {
    ErrorRecord r;
    ok = f.str("stream_id", r.stream_id) && f.str("flow_id", r.flow_id) && f.time("time", r.time) &&
         f.str("code", r.code) && f.str("message", r.message);
    r.extra = f.rest();
    out = std::move(r);
  }
  if (!ok) return core::make_error(err.empty() ? "malformed " + type + " record" : err);
  return out;
}

}  // namespace sluice::envelope
