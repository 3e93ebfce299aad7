#pragma once
// LayerDriver: runs a layer the way the runtime would, answering its commands at once, and collects
// what it sent and recorded. For tests that feed whole conversations at many split points, where a
// Playbook transcript would be too long to write by hand.
//
//   LayerDriver d(std::make_unique<Http1Layer>(ctx));
//   d.client("GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n");   // OpenConnection -> ok, RunPipeline -> forward
//   d.server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");  // to the last connection opened
//   EXPECT_EQ(d.sent[1], "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "layer/http1_wire.hpp"
#include "layer/layer.hpp"

namespace sluice::test_support {

class LayerDriver {
 public:
  explicit LayerDriver(std::unique_ptr<layer::Layer> layer) : layer_(std::move(layer)) { feed(layer::Start{}); }

  // Refuse the next connections with this code instead of connecting ("" connects).
  std::string refuse_with;
  // Hold pipeline verdicts instead of answering them at once (answer with release()).
  bool hold_pipeline = false;
  // Hold connection attempts (answer with complete_opens()).
  bool hold_opens = false;
  // How the pipeline answers (at once, or on release()): forward, drop, kill or respond (with a small
  // 200 "ok"), and whether a step modified the unit first (an HTTP message gets a header more and its
  // bytes made again, as a step's edit is).
  layer::Verdict verdict = layer::Verdict::forward;
  bool modify = false;
  bool whole = false;  // with forward: the step asks for the whole message (a head unit's answer)

  // Events the driver makes (replies) queue behind the one being handled, as in the runtime: no
  // recursion, however long the conversation.
  void feed(const layer::Event& e) {
    events_.push_back(e);
    if (running_) return;
    running_ = true;
    while (!events_.empty()) {
      layer::Event ev = std::move(events_.front());
      events_.pop_front();
      layer::Commands out;
      layer_->handle(ev, now, out);
      for (auto& c : out) pending_.push_back(std::move(c));
      run();
    }
    running_ = false;
  }
  void client(const std::string& bytes) { data(layer::kClientConn, bytes); }
  void server(const std::string& bytes) { data(last_opened, bytes); }
  void data(layer::ConnId conn, const std::string& bytes) {
    owned_.push_back(bytes);
    feed(layer::DataReceived{conn, owned_.back()});
    owned_.clear();  // handled: the view is not used again
  }
  void close(layer::ConnId conn, bool reset = false) {
    feed(layer::ConnectionClosed{conn, reset, reset ? "connection reset by peer" : ""});
  }
  void complete_opens(const std::string& code = "") {
    auto held = std::move(held_opens_);
    held_opens_.clear();
    for (auto& o : held)
      feed(layer::OpenCompleted{o.id, o.conn, code, code.empty() ? "" : code + " (test)", code.empty() ? "peer" : ""});
  }
  // The pipeline's answer from here on, as a fuzz target picks it (pick 0..7): next most often, then
  // modified, drop, kill or respond; held (given at release()) or at once.
  void pick_verdict(unsigned pick, bool hold) {
    static constexpr layer::Verdict kVerdicts[] = {layer::Verdict::forward, layer::Verdict::forward,
                                                   layer::Verdict::forward, layer::Verdict::forward,
                                                   layer::Verdict::drop,    layer::Verdict::kill,
                                                   layer::Verdict::respond, layer::Verdict::forward};
    verdict = kVerdicts[pick & 7];
    modify = (pick & 7) == 3;
    whole = pick & 8;
    hold_pipeline = hold;
    if (!hold_pipeline) release();
  }
  void release() {
    auto held = std::move(held_);
    held_.clear();
    for (auto& r : held) feed(answer(std::move(r)));
  }
  // The verdict the pipeline gives `r` under the settings above.
  layer::PipelineVerdict answer(layer::RunPipeline r) const {
    layer::PipelineVerdict v{r.id, verdict, std::move(r.envelope)};
    v.whole = whole;
    if (modify) {
      v.envelope.modified = true;  // as the pipeline marks a step's variant
      if (auto* m = std::get_if<envelope::HttpMessage>(&v.envelope.message)) {
        m->headers.push_back({"X-Step", "1"});
        v.envelope.raw = layer::encode_http1(*m);
      } else {
        v.envelope.raw += "+";
      }
    }
    if (verdict == layer::Verdict::respond) {
      envelope::Envelope reply;
      envelope::HttpMessage m;
      m.kind = envelope::HttpMessage::Kind::response;
      m.status = 200;
      m.reason = "OK";
      m.version = "HTTP/1.1";
      m.body = "ok";
      reply.raw = layer::encode_http1(m);
      reply.message = std::move(m);
      v.reply = std::move(reply);
    }
    if (verdict != layer::Verdict::forward) v.decided_by = "test";
    return v;
  }
  void advance(std::chrono::milliseconds ms) { now.ns += std::chrono::nanoseconds(ms).count(); }
  // Fires every timer due by `now`.
  void fire_timers() {
    auto timers = timers_;
    for (const auto& [id, at] : timers) {
      if (at.ns > now.ns || !timers_.count(id)) continue;
      timers_.erase(id);
      feed(layer::TimerFired{id});
    }
  }

