#include "layer/raw_layer.hpp"

#include <gtest/gtest.h>

#include "support/playbook.hpp"

using namespace sluice;
using namespace sluice::layer;
using test_support::data;
using test_support::Playbook;

namespace {
// Without the idle timer (its own test below), so the transcripts show only what they are about.
const ProxyOptions kNoIdle = [] {
  ProxyOptions o;
  o.idle_timeout = std::chrono::milliseconds(0);
  return o;
}();
ConnectionContext make_ctx(const ProxyOptions* options = &kNoIdle) {
  auto mode = parse_mode_spec("raw:127.0.0.1:7000@0");
  return ConnectionContext("c1", "127.0.0.1:50000", core::Timestamp{0}, *mode, options);
}
Event open_ok(CommandId id) { return OpenCompleted{id, 1, {}, {}, "127.0.0.1:7000"}; }
}  // namespace

TEST(RawLayer, ForwardsBothWaysAndEndsWithARecord) {
  auto ctx = make_ctx();
  Playbook p(std::make_unique<RawLayer>(ctx, "127.0.0.1", 7000, "s1"));
  p >> Start{} << "OpenConnection(#1, conn=1, 127.0.0.1:7000)";
  p >> data(kClientConn, "hello");  // before the server is connected: held
  p.nothing();
  p >> open_ok(1) << "RunPipeline(#2, send raw seq=0 5 bytes \"hello\")";
  p >> p.forward(2) << "SendData(conn=1, 5 bytes \"hello\")";
  p >> data(1, "HELLO") << "RunPipeline(#3, receive raw seq=1 5 bytes \"HELLO\")";
  p >> p.forward(3) << "SendData(conn=0, 5 bytes \"HELLO\")";
  p >> ConnectionClosed{kClientConn, false, {}} << "CloseConnection(conn=1, half)";
  p >> ConnectionClosed{1, false, {}} << "CloseConnection(conn=0, half)"
                           << "CloseConnection(conn=1)" << "CloseConnection(conn=0)"
                           << "EmitRecord(end stream s1 closed sent=5 received=5)";
  EXPECT_TRUE(p.check());
}

TEST(RawLayer, ServerSpeaksFirst) {
  auto ctx = make_ctx();
  Playbook p(std::make_unique<RawLayer>(ctx, "127.0.0.1", 7000, "s1"));
  p >> Start{} << "OpenConnection(#1, conn=1, 127.0.0.1:7000)";
  p >> open_ok(1);
  p >> data(1, "220 smtp ready\r\n") << "RunPipeline(#2, receive raw seq=0 16 bytes \"220 smtp ready\\x0d\\x0a\")";
  p >> p.forward(2) << "SendData(conn=0, 16 bytes \"220 smtp ready\\x0d\\x0a\")";
  EXPECT_TRUE(p.check());
}

TEST(RawLayer, RefusedConnectionGivesAnErrorRecordAndClosesTheClient) {
  auto ctx = make_ctx();
  Playbook p(std::make_unique<RawLayer>(ctx, "127.0.0.1", 7000, "s1"));
  p >> Start{} << "OpenConnection(#1, conn=1, 127.0.0.1:7000)";
  p >> OpenCompleted{1, 1, "connect_refused", "connection refused by 127.0.0.1:7000", {}}
    << "EmitRecord(error s1 connect_refused: connection refused by 127.0.0.1:7000)"
    << "CloseConnection(conn=0)" << "EmitRecord(end stream s1 error sent=0 received=0)";
  p >> data(kClientConn, "late");  // after the end: ignored
  EXPECT_TRUE(p.check());
}

TEST(RawLayer, AHeldChunkHoldsOnlyItsOwnDirection) {
  auto ctx = make_ctx();
  Playbook p(std::make_unique<RawLayer>(ctx, "127.0.0.1", 7000, "s1"));
  p >> Start{} << "OpenConnection(#1, conn=1, 127.0.0.1:7000)";
  p >> open_ok(1);
  p >> data(kClientConn, "a") << "RunPipeline(#2, send raw seq=0 1 bytes \"a\")";
  p >> data(kClientConn, "b");  // waits behind #2, in order
  p.nothing();
  p >> data(1, "x") << "RunPipeline(#3, receive raw seq=1 1 bytes \"x\")";
  p >> p.forward(3) << "SendData(conn=0, 1 bytes \"x\")";
  p >> p.forward(2) << "SendData(conn=1, 1 bytes \"a\")" << "RunPipeline(#4, send raw seq=2 1 bytes \"b\")";
  p >> p.verdict(4, Verdict::drop);  // dropped: nothing sent
  EXPECT_TRUE(p.check());
}

