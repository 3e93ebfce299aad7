#include "layer/http1_layer.hpp"

#include <gtest/gtest.h>

#include "support/layer_driver.hpp"
#include "support/playbook.hpp"

using namespace sluice;
using namespace sluice::layer;
using test_support::data;
using test_support::LayerDriver;
using test_support::Playbook;

namespace {

struct Fixture {
  explicit Fixture(std::string mode, ProxyOptions o = {}) : options(std::move(o)) {
    ctx = std::make_unique<ConnectionContext>("c1", "127.0.0.1:50000", core::Timestamp{0}, *parse_mode_spec(mode),
                                              &options);
  }
  std::unique_ptr<Http1Layer> layer() { return std::make_unique<Http1Layer>(*ctx); }
  ProxyOptions options;
  std::unique_ptr<ConnectionContext> ctx;
};

const envelope::HttpMessage& http(const envelope::Envelope& e) { return std::get<envelope::HttpMessage>(e.message); }

// The canonical (not variant, not overlay) HTTP envelopes, in order.
std::vector<envelope::Envelope> canonical(const LayerDriver& d) {
  std::vector<envelope::Envelope> out;
  for (auto& e : d.envelopes())
    if (!e.modified && e.overlay.empty()) out.push_back(e);
  return out;
}

std::vector<envelope::Envelope> http_envelopes(const LayerDriver& d) {
  auto out = canonical(d);
  std::erase_if(out, [](const envelope::Envelope& e) { return e.protocol != envelope::Protocol::http; });
  return out;
}

std::string status_line(const std::string& response) { return response.substr(0, response.find("\r\n")); }

}  // namespace

// ---- CONNECT and refusals (Playbook transcripts) ---------------------------------------------------

TEST(Http1Layer, ConnectOpensATunnelDetectedAsRaw) {
  Fixture f("regular@0");
  Playbook p(f.layer());
  p >> Start{} << "StartTimer(#1, 30000ms)";
  p >> data(kClientConn, "CONNECT 127.0.0.1:7000 HTTP/1.1\r\nHost: 127.0.0.1:7000\r\n\r\n")
    << "OpenConnection(#2, conn=1, 127.0.0.1:7000)"
    << "RunPipeline(#3, send http seq=0 57 bytes \"CONNECT 127.0.0.1:7000 HTTP/1.1\\x0d...\")";
  p >> OpenCompleted{2, 1, {}, {}, "127.0.0.1:7000"};
  p >> p.forward(3) << "SendData(conn=0, 39 bytes \"HTTP/1.1 200 Connection establis...\")"
    << "EmitRecord(receive http seq=1 39 bytes \"HTTP/1.1 200 Connection establis...\")" << "CancelTimer(#1)"
    << "StartTimer(#4, 75000ms)";
  // No silence timer: the server connection is open, so a server speaking first would decide; a
  // client that says nothing is closed after the idle timeout (#4).
  // Neither TLS nor HTTP/1: raw chunks, with the raw layer's own idle timer (#5).
  p >> data(kClientConn, "ping") << "CancelTimer(#4)" << "StartTimer(#5, 75000ms)"
                                 << "RunPipeline(#6, send raw seq=0 4 bytes \"ping\")";
  p >> p.forward(6) << "SendData(conn=1, 4 bytes \"ping\")";
  EXPECT_TRUE(p.check());
  const auto& run = std::get<RunPipeline>(p.history()[2]);
  EXPECT_EQ(http(run.envelope).method, "CONNECT");
  EXPECT_EQ(http(run.envelope).authority, "127.0.0.1:7000");
  const auto& tunnel = std::get<RunPipeline>(p.history()[9]);
  EXPECT_EQ(tunnel.envelope.stream_id, "c1.1");  // the tunnel is a sub-stream
}

TEST(Http1Layer, UnreachableServerIs502WithTheReason) {
  Fixture f("regular@0");
  LayerDriver d(f.layer());
  d.refuse_with = "connect_refused";
  d.client("GET http://127.0.0.1:9/x HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n");
  EXPECT_EQ(status_line(d.sent[kClientConn]), "HTTP/1.1 502 Bad Gateway");
  EXPECT_NE(d.sent[kClientConn].find("127.0.0.1:9: connect_refused (test)"), std::string::npos);
  auto errors = d.records_of<envelope::ErrorRecord>();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].code, "connect_refused");
  EXPECT_EQ(errors[0].flow_id, "c1-0");
  auto envs = canonical(d);
  ASSERT_EQ(envs.size(), 2u);
  EXPECT_EQ(http(envs[1]).status, 502);
  EXPECT_EQ(d.sent_to_servers(), "");
}

TEST(Http1Layer, TheRequestAsSentIsRecordedOnlyOnceItGoesOut) {
  for (std::string outcome : {"", "connect_refused"}) {
    Fixture f("reverse:http://o@0");
    LayerDriver d(f.layer());
    d.hold_opens = true;
    d.client("GET / HTTP/1.1\r\nHost: proxy\r\n\r\n");  // verdict in, connection still pending
    size_t variants = 0;
    for (const auto& e : d.envelopes()) variants += e.modified;
    EXPECT_EQ(variants, 0u);
    d.complete_opens(outcome);
    for (const auto& e : d.envelopes()) variants += e.modified;
    EXPECT_EQ(variants, outcome.empty() ? 1u : 0u) << outcome;
    EXPECT_EQ(d.sent_to_servers(), outcome.empty() ? "GET / HTTP/1.1\r\nHost: o\r\n\r\n" : "");
  }
}

