#include "envelope/record_codec.hpp"


#include <charconv>
#include <climits>
#include <cstring>
#include <optional>

#include "core/json.hpp"

#include "core/base64.hpp"
#include "core/utf8.hpp"

namespace sluice::envelope {
namespace {

using core::Value;

// ---------------------------------------------------------------------------------------------
// Encoding
//
// Each record is described once, as calls on an emitter: ValueEmitter builds a core::Value (for CBOR
// and for callers that want a tree), JsonEmitter writes JSON text straight into the output (the hot
// path of `sluice proxy`: no tree, and bodies are escaped or base64-encoded once, in place).

Value text_or_bytes(const Bytes& b, Target t) {
  if (t == Target::cbor) return Value::bytes(b);
  if (core::is_valid_utf8(b)) return Value(b);
  Value o = Value::object();
  o.add("base64", Value(core::base64_encode(b)));
  return o;
}

class ValueEmitter {
 public:
  explicit ValueEmitter(Target t) : t_(t) {}
  void obj_begin() { open(Value::object()); }
  void arr_begin() { open(Value::array()); }
  void obj_end() { close(); }
  void arr_end() { close(); }
  void key(std::string_view k) { keys_.back() = std::string(k); }
  void str(std::string_view s) { put(Value(s)); }
  void text_bytes(const Bytes& b) { put(text_or_bytes(b, t_)); }
  void raw_bytes(const Bytes& b) { put(t_ == Target::cbor ? Value::bytes(b) : Value(core::base64_encode(b))); }
  void num(int64_t n) { put(Value(n)); }
  void unum(uint64_t n) { put(Value(n)); }
  void boolean(bool b) { put(Value(b)); }
  void value(const Value& v) { put(v); }
  Value take() { return std::move(result_); }

 private:
  void open(Value v) {
    stack_.push_back(std::move(v));
    keys_.emplace_back();
  }
  void close() {
    Value v = std::move(stack_.back());
    stack_.pop_back();
    keys_.pop_back();
    put(std::move(v));
  }
  void put(Value v) {
    if (stack_.empty()) {
      result_ = std::move(v);
    } else if (stack_.back().is_object()) {
      stack_.back().add(keys_.back(), std::move(v));
    } else {
      stack_.back().as_array().push_back(std::move(v));
    }
  }
  Target t_;
  std::vector<Value> stack_;
  std::vector<std::string> keys_;
  Value result_;
};

class JsonEmitter {
 public:
  // `spill`, when set, takes the text written so far (and clears it) whenever it passes kSpillBytes,
  // so that a record with large bodies never exists in one piece.
  explicit JsonEmitter(std::string& out, const Spill* spill = nullptr) : out_(out), spill_(spill) {}
  void obj_begin() { open('{'); }
  void arr_begin() { open('['); }
  void obj_end() { close('}'); }
  void arr_end() { close(']'); }
  void key(std::string_view k) {
    sep();
    core::json_write_string(k, out_);
    out_.push_back(':');
    after_key_ = true;
  }
  void str(std::string_view s) {
    sep();
    core::json_write_string(s, out_);
  }
  void text_bytes(const Bytes& b) {
    sep();
    if (core::is_valid_utf8(b)) {
      out_.push_back('"');
      // In pieces that end between UTF-8 sequences.
      for (size_t at = 0; at < b.size();) {
        size_t end = std::min(b.size(), at + kPiece);
        while (end < b.size() && (static_cast<unsigned char>(b[end]) & 0xC0) == 0x80) --end;
        core::json_write_string_content(core::ByteView(b).substr(at, end - at), out_);
        at = end;
        maybe_spill();
      }
      out_.push_back('"');
    } else {
      out_.append("{\"base64\":\"");
      base64_pieces(b);
      out_.append("\"}");
    }
  }
  void raw_bytes(const Bytes& b) {
    sep();
    out_.push_back('"');
    base64_pieces(b);
    out_.push_back('"');
  }
  void num(int64_t n) { number(n); }
  void unum(uint64_t n) {
    if (n <= static_cast<uint64_t>(INT64_MAX)) number(static_cast<int64_t>(n)); else number(n);
  }
  void boolean(bool b) {
    sep();
    out_.append(b ? "true" : "false");
  }
  void value(const Value& v) {
    sep();
    core::json_write(v, out_);
  }

