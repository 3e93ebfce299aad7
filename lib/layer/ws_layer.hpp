#pragma once
// WsLayer: a WebSocket connection (RFC 6455) after a 101 answer. Bytes pass through at once, in both
// directions, as they arrive (nothing waits for a whole frame or message); beside them each direction
// is parsed into frames, and every frame is recorded as a `ws` envelope whose `raw` is the frame's
// bytes: opcode, FIN, RSV bits, masked, the unmasked payload, the close code and reason.
//
// Fragmented messages are reassembled for the view: the envelope of a message's last frame carries
// the whole message as its payload (tag `message_frames`). With permessage-deflate (RFC 7692)
// negotiated in the 101, compressed messages are inflated for the view (`compressed` true), keeping
// the compression context between messages unless the peer's side said no_context_takeover.
// Irregular frames are recorded with an anomaly and still forwarded.
#include <memory>

#include "layer/layer.hpp"

namespace sluice::layer {

struct WsDeflate {
  bool enabled = false;
  bool client_no_context_takeover = false;
  bool server_no_context_takeover = false;
};

// Reads permessage-deflate and its parameters from a Sec-WebSocket-Extensions value.
WsDeflate parse_ws_extensions(std::string_view header);

// Parses the frames of both directions of one WebSocket connection and records one `ws` envelope per
// frame (as described above): what WsLayer runs beside the bytes it forwards, and what the HTTP/2
// layer runs on an RFC 8441 extended CONNECT stream's DATA.
class WsRecorder {
 public:
  WsRecorder(std::string stream_id, std::string flow_id, envelope::Context context, WsDeflate deflate,
             uint64_t record_body_limit);
  ~WsRecorder();
  WsRecorder(WsRecorder&&) noexcept;
  // Bytes the client (send) or the server (receive) sent, in any pieces; each whole frame is
  // recorded with the next `seq`.
  void feed(envelope::Direction direction, core::ByteView data, core::Timestamp now, uint64_t& seq, Commands& out);

  struct Side;

 private:
  void parse(Side& side, core::Timestamp now, uint64_t& seq, Commands& out);

  std::string stream_id_, flow_id_;
  envelope::Context context_;
  WsDeflate deflate_;
  uint64_t max_frame_;
  std::unique_ptr<Side> client_, server_;
};

class WsLayer final : public Layer {
 public:
  // Adopts `server` (open to `server_name`), as after a 101. `flow_id`: the upgrade's flow.
  WsLayer(ConnectionContext& ctx, ConnId server, std::string server_name, std::string stream_id, std::string flow_id,
          WsDeflate deflate);
  ~WsLayer() override;
  void handle(const Event& event, core::Timestamp now, Commands& out) override;
  std::string_view name() const override { return "ws"; }

  // One direction's forwarding: from one connection to the other.
  struct Side {
    ConnId from = 0, to = 0;
    envelope::Direction direction = envelope::Direction::send;
    uint64_t bytes = 0;
    bool eof = false;
  };

 private:
  void on_data(Side& side, core::ByteView data, core::Timestamp now, Commands& out);
  void finish(core::Timestamp now, Commands& out);

  ConnId server_;
  std::string stream_id_;
  WsRecorder recorder_;
  uint64_t seq_ = 0;
  bool done_ = false;
  Side client_, server_side_;
};

}  // namespace sluice::layer
