#include "layer/layer.hpp"

namespace sluice::layer {

std::string describe_duration(std::chrono::milliseconds d) {
  auto ms = d.count();
  return ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms";
}
namespace {

std::string preview(core::ByteView b) {
  std::string s = std::to_string(b.size()) + " bytes \"";
  for (unsigned char c : b.substr(0, 32)) {
    if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
      s.push_back(static_cast<char>(c));
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      s += "\\x";
      s.push_back(kHex[c >> 4]);
      s.push_back(kHex[c & 15]);
    }
  }
  if (b.size() > 32) s += "...";
  return s + "\"";
}

std::string envelope_brief(const envelope::Envelope& e) {
  return std::string(envelope::to_string(e.direction)) + " " + std::string(envelope::to_string(e.protocol)) +
         " seq=" + std::to_string(e.seq) + " " + preview(e.raw);
}

}  // namespace

std::string describe(const Event& e) {
  struct V {
    std::string operator()(const Start&) const { return "Start()"; }
    std::string operator()(const DataReceived& d) const {
      return "DataReceived(conn=" + std::to_string(d.conn) + ", " + preview(d.data) + ")";
    }
    std::string operator()(const ConnectionClosed& c) const {
      return "ConnectionClosed(conn=" + std::to_string(c.conn) + (c.reset ? ", reset: " + c.reason : "") + ")";
    }
    std::string operator()(const OpenCompleted& o) const {
      return "OpenCompleted(#" + std::to_string(o.id) + ", conn=" + std::to_string(o.conn) +
             (o.error_code.empty() ? ", ok " + o.peer : ", " + o.error_code + ": " + o.error) + ")";
    }
    std::string operator()(const PipelineVerdict& v) const {
      static const char* kNames[] = {"forward", "drop", "kill", "respond"};
      return "PipelineVerdict(#" + std::to_string(v.id) + ", " + kNames[static_cast<int>(v.verdict)] + ", " +
             envelope_brief(v.envelope) + ")";
    }
    std::string operator()(const TimerFired& t) const { return "TimerFired(#" + std::to_string(t.id) + ")"; }
    std::string operator()(const Shutdown&) const { return "Shutdown()"; }
  };
  return std::visit(V{}, e);
}

std::string describe(const Command& c) {
  struct V {
    std::string operator()(const OpenConnection& o) const {
      return "OpenConnection(#" + std::to_string(o.id) + ", conn=" + std::to_string(o.conn) + ", " + o.host + ":" +
             std::to_string(o.port) + (o.tls ? ", tls)" : ")");
    }
    std::string operator()(const SendData& s) const {
      return "SendData(conn=" + std::to_string(s.conn) + ", " + preview(s.data) + ")";
    }
    std::string operator()(const CloseConnection& c) const {
      return "CloseConnection(conn=" + std::to_string(c.conn) + (c.half ? ", half" : "") + ")";
    }
    std::string operator()(const PauseReading& p) const {
      return std::string(p.paused ? "PauseReading" : "ResumeReading") + "(conn=" + std::to_string(p.conn) + ")";
    }
    std::string operator()(const StartTimer& t) const {
      return "StartTimer(#" + std::to_string(t.id) + ", " +
             std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(t.after).count()) + "ms)";
    }
    std::string operator()(const CancelTimer& t) const { return "CancelTimer(#" + std::to_string(t.id) + ")"; }
    std::string operator()(const RunPipeline& r) const {
      return "RunPipeline(#" + std::to_string(r.id) + ", " + envelope_brief(r.envelope) + ")";
    }
    std::string operator()(const CancelUnits& c) const { return "CancelUnits(" + c.stream_id + ")"; }
    std::string operator()(const EmitRecord& e) const {
      if (const auto* end = std::get_if<envelope::EndRecord>(&e.record))
        return "EmitRecord(end " + end->scope + " " + end->stream_id + " " + end->reason + " sent=" +
               std::to_string(end->bytes_sent) + " received=" + std::to_string(end->bytes_received) + ")";
      if (const auto* err = std::get_if<envelope::ErrorRecord>(&e.record))
        return "EmitRecord(error " + err->stream_id + " " + err->code + ": " + err->message + ")";
      if (const auto* env = std::get_if<envelope::Envelope>(&e.record)) return "EmitRecord(" + envelope_brief(*env) + ")";
      return "EmitRecord(other)";
    }
    std::string operator()(const Log& l) const { return "Log(" + l.message + ")"; }
  };
  return std::visit(V{}, c);
}

void end_stream(Commands& out, size_t from, std::string stream_id, std::string reason, core::Timestamp now,
                uint64_t bytes_sent, uint64_t bytes_received) {
  envelope::EndRecord end;
  end.scope = "stream";
  end.stream_id = std::move(stream_id);
  end.time = now;
  end.reason = std::move(reason);
  end.bytes_sent = bytes_sent;
  end.bytes_received = bytes_received;
  const std::string& id = end.stream_id;
  size_t at = from;
  for (; at < out.size(); ++at) {
    const auto* e = std::get_if<EmitRecord>(&out[at]);
    const auto* other = e ? std::get_if<envelope::EndRecord>(&e->record) : nullptr;
    if (other && other->scope == "stream" && envelope::nested_in(id, other->stream_id)) break;
  }
  out.insert(out.begin() + static_cast<std::ptrdiff_t>(at), EmitRecord{std::move(end)});
}

