#pragma once
// Socks5Layer: the SOCKS5 listener (RFC 1928, with RFC 1929 username/password when --proxy-auth is
// set). CONNECT to an IPv4 or IPv6 address or a domain name opens the server connection, answers
// success, and hands both connections to the tunnel's detection (TLS intercepted, HTTP/1, raw), as a
// CONNECT in regular mode does. BIND and UDP ASSOCIATE get "command not supported".
//
//   greeting --method chosen--> [auth] --> request --> connecting --ok--> tunnel (child layer)
//      \--no acceptable method, bad credentials, bad request, connect failure--> reply, error record, close
//
// The negotiation is recorded on the connection's stream as two raw envelopes (flow "<conn>-socks"):
// the client's bytes and ours, tagged `socks5` with the command and `target` with host:port.
#include <memory>

#include "layer/layer.hpp"

namespace sluice::layer {

class Socks5Layer final : public Layer {
 public:
  explicit Socks5Layer(ConnectionContext& ctx);
  ~Socks5Layer() override;
  void handle(const Event& event, core::Timestamp now, Commands& out) override;
  std::string_view name() const override { return "socks5"; }

 private:
  enum class State : uint8_t { greeting, auth, request, connecting, tunnel, closed };
  // Parses what `in_` holds for the current state; false when more bytes are needed.
  bool step(core::Timestamp now, Commands& out);
  void reply(core::Bytes bytes, Commands& out);
  void fail(uint8_t rep, std::string code, std::string message, core::Timestamp now, Commands& out);
  void record(core::Timestamp now, Commands& out);

  ConnectionContext& ctx_;
  State state_ = State::greeting;
  core::Bytes in_;        // client bytes not parsed yet
  core::Bytes from_client_, to_client_;  // the negotiation, for the record
  std::string command_ = "connect";
  std::string host_;
  uint16_t port_ = 0;
  ConnId server_ = 0;
  CommandId open_id_ = 0, timer_ = 0;
  bool client_eof_ = false;
  std::unique_ptr<Layer> tunnel_;
};

}  // namespace sluice::layer
