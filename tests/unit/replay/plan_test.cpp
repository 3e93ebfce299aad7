#include "replay/plan.hpp"

#include <gtest/gtest.h>

namespace sluice::replay {
namespace {

envelope::Envelope request_envelope(const std::string& flow, envelope::HttpMessage m, std::string raw) {
  envelope::Envelope e;
  e.stream_id = "s";
  e.flow_id = flow;
  e.protocol = envelope::Protocol::http;
  e.raw = std::move(raw);
  e.message = std::move(m);
  return e;
}

envelope::HttpMessage get(std::string path, std::string host) {
  envelope::HttpMessage m;
  m.method = "GET";
  m.scheme = "http";
  m.authority = host;
  m.path = std::move(path);
  m.version = "HTTP/1.1";
  m.headers.push_back({"Host", host});
  return m;
}

TEST(EncodeRequest, OriginFormWithoutFramingHeadersAndAFreshLength) {
  envelope::HttpMessage m = get("http://example.test/a?b=1", "example.test");
  m.method = "POST";
  m.headers.push_back({"content-TYPE", "text/plain"});
  m.headers.push_back({"Transfer-Encoding", "chunked"});
  m.headers.push_back({"Connection", "keep-alive"});
  m.body = "hello";
  EXPECT_EQ(encode_request(m),
            "POST /a?b=1 HTTP/1.1\r\nHost: example.test\r\ncontent-TYPE: text/plain\r\nContent-Length: 5\r\n\r\nhello");
}

TEST(EncodeRequest, TrailersGoChunkedAndAMissingHostComesFromTheAuthority) {
  envelope::HttpMessage m = get("/t", "h.test");
  m.headers.clear();
  m.body = "0123456789abcdef!";
  m.trailers.push_back({"X-Sum", "1"});
  EXPECT_EQ(encode_request(m),
            "GET /t HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\n\r\n11\r\n0123456789abcdef!\r\n0\r\nX-Sum: 1\r\n\r\n");
}

TEST(EncodeRequest, EmptyPostSaysLengthZero) {
  envelope::HttpMessage m = get("/p", "h");
  m.method = "POST";
  EXPECT_EQ(encode_request(m), "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n");
}

TEST(ParseTarget, OriginsOnly) {
  auto t = parse_target("https://staging.test:8443");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->scheme, "https");
  EXPECT_EQ(t->host, "staging.test");
  EXPECT_EQ(t->port, 8443);
  EXPECT_TRUE(parse_target("http://[::1]:80/"));
  EXPECT_FALSE(parse_target("http://h/api"));
  EXPECT_FALSE(parse_target("http://h?x"));
  EXPECT_FALSE(parse_target("ftp://h"));
  EXPECT_FALSE(parse_target("h:80"));
}

TEST(Collector, KeepsWhatTheServerReceivedAndTheSni) {
  Collector c;
  auto e = request_envelope("f1", get("http://h.test/x", "h.test"), "GET http://h.test/x HTTP/1.1\r\nHost: h.test\r\n\r\n");
  envelope::TlsInfo tls;
  tls.sni = "sni.test";
  e.context.tls = tls;
  c.add(envelope::Record{e});
  auto variant = e;
  variant.modified = true;
  variant.modified_by = "sluice";
  variant.raw = "GET /x HTTP/1.1\r\nHost: h.test\r\n\r\n";
  c.add(envelope::Record{variant});
  auto flows = c.take();
  ASSERT_EQ(flows.size(), 1u);
  EXPECT_EQ(flows[0].wire, "GET /x HTTP/1.1\r\nHost: h.test\r\n\r\n");
  EXPECT_EQ(flows[0].sni, "sni.test");
  EXPECT_TRUE(flows[0].body_complete);
}

TEST(Plan, ScopeTargetAndIncompleteBodies) {
  Collector c;
  c.add(envelope::Record{request_envelope("f1", get("/x", "a.example.test"), "GET /x HTTP/1.1\r\nHost: a.example.test\r\n\r\n")});
  auto big = get("/big", "other.test");
  big.body_omitted = 10;
  c.add(envelope::Record{request_envelope("f2", big, "")});
  auto flows = c.take();
  ASSERT_EQ(flows.size(), 2u);

  PlanOptions o;
  o.scope = {"*.example.test"};
  Request a = plan(flows[0], 0, o);
  EXPECT_EQ(a.skipped, "");
  EXPECT_EQ(a.target.host, "a.example.test");
  EXPECT_EQ(a.target.port, 80);
  EXPECT_EQ(a.sni, "a.example.test");
  Request b = plan(flows[1], 1, o);
  EXPECT_EQ(b.skipped, "host other.test is outside --scope");
  EXPECT_TRUE(b.bytes.empty());

  o.scope.clear();
  o.as_recorded = true;
  o.target = Target{"https", "127.0.0.1", 9443};
  a = plan(flows[0], 0, o);
  EXPECT_EQ(a.target.host, "127.0.0.1");
  EXPECT_EQ(a.sni, "");  // an IP literal is no SNI
  EXPECT_EQ(a.bytes, "GET /x HTTP/1.1\r\nHost: a.example.test\r\n\r\n");
  EXPECT_NE(plan(flows[1], 1, o).skipped.find("incomplete"), std::string::npos);
}

TEST(Check, MismatchesErrorsAndSkipsInTheJunitReport) {
  Collector c;
  for (std::string f : {"f1", "f2", "f3", "f4"}) {
    c.add(envelope::Record{request_envelope(f, get("/" + f + "?a=<&>", "h"), "")});
    envelope::Envelope resp;
    resp.flow_id = f;
    resp.protocol = envelope::Protocol::http;
    resp.direction = envelope::Direction::receive;
    envelope::HttpMessage m;
    m.kind = envelope::HttpMessage::Kind::response;
    m.status = 200;
    resp.message = m;
    c.add(envelope::Record{resp});
  }
  auto flows = c.take();
  std::vector<Request> reqs;
  for (size_t i = 0; i < flows.size(); ++i) reqs.push_back(plan(flows[i], i, {}));
  reqs[3].skipped = "host h is outside --scope";
  std::vector<Outcome> outs(4);
  outs[0].response = *flows[0].exchange.response;
  outs[1].response = *flows[1].exchange.response;
  outs[1].response->status = 500;
  outs[2].error = "connection refused";
  Report r = check(flows, reqs, outs, {}, true);
  EXPECT_EQ(r.passed, 1u);
  EXPECT_EQ(r.failed, 1u);
  EXPECT_EQ(r.errors, 1u);
  EXPECT_EQ(r.skipped, 1u);
  ASSERT_FALSE(r.cases[1].differences.empty());
  EXPECT_EQ(r.cases[1].differences[0].what, "status");
  std::string xml = junit_xml(r);
  EXPECT_NE(xml.find("<testsuite name=\"sluice replay\" tests=\"4\" failures=\"1\" errors=\"1\" skipped=\"1\""),
            std::string::npos);
  EXPECT_NE(xml.find("name=\"GET http://h/f1?a=&lt;&amp;&gt;\""), std::string::npos);
  EXPECT_NE(xml.find("<failure type=\"mismatch\" message=\"status: 200 -&gt; 500\">"), std::string::npos);
  EXPECT_NE(xml.find("<error type=\"replay\" message=\"connection refused\"/>"), std::string::npos);
  EXPECT_NE(xml.find("<skipped message=\"host h is outside --scope\"/>"), std::string::npos);
  // Without --check, a response is enough.
  EXPECT_EQ(check(flows, reqs, outs, {}, false).failed, 0u);
}

}  // namespace
}  // namespace sluice::replay