 private:
  template <typename N>
  void number(N n) {
    sep();
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, n);
    out_.append(buf, r.ptr);
  }
  void open(char c) {
    sep();
    out_.push_back(c);
    first_.push_back(true);
  }
  void close(char c) {
    out_.push_back(c);
    first_.pop_back();
  }
  // A comma before every member or element but the first; none right after a key.
  void sep() {
    if (after_key_) {
      after_key_ = false;
    } else if (!first_.empty()) {
      if (first_.back())
        first_.back() = false;
      else
        out_.push_back(',');
    }
  }
  // Base64 of consecutive pieces whose sizes are multiples of 3 is the base64 of the whole.
  void base64_pieces(const Bytes& b) {
    for (size_t at = 0; at < b.size(); at += kPiece) {
      core::base64_encode(core::ByteView(b).substr(at, kPiece), out_);
      maybe_spill();
    }
  }
  void maybe_spill() {
    if (spill_ && out_.size() >= kSpillBytes) (*spill_)(out_);
  }
  static constexpr size_t kPiece = 3u << 18;  // 768 KiB, a multiple of 3
  static constexpr size_t kSpillBytes = 1u << 20;

  std::string& out_;
  const Spill* spill_;
  std::vector<bool> first_;
  bool after_key_ = false;
};

template <typename E>
void headers_out(E& e, const Headers& hs) {
  e.arr_begin();
  for (const auto& h : hs) {
    e.arr_begin();
    e.text_bytes(h.name);
    e.text_bytes(h.value);
    e.arr_end();
  }
  e.arr_end();
}

template <typename E>
void strings_out(E& e, const std::vector<std::string>& v) {
  e.arr_begin();
  for (const auto& s : v) e.str(s);
  e.arr_end();
}

template <typename E>
void extra_out(E& e, const Extra& extra) {
  for (const auto& m : extra) {
    e.key(m.key);
    e.value(m.value);
  }
}

template <typename E>
void time_out(E& e, Timestamp t) {
  e.str(core::format_rfc3339(t));
}

// Where `bytes` starts in `raw` when raw ends with them (a body or payload the wire holds unchanged),
// so that it is written once: as `body_at`/`payload_at` instead of a second copy.
std::optional<uint64_t> suffix_at(const Bytes* raw, const Bytes& bytes) {
  if (!raw || bytes.empty() || bytes.size() > raw->size()) return std::nullopt;
  size_t at = raw->size() - bytes.size();
  if (std::memcmp(raw->data() + at, bytes.data(), bytes.size()) != 0) return std::nullopt;
  return at;
}

template <typename E>
struct MessageEncoder {
  E& e;
  const Bytes* raw = nullptr;  // the envelope's raw, when bodies it holds are written once

  template <typename B>
  void bytes_member(std::string_view key, std::string_view at_key, const B& b) {
    if (auto at = suffix_at(raw, b)) {
      e.key(at_key), e.unum(*at);
    } else {
      e.key(key), e.text_bytes(b);
    }
  }