  // Envelopes recorded (pipeline or EmitRecord), in order.
  std::vector<envelope::Envelope> envelopes() const {
    std::vector<envelope::Envelope> out;
    for (const auto& r : records)
      if (const auto* e = std::get_if<envelope::Envelope>(&r)) out.push_back(*e);
    return out;
  }
  template <typename T>
  std::vector<T> records_of() const {
    std::vector<T> out;
    for (const auto& r : records)
      if (const auto* e = std::get_if<T>(&r)) out.push_back(*e);
    return out;
  }
  std::string sent_to_servers() const {
    std::string all;
    for (const auto& [conn, bytes] : sent)
      if (conn != layer::kClientConn) all += bytes;
    return all;
  }

  core::Timestamp now{1'763'700'000'000'000'000};
  std::map<layer::ConnId, std::string> sent;   // bytes sent per connection
  std::vector<layer::OpenConnection> opened;
  std::vector<layer::CloseConnection> closed;
  std::vector<envelope::Record> records;
  std::map<layer::ConnId, bool> paused;  // PauseReading's last word per connection
  layer::ConnId last_opened = 0;

 private:
  void run() {
    while (!pending_.empty()) {
      layer::Command c = std::move(pending_.front());
      pending_.pop_front();
      if (auto* o = std::get_if<layer::OpenConnection>(&c)) {
        opened.push_back(*o);
        last_opened = o->conn;
        if (hold_opens) {
          held_opens_.push_back(*o);
          continue;
        }
        std::string code = refuse_with;
        feed(layer::OpenCompleted{o->id, o->conn, code, code.empty() ? "" : code + " (test)", code.empty() ? "peer" : ""});
      } else if (auto* s = std::get_if<layer::SendData>(&c)) {
        sent[s->conn] += s->data;
      } else if (auto* cl = std::get_if<layer::CloseConnection>(&c)) {
        closed.push_back(*cl);
      } else if (auto* r = std::get_if<layer::RunPipeline>(&c)) {
        records.push_back(r->envelope);
        if (hold_pipeline)
          held_.push_back(std::move(*r));
        else
          feed(answer(std::move(*r)));
      } else if (auto* e = std::get_if<layer::EmitRecord>(&c)) {
        records.push_back(std::move(e->record));
      } else if (auto* t = std::get_if<layer::StartTimer>(&c)) {
        timers_[t->id] = core::Timestamp{now.ns + t->after.count()};
      } else if (auto* ct = std::get_if<layer::CancelTimer>(&c)) {
        timers_.erase(ct->id);
      } else if (auto* p = std::get_if<layer::PauseReading>(&c)) {
        paused[p->conn] = p->paused;
      }
    }
  }

  std::unique_ptr<layer::Layer> layer_;
  std::deque<layer::Command> pending_;
  std::deque<layer::Event> events_;
  bool running_ = false;
  std::deque<std::string> owned_;  // a deque: growing it never moves the bytes a queued view points at
  std::vector<layer::RunPipeline> held_;
  std::vector<layer::OpenConnection> held_opens_;
  std::map<layer::CommandId, core::Timestamp> timers_;
};

}  // namespace sluice::test_support
