// Fuzz target: the proxy's layer stack with TLS on the client's side and, in two of the three modes,
// on the server's: real OpenSSL sessions (a client, a server presenting a leaf of our CA) talk to it
// through memory, and the input chooses what happens in which order: the sessions' bytes delivered
// whole or in pieces, requests and answers, garbage from either side, either side closing or
// resetting, close_notify, time passing past the handshake timeout. The first byte chooses the mode
// (reverse:http, TLS found in front of a plaintext server; reverse:https, TLS on both legs; regular, a
// CONNECT, then TLS on both legs, the server's handshake first), whether the server's certificate is
// verified (against the CA that signed it), whether the client offers h2 and sends SNI, and whether
// steps hold the units (then pipeline verdicts of every kind, at once or held and given later).
// Properties: no crash, no sanitizer report, whatever the order; the records keep the stream-end rule
// (formats/STREAM.md 2.3).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <string>

#include "layer/root_layer.hpp"
#include "support/layer_driver.hpp"
#include "support/stream_rule.hpp"
#include "tls/session.hpp"

using namespace sluice;
using namespace sluice::layer;

namespace {

struct Shared {
  tls::CertificateAuthority ca = *tls::CertificateAuthority::ephemeral();
  std::unique_ptr<tls::TlsConfig> verifying, insecure, peers;
  tls::CertificateAuthority::Leaf server_leaf = *ca.mint({"localhost", "127.0.0.1"});