TEST(RawLayer, PausesReadingPastTheHighWaterMark) {
  auto ctx = make_ctx();
  Playbook p(std::make_unique<RawLayer>(ctx, "127.0.0.1", 7000, "s1"));
  p >> Start{} << "OpenConnection(#1, conn=1, 127.0.0.1:7000)";
  std::string chunk(600 * 1024, 'z');
  p >> data(kClientConn, chunk);
  p >> data(kClientConn, chunk) << "PauseReading(conn=0)";
  p >> open_ok(1) << "RunPipeline(#2, send raw seq=0 614400 bytes \"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz...\")";
  // 600 KiB still queued is above the low-water mark (512 KiB): reading stays paused until it drains.
  p >> p.forward(2) << "SendData(conn=1, 614400 bytes \"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz...\")"
                    << "RunPipeline(#3, send raw seq=1 614400 bytes \"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz...\")"
                    << "ResumeReading(conn=0)";
  EXPECT_TRUE(p.check());
}

TEST(RawLayer, KillVerdictAndResetEndTheStream) {
  auto ctx = make_ctx();
  Playbook p(std::make_unique<RawLayer>(ctx, "127.0.0.1", 7000, "s1"));
  p >> Start{} << "OpenConnection(#1, conn=1, 127.0.0.1:7000)";
  p >> open_ok(1);
  p >> data(kClientConn, "rm -rf") << "RunPipeline(#2, send raw seq=0 6 bytes \"rm -rf\")";
  p >> p.verdict(2, Verdict::kill) << "CloseConnection(conn=1)" << "CloseConnection(conn=0)"
                                   << "EmitRecord(end stream s1 killed sent=6 received=0)";
  EXPECT_TRUE(p.check());

  auto ctx2 = make_ctx();
  Playbook q(std::make_unique<RawLayer>(ctx2, "127.0.0.1", 7000, "s2"));
  q >> Start{} << "OpenConnection(#1, conn=1, 127.0.0.1:7000)";
  q >> open_ok(1);
  q >> ConnectionClosed{1, true, "connection reset by peer"} << "CloseConnection(conn=1)" << "CloseConnection(conn=0)"
                                                             << "EmitRecord(end stream s2 reset sent=0 received=0)";
  EXPECT_TRUE(q.check());
}

// The bytes forwarded, and the raw envelopes recorded, reassemble to exactly what was sent, whatever
// the split of the input.
TEST(RawLayer, EverySplitPointReassemblesExactly) {
  const std::string msg = "GET /\r\n\x00\xFF binary \x01\x02 tail";
  for (size_t cut = 0; cut <= msg.size(); ++cut) {
    auto ctx = make_ctx();
    RawLayer layer(ctx, "127.0.0.1", 7000, "s");
    Commands out;
    core::Timestamp t{0};
    layer.handle(Start{}, t, out);
    layer.handle(open_ok(1), t, out);
    std::string sent;
    std::string recorded;
    auto settle = [&] {
      // Answer every pipeline request at once, as the runtime does for a pipeline without holds.
      for (size_t i = 0; i < out.size(); ++i) {
        if (auto* r = std::get_if<RunPipeline>(&out[i])) {
          recorded += r->envelope.raw;
          Commands more;
          layer.handle(PipelineVerdict{r->id, Verdict::forward, r->envelope}, t, more);
          for (auto& m : more) out.push_back(std::move(m));
        } else if (auto* s = std::get_if<SendData>(&out[i])) {
          sent += s->data;
        }
      }
      out.clear();
    };
    layer.handle(DataReceived{kClientConn, std::string_view(msg).substr(0, cut)}, t, out);
    settle();
    layer.handle(DataReceived{kClientConn, std::string_view(msg).substr(cut)}, t, out);
    settle();
    EXPECT_EQ(sent, msg) << "cut " << cut;
    EXPECT_EQ(recorded, msg) << "cut " << cut;
  }
}

// No byte either way for the idle timeout closes both sides; every byte starts the wait again.
TEST(RawLayer, IdleTimeoutClosesBothSides) {
  ProxyOptions o;
  o.idle_timeout = std::chrono::milliseconds(1000);
  auto ctx = make_ctx(&o);
  Playbook p(std::make_unique<RawLayer>(ctx, 1, "127.0.0.1:7000", "s1"));  // adopted, as in a tunnel
  p >> Start{} << "StartTimer(#1, 1000ms)";
  p.advance(std::chrono::milliseconds(600));
  p >> data(kClientConn, "hi") << "RunPipeline(#2, send raw seq=0 2 bytes \"hi\")";
  p >> p.forward(2) << "SendData(conn=1, 2 bytes \"hi\")";
  p.advance(std::chrono::milliseconds(400));
  p >> TimerFired{1} << "StartTimer(#3, 600ms)";  // 600 ms since the last byte: 600 more
  p.advance(std::chrono::milliseconds(600));
  p >> TimerFired{3} << "CloseConnection(conn=1)" << "CloseConnection(conn=0)"
                     << "EmitRecord(end stream s1 timeout sent=2 received=0)";
  EXPECT_TRUE(p.check());
}