  void operator()(const HttpMessage& m) {
    e.key("kind"), e.str(message_kind(Message{m}));
    if (m.kind == HttpMessage::Kind::request) {
      e.key("method"), e.text_bytes(m.method);
      e.key("scheme"), e.text_bytes(m.scheme);
      e.key("authority"), e.text_bytes(m.authority);
      e.key("path"), e.text_bytes(m.path);
    } else {
      e.key("status"), e.num(m.status);
      e.key("reason"), e.text_bytes(m.reason);
    }
    e.key("version"), e.str(m.version);
    e.key("headers"), headers_out(e, m.headers);
    if (!m.trailers.empty()) e.key("trailers"), headers_out(e, m.trailers);
    bytes_member("body", "body_at", m.body);
    if (m.body_omitted) e.key("body_omitted"), e.unum(m.body_omitted);
    extra_out(e, m.extra);
  }
  void operator()(const WsMessage& m) {
    e.key("kind"), e.str("frame");
    e.key("opcode"), e.num(m.opcode);
    e.key("fin"), e.boolean(m.fin);
    if (m.rsv1) e.key("rsv1"), e.boolean(true);
    if (m.rsv2) e.key("rsv2"), e.boolean(true);
    if (m.rsv3) e.key("rsv3"), e.boolean(true);
    e.key("masked"), e.boolean(m.masked);
    if (m.compressed) e.key("compressed"), e.boolean(true);
    bytes_member("payload", "payload_at", m.payload);
    if (m.close_code) {
      e.key("close_code"), e.num(*m.close_code);
      e.key("close_reason"), e.text_bytes(m.close_reason);
    }
    extra_out(e, m.extra);
  }
  void operator()(const GrpcStartMessage& m) {
    e.key("kind"), e.str("start");
    e.key("service"), e.str(m.service);
    e.key("method"), e.str(m.method);
    e.key("metadata"), headers_out(e, m.metadata);
    if (!m.timeout.empty()) e.key("timeout"), e.str(m.timeout);
    extra_out(e, m.extra);
  }
  void operator()(const GrpcDataMessage& m) {
    e.key("kind"), e.str("data");
    e.key("compressed"), e.boolean(m.compressed);
    bytes_member("payload", "payload_at", m.payload);
    extra_out(e, m.extra);
  }
  void operator()(const GrpcEndMessage& m) {
    e.key("kind"), e.str("end");
    e.key("status"), e.num(m.status);
    e.key("message"), e.text_bytes(m.message);
    e.key("trailers"), headers_out(e, m.trailers);
    extra_out(e, m.extra);
  }
  void operator()(const SseMessage& m) {
    e.key("kind"), e.str("event");
    e.key("id"), e.text_bytes(m.id);
    e.key("event"), e.text_bytes(m.event);
    e.key("data"), e.text_bytes(m.data);
    if (m.retry) e.key("retry"), e.num(*m.retry);
    extra_out(e, m.extra);
  }
  void operator()(const RawMessage& m) {
    e.key("kind"), e.str("chunk");
    extra_out(e, m.extra);
  }
  void operator()(const TlsHandshakeMessage& m) {
    e.key("kind"), e.str("handshake");
    e.key("side"), e.str(m.side);
    e.key("sni"), e.str(m.sni);
    e.key("alpn_offered"), strings_out(e, m.alpn_offered);
    e.key("alpn"), e.str(m.alpn);
    e.key("version"), e.str(m.version);
    e.key("cipher"), e.str(m.cipher);
    if (!m.ja3.empty()) e.key("ja3"), e.str(m.ja3);
    if (!m.ja3_hash.empty()) e.key("ja3_hash"), e.str(m.ja3_hash);
    if (!m.ja4.empty()) e.key("ja4"), e.str(m.ja4);
    if (m.certificate) {
      e.key("certificate");
      e.obj_begin();
      e.key("subject"), e.str(m.certificate->subject);
      e.key("issuer"), e.str(m.certificate->issuer);
      e.key("sans"), strings_out(e, m.certificate->sans);
      e.key("sha256"), e.str(m.certificate->sha256);
      extra_out(e, m.certificate->extra);
      e.obj_end();
    }
    extra_out(e, m.extra);
  }
  void operator()(const OpaqueMessage&) {}  // written whole by the caller
};

template <typename E>
void context_out(E& e, const Context& c) {
  e.obj_begin();
  e.key("conn_id"), e.str(c.conn_id);
  e.key("client"), e.str(c.client);
  e.key("server"), e.str(c.server);
  if (c.tls) {
    e.key("tls");
    e.obj_begin();
    e.key("version"), e.str(c.tls->version);
    e.key("cipher"), e.str(c.tls->cipher);
    e.key("sni"), e.str(c.tls->sni);
    e.key("alpn"), e.str(c.tls->alpn);
    extra_out(e, c.tls->extra);
    e.obj_end();
  }
  e.key("opened"), time_out(e, c.opened);
  extra_out(e, c.extra);
  e.obj_end();
}

template <typename E>
struct RecordEncoder {
  E& e;
  EncodeOptions options;

