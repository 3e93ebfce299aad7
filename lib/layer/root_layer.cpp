#include "layer/root_layer.hpp"

#include "layer/http1_layer.hpp"
#include "layer/raw_layer.hpp"
#include "layer/tls_layer.hpp"

namespace sluice::layer {

namespace {

constexpr char kHandshakeRecord = 0x16;

std::unique_ptr<Layer> http1(ConnectionContext& ctx, ConnId) { return std::make_unique<Http1Layer>(ctx); }

// HTTP/1 under a TLS layer that terminates the client's TLS when its first byte starts a handshake, and
// in any case speaks TLS to the servers the HTTP layer asks it to (https:// targets).
std::unique_ptr<Layer> http1_maybe_tls(ConnectionContext& ctx, core::ByteView first, bool at_eof) {
  if (first.empty() && !at_eof) return nullptr;
  TlsLayerSpec spec;
  spec.terminate = !first.empty() && first[0] == kHandshakeRecord;
  spec.host = ctx.mode().target_host;
  spec.port = ctx.mode().target_port;
  return std::make_unique<TlsLayer>(ctx, std::move(spec), http1);
}

}  // namespace

bool mode_available(ModeSpec::Kind kind) {
  return kind == ModeSpec::Kind::tcp || kind == ModeSpec::Kind::raw || kind == ModeSpec::Kind::regular ||
         kind == ModeSpec::Kind::reverse || kind == ModeSpec::Kind::upstream;
}

std::unique_ptr<Layer> make_root_layer(ConnectionContext& ctx) {
  const ModeSpec& mode = ctx.mode();
  bool tls = ctx.options().tls != nullptr;
  switch (mode.kind) {
    case ModeSpec::Kind::raw:
      return std::make_unique<RawLayer>(ctx, mode.target_host, mode.target_port, ctx.conn_id());
    case ModeSpec::Kind::tcp:
      // Detection picks the layer from the client's first bytes; raw bytes are the only protocol this
      // decider knows so far, and it decides at once so that server-first protocols work.
      return std::make_unique<NextLayer>(
          ctx,
          [](ConnectionContext& c, core::ByteView, bool) -> std::unique_ptr<Layer> {
            return std::make_unique<RawLayer>(c, c.mode().target_host, c.mode().target_port, c.conn_id());
          },
          true);
    case ModeSpec::Kind::reverse:
      // A reverse proxy answers TLS and plain clients alike, whatever the target's scheme.
      if (tls) return std::make_unique<NextLayer>(ctx, http1_maybe_tls, false);
      return std::make_unique<Http1Layer>(ctx);
    case ModeSpec::Kind::regular:
    case ModeSpec::Kind::upstream:
      if (tls) return std::make_unique<TlsLayer>(ctx, TlsLayerSpec{}, http1);
      return std::make_unique<Http1Layer>(ctx);
    default: return nullptr;
  }
}

std::unique_ptr<Layer> make_tunnel_layer(ConnectionContext& ctx, ConnId server, const std::string& host, uint16_t port) {
  std::string key = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  if (!ctx.options().tls) return std::make_unique<RawLayer>(ctx, server, key, ctx.new_stream_id());
  return std::make_unique<NextLayer>(
      ctx,
      [server, host, port, key](ConnectionContext& c, core::ByteView first, bool at_eof) -> std::unique_ptr<Layer> {
        if (first.empty() && !at_eof) return nullptr;
        if (first.empty() || first[0] != kHandshakeRecord)
          return std::make_unique<RawLayer>(c, server, key, c.new_stream_id());
        TlsLayerSpec spec{true, server, host, port};
        return std::make_unique<TlsLayer>(c, std::move(spec), [host, port](ConnectionContext& cc, ConnId s) {
          return std::make_unique<Http1Layer>(cc, Http1Target{host, port, true, s});
        });
      },
      false);
}

}  // namespace sluice::layer
