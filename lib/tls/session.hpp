#pragma once
// TLS sessions over memory buffers (OpenSSL memory BIOs): ciphertext in, plaintext out, and the other
// way. No sockets: the TLS layer feeds what the runtime read and sends what the session produced.
//
// TlsConfig holds what every session of one proxy run shares (thread-safe after creation): the CA
// and its leaf cache, the OpenSSL contexts facing clients and facing servers, the trust settings,
// client certificates, passthrough patterns and the SSLKEYLOGFILE writer.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/bytes.hpp"
#include "core/result.hpp"
#include "tls/ca.hpp"

struct ssl_st;  // OpenSSL's SSL
struct bio_st;  // OpenSSL's BIO

namespace sluice::tls {

// "*.example.com" matches one or more labels before example.com; "example.com" matches itself; "*"
// matches every host. Case-insensitive.
bool host_matches(std::string_view pattern, std::string_view host);
bool is_ip_literal(const std::string& host);

struct ClientCertSpec {
  std::string path;     // PEM: the certificate (then its chain) and the private key
  std::string pattern;  // hosts it is presented to; empty: every host
};

// "FILE[:HOST_PATTERN]" as --client-cert takes it (a pattern never contains '/').
ClientCertSpec parse_client_cert_spec(const std::string& spec);

struct TlsSettings {
  bool insecure = false;                   // do not verify servers' certificates
  std::vector<std::string> server_ca;      // PEM files trusted besides the system store
  std::vector<ClientCertSpec> client_certs;
  std::vector<std::string> passthrough;    // host patterns tunnelled without interception
  size_t cert_cache = 1024;                // leaf certificates kept
  std::string keylog_path;                 // SSLKEYLOGFILE; empty: none
  size_t server_sessions = 1024;           // servers whose TLS session is kept to resume; 0: none
};

struct CertInfo {
  std::string subject, issuer;
  std::vector<std::string> sans;  // DNS names and IP addresses
  std::string sha256;             // of the DER, lower-case hex
};

class TlsConfig {
 public:
  static core::Result<std::unique_ptr<TlsConfig>> create(CertificateAuthority ca, TlsSettings settings);
  ~TlsConfig();
  const TlsSettings& settings() const;
  bool passthrough(std::string_view host) const;
  LeafCache& leaves() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  explicit TlsConfig(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class TlsSession {
 public:
  enum class State : uint8_t { handshaking, established, failed };

  // Facing a client: presents `leaf` (with the CA in the chain) and selects `alpn` when the client
  // offers it (empty: select none).
  static core::Result<std::unique_ptr<TlsSession>> accept(const TlsConfig& config, const CertificateAuthority::Leaf& leaf,
                                                          std::string alpn);
  // Facing a server: sends `sni` (empty: none), offers `alpn`, and checks the certificate against
  // `host` (a name or an IP literal). The handshake starts at once: take_output() holds the ClientHello.
  // It offers the session the last verified handshake with the same `server` (the address connected
  // to, "host:port"), host, SNI, ALPN offer and client certificate left (unless
  // TlsSettings::server_sessions is 0).
  static core::Result<std::unique_ptr<TlsSession>> connect(const TlsConfig& config, const std::string& host,
                                                           const std::string& server, const std::string& sni,
                                                           const std::vector<std::string>& alpn);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Ciphertext from the peer; decrypted application data is appended to `plain`.
  void receive(core::ByteView cipher, core::Bytes& plain);
  // Application data to the peer (only once established).
  void send(core::ByteView plain);
  // Sends close_notify.
  void close();
  // Ciphertext waiting to go to the peer.
  core::Bytes take_output();

  State state() const { return state_; }
  bool established() const { return state_ == State::established; }
  bool peer_closed() const { return peer_closed_; }  // close_notify received
  const std::string& error() const { return error_; }  // why it failed
  // The alert the peer sent, snake_case as in RFC 8446 ("unknown_ca", "bad_certificate"); empty if none.
  const std::string& alert() const { return alert_; }

  std::string version() const;
  std::string cipher() const;
  std::string alpn() const;
  bool resumed() const;  // the handshake resumed an earlier session (a ticket or session id)
  std::optional<CertInfo> peer_certificate() const;
  // Why the server's certificate failed verification; empty when it passed (connect side only).
  std::string verify_error() const;

  struct Callbacks;

 private:
  TlsSession() = default;
  void drive(core::Bytes* plain);
  void set_failed(int ssl_error);

  ::ssl_st* ssl_ = nullptr;
  ::bio_st* in_ = nullptr;   // owned by ssl_
  ::bio_st* out_ = nullptr;  // owned by ssl_
  State state_ = State::handshaking;
  bool peer_closed_ = false;
  std::string select_alpn_;
  std::string error_, alert_;
  std::string session_key_;  // connect side: where the server's sessions are kept; empty: not kept
};

}  // namespace sluice::tls
