#include "layer/layer.hpp"

#include <gtest/gtest.h>

#include "layer/raw_layer.hpp"
#include "support/playbook.hpp"

using namespace sluice;
using namespace sluice::layer;
using test_support::data;
using test_support::Playbook;

TEST(ModeSpec, ParsesMitmproxySyntax) {
  auto m = parse_mode_spec("tcp:example.com:6379@7000");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->kind, ModeSpec::Kind::tcp);
  EXPECT_EQ(m->target_host, "example.com");
  EXPECT_EQ(m->target_port, 6379);
  EXPECT_EQ(m->listen_host, "127.0.0.1");  // loopback unless a host is given
  EXPECT_EQ(m->listen_port, 7000);

  m = parse_mode_spec("raw:[::1]:80@[::1]:0");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->target_host, "::1");
  EXPECT_EQ(m->listen_host, "::1");
  EXPECT_EQ(m->listen_port, 0);

  m = parse_mode_spec("regular");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->listen_port, 8080);
  m = parse_mode_spec("reverse:http://127.0.0.1:3000@0.0.0.0:9000");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->data, "http://127.0.0.1:3000");
  EXPECT_EQ(m->listen_host, "0.0.0.0");

  for (const char* bad : {"bogus", "tcp:nohostport@1", "tcp:h:99999@1", "raw:h:1@x", "reverse"}) {
    auto r = parse_mode_spec(bad);
    EXPECT_FALSE(r) << bad;
  }
}

// mitmproxy 10's spellings: reverse:tcp:// and reverse:tls:// are TCP forwards, a reverse target
// without a scheme is https, an upstream one http; modes sluice lacks are named as mitmproxy's.
TEST(ModeSpec, AcceptsMitmproxySpellings) {
  auto m = parse_mode_spec("reverse:tcp://127.0.0.1:6379@7000");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->kind, ModeSpec::Kind::tcp);
  EXPECT_EQ(m->target_port, 6379);
  EXPECT_TRUE(m->listen_port_given);
  m = parse_mode_spec("reverse:tls://example.com:443");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->kind, ModeSpec::Kind::tcp);
  EXPECT_FALSE(m->listen_port_given);
  m = parse_mode_spec("reverse:example.com");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->target_scheme, "https");
  EXPECT_EQ(m->target_port, 443);
  m = parse_mode_spec("upstream:127.0.0.1:3128");
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->target_scheme, "http");
  EXPECT_EQ(m->target_port, 3128);
  m = parse_mode_spec("socks5");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->listen_port, 1080);
  auto t = parse_mode_spec("transparent");
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message.find("mitmproxy's"), std::string::npos);
  auto dns = parse_mode_spec("reverse:dns://1.1.1.1");
  ASSERT_FALSE(dns);
  EXPECT_NE(dns.error().message.find("no reverse mode for dns"), std::string::npos);
}

namespace {
const ProxyOptions kNoIdle = [] {  // the raw children's idle timer is RawLayer's own test
  ProxyOptions o;
  o.idle_timeout = std::chrono::milliseconds(0);
  return o;
}();
}  // namespace

// NextLayer buffers the first bytes until the decider chooses, then replays them to the child.
TEST(NextLayer, BuffersUntilDecidedThenReplays) {
  auto mode = parse_mode_spec("tcp:127.0.0.1:7000@0");
  ConnectionContext ctx("c1", "127.0.0.1:1", core::Timestamp{0}, *mode, &kNoIdle);
  int asked = 0;
  auto decider = [&](ConnectionContext& c, core::ByteView first, bool) -> std::unique_ptr<Layer> {
    ++asked;
    if (first.size() < 4) return nullptr;  // wants four bytes
    return std::make_unique<RawLayer>(c, "127.0.0.1", 7000, "s1");
  };
  Playbook p(std::make_unique<NextLayer>(ctx, decider, false));
  p >> Start{};
  p >> data(kClientConn, "ab");
  p.nothing();
  p >> data(kClientConn, "cdef") << "OpenConnection(#1, conn=1, 127.0.0.1:7000)";
  p >> OpenCompleted{1, 1, {}, {}, "127.0.0.1:7000"} << "RunPipeline(#2, send raw seq=0 6 bytes \"abcdef\")";
  EXPECT_TRUE(p.check());
  EXPECT_EQ(asked, 2);
}

