#pragma once
// RegularLayer: the root of a `regular` (forward proxy) connection, as far as this build goes.
//
//   head --CONNECT host:port--> connecting --server up--> tunnel (RawLayer child: raw envelopes)
//     |                               \--server fails--> 502 with the reason, error record, close
//     |--malformed head--> 400 (431 when too large) with the reason, anomaly on the request, close
//     \--any other method--> 501: absolute-form proxying arrives with the HTTP/1 layer
//
// The CONNECT request and our answer are recorded as an HTTP request/response flow; the tunnel is a
// sub-stream ("<conn>.1") of raw chunks, as the CONNECT tunnel is until TLS interception lands.
#include "layer/http1_parser.hpp"
#include "layer/raw_layer.hpp"

namespace sluice::layer {

class RegularLayer final : public Layer {
 public:
  explicit RegularLayer(ConnectionContext& ctx);
  void handle(const Event& event, core::Timestamp now, Commands& out) override;
  std::string_view name() const override { return "regular"; }

 private:
  enum class State : uint8_t { head, tunnel, done };
  void on_head(core::ByteView rest, core::Timestamp now, Commands& out);
  // Sends a plain-text response, records it, closes the client and ends the stream.
  void refuse(int status, std::string_view reason, const std::string& text, core::Timestamp now, Commands& out);
  // The CONNECT flow's envelopes: seq 0 the request (send), seq 1 our answer (receive).
  envelope::Envelope flow_envelope(uint64_t seq, core::Timestamp time) const;
  envelope::Envelope request_envelope(core::Timestamp now) const;
  void record_response(int status, std::string_view reason, const core::Bytes& raw, const envelope::Headers& headers,
                       const core::Bytes& body, core::Timestamp now, Commands& out);
  // Passes a child's commands up, noting the id of its OpenConnection.
  void relay(Commands& child_out, Commands& out);

  ConnectionContext& ctx_;
  State state_ = State::head;
  Http1Parser parser_{Http1Parser::Type::request};
  core::Bytes received_;  // head bytes so far, for the anomaly record of a malformed request
  core::Timestamp head_time_;
  bool have_head_time_ = false;
  std::string target_;
  std::unique_ptr<RawLayer> tunnel_;
  CommandId open_id_ = 0;
};

}  // namespace sluice::layer
