#pragma once
// Builds the layer stacks: the root layer of a client connection from its mode, and the layer that
// takes over a tunnel once a CONNECT is answered.
#include "layer/layer.hpp"

namespace sluice::layer {

// The layer stack for a new client connection: its mode's layers under `connection_layer`.
std::unique_ptr<Layer> make_root_layer(ConnectionContext& ctx);
// The top of a stack: passes everything to `child` and makes sure the connection's own stream ends, as
// its last record, once a layer closes the client connection (formats/STREAM.md 2.3).
std::unique_ptr<Layer> connection_layer(ConnectionContext& ctx, std::unique_ptr<Layer> child);
// The layer for the bytes of a tunnel to host:port over `server` (already open): with TLS interception
// on, a ClientHello starts a TLS layer (or passes through), anything else stays raw bytes.
std::unique_ptr<Layer> make_tunnel_layer(ConnectionContext& ctx, ConnId server, const std::string& host, uint16_t port);

}  // namespace sluice::layer
