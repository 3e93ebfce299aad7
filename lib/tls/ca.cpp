#include "tls/ca.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/base64.hpp"

namespace sluice::tls {

struct CertificateAuthority::Handles {
  X509* cert = nullptr;
  EVP_PKEY* key = nullptr;
  ~Handles() {
    X509_free(cert);
    EVP_PKEY_free(key);
  }
};

namespace {

std::string openssl_error(const std::string& what) {
  unsigned long e = ERR_get_error();
  char buf[256] = "unknown error";
  if (e) ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return what + ": " + buf;
}

core::Result<std::string> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return core::make_error("cannot read " + path + ": " + std::strerror(errno));
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// Writes `data` to `path` with `mode`, atomically (a temporary file renamed into place).
core::Result<void> write_file(const std::string& path, std::string_view data, mode_t mode) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return core::make_error("cannot write " + tmp + ": " + std::strerror(errno));
  ::fchmod(fd, mode);  // whatever the umask said
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return core::make_error("cannot write " + tmp + ": " + std::strerror(err));
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return core::make_error("cannot write " + path + ": " + std::strerror(errno));
  }
  return {};
}

core::Result<void> make_dirs(const std::string& dir) {
  std::string at;
  for (size_t i = 0; i <= dir.size(); ++i) {
    if (i < dir.size() && dir[i] != '/') continue;
    at = dir.substr(0, i);
    if (at.empty()) continue;
    if (::mkdir(at.c_str(), 0700) != 0 && errno != EEXIST)
      return core::make_error("cannot create " + at + ": " + std::strerror(errno));
  }
  return {};
}

bool exists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0;
}

std::string bio_string(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

bool add_ext(X509* cert, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (!ext) return false;
  bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

// A fresh P-256 key and an unsigned v3 certificate for it: random serial, valid from an hour ago
// (clocks disagree a little) for `days`.
core::Result<void> new_key_and_cert(CertificateAuthority::Handles& h, long days) {
  h.key = EVP_EC_gen("P-256");
  h.cert = X509_new();
  if (!h.key || !h.cert) return core::make_error(openssl_error("cannot generate a key and certificate"));
  X509_set_version(h.cert, 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7F;  // positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(h.cert));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(h.cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(h.cert), days * 24 * 3600);
  X509_set_pubkey(h.cert, h.key);
  return {};
}

// A new self-signed CA: ECDSA P-256, 10 years, CA:TRUE (critical), keyCertSign and cRLSign.
core::Result<std::shared_ptr<CertificateAuthority::Handles>> generate() {
  auto h = std::make_shared<CertificateAuthority::Handles>();
  if (auto r = new_key_and_cert(*h, 10L * 365); !r) return r.error();
  X509_NAME* name = X509_get_subject_name(h->cert);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("sluice"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("sluice local CA"), -1,
                             -1, 0);
  X509_set_issuer_name(h->cert, name);
  if (!add_ext(h->cert, NID_basic_constraints, "critical,CA:TRUE") ||
      !add_ext(h->cert, NID_key_usage, "critical,keyCertSign,cRLSign") ||
      !add_ext(h->cert, NID_subject_key_identifier, "hash"))
    return core::make_error(openssl_error("cannot add the CA extensions"));
  if (X509_sign(h->cert, h->key, EVP_sha256()) == 0) return core::make_error(openssl_error("cannot sign the CA"));
  return h;
}

}  // namespace

std::string default_ca_dir() {
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg) return std::string(xdg) + "/sluice/ca";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.local/share/sluice/ca";
}

core::Result<CertificateAuthority> CertificateAuthority::load(const std::string& cert_path,
                                                              const std::string& key_path) {
  auto cert_pem = read_file(cert_path);
  if (!cert_pem) return cert_pem.error();
  // As ssh does with a private key: a CA key others can read is not used (whoever reads it can
  // impersonate every site to the clients that trust this CA).
  struct stat key_stat {};
  if (::stat(key_path.c_str(), &key_stat) == 0 && (key_stat.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(key_stat.st_mode & 07777));
    return core::make_error(key_path + " can be read by others (mode " + mode +
                            "): a CA key must be private to its owner (chmod 600 " + key_path + ")");
  }
  auto key_pem = read_file(key_path);
  if (!key_pem) return key_pem.error();
  auto h = std::make_shared<Handles>();
  BIO* cb = BIO_new_mem_buf(cert_pem->data(), static_cast<int>(cert_pem->size()));
  h->cert = PEM_read_bio_X509(cb, nullptr, nullptr, nullptr);
  BIO_free(cb);
  if (!h->cert) return core::make_error(openssl_error(cert_path + " is not a PEM certificate"));
  BIO* kb = BIO_new_mem_buf(key_pem->data(), static_cast<int>(key_pem->size()));
  h->key = PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr);
  BIO_free(kb);
  if (!h->key) return core::make_error(openssl_error(key_path + " is not a PEM private key"));
  if (X509_check_private_key(h->cert, h->key) != 1)
    return core::make_error(key_path + " is not the key of the certificate in " + cert_path);
  return CertificateAuthority(std::move(h));
}

