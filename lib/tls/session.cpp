#include "tls/session.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <list>
#include <mutex>
#include <unordered_map>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/ascii.hpp"
#include "tls/digest.hpp"

namespace sluice::tls {

namespace {

std::string last_openssl_error(std::string fallback) {
  unsigned long e = ERR_peek_last_error();
  std::string out = fallback;
  if (e) {
    const char* reason = ERR_reason_error_string(e);
    out = reason ? reason : fallback;
  }
  ERR_clear_error();
  return out;
}

// RFC 8446 §6 alert names for the alerts a TLS library sends.
std::string alert_name(int desc) {
  switch (desc) {
    case 0: return "close_notify";
    case 10: return "unexpected_message";
    case 20: return "bad_record_mac";
    case 40: return "handshake_failure";
    case 42: return "bad_certificate";
    case 43: return "unsupported_certificate";
    case 44: return "certificate_revoked";
    case 45: return "certificate_expired";
    case 46: return "certificate_unknown";
    case 47: return "illegal_parameter";
    case 48: return "unknown_ca";
    case 49: return "access_denied";
    case 50: return "decode_error";
    case 51: return "decrypt_error";
    case 70: return "protocol_version";
    case 71: return "insufficient_security";
    case 80: return "internal_error";
    case 86: return "inappropriate_fallback";
    case 90: return "user_canceled";
    case 109: return "missing_extension";
    case 110: return "unsupported_extension";
    case 112: return "unrecognized_name";
    case 116: return "certificate_required";
    case 120: return "no_application_protocol";
    default: return "alert_" + std::to_string(desc);
  }
}

std::string name_text(X509_NAME* name) {
  BIO* b = BIO_new(BIO_s_mem());
  X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  std::string out(data, static_cast<size_t>(n > 0 ? n : 0));
  BIO_free(b);
  return out;
}

struct ClientCert {
  std::string pattern;
  X509* cert = nullptr;
  EVP_PKEY* key = nullptr;
  std::vector<X509*> chain;
};

// The sessions servers gave us, one per server (address, name verified, SNI, ALPN offer, client
// certificate), offered again on the next connection to it (as nginx's proxy_ssl_session_reuse and
// curl do): a resumed handshake skips the certificate chain and its verification. Least recently
// used first out.
class ServerSessions {
 public:
  explicit ServerSessions(size_t capacity) : capacity_(capacity) {}
  ~ServerSessions() {
    for (auto& [key, session] : lru_) SSL_SESSION_free(session);
  }
  // Takes `session`'s reference.
  void put(const std::string& key, SSL_SESSION* session) {
    std::lock_guard lock(mu_);
    if (auto it = index_.find(key); it != index_.end()) {
      SSL_SESSION_free(it->second->second);
      it->second->second = session;
      lru_.splice(lru_.begin(), lru_, it->second);
      return;
    }
    lru_.emplace_front(key, session);
    index_[key] = lru_.begin();
    if (lru_.size() > capacity_) {
      SSL_SESSION_free(lru_.back().second);
      index_.erase(lru_.back().first);
      lru_.pop_back();
    }
  }
  // A copy of the session for `key` (the caller's to free), or null. A copy, because a handshake may
  // change the session it resumes, and handshakes on other threads may resume the same one.
  SSL_SESSION* get(const std::string& key) {
    std::lock_guard lock(mu_);
    auto it = index_.find(key);
    if (it == index_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second);
    return SSL_SESSION_dup(it->second->second);
  }

