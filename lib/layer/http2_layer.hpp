#pragma once
// Http2Layer: HTTP/2 on both legs, over nghttp2 driven sans-IO (nghttp2_session_mem_recv/mem_send;
// Debian 12's nghttp2 1.52 predates the *2 variants).
//
// The client side is an nghttp2 server session, or, for an HTTP/1.1 client in front of a server
// that speaks only HTTP/2 (`h1_client`), our own HTTP/1.1 parser: each request a stream, one exchange
// at a time, answered in order as HTTP/1.1 (chunked unless the response has a content-length).
// The server side is what the server speaks:
//  - HTTP/2: one nghttp2 client session on one connection (the tunnel's, already speaking TLS with
//    ALPN h2; or one we open: TLS offering h2 and http/1.1, or cleartext starting with our h2c preface).
//    Every client stream becomes a stream to the server at once: headers, DATA and trailers pass as
//    they come, so one slow stream never holds another, and gRPC streaming in both directions works.
//  - HTTP/1.1 (the server chose it by ALPN, or answered our h2c preface with anything but SETTINGS):
//    each stream is translated to an HTTP/1.1 exchange on a connection of its own while it lasts
//    (kept alive and reused by later streams): Host from :authority (the target in reverse mode unless
//    --keep-host-header), cookie fields joined, a body without content-length sent chunked with its
//    trailers; the response's fields go back in lower case without the connection-specific ones.
//
// Flow control is end to end with bounded buffers: WINDOW_UPDATE goes to a sender only for bytes the
// other leg has taken (nghttp2_session_consume when the other session's data provider reads them, or
// when they are written to the HTTP/1.1 server), so each stream buffers at most its window.
// RST_STREAM and the end of either connection propagate.
//
// Recorded per stream, when each direction ends: one `http` envelope (version HTTP/2; `raw` the
// stream's frames exactly as they came, HPACK-coded, up to --record-body-limit), then `h2-frame`
// overlays holding each DATA frame's bytes. Translated to HTTP/1.1: the client's request as it came,
// a variant of it with the HTTP/1.1 bytes sent (tagged `translated`), and the server's response as it
// came (version HTTP/1.1). A stream whose content-type is application/grpc also gets `grpc`
// envelopes: start (service, method, metadata, timeout), one per length-prefixed message in either
// direction (gzip-compressed ones inflated for the view), and end (status, message, trailers).
// An RFC 8441 extended CONNECT for websocket (allowed to the client once the server allows it) is
// recorded like an HTTP/1.1 upgrade: request and response, then one `ws` envelope per frame its DATA
// carries (WsRecorder). A stream over on both legs ends (`end`, reason complete or reset, with its
// own bytes); those open when the connection closes end with the connection's sub-stream.
//
// Not yet: pipeline steps on HTTP/2 streams other than --serve-from's answers; timeouts on HTTP/2
// connections.
#include <map>
#include <memory>
#include <optional>

#include "layer/layer.hpp"

namespace sluice::layer {

struct Http2Target {
  std::string host;
  uint16_t port = 0;
  bool tls = false;
  ConnId server = 0;  // a connection to it already open (its TLS up, ALPN h2); 0: open one
  bool h1_client = false;  // the client speaks HTTP/1.1 (the server only HTTP/2): translated
};

class Http2Layer final : public Layer {
 public:
  Http2Layer(ConnectionContext& ctx, Http2Target target);
  ~Http2Layer() override;
  void handle(const Event& event, core::Timestamp now, Commands& out) override;
  std::string_view name() const override { return "http2"; }

  // "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n": what an h2 client sends first.
  static constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::layer
