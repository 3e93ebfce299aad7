// TlsLayer, sans-IO: a real TLS client session (OpenSSL, memory buffers) talks to a reverse-mode
// layer stack through the LayerDriver. The ClientHello is split at every byte; each time the handshake
// completes, the leaf verifies against the CA, the request reaches the server in plaintext and the
// answer comes back encrypted, and the stream records the handshake.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "layer/root_layer.hpp"
#include "support/layer_driver.hpp"
#include "tls/session.hpp"

using namespace sluice;
using namespace sluice::layer;
using test_support::LayerDriver;

namespace {

struct Fixture {
  tls::CertificateAuthority ca = *tls::CertificateAuthority::ephemeral();
  std::unique_ptr<tls::TlsConfig> proxy_tls = *tls::TlsConfig::create(ca, {});
  std::unique_ptr<tls::TlsConfig> client_tls;  // trusts `ca`
  ProxyOptions options;
  // One file per process: ctest runs the tests of this suite in parallel processes.
  std::string ca_file = ::testing::TempDir() + "/tls_layer_test_ca." + std::to_string(::getpid()) + ".pem";

  Fixture() {
    std::ofstream(ca_file) << ca.cert_pem();
    tls::TlsSettings s;
    s.server_ca = {ca_file};
    client_tls = *tls::TlsConfig::create(ca, s);
    options.tls = proxy_tls.get();
  }
  ~Fixture() { std::remove(ca_file.c_str()); }
  ConnectionContext context() {
    return ConnectionContext("t", "127.0.0.1:1", core::Timestamp{0}, *parse_mode_spec("reverse:http://127.0.0.1:7000@0"),
                             &options);
  }
};

// Moves bytes between the client session and the layer until neither side has more to say.
void pump(LayerDriver& d, tls::TlsSession& client, size_t& consumed, core::Bytes& plain) {
  for (int i = 0; i < 20; ++i) {
    std::string to_client = d.sent[kClientConn].substr(consumed);
    consumed += to_client.size();
    client.receive(to_client, plain);
    std::string to_proxy = client.take_output();
    if (to_proxy.empty() && to_client.empty()) return;
    if (!to_proxy.empty()) d.client(to_proxy);
  }
}

}  // namespace