 private:
  using Entry = std::pair<std::string, SSL_SESSION*>;
  size_t capacity_;
  std::mutex mu_;
  std::list<Entry> lru_;
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

}  // namespace

bool is_ip_literal(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

bool host_matches(std::string_view pattern, std::string_view host) {
  if (pattern == "*") return true;
  if (pattern.starts_with("*.")) {
    std::string_view suffix = pattern.substr(1);  // ".example.com"
    return host.size() > suffix.size() && core::iequals(host.substr(host.size() - suffix.size()), suffix);
  }
  return core::iequals(pattern, host);
}

ClientCertSpec parse_client_cert_spec(const std::string& spec) {
  ClientCertSpec c;
  size_t colon = spec.rfind(':');
  if (colon != std::string::npos && spec.find('/', colon) == std::string::npos && colon + 1 < spec.size()) {
    c.path = spec.substr(0, colon);
    c.pattern = spec.substr(colon + 1);
  } else {
    c.path = spec;
  }
  return c;
}

struct TlsConfig::Impl {
  TlsSettings settings;
  std::unique_ptr<LeafCache> leaves;
  SSL_CTX* facing_clients = nullptr;
  SSL_CTX* facing_servers = nullptr;
  std::vector<ClientCert> client_certs;
  std::unique_ptr<ServerSessions> server_sessions;  // null: --no-tls-resume
  int keylog_fd = -1;
  std::mutex keylog_mu;

  ~Impl() {
    SSL_CTX_free(facing_clients);
    SSL_CTX_free(facing_servers);
    for (auto& c : client_certs) {
      X509_free(c.cert);
      EVP_PKEY_free(c.key);
      for (X509* x : c.chain) X509_free(x);
    }
    if (keylog_fd >= 0) ::close(keylog_fd);
  }
};

struct TlsSession::Callbacks {
  static void keylog(const SSL* ssl, const char* line) {
    auto* impl = static_cast<TlsConfig::Impl*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
    if (!impl || impl->keylog_fd < 0) return;
    std::string text = std::string(line) + "\n";
    std::lock_guard lock(impl->keylog_mu);
    size_t off = 0;
    while (off < text.size()) {
      ssize_t n = ::write(impl->keylog_fd, text.data() + off, text.size() - off);
      if (n <= 0) return;
      off += static_cast<size_t>(n);
    }
  }
  static void info(const SSL* ssl, int where, int ret) {
    if (!(where & SSL_CB_READ_ALERT)) return;
    auto* s = static_cast<TlsSession*>(SSL_get_app_data(ssl));
    int desc = ret & 0xff;
    if (s && desc != 0 && s->alert_.empty()) s->alert_ = alert_name(desc);
  }
  // A server's session (TLS 1.3: each NewSessionTicket), kept when its certificate passed verification.
  // A copy is kept: `session` stays the connection's, which OpenSSL marks not resumable if the
  // connection is freed without a close_notify.
  static int new_session(SSL* ssl, SSL_SESSION* session) {
    auto* impl = static_cast<TlsConfig::Impl*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
    auto* s = static_cast<TlsSession*>(SSL_get_app_data(ssl));
    if (!impl || !impl->server_sessions || !s || s->session_key_.empty() || SSL_get_verify_result(ssl) != X509_V_OK)
      return 0;
    if (SSL_SESSION* copy = SSL_SESSION_dup(session)) impl->server_sessions->put(s->session_key_, copy);
    return 0;
  }
  static int select_alpn(SSL* ssl, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                         unsigned int inlen, void*) {
    auto* s = static_cast<TlsSession*>(SSL_get_app_data(ssl));
    if (!s || s->select_alpn_.empty()) return SSL_TLSEXT_ERR_NOACK;
    for (unsigned i = 0; i < inlen;) {
      unsigned len = in[i];
      if (i + 1 + len > inlen) break;
      if (std::string_view(reinterpret_cast<const char*>(in + i + 1), len) == s->select_alpn_) {
        *out = in + i + 1;
        *outlen = static_cast<unsigned char>(len);
        return SSL_TLSEXT_ERR_OK;
      }
      i += 1 + len;
    }
    return SSL_TLSEXT_ERR_NOACK;
  }
};

TlsConfig::TlsConfig(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TlsConfig::~TlsConfig() = default;
const TlsSettings& TlsConfig::settings() const { return impl_->settings; }
LeafCache& TlsConfig::leaves() const { return *impl_->leaves; }

bool TlsConfig::passthrough(std::string_view host) const {
  for (const auto& p : impl_->settings.passthrough)
    if (host_matches(p, host)) return true;
  return false;
}

namespace {

core::Result<ClientCert> load_client_cert(const ClientCertSpec& spec) {
  BIO* b = BIO_new_file(spec.path.c_str(), "r");
  if (!b) {
    ERR_clear_error();
    return core::make_error("--client-cert: cannot read " + spec.path);
  }
  ClientCert c;
  c.pattern = spec.pattern;
  c.cert = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
  while (X509* x = PEM_read_bio_X509(b, nullptr, nullptr, nullptr)) c.chain.push_back(x);
  ERR_clear_error();
  BIO_free(b);
  b = BIO_new_file(spec.path.c_str(), "r");
  c.key = b ? PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(b);
  ERR_clear_error();
  auto free_all = [&c] {
    X509_free(c.cert);
    EVP_PKEY_free(c.key);
    for (X509* x : c.chain) X509_free(x);
  };
  if (!c.cert || !c.key) {
    free_all();
    return core::make_error("--client-cert: " + spec.path + " must hold a PEM certificate and its private key");
  }
  if (X509_check_private_key(c.cert, c.key) != 1) {
    free_all();
    ERR_clear_error();
    return core::make_error("--client-cert: the private key in " + spec.path + " does not match its certificate");
  }
  return c;
}

}  // namespace

core::Result<std::unique_ptr<TlsConfig>> TlsConfig::create(CertificateAuthority ca, TlsSettings settings) {
  auto impl = std::make_unique<Impl>();
  impl->settings = std::move(settings);
  impl->leaves = std::make_unique<LeafCache>(ca, impl->settings.cert_cache);

  impl->facing_clients = SSL_CTX_new(TLS_server_method());
  impl->facing_servers = SSL_CTX_new(TLS_client_method());
  if (!impl->facing_clients || !impl->facing_servers)
    return core::make_error("cannot create a TLS context: " + last_openssl_error("unknown error"));
  for (SSL_CTX* ctx : {impl->facing_clients, impl->facing_servers}) {
    SSL_CTX_set_app_data(ctx, impl.get());
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_info_callback(ctx, TlsSession::Callbacks::info);
    if (!impl->settings.keylog_path.empty()) SSL_CTX_set_keylog_callback(ctx, TlsSession::Callbacks::keylog);
  }
  // The CA goes out after each leaf, so a client that trusts it by key (Chromium's SPKI list) finds it.
  X509* ca_cert = ca.x509();
  X509_up_ref(ca_cert);
  SSL_CTX_add_extra_chain_cert(impl->facing_clients, ca_cert);
  SSL_CTX_set_alpn_select_cb(impl->facing_clients, TlsSession::Callbacks::select_alpn, nullptr);
  // One session ticket per handshake instead of OpenSSL's two: a client resumes with one (and may
  // reuse it for parallel connections), and each ticket costs the handshake a session copy and its
  // encryption.
  SSL_CTX_set_num_tickets(impl->facing_clients, 1);

  // Verification happens, and is judged by the layer after the handshake (so the record can say what
  // the certificate was): SSL_VERIFY_NONE still computes the result.
  SSL_CTX_set_verify(impl->facing_servers, SSL_VERIFY_NONE, nullptr);
  if (impl->settings.server_sessions > 0) {
    impl->server_sessions = std::make_unique<ServerSessions>(impl->settings.server_sessions);
    SSL_CTX_set_session_cache_mode(impl->facing_servers, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(impl->facing_servers, TlsSession::Callbacks::new_session);
  }
  if (SSL_CTX_set_default_verify_paths(impl->facing_servers) != 1) ERR_clear_error();
  for (const auto& file : impl->settings.server_ca) {
    if (SSL_CTX_load_verify_locations(impl->facing_servers, file.c_str(), nullptr) != 1)
      return core::make_error("--server-ca: cannot load " + file + ": " + last_openssl_error("not a PEM certificate"));
  }
  for (const auto& spec : impl->settings.client_certs) {
    auto c = load_client_cert(spec);
    if (!c) return c.error();
    impl->client_certs.push_back(*c);
  }
  if (!impl->settings.keylog_path.empty()) {
    impl->keylog_fd = ::open(impl->settings.keylog_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (impl->keylog_fd < 0)
      return core::make_error("SSLKEYLOGFILE: cannot open " + impl->settings.keylog_path + ": " + std::strerror(errno));
  }
  return std::unique_ptr<TlsConfig>(new TlsConfig(std::move(impl)));
}

// ---- sessions ------------------------------------------------------------------------------------

TlsSession::~TlsSession() { SSL_free(ssl_); }

namespace {
bool attach_bios(SSL* ssl, BIO** in, BIO** out) {
  *in = BIO_new(BIO_s_mem());
  *out = BIO_new(BIO_s_mem());
  if (!*in || !*out) {
    BIO_free(*in);
    BIO_free(*out);
    return false;
  }
  BIO_set_mem_eof_return(*in, -1);  // empty means "more later", not EOF
  SSL_set_bio(ssl, *in, *out);
  return true;
}
}  // namespace

core::Result<std::unique_ptr<TlsSession>> TlsSession::accept(const TlsConfig& config,
                                                             const CertificateAuthority::Leaf& leaf,
                                                             std::string alpn) {
  std::unique_ptr<TlsSession> s(new TlsSession());
  s->ssl_ = SSL_new(config.impl().facing_clients);
  if (!s->ssl_ || !attach_bios(s->ssl_, &s->in_, &s->out_))
    return core::make_error("cannot create a TLS session: " + last_openssl_error("out of memory"));
  SSL_set_app_data(s->ssl_, s.get());
  if (SSL_use_certificate(s->ssl_, leaf.cert.get()) != 1 || SSL_use_PrivateKey(s->ssl_, leaf.key.get()) != 1)
    return core::make_error("cannot use the leaf certificate: " + last_openssl_error("bad key"));
  s->select_alpn_ = std::move(alpn);
  SSL_set_accept_state(s->ssl_);
  return s;
}

core::Result<std::unique_ptr<TlsSession>> TlsSession::connect(const TlsConfig& config, const std::string& host,
                                                              const std::string& server, const std::string& sni,
                                                              const std::vector<std::string>& alpn) {
  std::unique_ptr<TlsSession> s(new TlsSession());
  const auto& impl = config.impl();
  s->ssl_ = SSL_new(impl.facing_servers);
  if (!s->ssl_ || !attach_bios(s->ssl_, &s->in_, &s->out_))
    return core::make_error("cannot create a TLS session: " + last_openssl_error("out of memory"));
  SSL_set_app_data(s->ssl_, s.get());
  if (!sni.empty()) SSL_set_tlsext_host_name(s->ssl_, sni.c_str());
  if (is_ip_literal(host))
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl_), host.c_str());
  else
    SSL_set1_host(s->ssl_, host.c_str());
  std::string wire;  // the ALPN offer as sent
  for (const auto& p : alpn) {
    if (p.empty() || p.size() > 255) continue;
    wire.push_back(static_cast<char>(p.size()));
    wire += p;
  }
  if (!wire.empty())
    SSL_set_alpn_protos(s->ssl_, reinterpret_cast<const unsigned char*>(wire.data()), static_cast<unsigned>(wire.size()));
  size_t client_cert = 0;  // 1 + the index of the one presented; 0: none
  for (size_t i = 0; i < impl.client_certs.size(); ++i) {
    const auto& c = impl.client_certs[i];
    if (!c.pattern.empty() && !host_matches(c.pattern, host)) continue;
    SSL_use_certificate(s->ssl_, c.cert);
    SSL_use_PrivateKey(s->ssl_, c.key);
    for (X509* x : c.chain) SSL_add1_chain_cert(s->ssl_, x);
    client_cert = i + 1;
    break;
  }
  if (impl.server_sessions) {
    // Everything that makes the server or what we offer it differ is in the key, each part prefixed
    // with its length.
    for (const std::string& part : {server, host, sni, wire, std::to_string(client_cert)})
      ((s->session_key_ += std::to_string(part.size())) += ':') += part;
    if (SSL_SESSION* session = impl.server_sessions->get(s->session_key_)) {
      if (SSL_SESSION_is_resumable(session)) SSL_set_session(s->ssl_, session);
      SSL_SESSION_free(session);
    }
  }
  SSL_set_connect_state(s->ssl_);
  s->drive(nullptr);
  return s;
}

void TlsSession::set_failed(int ssl_error) {
  state_ = State::failed;
  if (!alert_.empty())
    error_ = "the peer sent alert " + alert_;
  else if (ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN)
    error_ = "the peer ended the TLS session unexpectedly";
  else
    error_ = last_openssl_error("TLS error");
  ERR_clear_error();
}

void TlsSession::drive(core::Bytes* plain) {
  if (state_ == State::failed) return;
  if (state_ == State::handshaking) {
    int r = SSL_do_handshake(ssl_);
    if (r != 1) {
      int e = SSL_get_error(ssl_, r);
      if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) set_failed(e);
      return;
    }
    state_ = State::established;
  }
  if (!plain) return;
  char buf[16384];
  for (;;) {
    int n = SSL_read(ssl_, buf, sizeof buf);
    if (n > 0) {
      plain->append(buf, static_cast<size_t>(n));
      continue;
    }
    int e = SSL_get_error(ssl_, n);
    if (e == SSL_ERROR_ZERO_RETURN) {
      peer_closed_ = true;
    } else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
      set_failed(e);
    }
    return;
  }
}

void TlsSession::receive(core::ByteView cipher, core::Bytes& plain) {
  if (state_ == State::failed) return;
  if (!cipher.empty()) BIO_write(in_, cipher.data(), static_cast<int>(cipher.size()));
  drive(&plain);
}

void TlsSession::send(core::ByteView plain) {
  if (state_ != State::established) return;
  while (!plain.empty()) {
    int chunk = static_cast<int>(std::min<size_t>(plain.size(), 1u << 30));
    int n = SSL_write(ssl_, plain.data(), chunk);
    if (n <= 0) {
      set_failed(SSL_get_error(ssl_, n));
      return;
    }
    plain.remove_prefix(static_cast<size_t>(n));
  }
}

void TlsSession::close() {
  if (state_ == State::established) SSL_shutdown(ssl_);
  ERR_clear_error();
}

core::Bytes TlsSession::take_output() {
  core::Bytes out;
  size_t pending = BIO_ctrl_pending(out_);
  if (pending == 0) return out;
  out.resize(pending);
  int n = BIO_read(out_, out.data(), static_cast<int>(pending));
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

std::string TlsSession::version() const { return SSL_get_version(ssl_); }

std::string TlsSession::cipher() const {
  const char* c = SSL_get_cipher_name(ssl_);
  return c ? c : "";
}

std::string TlsSession::alpn() const {
  const unsigned char* p = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(ssl_, &p, &len);
  return p ? std::string(reinterpret_cast<const char*>(p), len) : std::string();
}

bool TlsSession::resumed() const { return SSL_session_reused(ssl_) == 1; }

std::optional<CertInfo> TlsSession::peer_certificate() const {
  X509* x = SSL_get0_peer_certificate(ssl_);
  if (!x) return std::nullopt;
  CertInfo c;
  c.subject = name_text(X509_get_subject_name(x));
  c.issuer = name_text(X509_get_issuer_name(x));
  if (auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr))) {
    for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
      const GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
      if (g->type == GEN_DNS) {
        const ASN1_IA5STRING* s = g->d.dNSName;
        c.sans.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                            static_cast<size_t>(ASN1_STRING_length(s)));
      } else if (g->type == GEN_IPADD) {
        const ASN1_OCTET_STRING* s = g->d.iPAddress;
        char text[INET6_ADDRSTRLEN] = "";
        int len = ASN1_STRING_length(s);
        if (len == 4 || len == 16)
          inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(s), text, sizeof text);
        if (text[0]) c.sans.emplace_back(text);
      }
    }
    GENERAL_NAMES_free(names);
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  X509_digest(x, sha256_digest(), digest, &len);
  c.sha256 = core::hex_encode(core::ByteView(reinterpret_cast<const char*>(digest), len));
  return c;
}

std::string TlsSession::verify_error() const {
  long r = SSL_get_verify_result(ssl_);
  if (r == X509_V_OK) return {};
  if (!SSL_get0_peer_certificate(ssl_)) return "the server sent no certificate";
  return X509_verify_cert_error_string(r);
}

}  // namespace sluice::tls