  void operator()(const StreamHeader& h) {
    e.obj_begin();
    e.key("type"), e.str("header");
    e.key("format"), e.str(h.format);
    e.key("version"), e.num(h.version);
    e.key("producer"), e.str(h.producer);
    e.key("time"), time_out(e, h.time);
    e.key("listeners"), e.value(Value(h.listeners));
    extra_out(e, h.extra);
    e.obj_end();
  }
  void operator()(const Envelope& env) {
    e.obj_begin();
    e.key("type"), e.str("envelope");
    e.key("stream_id"), e.str(env.stream_id);
    e.key("flow_id"), e.str(env.flow_id);
    e.key("seq"), e.unum(env.seq);
    e.key("direction"), e.str(to_string(env.direction));
    e.key("protocol"), e.str(env.protocol == Protocol::other ? std::string_view(env.protocol_name) : to_string(env.protocol));
    e.key("time"), time_out(e, env.time);
    if (!env.overlay.empty()) e.key("overlay"), e.str(env.overlay);
    e.key("raw"), e.raw_bytes(env.raw);
    e.key("message");
    if (const auto* opaque = std::get_if<OpaqueMessage>(&env.message)) {
      e.value(opaque->value);
    } else {
      e.obj_begin();
      std::visit(MessageEncoder<E>{e, options.inline_bodies ? nullptr : &env.raw}, env.message);
      e.obj_end();
    }
    e.key("context"), context_out(e, env.context);
    e.key("variant"), e.str(env.modified ? "modified" : "original");
    if (env.variant_of) e.key("variant_of"), e.unum(*env.variant_of);
    if (!env.modified_by.empty()) e.key("modified_by"), e.str(env.modified_by);
    e.key("anomalies");
    e.arr_begin();
    for (const auto& a : env.anomalies) {
      e.obj_begin();
      e.key("name"), e.str(a.name);
      e.key("detail"), e.str(a.detail);
      e.obj_end();
    }
    e.arr_end();
    e.key("tags");
    e.obj_begin();
    for (const auto& [k, v] : env.tags) e.key(k), e.str(v);
    e.obj_end();
    extra_out(e, env.extra);
    e.obj_end();
  }
  void operator()(const EndRecord& r) {
    e.obj_begin();
    e.key("type"), e.str("end");
    e.key("scope"), e.str(r.scope);
    e.key("stream_id"), e.str(r.stream_id);
    if (!r.flow_id.empty()) e.key("flow_id"), e.str(r.flow_id);
    e.key("time"), time_out(e, r.time);
    e.key("reason"), e.str(r.reason);
    e.key("bytes_sent"), e.unum(r.bytes_sent);
    e.key("bytes_received"), e.unum(r.bytes_received);
    extra_out(e, r.extra);
    e.obj_end();
  }
  void operator()(const ErrorRecord& r) {
    e.obj_begin();
    e.key("type"), e.str("error");
    e.key("stream_id"), e.str(r.stream_id);
    if (!r.flow_id.empty()) e.key("flow_id"), e.str(r.flow_id);
    e.key("time"), time_out(e, r.time);
    e.key("code"), e.str(r.code);
    e.key("message"), e.str(r.message);
    extra_out(e, r.extra);
    e.obj_end();
  }
  void operator()(const UnknownRecord& r) { e.value(r.value); }
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

// A body or payload written once (`body_at`/`payload_at`: where it starts in raw) into `out`.
bool from_raw(Fields& f, std::string_view key, const Bytes& raw, Bytes& out) {
  uint64_t at = UINT64_MAX;
  if (!f.integer(key, at)) return false;
  if (at == UINT64_MAX) return true;
  if (at > raw.size()) return f.fail(key, "an offset within raw");
  if (out.empty()) out.assign(raw, at);  // a writer that gave both: the copy counts
  return true;
}

// Decodes `message` given the envelope's protocol (and its `raw`, where a body may be held); unknown
// combinations stay opaque.
bool decode_message(Value v, Protocol protocol, const Bytes& raw, Message& out, std::string& err) {
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
         from_raw(f, "body_at", raw, m.body) && f.integer("body_omitted", m.body_omitted);
    m.extra = f.rest();
    out = std::move(m);
  } else if (protocol == Protocol::ws && kind == "frame") {
    WsMessage m;
    int close_code = -1;
    ok = f.integer("opcode", m.opcode) && f.boolean("fin", m.fin) && f.boolean("rsv1", m.rsv1) &&
         f.boolean("rsv2", m.rsv2) && f.boolean("rsv3", m.rsv3) && f.boolean("masked", m.masked) &&
         f.boolean("compressed", m.compressed) && f.text_or_bytes("payload", m.payload) &&
         from_raw(f, "payload_at", raw, m.payload) && f.integer("close_code", close_code) && f.text_or_bytes("close_reason", m.close_reason);
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
    ok = f.boolean("compressed", m.compressed) && f.text_or_bytes("payload", m.payload) &&
         from_raw(f, "payload_at", raw, m.payload);
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

core::Value to_value(const Record& r, Target target, EncodeOptions options) {
  ValueEmitter e(target);
  std::visit(RecordEncoder<ValueEmitter>{e, options}, r);
  return e.take();
}

core::Value to_value(const Envelope& env, Target target, EncodeOptions options) {
  ValueEmitter e(target);
  RecordEncoder<ValueEmitter>{e, options}(env);
  return e.take();
}

void write_json(const Record& r, std::string& out, const Spill* spill, EncodeOptions options) {
  JsonEmitter e(out, spill);
  std::visit(RecordEncoder<JsonEmitter>{e, options}, r);
}

void write_json(const Envelope& env, std::string& out, EncodeOptions options) {
  JsonEmitter e(out);
  RecordEncoder<JsonEmitter>{e, options}(env);
}

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
      if (Value* m = f.take("message"); m && !m->is_null()) ok = decode_message(std::move(*m), e.protocol, e.raw, e.message, err);
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
