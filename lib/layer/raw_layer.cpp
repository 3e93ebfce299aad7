#include "layer/raw_layer.hpp"

#include <algorithm>

namespace sluice::layer {

RawLayer::RawLayer(ConnectionContext& ctx, std::string host, uint16_t port, std::string stream_id)
    : ctx_(ctx), host_(std::move(host)), port_(port), stream_id_(std::move(stream_id)) {
  send_.direction = envelope::Direction::send;
  receive_.direction = envelope::Direction::receive;
  std::string server = host_.find(':') != std::string::npos ? "[" + host_ + "]" : host_;
  context_ = ctx_.envelope_context(server + ":" + std::to_string(port_));
}

RawLayer::RawLayer(ConnectionContext& ctx, ConnId server, const std::string& server_name, std::string stream_id)
    : ctx_(ctx), port_(0), stream_id_(std::move(stream_id)), state_(State::open), server_(server) {
  send_.direction = envelope::Direction::send;
  receive_.direction = envelope::Direction::receive;
  send_.from = kClientConn, send_.to = server_;
  receive_.from = server_, receive_.to = kClientConn;
  context_ = ctx_.envelope_context(server_name);
}

RawLayer::Side* RawLayer::side_for_reply(CommandId id) {
  if (send_.in_pipeline == id) return &send_;
  if (receive_.in_pipeline == id) return &receive_;
  return nullptr;
}

void RawLayer::arm_idle(core::Timestamp now, Commands& out) {
  auto idle = ctx_.options().idle_timeout;
  if (idle.count() <= 0) return;
  int64_t left = std::chrono::nanoseconds(idle).count() - (now.ns - last_activity_.ns);
  idle_timer_ = ctx_.new_command();
  out.push_back(StartTimer{idle_timer_, std::chrono::nanoseconds(std::max<int64_t>(left, 0))});
}

void RawLayer::handle(const Event& event, core::Timestamp now, Commands& out) {
  if (state_ == State::done) return;
  if (std::holds_alternative<DataReceived>(event) || !idle_timer_) last_activity_ = now;
  on_event(event, now, out);
  if (state_ != State::done && !idle_timer_) arm_idle(now, out);
}

void RawLayer::on_event(const Event& event, core::Timestamp now, Commands& out) {
  if (const auto* t = std::get_if<TimerFired>(&event); t && t->id == idle_timer_) {
    idle_timer_ = 0;
    if (now.ns - last_activity_.ns >= std::chrono::nanoseconds(ctx_.options().idle_timeout).count()) {
      finish("timeout", now, out);
      return;
    }
    arm_idle(now, out);
    return;
  }
  if (std::holds_alternative<Start>(event)) {
    if (state_ != State::idle) return;  // adopted: the server is already open
    server_ = ctx_.new_conn();
    send_.from = kClientConn, send_.to = server_;
    receive_.from = server_, receive_.to = kClientConn;
    open_id_ = ctx_.new_command();
    state_ = State::connecting;
    // Open at once: server-first protocols (SMTP, Redis banners) speak before the client does.
    out.push_back(OpenConnection{open_id_, server_, host_, port_});
  } else if (const auto* d = std::get_if<DataReceived>(&event)) {
    on_data(d->conn == kClientConn ? send_ : receive_, d->data, now, out);
  } else if (const auto* o = std::get_if<OpenCompleted>(&event)) {
    if (o->id != open_id_) return;
    if (!o->error_code.empty()) {
      envelope::ErrorRecord err;
      err.stream_id = stream_id_;
      err.flow_id = stream_id_;
      err.time = now;
      err.code = o->error_code;
      err.message = o->error;
      out.push_back(EmitRecord{std::move(err)});
      finish("error", now, out);
      return;
    }
    state_ = State::open;
    pump(send_, out);
  } else if (const auto* v = std::get_if<PipelineVerdict>(&event)) {
    Side* side = side_for_reply(v->id);
    if (!side) return;
    side->in_pipeline = 0;
    if (v->verdict == Verdict::kill) {
      finish("killed", now, out);
      return;
    }
    if ((v->verdict == Verdict::forward || v->verdict == Verdict::respond) && !v->envelope.raw.empty()) out.push_back(SendData{side->to, v->envelope.raw});
    pump(*side, out);
  } else if (const auto* c = std::get_if<ConnectionClosed>(&event)) {
    if (c->reset) {
      finish(c->reason == "shutdown" ? "shutdown" : "reset", now, out);
      return;
    }
    Side& side = c->conn == kClientConn ? send_ : receive_;
    side.eof = true;
    pump(side, out);
  }
  if (state_ == State::open && send_.shut && receive_.shut) finish("closed", now, out);
}

void RawLayer::on_data(Side& side, core::ByteView data, core::Timestamp now, Commands& out) {
  side.bytes += data.size();
  side.queued_bytes += data.size();
  side.queue.emplace_back(now, core::Bytes(data));
  if (side.queued_bytes > kHighWater && !side.paused) {
    side.paused = true;
    out.push_back(PauseReading{side.from, true});
  }
  pump(side, out);
}

void RawLayer::pump(Side& side, Commands& out) {
  if (state_ != State::open || side.in_pipeline) return;
  if (!side.queue.empty()) {
    auto [time, bytes] = std::move(side.queue.front());
    side.queue.pop_front();
    side.queued_bytes -= bytes.size();
    if (summary_) {  // straight on, nothing recorded
      out.push_back(SendData{side.to, std::move(bytes)});
      if (side.paused && side.queued_bytes <= kHighWater / 2) {
        side.paused = false;
        out.push_back(PauseReading{side.from, false});
      }
      pump(side, out);
      return;
    }
    envelope::Envelope e;
    e.stream_id = stream_id_;
    e.flow_id = stream_id_;
    e.seq = seq_++;
    e.direction = side.direction;
    e.protocol = envelope::Protocol::raw;
    e.time = time;
    e.raw = std::move(bytes);
    e.message = envelope::RawMessage{};
    e.context = context_;
    side.in_pipeline = ctx_.new_command();
    out.push_back(RunPipeline{side.in_pipeline, std::move(e)});
    if (side.paused && side.queued_bytes <= kHighWater / 2) {
      side.paused = false;
      out.push_back(PauseReading{side.from, false});
    }
    return;
  }
  if (side.eof && !side.shut) {
    side.shut = true;
    out.push_back(CloseConnection{side.to, true});
  }
}

void RawLayer::finish(std::string reason, core::Timestamp now, Commands& out) {
  if (state_ == State::done) return;
  state_ = State::done;
  if (idle_timer_) out.push_back(CancelTimer{idle_timer_});
  idle_timer_ = 0;
  if (server_ && reason != "error") out.push_back(CloseConnection{server_, false});
  out.push_back(CloseConnection{kClientConn, false});
  envelope::EndRecord end;
  end.scope = "stream";
  end.stream_id = stream_id_;
  end.time = now;
  end.reason = std::move(reason);
  end.bytes_sent = send_.bytes;
  end.bytes_received = receive_.bytes;
  out.push_back(EmitRecord{std::move(end)});
}

}  // namespace sluice::layer
