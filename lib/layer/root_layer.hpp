#pragma once
// Builds the layer stacks: the root layer of a client connection from its mode, and the layer that
// takes over a tunnel once a CONNECT is answered.
#include "layer/layer.hpp"

namespace sluice::layer {

// The layer stack for a new client connection.
std::unique_ptr<Layer> make_root_layer(ConnectionContext& ctx);
// The layer for the bytes of a tunnel to host:port over `server` (already open): with TLS interception
// on, a ClientHello starts a TLS layer (or passes through), anything else stays raw bytes.
std::unique_ptr<Layer> make_tunnel_layer(ConnectionContext& ctx, ConnId server, const std::string& host, uint16_t port);

}  // namespace sluice::layer
