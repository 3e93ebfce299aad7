// TlsSession in memory: a client session facing a server session, both ours, bytes moved by hand.
// What is checked: which servers' sessions are kept and offered again (TlsSettings::server_sessions).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "tls/session.hpp"

using namespace sluice;

namespace {

struct Peers {
  tls::CertificateAuthority ca = *tls::CertificateAuthority::ephemeral();
  std::unique_ptr<tls::TlsConfig> server = *tls::TlsConfig::create(ca, {});
  tls::CertificateAuthority::Leaf leaf = *ca.mint({"localhost"});
  std::string ca_file = ::testing::TempDir() + "/session_test_ca." + std::to_string(::getpid()) + ".pem";

  // A client configuration keeping `sessions` servers' sessions, trusting `ca` when `trusting`.
  std::unique_ptr<tls::TlsConfig> client(size_t sessions, bool trusting = true) {
    tls::TlsSettings s;
    s.server_sessions = sessions;
    if (trusting) {
      std::ofstream(ca_file) << ca.cert_pem();
      s.server_ca = {ca_file};
    }
    auto config = *tls::TlsConfig::create(ca, s);
    std::remove(ca_file.c_str());
    return config;
  }

  // One connection to `address` (its certificate checked for localhost), through an exchange of
  // application data (so the client reads the server's session tickets); whether the client's
  // handshake resumed a session.
  bool connect(const tls::TlsConfig& client_config, const std::string& address) {
    auto c = *tls::TlsSession::connect(client_config, "localhost", address, "localhost", {});
    auto s = *tls::TlsSession::accept(*server, leaf, "");
    core::Bytes plain;
    for (int i = 0; i < 10 && !(c->established() && s->established()); ++i) {
      s->receive(c->take_output(), plain);
      c->receive(s->take_output(), plain);
    }
    EXPECT_TRUE(c->established()) << c->error();
    s->send("ping");
    c->receive(s->take_output(), plain);
    EXPECT_EQ(plain, "ping");
    return c->resumed();
  }
};

}  // namespace

TEST(TlsSession, AServersSessionIsOfferedOnTheNextConnectionToIt) {
  Peers p;
  auto client = p.client(8);
  EXPECT_FALSE(p.connect(*client, "127.0.0.1:443"));
  EXPECT_TRUE(p.connect(*client, "127.0.0.1:443"));
  EXPECT_TRUE(p.connect(*client, "127.0.0.1:443"));
  EXPECT_FALSE(p.connect(*client, "127.0.0.1:8443"));  // another port, another server
  EXPECT_TRUE(p.connect(*client, "127.0.0.1:8443"));
  // Another address with the same name and SNI: that server never gave us a session.
  EXPECT_FALSE(p.connect(*client, "127.0.0.2:443"));
}

TEST(TlsSession, TheLeastRecentlyUsedServerIsForgottenFirst) {
  Peers p;
  auto client = p.client(1);
  EXPECT_FALSE(p.connect(*client, "a:1"));
  EXPECT_TRUE(p.connect(*client, "a:1"));
  EXPECT_FALSE(p.connect(*client, "b:1"));  // takes the only place
  EXPECT_FALSE(p.connect(*client, "a:1"));
}

TEST(TlsSession, NoSessionIsKeptWhenSessionsAreOff) {
  Peers p;
  auto client = p.client(0);
  EXPECT_FALSE(p.connect(*client, "127.0.0.1:443"));
  EXPECT_FALSE(p.connect(*client, "127.0.0.1:443"));
}

TEST(TlsSession, ASessionWhoseCertificateFailedVerificationIsNotKept) {
  Peers p;
  auto client = p.client(8, /*trusting=*/false);
  EXPECT_FALSE(p.connect(*client, "127.0.0.1:443"));
  EXPECT_FALSE(p.connect(*client, "127.0.0.1:443"));
}
