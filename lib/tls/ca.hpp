#pragma once
// The local certificate authority that TLS interception signs its leaf certificates with.
//
// Stored as two PEM files in one directory: ca.pem (the certificate, safe to share) and ca-key.pem (the
// private key, mode 0600, in a directory of mode 0700). The default directory is
// $XDG_DATA_HOME/sluice/ca, else ~/.local/share/sluice/ca. The key is ECDSA P-256; the certificate is
// self-signed, valid 10 years, a CA restricted to signing certificates.
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/bytes.hpp"
#include "core/result.hpp"

struct x509_st;      // OpenSSL's X509
struct evp_pkey_st;  // OpenSSL's EVP_PKEY

namespace sluice::tls {

std::string default_ca_dir();

class CertificateAuthority {
 public:
  // Loads the CA in `dir`; when there is none, creates it first (`created` says which happened).
  static core::Result<CertificateAuthority> open_or_create(const std::string& dir, bool* created = nullptr);
  // Loads an existing CA (cert and key PEM files); an error when absent or unreadable.
  static core::Result<CertificateAuthority> load(const std::string& cert_path, const std::string& key_path);
  // A throwaway CA that lives in memory only.
  static core::Result<CertificateAuthority> ephemeral();

  std::string cert_pem() const;
  core::Bytes cert_der() const;
  // PKCS#12 bundle of the certificate alone (what trust stores import), protected by `password`.
  core::Result<core::Bytes> cert_p12(const std::string& password) const;
  // base64(SHA-256(SubjectPublicKeyInfo DER)): what Chromium's --ignore-certificate-errors-spki-list takes.
  std::string spki_sha256_base64() const;
  // SHA-256 of the certificate DER, hex, colon-free lower case.
  std::string fingerprint_sha256() const;
  std::string subject() const;
  // The certificate itself (owned by this object), for sending in a chain.
  x509_st* x509() const;

  // A leaf certificate for `names` (DNS names or IP literals; the first is the CN), signed by this CA:
  // ECDSA P-256, valid from an hour ago for 1 year, serverAuth, with a SAN per name.
  struct Leaf {
    std::string cert_pem, key_pem;
    std::shared_ptr<x509_st> cert;     // the same, parsed, for handing to a TLS session
    std::shared_ptr<evp_pkey_st> key;
  };
  core::Result<Leaf> mint(const std::vector<std::string>& names) const;

  struct Handles;

 private:
  explicit CertificateAuthority(std::shared_ptr<Handles> h) : h_(std::move(h)) {}
  std::shared_ptr<Handles> h_;
};

// Leaves minted once per host and kept, most recently used first, up to `capacity` (--cert-cache):
// repeat hosts cost no key generation. Thread-safe.
class LeafCache {
 public:
  LeafCache(CertificateAuthority ca, size_t capacity) : ca_(std::move(ca)), capacity_(capacity ? capacity : 1) {}
  // The leaf for `names` (the key is the names joined); minted on a miss (`*minted` says which).
  core::Result<std::shared_ptr<const CertificateAuthority::Leaf>> get(const std::vector<std::string>& names,
                                                                      bool* minted = nullptr);
  uint64_t minted() const;
  size_t size() const;

 private:
  using Entry = std::pair<std::string, std::shared_ptr<const CertificateAuthority::Leaf>>;
  CertificateAuthority ca_;
  size_t capacity_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  uint64_t minted_ = 0;
};

}  // namespace sluice::tls
