#pragma once
// Builds the root layer of a client connection from its mode.
#include "layer/layer.hpp"

namespace sluice::layer {

// True when this build serves `kind` (the others arrive with the HTTP, TLS and SOCKS5 layers).
bool mode_available(ModeSpec::Kind kind);
// The layer stack for a new client connection; nullptr when !mode_available(ctx.mode().kind).
std::unique_ptr<Layer> make_root_layer(ConnectionContext& ctx);

}  // namespace sluice::layer
