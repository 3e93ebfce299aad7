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
//
// With pipeline steps (ProxyOptions::step_units), each whole data message is a unit instead: its
// frames are held until the last one, the message goes through the pipeline as one envelope (its
// `raw` every frame of it, its payload the whole message, inflated) and goes out as the verdict says:
// as it came, changed (the verdict's bytes), dropped (left out; the connection goes on) or killed (the
// connection closes). Control frames are recorded and forwarded in order behind the messages before
// them. Once a compressed message of a direction was changed or dropped, the receiver's decompression
// context no longer matches the sender's: later compressed messages of that direction are inflated
// and compressed again by the proxy (codec/ws.hpp), each recorded as a variant of the original.
#include <deque>
#include <memory>

#include "layer/layer.hpp"

namespace sluice::layer {

struct WsDeflate {
  bool enabled = false;
  bool client_no_context_takeover = false;
  bool server_no_context_takeover = false;
  int client_window_bits = 15;  // client_max_window_bits / server_max_window_bits as negotiated
  int server_window_bits = 15;
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

  // The unit mode's parse: the bytes of one direction cut into what goes out in order, each with its
  // record; a whole data message is a unit for the pipeline.
  struct Piece {
    core::Bytes bytes;                       // the wire bytes (a frame, a message's frames, or unparsed)
    std::optional<envelope::Envelope> envelope;  // its record (none for bytes passed unparsed)
    bool unit = false;                       // a whole data message: the pipeline decides
  };
  void feed_units(envelope::Direction direction, core::ByteView data, core::Timestamp now, uint64_t& seq,
                  std::vector<Piece>& pieces);
  // Whether the sender of this direction compresses with context takeover (a changed message breaks
  // the receiver's context), and the window it may use.
  bool context_takeover(envelope::Direction direction) const;
  int window_bits(envelope::Direction direction) const;
  // The bytes a unit (a whole data message, `original` as it came) goes out as, given its verdict:
  // nothing when dropped, the step's bytes when it changed them, else the original, or once this
  // direction's compression context is broken (`reencode`, which a changed or dropped compressed
  // message sets) the message compressed again by the proxy, recorded as a variant into `out`.
  core::Bytes verdict_bytes(envelope::Direction direction, bool& reencode, const core::Bytes& original,
                            const PipelineVerdict& v, core::Timestamp now, Commands& out) const;

  struct Side;

 private:
  void parse(Side& side, core::Timestamp now, uint64_t& seq, Commands* out, std::vector<Piece>* pieces);

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
    // Unit mode: what waits to go out, in order; a unit waits for its verdict.
    struct Queued {
      WsRecorder::Piece piece;
      CommandId id = 0;  // waiting for this RunPipeline's verdict
      std::optional<PipelineVerdict> verdict;
    };
    std::deque<Queued> queue;
    uint64_t queued_bytes = 0;
    bool paused = false;
    bool shut = false;      // our side of `to` was shut after eof
    bool reencode = false;  // compressed messages go out compressed by us (see above)
  };

 private:
  void on_data(Side& side, core::ByteView data, core::Timestamp now, Commands& out);
  void on_verdict(const PipelineVerdict& v, core::Timestamp now, Commands& out);
  // Sends what is ready at the front of the queue; pauses or resumes reading; shuts after eof.
  void flush(Side& side, core::Timestamp now, Commands& out);
  core::Bytes verdict_bytes(Side& side, Side::Queued& q, core::Timestamp now, Commands& out);
  void close_both(const std::string& reason, core::Timestamp now, Commands& out);
  void finish(core::Timestamp now, Commands& out);

  ConnectionContext& ctx_;
  ConnId server_;
  std::string stream_id_;
  WsRecorder recorder_;
  uint64_t seq_ = 0;
  bool units_ = false;  // ProxyOptions::step_units
  bool done_ = false;
  Side client_, server_side_;
};

}  // namespace sluice::layer
