// FlowFilter: whole flows out in stream order, decided by their final response, their end, their
// stream's end, max_pending or the end of input; and the same answer whether records come decoded
// (feed) or as JSONL lines read in part (feed_line, with what it declines fed decoded).
#include <gtest/gtest.h>

#include <random>

#include "envelope/record_codec.hpp"
#include "filter/flow_filter.hpp"

using namespace sluice;
using filter::FlowFilter;

namespace {

envelope::Record http(const std::string& stream, const std::string& flow, envelope::HttpMessage::Kind kind,
                      const std::string& host, int status, std::string overlay = {}) {
  envelope::Envelope e;
  e.stream_id = stream;
  e.flow_id = flow;
  e.protocol = envelope::Protocol::http;
  e.overlay = std::move(overlay);
  e.raw = "x";
  envelope::HttpMessage m;
  m.kind = kind;
  m.method = "GET";
  m.scheme = "http";
  m.authority = host;
  m.path = "/";
  m.status = status;
  m.version = "HTTP/1.1";
  m.headers = {{"Host", host}, {"Content-Type", "text/plain"}};
  m.body = "body of " + flow;
  e.message = std::move(m);
  e.context.client = "127.0.0.1:1";
  e.context.server = host + ":80";
  return e;
}
envelope::Record request(const std::string& stream, const std::string& flow, const std::string& host) {
  return http(stream, flow, envelope::HttpMessage::Kind::request, host, 0);
}
envelope::Record response(const std::string& stream, const std::string& flow, int status) {
  return http(stream, flow, envelope::HttpMessage::Kind::response, "", status);
}
envelope::Record frame(const std::string& stream, const std::string& flow) {
  envelope::Envelope e;
  e.stream_id = stream;
  e.flow_id = flow;
  e.protocol = envelope::Protocol::ws;
  e.message = envelope::WsMessage{};
  return e;
}
envelope::Record end(const std::string& scope, const std::string& stream, const std::string& flow = {}) {
  envelope::EndRecord r;
  r.scope = scope;
  r.stream_id = stream;
  r.flow_id = flow;
  return r;
}
envelope::Record error(const std::string& stream, const std::string& flow) {
  envelope::ErrorRecord r;
  r.stream_id = stream;
  r.flow_id = flow;
  r.code = "timeout";
  return r;
}

std::string line_of(const envelope::Record& r) {
  std::string out;
  envelope::write_json(r, out);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

struct Run {
  std::vector<std::string> out;
  uint64_t matched = 0, forced = 0, taken_as_lines = 0;
};

// The records through a FlowFilter, decoded (`lines` false) or as lines; the lines that come out.
Run run(const std::string& expr, const std::vector<envelope::Record>& records, bool lines,
        FlowFilter::Options options = {}) {
  auto f = filter::Filter::parse(expr);
  EXPECT_TRUE(f) << expr;
  FlowFilter flows(std::move(*f), options);
  Run r;
  FlowFilter::Sink sink = [&](const FlowFilter::Passed& p) {
    EXPECT_FALSE(p.original.empty());
    r.out.emplace_back(p.original);
    if (p.record) {
      EXPECT_EQ(line_of(*p.record), std::string(p.original));
    }
  };
  for (const auto& rec : records) {
    std::string line = line_of(rec);
    if (lines && flows.feed_line(line, sink)) {
      ++r.taken_as_lines;
      continue;
    }
    flows.feed(rec, sink, line);
  }
  flows.finish(sink);
  r.matched = flows.matched();
  r.forced = flows.forced();
  return r;
}

// Both ways in give `want` (indices into records).
void expect(const std::string& expr, const std::vector<envelope::Record>& records, const std::vector<size_t>& want,
            FlowFilter::Options options = {}) {
  std::vector<std::string> lines;
  for (size_t i : want) lines.push_back(line_of(records[i]));
  auto decoded = run(expr, records, false, options);
  auto read_in_part = run(expr, records, true, options);
  EXPECT_EQ(decoded.out, lines) << expr;
  EXPECT_EQ(read_in_part.out, lines) << expr;
  EXPECT_EQ(decoded.matched, read_in_part.matched);
  EXPECT_EQ(decoded.forced, read_in_part.forced);
  EXPECT_GT(read_in_part.taken_as_lines, 0u);
}

envelope::StreamHeader header() { return envelope::StreamHeader{}; }

}  // namespace

TEST(FlowFilter, WholeFlowsInStreamOrderEitherWayIn) {
  std::vector<envelope::Record> s = {
      header(),                                 // 0 passes
      request("s1", "f1", "a.example"),         // 1 held until its response
      request("s2", "f2", "b.example"),         // 2
      response("s2", "f2", 200),                // 3 f2 decided: dropped
      response("s1", "f1", 404),                // 4 f1 decided: passes with 1
      http("s1", "f1", envelope::HttpMessage::Kind::response, "", 404, "h1-chunk"),  // 5 follows f1
      request("s1", "f3", "a.example"),         // 6
      error("s1", "f3"),                        // 7
      end("stream", "s1"),                      // 8 decides f3 (passes); passes: s1 had a flow pass
      request("s2", "f4", "a.example"),         // 9
      end("stream", "s2"),                      // 10 decides f4
      request("s3", "f5", "b.example"),         // 11
      end("flow", "s3", "f5"),                  // 12 decides f5: dropped with it
      end("stream", "s3"),                      // 13 no flow of s3 passed
      request("s4", "f6", "a.example"),         // 14 a WebSocket: 101 does not decide it
      response("s4", "f6", 101),                // 15
      frame("s4", "f6"),                        // 16
      end("flow", "s4", "f6"),                  // 17 decides f6
      response("s2", "f2", 200),                // 18 after its stream's end: a new flow, judged alone
  };
  expect("~d ^a\\.example$", s, {0, 1, 4, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17});
  expect("~c 404", s, {0, 1, 4, 5, 8});
  expect("~e", s, {0, 6, 7, 8});
  expect("~websocket", s, {0, 14, 15, 16, 17});
  expect("~h text/plain & ~b 'body of f2'", s, {0, 2, 3, 10, 18});
  expect("~dst b\\.example", s, {0, 2, 3, 10, 11, 12, 13});  // 18 has no server of its own
}

TEST(FlowFilter, EnvelopesJudgedOneByOne) {
  std::vector<envelope::Record> s = {request("s1", "f1", "a"), response("s1", "f1", 404), end("flow", "s1", "f1"),
                                     request("s1", "f2", "a"), response("s1", "f2", 200), end("stream", "s1"),
                                     end("stream", "s2")};
  expect("~c 404", s, {1, 2, 5}, {true, 10000});
}

TEST(FlowFilter, MaxPendingDecidesTheOldestOnWhatItHas) {
  std::vector<envelope::Record> s = {request("s1", "f1", "a"), request("s1", "f2", "b"), request("s1", "f3", "a"),
                                     response("s1", "f1", 200), response("s1", "f3", 200)};
  // f1 is decided when f3 arrives (no response yet: ~s fails); its response follows that verdict.
  expect("~d a", s, {0, 2, 3, 4}, {false, 2});
  expect("~s", s, {2, 4}, {false, 2});
  EXPECT_EQ(run("~s", s, true, {false, 2}).forced, 1u);
}

TEST(FlowFilter, ManyFlowsInterleaved) {
  // More flows than the id table's first size, answered in reverse order: every one held, then decided.
  std::vector<envelope::Record> s;
  std::vector<size_t> want;
  const int n = 3000;
  for (int i = 0; i < n; ++i) s.push_back(request("s" + std::to_string(i % 7), "flow-" + std::to_string(i), i % 3 ? "a" : "b"));
  for (int i = n - 1; i >= 0; --i) s.push_back(response("s" + std::to_string(i % 7), "flow-" + std::to_string(i), 200));
  for (int i = 0; i < n; ++i)
    if (i % 3 == 0) want.push_back(static_cast<size_t>(i));
  for (int i = n - 1; i >= 0; --i)
    if (i % 3 == 0) want.push_back(static_cast<size_t>(n + (n - 1 - i)));
  expect("~d b", s, want);
  EXPECT_EQ(run("~d b", s, true).matched, static_cast<uint64_t>(n / 3));
}

TEST(FlowFilter, AWebSocketFlowIsDecidedWhenItsSubStreamEnds) {
  // As the proxy writes it: the upgrade in the connection's stream, the frames in a sub-stream, whose
  // end is the last record of the connection. A live pipeline must not wait for the end of input.
  for (bool lines : {false, true}) {
    auto f = filter::Filter::parse("~websocket");
    ASSERT_TRUE(f);
    FlowFilter flows(std::move(*f), {});
    std::vector<std::string> out;
    FlowFilter::Sink sink = [&](const FlowFilter::Passed& p) { out.emplace_back(p.original); };
    std::vector<envelope::Record> s = {request("c1", "c1-0", "a"), response("c1", "c1-0", 101),
                                       frame("c1.2", "c1-0"),      frame("c1.2", "c1-0"),
                                       end("stream", "c1.2"),      request("c2", "c2-0", "a"),
                                       response("c2", "c2-0", 200)};
    for (const auto& rec : s) {
      std::string line = line_of(rec);
      if (!(lines && flows.feed_line(line, sink))) flows.feed(rec, sink, line);
    }
    std::vector<std::string> want;
    for (size_t i : {0, 1, 2, 3, 4}) want.push_back(line_of(s[i]));
    EXPECT_EQ(out, want) << "before the end of input, lines " << lines;  // c2's exchange is dropped
    EXPECT_EQ(flows.matched(), 1u);
  }
}

TEST(FlowFilter, AConnectionsEndPassesWithAFlowOfASubStreamThatEndedBeforeIt) {
  // As the proxy writes an intercepted CONNECT: the CONNECT exchange in the connection's stream, the
  // TLS handshakes in one sub-stream, the HTTP exchanges in another; the sub-streams end first.
  std::vector<envelope::Record> s = {header(),
                                     request("c", "c-0", "proxy"),  // 1
                                     response("c", "c-0", 200),
                                     frame("c.2", "c.2-tls"),       // 3: the handshake
                                     request("c.3", "c.3-0", "a"),  // 4
                                     response("c.3", "c.3-0", 200),
                                     end("stream", "c.3"),          // 6
                                     end("stream", "c.2"),
                                     end("stream", "c"),            // 8
                                     request("d", "d-0", "b"),      // 9: another connection, dropped
                                     end("stream", "d")};
  expect("~d a", s, {0, 4, 5, 6, 8});
  expect("~d b", s, {0, 9, 10});
  expect("~c 500", s, {0});
}

TEST(FlowFilter, ForgetsWhatEndedStreamsNeedNoMore) {
  // An endless input of connections (HTTP/1 exchanges; HTTP/2 streams in sub-streams the connection's
  // end ends; a WebSocket whose frames go on in a sub-stream; an intercepted CONNECT whose sub-streams
  // end before it): what is remembered stays small.
  auto f = filter::Filter::parse("~d a");
  ASSERT_TRUE(f);
  FlowFilter flows(std::move(*f), {});
  size_t passed = 0, most = 0, want = 0;
  FlowFilter::Sink sink = [&](const FlowFilter::Passed&) { ++passed; };
  const int n = 4000;
  for (int c = 0; c < n; ++c) {
    std::string conn = "run-" + std::to_string(c), host = (c / 4) % 2 ? "a" : "b";
    std::vector<envelope::Record> rs;
    size_t not_a = 0;  // records of this connection that never pass
    if (c % 4 == 0) {
      for (int x = 0; x < 3; ++x) {
        std::string flow = conn + "-" + std::to_string(x);
        rs.push_back(request(conn, flow, host));
        rs.push_back(response(conn, flow, 200));
      }
    } else if (c % 4 == 1) {
      for (int k = 1; k <= 3; ++k) {
        std::string sub = conn + "." + std::to_string(2 * k - 1);
        rs.push_back(request(sub, sub, host));
        if (k < 3) rs.push_back(response(sub, sub, 200));  // the last one is cut off: the end decides it
      }
    } else if (c % 4 == 2) {
      rs.push_back(request(conn, conn + "-0", host));
      rs.push_back(response(conn, conn + "-0", 101));
      rs.push_back(frame(conn + ".2", conn + "-0"));
      rs.push_back(end("stream", conn + ".2"));
    } else {  // only the inner exchange names the host: the CONNECT and the handshake stream never pass
      rs.push_back(request(conn, conn + "-0", "proxy"));
      rs.push_back(response(conn, conn + "-0", 200));
      rs.push_back(frame(conn + ".2", conn + ".2-tls"));
      rs.push_back(request(conn + ".3", conn + ".3-0", host));
      rs.push_back(response(conn + ".3", conn + ".3-0", 200));
      rs.push_back(end("stream", conn + ".3"));
      rs.push_back(end("stream", conn + ".2"));
      not_a = 4;
    }
    rs.push_back(end("stream", conn));
    if (host == "a") want += rs.size() - not_a;
    for (const auto& r : rs) {
      std::string line = line_of(r);
      if (!(c % 3 && flows.feed_line(line, sink))) flows.feed(r, sink, line);
    }
    most = std::max(most, flows.remembered());
  }
  EXPECT_EQ(flows.remembered(), 0u);
  EXPECT_LE(most, 8u);
  EXPECT_EQ(passed, want);  // every connection to "a" whole, with its end records; none to "b"
  EXPECT_EQ(flows.matched(), static_cast<uint64_t>(n / 8 * (3 + 3 + 1 + 1)));
  flows.finish(sink);
  EXPECT_EQ(flows.forced(), 0u);
}

TEST(FlowFilter, ALongConnectionIsRememberedOnlyForItsLastDecidedFlows) {
  // One keep-alive connection with many exchanges, then HTTP/2 streams that each end: what is
  // remembered stays near keep_decided, every exchange to "a" passes, and the connection's end too.
  auto f = filter::Filter::parse("~d a");
  ASSERT_TRUE(f);
  FlowFilter::Options options;
  options.keep_decided = 64;
  FlowFilter flows(std::move(*f), options);
  size_t passed = 0, most = 0, want = 0;
  FlowFilter::Sink sink = [&](const FlowFilter::Passed&) { ++passed; };
  const int n = 20000;
  for (int x = 0; x < n; ++x) {
    std::string flow = "c-" + std::to_string(x), host = x % 3 ? "b" : "a";
    std::vector<envelope::Record> rs = {request("c", flow, host), response("c", flow, 200)};
    if (x % 2) {  // as an HTTP/2 stream: its own sub-stream, which ends
      std::string sub = "c." + std::to_string(2 * x + 1);
      rs = {request(sub, sub + "-0", host), response(sub, sub + "-0", 200), end("stream", sub)};
    }
    if (host == "a") want += rs.size();
    for (const auto& r : rs) {
      std::string line = line_of(r);
      if (!(x % 5 && flows.feed_line(line, sink))) flows.feed(r, sink, line);
    }
    most = std::max(most, flows.remembered());
  }
  EXPECT_LE(most, 4 * options.keep_decided);
  EXPECT_EQ(passed, want);
  // A later record of a recent flow follows its verdict...
  envelope::Envelope recent = std::get<envelope::Envelope>(response("c", "c-" + std::to_string(n - 2), 200));
  recent.overlay = "note";
  flows.feed(recent, sink, line_of(recent));
  EXPECT_EQ(passed, want + 1);
  // ... one of a flow let go long ago is judged as a new flow (an overlay, which names no host: dropped).
  envelope::Envelope late = std::get<envelope::Envelope>(response("c", "c-0", 200));
  late.overlay = "note";
  flows.feed(late, sink, line_of(late));
  flows.feed(end("stream", "c"), sink, line_of(end("stream", "c")));
  EXPECT_EQ(passed, want + 2);  // not the overlay; the connection's end, with its flows
  flows.finish(sink);
  EXPECT_EQ(flows.remembered(), 0u);
  EXPECT_EQ(flows.forced(), 0u);
}

TEST(FlowFilter, AnyOrderOfRecordsGivesASubsequenceEitherWayIn) {
  // Random streams over a few ids: flows crossing streams, records after their stream's end, ends
  // repeated, sub-streams ending before and after their parents, flows forced out by max_pending.
  std::mt19937 rng(20261122);
  const std::vector<std::string> streams = {"s1", "s1.1", "s1.1.2", "s1.3", "s2", "s2.1", "s10"};
  for (int round = 0; round < 300; ++round) {
    std::vector<envelope::Record> s = {header()};
    for (int i = 0; i < 60; ++i) {
      const std::string& st = streams[rng() % streams.size()];
      std::string flow = "f" + std::to_string(rng() % 6);
      switch (rng() % 7) {
        case 0: s.push_back(request(st, flow, rng() % 2 ? "a" : "b")); break;
        case 1: s.push_back(response(st, flow, rng() % 2 ? 101 : 200)); break;
        case 2: s.push_back(frame(st, flow)); break;
        case 3: s.push_back(end("stream", st)); break;
        case 4: s.push_back(end("flow", st, flow)); break;
        case 5: s.push_back(error(st, flow)); break;
        default: s.push_back(request(st, "", "a")); break;  // no flow id: the stream's own flow
      }
    }
    FlowFilter::Options options{false, static_cast<size_t>(round % 3 ? 10000 : 1 + rng() % 3)};
    auto decoded = run("~d a", s, false, options), read_in_part = run("~d a", s, true, options);
    ASSERT_EQ(decoded.out, read_in_part.out) << "round " << round;
    size_t at = 0;
    for (const auto& line : decoded.out) {
      while (at < s.size() && line_of(s[at]) != line) ++at;
      ASSERT_LT(at, s.size()) << "round " << round << ": out of order or not in the input: " << line;
      ++at;
    }
  }
}
