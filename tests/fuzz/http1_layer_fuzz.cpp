// Fuzz target: the HTTP/1 proxy layer driven by arbitrary conversations. The input is a mode byte and
// then operations: client bytes, server bytes, closes and resets on either side, time passing (timers
// fire), refused connections, pipeline verdicts (next, modified, drop, kill, respond; at once or held
// and given later). The LayerDriver answers the layer's commands as
// the runtime would. Properties: no crash, no sanitizer report, no hang; the server never receives
// more than the client sent plus the proxy's own head edits; the records keep the stream-end rule
// (through CONNECT and upgrade tunnels too).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "layer/http1_layer.hpp"
#include "layer/root_layer.hpp"
#include "support/layer_driver.hpp"
#include "support/stream_rule.hpp"

using namespace sluice;
using namespace sluice::layer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  static const char* kModes[] = {"regular@0", "reverse:http://127.0.0.1:7000@0", "upstream:http://127.0.0.1:3128@0"};
  ProxyOptions options;
  options.record_body_limit = data[0] & 0x40 ? 0 : 1 + (data[0] >> 3 & 7) * 16;  // small: exercise streaming
  if (data[0] & 0x80) options.proxy_auth = "u:p";
  options.step_units = (data[0] >> 3 & 7) >= 4;  // with steps: whole messages, events held one by one
  options.upstream_auth = "a:b";
  ConnectionContext ctx("f", "127.0.0.1:1", core::Timestamp{0}, *parse_mode_spec(kModes[data[0] % 3]), &options);
  test_support::LayerDriver d(connection_layer(ctx, std::make_unique<Http1Layer>(ctx)));
  size_t client_bytes = 0;
  size_t pos = 1;
  while (pos + 2 <= size) {
    uint8_t op = data[pos];
    size_t len = data[pos + 1];
    pos += 2;
    len = std::min(len, size - pos);
    std::string bytes(reinterpret_cast<const char*>(data) + pos, len);
    switch (op % 8) {
      case 0:
      case 1:
        pos += len;
        client_bytes += len;
        d.client(bytes);
        break;
      case 2:
      case 3:
        pos += len;
        if (d.last_opened) d.server(bytes);
        break;
      case 4: d.close(op & 8 ? kClientConn : d.last_opened, op & 16); break;
      case 5:
        d.advance(std::chrono::seconds(1 + op / 8));
        d.fire_timers();
        break;
      case 6: d.refuse_with = op & 8 ? "connect_refused" : ""; break;
      case 7: {
        d.pick_verdict(op >> 4, op & 8);  // the pipeline's answer from here on
        break;
      }
    }
  }
  d.release();
  size_t opened = d.opened.size() + 1;
  if (d.sent_to_servers().size() > client_bytes + 256 * opened * (client_bytes / 16 + 1)) std::abort();
  if (std::string breach = test_support::stream_rule_breach(d.records, ctx.conn_id(), d.closed); !breach.empty()) {
    std::fprintf(stderr, "stream-end rule: %s\n", breach.c_str());
    std::abort();
  }
  return 0;
}