TEST(TlsLayer, HandshakeAtEverySplitOfTheClientHello) {
  Fixture f;
  std::string hello_len;
  for (size_t split = 0;; ++split) {
    ConnectionContext ctx = f.context();
    LayerDriver d(make_root_layer(ctx));
    auto client = *tls::TlsSession::connect(*f.client_tls, "localhost", "127.0.0.1:443", "localhost", {"http/1.1"});
    std::string hello = client->take_output();
    if (split > hello.size()) break;
    d.client(hello.substr(0, split));
    if (split < hello.size()) d.client(hello.substr(split));
    size_t consumed = 0;
    core::Bytes plain;
    pump(d, *client, consumed, plain);
    ASSERT_TRUE(client->established()) << "split " << split << ": " << client->error();
    ASSERT_EQ(client->verify_error(), "") << split;  // the leaf chains to our CA and names localhost
    client->send("GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n");
    d.client(client->take_output());
    ASSERT_EQ(d.opened.size(), 1u) << split;
    EXPECT_FALSE(d.opened[0].tls);  // reverse:http:// target: plaintext to the server
    EXPECT_EQ(d.sent[d.opened[0].conn], "GET /x HTTP/1.1\r\nHost: 127.0.0.1:7000\r\n\r\n") << split;
    d.server("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
    pump(d, *client, consumed, plain);
    EXPECT_EQ(plain, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi") << split;

    auto envs = d.envelopes();
    ASSERT_FALSE(envs.empty());
    const auto& hs = envs[0];
    ASSERT_EQ(hs.protocol, envelope::Protocol::tls_handshake) << split;
    const auto& m = std::get<envelope::TlsHandshakeMessage>(hs.message);
    EXPECT_EQ(m.side, "client");
    EXPECT_EQ(m.sni, "localhost");
    EXPECT_EQ(m.alpn, "http/1.1");
    EXPECT_EQ(hs.raw, hello);  // the ClientHello exactly as sent
    EXPECT_EQ(m.ja4.substr(0, 4), "t13d");
    const auto* req = &envs[1];
    ASSERT_EQ(req->protocol, envelope::Protocol::http);
    ASSERT_TRUE(req->context.tls.has_value());
    EXPECT_EQ(req->context.tls->sni, "localhost");
    EXPECT_EQ(f.proxy_tls->leaves().minted(), 1u);  // one leaf for every connection
  }
}

TEST(TlsLayer, PlainClientOfAReverseListenerStillWorks) {
  Fixture f;
  ConnectionContext ctx = f.context();
  LayerDriver d(make_root_layer(ctx));
  d.client("GET /p HTTP/1.1\r\nHost: a\r\n\r\n");
  ASSERT_EQ(d.opened.size(), 1u);
  EXPECT_EQ(d.sent[d.opened[0].conn], "GET /p HTTP/1.1\r\nHost: 127.0.0.1:7000\r\n\r\n");
}

TEST(TlsLayer, SlowHandshakeTimesOut) {
  Fixture f;
  ConnectionContext ctx = f.context();
  LayerDriver d(make_root_layer(ctx));
  auto client = *tls::TlsSession::connect(*f.client_tls, "localhost", "127.0.0.1:443", "localhost", {});
  std::string hello = client->take_output();
  d.client(hello.substr(0, 10));
  d.advance(std::chrono::milliseconds(31'000));
  d.fire_timers();
  auto errors = d.records_of<envelope::ErrorRecord>();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].code, "tls_handshake_timeout");
  ASSERT_FALSE(d.closed.empty());
  EXPECT_EQ(d.closed.back().conn, kClientConn);
  EXPECT_TRUE(d.opened.empty());
}

TEST(TlsLayer, MalformedClientHelloIsRecordedAndClosed) {
  Fixture f;
  ConnectionContext ctx = f.context();
  LayerDriver d(make_root_layer(ctx));
  d.client(std::string("\x16\x03\x01\x00\x05\x02\x00\x00\x01x", 10));
  auto errors = d.records_of<envelope::ErrorRecord>();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].code, "tls_bad_client_hello");
  EXPECT_NE(errors[0].message.find("not a ClientHello"), std::string::npos) << errors[0].message;
  EXPECT_TRUE(d.opened.empty());
}

TEST(TlsLayer, AClientsCloseNotifyEndsWhatItSendsAndIsAnsweredOnce) {
  // A client that sends close_notify after its request and waits for ours before closing TCP: its
  // exchange is answered, then the connection closes (with our close_notify) without its FIN.
  Fixture f;
  ConnectionContext ctx = f.context();
  LayerDriver d(make_root_layer(ctx));
  auto client = *tls::TlsSession::connect(*f.client_tls, "localhost", "127.0.0.1:443", "localhost", {"http/1.1"});
  d.client(client->take_output());
  size_t consumed = 0;
  core::Bytes plain;
  pump(d, *client, consumed, plain);
  ASSERT_TRUE(client->established()) << client->error();
  client->send("GET /bye HTTP/1.1\r\nHost: localhost\r\n\r\n");
  client->close();
  d.client(client->take_output());
  ASSERT_EQ(d.opened.size(), 1u);
  d.server("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  pump(d, *client, consumed, plain);
  EXPECT_EQ(plain, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  EXPECT_TRUE(client->peer_closed());  // our close_notify came
  auto closes_client = [&d] {
    return std::count_if(d.closed.begin(), d.closed.end(),
                         [](const CloseConnection& c) { return c.conn == kClientConn && !c.half; });
  };
  EXPECT_EQ(closes_client(), 1);
  // The TCP FIN that follows is not news to the child: nothing more happens.
  size_t records = d.records.size();
  d.close(kClientConn);
  EXPECT_EQ(closes_client(), 1);
  EXPECT_EQ(d.records.size(), records);
}