TEST(Http1Layer, OriginFormToAForwardProxyIs400) {
  Fixture f("regular@0");
  LayerDriver d(f.layer());
  d.client("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(status_line(d.sent[kClientConn]), "HTTP/1.1 400 Bad Request");
  EXPECT_TRUE(d.opened.empty());
}

TEST(Http1Layer, ProxyAuthIsRequiredAndNotForwarded) {
  ProxyOptions o;
  o.proxy_auth = "u:p";
  {
    Fixture f("regular@0", o);
    LayerDriver d(f.layer());
    d.client("GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n");
    EXPECT_EQ(status_line(d.sent[kClientConn]), "HTTP/1.1 407 Proxy Authentication Required");
    EXPECT_NE(d.sent[kClientConn].find("Proxy-Authenticate: Basic realm=\"sluice\""), std::string::npos);
    EXPECT_TRUE(d.opened.empty());
  }
  {
    Fixture f("regular@0", o);
    LayerDriver d(f.layer());
    d.client("GET http://a/ HTTP/1.1\r\nHost: a\r\nProxy-Authorization: Basic dTpw\r\nX: 1\r\n\r\n");
    EXPECT_EQ(d.sent[1], "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\r\n");
  }
  {  // wrong password
    Fixture f("regular@0", o);
    LayerDriver d(f.layer());
    d.client("GET http://a/ HTTP/1.1\r\nHost: a\r\nProxy-Authorization: Basic dTpx\r\n\r\n");
    EXPECT_EQ(status_line(d.sent[kClientConn]), "HTTP/1.1 407 Proxy Authentication Required");
  }
}

TEST(Http1Layer, UpstreamModeKeepsAbsoluteFormAndAddsCredentials) {
  ProxyOptions o;
  o.upstream_auth = "up:secret";
  Fixture f("upstream:http://127.0.0.1:3128@0", o);
  LayerDriver d(f.layer());
  d.client("GET http://example.com/a HTTP/1.1\r\nHost: example.com\r\n\r\n");
  ASSERT_EQ(d.opened.size(), 1u);
  EXPECT_EQ(d.opened[0].host, "127.0.0.1");
  EXPECT_EQ(d.opened[0].port, 3128);
  EXPECT_EQ(d.sent[1],
            "GET http://example.com/a HTTP/1.1\r\nHost: example.com\r\nProxy-Authorization: Basic dXA6c2VjcmV0\r\n\r\n");
  // CONNECT goes on to the upstream proxy; its 200 opens the tunnel.
  d.server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  d.client("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
  EXPECT_EQ(d.sent[1].substr(d.sent[1].rfind("CONNECT")),
            "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nProxy-Authorization: Basic dXA6c2VjcmV0\r\n\r\n");
  d.server("HTTP/1.1 200 Connection established\r\n\r\nserver-first");
  EXPECT_TRUE(d.sent[kClientConn].ends_with("HTTP/1.1 200 Connection established\r\n\r\nserver-first"));
  d.client("tunnelled");
  EXPECT_TRUE(d.sent[1].ends_with("tunnelled"));
}

// ---- whole conversations at every split point ------------------------------------------------------

struct Conversation {
  std::string name, mode;
  std::string request;    // what the client sends
  std::string forwarded;  // what the server must receive
  std::string response;   // what the server answers (the client must get exactly this)
  size_t exchanges = 1;
};

std::vector<Conversation> conversations() {
  return {
      {"absolute_form_get", "regular@0",
       "GET http://example.com/a?b=1 HTTP/1.1\r\nHost: example.com\r\nuser-agent:  x \r\nAccept: */*\r\n\r\n",
       "GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nuser-agent:  x \r\nAccept: */*\r\n\r\n",
       "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello"},
      {"post_with_chunked_response", "regular@0",
       "POST http://h:8080/p HTTP/1.1\r\nHost: h:8080\r\nContent-Length: 11\r\n\r\nhello world",
       "POST /p HTTP/1.1\r\nHost: h:8080\r\nContent-Length: 11\r\n\r\nhello world",
       "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"},
      {"chunked_request_with_trailers", "regular@0",
       "PUT http://h/p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\n",
       "PUT /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nT: 1\r\n\r\n",
       "HTTP/1.1 204 No Content\r\n\r\n"},
      {"host_replaced_by_target_authority", "regular@0",
       "GET http://right/ HTTP/1.1\r\nHOST: wrong\r\n\r\n", "GET / HTTP/1.1\r\nHOST: right\r\n\r\n",
       "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"},
      {"reverse_rewrites_host", "reverse:http://127.0.0.1:7000@0",
       "GET /x HTTP/1.1\r\nHost: proxy.local\r\n\r\n", "GET /x HTTP/1.1\r\nHost: 127.0.0.1:7000\r\n\r\n",
       "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
      {"head_response_has_no_body", "reverse:http://origin@0", "HEAD / HTTP/1.1\r\nHost: origin\r\n\r\n",
       "HEAD / HTTP/1.1\r\nHost: origin\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"},
      {"pipelined_requests_answered_in_order", "reverse:http://origin@0",
       "GET /1 HTTP/1.1\r\nHost: origin\r\n\r\nGET /2 HTTP/1.1\r\nHost: origin\r\n\r\n",
       "GET /1 HTTP/1.1\r\nHost: origin\r\n\r\nGET /2 HTTP/1.1\r\nHost: origin\r\n\r\n",
       "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2", 2},
      {"interim_103_then_final", "reverse:http://origin@0", "GET / HTTP/1.1\r\nHost: origin\r\n\r\n",
       "GET / HTTP/1.1\r\nHost: origin\r\n\r\n",
       "HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
  };
}

// Feeds `c` with the client's bytes split at `cs` and the server's at `ss` (npos: whole).
void run_split(const Conversation& c, size_t cs, size_t ss) {
  SCOPED_TRACE(c.name + " client split " + std::to_string(cs) + " server split " + std::to_string(ss));
  Fixture f(c.mode);
  LayerDriver d(f.layer());
  size_t cut = std::min(cs, c.request.size());
  if (cut > 0) d.client(c.request.substr(0, cut));
  if (cut < c.request.size()) d.client(c.request.substr(cut));
  ASSERT_EQ(d.sent_to_servers(), c.exchanges == 1 ? c.forwarded : c.forwarded.substr(0, c.forwarded.find("GET /2")));
  if (c.exchanges == 1) {
    size_t rcut = std::min(ss, c.response.size());
    if (rcut > 0) d.server(c.response.substr(0, rcut));
    if (rcut < c.response.size()) d.server(c.response.substr(rcut));
  } else {
    // Pipelined: the second request goes out only after the first response, on the same connection.
    std::string first = c.response.substr(0, c.response.find("HTTP/1.1", 1));
    d.server(first);
    EXPECT_EQ(d.opened.size(), 1u);
    d.server(c.response.substr(first.size()));
  }
  EXPECT_EQ(d.sent_to_servers(), c.forwarded);
  EXPECT_EQ(d.sent[kClientConn], c.response);
  // The envelopes' raw bytes are the wire bytes: client's request, server's responses.
  std::string requests, responses;
  for (const auto& e : canonical(d)) (e.direction == envelope::Direction::send ? requests : responses) += e.raw;
  EXPECT_EQ(requests, c.request);
  EXPECT_EQ(responses, c.response);
  // When the proxy changed the head, the bytes sent are recorded beside as a variant.
  std::string variants;
  for (const auto& e : d.envelopes())
    if (e.modified) variants += e.raw;
  EXPECT_EQ(variants, c.forwarded != c.request ? c.forwarded : "");
  // The connection stays open for the next request.
  for (const auto& cl : d.closed) EXPECT_NE(cl.conn, kClientConn);
}

TEST(Http1Layer, EveryConversationAtEverySplitPoint) {
  for (const auto& c : conversations()) {
    for (size_t i = 0; i <= c.request.size(); ++i) run_split(c, i, std::string::npos);
    for (size_t j = 0; j <= c.response.size(); ++j) run_split(c, std::string::npos, j);
  }
}

TEST(Http1Layer, ByteAtATime) {
  for (const auto& c : conversations()) {
    if (c.exchanges != 1) continue;
    SCOPED_TRACE(c.name);
    Fixture f(c.mode);
    LayerDriver d(f.layer());
    for (char ch : c.request) d.client(std::string(1, ch));
    for (char ch : c.response) d.server(std::string(1, ch));
    EXPECT_EQ(d.sent_to_servers(), c.forwarded);
    EXPECT_EQ(d.sent[kClientConn], c.response);
  }
}

TEST(Http1Layer, ChunkOverlaysRecordChunkBoundaries) {
  Fixture f("reverse:http://o@0");
  LayerDriver d(f.layer());
  d.client("GET / HTTP/1.1\r\nHost: o\r\n\r\n");
  d.server("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n");
  std::vector<std::string> chunks;
  for (const auto& e : d.envelopes())
    if (e.overlay == "h1-chunk") chunks.push_back(e.raw);
  EXPECT_EQ(chunks, (std::vector<std::string>{"2\r\nab\r\n", "3\r\ncde\r\n", "0\r\n\r\n"}));
  auto envs = canonical(d);
  ASSERT_EQ(envs.size(), 2u);
  EXPECT_EQ(http(envs[1]).body, "abcde");
}

TEST(Http1Layer, KeepAliveReusesThePooledServerConnection) {
  Fixture f("regular@0");
  LayerDriver d(f.layer());
  d.client("GET http://a/1 HTTP/1.1\r\nHost: a\r\n\r\n");
  d.server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  d.client("GET http://a/2 HTTP/1.1\r\nHost: a\r\n\r\n");
  d.server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  d.client("GET http://b/3 HTTP/1.1\r\nHost: b\r\n\r\n");  // another host: another connection
  EXPECT_EQ(d.opened.size(), 2u);
  EXPECT_EQ(d.sent[1], "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(d.sent[2], "GET /3 HTTP/1.1\r\nHost: b\r\n\r\n");
}

TEST(Http1Layer, StalePooledConnectionIsRetriedOnce) {
  Fixture f("reverse:http://o@0");
  LayerDriver d(f.layer());
  d.client("GET /1 HTTP/1.1\r\nHost: o\r\n\r\n");
  d.server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  d.client("GET /2 HTTP/1.1\r\nHost: o\r\n\r\n");
  d.close(1);  // the server had timed the idle connection out
  ASSERT_EQ(d.opened.size(), 2u);
  EXPECT_EQ(d.sent[2], "GET /2 HTTP/1.1\r\nHost: o\r\n\r\n");
  d.server("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2");
  EXPECT_TRUE(d.sent[kClientConn].ends_with("2"));
}

TEST(Http1Layer, ConnectionCloseAndHttp10CloseAfterTheResponse) {
  for (std::string req : {"GET / HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n", "GET / HTTP/1.0\r\n\r\n"}) {
    Fixture f("reverse:http://o@0");
    LayerDriver d(f.layer());
    d.client(req);
    d.server("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx");
    EXPECT_TRUE(d.sent[kClientConn].ends_with("x"));
    bool client_closed = false;
    for (const auto& c : d.closed) client_closed |= c.conn == kClientConn;
    EXPECT_TRUE(client_closed) << req;
  }
}

TEST(Http1Layer, ResponseDelimitedByCloseIsForwardedThenClosed) {
  Fixture f("reverse:http://o@0");
  LayerDriver d(f.layer());
  d.client("GET / HTTP/1.1\r\nHost: o\r\n\r\n");
  d.server("HTTP/1.1 200 OK\r\n\r\nsome");
  d.server(" body");
  d.close(1);
  EXPECT_EQ(d.sent[kClientConn], "HTTP/1.1 200 OK\r\n\r\nsome body");
  auto envs = canonical(d);
  ASSERT_EQ(envs.size(), 2u);
  EXPECT_EQ(http(envs[1]).body, "some body");
}

TEST(Http1Layer, ExpectContinueSendsTheHeadFirst) {
  Fixture f("reverse:http://o@0");
  LayerDriver d(f.layer());
  std::string head = "PUT /u HTTP/1.1\r\nHost: o\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
  d.client(head);
  EXPECT_EQ(d.sent[1], head);  // no body yet: the client waits for 100 Continue
  d.server("HTTP/1.1 100 Continue\r\n\r\n");
  EXPECT_EQ(d.sent[kClientConn], "HTTP/1.1 100 Continue\r\n\r\n");
  d.client("data");
  EXPECT_EQ(d.sent[1], head + "data");
  d.server("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(d.sent[kClientConn], "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
  auto envs = canonical(d);
  ASSERT_EQ(envs.size(), 3u);  // 100, request (recorded when it ended), 201
  EXPECT_EQ(envs[1].raw, head + "data");
  EXPECT_EQ(envs[1].direction, envelope::Direction::send);
}

// With steps, a message about to stream (over the body limit, 100-continue, an event stream) is judged
// by its head first: nothing of it goes on until the head's verdict; a changed head goes with the body's
// framing as it came, and the message is recorded with it (the head as it came is the `head` overlay).
TEST(Http1Layer, AStreamedMessagesHeadIsJudgedBeforeAnyByteGoes) {
  ProxyOptions o;
  o.step_units = true;
  o.record_body_limit = 10;
  Fixture f("reverse:http://o@0", o);
  LayerDriver d(f.layer());
  d.hold_pipeline = true;
  std::string head = "POST /up HTTP/1.1\r\nHost: o\r\nContent-Length: 20\r\n\r\n";
  d.client(head + "0123456789");
  d.client("abcdefghij");
  EXPECT_EQ(d.sent[1], "");  // the server has none of it
  std::vector<envelope::Envelope> heads;
  for (const auto& e : d.envelopes())
    if (e.overlay == "head") heads.push_back(e);
  ASSERT_EQ(heads.size(), 1u);
  EXPECT_EQ(heads[0].raw, head);
  EXPECT_EQ(http(heads[0]).body, "");
  d.modify = true;
  d.release();
  std::string changed = "POST /up HTTP/1.1\r\nHost: o\r\nX-Step: 1\r\nContent-Length: 20\r\n\r\n";
  EXPECT_EQ(d.sent[1], changed + "0123456789abcdefghij");
  auto envs = canonical(d);
  ASSERT_EQ(envs.size(), 1u);
  EXPECT_TRUE(envs[0].raw.starts_with(changed));
  EXPECT_TRUE(std::any_of(envs[0].tags.begin(), envs[0].tags.end(), [](const auto& t) { return t.first == "head_modified_by"; }));
  // A response over the limit too; a head dropped closes (a client cannot be told to skip a response).
  d.modify = false;
  d.verdict = Verdict::drop;
  d.server("HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n0123456789abc");
  EXPECT_EQ(d.sent[kClientConn], "");
  d.release();
  EXPECT_EQ(d.sent[kClientConn], "");
  EXPECT_TRUE(std::any_of(d.closed.begin(), d.closed.end(), [](const auto& c) { return c.conn == kClientConn; }));
}

TEST(Http1Layer, AHeadDroppedIsRefusedAndAWholeAskBuffersA100ContinueRequest) {
  ProxyOptions o;
  o.step_units = true;
  {
    Fixture f("reverse:http://o@0", o);
    LayerDriver d(f.layer());
    d.verdict = Verdict::drop;
    d.client("PUT /u HTTP/1.1\r\nHost: o\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    EXPECT_TRUE(d.sent[kClientConn].starts_with("HTTP/1.1 403 Forbidden\r\n"));
    EXPECT_NE(d.sent[kClientConn].find("dropped by test"), std::string::npos);
    EXPECT_EQ(d.sent[1], "");
  }
  Fixture f("reverse:http://o@0", o);
  LayerDriver d(f.layer());
  d.whole = true;
  std::string head = "PUT /u HTTP/1.1\r\nHost: o\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
  d.client(head);
  EXPECT_EQ(d.sent[kClientConn], "HTTP/1.1 100 Continue\r\n\r\n");  // the proxy asks for the body itself
  EXPECT_EQ(d.sent[1], "");
  d.whole = false;
  d.modify = true;  // the whole request is a unit now: the step changes it whole
  d.client("data");
  EXPECT_EQ(d.sent[1], "PUT /u HTTP/1.1\r\nHost: o\r\nExpect: 100-continue\r\nContent-Length: 4\r\nX-Step: 1\r\n\r\ndata");
}

TEST(Http1Layer, UpgradeToWebSocketHandsTheConnectionsToTheWebSocketLayer) {
  Fixture f("reverse:http://o@0");
  LayerDriver d(f.layer());
  d.client("GET /ws HTTP/1.1\r\nHost: o\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  d.server(std::string("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n") +
           "\x81\x02hi");  // a text frame right behind the head
  EXPECT_TRUE(d.sent[kClientConn].ends_with("\r\n\r\n\x81\x02hi"));
  auto envs = d.envelopes();
  ASSERT_EQ(envs.back().protocol, envelope::Protocol::ws);
  EXPECT_EQ(std::get<envelope::WsMessage>(envs.back().message).payload, "hi");
  EXPECT_EQ(envs.back().flow_id, "c1-0");  // the upgrade's flow
}

TEST(Http1Layer, UpgradeHandsBothConnectionsToATunnel) {
  Fixture f("reverse:http://o@0");
  LayerDriver d(f.layer());
  std::string req = "GET /ws HTTP/1.1\r\nHost: o\r\nConnection: Upgrade\r\nUpgrade: x-custom\r\n\r\n";
  d.client(req + "early");
  EXPECT_EQ(d.sent[1], req);
  d.server("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x-custom\r\n\r\nhello");
  EXPECT_TRUE(d.sent[kClientConn].ends_with("\r\n\r\nhello"));
  EXPECT_EQ(d.sent[1], req + "early");
  d.client("more");
  EXPECT_EQ(d.sent[1], req + "earlymore");
  std::vector<std::string> raw_streams;
  for (const auto& e : d.envelopes())
    if (e.protocol == envelope::Protocol::raw) raw_streams.push_back(e.stream_id);
  ASSERT_FALSE(raw_streams.empty());
  EXPECT_EQ(raw_streams[0], "c1.1");
}

TEST(Http1Layer, RefusedUpgradeGoesOnAsHttp) {
  Fixture f("reverse:http://o@0");
  LayerDriver d(f.layer());
  d.client("GET /ws HTTP/1.1\r\nHost: o\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  d.server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  d.client("GET /next HTTP/1.1\r\nHost: o\r\n\r\n");
  EXPECT_TRUE(d.sent[1].ends_with("GET /next HTTP/1.1\r\nHost: o\r\n\r\n"));
}

// ---- bodies and limits -----------------------------------------------------------------------------

TEST(Http1Layer, BodiesOverTheLimitStreamAndAreRecordedTruncated) {
  ProxyOptions o;
  o.record_body_limit = 10;
  o.step_units = true;  // a step needs whole messages: a body within the limit waits to be whole
  Fixture f("reverse:http://o@0", o);
  LayerDriver d(f.layer());
  d.client("GET / HTTP/1.1\r\nHost: o\r\n\r\n");
  d.server("HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n0123456789");
  EXPECT_EQ(d.sent[kClientConn], "");  // within the limit: buffered
  d.server("abcdefghij");
  EXPECT_EQ(d.sent[kClientConn], "HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n0123456789abcdefghij");  // streaming
  d.server("ABCDEFGHIJ");
  EXPECT_TRUE(d.sent[kClientConn].ends_with("ABCDEFGHIJ"));
  auto envs = canonical(d);
  ASSERT_EQ(envs.size(), 2u);
  EXPECT_EQ(http(envs[1]).body, "0123456789");
  EXPECT_EQ(http(envs[1]).body_omitted, 20u);
  // Keep-alive goes on after a streamed response.
  d.client("GET /2 HTTP/1.1\r\nHost: o\r\n\r\n");
  EXPECT_TRUE(d.sent[1].ends_with("GET /2 HTTP/1.1\r\nHost: o\r\n\r\n"));
}

// Without a step that needs it whole, a response that is not all here goes on as it comes (a slow
// download, a client that does not read) and is recorded whole when it ends.
TEST(Http1Layer, WithoutStepsAResponseGoesOnAsItComes) {
  Fixture f("reverse:http://o@0");
  LayerDriver d(f.layer());
  d.client("GET / HTTP/1.1\r\nHost: o\r\n\r\n");
  d.server("HTTP/1.1 200 OK\r\n\r\ntick\n");  // no framing: it ends when the server closes
  EXPECT_EQ(d.sent[kClientConn], "HTTP/1.1 200 OK\r\n\r\ntick\n");
  d.server("tock\n");
  EXPECT_EQ(d.sent[kClientConn], "HTTP/1.1 200 OK\r\n\r\ntick\ntock\n");
  d.close(1);
  auto envs = canonical(d);
  ASSERT_EQ(envs.size(), 2u);
  EXPECT_EQ(http(envs[1]).body, "tick\ntock\n");
}

// A small body (its Content-Length says so) is forwarded whole in one write once complete, unless it
// trickles in: then it goes on as it comes after 200 ms.
TEST(Http1Layer, ASmallResponseWaitsToBeWholeAtMost200Ms) {
  Fixture f("reverse:http://o@0");
  LayerDriver d(f.layer());
  d.client("GET / HTTP/1.1\r\nHost: o\r\n\r\n");
  d.server("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234");
  EXPECT_EQ(d.sent[kClientConn], "");
  d.advance(std::chrono::milliseconds(200));
  d.fire_timers();
  EXPECT_EQ(d.sent[kClientConn], "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234");
  d.server("56789");
  EXPECT_EQ(d.sent[kClientConn], "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789");
  // The next one comes whole before the timer: one write, and its timer is cancelled.
  d.client("GET /2 HTTP/1.1\r\nHost: o\r\n\r\n");
  d.server("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab");
  size_t before = d.sent[kClientConn].size();
  d.server("cd");
  EXPECT_EQ(d.sent[kClientConn].substr(before), "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd");
  auto envs = canonical(d);
  ASSERT_EQ(envs.size(), 4u);
  EXPECT_EQ(http(envs[1]).body, "0123456789");
  EXPECT_EQ(http(envs[3]).body, "abcd");
}

// Bodies kept for the record share one budget: a body that cannot get its bytes streams on, and what
// it could not keep is recorded as omitted; the budget comes back when the message is recorded.
TEST(Http1Layer, ABodyOverTheRecordBudgetStreamsAndIsRecordedAsOmitted) {
  ProxyOptions o;
  o.step_units = true;
  RecordBudget budget(15);
  o.record_budget = &budget;
  Fixture f("reverse:http://o@0", o);
  LayerDriver d(f.layer());
  d.client("GET / HTTP/1.1\r\nHost: o\r\n\r\n");
  d.server("HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n0123456789");
  EXPECT_EQ(d.sent[kClientConn], "");  // 10 bytes: within the budget, waiting to be whole
  EXPECT_EQ(budget.left(), 5);
  d.server("abcdefghij");  // 10 more do not fit: it streams
  EXPECT_EQ(d.sent[kClientConn], "HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n0123456789abcdefghij");
  d.server("ABCDEFGHIJ");
  auto envs = canonical(d);
  ASSERT_EQ(envs.size(), 2u);
  EXPECT_EQ(http(envs[1]).body, "0123456789");
  EXPECT_EQ(http(envs[1]).body_omitted, 20u);
  EXPECT_EQ(budget.left(), 15);  // recorded: given back
}

TEST(Http1Layer, UnlimitedRecordingKeepsEveryByteInOverlays) {
  ProxyOptions o;
  o.record_body_limit = 0;
  Fixture f("reverse:http://o@0", o);
  LayerDriver d(f.layer());
  d.client("GET / HTTP/1.1\r\nHost: o\r\n\r\n");
  std::string body(Http1Layer::kUnlimitedBuffer + 100, 'x');
  d.server("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n");
  d.server(body.substr(0, Http1Layer::kUnlimitedBuffer));
  d.server(body.substr(Http1Layer::kUnlimitedBuffer));
  size_t recorded = 0;
  for (const auto& e : d.envelopes()) {
    if (e.direction != envelope::Direction::receive) continue;
    if (e.overlay == "h1-body") recorded += e.raw.size();
    if (e.overlay.empty()) recorded += http(e).body.size();
  }
  EXPECT_EQ(recorded, body.size());
}

// With steps each event of an event stream is a unit: every block waits in order for the verdicts
// before it, goes out in a chunk of its own, and a dropped event is left out; comments (keep-alives)
// wait only for the events before them. The response ends after its last block.
TEST(Http1Layer, SseEventsAreUnitsWithSteps) {
  ProxyOptions o;
  o.step_units = true;
  Fixture f("reverse:http://o@0", o);
  LayerDriver d(f.layer());
  d.client("GET /events HTTP/1.1\r\nHost: o\r\n\r\n");
  std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
  d.server(head);  // the head is judged (a head unit, passed at once) before it goes
  EXPECT_EQ(d.sent[kClientConn], head);
  d.hold_pipeline = true;
  std::string body = "data: one\n\n:keep\n\nevent: skip\ndata: two\n\ndata: three\n\n";
  auto chunk = [](const std::string& b) {
    char size[16];
    snprintf(size, sizeof size, "%zx\r\n", b.size());
    return size + b + "\r\n";
  };
  // Split anywhere inside the body: the blocks are the same.
  d.server(chunk(body.substr(0, 15)));
  d.server(chunk(body.substr(15)));
  EXPECT_EQ(d.sent[kClientConn], head);  // the head goes at once, the events wait
  std::vector<std::string> events;
  for (const auto& e : d.envelopes())
    if (e.protocol == envelope::Protocol::sse) events.push_back(e.raw);
  ASSERT_EQ(events, (std::vector<std::string>{"data: one\n\n", "event: skip\ndata: two\n\n", "data: three\n\n"}));
  d.verdict = Verdict::drop;  // every held unit dropped but the comment
  d.release();
  EXPECT_EQ(d.sent[kClientConn], head + chunk(":keep\n\n"));
  d.verdict = Verdict::forward;
  d.server(chunk("data: four\n\n") + chunk("data: unfinished"));
  EXPECT_EQ(d.sent[kClientConn], head + chunk(":keep\n\n"));
  d.server("0\r\n\r\n");  // the end waits behind the held event; the unfinished block goes as it came
  EXPECT_EQ(d.sent[kClientConn], head + chunk(":keep\n\n"));
  auto envs = http_envelopes(d);
  ASSERT_EQ(envs.size(), 1u);  // the response is recorded once it is finished
  d.release();
  EXPECT_EQ(d.sent[kClientConn],
            head + chunk(":keep\n\n") + chunk("data: four\n\n") + chunk("data: unfinished") + "0\r\n\r\n");
  envs = http_envelopes(d);
  ASSERT_EQ(envs.size(), 2u);
  EXPECT_EQ(http(envs[1]).body, body + "data: four\n\ndata: unfinished");  // recorded as the server sent it
  // Keep-alive goes on.
  d.hold_pipeline = false;
  d.client("GET /2 HTTP/1.1\r\nHost: o\r\n\r\n");
  EXPECT_TRUE(d.sent[1].ends_with("GET /2 HTTP/1.1\r\nHost: o\r\n\r\n"));
}

// An event stream delimited by the close goes out block by block as it came; one with a
// Content-Length cannot be re-framed event by event: its events are recorded, not held.
TEST(Http1Layer, SseEventsOfAFramedOrCloseDelimitedStream) {
  ProxyOptions o;
  o.step_units = true;
  {
    Fixture f("reverse:http://o@0", o);
    LayerDriver d(f.layer());
    d.modify = true;  // the driver's edit appends "+" to a unit's bytes
    d.client("GET / HTTP/1.1\r\nHost: o\r\n\r\n");
    std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n";
    d.server(head + "data: a\n\n");
    // The head was a unit too: the driver's edit added a field to it.
    EXPECT_EQ(d.sent[kClientConn], "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-Step: 1\r\n\r\ndata: a\n\n+");
    d.close(1);
    EXPECT_TRUE(std::any_of(d.closed.begin(), d.closed.end(), [](const auto& c) { return c.conn == kClientConn; }));
  }
  {
    Fixture f("reverse:http://o@0", o);
    LayerDriver d(f.layer());
    d.client("GET / HTTP/1.1\r\nHost: o\r\n\r\n");
    std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 18\r\n\r\n";
    d.server(head);  // (its head judged at once)
    d.hold_pipeline = true;
    d.server("data: a\n\n");
    EXPECT_EQ(d.sent[kClientConn], head + "data: a\n\n");
    size_t sse = 0;
    for (const auto& e : d.envelopes()) sse += e.protocol == envelope::Protocol::sse;
    EXPECT_EQ(sse, 1u);  // recorded beside, not held
  }
}

// ---- smuggling and malformed messages --------------------------------------------------------------

struct Malformed {
  std::string name;
  std::string bytes;
  std::string anomaly;
  int status = 400;
};

std::vector<Malformed> malformed_requests() {
  const std::string h = "POST / HTTP/1.1\r\nHost: o\r\n";
  return {
      {"cl_and_te", h + "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "cl_te_conflict"},
      {"te_and_cl", h + "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", "cl_te_conflict"},
      {"differing_duplicate_cl", h + "Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", "duplicate_content_length"},
      {"same_duplicate_cl", h + "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", "duplicate_content_length"},
      {"cl_list", h + "Content-Length: 3, 3\r\n\r\nabc", "bad_content_length"},
      {"negative_cl", h + "Content-Length: -1\r\n\r\n", "bad_content_length"},
      {"plus_cl", h + "Content-Length: +3\r\n\r\nabc", "bad_content_length"},
      {"cl_with_inner_space", h + "Content-Length: 1 2\r\n\r\n", "bad_content_length"},
      {"te_unknown", h + "Transfer-Encoding: gzip\r\n\r\n", "bad_transfer_encoding"},
      {"te_chunked_not_final", h + "Transfer-Encoding: chunked, gzip\r\n\r\n", "bad_transfer_encoding"},
      {"te_xchunked", h + "Transfer-Encoding: xchunked\r\n\r\n", "bad_transfer_encoding"},
      {"te_chunked_twice_lines", h + "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
       "bad_transfer_encoding"},
      {"obs_fold", h + "X-A: 1\r\n  folded\r\n\r\n", "obs_fold"},
      {"obs_fold_tab", h + "X-A: 1\r\n\tfolded\r\n\r\n", "obs_fold"},
      {"space_before_colon", h + "Content-Length : 3\r\n\r\nabc", "space_before_colon"},
      {"tab_before_colon", h + "Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n", "space_before_colon"},
      {"bare_cr_in_value", h + "X-A: 1\r2\r\n\r\n", "bare_cr"},
      {"nul_in_value", h + std::string("X-A: 1\0002\r\n\r\n", 12), "nul_in_header"},
      {"nul_in_name", h + std::string("X\000A: 1\r\n\r\n", 11), "nul_in_header"},
      {"bare_lf_line_end", "GET / HTTP/1.1\r\nHost: o\nX: 1\r\n\r\n", "bare_lf"},
      {"duplicate_host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "duplicate_host"},
      {"missing_host", "GET / HTTP/1.1\r\nX: 1\r\n\r\n", "missing_host"},
      {"bad_chunk_size", h + "Transfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n", "bad_chunked"},
      {"chunk_size_overflow", h + "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\n", "bad_chunked"},
      {"chunk_without_crlf", h + "Transfer-Encoding: chunked\r\n\r\n2\r\nabXX0\r\n\r\n", "bad_chunked"},
      {"bad_method", "G(T / HTTP/1.1\r\nHost: o\r\n\r\n", "bad_method"},
      {"bad_version", "GET / HTTP/3.7\r\nHost: o\r\n\r\n", "bad_version"},
      {"space_in_target", "GET /a b HTTP/1.1\r\nHost: o\r\n\r\n", "bad_version"},
      {"bad_header_name", h + "X(A): 1\r\n\r\n", "invalid_header"},
      {"head_too_large", h + "X: " + std::string(70 * 1024, 'a') + "\r\n\r\n", "header_too_large", 431},
  };
}

TEST(Http1Layer, SmugglingAndMalformedRequestsAreRefusedAndNeverForwarded) {
  auto cases = malformed_requests();
  ASSERT_GE(cases.size(), 25u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Fixture f("reverse:http://o@0");
    LayerDriver d(f.layer());
    d.client(c.bytes);
    EXPECT_EQ(status_line(d.sent[kClientConn]).substr(0, 12), "HTTP/1.1 " + std::to_string(c.status));
    EXPECT_EQ(d.sent_to_servers(), "");
    auto envs = canonical(d);
    ASSERT_GE(envs.size(), 2u);
    ASSERT_EQ(envs[0].anomalies.size(), 1u);
    EXPECT_EQ(envs[0].anomalies[0].name, c.anomaly) << envs[0].anomalies[0].detail;
    EXPECT_EQ(envs[0].direction, envelope::Direction::send);
    // The client is told why, and the connection is closed.
    EXPECT_NE(d.sent[kClientConn].find("sluice: "), std::string::npos);
    bool closed = false;
    for (const auto& cl : d.closed) closed |= cl.conn == kClientConn;
    EXPECT_TRUE(closed);
  }
}

TEST(Http1Layer, MalformedResponsesAre502WithTheAnomaly) {
  std::vector<Malformed> cases = {
      {"cl_and_te", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       "cl_te_conflict", 502},
      {"differing_cl", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
       "duplicate_content_length", 502},
      {"obs_fold", "HTTP/1.1 200 OK\r\nX: 1\r\n  2\r\nContent-Length: 0\r\n\r\n", "obs_fold", 502},
      {"bare_cr", "HTTP/1.1 200 OK\r\nX: 1\r2\r\nContent-Length: 0\r\n\r\n", "bare_cr", 502},
      {"space_before_colon", "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n", "space_before_colon", 502},
      {"bad_chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n", "bad_chunked", 502},
      {"bad_status", "HTTP/1.1 2x0 OK\r\n\r\n", "bad_status", 502},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Fixture f("reverse:http://o@0");
    LayerDriver d(f.layer());
    d.client("GET / HTTP/1.1\r\nHost: o\r\n\r\n");
    d.server(c.bytes);
    EXPECT_EQ(status_line(d.sent[kClientConn]), "HTTP/1.1 502 Bad Gateway");
    bool found = false;
    for (const auto& e : d.envelopes())
      for (const auto& a : e.anomalies) found |= a.name == c.anomaly && e.direction == envelope::Direction::receive;
    EXPECT_TRUE(found);
    EXPECT_EQ(d.records_of<envelope::ErrorRecord>().size(), 1u);
  }
}

// ---- faults and timeouts ---------------------------------------------------------------------------

TEST(Http1Layer, ServerResetMidBodyAfterStreamingClosesTheClient) {
  ProxyOptions o;
  o.record_body_limit = 4;
  Fixture f("reverse:http://o@0", o);
  LayerDriver d(f.layer());
  d.client("GET / HTTP/1.1\r\nHost: o\r\n\r\n");
  d.server("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
  d.close(1, true);
  EXPECT_EQ(d.sent[kClientConn], "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");  // no 502 appended
  auto errors = d.records_of<envelope::ErrorRecord>();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].code, "server_reset");
  bool client_closed = false;
  for (const auto& c : d.closed) client_closed |= c.conn == kClientConn;
  EXPECT_TRUE(client_closed);
}

TEST(Http1Layer, ServerClosingWithoutAnswerIs502) {
  Fixture f("reverse:http://o@0");
  LayerDriver d(f.layer());
  d.client("GET / HTTP/1.1\r\nHost: o\r\n\r\n");
  d.close(1);
  EXPECT_EQ(status_line(d.sent[kClientConn]), "HTTP/1.1 502 Bad Gateway");
  EXPECT_EQ(d.records_of<envelope::ErrorRecord>().at(0).code, "server_closed");
}

TEST(Http1Layer, ClientAbortMidBodyMarksTheFlowAborted) {
  Fixture f("reverse:http://o@0");
  LayerDriver d(f.layer());
  d.client("POST / HTTP/1.1\r\nHost: o\r\nContent-Length: 100\r\n\r\nabc");
  d.close(kClientConn);
  auto ends = d.records_of<envelope::EndRecord>();
  ASSERT_GE(ends.size(), 1u);
  EXPECT_EQ(ends[0].scope, "flow");
  EXPECT_EQ(ends[0].reason, "aborted");
  EXPECT_EQ(d.sent_to_servers(), "");
  auto envs = canonical(d);
  ASSERT_EQ(envs.size(), 1u);
  EXPECT_EQ(http(envs[0]).body, "abc");
}

TEST(Http1Layer, SlowHeadersAreCutOffWith408) {
  ProxyOptions o;
  o.header_timeout = std::chrono::milliseconds(1000);
  Fixture f("reverse:http://o@0", o);
  LayerDriver d(f.layer());
  d.client("GET / HTTP/1.1\r\n");
  for (int i = 0; i < 5; ++i) {  // a byte now and then does not extend the deadline
    d.advance(std::chrono::milliseconds(300));
    d.client("X");
    d.fire_timers();
  }
  EXPECT_EQ(status_line(d.sent[kClientConn]), "HTTP/1.1 408 Request Timeout");
  auto envs = canonical(d);
  ASSERT_GE(envs.size(), 1u);
  EXPECT_EQ(envs[0].anomalies.at(0).name, "header_timeout");
  EXPECT_TRUE(d.opened.empty());
}

TEST(Http1Layer, SilentServerIs504) {
  ProxyOptions o;
  o.first_byte_timeout = std::chrono::milliseconds(2000);
  Fixture f("reverse:http://o@0", o);
  LayerDriver d(f.layer());
  d.client("GET / HTTP/1.1\r\nHost: o\r\n\r\n");
  d.advance(std::chrono::milliseconds(1500));
  d.fire_timers();
  EXPECT_EQ(d.sent[kClientConn], "");
  d.advance(std::chrono::milliseconds(600));
  d.fire_timers();
  EXPECT_EQ(status_line(d.sent[kClientConn]), "HTTP/1.1 504 Gateway Timeout");
  EXPECT_EQ(d.records_of<envelope::ErrorRecord>().at(0).code, "first_byte_timeout");
}

TEST(Http1Layer, IdleKeepAliveClientIsClosedQuietly) {
  ProxyOptions o;
  o.idle_timeout = std::chrono::milliseconds(5000);
  Fixture f("reverse:http://o@0", o);
  LayerDriver d(f.layer());
  d.client("GET / HTTP/1.1\r\nHost: o\r\n\r\n");
  d.server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  for (int i = 0; i < 6; ++i) {
    d.advance(std::chrono::milliseconds(1000));
    d.fire_timers();
  }
  auto ends = d.records_of<envelope::EndRecord>();
  ASSERT_EQ(ends.size(), 1u);
  EXPECT_EQ(ends[0].reason, "timeout");
  EXPECT_EQ(d.sent[kClientConn], "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
}

TEST(Http1Layer, HeldRequestWaitsWithoutTimingOut) {
  ProxyOptions o;
  o.header_timeout = std::chrono::milliseconds(100);
  o.first_byte_timeout = std::chrono::milliseconds(100);
  Fixture f("reverse:http://o@0", o);
  LayerDriver d(f.layer());
  d.hold_pipeline = true;
  d.client("GET / HTTP/1.1\r\nHost: o\r\n\r\n");
  d.advance(std::chrono::milliseconds(10'000));
  d.fire_timers();
  EXPECT_EQ(d.sent_to_servers(), "");
  EXPECT_EQ(d.sent[kClientConn], "");
  d.release();
  EXPECT_EQ(d.sent_to_servers(), "GET / HTTP/1.1\r\nHost: o\r\n\r\n");
}

TEST(Http1Layer, ShutdownClosesIdleConnectionsAndFinishesBusyOnes) {
  {  // idle between exchanges: closed at once
    Fixture f("reverse:http://o@0");
    LayerDriver d(f.layer());
    d.client("GET / HTTP/1.1\r\nHost: o\r\n\r\n");
    d.server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    d.feed(Shutdown{});
    auto ends = d.records_of<envelope::EndRecord>();
    ASSERT_EQ(ends.size(), 1u);
    EXPECT_EQ(ends[0].reason, "shutdown");
  }
  {  // an exchange in flight: the response still arrives, then the connection closes
    Fixture f("reverse:http://o@0");
    LayerDriver d(f.layer());
    d.client("GET / HTTP/1.1\r\nHost: o\r\n\r\n");
    d.feed(Shutdown{});
    EXPECT_TRUE(d.records_of<envelope::EndRecord>().empty());
    d.server("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    EXPECT_EQ(d.sent[kClientConn], "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    auto ends = d.records_of<envelope::EndRecord>();
    ASSERT_EQ(ends.size(), 1u);
    EXPECT_EQ(ends[0].reason, "shutdown");
  }
}

TEST(Http1Layer, EndlessPipeliningIsAnsweredInOrder) {
  // The client stays 50 requests ahead for 20,000 requests: its buffer is never empty, so parsed
  // bytes are dropped from its front as it goes (the buffer would otherwise grow without end).
  Fixture f("reverse:http://o@0");
  LayerDriver d(f.layer());
  auto req = [](int i) { return "GET /" + std::to_string(i) + " HTTP/1.1\r\nHost: o\r\n\r\n"; };
  std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  std::string expected;
  int sent = 0;
  auto send = [&](int n) {
    std::string batch;
    for (int i = 0; i < n; ++i) batch += req(sent++);
    d.client(batch);
  };
  send(150);
  for (int round = 0; round < 200; ++round) {
    for (int i = 0; i < 100; ++i) {
      expected += req(round * 100 + i);
      d.server(resp);
    }
    send(100);
  }
  EXPECT_EQ(d.sent[kClientConn].size(), 20'000 * resp.size());
  EXPECT_EQ(d.sent[1].substr(0, expected.size()), expected);
}

// ---- a pipeline step's answer (server replay) ------------------------------------------------------

namespace {
ProxyOptions lazy() {
  ProxyOptions o;
  o.lazy_connect = true;
  return o;
}
// A GET through a lazy layer, up to the step's verdict: `respond` with `raw` (tagged served_from).
// No OpenConnection while the pipeline decides.
PipelineVerdict answered(Playbook& p, std::string raw) {
  p >> Start{} << "StartTimer(#1, 30000ms)";
  p >> data(kClientConn, "GET http://o.test/x HTTP/1.1\r\nHost: o.test\r\n\r\n")
    << "RunPipeline(#2, send http seq=0 46 bytes \"GET http://o.test/x HTTP/1.1\\x0d\\x0aHo...\")";
  auto v = std::get<PipelineVerdict>(p.verdict(2, Verdict::respond));
  envelope::Envelope reply;
  reply.raw = std::move(raw);
  reply.tags.emplace_back("served_from", "f-1");
  v.reply = reply;
  return v;
}
}  // namespace

TEST(Http1Layer, LazyConnectAnswersFromAStepWithoutAServer) {
  Fixture f("regular@0", lazy());
  Playbook p(f.layer());
  auto v = answered(p, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi");
  p >> v << "SendData(conn=0, 40 bytes \"HTTP/1.1 200 OK\\x0d\\x0aContent-Length:...\")"
    << "EmitRecord(receive http seq=1 40 bytes \"HTTP/1.1 200 OK\\x0d\\x0aContent-Length:...\")";
  EXPECT_TRUE(p.check());
  const auto& rec = std::get<envelope::Envelope>(std::get<EmitRecord>(p.history().back()).record);
  EXPECT_EQ(http(rec).status, 200);
  EXPECT_EQ(http(rec).body, "hi");
  EXPECT_EQ(rec.tags, (envelope::Tags{{"served_from", "f-1"}}));
  // The connection goes on: the next request is forwarded, and only now a server is dialled.
  LayerDriver d(f.layer());
  d.client("GET http://o.test/y HTTP/1.1\r\nHost: o.test\r\n\r\n");
  EXPECT_EQ(d.sent_to_servers(), "GET /y HTTP/1.1\r\nHost: o.test\r\n\r\n");
}

TEST(Http1Layer, AStepAnswerThatIsNoResponseIs502) {
  Fixture f("regular@0", lazy());
  Playbook p(f.layer());
  auto v = answered(p, "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nshort");  // cut short
  // A 502 naming the step's fault; still no server dialled.
  p >> v << "EmitRecord(error c1 bad_reply: a pipeline step answered with no complete HTTP/1 response (the "
            "connection closed inside a message body))"
    << "SendData(conn=0, 232 bytes \"HTTP/1.1 502 Bad Gateway\\x0d\\x0aConten...\")"
    << "EmitRecord(receive http seq=1 232 bytes \"HTTP/1.1 502 Bad Gateway\\x0d\\x0aConten...\")"
    << "CloseConnection(conn=0)" << "CancelTimer(#1)" << "EmitRecord(end stream c1 error sent=46 received=0)";
  EXPECT_TRUE(p.check());
}