core::Result<CertificateAuthority> CertificateAuthority::open_or_create(const std::string& dir, bool* created) {
  std::string cert_path = dir + "/ca.pem", key_path = dir + "/ca-key.pem";
  if (created) *created = false;
  if (exists(cert_path) || exists(key_path)) return load(cert_path, key_path);
  if (auto r = make_dirs(dir); !r) return r.error();
  // Several processes may start at once on a fresh machine: one creates, the others wait and load.
  std::string lock_path = dir + "/.lock";
  int lock = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0) return core::make_error("cannot create " + lock_path + ": " + std::strerror(errno));
  struct Unlock {
    int fd;
    ~Unlock() { ::close(fd); }  // closing releases the lock
  } unlock{lock};
  while (::flock(lock, LOCK_EX) != 0)
    if (errno != EINTR) return core::make_error("cannot lock " + lock_path + ": " + std::strerror(errno));
  if (exists(cert_path) || exists(key_path)) return load(cert_path, key_path);
  auto h = generate();
  if (!h) return h.error();
  CertificateAuthority ca(*h);
  BIO* kb = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(kb, (*h)->key, nullptr, nullptr, 0, nullptr, nullptr);
  std::string key_pem = bio_string(kb);
  BIO_free(kb);
  // The key first: a certificate without its key would be loaded as a broken CA next time.
  if (auto r = write_file(key_path, key_pem, 0600); !r) return r.error();
  if (auto r = write_file(cert_path, ca.cert_pem(), 0644); !r) return r.error();
  if (created) *created = true;
  return ca;
}

core::Result<CertificateAuthority> CertificateAuthority::ephemeral() {
  auto h = generate();
  if (!h) return h.error();
  return CertificateAuthority(*h);
}

std::string CertificateAuthority::cert_pem() const {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, h_->cert);
  std::string s = bio_string(b);
  BIO_free(b);
  return s;
}

core::Bytes CertificateAuthority::cert_der() const {
  unsigned char* der = nullptr;
  int n = i2d_X509(h_->cert, &der);
  core::Bytes out(reinterpret_cast<char*>(der), static_cast<size_t>(n > 0 ? n : 0));
  OPENSSL_free(der);
  return out;
}

core::Result<core::Bytes> CertificateAuthority::cert_p12(const std::string& password) const {
  STACK_OF(X509)* cas = sk_X509_new_null();
  sk_X509_push(cas, h_->cert);
  // Certificate only (no key): what a trust store imports. Modern PBES2/AES defaults of OpenSSL 3.
  PKCS12* p12 = PKCS12_create(password.c_str(), "sluice local CA", nullptr, nullptr, cas, 0, 0, 0, 0, 0);
  sk_X509_free(cas);
  if (!p12) return core::make_error(openssl_error("cannot build the PKCS#12 bundle"));
  unsigned char* der = nullptr;
  int n = i2d_PKCS12(p12, &der);
  PKCS12_free(p12);
  if (n <= 0) return core::make_error(openssl_error("cannot encode the PKCS#12 bundle"));
  core::Bytes out(reinterpret_cast<char*>(der), static_cast<size_t>(n));
  OPENSSL_free(der);
  return out;
}

