#pragma once
// TlsLayer: TLS between the runtime and a child layer that sees plaintext only.
//
// It does two jobs, each optional:
// - Terminates the client's TLS (`terminate`): parses the ClientHello itself (SNI, ALPN, JA3/JA4),
//   then answers it with a leaf certificate for the SNI (or the target host) signed by our CA. When a
//   server connection is already open (`server`, after a CONNECT), the server's handshake comes first,
//   with the client's SNI and ALPN offer, so the leaf can carry the server certificate's names and the
//   client gets the server's ALPN choice. A host matching --tls-passthrough is tunnelled untouched.
// - Originates TLS on every connection the child opens with `OpenConnection{.tls = true}`, and holds
//   the OpenCompleted back until the handshake is done and the certificate verified.
//
//   hello --ClientHello parsed--> [server handshake] --> client handshake --> established (child runs)
//     \--passthrough host--> tunnel (RawLayer child, bytes untouched)
//     \--malformed, timeout, client alert--> error record, closed
//
// Every handshake leaves a `tls-handshake` envelope: the client side with the ClientHello as `raw` and
// its fingerprints, the server side with the server's certificate.
#include <functional>
#include <map>
#include <memory>

#include "layer/layer.hpp"
#include "tls/client_hello.hpp"
#include "tls/session.hpp"

namespace sluice::layer {

struct TlsLayerSpec {
  bool terminate = false;  // the client speaks TLS on kClientConn
  ConnId server = 0;       // a server connection already open to host:port (CONNECT); 0: none
  std::string host;        // the target: the leaf's name when the client sends no SNI
  uint16_t port = 0;
  std::string sni;         // without `terminate`: the name to present to host (a replayed flow's recorded
                           // SNI); empty: host itself unless it is an IP literal
};

// Builds the child once the client's handshake is done (or at Start without `terminate`). `server` is
// the spec's server connection, now speaking TLS, or 0 when there was none or its handshake failed.
using TlsChildFactory = std::function<std::unique_ptr<Layer>(ConnectionContext& ctx, ConnId server)>;

class TlsLayer final : public Layer {
 public:
  // `ctx.options().tls` must be set when `terminate` is or the child opens TLS connections.
  TlsLayer(ConnectionContext& ctx, TlsLayerSpec spec, TlsChildFactory child);
  ~TlsLayer() override;
  void handle(const Event& event, core::Timestamp now, Commands& out) override;
  std::string_view name() const override { return "tls"; }

  // A ClientHello larger than this is refused (the handshake itself must finish within --header-timeout).
  static constexpr size_t kMaxHello = 64 * 1024;

 private:
  enum class Phase : uint8_t { hello, server_handshake, client_handshake, established, passthrough, closed };
  struct Wrapped {
    std::unique_ptr<tls::TlsSession> session;
    std::string host, sni;
    uint16_t port = 0;
    std::vector<std::string> alpn;  // offered
    CommandId open_id = 0;          // the child's OpenConnection, answered once the handshake is done
    std::string peer;
    bool ready = false;             // the child knows it is open
    core::Bytes early;              // plaintext that arrived before the child knew the connection
    bool eof_told = false;          // the server's close_notify went to the child as its EOF
  };
  struct Opening {
    ConnId conn;
    std::string host;
    uint16_t port;
    std::vector<std::string> alpn;
  };

  void on_client_bytes(core::ByteView data, core::Timestamp now, Commands& out);
  void on_hello(core::Timestamp now, Commands& out);
  void start_client_handshake(std::vector<std::string> names, std::string alpn, core::Timestamp now, Commands& out);
  void on_client_established(core::Timestamp now, Commands& out);
  void on_wrapped_data(ConnId conn, core::ByteView data, core::Timestamp now, Commands& out);
  // Once the child knows `conn`: the server's close_notify, if it came, goes to the child as its end.
  void server_sent_close_notify(ConnId conn, core::Timestamp now, Commands& out);
  // The handshake on `conn` finished (or failed): judge it, record it, tell whoever waits.
  void on_wrapped_handshake(ConnId conn, core::Timestamp now, Commands& out);
  void start_wrapped(ConnId conn, Wrapped w, core::Timestamp now, Commands& out);
  void flush(ConnId conn, tls::TlsSession& s, Commands& out);
  void to_child(const Event& event, core::Timestamp now, Commands& out);
  void rewrite(Commands& out, size_t from);
  void wrapped_failed(ConnId conn, std::string code, std::string message, core::Timestamp now, Commands& out);
  void client_failed(core::Timestamp now, Commands& out);
  void record_handshake(const tls::TlsSession* s, const Wrapped* w, std::vector<envelope::Anomaly> anomalies,
                        core::Timestamp now, Commands& out, envelope::Tags tags = {});
  void fail(std::string code, std::string message, core::Timestamp now, Commands& out);
  // After the child's turn (its commands from out[from]): once they close the client connection, the
  // handshake stream ends (when it holds records).
  void after_child(size_t from, core::Timestamp now, Commands& out);

  ConnectionContext& ctx_;
  TlsLayerSpec spec_;
  TlsChildFactory factory_;
  const tls::TlsConfig* config_;
  bool connect_;  // intercepting a CONNECT: the servers are addressed by the client's SNI
  Phase phase_ = Phase::hello;
  std::unique_ptr<Layer> child_;
  std::unique_ptr<tls::TlsSession> client_;
  core::Bytes hello_bytes_;  // the client's bytes until its session takes them
  core::Bytes hello_raw_;    // the ClientHello records, for the client-side envelope
  tls::ClientHello hello_;
  std::string stream_id_, flow_id_;
  uint64_t seq_ = 0;
  bool ended_ = false;  // the handshake stream's end is written
  uint64_t from_client_ = 0, from_servers_ = 0;  // bytes as they came in, for the stream's end
  std::map<ConnId, Wrapped> wrapped_;
  std::map<CommandId, Opening> opening_;
  // The first server handshake's failure (CONNECT): the child's first connection to that server is
  // answered with it rather than tried again.
  std::string server_failure_code_, server_failure_;
  CommandId timer_ = 0;
  // A server that refused every protocol an HTTP/1.1-only client offered (alert
  // no_application_protocol) is tried once more offering h2, and translated to.
  bool alpn_retried_ = false;
  CommandId retry_open_ = 0;
  Wrapped retry_;
  bool leaf_minted_ = false;  // this handshake's certificate was made for it (not from the cache)
  bool client_eof_told_ = false;  // the client's close_notify went to the child as its EOF
};

}  // namespace sluice::layer
