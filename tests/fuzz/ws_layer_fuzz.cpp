// Fuzz target: the WebSocket layer fed arbitrary bytes from both sides, with and without
// permessage-deflate, frame by frame or (with pipeline steps) message by message under random verdicts
// (next, modified, drop, kill, respond; at once or held and given later). Properties: no crash, no
// sanitizer report; while every verdict is an unmodified next, the bytes forwarded are the bytes that
// came (all of them, in order, frame by frame; message by message no byte is made up or repeated: a
// byte value is sent at most as often as it came, since a control frame may overtake the fragments of
// a message that is not whole yet); the records keep the stream-end rule.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "layer/ws_layer.hpp"
#include "support/layer_driver.hpp"
#include "support/stream_rule.hpp"

using namespace sluice;
using namespace sluice::layer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  ProxyOptions options;
  options.record_body_limit = 1u << 16;
  options.step_units = data[0] & 8;
  ConnectionContext ctx("f", "127.0.0.1:1", core::Timestamp{0}, *parse_mode_spec("reverse:http://127.0.0.1:7000@0"),
                        &options);
  WsDeflate deflate;
  deflate.enabled = data[0] & 1;
  deflate.client_no_context_takeover = data[0] & 2;
  deflate.server_no_context_takeover = data[0] & 4;
  deflate.client_window_bits = 9 + (data[0] >> 4 & 7);
  test_support::LayerDriver d(std::make_unique<WsLayer>(ctx, 1, "127.0.0.1:7000", "f.1", "f-0", deflate));
  std::string to_server, to_client;
  bool faithful = true;  // every verdict so far an unmodified next
  size_t pos = 1;
  while (pos + 2 <= size) {
    uint8_t op = data[pos];
    if (options.step_units && (op & 0xc0) == 0xc0) {
      // The pipeline's answer from here on: next, modified, drop, kill or respond; held or at once.
      static constexpr Verdict kVerdicts[] = {Verdict::forward, Verdict::forward, Verdict::drop, Verdict::kill,
                                              Verdict::respond};
      d.verdict = kVerdicts[data[pos + 1] % 5];
      d.modify = data[pos + 1] % 5 == 1;
      d.hold_pipeline = data[pos + 1] & 0x80;
      if (d.verdict != Verdict::forward || d.modify) faithful = false;
      if (!d.hold_pipeline) d.release();
      pos += 2;
      continue;
    }
    if (options.step_units && (op & 0xc0) == 0x80) {
      d.close(op & 1 ? kClientConn : 1, op & 2);
      pos += 2;
      continue;
    }
    bool from_client = op & 1;
    size_t len = std::min<size_t>(data[pos + 1], size - pos - 2);
    std::string chunk(reinterpret_cast<const char*>(data + pos + 2), len);
    pos += 2 + len;
    (from_client ? to_server : to_client) += chunk;
    d.data(from_client ? kClientConn : 1, chunk);
  }
  d.release();
  if (!options.step_units) {
    if (d.sent[1] != to_server || d.sent[kClientConn] != to_client) std::abort();
  } else if (faithful) {
    auto made_up = [](const std::string& came, const std::string& sent) {
      size_t count[256] = {};
      for (unsigned char c : came) ++count[c];
      for (unsigned char c : sent)
        if (count[c]-- == 0) return true;
      return false;
    };
    if (made_up(to_server, d.sent[1]) || made_up(to_client, d.sent[kClientConn])) std::abort();
  }
  if (std::string breach = test_support::stream_rule_breach(d.records, "f.1", d.closed); !breach.empty()) {
    std::fprintf(stderr, "stream-end rule: %s\n", breach.c_str());
    std::abort();
  }
  return 0;
}