std::string CertificateAuthority::spki_sha256_base64() const {
  unsigned char* der = nullptr;
  int n = i2d_PUBKEY(X509_get0_pubkey(h_->cert), &der);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(der, static_cast<size_t>(n > 0 ? n : 0), digest, &len, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  return core::base64_encode(core::ByteView(reinterpret_cast<char*>(digest), len));
}

std::string CertificateAuthority::fingerprint_sha256() const {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  X509_digest(h_->cert, EVP_sha256(), digest, &len);
  return core::hex_encode(core::ByteView(reinterpret_cast<const char*>(digest), len));
}

std::string CertificateAuthority::subject() const {
  char buf[256];
  X509_NAME_oneline(X509_get_subject_name(h_->cert), buf, sizeof buf);
  return buf;
}

x509_st* CertificateAuthority::x509() const { return h_->cert; }

namespace {
bool is_ip(const std::string& name) {
  unsigned char buf[16];
  return inet_pton(AF_INET, name.c_str(), buf) == 1 || inet_pton(AF_INET6, name.c_str(), buf) == 1;
}
}  // namespace

core::Result<CertificateAuthority::Leaf> CertificateAuthority::mint(const std::vector<std::string>& names) const {
  if (names.empty()) return core::make_error("a leaf certificate needs at least one name");
  Handles leaf;
  if (auto r = new_key_and_cert(leaf, 365); !r) return r.error();
  X509_NAME* name = X509_get_subject_name(leaf.cert);
  std::string cn = names[0].substr(0, 64);  // the CN's upper bound; the SANs carry the full names
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                             0);
  X509_set_issuer_name(leaf.cert, X509_get_subject_name(h_->cert));
  std::string sans;
  for (const auto& n : names) {
    if (n.empty() || n.find_first_of(",\n\r") != std::string::npos)
      return core::make_error("not a host name: '" + n + "'");
    sans += (sans.empty() ? "" : ",") + std::string(is_ip(n) ? "IP:" : "DNS:") + n;
  }
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, h_->cert, leaf.cert, nullptr, nullptr, 0);
  struct {
    int nid;
    std::string value;
  } exts[] = {{NID_basic_constraints, "critical,CA:FALSE"},
              {NID_key_usage, "critical,digitalSignature"},
              {NID_ext_key_usage, "serverAuth"},
              {NID_subject_alt_name, sans},
              {NID_authority_key_identifier, "keyid:always"}};
  for (const auto& e : exts) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, e.nid, e.value.c_str());
    if (!ext) return core::make_error(openssl_error("cannot add a leaf extension"));
    X509_add_ext(leaf.cert, ext, -1);
    X509_EXTENSION_free(ext);
  }
  if (X509_sign(leaf.cert, h_->key, EVP_sha256()) == 0) return core::make_error(openssl_error("cannot sign a leaf"));
  Leaf out;
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, leaf.cert);
  out.cert_pem = bio_string(b);
  BIO_free(b);
  b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, leaf.key, nullptr, nullptr, 0, nullptr, nullptr);
  out.key_pem = bio_string(b);
  BIO_free(b);
  X509_up_ref(leaf.cert);
  out.cert.reset(leaf.cert, X509_free);
  EVP_PKEY_up_ref(leaf.key);
  out.key.reset(leaf.key, EVP_PKEY_free);
  return out;
}

core::Result<std::shared_ptr<const CertificateAuthority::Leaf>> LeafCache::get(const std::vector<std::string>& names,
                                                                                bool* minted) {
  if (minted) *minted = false;
  std::string key;
  for (const auto& n : names) key += n + "\n";
  {
    std::lock_guard lock(mu_);
    if (auto it = index_.find(key); it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->second;
    }
  }
  // Minted outside the lock: key generation is the slow part, and other hosts need not wait for it.
  auto leaf = ca_.mint(names);
  if (!leaf) return leaf.error();
  auto shared = std::make_shared<const CertificateAuthority::Leaf>(std::move(*leaf));
  std::lock_guard lock(mu_);
  ++minted_;
  if (minted) *minted = true;
  if (auto it = index_.find(key); it != index_.end()) return it->second->second;  // another thread won
  lru_.emplace_front(key, shared);
  index_[key] = lru_.begin();
  while (lru_.size() > capacity_) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
  return shared;
}

uint64_t LeafCache::minted() const {
  std::lock_guard lock(mu_);
  return minted_;
}

size_t LeafCache::size() const {
  std::lock_guard lock(mu_);
  return lru_.size();
}

}  // namespace sluice::tls