TEST(NextLayer, ClientLeavingBeforeADecisionIsClosed) {
  auto mode = parse_mode_spec("tcp:127.0.0.1:7000@0");
  ConnectionContext ctx("c1", "127.0.0.1:1", core::Timestamp{0}, *mode);
  auto never = [](ConnectionContext&, core::ByteView, bool) -> std::unique_ptr<Layer> { return nullptr; };
  Playbook p(std::make_unique<NextLayer>(ctx, never, false));
  p >> Start{};
  p >> ConnectionClosed{kClientConn, false, {}} << "CloseConnection(conn=0)";
  p >> data(1, "late");  // the connection is over: nothing starts now
  p.nothing();
  EXPECT_TRUE(p.check());
}

TEST(NextLayer, AClientResetBeforeADecisionGoesToTheChildChosenFromWhatCame) {
  // The bytes that came are recorded and the child's stream ends then: nothing of it can come after
  // the connection's end (a server event later used to start the child after the client was closed).
  auto mode = parse_mode_spec("tcp:127.0.0.1:7000@0");
  ConnectionContext ctx("c1", "127.0.0.1:1", core::Timestamp{0}, *mode, &kNoIdle);
  auto decider = [&](ConnectionContext& c, core::ByteView first, bool at_eof) -> std::unique_ptr<Layer> {
    if (first.size() < 10 && !at_eof) return nullptr;
    return std::make_unique<RawLayer>(c, 1, "127.0.0.1:7000", "s1");  // adopts server connection 1
  };
  Playbook p(std::make_unique<NextLayer>(ctx, decider, false));
  p >> Start{};
  p >> data(kClientConn, "abc");
  p.nothing();
  p >> ConnectionClosed{kClientConn, true, "connection reset by peer"}
    << "RunPipeline(#1, send raw seq=0 3 bytes \"abc\")" << "CloseConnection(conn=1)" << "CloseConnection(conn=0)"
    << "EmitRecord(end stream s1 reset sent=3 received=0)";
  p >> ConnectionClosed{1, true, "connection reset by peer"};
  p.nothing();
  EXPECT_TRUE(p.check());
}

// A client that makes no decision within the deadline is given up: an error record, both closed.
TEST(NextLayer, AClientSilentPastTheDeadlineIsClosed) {
  auto mode = parse_mode_spec("reverse:http://127.0.0.1:7000@0");
  ConnectionContext ctx("c1", "127.0.0.1:1", core::Timestamp{0}, *mode);
  auto never = [](ConnectionContext&, core::ByteView, bool) -> std::unique_ptr<Layer> { return nullptr; };
  Playbook p(std::make_unique<NextLayer>(ctx, never, false, std::chrono::milliseconds(0),
                                         std::chrono::milliseconds(2000), ConnId{1}));
  p >> Start{} << "StartTimer(#1, 2000ms)";
  p >> data(kClientConn, "\x16");  // one byte of something, then silence
  p.nothing();
  p >> TimerFired{1} << "EmitRecord(error c1 client_timeout: the client's first bytes stalled for 2 s)"
                     << "CloseConnection(conn=1)" << "CloseConnection(conn=0)";
  p >> data(kClientConn, "late");
  p.nothing();
  EXPECT_TRUE(p.check());
}

TEST(Playbook, ReportsAReadableDiff) {
  auto mode = parse_mode_spec("raw:127.0.0.1:7000@0");
  ConnectionContext ctx("c1", "127.0.0.1:1", core::Timestamp{0}, *mode);
  Playbook p(std::make_unique<RawLayer>(ctx, "127.0.0.1", 7000, "s"));
  p >> Start{} << "OpenConnection(#1, conn=1, 127.0.0.1:9999)";
  auto r = p.check();
  ASSERT_FALSE(r);
  std::string msg = r.message();
  EXPECT_NE(msg.find("!! expected"), std::string::npos) << msg;
  EXPECT_NE(msg.find("OpenConnection(#1, conn=1, 127.0.0.1:7000)    !! got"), std::string::npos) << msg;
}
