#include "layer/root_layer.hpp"

#include "core/ascii.hpp"
#include "layer/http1_layer.hpp"
#include "layer/http2_layer.hpp"
#include "layer/raw_layer.hpp"
#include "layer/socks5_layer.hpp"
#include "layer/tls_layer.hpp"

namespace sluice::layer {

namespace {

constexpr char kHandshakeRecord = 0x16;

// A TLS record header: handshake type, major version 3. Needs two bytes to say yes.
enum class Verdict3 : uint8_t { yes, no, more };
Verdict3 starts_tls(core::ByteView b) {
  if (b.empty()) return Verdict3::more;
  if (b[0] != kHandshakeRecord) return Verdict3::no;
  if (b.size() < 2) return Verdict3::more;
  return b[1] == 0x03 ? Verdict3::yes : Verdict3::no;
}

// An HTTP/1.x request line: METHOD SP target SP HTTP/1.x CRLF.
Verdict3 starts_http1(core::ByteView b) {
  size_t i = 0;
  while (i < b.size() && b[i] >= 'A' && b[i] <= 'Z') ++i;
  if (i == b.size()) return i < 24 ? Verdict3::more : Verdict3::no;
  if (i == 0 || b[i] != ' ') return Verdict3::no;
  size_t eol = b.find('\n', i);
  if (eol == core::ByteView::npos) return b.size() < 8192 ? Verdict3::more : Verdict3::no;
  core::ByteView line = b.substr(0, eol);
  if (line.ends_with('\r')) line.remove_suffix(1);
  return line.size() > 9 && line.substr(line.size() - 9, 8) == " HTTP/1." ? Verdict3::yes : Verdict3::no;
}

// The HTTP/2 client preface, or the start of it.
Verdict3 starts_h2(core::ByteView b) {
  size_t n = std::min(b.size(), Http2Layer::kPreface.size());
  if (b.substr(0, n) != Http2Layer::kPreface.substr(0, n)) return Verdict3::no;
  return n == Http2Layer::kPreface.size() ? Verdict3::yes : Verdict3::more;
}

std::unique_ptr<Layer> http1(ConnectionContext& ctx, ConnId) { return std::make_unique<Http1Layer>(ctx); }

// HTTP/1 under a TLS layer that terminates the client's TLS when its first byte starts a handshake, and
// in any case speaks TLS to the servers the HTTP layer asks it to (https:// targets).
std::unique_ptr<Layer> http1_maybe_tls(ConnectionContext& ctx, core::ByteView first, bool at_eof) {
  if (first.empty() && !at_eof) return nullptr;
  TlsLayerSpec spec;
  spec.terminate = !first.empty() && first[0] == kHandshakeRecord;
  spec.host = ctx.mode().target_host;
  spec.port = ctx.mode().target_port;
  return std::make_unique<TlsLayer>(ctx, std::move(spec), [](ConnectionContext& c, ConnId) -> std::unique_ptr<Layer> {
    // A client that offered h2 got it: the HTTP/2 layer speaks h2 to the target if it can, else
    // HTTP/1.1, translated.
    const ModeSpec& m = c.mode();
    if (c.tls() && c.tls()->alpn == "h2")
      return std::make_unique<Http2Layer>(c, Http2Target{m.target_host, m.target_port, m.target_scheme == "https", 0});
    return std::make_unique<Http1Layer>(c);
  });
}

// How long a silent client waits before the connection is taken for a server-first protocol: only
// when no server connection is open yet (a TCP forward), and servers are contacted eagerly. Where one is (a tunnel, or TLS we
// terminated after the server handshake), the server speaking or closing first decides instead, and a
// client that idles before its first bytes (a browser's preconnected socket) is still detected from
// them when they come.
std::chrono::milliseconds silence_unless_open(const ConnectionContext& ctx, ConnId server) {
  return server || ctx.options().lazy_connect ? std::chrono::milliseconds(0) : ctx.options().detect_timeout;
}

std::unique_ptr<Layer> reverse_decider(ConnectionContext& ctx, core::ByteView first, bool at_eof) {
  const ModeSpec& mode = ctx.mode();
  if (mode.target_scheme == "http") {
    Verdict3 h2 = starts_h2(first);
    if (h2 == Verdict3::more && !at_eof) return nullptr;
    if (h2 == Verdict3::yes)
      return std::make_unique<Http2Layer>(ctx, Http2Target{mode.target_host, mode.target_port, false, 0});
  }
  if (ctx.options().tls) return http1_maybe_tls(ctx, first, at_eof);
  if (first.empty() && !at_eof) return nullptr;
  return std::make_unique<Http1Layer>(ctx);
}

// The decider for the bytes to host:port: TLS (intercepted), HTTP/1.x, or raw. `server` is the
// connection to it when one is open (a CONNECT tunnel), else 0 (the chosen layer connects). Inside
// TLS (`in_tls`), the same detection runs again on the plaintext.
LayerDecider detect(ConnId server, std::string host, uint16_t port, bool in_tls) {
  return [server, host, port, in_tls](ConnectionContext& c, core::ByteView first,
                                      bool at_eof) -> std::unique_ptr<Layer> {
    if (first.empty() && !at_eof) return nullptr;
    if (!in_tls && c.options().tls) {
      Verdict3 t = starts_tls(first);
      if (t == Verdict3::more && !at_eof) return nullptr;
      if (t == Verdict3::yes) {
        TlsLayerSpec spec{true, server, host, port, {}};
        return std::make_unique<TlsLayer>(c, std::move(spec), [host, port](ConnectionContext& cc, ConnId s) -> std::unique_ptr<Layer> {
          // The client got h2 (the server chose it from the client's offer, or --serve-from answers):
          // HTTP/2 at once, since an h2 server speaks first (its SETTINGS) and must not be taken for a
          // server-first protocol.
          if (cc.tls() && cc.tls()->alpn == "h2") return std::make_unique<Http2Layer>(cc, Http2Target{host, port, true, s});
          // An HTTP/1.1 client in front of a server that speaks only HTTP/2: translated.
          if (cc.server_alpn() == "h2") return std::make_unique<Http2Layer>(cc, Http2Target{host, port, true, s, true});
          return std::make_unique<NextLayer>(cc, detect(s, host, port, true), false, silence_unless_open(cc, s),
                                             cc.options().idle_timeout, s);
        });
      }
    }
    // An ignored host's tunnel that is not TLS (TLS is judged at its ClientHello, SNI and all): bytes
    // through untouched, only the tunnel's end recorded.
    if (!in_tls && c.options().ignore_host && c.options().ignore_host(host, {})) {
      auto raw = server ? std::make_unique<RawLayer>(c, server, format_host_port(host, port), c.new_stream_id())
                        : std::make_unique<RawLayer>(c, host, port, c.new_stream_id());
      raw->summary_only();
      return raw;
    }
    Verdict3 h2 = starts_h2(first);
    if (h2 == Verdict3::more && !at_eof) return nullptr;
    if (h2 == Verdict3::yes) return std::make_unique<Http2Layer>(c, Http2Target{host, port, in_tls, server});
    Verdict3 h = starts_http1(first);
    if (h == Verdict3::more && !at_eof) return nullptr;
    if (h == Verdict3::yes) return std::make_unique<Http1Layer>(c, Http1Target{host, port, in_tls, server});
    if (server) return std::make_unique<RawLayer>(c, server, format_host_port(host, port), c.new_stream_id());
    return std::make_unique<RawLayer>(c, host, port, c.new_stream_id());
  };
}

// The top of every stack: passes everything to the mode's layer, and keeps the promise that the
// connection's own stream ends, as its last record, whichever layer closes the connection (a SOCKS5,
// TLS or HTTP/2 front whose records live in sub-streams). A layer that owns that stream ends it itself.
class ConnectionLayer final : public Layer {
 public:
  ConnectionLayer(ConnectionContext& ctx, std::unique_ptr<Layer> child) : ctx_(ctx), child_(std::move(child)) {}
  std::string_view name() const override { return "connection"; }

