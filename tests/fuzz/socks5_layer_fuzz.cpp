// Fuzz target: the SOCKS5 listener's negotiation (RFC 1928 greeting and request, RFC 1929
// username/password) fed arbitrary client bytes in arbitrary pieces, with or without --proxy-auth,
// with the connection succeeding or refused, then the tunnel's detection on whatever follows, under
// random pipeline verdicts on its units (next, modified, drop, kill, respond; at once or held and given
// later) and time passing (idle and detection timers fire).
// Properties: no crash, no sanitizer report; whatever we answer starts with the SOCKS version byte;
// the records keep the stream-end rule.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "layer/root_layer.hpp"
#include "layer/socks5_layer.hpp"
#include "support/layer_driver.hpp"
#include "support/stream_rule.hpp"

using namespace sluice;
using namespace sluice::layer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  ProxyOptions options;
  options.record_body_limit = 1u << 16;
  if (data[0] & 1) options.proxy_auth = "user:pass";
  ConnectionContext ctx("f", "127.0.0.1:1", core::Timestamp{0}, *parse_mode_spec("socks5@0"), &options);
  test_support::LayerDriver d(connection_layer(ctx, std::make_unique<Socks5Layer>(ctx)));
  if (data[0] & 2) d.refuse_with = "connect_refused";
  size_t pos = 1;
  while (pos + 2 <= size) {
    uint8_t op = data[pos];
    if ((op & 0xc0) == 0xc0) {
      static constexpr Verdict kVerdicts[] = {Verdict::forward, Verdict::forward, Verdict::drop, Verdict::kill,
                                              Verdict::respond};
      d.verdict = kVerdicts[data[pos + 1] % 5];
      d.modify = data[pos + 1] % 5 == 1;
      d.hold_pipeline = data[pos + 1] & 0x80;
      if (!d.hold_pipeline) d.release();
      pos += 2;
      continue;
    }
    if ((op & 0xc0) == 0x80) {
      d.advance(std::chrono::seconds(1 + data[pos + 1] % 100));
      d.fire_timers();
      pos += 2;
      continue;
    }
    bool from_client = data[pos] & 1;
    size_t len = std::min<size_t>(data[pos + 1], size - pos - 2);
    std::string chunk(reinterpret_cast<const char*>(data + pos + 2), len);
    pos += 2 + len;
    if (from_client || !d.last_opened)
      d.client(chunk);
    else
      d.server(chunk);
  }
  d.release();
  if (data[0] & 4) d.close(kClientConn);
  const std::string& answer = d.sent[kClientConn];
  if (!answer.empty() && answer[0] != '\x05') std::abort();
  if (std::string breach = test_support::stream_rule_breach(d.records, ctx.conn_id(), d.closed); !breach.empty()) {
    std::fprintf(stderr, "stream-end rule: %s\n", breach.c_str());
    std::abort();
  }
  return 0;
}
