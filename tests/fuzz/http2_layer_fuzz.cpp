// Fuzz target: the HTTP/2 layer fed arbitrary frames from both sides (the client's after its preface,
// the server's on an open connection, or on connections it opened itself: HTTP/2 or, translated,
// HTTP/1.1; or from an HTTP/1.1 client), recording gRPC too, under the proxy's root layer; with steps,
// pipeline verdicts (next, modified, drop, kill, respond; at once or held and given later). Properties:
// no crash, no sanitizer report, whatever nghttp2 accepts or refuses, and whatever our frame splitter
// and gRPC message parser see; and the records keep the stream-end rule (formats/STREAM.md 2.3: nothing
// of an HTTP/2 stream after its own end or its connection's); and --record-memory all given back.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "layer/http2_layer.hpp"
#include "layer/root_layer.hpp"
#include "support/layer_driver.hpp"
#include "support/stream_rule.hpp"

using namespace sluice;
using namespace sluice::layer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // --record-memory: small with the first byte's 0x08 (bodies past it are not kept; held ones stream
  // on), and every byte of it given back once the connection is gone.
  const uint64_t memory = size > 0 && (data[0] & 0x08) ? 700 : 1u << 30;
  RecordBudget budget(memory);
  ProxyOptions options;
  options.record_budget = &budget;
  // A small limit (the first byte's 0x10) makes held messages stream past it: their heads are judged.
  options.record_body_limit = size > 0 && (data[0] & 0x10) ? 24 : 1u << 16;
  options.step_units = size > 0 && (data[0] & 0x20);  // with steps: requests held whole for verdicts
  ConnectionContext ctx("f", "127.0.0.1:1", core::Timestamp{0}, *parse_mode_spec("reverse:http://127.0.0.1:7000@0"),
                        &options);
  // The first byte's high bit: the layer dials the server itself (cleartext: our h2c preface, and
  // the server's first bytes decide between HTTP/2 and HTTP/1.1, translated) instead of being given
  // an HTTP/2 connection; server bytes then go to the connection opened last.
  // The next bit (on a given connection): the client speaks HTTP/1.1, translated for the server.
  bool dial = size > 0 && (data[0] & 0x80);
  bool h1_client = !dial && size > 0 && (data[0] & 0x40);
  ConnId server = dial ? 0 : ctx.new_conn();
  {
  test_support::LayerDriver d(connection_layer(
      ctx, std::make_unique<Http2Layer>(ctx, Http2Target{"127.0.0.1", 7000, false, server, h1_client})));
  if (!h1_client) d.data(kClientConn, std::string(Http2Layer::kPreface));
  size_t pos = 0;
  while (pos + 2 <= size) {
    uint8_t op = data[pos];
    bool from_client = op & 1;
    size_t len = std::min<size_t>(data[pos + 1], size - pos - 2);
    if ((op & 0x0e) == 0x0e) {
      d.pick_verdict(op >> 5, op & 0x10);  // the pipeline's answer from here on
      pos += 2;
      continue;
    }
    std::string chunk(reinterpret_cast<const char*>(data + pos + 2), len);
    pos += 2 + len;
    if (from_client)
      d.client(chunk);
    else if (ConnId to = dial ? d.last_opened : server)
      d.data(to, chunk);
  }
  d.release();
  if (std::string breach = test_support::stream_rule_breach(d.records, ctx.conn_id(), d.closed); !breach.empty()) {
    std::fprintf(stderr, "stream-end rule: %s\n", breach.c_str());
    std::abort();
  }
  }
  if (budget.left() != static_cast<int64_t>(memory)) {
    std::fprintf(stderr, "--record-memory: %lld bytes never given back\n", static_cast<long long>(memory - budget.left()));
    std::abort();
  }
  return 0;
}
