#pragma once
// Playbook: scripted tests for sans-IO layers, after mitmproxy's tutils.Playbook.
//
//   Playbook p(std::make_unique<RawLayer>(ctx, "127.0.0.1", 7000, "s"));
//   p >> Start{} << "OpenConnection(#1, conn=1, 127.0.0.1:7000)";
//   p >> data(kClientConn, "hi") << "RunPipeline(#2, send raw seq=0 2 bytes \"hi\")";
//   p >> p.forward(2) << "SendData(conn=1, 2 bytes \"hi\")";
//   EXPECT_TRUE(p.check());
//
// Each `>>` feeds an event at once; each `<<` expects the next command the layer produced, as
// layer::describe() prints it. check() fails on any mismatch or unexpected command and prints the whole
// transcript, marking where expectation and reality part.
#include <gtest/gtest.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "layer/layer.hpp"

namespace sluice::test_support {

struct DataIn {
  layer::ConnId conn;
  std::string bytes;
};
inline DataIn data(layer::ConnId conn, std::string bytes) { return DataIn{conn, std::move(bytes)}; }

class Playbook {
 public:
  explicit Playbook(std::unique_ptr<layer::Layer> layer) : layer_(std::move(layer)) {}

  Playbook& operator>>(const layer::Event& e) {
    transcript_.push_back(">> " + layer::describe(e));
    layer::Commands out;
    layer_->handle(e, now_, out);
    for (auto& c : out) pending_.push_back(std::move(c));
    return *this;
  }
  Playbook& operator>>(const DataIn& d) {
    owned_.push_back(d.bytes);
    return *this >> layer::Event{layer::DataReceived{d.conn, owned_.back()}};
  }
  Playbook& operator<<(const std::string& expected) {
    if (pending_.empty()) {
      transcript_.push_back("<< " + expected + "    !! expected, but the layer produced nothing more");
      ok_ = false;
      return *this;
    }
    layer::Command actual = std::move(pending_.front());
    pending_.pop_front();
    std::string got = layer::describe(actual);
    history_.push_back(std::move(actual));
    if (got == expected) {
      transcript_.push_back("<< " + got);
    } else {
      transcript_.push_back("<< " + expected + "    !! expected");
      transcript_.push_back("   " + got + "    !! got");
      ok_ = false;
    }
    return *this;
  }
  // Expects no further command right now.
  Playbook& nothing() {
    flag_unexpected();
    return *this;
  }

  // A PipelineVerdict answering the RunPipeline #id the layer issued, with its envelope.
  layer::Event forward(layer::CommandId id) { return verdict(id, layer::Verdict::forward); }
  layer::Event verdict(layer::CommandId id, layer::Verdict v) {
    for (const auto& c : history_)
      if (const auto* r = std::get_if<layer::RunPipeline>(&c); r && r->id == id)
        return layer::PipelineVerdict{id, v, r->envelope};
    ADD_FAILURE() << "no RunPipeline #" << id << " seen yet";
    return layer::PipelineVerdict{id, v, {}};
  }
  // The commands consumed so far, for assertions on payloads (envelopes, records).
  const std::vector<layer::Command>& history() const { return history_; }
  void advance(std::chrono::milliseconds ms) { now_.ns += std::chrono::nanoseconds(ms).count(); }

  ::testing::AssertionResult check() {
    flag_unexpected();
    if (ok_) return ::testing::AssertionSuccess();
    std::string t;
    for (const auto& l : transcript_) t += "  " + l + "\n";
    return ::testing::AssertionFailure() << "playbook mismatch:\n" << t;
  }

 private:
  void flag_unexpected() {
    while (!pending_.empty()) {
      transcript_.push_back("   " + layer::describe(pending_.front()) + "    !! unexpected");
      history_.push_back(std::move(pending_.front()));
      pending_.pop_front();
      ok_ = false;
    }
  }

  std::unique_ptr<layer::Layer> layer_;
  core::Timestamp now_{1'763'700'000'000'000'000};
  std::deque<std::string> owned_;
  std::deque<layer::Command> pending_;
  std::vector<layer::Command> history_;
  std::vector<std::string> transcript_;
  bool ok_ = true;
};

}  // namespace sluice::test_support