bool closes_client(const Commands& out, size_t from, std::string& reason) {
  bool closed = false;
  const std::string* last = nullptr;
  for (size_t i = from; i < out.size(); ++i) {
    if (const auto* c = std::get_if<CloseConnection>(&out[i])) {
      closed = closed || (c->conn == kClientConn && !c->half);
    } else if (const auto* e = std::get_if<EmitRecord>(&out[i])) {
      if (const auto* end = std::get_if<envelope::EndRecord>(&e->record); end && end->scope == "stream")
        last = &end->reason;
    }
  }
  if (closed) reason = last ? *last : "closed";
  return closed;
}

bool ends_stream(const Commands& out, size_t from, const std::string& stream_id) {
  for (size_t i = from; i < out.size(); ++i) {
    const auto* e = std::get_if<EmitRecord>(&out[i]);
    const auto* end = e ? std::get_if<envelope::EndRecord>(&e->record) : nullptr;
    if (end && end->scope == "stream" && end->stream_id == stream_id) return true;
  }
  return false;
}

envelope::Context ConnectionContext::envelope_context(std::string server) const {
  envelope::Context c;
  c.conn_id = conn_id_;
  c.client = client_;
  c.server = std::move(server);
  c.opened = opened_;
  c.tls = tls_;
  return c;
}

NextLayer::NextLayer(ConnectionContext& ctx, LayerDecider decider, bool decide_at_start,
                     std::chrono::milliseconds silence, std::chrono::milliseconds deadline, ConnId server)
    : ctx_(ctx), decider_(std::move(decider)), decide_at_start_(decide_at_start), silence_(silence),
      deadline_(deadline), server_(server) {}

bool NextLayer::decide(bool at_eof, core::Timestamp now, Commands& out) {
  constexpr size_t kMaxPeek = 64 * 1024;  // past this, the decider must choose with what it has
  child_ = decider_(ctx_, buffered_, at_eof || buffered_.size() >= kMaxPeek);
  if (!child_) return false;
  for (CommandId* t : {&timer_, &deadline_timer_}) {
    if (!*t) continue;
    out.push_back(CancelTimer{*t});
    *t = 0;
  }
  child_->handle(Start{}, now, out);
  if (!buffered_.empty()) {
    core::Bytes first;
    first.swap(buffered_);
    child_->handle(DataReceived{kClientConn, first}, now, out);
  }
  return true;
}

void NextLayer::handle(const Event& event, core::Timestamp now, Commands& out) {
  if (child_) {
    child_->handle(event, now, out);
    return;
  }
  if (given_up_) return;
  if (std::holds_alternative<Start>(event)) {
    if (decide_at_start_) {
      decide(false, now, out);
      return;
    }
    if (silence_.count() > 0) {
      timer_ = ctx_.new_command();
      out.push_back(StartTimer{timer_, silence_});
    }
    if (deadline_.count() > 0) {
      deadline_timer_ = ctx_.new_command();
      out.push_back(StartTimer{deadline_timer_, deadline_});
    }
    return;
  }
  if (const auto* t = std::get_if<TimerFired>(&event); t && deadline_timer_ && t->id == deadline_timer_) {
    deadline_timer_ = 0;
    given_up_ = true;
    envelope::ErrorRecord err;
    err.stream_id = ctx_.conn_id();
    err.time = now;
    err.code = "client_timeout";
    err.message = (buffered_.empty() ? "the client sent nothing within " : "the client's first bytes stalled for ") +
                  describe_duration(deadline_);
    out.push_back(EmitRecord{std::move(err)});
    if (timer_) out.push_back(CancelTimer{timer_});
    timer_ = 0;
    if (server_) out.push_back(CloseConnection{server_, false});
    out.push_back(CloseConnection{kClientConn, false});
    return;
  }
  if (const auto* t = std::get_if<TimerFired>(&event); t && t->id == timer_) {
    timer_ = 0;
    decide(true, now, out);  // the client stayed silent: a server-first protocol
    return;
  }
  if (const auto* d = std::get_if<DataReceived>(&event); d && d->conn == kClientConn) {
    buffered_.append(d->data);
    decide(false, now, out);
    return;
  }
  // A server that speaks (or closes) first: choose now with what the client sent.
  if (const auto* d = std::get_if<DataReceived>(&event); d && d->conn != kClientConn) {
    if (decide(true, now, out)) child_->handle(event, now, out);
    return;
  }
  if (const auto* c = std::get_if<ConnectionClosed>(&event); c && c->conn != kClientConn) {
    if (decide(true, now, out)) child_->handle(event, now, out);
    return;
  }
  if (const auto* c = std::get_if<ConnectionClosed>(&event); c && c->conn == kClientConn) {
    // Closed or reset before a decision: the child chosen from what came records those bytes and ends
    // its stream, so nothing of it can follow the connection's end.
    if (decide(true, now, out)) {
      child_->handle(event, now, out);
      return;
    }
    given_up_ = true;
    out.push_back(CloseConnection{kClientConn, false});
  }
}

}  // namespace sluice::layer
