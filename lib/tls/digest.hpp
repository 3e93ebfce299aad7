#pragma once
// Message digests fetched from OpenSSL's default provider once per process. A legacy EVP_sha256()
// is looked up in the provider tables again at every EVP_Digest (a lock and a name search in
// OpenSSL 3), which the per-handshake fingerprints (JA3, JA4, certificate SHA-256) paid each time.
#include <openssl/evp.h>

namespace sluice::tls {

inline const EVP_MD* sha256_digest() {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return md ? md : EVP_sha256();
}

// JA3 is defined over MD5; a FIPS-only OpenSSL has none to fetch, and EVP_md5() then fails as before.
inline const EVP_MD* md5_digest() {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "MD5", nullptr);
  return md ? md : EVP_md5();
}

}  // namespace sluice::tls
