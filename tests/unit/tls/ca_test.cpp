#include "tls/ca.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <thread>

using namespace sluice;
using namespace sluice::tls;

namespace {

X509* parse(const std::string& pem) {
  BIO* b = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* x = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  return x;
}

// Verifies `leaf` against `ca` alone, as a TLS client that trusts only the sluice CA would, for `host`.
bool verifies(const CertificateAuthority& ca, const std::string& leaf_pem, const std::string& host) {
  X509* root = parse(ca.cert_pem());
  X509* leaf = parse(leaf_pem);
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, root);
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, leaf, nullptr);
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx);
  X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);
  unsigned char ip[16];
  if (inet_pton(AF_INET, host.c_str(), ip) == 1 || inet_pton(AF_INET6, host.c_str(), ip) == 1)
    X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
  else
    X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
  bool ok = X509_verify_cert(ctx) == 1;
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  X509_free(leaf);
  X509_free(root);
  return ok;
}

}  // namespace

TEST(CertificateAuthority, MintsLeavesThatVerifyForEveryNameAndNothingElse) {
  auto ca = CertificateAuthority::ephemeral();
  ASSERT_TRUE(ca) << ca.error().message;
  auto leaf = ca->mint({"api.example.test", "www.example.test", "127.0.0.1", "::1"});
  ASSERT_TRUE(leaf) << leaf.error().message;
  for (std::string host : {"api.example.test", "www.example.test", "127.0.0.1", "::1"})
    EXPECT_TRUE(verifies(*ca, leaf->cert_pem, host)) << host;
  for (std::string host : {"other.example.test", "127.0.0.2", "example.test"})
    EXPECT_FALSE(verifies(*ca, leaf->cert_pem, host)) << host;
  // Another CA's client does not accept it.
  auto stranger = CertificateAuthority::ephemeral();
  EXPECT_FALSE(verifies(*stranger, leaf->cert_pem, "api.example.test"));
  // The key is the certificate's, and the issuer is the CA.
  X509* x = parse(leaf->cert_pem);
  BIO* kb = BIO_new_mem_buf(leaf->key_pem.data(), static_cast<int>(leaf->key_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr);
  BIO_free(kb);
  EXPECT_EQ(X509_check_private_key(x, key), 1);
  char issuer[256];
  X509_NAME_oneline(X509_get_issuer_name(x), issuer, sizeof issuer);
  EXPECT_EQ(std::string(issuer), ca->subject());
  EVP_PKEY_free(key);
  X509_free(x);
}

TEST(CertificateAuthority, RefusesNamesThatWouldInjectExtensions) {
  auto ca = CertificateAuthority::ephemeral();
  ASSERT_TRUE(ca);
  EXPECT_FALSE(ca->mint({}));
  EXPECT_FALSE(ca->mint({"a.test,DNS:evil.test"}));
  EXPECT_FALSE(ca->mint({""}));
}

TEST(LeafCache, MintsOncePerHostAndEvictsTheLeastRecentlyUsed) {
  auto ca = CertificateAuthority::ephemeral();
  ASSERT_TRUE(ca);
  LeafCache cache(*ca, 2);
  auto a1 = cache.get({"a.test"});
  ASSERT_TRUE(a1);
  for (int i = 0; i < 200; ++i) {
    auto again = cache.get({"a.test"});
    ASSERT_TRUE(again);
    EXPECT_EQ(again->get(), a1->get());  // the same leaf, not a new key
  }
  EXPECT_EQ(cache.minted(), 1u);
  ASSERT_TRUE(cache.get({"b.test"}));
  ASSERT_TRUE(cache.get({"a.test"}));  // a is now the most recent
  ASSERT_TRUE(cache.get({"c.test"}));  // evicts b
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.minted(), 3u);
  ASSERT_TRUE(cache.get({"a.test"}));
  EXPECT_EQ(cache.minted(), 3u);
  ASSERT_TRUE(cache.get({"b.test"}));
  EXPECT_EQ(cache.minted(), 4u);
}

TEST(LeafCache, ConcurrentRequestsForOneHostShareOneLeaf) {
  auto ca = CertificateAuthority::ephemeral();
  ASSERT_TRUE(ca);
  LeafCache cache(*ca, 16);
  std::vector<std::shared_ptr<const CertificateAuthority::Leaf>> got(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < got.size(); ++i)
    threads.emplace_back([&, i] { got[i] = *cache.get({"same.test"}); });
  for (auto& t : threads) t.join();
  for (const auto& g : got) EXPECT_EQ(g->cert_pem, (*cache.get({"same.test"}))->cert_pem);
  EXPECT_EQ(cache.size(), 1u);
}