namespace sluice::replay {
namespace {

TEST(Collector, WebSocketFramesKeepTheirTurns) {
  Collector c;
  auto upgrade = request_envelope("f1", get("/ws", "h"), "GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n");
  c.add(envelope::Record{upgrade});
  auto frame = [](envelope::Direction d, uint64_t seq, std::string raw) {
    envelope::Envelope e;
    e.flow_id = "f1";
    e.protocol = envelope::Protocol::ws;
    e.direction = d;
    e.seq = seq;
    e.raw = std::move(raw);
    e.message = envelope::WsMessage{};
    return envelope::Record{e};
  };
  c.add(frame(envelope::Direction::send, 0, "A"));
  c.add(frame(envelope::Direction::send, 1, "B"));
  c.add(frame(envelope::Direction::receive, 2, "a"));
  c.add(frame(envelope::Direction::receive, 3, "b"));
  c.add(frame(envelope::Direction::send, 4, "close"));
  auto flows = c.take();
  ASSERT_EQ(flows.size(), 1u);
  ASSERT_EQ(flows[0].ws_frames.size(), 3u);
  EXPECT_EQ(flows[0].ws_frames[0].raw, "A");
  EXPECT_EQ(flows[0].ws_frames[0].server_before, 0u);
  EXPECT_EQ(flows[0].ws_frames[1].server_before, 0u);
  EXPECT_EQ(flows[0].ws_frames[2].raw, "close");
  EXPECT_EQ(flows[0].ws_frames[2].server_before, 2u);
  // The upgrade keeps the fields that ask for it.
  envelope::HttpMessage m = get("/ws", "h");
  m.headers.push_back({"Connection", "Upgrade"});
  m.headers.push_back({"Upgrade", "websocket"});
  EXPECT_EQ(encode_request(m), "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
}

}  // namespace
}  // namespace sluice::replay