  void handle(const Event& event, core::Timestamp now, Commands& out) override {
    if (const auto* d = std::get_if<DataReceived>(&event))
      (d->conn == kClientConn ? from_client_ : from_servers_) += d->data.size();
    size_t from = out.size();
    child_->handle(event, now, out);
    std::string reason;
    if (ended_ || !closes_client(out, from, reason)) return;
    // Layers that own the connection's stream end it in the turn that closes the client connection.
    ended_ = true;
    if (!ends_stream(out, from, ctx_.conn_id()))
      end_stream(out, out.size(), ctx_.conn_id(), std::move(reason), now, from_client_, from_servers_);
  }

 private:
  ConnectionContext& ctx_;
  std::unique_ptr<Layer> child_;
  bool ended_ = false;
  uint64_t from_client_ = 0, from_servers_ = 0;
};

std::unique_ptr<Layer> mode_layer(ConnectionContext& ctx) {
  const ModeSpec& mode = ctx.mode();
  bool tls = ctx.options().tls != nullptr;
  switch (mode.kind) {
    case ModeSpec::Kind::raw:
      return std::make_unique<RawLayer>(ctx, mode.target_host, mode.target_port, ctx.conn_id());
    case ModeSpec::Kind::tcp:
      return std::make_unique<NextLayer>(ctx, detect(0, mode.target_host, mode.target_port, false), false,
                                         ctx.options().detect_timeout);
    case ModeSpec::Kind::reverse:
      // A reverse proxy answers TLS and plain clients alike, whatever the target's scheme; to an http://
      // target, an h2c client (prior knowledge) gets HTTP/2 both ways.
      // A client that says nothing is closed after the header timeout (it gets no layer, hence no timer).
      return std::make_unique<NextLayer>(ctx, reverse_decider, false, std::chrono::milliseconds(0),
                                         ctx.options().header_timeout);
    case ModeSpec::Kind::regular:
    case ModeSpec::Kind::upstream:
      if (tls) return std::make_unique<TlsLayer>(ctx, TlsLayerSpec{}, http1);
      return std::make_unique<Http1Layer>(ctx);
    case ModeSpec::Kind::socks5: return std::make_unique<Socks5Layer>(ctx);
  }
  return nullptr;
}

}  // namespace

std::unique_ptr<Layer> make_root_layer(ConnectionContext& ctx) { return connection_layer(ctx, mode_layer(ctx)); }

std::unique_ptr<Layer> connection_layer(ConnectionContext& ctx, std::unique_ptr<Layer> child) {
  return std::make_unique<ConnectionLayer>(ctx, std::move(child));
}

std::unique_ptr<Layer> make_tunnel_layer(ConnectionContext& ctx, ConnId server, const std::string& host, uint16_t port) {
  return std::make_unique<NextLayer>(ctx, detect(server, host, port, false), false, silence_unless_open(ctx, server),
                                     ctx.options().idle_timeout, server);
}

}  // namespace sluice::layer
