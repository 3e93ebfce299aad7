#include "layer/regular_layer.hpp"

#include "core/ascii.hpp"

namespace sluice::layer {

namespace {
envelope::Headers plain_text_headers(const std::string& text) {
  return {{"Content-Type", "text/plain; charset=utf-8"},
          {"Content-Length", std::to_string(text.size())},
          {"Connection", "close"}};
}

core::Bytes response_bytes(int status, std::string_view reason, const envelope::Headers& headers,
                           const core::Bytes& body) {
  core::Bytes out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
  for (const auto& h : headers) out += h.name + ": " + h.value + "\r\n";
  out += "\r\n";
  out += body;
  return out;
}
}  // namespace

RegularLayer::RegularLayer(ConnectionContext& ctx) : ctx_(ctx) {}

envelope::Envelope RegularLayer::flow_envelope(uint64_t seq, core::Timestamp time) const {
  envelope::Envelope e;
  e.stream_id = ctx_.conn_id();
  e.flow_id = ctx_.conn_id() + "-0";
  e.seq = seq;
  e.direction = seq == 0 ? envelope::Direction::send : envelope::Direction::receive;
  e.protocol = envelope::Protocol::http;
  e.time = time;
  e.context = ctx_.envelope_context(target_);
  return e;
}

envelope::Envelope RegularLayer::request_envelope(core::Timestamp now) const {
  const Http1Head& h = parser_.head();
  envelope::Envelope e = flow_envelope(0, have_head_time_ ? head_time_ : now);
  envelope::HttpMessage m;
  m.method = h.method;
  m.path = h.target;
  m.version = h.version;
  m.headers = h.headers;
  if (h.method == "CONNECT") {
    m.authority = h.target;
  } else {
    for (const auto& hd : h.headers)
      if (core::iequals(hd.name, "host")) m.authority = hd.value;
    m.scheme = h.target.starts_with("https://") ? "https" : "http";
  }
  e.message = std::move(m);
  e.raw = h.raw;
  return e;
}

void RegularLayer::record_response(int status, std::string_view reason, const core::Bytes& raw,
                                   const envelope::Headers& headers, const core::Bytes& body, core::Timestamp now,
                                   Commands& out) {
  envelope::Envelope e = flow_envelope(1, now);
  envelope::HttpMessage m;
  m.kind = envelope::HttpMessage::Kind::response;
  m.status = status;
  m.reason = std::string(reason);
  m.version = "HTTP/1.1";
  m.headers = headers;
  m.body = body;
  e.message = std::move(m);
  e.raw = raw;
  e.tags.emplace_back("synthesized", "sluice");
  out.push_back(EmitRecord{std::move(e)});
}

void RegularLayer::refuse(int status, std::string_view reason, const std::string& text, core::Timestamp now,
                          Commands& out) {
  envelope::Headers headers = plain_text_headers(text);
  core::Bytes raw = response_bytes(status, reason, headers, text);
  out.push_back(SendData{kClientConn, raw});
  record_response(status, reason, raw, headers, text, now, out);
  out.push_back(CloseConnection{kClientConn, false});
  envelope::EndRecord end;
  end.stream_id = ctx_.conn_id();
  end.time = now;
  end.reason = status >= 500 ? "error" : "closed";
  end.bytes_sent = received_.size();
  end.bytes_received = raw.size();
  out.push_back(EmitRecord{std::move(end)});
  state_ = State::done;
}

void RegularLayer::relay(Commands& child_out, Commands& out) {
  for (auto& c : child_out) {
    if (const auto* o = std::get_if<OpenConnection>(&c)) open_id_ = o->id;
    out.push_back(std::move(c));
  }
}

void RegularLayer::on_head(core::ByteView rest, core::Timestamp now, Commands& out) {
  const Http1Head& h = parser_.head();
  if (h.method != "CONNECT") {
    out.push_back(EmitRecord{request_envelope(now)});
    refuse(501, "Not Implemented",
           "sluice: this build tunnels CONNECT requests only; absolute-form requests (" + h.method + " " + h.target +
               ") arrive with the HTTP/1 layer\n",
           now, out);
    return;
  }
  auto hp = parse_host_port(h.target);
  if (!hp) {
    envelope::Envelope req = request_envelope(now);
    req.anomalies.push_back({"bad_connect_target", hp.error().message});
    out.push_back(EmitRecord{std::move(req)});
    refuse(400, "Bad Request", "sluice: bad CONNECT target: " + hp.error().message + "\n", now, out);
    return;
  }
  target_ = h.target;
  out.push_back(EmitRecord{request_envelope(now)});
  state_ = State::tunnel;
  tunnel_ = std::make_unique<RawLayer>(ctx_, hp->first, hp->second, ctx_.new_stream_id());
  Commands child_out;
  tunnel_->handle(Start{}, now, child_out);
  if (!rest.empty()) tunnel_->handle(DataReceived{kClientConn, rest}, now, child_out);
  relay(child_out, out);
}

void RegularLayer::handle(const Event& event, core::Timestamp now, Commands& out) {
  if (state_ == State::done) return;
  if (state_ == State::tunnel) {
    if (const auto* o = std::get_if<OpenCompleted>(&event); o && o->id == open_id_) {
      if (o->error_code.empty()) {
        core::Bytes raw = "HTTP/1.1 200 Connection established\r\n\r\n";
        out.push_back(SendData{kClientConn, raw});
        record_response(200, "Connection established", raw, {}, {}, now, out);
      } else {
        std::string text = "sluice: cannot connect to " + target_ + ": " + o->error + "\n";
        envelope::Headers headers = plain_text_headers(text);
        core::Bytes raw = response_bytes(502, "Bad Gateway", headers, text);
        out.push_back(SendData{kClientConn, raw});
        record_response(502, "Bad Gateway", raw, headers, text, now, out);
      }
    }
    Commands child_out;
    tunnel_->handle(event, now, child_out);
    relay(child_out, out);
    return;
  }
  // Reading the request head.
  if (const auto* d = std::get_if<DataReceived>(&event); d && d->conn == kClientConn) {
    if (!have_head_time_) {
      head_time_ = now;
      have_head_time_ = true;
    }
    received_.append(d->data);
    size_t consumed = 0;
    switch (parser_.feed(d->data, consumed)) {
      case Http1Parser::Status::need_more: return;
      case Http1Parser::Status::head:
      case Http1Parser::Status::complete:
      case Http1Parser::Status::upgrade: on_head(d->data.substr(consumed), now, out); return;
      case Http1Parser::Status::error: {
        envelope::Envelope req = request_envelope(now);
        req.raw = received_;
        req.anomalies.push_back({parser_.error_name(), parser_.error()});
        out.push_back(EmitRecord{std::move(req)});
        bool too_large = parser_.error_name() == "header_too_large";
        refuse(too_large ? 431 : 400, too_large ? "Request Header Fields Too Large" : "Bad Request",
               "sluice: " + parser_.error() + "\n", now, out);
        return;
      }
    }
  }
  if (std::holds_alternative<ConnectionClosed>(event)) {
    out.push_back(CloseConnection{kClientConn, false});
    if (!received_.empty()) {
      envelope::EndRecord end;
      end.stream_id = ctx_.conn_id();
      end.time = now;
      end.reason = "aborted";
      end.bytes_sent = received_.size();
      out.push_back(EmitRecord{std::move(end)});
    }
    state_ = State::done;
  }
}

}  // namespace sluice::layer
