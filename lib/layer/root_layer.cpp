#include "layer/root_layer.hpp"

#include "layer/raw_layer.hpp"
#include "layer/http1_layer.hpp"

namespace sluice::layer {

bool mode_available(ModeSpec::Kind kind) {
  return kind == ModeSpec::Kind::tcp || kind == ModeSpec::Kind::raw || kind == ModeSpec::Kind::regular ||
         kind == ModeSpec::Kind::reverse || kind == ModeSpec::Kind::upstream;
}

std::unique_ptr<Layer> make_root_layer(ConnectionContext& ctx) {
  const ModeSpec& mode = ctx.mode();
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
    case ModeSpec::Kind::regular:
    case ModeSpec::Kind::reverse:
    case ModeSpec::Kind::upstream: return std::make_unique<Http1Layer>(ctx);
    default: return nullptr;
  }
}

}  // namespace sluice::layer