  Shared() {
    // `verifying` trusts the CA that signed the server's leaf (names localhost and 127.0.0.1).
    std::string file = "/tmp/sluice_tls_layer_fuzz_ca." + std::to_string(::getpid()) + ".pem";
    std::ofstream(file) << ca.cert_pem();
    // No session is kept between inputs (a resumed handshake would make a crash depend on the inputs
    // before it).
    tls::TlsSettings none;
    none.server_sessions = 0;
    tls::TlsSettings trusting = none;
    trusting.server_ca = {file};
    verifying = *tls::TlsConfig::create(ca, trusting);  // loaded now: the file is not needed again
    std::remove(file.c_str());
    tls::TlsSettings off = none;
    off.insecure = true;
    insecure = *tls::TlsConfig::create(ca, off);
    peers = *tls::TlsConfig::create(ca, none);
  }
};

const char* const kRequests[] = {
    "GET /a HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "POST /b HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello",
    ("GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"),
    "GET /c HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
};
const char* const kAnswers[] = {
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"),
    "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Shared shared;
  if (size < 1) return 0;
  static const char* kModes[] = {"reverse:http://127.0.0.1:7000@0", "reverse:https://127.0.0.1:7000@0", "regular@0"};
  int mode = (data[0] & 3) % 3;
  ProxyOptions options;
  options.record_body_limit = 1u << 16;
  options.tls = data[0] & 4 ? shared.insecure.get() : shared.verifying.get();
  options.step_units = data[0] & 32;  // with steps: messages held whole, pipeline verdicts (op 14)
  ConnectionContext ctx("f", "127.0.0.1:1", core::Timestamp{0}, *parse_mode_spec(kModes[mode]), &options);
  test_support::LayerDriver d(make_root_layer(ctx));
  std::vector<std::string> alpn = {data[0] & 8 ? "h2" : "http/1.1", "http/1.1"};
  auto client = *tls::TlsSession::connect(*shared.peers, "localhost", "127.0.0.1:443", data[0] & 16 ? "" : "localhost", alpn);
  bool server_tls = mode != 0;
  std::string to_proxy;  // the client session's bytes not delivered yet
  size_t to_client = 0;  // of d.sent[kClientConn], bytes the client session has been given
  if (mode == 2) {  // the CONNECT and its answer, in the clear, before the client's TLS
    d.client("CONNECT localhost:7000 HTTP/1.1\r\nHost: localhost:7000\r\n\r\n");
    to_client = d.sent[kClientConn].size();
  }
  std::map<ConnId, std::unique_ptr<tls::TlsSession>> servers;
  std::map<ConnId, size_t> to_server;  // of d.sent[conn], bytes the server session has been given
  core::Bytes plain;
  auto server_session = [&](ConnId conn) -> tls::TlsSession* {
    if (!conn || !server_tls) return nullptr;
    auto& s = servers[conn];
    if (!s) s = *tls::TlsSession::accept(*shared.peers, shared.server_leaf, "http/1.1");
    return s.get();
  };
  auto to_server_conn = [&](ConnId conn, const std::string& bytes) {
    if (tls::TlsSession* s = server_session(conn)) {
      s->send(bytes);
      d.data(conn, s->take_output());
    } else {
      d.data(conn, bytes);
    }
  };

  // The proxy's new bytes to the client session; false when there were none.
  auto deliver_to_client = [&] {
    const std::string& sent = d.sent[kClientConn];
    bool any = sent.size() > to_client;
    client->receive(core::ByteView(sent).substr(to_client), plain);
    to_client = sent.size();
    return any;
  };
  // The proxy's new bytes to a TLS server's session, and its answer back; false when nothing moved.
  auto pump_server = [&](ConnId conn) {
    tls::TlsSession* s = server_session(conn);
    if (!s) return false;
    const std::string& sent = d.sent[conn];
    size_t& given = to_server[conn];
    bool any = sent.size() > given;
    core::Bytes got;
    s->receive(core::ByteView(sent).substr(given), got);
    given = sent.size();
    if (std::string back = s->take_output(); !back.empty()) {
      any = true;
      d.data(conn, back);
    }
    return any;
  };

  size_t pos = 1;
  while (pos + 2 <= size) {
    uint8_t op = data[pos] % 15, arg = data[pos + 1];
    pos += 2;
    ConnId server = d.last_opened;
    switch (op) {
      case 0: {  // the client session's bytes, the first `arg` of them (all when 0)
        to_proxy += client->take_output();
        size_t n = arg && arg < to_proxy.size() ? arg : to_proxy.size();
        if (n) d.client(to_proxy.substr(0, n));
        to_proxy.erase(0, n);
        break;
      }
      case 1:  // what the proxy sent the client, to the client session
        deliver_to_client();
        break;
      case 2:
        if (client->established()) client->send(kRequests[arg % 4]);
        break;
      case 3: {  // garbage from the client, in the clear
        size_t n = std::min<size_t>(arg % 64, size - pos);
        d.client(std::string(reinterpret_cast<const char*>(data + pos), n));
        pos += n;
        break;
      }
      case 4:
        d.close(kClientConn, arg & 1);
        break;
      case 5:
        client->close();
        break;
      case 6:  // what the proxy sent the server, to its session, and the session's answer back
        pump_server(server);
        break;
      case 7:
        if (server && (!server_tls || (server_session(server) && server_session(server)->established())))
          to_server_conn(server, kAnswers[arg % 4]);
        break;
      case 8: {  // garbage from the server, in the clear
        size_t n = std::min<size_t>(arg % 64, size - pos);
        if (server) d.data(server, std::string(reinterpret_cast<const char*>(data + pos), n));
        pos += n;
        break;
      }
      case 9:
        if (server) d.close(server, arg & 1);
        break;
      case 10:
        if (tls::TlsSession* s = server_session(server)) {
          s->close();
          d.data(server, s->take_output());
        }
        break;
      case 11:
        d.advance(std::chrono::milliseconds(1000u * arg));
        d.fire_timers();
        break;
      case 12:  // the client's bytes and the proxy's answers, back and forth until quiet
      case 13:
        for (int i = 0; i < 8; ++i) {
          std::string out = to_proxy + client->take_output();
          to_proxy.clear();
          if (!out.empty()) d.client(out);
          bool moved = deliver_to_client() || !out.empty();
          if (op == 13 && d.last_opened) moved = pump_server(d.last_opened) || moved;  // the server's side too
          if (!moved) break;
        }
        break;
      case 14:  // the pipeline's answer from here on: next, modified, drop, kill or respond; held or at once
        d.pick_verdict(arg >> 4, arg & 8);
        break;
    }
  }
  d.release();
  if (std::string breach = test_support::stream_rule_breach(d.records, ctx.conn_id(), d.closed); !breach.empty()) {
    std::fprintf(stderr, "stream-end rule: %s\n", breach.c_str());
    std::abort();
  }
  return 0;
}
