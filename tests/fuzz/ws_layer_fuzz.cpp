// Fuzz target: the WebSocket layer fed arbitrary bytes from both sides, with and without
// permessage-deflate. Properties: no crash, no sanitizer report; every byte is forwarded unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "layer/ws_layer.hpp"
#include "support/layer_driver.hpp"

using namespace sluice;
using namespace sluice::layer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  ProxyOptions options;
  options.record_body_limit = 1u << 16;
  ConnectionContext ctx("f", "127.0.0.1:1", core::Timestamp{0}, *parse_mode_spec("reverse:http://127.0.0.1:7000@0"),
                        &options);
  WsDeflate deflate;
  deflate.enabled = data[0] & 1;
  deflate.client_no_context_takeover = data[0] & 2;
  deflate.server_no_context_takeover = data[0] & 4;
  test_support::LayerDriver d(std::make_unique<WsLayer>(ctx, 1, "127.0.0.1:7000", "f.1", "f-0", deflate));
  std::string to_server, to_client;
  size_t pos = 1;
  while (pos + 2 <= size) {
    bool from_client = data[pos] & 1;
    size_t len = std::min<size_t>(data[pos + 1], size - pos - 2);
    std::string chunk(reinterpret_cast<const char*>(data + pos + 2), len);
    pos += 2 + len;
    (from_client ? to_server : to_client) += chunk;
    d.data(from_client ? kClientConn : 1, chunk);
  }
  if (d.sent[1] != to_server || d.sent[kClientConn] != to_client) std::abort();
  return 0;
}
