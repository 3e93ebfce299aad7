// Http2Layer in front of an HTTP/1.1-only server: an h2c client's stream is translated into an HTTP/1.1
// exchange (after our h2c preface is answered with an HTTP/1 error), with the server's response fed
// at every split point; and a server that answers the preface with SETTINGS keeps HTTP/2.
#include <gtest/gtest.h>

#include <functional>

#include "codec/http2.hpp"
#include "layer/http2_layer.hpp"
#include "layer/server_memo.hpp"
#include "replay/h2_request.hpp"
#include "support/layer_driver.hpp"

namespace sluice::layer {
namespace {

using test_support::LayerDriver;

struct Fixture {
  ProxyOptions options;
  ConnectionContext ctx{"t", "127.0.0.1:1", core::Timestamp{0}, *parse_mode_spec("reverse:http://127.0.0.1:7000@0"),
                        &options};
  std::unique_ptr<LayerDriver> d;
  std::unique_ptr<replay::H2Request> client;
  codec::H2Decoder to_client;  // what the client got, read again

  explicit Fixture(const envelope::HttpMessage& request, const ServerMemo* servers = nullptr,
                   const std::function<void(ProxyOptions&)>& configure = {}) {
    options.servers = servers;
    if (configure) configure(options);
    d = std::make_unique<LayerDriver>(std::make_unique<Http2Layer>(ctx, Http2Target{"127.0.0.1", 7000, false, 0}));
    client = std::make_unique<replay::H2Request>(request);
    d->client(client->output());
  }
  // What the client got so far goes to its session; what it has to say goes to the layer.
  void exchange() {
    std::string got;
    got.swap(d->sent[kClientConn]);
    EXPECT_TRUE(to_client.feed(got));
    client->input(got);
    if (auto more = client->output(); !more.empty()) d->client(more);
  }
};

envelope::HttpMessage post_with_trailers() {
  envelope::HttpMessage m;
  m.method = "POST";
  m.scheme = "http";
  m.authority = "127.0.0.1:1";
  m.path = "/submit?x=1";
  m.headers = {{"cookie", "a=1"}, {"x-order", "kept"}, {"cookie", "b=2"}};
  m.body = "hello";
  m.trailers = {{"x-sum", "5"}};
  return m;
}

envelope::HttpMessage get(const std::string& path) {
  envelope::HttpMessage m;
  m.method = "GET";
  m.scheme = "http";
  m.authority = "a";
  m.path = path;
  return m;
}

// The `end` of `stream_id`, checked to come after every other record of that stream.
const envelope::EndRecord* end_of(const LayerDriver& d, const std::string& stream_id) {
  const envelope::EndRecord* end = nullptr;
  for (const auto& r : d.records) {
    const auto* e = std::get_if<envelope::EndRecord>(&r);
    if (e && e->stream_id == stream_id) {
      EXPECT_EQ(end, nullptr) << stream_id << " ends twice";
      end = e;
    } else if (const auto* env = std::get_if<envelope::Envelope>(&r); env && env->stream_id == stream_id) {
      EXPECT_EQ(end, nullptr) << "a record of " << stream_id << " after its end";
    }
  }
  return end;
}

const std::string kResponse =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n"
    "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n";

TEST(Http2Translation, AStreamBecomesAnHttp1ExchangeAtEverySplitPoint) {
  for (size_t split = 0; split <= kResponse.size(); ++split) {
    Fixture f(post_with_trailers());
    // The first connection carries our h2c preface; the server answers it as HTTP/1.1 would.
    ASSERT_EQ(f.d->opened.size(), 1u);
    ConnId probe = f.d->opened[0].conn;
    ASSERT_TRUE(f.d->sent[probe].starts_with(std::string(Http2Layer::kPreface)));
    f.d->data(probe, "HTTP/1.1 505 HTTP Version Not Supported\r\nConnection: close\r\n\r\n");
    ASSERT_EQ(f.d->opened.size(), 2u) << split;
    ConnId h1 = f.d->opened[1].conn;
    f.exchange();
    EXPECT_EQ(f.d->sent[h1],
              "POST /submit?x=1 HTTP/1.1\r\nhost: 127.0.0.1:7000\r\nx-order: kept\r\ncookie: a=1; b=2\r\n"
              "transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nx-sum: 5\r\n\r\n");
    f.d->data(h1, kResponse.substr(0, split));
    f.exchange();
    f.d->data(h1, kResponse.substr(split));
    f.exchange();
    EXPECT_TRUE(f.client->done()) << split;
    EXPECT_EQ(f.client->error(), "") << split;
    EXPECT_EQ(f.client->status(), 200) << split;
    // Recorded: the request (HTTP/2), its HTTP/1.1 variant (same seq), the response as it came.
    std::vector<envelope::Envelope> http;
    for (auto& e : f.d->envelopes())
      if (e.protocol == envelope::Protocol::http && e.overlay.empty()) http.push_back(e);
    ASSERT_EQ(http.size(), 3u) << split;
    const auto& req = std::get<envelope::HttpMessage>(http[0].message);
    const auto& var = std::get<envelope::HttpMessage>(http[1].message);
    const auto& resp = std::get<envelope::HttpMessage>(http[2].message);
    EXPECT_EQ(req.version, "HTTP/2");
    EXPECT_EQ(var.version, "HTTP/1.1");
    EXPECT_TRUE(http[1].modified);
    EXPECT_EQ(http[1].variant_of, http[0].seq);
    EXPECT_EQ(http[1].seq, http[0].seq);
    EXPECT_EQ(http[1].raw, f.d->sent[h1]);
    EXPECT_EQ(var.body, "hello");
    EXPECT_EQ(resp.version, "HTTP/1.1");
    EXPECT_EQ(resp.status, 200);
    EXPECT_EQ(resp.body, "abcde");
    EXPECT_EQ(http[2].raw, kResponse);
    ASSERT_EQ(resp.trailers.size(), 1u);
    EXPECT_EQ(resp.trailers[0].value, "t");
    const envelope::EndRecord* end = end_of(*f.d, http[0].stream_id);
    ASSERT_NE(end, nullptr) << split;
    EXPECT_EQ(end->reason, "complete");
    EXPECT_GT(end->bytes_sent, 0u);
    EXPECT_EQ(end->bytes_received, kResponse.size()) << split;
  }
}

TEST(Http2Translation, KeepAliveConnectionsServeLaterStreams) {
  Fixture f(get("/one"));
  f.d->data(f.d->opened[0].conn, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
  ConnId h1 = f.d->opened[1].conn;
  f.exchange();
  EXPECT_EQ(f.d->sent[h1], "GET /one HTTP/1.1\r\nhost: 127.0.0.1:7000\r\n\r\n");
  f.d->data(h1, "HTTP/1.1 204 No Content\r\n\r\n");
  f.exchange();
  EXPECT_EQ(f.client->status(), 204);
  // The probe connection and nothing else was closed: the HTTP/1.1 one waits for the next stream.
  ASSERT_EQ(f.d->closed.size(), 1u);
  EXPECT_EQ(f.d->closed[0].conn, f.d->opened[0].conn);
}

TEST(Http2Translation, AServerIsReadNoFurtherWhileTheClientHasAMegabyteToTake) {
  Fixture f(get("/big"));
  f.d->data(f.d->opened[0].conn, "HTTP/1.1 505 Nope\r\nContent-Length: 0\r\n\r\n");
  ConnId h1 = f.d->opened[1].conn;
  f.exchange();
  std::string part(2u << 20, 'z');
  f.d->data(h1, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(3 * part.size() / 2) + "\r\n\r\n" + part);
  // The client's window (64 KiB) took a little: the rest waits, and the server is not read meanwhile.
  EXPECT_TRUE(f.d->paused[h1]);
  for (int i = 0; i < 200 && f.d->paused[h1]; ++i) f.exchange();  // the client reads, its window opens
  EXPECT_FALSE(f.d->paused[h1]);
  f.d->data(h1, part.substr(0, part.size() / 2));
  for (int i = 0; i < 200 && !f.client->done(); ++i) f.exchange();
  EXPECT_TRUE(f.client->done());
  EXPECT_EQ(f.client->status(), 200);
  EXPECT_FALSE(f.d->paused[h1]);
}

TEST(Http2Translation, AServerThatSpeaksH2cKeepsHttp2) {
  Fixture f(get("/h2"));
  ConnId server = f.d->opened[0].conn;
  size_t before = f.d->sent[server].size();
  // SETTINGS (empty): the server speaks HTTP/2, and only then does the request go out.
  f.d->data(server, std::string("\x00\x00\x00\x04\x00\x00\x00\x00\x00", 9));
  EXPECT_EQ(f.d->opened.size(), 1u);
  EXPECT_GT(f.d->sent[server].size(), before);
  EXPECT_TRUE(f.d->closed.empty());
}

TEST(Http2Translation, ALaterConnectionToAKnownHttp1ServerSkipsTheProbe) {
  ServerMemo servers;
  core::Timestamp when;
  {
    Fixture first(get("/one"), &servers);
    when = first.d->now;
    ASSERT_TRUE(first.d->sent[first.d->opened[0].conn].starts_with(std::string(Http2Layer::kPreface)));
    first.d->data(first.d->opened[0].conn, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
  }
  EXPECT_TRUE(servers.known_http1("127.0.0.1:7000", when));
  // The next connection's first server connection carries the request itself, as HTTP/1.1.
  Fixture second(get("/two"), &servers);
  second.exchange();
  ASSERT_EQ(second.d->opened.size(), 1u);
  ConnId h1 = second.d->opened[0].conn;
  EXPECT_EQ(second.d->sent[h1], "GET /two HTTP/1.1\r\nhost: 127.0.0.1:7000\r\n\r\n");
  second.d->data(h1, "HTTP/1.1 204 No Content\r\n\r\n");
  second.exchange();
  EXPECT_EQ(second.client->status(), 204);
  EXPECT_TRUE(second.d->closed.empty());
  // A server that answers the preface with SETTINGS is not remembered as HTTP/1.1.
  ServerMemo other;
  Fixture h2(get("/h2"), &other);
  h2.d->data(h2.d->opened[0].conn, std::string("\x00\x00\x00\x04\x00\x00\x00\x00\x00", 9));
  EXPECT_FALSE(other.known_http1("127.0.0.1:7000", when));
  // Nor is one that closes without a word: that may have been an overloaded h2c server.
  Fixture closed(get("/gone"), &other);
  closed.d->close(closed.d->opened[0].conn);
  EXPECT_EQ(closed.d->opened.size(), 2u);  // the request went on as HTTP/1.1 all the same
  EXPECT_FALSE(other.known_http1("127.0.0.1:7000", when));
}

TEST(ServerMemo, ForgetsAfterItsTimeAndWhenFull) {
  using std::chrono::seconds;
  ServerMemo memo(seconds(10), 2);
  core::Timestamp t0{1'000'000'000'000};
  EXPECT_FALSE(memo.known_http1("a:80", t0));
  memo.remember_http1("a:80", t0);
  EXPECT_TRUE(memo.known_http1("a:80", core::Timestamp{t0.ns + 9'999'999'999}));
  EXPECT_FALSE(memo.known_http1("b:80", t0));
  EXPECT_FALSE(memo.known_http1("a:80", core::Timestamp{t0.ns + 10'000'000'000}));  // expired, and gone
  EXPECT_FALSE(memo.known_http1("a:80", t0));
  memo.remember_http1("a:80", t0);
  EXPECT_FALSE(memo.known_http1("a:80", core::Timestamp{t0.ns - 1}));  // the clock went back: ask again
  memo.remember_http1("a:80", t0);
  memo.remember_http1("b:80", t0);
  memo.remember_http1("c:80", t0);  // past capacity: the others are dropped
  EXPECT_TRUE(memo.known_http1("c:80", t0));
  EXPECT_FALSE(memo.known_http1("b:80", t0));
}

TEST(Http2Translation, AServerThatClosesBeforeAnsweringGives502) {
  Fixture f(get("/gone"));
  f.d->close(f.d->opened[0].conn);  // the preface was refused by a close: HTTP/1.1 then
  ConnId h1 = f.d->opened[1].conn;
  f.d->close(h1);
  f.exchange();
  EXPECT_EQ(f.client->status(), 502);
}

}  // namespace
}  // namespace sluice::layer

namespace sluice::layer {
namespace {

// An HTTP/2 frame: 9-byte header, then the payload.
std::string frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload) {
  return codec::h2_frame(type, flags, static_cast<int32_t>(stream), payload);
}

// An HTTP/1.1 client in front of an HTTP/2 server whose SETTINGS came.
struct H1Client {
  ProxyOptions options;
  ConnectionContext ctx{"t", "127.0.0.1:1", core::Timestamp{0}, *parse_mode_spec("regular@0"), &options};
  ConnId server = ctx.new_conn();
  LayerDriver d{std::make_unique<Http2Layer>(ctx, Http2Target{"origin", 443, true, server, true})};
  H1Client() { d.data(server, frame(4, 0, 0, "")); }
};

TEST(Http2Translation, AnHttp1ClientsPipelinedRequestsGoAsStreamsAtEverySplitPoint) {
  const std::string requests =
      "GET /a HTTP/1.1\r\nHost: origin\r\nConnection: keep-alive\r\nX-One: 1\r\n\r\n"
      "POST /b HTTP/1.1\r\nHost: origin\r\nContent-Length: 3\r\n\r\nabc";
  // The server answers each stream with ":status 200" (HPACK static index 8) and a body.
  const std::string answer1 = frame(1, 4, 1, "\x88") + frame(0, 1, 1, "one");
  const std::string answer3 = frame(1, 4, 3, "\x88") + frame(0, 1, 3, "three");
  const std::string expected = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\none\r\n0\r\n\r\n"
                               "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nthree\r\n0\r\n\r\n";
  for (size_t split = 0; split <= requests.size(); ++split) {
    H1Client c;
    LayerDriver& d = c.d;
    ConnId server = c.server;
    ASSERT_TRUE(d.sent[server].starts_with(std::string(Http2Layer::kPreface))) << split;
    d.client(requests.substr(0, split));
    d.client(requests.substr(split));
    d.data(server, answer1);
    d.data(server, answer3);  // the second request went out once the first was answered
    EXPECT_EQ(d.sent[kClientConn], expected) << split;
    std::vector<envelope::Envelope> http;
    for (auto& e : d.envelopes())
      if (e.protocol == envelope::Protocol::http && e.overlay.empty()) http.push_back(e);
    ASSERT_EQ(http.size(), 6u) << split;  // per exchange: the request, its HTTP/2 variant, the response
    const auto& first = std::get<envelope::HttpMessage>(http[0].message);
    EXPECT_EQ(first.version, "HTTP/1.1");
    EXPECT_EQ(http[0].raw, requests.substr(0, requests.find("POST")));
    const auto& variant = std::get<envelope::HttpMessage>(http[1].message);
    EXPECT_TRUE(http[1].modified);
    EXPECT_EQ(variant.version, "HTTP/2");
    EXPECT_EQ(variant.authority, "origin");
    ASSERT_EQ(variant.headers.size(), 1u);  // Host became :authority; Connection is HTTP/1's own
    EXPECT_EQ(variant.headers[0].name, "x-one");
    const auto& second = std::get<envelope::HttpMessage>(http[3].message);
    EXPECT_EQ(second.body, "abc");
    EXPECT_EQ(http[3].raw, requests.substr(requests.find("POST")));
    // Each stream ended on both legs: it ends, with the bytes each exchange took on each side.
    for (int k : {0, 1}) {
      const envelope::EndRecord* end = end_of(d, http[3 * k].stream_id);
      ASSERT_NE(end, nullptr) << split;
      EXPECT_EQ(end->reason, "complete");
      EXPECT_EQ(end->bytes_sent, http[3 * k].raw.size()) << split;
      EXPECT_EQ(end->bytes_received, (k ? answer3 : answer1).size()) << split;
    }
    EXPECT_NE(http[0].stream_id, http[3].stream_id);
  }
}

TEST(Http2Translation, AnHttp1ClientsLastExchangeEndsTheConnectionAndItsStream) {
  H1Client c;
  LayerDriver& d = c.d;
  ConnId server = c.server;
  d.client("GET /last HTTP/1.1\r\nHost: origin\r\nConnection: close\r\n\r\n");
  d.data(server, frame(1, 5, 1, "\x88"));
  EXPECT_EQ(d.sent[kClientConn], "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
  // Both connections close, and the layer's stream ends after its HTTP/2 stream's end, last.
  ASSERT_EQ(d.closed.size(), 2u);
  EXPECT_EQ(d.closed[0].conn, server);
  EXPECT_EQ(d.closed[1].conn, kClientConn);
  auto http = d.envelopes();
  ASSERT_FALSE(http.empty());
  std::string h2_stream = http[0].stream_id, conn_stream = h2_stream.substr(0, h2_stream.rfind('.'));
  ASSERT_NE(end_of(d, h2_stream), nullptr);
  const auto* last = std::get_if<envelope::EndRecord>(&d.records.back());
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(last->stream_id, conn_stream);
  EXPECT_EQ(last->reason, "closed");
  // What the server says afterwards is not read: the connection is over.
  size_t records = d.records.size();
  d.data(server, frame(7, 0, 0, std::string(8, '\0')));  // GOAWAY
  EXPECT_EQ(d.records.size(), records);
}

TEST(Http2Translation, AStreamTheServerResetsEndsWithReasonReset) {
  H1Client c;
  LayerDriver& d = c.d;
  ConnId server = c.server;
  d.client("GET /r HTTP/1.1\r\nHost: origin\r\n\r\n");
  const std::string rst = frame(3, 0, 1, std::string("\0\0\0\x08", 4));  // RST_STREAM, CANCEL
  d.data(server, rst);
  EXPECT_TRUE(d.sent[kClientConn].starts_with("HTTP/1.1 502 ")) << d.sent[kClientConn];
  auto http = d.envelopes();
  ASSERT_FALSE(http.empty());
  const envelope::EndRecord* end = end_of(d, http[0].stream_id);
  ASSERT_NE(end, nullptr);
  EXPECT_EQ(end->reason, "reset");
  EXPECT_EQ(end->bytes_received, rst.size());
}

}  // namespace
}  // namespace sluice::layer

namespace sluice::layer {
namespace {

TEST(Http2Translation, AnHttp1ClientsTrailersAreRecordedAsSentAndGoOnInLowerCase) {
  H1Client c;
  LayerDriver& d = c.d;
  ConnId server = c.server;
  d.client("POST /t HTTP/1.1\r\nHost: origin\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n\r\n"
           "2\r\nhi\r\n0\r\nX-Sum: 2\r\n\r\n");
  // The server got HEADERS, DATA and a trailing HEADERS frame that ends the stream.
  std::string sent = d.sent[server].substr(Http2Layer::kPreface.size());
  std::vector<uint8_t> types;
  for (size_t pos = 0; pos + 9 <= sent.size();) {
    size_t len = (size_t(uint8_t(sent[pos])) << 16) | (size_t(uint8_t(sent[pos + 1])) << 8) | uint8_t(sent[pos + 2]);
    if (uint8_t(sent[pos + 3]) != 4 && uint8_t(sent[pos + 3]) != 8) types.push_back(uint8_t(sent[pos + 3]));
    if (uint8_t(sent[pos + 3]) == 1 && types.size() == 3) {
      EXPECT_TRUE(uint8_t(sent[pos + 4]) & 1);  // END_STREAM
    }
    pos += 9 + len;
  }
  EXPECT_EQ(types, (std::vector<uint8_t>{1, 0, 1}));
  d.data(server, frame(1, 5, 1, "\x88"));
  // END_STREAM on the head: nothing more will come.
  EXPECT_EQ(d.sent[kClientConn], "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
  std::vector<envelope::Envelope> http;
  for (auto& e : d.envelopes())
    if (e.protocol == envelope::Protocol::http && e.overlay.empty()) http.push_back(e);
  ASSERT_GE(http.size(), 2u);
  const auto& req = std::get<envelope::HttpMessage>(http[0].message);
  const auto& variant = std::get<envelope::HttpMessage>(http[1].message);
  ASSERT_EQ(req.trailers.size(), 1u);
  EXPECT_EQ(req.trailers[0].name, "X-Sum");
  ASSERT_EQ(variant.trailers.size(), 1u);
  EXPECT_EQ(variant.trailers[0].name, "x-sum");
  ASSERT_EQ(variant.headers.size(), 1u);  // te: trailers is the one TE HTTP/2 allows
  EXPECT_EQ(variant.headers[0].name, "te");
}

}  // namespace
}  // namespace sluice::layer

namespace sluice::layer {
namespace {

// --record-memory bounds what HTTP/2 streams keep: a response past it is recorded with its body
// omitted (the client still gets all of it), one held whole for steps streams on after its head is
// judged, and every byte is given back when the streams are done.
TEST(Http2RecordMemory, AResponsePastTheBudgetKeepsNoMoreAndTheBudgetComesBack) {
  const std::string body(60 << 10, 'b');  // (within the server's first window)
  for (bool h2_server : {false, true}) {
    for (bool steps : {false, true}) {
      SCOPED_TRACE(std::string(h2_server ? "HTTP/2" : "HTTP/1.1") + " server" + (steps ? ", steps" : ""));
      RecordBudget budget(40 << 10);
      Fixture f(get("/big"), nullptr, [&](ProxyOptions& o) {
        o.record_budget = &budget;
        o.step_units = steps;
      });
      ConnId server = f.d->opened[0].conn;
      if (h2_server) {  // SETTINGS, then the response's frames (HPACK from the codec's encoder)
        f.d->data(server, codec::h2_frame(4, 0, 0, ""));
        f.exchange();
        envelope::HttpMessage r;
        r.kind = envelope::HttpMessage::Kind::response;
        r.status = 200;
        r.body = body;
        codec::H2Encoder enc;
        f.d->data(server, enc.message(1, r));
      } else {
        f.d->data(server, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        f.exchange();
        f.d->data(f.d->opened[1].conn, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                                           "\r\n\r\n" + body);
      }
      for (int i = 0; i < 8 && !f.client->done(); ++i) f.exchange();
      ASSERT_TRUE(f.client->done());
      EXPECT_EQ(f.client->status(), 200);
      ASSERT_NE(f.to_client.find(1), nullptr);
      EXPECT_EQ(f.to_client.find(1)->body, body);  // the client gets it all
      const envelope::HttpMessage* resp = nullptr;
      bool head_unit = false;
      auto all = f.d->envelopes();
      for (const auto& e : all) {
        const auto* m = std::get_if<envelope::HttpMessage>(&e.message);
        if (!m || m->kind != envelope::HttpMessage::Kind::response) continue;
        if (e.overlay == "head") head_unit = true;
        if (e.overlay.empty() && !e.modified) resp = m;
      }
      ASSERT_NE(resp, nullptr);
      EXPECT_LT(resp->body.size(), body.size());
      EXPECT_EQ(resp->body.size() + resp->body_omitted, body.size());
      EXPECT_EQ(head_unit, steps);  // held whole for steps: past the budget its head was judged instead
      EXPECT_EQ(budget.left(), 40 << 10);
    }
  }
}

}  // namespace
}  // namespace sluice::layer
