#include "layer/http1_layer.hpp"

#include <algorithm>
#include <deque>

#include "core/ascii.hpp"
#include "core/base64.hpp"
#include "codec/sse.hpp"
#include "layer/grpc_web.hpp"
#include "layer/root_layer.hpp"
#include "layer/ws_layer.hpp"

namespace sluice::layer {

namespace {
using envelope::Direction;
using Ms = std::chrono::milliseconds;

core::Timestamp plus(core::Timestamp t, Ms d) { return core::Timestamp{t.ns + std::chrono::nanoseconds(d).count()}; }

// Without a step that needs it whole, a response body that is not all here with its head goes on as
// it comes, unless its Content-Length says it is small: then it is forwarded whole (one write) once
// complete, or as it comes after kStreamAfter (a small answer that trickles in).
constexpr uint64_t kSmallBody = 256u << 10;
constexpr std::chrono::milliseconds kStreamAfter{200};

}  // namespace

struct Http1Layer::Exchange {
  uint64_t number = 0;
  std::string flow_id;
  Message req, resp;
  std::string asked;  // where the request as it came points (named_destination): a step may change it
  std::string host;  // where to connect
  uint16_t port = 0;
  std::string key;  // host:port
  bool tls = false;  // TLS to the server
  std::string pool_key() const { return tls ? "tls " + key : key; }
  envelope::Context context;
  HeadEdit edit;
  bool local_connect = false;  // CONNECT answered by us once the server is up (regular mode)
  ConnId server = 0;
  bool server_ready = false;
  bool reused = false;
  bool retried = false;
  CommandId open_id = 0;
  CommandId req_pipeline = 0, resp_pipeline = 0;
  core::Bytes to_server;     // waiting for the connection
  std::optional<envelope::Envelope> pending_variant;  // the request as sent: recorded once it is
  core::Bytes sent_request;  // a buffered request as sent, for one retry on a stale pooled connection
  bool request_sent = false;
  core::Timestamp request_sent_at;
  bool response_begun = false;  // bytes of the final response went to the client
  bool server_extra = false;    // the server sent bytes after its response: do not reuse
  std::unique_ptr<codec::SseParser> sse;  // the response is an event stream
  // With steps, each event is a unit: every block of the stream waits here, in order, until the
  // events before it and itself have their verdicts (comment-only blocks wait for nothing else).
  struct SseBlock {
    CommandId id = 0;  // the event's RunPipeline; 0: not a unit
    core::Bytes bytes;
    std::optional<PipelineVerdict> verdict;
  };
  bool sse_units = false;
  std::deque<SseBlock> sse_queue;
  uint64_t sse_queued = 0;  // bytes in sse_queue
  bool sse_paused = false;  // reading from the server stopped while too much waits
  bool sse_ended = false;   // the response is complete: it is finished once the queue is empty
  std::optional<WsDeflate> websocket;  // a 101 to WebSocket, with its deflate parameters
  std::optional<GrpcWebUnits> grpc_web;  // with steps: the gRPC-Web units of the message that waits
  CommandId stream_timer = 0;  // a small response's body is late: it streams when this fires
};

Http1Layer::Http1Layer(ConnectionContext& ctx, std::optional<Http1Target> target)
    : ctx_(ctx), req_parser_(std::make_unique<Http1Parser>(Http1Parser::Type::request)), target_(std::move(target)),
      stream_id_(target_ ? ctx.new_stream_id() : ctx.conn_id()) {
  if (target_ && target_->idle_server)
    servers_[target_->idle_server] =
        ServerConn{(target_->tls ? "tls " : "") + authority_of(target_->host, target_->port, 0), true};
}

Http1Layer::~Http1Layer() = default;

uint64_t Http1Layer::record_limit() const { return ctx_.options().record_body_limit; }
uint64_t Http1Layer::buffer_limit() const { return record_limit() ? record_limit() : kUnlimitedBuffer; }

// ---- events ----------------------------------------------------------------------------------------

void Http1Layer::handle(const Event& event, core::Timestamp now, Commands& out) {
  if (state_ == State::closed) return;
  if (state_ == State::tunnel) {
    // Everything but late news of the pooled connections closed when the tunnel began concerns the child.
    auto retired = [this](ConnId c) { return std::find(retired_.begin(), retired_.end(), c) != retired_.end(); };
    if (const auto* d = std::get_if<DataReceived>(&event); d && retired(d->conn)) return;
    if (const auto* c = std::get_if<ConnectionClosed>(&event); c && retired(c->conn)) return;
    if (const auto* d = std::get_if<DataReceived>(&event))
      (d->conn == kClientConn ? bytes_from_client_ : bytes_from_server_) += d->data.size();
    to_tunnel(event, now, out);
    return;
  }
  if (std::holds_alternative<Start>(event)) {
    last_client_ = now;
  } else if (std::holds_alternative<Shutdown>(event)) {
    stopping_ = true;
    // Between exchanges (nothing read of the next one): close now. Otherwise after this exchange.
    if (!ex_) {
      close_all("shutdown", now, out);
      return;
    }
  } else if (const auto* d = std::get_if<DataReceived>(&event)) {
    if (d->conn == kClientConn) {
      on_client_data(d->data, now, out);
    } else if (ex_ && d->conn == ex_->server) {
      on_server_data(d->data, now, out);
    } else if (auto it = servers_.find(d->conn); it != servers_.end()) {
      // An idle pooled connection spoke unasked: it cannot be trusted with the next request.
      out.push_back(CloseConnection{d->conn, false});
      servers_.erase(it);
    }
  } else if (const auto* c = std::get_if<ConnectionClosed>(&event)) {
    if (c->conn == kClientConn) {
      on_client_closed(*c, now, out);
    } else if (ex_ && c->conn == ex_->server) {
      on_server_closed(*c, now, out);
    } else if (auto it = servers_.find(c->conn); it != servers_.end()) {
      out.push_back(CloseConnection{c->conn, false});
      servers_.erase(it);
    }
  } else if (const auto* o = std::get_if<OpenCompleted>(&event)) {
    on_open(*o, now, out);
  } else if (const auto* v = std::get_if<PipelineVerdict>(&event)) {
    on_verdict(*v, now, out);
  } else if (const auto* t = std::get_if<TimerFired>(&event)) {
    if (ex_ && t->id == ex_->stream_timer) {
      ex_->stream_timer = 0;
      Message& resp = ex_->resp;
      if (resp.have_head && !resp.complete && !resp.streaming && !ex_->resp_pipeline) start_streaming(resp, out);
      return;
    }
    if (t->id != timer_) return;
    timer_ = 0;
    if (deadline_kind_ != Deadline::none && now >= deadline_) {
      on_timeout(now, out);
      return;
    }
  }
  if (state_ == State::http) update_timer(now, out);
}

// ---- client side -----------------------------------------------------------------------------------

void Http1Layer::on_client_data(core::ByteView data, core::Timestamp now, Commands& out) {
  bytes_from_client_ += data.size();
  last_client_ = now;
  if (client_pos_ == client_in_.size()) {
    client_in_.clear();
    client_pos_ = 0;
  } else if (client_pos_ >= (64u << 10)) {  // a client that pipelines without pause: drop what was parsed
    client_in_.erase(0, client_pos_);
    client_pos_ = 0;
  }
  client_in_.append(data);
  pump_client(now, out);
}

void Http1Layer::pump_client(core::Timestamp now, Commands& out) {
  bool after_head = false;  // a body-less message completes on the next feed, even of nothing
  while (state_ == State::http && (after_head || client_pos_ < client_in_.size())) {
    after_head = false;
    if (ex_ && ex_->req.complete) break;  // a pipelined request waits for the response before it
    if (!ex_) {
      ex_ = std::make_unique<Exchange>();
      ex_->number = exchanges_++;
      ex_->flow_id = stream_id_ + "-" + std::to_string(ex_->number);
      ex_->req.direction = Direction::send;
      ex_->req.time = now;
      ex_->resp.direction = Direction::receive;
    }
    core::ByteView view = core::ByteView(client_in_).substr(client_pos_);
    size_t consumed = 0;
    auto st = req_parser_->feed(view, consumed);
    core::ByteView took = view.substr(0, consumed);
    client_pos_ += consumed;
    Message& req = ex_->req;
    switch (st) {
      case Http1Parser::Status::need_more:
        if (req.have_head) on_body(req, *req_parser_, took, now, out);
        break;
      case Http1Parser::Status::head:
        req.head = req_parser_->take_head();
        req.have_head = true;
        on_request_head(now, out);
        after_head = true;
        continue;
      case Http1Parser::Status::complete:  // a request always stops at its head first
        on_body(req, *req_parser_, took, now, out);
        on_request_complete(now, out);
        continue;
      case Http1Parser::Status::upgrade: return;  // the rest belongs to the tunnel, if the server agrees
      case Http1Parser::Status::error: on_request_error(now, out); return;
    }
    break;
  }
  // Bytes the exchange cannot take yet: stop reading the client while too many wait.
  size_t waiting = client_in_.size() - client_pos_ + (ex_ ? ex_->to_server.size() + ex_->req.held_out.size() : 0);
  if (state_ == State::http && !client_paused_ && waiting > kHighWater) {
    client_paused_ = true;
    out.push_back(PauseReading{kClientConn, true});
  } else if (client_paused_ && waiting <= kHighWater / 2) {
    client_paused_ = false;
    out.push_back(PauseReading{kClientConn, false});
  }
}

bool Http1Layer::authorized(const Http1Head& head) const {
  const std::string& cred = ctx_.options().proxy_auth;
  if (cred.empty() || target_) return true;  // inside a tunnel: the CONNECT was authorised
  bool reverse = ctx_.mode().kind == ModeSpec::Kind::reverse;
  auto value = find_header(head.headers, reverse ? "authorization" : "proxy-authorization");
  if (!value) return false;
  std::string_view v = *value;
  if (v.size() < 6 || !core::iequals(v.substr(0, 6), "basic ")) return false;
  v.remove_prefix(6);
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  auto decoded = core::base64_decode(v);
  return decoded && core::constant_time_equals(*decoded, cred);
}

bool Http1Layer::route(core::Timestamp now, Commands& out) {
  Exchange& x = *ex_;
  const Http1Head& h = x.req.head;
  const ModeSpec& mode = ctx_.mode();
  const ProxyOptions& opts = ctx_.options();
  bool connect = h.method == "CONNECT";
  if (target_) {
    if (connect) {
      answer(405, "Method Not Allowed", "sluice: CONNECT inside a tunnel is not served\n", now, out);
      return false;
    }
    x.host = target_->host;
    x.port = target_->port;
    x.tls = target_->tls;
    if (!h.target.starts_with('/') && h.target != "*") {
      if (auto url = parse_absolute_url(h.target)) x.edit.target = url->origin_form;
    }
    x.key = authority_of(x.host, x.port, 0);
    x.context = ctx_.envelope_context(x.key);
    x.asked = asked_destination(h, x.tls);
    return true;
  }
  if (!opts.proxy_auth.empty() && mode.kind != ModeSpec::Kind::reverse) x.edit.remove.push_back("Proxy-Authorization");
  switch (mode.kind) {
    case ModeSpec::Kind::reverse: {
      if (connect) {
        answer(405, "Method Not Allowed", "sluice: CONNECT is not served in reverse mode\n", now, out);
        return false;
      }
      x.host = mode.target_host;
      x.port = mode.target_port;
      x.tls = mode.target_scheme == "https";
      if (!h.target.starts_with('/') && h.target != "*") {
        auto url = parse_absolute_url(h.target);
        if (url) x.edit.target = url->origin_form;
      }
      if (!opts.keep_host_header) {
        std::string authority = authority_of(mode.target_host, mode.target_port, x.tls ? 443 : 80);
        if (find_header(h.headers, "host") != std::optional<std::string_view>(authority)) x.edit.host = authority;
      }
      break;
    }
    case ModeSpec::Kind::upstream:
    case ModeSpec::Kind::regular: {
      bool upstream = mode.kind == ModeSpec::Kind::upstream;
      if (connect) {
        auto hp = parse_host_port(h.target);
        if (!hp) {
          x.req.anomalies.push_back({"bad_connect_target", hp.error().message});
          answer(400, "Bad Request", "sluice: bad CONNECT target: " + hp.error().message + "\n", now, out);
          return false;
        }
        x.host = hp->first;
        x.port = hp->second;
        x.local_connect = !upstream;
      } else {
        if (h.target.starts_with('/') || h.target == "*") {
          answer(400, "Bad Request",
                 "sluice: this is a proxy; send absolute-form requests (GET http://host/path) or CONNECT, or run "
                 "sluice with --mode reverse:URL\n",
                 now, out);
          return false;
        }
        auto url = parse_absolute_url(h.target);
        if (!url) {
          x.req.anomalies.push_back({"bad_target", url.error().message});
          answer(400, "Bad Request", "sluice: " + url.error().message + "\n", now, out);
          return false;
        }
        if (url->scheme != "http" && !upstream && !opts.tls) {
          answer(501, "Not Implemented",
                 "sluice: " + url->scheme + ":// in absolute-form needs TLS to the server, which is off here\n", now,
                 out);
          return false;
        }
        x.host = url->host;
        x.port = url->port;
        if (!upstream) {
          x.tls = url->scheme == "https";
          // RFC 9112 §3.2.2: the target's authority replaces Host; origin servers get the origin form.
          x.edit.target = url->origin_form;
          std::string authority = authority_of(url->host, url->port, x.tls ? 443 : 80);
          if (find_header(h.headers, "host") != std::optional<std::string_view>(authority)) x.edit.host = authority;
        }
      }
      if (upstream) {
        x.host = mode.target_host;
        x.port = mode.target_port;
        if (!opts.upstream_auth.empty())
          x.edit.add.push_back({"Proxy-Authorization", "Basic " + core::base64_encode(opts.upstream_auth)});
      }
      break;
    }
    default: answer(501, "Not Implemented", "sluice: this mode does not serve HTTP\n", now, out); return false;
  }
  x.key = authority_of(x.host, x.port, 0);
  x.context = ctx_.envelope_context(x.key);
  if (!connect) x.asked = asked_destination(h, x.tls);
  return true;
}

std::string Http1Layer::asked_destination(const Http1Head& h, bool tls) {
  auto host = find_header(h.headers, "host");
  return named_destination(tls || h.target.starts_with("https://") ? "https" : "http", host ? *host : "", h.target);
}

bool Http1Layer::reroute(const envelope::Envelope& env, core::Timestamp now, Commands& out) {
  Exchange& x = *ex_;
  const auto* m = std::get_if<envelope::HttpMessage>(&env.message);
  if (!m || x.local_connect) return true;
  // An absolute-form target goes in origin form: the one the step left.
  if (x.edit.target && m->path.find("://") != std::string::npos)
    if (auto t = parse_absolute_url(m->path)) x.edit.target = t->origin_form;
  if (x.asked.empty() || x.request_sent || !x.to_server.empty()) return true;
  if (ctx_.mode().kind == ModeSpec::Kind::upstream && !target_) return true;  // the upstream proxy takes every URL
  std::string to = named_destination(m->scheme, m->authority, m->path);
  if (to.empty() || to == x.asked) return true;
  auto u = parse_absolute_url(to + "/");
  if (!u) return true;
  bool tls = u->scheme == "https";
  if (tls && !target_ && !ctx_.options().tls) {
    answer(501, "Not Implemented",
           "sluice: " + env.modified_by + " sent the request to " + to + ", which needs TLS to the server, off here\n",
           now, out);
    return false;
  }
  // The connection opened for where it pointed is not this request's any more: kept for a later one
  // when it is up (an open in flight is closed when it completes, as one no exchange waits for).
  if (x.server) {
    if (x.server_ready) servers_[x.server].idle = true;
    x.server = 0;
    x.server_ready = false;
    x.reused = false;
  }
  x.open_id = 0;
  x.host = u->host;
  x.port = u->port;
  x.tls = tls;
  x.asked = to;
  x.key = authority_of(x.host, x.port, 0);
  x.context = ctx_.envelope_context(x.key);
  // The head as it goes: an absolute-form target in origin form, Host as the mode writes it.
  x.edit.target.reset();
  if (m->path.find("://") != std::string::npos)
    if (auto t = parse_absolute_url(m->path)) x.edit.target = t->origin_form;
  if (!target_) {
    x.edit.host.reset();
    std::string authority = authority_of(x.host, x.port, x.tls ? 443 : 80);
    if (find_header(m->headers, "host") != std::optional<std::string_view>(authority)) x.edit.host = authority;
  }
  out.push_back(Log{Log::Level::info, "request sent to " + to + " (" + env.modified_by + ")"});
  if (!ctx_.options().lazy_connect) acquire_server(out);
  return true;
}

void Http1Layer::on_request_head(core::Timestamp now, Commands& out) {
  Exchange& x = *ex_;
  if (!authorized(x.req.head)) {
    bool reverse = ctx_.mode().kind == ModeSpec::Kind::reverse;
    answer(reverse ? 401 : 407, reverse ? "Unauthorized" : "Proxy Authentication Required",
           "sluice: authentication required\n", now, out,
           {{reverse ? "WWW-Authenticate" : "Proxy-Authenticate", "Basic realm=\"sluice\""}});
    return;
  }
  if (!route(now, out)) return;
  // Connect while the pipeline looks at the request (a CONNECT is answered once both are done), unless
  // servers are contacted only when a request is sent on (then send_to_server connects).
  bool eager = !ctx_.options().lazy_connect;
  if (x.req.head.method == "CONNECT" && x.local_connect) {
    if (eager) acquire_server(out);
    return;
  }
  if (eager) acquire_server(out);
  // A client that waits for 100 Continue sends its body only when the server asks: send the head now.
  auto expect = find_header(x.req.head.headers, "expect");
  bool has_body = x.req.head.chunked || x.req.head.content_length.value_or(0) > 0;
  if (expect && has_body && core::iequals(*expect, "100-continue")) start_streaming(x.req, out);
}

void Http1Layer::on_body(Message& m, Http1Parser& parser, core::ByteView wire, core::Timestamp now, Commands& out) {
  core::Bytes decoded = parser.take_body();
  auto chunks = parser.take_chunks();
  // Over the buffer limit: what was buffered goes out, and the rest follows as it arrives.
  if (!m.streaming && m.wire_total + wire.size() > buffer_limit()) start_streaming(m, out);
  m.wire_total += wire.size();
  uint64_t limit = record_limit();
  if (limit == 0 && m.streaming) {
    if (!wire.empty()) {  // unlimited recording: the rest of the body as h1-body overlays
      envelope::Envelope e = overlay(m, "h1-body", now);
      e.raw = core::Bytes(wire);
      out.push_back(EmitRecord{std::move(e)});
    }
  } else {
    if (m.body.empty() && m.head.content_length) {  // one allocation for what will be kept, not doublings
      uint64_t keep = std::min<uint64_t>(*m.head.content_length, limit ? limit : buffer_limit());
      m.body.reserve(static_cast<size_t>(keep));
    }
    auto room = [limit](size_t have) -> size_t { return !limit ? SIZE_MAX : have < limit ? limit - have : 0; };
    size_t keep_body = m.over_budget ? 0 : std::min(room(m.body.size()), decoded.size());
    size_t keep_wire = m.over_budget || !m.head.chunked ? 0 : std::min(room(m.wire.size()), wire.size());
    if (!m.hold.take(ctx_.options().record_budget, keep_body + keep_wire)) {
      // The proxy's memory for bodies is spent: this one goes on as it comes, and what it could not
      // keep is recorded as omitted.
      m.over_budget = true;
      keep_body = keep_wire = 0;
      start_streaming(m, out);
    }
    m.body.append(decoded, 0, keep_body);
    m.wire.append(wire.substr(0, keep_wire));
    for (auto& c : chunks) {
      if (m.over_budget || (limit && m.chunk_bytes + c.size() > limit)) break;
      m.chunk_bytes += c.size();
      m.chunks.push_back(std::move(c));
    }
  }
  m.body_total += decoded.size();
  bool sse_units = m.direction == Direction::receive && ex_->sse_units;
  if (m.streaming && !wire.empty() && !sse_units && m.head_unit) {
    m.held_out.append(wire);  // the head waits for its verdict: nothing of the message goes on yet
    if (m.direction == Direction::receive && m.held_out.size() > kHighWater && ex_->server)
      out.push_back(PauseReading{ex_->server, true});
  } else if (m.streaming && !wire.empty() && !sse_units) {
    if (m.direction == Direction::send)
      send_to_server(core::Bytes(wire), out);
    else
      send_to_client(core::Bytes(wire), out);
  }
  // An event stream: one `sse` envelope per event, as soon as its blank line has gone to the client.
  if (m.direction == Direction::receive && ex_->sse && !decoded.empty()) {
    ex_->sse->feed(decoded, [&](codec::SseEvent&& ev) {
      if (!ev.dispatched) {  // comments, a keep-alive: recorded in the body only
        if (sse_units) queue_sse_block(0, std::move(ev.raw));
        return;
      }
      envelope::Envelope e;
      e.stream_id = stream_id_;
      e.flow_id = ex_->flow_id;
      e.seq = seq_++;
      e.direction = Direction::receive;
      e.protocol = envelope::Protocol::sse;
      e.time = now;
      e.context = ex_->context;
      e.raw = std::move(ev.raw);
      e.message = envelope::SseMessage{std::move(ev.id), std::move(ev.event), std::move(ev.data), ev.retry, {}};
      if (!sse_units) {
        out.push_back(EmitRecord{std::move(e)});
        return;
      }
      CommandId id = ctx_.new_command();
      queue_sse_block(id, e.raw);
      out.push_back(RunPipeline{id, std::move(e)});
    });
    if (sse_units) flush_sse(now, out);
  }
}

void Http1Layer::queue_sse_block(CommandId id, core::Bytes bytes) {
  Exchange& x = *ex_;
  x.sse_queued += bytes.size();
  x.sse_queue.push_back(Exchange::SseBlock{id, std::move(bytes), std::nullopt});
}

void Http1Layer::flush_sse(core::Timestamp now, Commands& out) {
  Exchange& x = *ex_;
  if (x.resp.head_unit) return;  // the head goes first, once judged
  bool chunked = x.resp.head.chunked;
  auto send = [&](core::ByteView bytes) {
    if (bytes.empty()) return;  // (an empty chunk would end a chunked body)
    send_to_client(chunked ? body_chunk(bytes) : core::Bytes(bytes), out);
  };
  while (!x.sse_queue.empty() && (!x.sse_queue.front().id || x.sse_queue.front().verdict)) {
    Exchange::SseBlock& b = x.sse_queue.front();
    x.sse_queued -= b.bytes.size();
    if (!b.id)
      send(b.bytes);
    else if (b.verdict->verdict != Verdict::drop)  // forward, or respond (an event cannot be answered)
      send(b.verdict->envelope.raw);
    x.sse_queue.pop_front();
  }
  // Bounded: the server is not read while the events that wait hold this much.
  constexpr uint64_t kMaxHeld = 4u << 20;
  bool pause = x.sse_queued > kMaxHeld && !x.sse_ended;
  if (pause != x.sse_paused && x.server) {
    x.sse_paused = pause;
    out.push_back(PauseReading{x.server, pause});
  }
  if (x.sse_ended && x.sse_queue.empty()) {
    if (chunked) send_to_client(last_chunk({}), out);
    record_message(x.resp, now, out);
    finish_exchange(now, out);
  }
}

void Http1Layer::start_streaming(Message& m, Commands& out) {
  if (m.streaming) return;
  m.streaming = true;
  core::Bytes rest = m.head.chunked ? m.wire : m.body;
  if (judge_head(m, out)) {
    m.held_out = std::move(rest);
    return;
  }
  send_streamed(m, std::move(rest), out);
  // Unlimited recording: what was buffered is the canonical envelope; the rest follows as overlays.
  if (record_limit() == 0) record_message(m, m.time, out);
}

void Http1Layer::send_streamed(Message& m, core::Bytes rest, Commands& out) {
  core::Bytes first = m.direction == Direction::send ? edit_head(m.head.raw, ex_->edit) : m.head.raw;
  first += rest;
  if (m.direction == Direction::send) {
    send_to_server(std::move(first), out);
  } else {
    ex_->response_begun = true;
    send_to_client(std::move(first), out);
  }
}

bool Http1Layer::judge_head(Message& m, Commands& out) {
  if (!ctx_.options().step_units || m.head_judged) return false;
  m.head_judged = true;
  envelope::Envelope e = make_envelope(m, m.time, false);
  e.overlay = "head";
  if (size_t end = e.raw.find("\r\n\r\n"); end != core::Bytes::npos) e.raw.resize(end + 4);
  auto& msg = std::get<envelope::HttpMessage>(e.message);
  msg.body.clear();
  msg.trailers.clear();
  msg.body_omitted = 0;
  std::erase_if(e.tags, [](const auto& t) { return t.first == "incomplete" || t.first == "streamed"; });
  m.head_unit = ctx_.new_command();
  out.push_back(RunPipeline{m.head_unit, std::move(e)});
  return true;
}

bool Http1Layer::apply_head(Message& m, const envelope::Envelope& variant) {
  const auto* hm = std::get_if<envelope::HttpMessage>(&variant.message);
  if (!hm) return false;
  envelope::Headers framing;
  for (const auto& h : m.head.headers)
    if (is_framing_field(h.name)) framing.push_back(h);
  core::Bytes bytes = encode_http1_head(*hm, framing);
  bool request = m.direction == Direction::send;
  Http1Parser parser(request ? Http1Parser::Type::request : Http1Parser::Type::response);
  if (!request) parser.set_request_method(ex_->req.head.method);
  size_t consumed = 0;
  auto st = parser.feed(bytes, consumed);
  if (st != Http1Parser::Status::head && st != Http1Parser::Status::complete) return false;
  Http1Head head = parser.take_head();
  if (head.chunked != m.head.chunked || head.content_length != m.head.content_length) return false;
  if (request && head.target != m.head.target) {  // (where it now points: reroute)
    ex_->edit.target.reset();
    if (!head.target.starts_with('/') && head.target != "*")
      if (auto url = parse_absolute_url(head.target)) ex_->edit.target = url->origin_form;
  }
  m.head = std::move(head);
  m.tags.emplace_back("head_modified_by", variant.modified_by);
  return true;
}

void Http1Layer::on_head_verdict(Message& m, const PipelineVerdict& v, core::Timestamp now, Commands& out) {
  Exchange& x = *ex_;
  m.head_unit = 0;
  bool request = m.direction == Direction::send;
  if (v.verdict == Verdict::kill || (!request && v.verdict == Verdict::drop)) {
    close_all("killed", now, out);
    return;
  }
  if (request && v.verdict == Verdict::drop) {
    std::string by = v.decided_by.empty() ? std::string("a pipeline step") : v.decided_by;
    answer(403, "Forbidden", "sluice: the request was dropped by " + by + "\n", now, out);
    return;
  }
  if (request && v.verdict == Verdict::respond && v.reply) {
    x.req.head.keep_alive = false;  // the rest of its body is not read: the connection closes after
    answer_with(*v.reply, now, out);
    return;
  }
  if (v.envelope.modified && !apply_head(m, v.envelope)) {
    Log log{Log::Level::warn, "a step changed a head so that its body's framing changed or it no longer parses"};
    out.push_back(std::move(log));
    close_all("killed", now, out);
    return;
  }
  if (request && v.envelope.modified && !reroute(v.envelope, now, out)) return;
  auto expect = request ? find_header(m.head.headers, "expect") : std::nullopt;
  if (v.whole && expect && core::iequals(*expect, "100-continue") && m.body_total == 0 && !m.complete) {
    // The step wants the whole request: the client is told to go on, the body is buffered, and the
    // request goes through the pipeline whole once it is in (bounded by the limit, as any other).
    m.streaming = false;
    m.held_out.clear();
    send_to_client("HTTP/1.1 100 Continue\r\n\r\n", out);
    pump_client(now, out);
    return;
  }
  core::Bytes rest = std::move(m.held_out);
  m.held_out = core::Bytes();
  bool events = !request && x.sse_units;  // (its blocks wait in the event queue instead)
  send_streamed(m, events ? core::Bytes() : std::move(rest), out);
  if (record_limit() == 0 && !m.recorded) record_message(m, m.time, out);
  if (request) {
    if (m.complete) {
      record_message(m, now, out);
      x.request_sent = true;
      x.request_sent_at = now;
    }
    pump_client(now, out);
    return;
  }
  if (x.server) out.push_back(PauseReading{x.server, false});
  if (events) {
    flush_sse(now, out);  // (may finish the exchange)
  } else if (m.complete) {
    record_message(m, now, out);
    finish_exchange(now, out);
  }
}

void Http1Layer::on_request_complete(core::Timestamp now, Commands& out) {
  Exchange& x = *ex_;
  x.req.complete = true;
  if (x.req.streaming) {
    if (x.req.head_unit) return;  // recorded once its head is judged and its bytes went on
    record_message(x.req, now, out);
    x.request_sent = true;
    x.request_sent_at = now;
    return;
  }
  envelope::Envelope e = make_envelope(x.req, x.req.time, true);
  x.req.recorded = true;
  x.req_pipeline = ctx_.new_command();
  out.push_back(RunPipeline{x.req_pipeline, std::move(e)});
}

void Http1Layer::capture_partial_request() {
  // The bytes of this message the client sent, as far as they were read: the record of a refusal.
  Message& m = ex_->req;
  core::ByteView rest = core::ByteView(client_in_).substr(client_pos_);
  if (!m.have_head) {
    m.head = req_parser_->head();
    m.head.raw.append(rest);
    m.have_head = true;
  } else if (m.head.chunked) {
    m.wire.append(rest);
  }
}

void Http1Layer::on_request_error(core::Timestamp now, Commands& out) {
  capture_partial_request();
  ex_->req.anomalies.push_back({req_parser_->error_name(), req_parser_->error()});
  bool too_large = req_parser_->error_name() == "header_too_large";
  answer(too_large ? 431 : 400, too_large ? "Request Header Fields Too Large" : "Bad Request",
         "sluice: " + req_parser_->error() + "\n", now, out);
}

void Http1Layer::send_request(const envelope::Envelope& env, core::Timestamp now, Commands& out) {
  Exchange& x = *ex_;
  size_t head_end = env.raw.find("\r\n\r\n");
  head_end = head_end == core::Bytes::npos ? env.raw.size() : head_end + 4;
  core::Bytes bytes = edit_head(core::ByteView(env.raw).substr(0, head_end), x.edit);
  bytes.append(env.raw, head_end);
  if (bytes != env.raw) {
    envelope::Envelope variant = env;
    variant.raw = bytes;
    if (auto* m = std::get_if<envelope::HttpMessage>(&variant.message)) edit_message(*m, x.edit);
    variant.modified = true;
    variant.variant_of = env.seq;
    variant.modified_by = "sluice";
    variant.time = now;
    // Recorded when the bytes go out: a server that cannot be reached never saw them.
    if (x.server_ready)
      out.push_back(EmitRecord{std::move(variant)});
    else
      x.pending_variant = std::move(variant);
  }
  record_overlays(x.req, now, out);
  if (x.reused) x.sent_request = bytes;
  send_to_server(std::move(bytes), out);
  x.request_sent = true;
  x.request_sent_at = now;
}

void Http1Layer::on_client_closed(const ConnectionClosed& c, core::Timestamp now, Commands& out) {
  client_eof_ = true;
  bool mid_request = ex_ && !ex_->req.complete && (ex_->req.have_head || client_pos_ < client_in_.size());
  if (!c.reset && ex_ && ex_->req.complete) return;  // half-closed after its request: answer, then close
  if (!c.reset && !ex_ && client_pos_ == client_in_.size()) {
    close_all("closed", now, out);
    return;
  }
  if (ex_ && (mid_request || c.reset)) {
    // The client went away inside an exchange: record what came and mark the flow aborted.
    if (ex_->req.have_head && !ex_->req.recorded) record_message(ex_->req, now, out);
    if (ex_->resp.have_head && !ex_->resp.recorded) record_message(ex_->resp, now, out);
    envelope::EndRecord end;
    end.scope = "flow";
    end.stream_id = stream_id_;
    end.flow_id = ex_->flow_id;
    end.time = now;
    end.reason = "aborted";
    out.push_back(EmitRecord{std::move(end)});
  }
  close_all(c.reset ? (c.reason == "shutdown" ? "shutdown" : "reset") : "aborted", now, out);
}

// ---- server side -----------------------------------------------------------------------------------

void Http1Layer::acquire_server(Commands& out) {
  Exchange& x = *ex_;
  if (!x.local_connect) {
    for (auto& [id, s] : servers_) {
      if (s.idle && s.key == x.pool_key()) {
        s.idle = false;
        x.server = id;
        x.server_ready = true;
        x.reused = true;
        return;
      }
    }
  }
  x.server = ctx_.new_conn();
  x.open_id = ctx_.new_command();
  servers_[x.server] = ServerConn{x.pool_key(), false};
  out.push_back(OpenConnection{x.open_id, x.server, x.host, x.port, x.tls});
}

void Http1Layer::on_open(const OpenCompleted& o, core::Timestamp now, Commands& out) {
  if (!ex_ || o.id != ex_->open_id) {
    servers_.erase(o.conn);
    if (o.error_code.empty()) out.push_back(CloseConnection{o.conn, false});
    return;
  }
  Exchange& x = *ex_;
  x.open_id = 0;
  if (!o.error_code.empty()) {
    servers_.erase(o.conn);
    x.server = 0;
    fail(502, "Bad Gateway", o.error_code, o.error, now, out);
    return;
  }
  x.server_ready = true;
  last_server_ = now;
  if (x.local_connect) {
    if (x.req_pipeline == 0 && x.req.complete) start_tunnel({}, now, out);
    return;
  }
  if (x.pending_variant) {
    x.pending_variant->time = now;
    out.push_back(EmitRecord{std::move(*x.pending_variant)});
    x.pending_variant.reset();
  }
  if (!x.to_server.empty()) {
    core::Bytes b;
    b.swap(x.to_server);
    out.push_back(SendData{x.server, std::move(b)});
  }
  pump_client(now, out);
}

void Http1Layer::send_to_server(core::Bytes bytes, Commands& out) {
  Exchange& x = *ex_;
  if (!x.server && !x.open_id) acquire_server(out);  // lazy_connect: the first bytes that go out
  if (x.server_ready)
    out.push_back(SendData{x.server, std::move(bytes)});
  else
    x.to_server.append(bytes);
}

void Http1Layer::send_to_client(core::Bytes bytes, Commands& out) {
  out.push_back(SendData{kClientConn, std::move(bytes)});
}

void Http1Layer::on_server_data(core::ByteView data, core::Timestamp now, Commands& out) {
  bytes_from_server_ += data.size();
  last_server_ = now;
  Exchange& x = *ex_;
  if (x.resp.complete || x.resp_pipeline) {  // more than the response: the connection is not reusable
    x.server_extra = true;
    return;
  }
  if (!resp_parser_) {
    resp_parser_ = std::make_unique<Http1Parser>(Http1Parser::Type::response);
    resp_parser_->set_request_method(x.req.head.method);
  }
  size_t pos = 0;
  while (state_ == State::http && ex_) {
    Message& resp = ex_->resp;
    if (!resp.time.ns && pos < data.size()) resp.time = now;
    core::ByteView view = data.substr(pos);
    size_t consumed = 0;
    auto st = resp_parser_->feed(view, consumed);
    core::ByteView took = view.substr(0, consumed);
    pos += consumed;
    switch (st) {
      case Http1Parser::Status::need_more:
        if (resp.have_head) on_body(resp, *resp_parser_, took, now, out);
        // A body that is not all here: unless a step needs it whole, the client gets its bytes as
        // they come (a slow download, an answer without framing that trickles in, a client that does
        // not read: nothing large waits in memory for the whole). It is recorded all the same.
        if (resp.have_head && !resp.streaming && !ctx_.options().step_units && resp.head.status / 100 != 1) {
          if (!resp.head.content_length || *resp.head.content_length > kSmallBody) {
            start_streaming(resp, out);
          } else if (!x.stream_timer) {
            x.stream_timer = ctx_.new_command();
            out.push_back(StartTimer{x.stream_timer, kStreamAfter});
          }
        }
        return;
      case Http1Parser::Status::head:
        resp.head = resp_parser_->take_head();
        resp.have_head = true;
        on_response_head(out);
        continue;
      case Http1Parser::Status::complete:
      case Http1Parser::Status::upgrade: {
        if (!resp.have_head) {
          resp.head = resp_parser_->take_head();
          resp.have_head = true;
          on_response_head(out);
          if (state_ != State::http) return;
        }
        if (st == Http1Parser::Status::complete) on_body(resp, *resp_parser_, took, now, out);
        bool interim = resp.head.status / 100 == 1 && resp.head.status != 101;
        on_response_complete(data.substr(pos), now, out);
        if (interim && pos < data.size()) continue;
        return;
      }
      case Http1Parser::Status::error: {
        x.resp.anomalies.push_back({resp_parser_->error_name(), resp_parser_->error()});
        if (!x.resp.have_head) {
          x.resp.head = resp_parser_->head();
          x.resp.head.raw.append(data.substr(pos));
          x.resp.have_head = true;
        }
        if (!x.resp.recorded) record_message(x.resp, now, out);
        fail(502, "Bad Gateway", "bad_response",
             "the server's response is malformed (" + resp_parser_->error_name() + "): " + resp_parser_->error(), now,
             out);
        return;
      }
    }
  }
}

void Http1Layer::on_response_head(Commands& out) {
  Exchange& x = *ex_;
  Message& resp = x.resp;
  int status = resp.head.status;
  if (status / 100 == 1 && status != 101) return;  // interim: forwarded whole when it completes
  if (status == 101 && !x.req.head.upgrade) {
    resp.anomalies.push_back({"unexpected_upgrade", "101 Switching Protocols to a request that asked for none"});
    return;
  }
  auto type = find_header(resp.head.headers, "content-type");
  // Event streams go to the client as they arrive, whatever the body limit, and are recorded per event.
  if (type && core::iequals(type->substr(0, 17), "text/event-stream")) {
    x.sse = std::make_unique<codec::SseParser>();
    // With steps each event is a unit, sent in a chunk of its own (or as it is, when the body ends
    // with the connection). A body with a Content-Length or a content coding cannot be re-framed event
    // by event: its events are recorded, not held.
    auto coding = find_header(resp.head.headers, "content-encoding");
    x.sse_units = ctx_.options().step_units && !resp.head.content_length &&
                  (!coding || core::iequals(*coding, "identity"));
    start_streaming(resp, out);
  }
}

void Http1Layer::on_response_complete(core::ByteView rest, core::Timestamp now, Commands& out) {
  Exchange& x = *ex_;
  if (x.stream_timer) {
    out.push_back(CancelTimer{x.stream_timer});
    x.stream_timer = 0;
  }
  Message& resp = x.resp;
  resp.complete = true;
  int status = resp.head.status;
  if (status / 100 == 1 && status != 101) {
    // Interim (100 Continue, 103 Early Hints): straight to the client, then the next response.
    send_to_client(resp.head.raw, out);
    record_message(resp, now, out);
    resp = Message{};
    resp.direction = Direction::receive;
    return;
  }
  if (!rest.empty()) x.server_extra = true;
  if (status == 101 && !resp.anomalies.empty()) {
    record_message(resp, now, out);
    fail(502, "Bad Gateway", "bad_response", "the server switched protocols unasked", now, out);
    return;
  }
  if (status == 101 || (x.req.head.method == "CONNECT" && status / 100 == 2)) {
    if (status == 101) {  // read before recording takes the headers
      auto upgrade = find_header(resp.head.headers, "upgrade");
      if (upgrade && core::iequals(*upgrade, "websocket")) {
        auto ext = find_header(resp.head.headers, "sec-websocket-extensions");
        x.websocket = ext ? parse_ws_extensions(*ext) : WsDeflate{};
      }
    }
    send_to_client(resp.head.raw, out);
    x.response_begun = true;
    record_message(resp, now, out);
    start_tunnel(rest, now, out);
    return;
  }
  if (x.sse_units) {  // the last blocks go out after the events before them
    if (core::Bytes tail = x.sse->finish(); !tail.empty()) queue_sse_block(0, std::move(tail));
    x.sse_ended = true;
    flush_sse(now, out);
    return;
  }
  if (resp.streaming) {
    if (resp.head_unit) return;  // finished once its head is judged and its bytes went on
    record_message(resp, now, out);
    finish_exchange(now, out);
    return;
  }
  envelope::Envelope e = make_envelope(resp, resp.time, true);
  resp.recorded = true;
  x.resp_pipeline = ctx_.new_command();
  out.push_back(RunPipeline{x.resp_pipeline, std::move(e)});
}

void Http1Layer::on_server_closed(const ConnectionClosed& c, core::Timestamp now, Commands& out) {
  Exchange& x = *ex_;
  servers_.erase(x.server);
  if (x.resp.complete || x.resp_pipeline) {
    x.server_extra = true;  // closes after the response: nothing to reuse
    return;
  }
  if (!c.reset && resp_parser_) {
    if (resp_parser_->finish() == Http1Parser::Status::complete) {  // a body delimited by the close
      if (!x.resp.have_head) {
        x.resp.head = resp_parser_->head();
        x.resp.have_head = true;
      }
      on_body(x.resp, *resp_parser_, {}, now, out);
      x.server_extra = true;
      on_response_complete({}, now, out);
      return;
    }
  }
  bool nothing_back = !x.resp.have_head && (!resp_parser_ || x.resp.time.ns == 0);
  if (nothing_back && x.reused && !x.retried && !x.sent_request.empty()) {
    // A pooled connection the server had already closed: try once more on a fresh one.
    x.retried = true;
    x.reused = false;
    x.server_ready = false;
    x.to_server = std::move(x.sent_request);
    x.sent_request.clear();
    resp_parser_.reset();
    x.server = ctx_.new_conn();
    x.open_id = ctx_.new_command();
    servers_[x.server] = ServerConn{x.pool_key(), false};
    out.push_back(OpenConnection{x.open_id, x.server, x.host, x.port, x.tls});
    return;
  }
  x.server = 0;
  std::string what = c.reset ? "the server reset the connection" : "the server closed the connection";
  if (nothing_back) {
    fail(502, "Bad Gateway", c.reset ? "server_reset" : "server_closed", what + " without answering", now, out);
  } else {
    x.resp.anomalies.push_back({"truncated_message", what + " inside the response"});
    if (x.resp.have_head && !x.resp.recorded) record_message(x.resp, now, out);
    fail(502, "Bad Gateway", c.reset ? "server_reset" : "server_closed", what + " inside the response", now, out);
  }
}

// ---- both ------------------------------------------------------------------------------------------

envelope::Envelope Http1Layer::make_envelope(Message& m, core::Timestamp time, bool take) {
  envelope::Envelope e;
  e.stream_id = stream_id_;
  e.flow_id = ex_->flow_id;
  e.seq = seq_++;
  e.direction = m.direction;
  e.protocol = envelope::Protocol::http;
  e.time = time;
  e.context = ex_->context;
  envelope::HttpMessage msg;
  const Http1Head& h = m.head;
  if (h.is_request) {
    msg.kind = envelope::HttpMessage::Kind::request;
    msg.method = h.method;
    msg.path = h.target;
    if (h.method == "CONNECT") {
      msg.authority = h.target;
    } else {
      if (auto host = find_header(h.headers, "host")) msg.authority = std::string(*host);
      msg.scheme = ex_->tls || h.target.starts_with("https://") ? "https" : "http";
    }
  } else {
    msg.kind = envelope::HttpMessage::Kind::response;
    msg.status = h.status;
    msg.reason = h.reason;
  }
  msg.version = h.version;
  if (take)
    msg.headers = std::move(m.head.headers);
  else
    msg.headers = h.headers;
  if (m.complete) {
    if (m.direction == Direction::send && req_parser_) msg.trailers = req_parser_->trailers();
    if (m.direction == Direction::receive && resp_parser_) msg.trailers = resp_parser_->trailers();
  }
  msg.body_omitted = m.body_total > m.body.size() ? m.body_total - m.body.size() : 0;
  if (take) m.hold.release();  // the body moves on to the recorder
  size_t raw_size = h.raw.size() + (h.chunked ? m.wire.size() : m.body.size());
  if (take)
    e.raw = std::move(m.head.raw);
  else
    e.raw = h.raw;
  e.raw.reserve(raw_size);
  e.raw += h.chunked ? m.wire : m.body;
  if (take) {  // the message is recorded for good: move its body rather than hold two copies
    msg.body = std::move(m.body);
    m.body.clear();
    m.wire = core::Bytes();
  } else {
    msg.body = m.body;
  }
  // The proxy's own credentials are not kept in what is recorded (the field goes no further than this
  // proxy: it is removed before the request is sent on).
  if (h.is_request && !ctx_.options().proxy_auth.empty() && ctx_.mode().kind != ModeSpec::Kind::reverse &&
      find_header(msg.headers, "proxy-authorization")) {
    static constexpr std::string_view kMasked = "[masked by sluice]";
    for (auto& f : msg.headers)
      if (core::iequals(f.name, "proxy-authorization")) f.value = std::string(kMasked);
    e.raw = replace_field_values(e.raw, "proxy-authorization", kMasked);
    e.tags.emplace_back("masked", "proxy-authorization");
  }
  e.message = std::move(msg);
  e.anomalies = m.anomalies;
  if (m.streaming) e.tags.emplace_back("streamed", "true");
  for (const auto& t : m.tags) e.tags.push_back(t);
  if (!m.complete && m.have_head && m.anomalies.empty()) e.tags.emplace_back("incomplete", "true");
  return e;
}

void Http1Layer::record_message(Message& m, core::Timestamp now, Commands& out) {
  if (m.recorded) return;
  m.recorded = true;
  envelope::Envelope e = make_envelope(m, m.time.ns ? m.time : now, true);
  std::vector<envelope::Envelope> grpc_web = grpc_web_envelopes(e);
  out.push_back(EmitRecord{std::move(e)});
  if (m.complete) record_overlays(m, now, out);
  emit_numbered(std::move(grpc_web), out);
}

void Http1Layer::record_grpc_web(const envelope::Envelope& http, Commands& out) {
  emit_numbered(grpc_web_envelopes(http), out);
}

void Http1Layer::emit_numbered(std::vector<envelope::Envelope> envelopes, Commands& out) {
  for (auto& e : envelopes) {
    e.seq = seq_++;
    out.push_back(EmitRecord{std::move(e)});
  }
}

envelope::Envelope Http1Layer::overlay(const Message& m, std::string_view kind, core::Timestamp now) {
  envelope::Envelope e;
  e.stream_id = stream_id_;
  e.flow_id = ex_->flow_id;
  e.seq = seq_++;
  e.direction = m.direction;
  e.protocol = envelope::Protocol::http;
  e.time = now;
  e.overlay = std::string(kind);
  e.context = ex_->context;
  return e;
}

void Http1Layer::record_overlays(const Message& m, core::Timestamp now, Commands& out) {
  for (const auto& c : m.chunks) {
    envelope::Envelope e = overlay(m, "h1-chunk", now);
    e.raw = c;
    out.push_back(EmitRecord{std::move(e)});
  }
}

void Http1Layer::on_verdict(const PipelineVerdict& v, core::Timestamp now, Commands& out) {
  if (!ex_) return;
  Exchange& x = *ex_;
  for (auto& b : x.sse_queue) {
    if (b.id != v.id || b.verdict) continue;
    if (v.verdict == Verdict::kill) {  // only this stream, and on HTTP/1 that is the connection
      close_all("killed", now, out);
      return;
    }
    b.verdict = v;
    flush_sse(now, out);
    return;
  }
  if (v.id && (v.id == x.req.head_unit || v.id == x.resp.head_unit)) {
    on_head_verdict(v.id == x.req.head_unit ? x.req : x.resp, v, now, out);
    return;
  }
  if (x.grpc_web && x.grpc_web->take(v)) {
    if (x.grpc_web->done()) finish_grpc_web(now, out);
    return;
  }
  if (v.id != x.req_pipeline && v.id != x.resp_pipeline) return;
  if (v.verdict == Verdict::drop && v.id == x.req_pipeline) {
    // A dropped request gets a clear answer naming who dropped it; the server never sees it.
    x.req_pipeline = 0;
    std::string by = v.decided_by.empty() ? std::string("a pipeline step") : v.decided_by;
    answer(403, "Forbidden", "sluice: the request was dropped by " + by + "\n", now, out);
    return;
  }
  if (v.verdict == Verdict::drop || v.verdict == Verdict::kill) {
    // A response cannot be skipped without leaving the client waiting, nor a killed exchange finished:
    // both close.
    close_all("killed", now, out);
    return;
  }
  if (v.id == x.req_pipeline) {
    x.req_pipeline = 0;
    if (x.local_connect) {
      record_overlays(x.req, now, out);
      if (x.server_ready || ctx_.options().lazy_connect) start_tunnel({}, now, out);
      return;
    }
    if (v.verdict == Verdict::respond && v.reply) {
      record_grpc_web(v.envelope, out);
      answer_with(*v.reply, now, out);
      return;
    }
    if (v.envelope.modified && !reroute(v.envelope, now, out)) return;
    if (run_grpc_web(v.envelope, out)) return;
    send_request(v.envelope, now, out);
    return;
  }
  x.resp_pipeline = 0;
  if (run_grpc_web(v.envelope, out)) return;
  send_response(v.envelope, now, out);
}

void Http1Layer::send_response(const envelope::Envelope& env, core::Timestamp now, Commands& out) {
  Exchange& x = *ex_;
  send_to_client(env.raw, out);
  x.response_begun = true;
  record_overlays(x.resp, now, out);
  finish_exchange(now, out);
}

bool Http1Layer::run_grpc_web(const envelope::Envelope& http, Commands& out) {
  std::vector<envelope::Envelope> units = ctx_.options().step_units ? grpc_web_units(http) : std::vector<envelope::Envelope>{};
  if (units.empty()) {
    record_grpc_web(http, out);
    return false;
  }
  ex_->grpc_web.emplace().start(http, std::move(units), seq_, ctx_, out);
  return true;
}

void Http1Layer::finish_grpc_web(core::Timestamp now, Commands& out) {
  Exchange& x = *ex_;
  GrpcWebUnits call = std::move(*x.grpc_web);
  x.grpc_web.reset();
  GrpcWebOutcome o = grpc_web_outcome(call);
  bool request = call.http.direction == Direction::send;
  if (o.kind == GrpcWebOutcome::Kind::kill) {  // only this stream, and on HTTP/1 that is the connection
    close_all("killed", now, out);
    return;
  }
  if (o.kind == GrpcWebOutcome::Kind::respond) {
    answer_with(*o.reply, now, out);
    return;
  }
  // The message is made again from its units (their variants are what the stream records of the change,
  // as for gRPC over HTTP/2).
  envelope::Envelope env = std::move(call.http);
  if (o.changed) {
    env.raw = encode_http1(*o.changed);
    env.message = std::move(*o.changed);
  }
  if (request)
    send_request(env, now, out);
  else
    send_response(env, now, out);
}

void Http1Layer::finish_exchange(core::Timestamp now, Commands& out) {
  Exchange& x = *ex_;
  const Http1Head& rq = x.req.head;
  const Http1Head& rs = x.resp.head;
  bool close_delimited = !rs.chunked && !rs.content_length && x.req.head.method != "HEAD" && rs.status != 204 &&
                         rs.status != 304 && rs.status / 100 != 1;
  bool server_reusable = rs.keep_alive && rq.keep_alive && !x.server_extra && !close_delimited && x.req.complete &&
                         servers_.count(x.server);
  if (server_reusable) {
    servers_[x.server].idle = true;
  } else if (x.server) {
    out.push_back(CloseConnection{x.server, false});
    servers_.erase(x.server);
  }
  bool client_keep = rq.keep_alive && rs.keep_alive && !close_delimited && x.req.complete && !client_eof_ && !stopping_;
  bool refused_upgrade = rq.upgrade;
  ex_.reset();
  resp_parser_.reset();
  if (!client_keep) {
    close_all(stopping_ ? "shutdown" : "closed", now, out);
    return;
  }
  // The client asked to upgrade and the server said no: its parser must start over.
  if (refused_upgrade) req_parser_ = std::make_unique<Http1Parser>(Http1Parser::Type::request);
  last_client_ = now;
  pump_client(now, out);
}

void Http1Layer::start_tunnel(core::ByteView server_rest, core::Timestamp now, Commands& out) {
  Exchange& x = *ex_;
  if (x.local_connect) {
    core::Bytes raw = "HTTP/1.1 200 Connection established\r\n\r\n";
    send_to_client(raw, out);
    Message ok;
    ok.direction = Direction::receive;
    ok.head.is_request = false;
    ok.head.status = 200;
    ok.head.reason = "Connection established";
    ok.head.version = "HTTP/1.1";
    ok.head.raw = raw;
    ok.have_head = true;
    ok.complete = true;
    ok.time = now;
    envelope::Envelope e = make_envelope(ok, now);
    e.tags.emplace_back("synthesized", "sluice");
    out.push_back(EmitRecord{std::move(e)});
  }
  // Idle pooled connections have no use in a tunnel.
  for (auto& [id, s] : servers_) {
    if (id == x.server) continue;
    out.push_back(CloseConnection{id, false});
    retired_.push_back(id);
  }
  servers_.clear();
  if (timer_) {
    out.push_back(CancelTimer{timer_});
    timer_ = 0;
  }
  state_ = State::tunnel;
  ConnId server = x.server;
  if (x.local_connect)
    tunnel_ = make_tunnel_layer(ctx_, server, x.host, x.port);
  else if (x.websocket)
    tunnel_ = std::make_unique<WsLayer>(ctx_, server, x.key, ctx_.new_stream_id(), x.flow_id, *x.websocket);
  else  // another upgrade, or a CONNECT through an upstream proxy: bytes as they are
    tunnel_ = std::make_unique<RawLayer>(ctx_, server, x.key, ctx_.new_stream_id());
  to_tunnel(Start{}, now, out);
  ex_.reset();
  resp_parser_.reset();
  if (!server_rest.empty()) to_tunnel(DataReceived{server, server_rest}, now, out);
  if (client_pos_ < client_in_.size()) {
    core::Bytes rest = client_in_.substr(client_pos_);
    client_in_.clear();
    client_pos_ = 0;
    to_tunnel(DataReceived{kClientConn, rest}, now, out);
  }
  if (client_paused_) {
    client_paused_ = false;
    out.push_back(PauseReading{kClientConn, false});
  }
  if (client_eof_) to_tunnel(ConnectionClosed{kClientConn, false, {}}, now, out);
}

void Http1Layer::to_tunnel(const Event& event, core::Timestamp now, Commands& out) {
  size_t from = out.size();
  tunnel_->handle(event, now, out);
  // The tunnel closed the connection: this stream (the exchanges before the tunnel) ends after it.
  std::string reason;
  if (!tunnel_ended_ && closes_client(out, from, reason)) {
    tunnel_ended_ = true;
    end_stream(out, from, stream_id_, std::move(reason), now, bytes_from_client_, bytes_from_server_);
  }
}

void Http1Layer::answer_with(const envelope::Envelope& reply, core::Timestamp now, Commands& out) {
  Exchange& x = *ex_;
  record_overlays(x.req, now, out);
  core::ByteView data = reply.raw;
  auto parsed = parse_whole_response(data, x.req.head.method);
  if (!parsed) {
    fail(502, "Bad Gateway", "bad_reply",
         "a pipeline step answered with no complete HTTP/1 response (" + parsed.error().message + ")", now, out);
    return;
  }
  size_t pos = parsed->size;
  Message& m = x.resp;
  m.direction = Direction::receive;
  m.head = std::move(parsed->head);
  m.body = std::move(parsed->body);
  m.body_total = m.body.size();
  m.chunks = std::move(parsed->chunks);
  if (m.head.chunked) m.wire = core::Bytes(data.substr(m.head.raw.size(), pos - m.head.raw.size()));
  m.have_head = true;
  m.complete = true;
  m.time = now;
  m.tags = reply.tags;
  send_to_client(core::Bytes(data.substr(0, pos)), out);
  x.response_begun = true;
  record_message(m, now, out);
  finish_exchange(now, out);
}

void Http1Layer::answer(int status, std::string_view reason, const std::string& text, core::Timestamp now,
                        Commands& out, envelope::Headers extra) {
  Exchange& x = *ex_;
  if (x.context.conn_id.empty()) x.context = ctx_.envelope_context(x.key);
  if (x.req.have_head && !x.req.recorded) record_message(x.req, now, out);
  envelope::Headers headers = plain_text_headers(text, true);
  for (auto& h : extra) headers.push_back(std::move(h));
  core::Bytes raw = response_bytes(status, reason, headers, text);
  send_to_client(raw, out);
  Message m;
  m.direction = Direction::receive;
  m.head.is_request = false;
  m.head.status = status;
  m.head.reason = std::string(reason);
  m.head.version = "HTTP/1.1";
  m.head.headers = headers;
  m.head.raw = raw.substr(0, raw.size() - text.size());
  m.body = text;
  m.body_total = text.size();
  m.have_head = true;
  m.complete = true;
  m.time = now;
  envelope::Envelope e = make_envelope(m, now);
  e.tags.emplace_back("synthesized", "sluice");
  out.push_back(EmitRecord{std::move(e)});
  close_all(status >= 500 ? "error" : "closed", now, out);
}

void Http1Layer::fail(int status, std::string_view reason, std::string code, const std::string& message,
                      core::Timestamp now, Commands& out) {
  Exchange& x = *ex_;
  envelope::ErrorRecord err;
  err.stream_id = stream_id_;
  err.flow_id = x.flow_id;
  err.time = now;
  err.code = std::move(code);
  err.message = message;
  if (x.server && servers_.count(x.server)) {
    out.push_back(CloseConnection{x.server, false});
    servers_.erase(x.server);
  }
  if (x.response_begun) {  // the client already has part of a response: all we can do is close
    if (x.resp.have_head && !x.resp.recorded) record_message(x.resp, now, out);
    out.push_back(EmitRecord{std::move(err)});
    close_all("error", now, out);
    return;
  }
  if (x.req.have_head && !x.req.recorded) record_message(x.req, now, out);
  out.push_back(EmitRecord{std::move(err)});
  std::string target = x.key.empty() ? "the server" : x.key;
  answer(status, reason, "sluice: " + target + ": " + message + "\n", now, out);
}

// GCC 12 sees an uninitialised variant alternative when a loop grows the command vector (a false
// positive of -Wmaybe-uninitialized with std::variant; clang and the sanitizers agree it is fine).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
void Http1Layer::close_all(std::string reason, core::Timestamp now, Commands& out) {
  if (state_ == State::closed) return;
  state_ = State::closed;
  for (const auto& [id, s] : servers_) out.push_back(CloseConnection{id, false});
  servers_.clear();
  out.push_back(CloseConnection{kClientConn, false});
  if (timer_) out.push_back(CancelTimer{timer_});
  timer_ = 0;
  end_stream(out, out.size(), stream_id_, std::move(reason), now, bytes_from_client_, bytes_from_server_);
  ex_.reset();
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// ---- timeouts --------------------------------------------------------------------------------------

void Http1Layer::update_timer(core::Timestamp now, Commands& out) {
  const ProxyOptions& o = ctx_.options();
  Deadline kind = Deadline::none;
  core::Timestamp at;
  if (!ex_) {
    kind = Deadline::client_idle;
    at = plus(last_client_, o.idle_timeout);
  } else if (!ex_->req.have_head) {
    kind = Deadline::header;  // counted from the first byte, never extended: slow headers are cut off
    at = plus(ex_->req.time, o.header_timeout);
  } else if (ex_->req_pipeline || ex_->resp_pipeline || ex_->grpc_web || ex_->req.head_unit || ex_->resp.head_unit ||
             ex_->open_id) {
    kind = Deadline::none;  // a step or the connect timeout decides
  } else if (!ex_->req.complete) {
    kind = Deadline::body_idle;
    at = plus(last_client_, o.idle_timeout);
  } else if (!ex_->resp.time.ns && ex_->request_sent) {
    kind = Deadline::first_byte;
    at = plus(ex_->request_sent_at, o.first_byte_timeout);
  } else if (ex_->request_sent) {
    kind = Deadline::body_idle;
    at = plus(std::max(last_server_, ex_->request_sent_at), o.idle_timeout);
  }
  deadline_kind_ = kind;
  deadline_ = at;
  if (kind == Deadline::none) return;
  if (timer_ && timer_at_ <= at) return;  // fires first; it will re-arm for the rest
  // Armed no later than the shortest timeout from now, so that the deadlines of the next exchange
  // (which start later) rarely need a new timer: one timer per connection, re-armed when it fires.
  Ms shortest = std::min({o.header_timeout, o.first_byte_timeout, o.idle_timeout});
  core::Timestamp fire = std::min(at, plus(now, shortest));
  if (timer_) out.push_back(CancelTimer{timer_});
  timer_ = ctx_.new_command();
  timer_at_ = fire;
  out.push_back(StartTimer{timer_, std::chrono::nanoseconds(std::max<int64_t>(fire.ns - now.ns, 0))});
}

void Http1Layer::on_timeout(core::Timestamp now, Commands& out) {
  const ProxyOptions& o = ctx_.options();
  switch (deadline_kind_) {
    case Deadline::none: return;
    case Deadline::client_idle: close_all("timeout", now, out); return;
    case Deadline::header:
      ex_->req.anomalies.push_back({"header_timeout", "the request head did not arrive within " + describe_duration(o.header_timeout)});
      capture_partial_request();
      answer(408, "Request Timeout",
             "sluice: the request head did not arrive within " + describe_duration(o.header_timeout) + "\n", now, out);
      return;
    case Deadline::first_byte:
      fail(504, "Gateway Timeout", "first_byte_timeout", "no response within " + describe_duration(o.first_byte_timeout), now, out);
      return;
    case Deadline::body_idle:
      fail(504, "Gateway Timeout", "idle_timeout", "no data for " + describe_duration(o.idle_timeout), now, out);
      return;
  }
}

}  // namespace sluice::layer
