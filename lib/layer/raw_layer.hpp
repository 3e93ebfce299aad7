#pragma once
// RawLayer: forwards an opaque byte stream between the client and one server, recording every chunk
// read from either side as a `raw` envelope (one flow per connection). Each chunk passes through the
// pipeline before it is sent on; chunks of one direction stay in order, and a chunk waiting on a step
// holds back only its own direction. Reading pauses while more than 1 MiB waits in one direction.
// No byte either way for --idle-timeout closes both sides (end reason "timeout").
//
//   connecting --OpenCompleted ok--> open --both sides EOF and drained--> done
//        \--OpenCompleted error--> done (error record, client closed)
#include <deque>

#include "layer/layer.hpp"

namespace sluice::layer {

class RawLayer final : public Layer {
 public:
  // `ctx` must outlive the layer. `stream_id` names this byte stream in its envelopes.
  RawLayer(ConnectionContext& ctx, std::string host, uint16_t port, std::string stream_id);
  // Adopts `server`, already open to `server_name` ("host:port"), as after a CONNECT or a 101 answer:
  // no Start, no OpenConnection; bytes flow from the first DataReceived on.
  RawLayer(ConnectionContext& ctx, ConnId server, const std::string& server_name, std::string stream_id);
  void handle(const Event& event, core::Timestamp now, Commands& out) override;
  std::string_view name() const override { return "raw"; }
  // Bytes pass without envelopes or steps (an ignored host's tunnel): only the stream's end, with its
  // byte counts, is recorded.
  void summary_only() { summary_ = true; }

  static constexpr size_t kHighWater = 1u << 20;

 private:
  enum class State : uint8_t { idle, connecting, open, done };
  struct Side {
    ConnId from = 0, to = 0;
    envelope::Direction direction;
    std::deque<std::pair<core::Timestamp, core::Bytes>> queue;  // read, not yet through the pipeline
    size_t queued_bytes = 0;
    CommandId in_pipeline = 0;  // 0: none
    bool eof = false;           // `from` closed its sending side
    bool shut = false;          // we half-closed `to`
    bool paused = false;
    uint64_t bytes = 0;         // read from `from`
  };

  bool summary_ = false;
  void on_event(const Event& event, core::Timestamp now, Commands& out);
  void on_data(Side& side, core::ByteView data, core::Timestamp now, Commands& out);
  void pump(Side& side, Commands& out);
  void finish(std::string reason, core::Timestamp now, Commands& out);
  Side* side_for_reply(CommandId id);
  // Starts the idle timer for what is left of the idle timeout since the last byte.
  void arm_idle(core::Timestamp now, Commands& out);

  ConnectionContext& ctx_;
  std::string host_;
  uint16_t port_;
  std::string stream_id_;
  State state_ = State::idle;
  ConnId server_ = 0;
  CommandId open_id_ = 0;
  uint64_t seq_ = 0;
  envelope::Context context_;
  Side send_, receive_;
  CommandId idle_timer_ = 0;
  core::Timestamp last_activity_{};
};

}  // namespace sluice::layer
