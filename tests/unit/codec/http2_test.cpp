// The HTTP/2 encoder against a real peer (an nghttp2 server session reads what it makes, CONTINUATION
// and trailers included) and the decoder against nghttp2's client session (it reads what a real
// session sends, with the session's own HPACK context).
#include "codec/http2.hpp"

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <map>

#include "replay/h2_request.hpp"

namespace sluice::codec {
namespace {

// A server session that collects what each stream brought.
struct Peer {
  struct Stream {
    envelope::Headers fields;
    std::string body;
    bool ended = false;
    int blocks = 0;
  };
  std::map<int32_t, Stream> streams;
  nghttp2_session* s = nullptr;

  Peer() {
    nghttp2_session_callbacks* cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(
        cbs, [](nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl, const uint8_t* v, size_t vl,
                uint8_t, void* ud) {
          static_cast<Peer*>(ud)->streams[f->hd.stream_id].fields.push_back(
              {std::string(reinterpret_cast<const char*>(n), nl), std::string(reinterpret_cast<const char*>(v), vl)});
          return 0;
        });
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cbs, [](nghttp2_session*, uint8_t, int32_t id, const uint8_t* d, size_t n, void* ud) {
          static_cast<Peer*>(ud)->streams[id].body.append(reinterpret_cast<const char*>(d), n);
          return 0;
        });
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, [](nghttp2_session*, const nghttp2_frame* f, void* ud) {
      auto& st = static_cast<Peer*>(ud)->streams[f->hd.stream_id];
      if (f->hd.type == NGHTTP2_HEADERS) ++st.blocks;
      if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) st.ended = true;
      return 0;
    });
    nghttp2_session_server_new(&s, cbs, this);
    nghttp2_session_callbacks_del(cbs);
  }
  ~Peer() { nghttp2_session_del(s); }
  // Fails the test on any byte the session refuses.
  void read(const std::string& bytes) {
    ssize_t n = nghttp2_session_mem_recv(s, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    ASSERT_EQ(n, static_cast<ssize_t>(bytes.size())) << nghttp2_strerror(static_cast<int>(n));
  }
};

const std::string kPreface = std::string(NGHTTP2_CLIENT_MAGIC, NGHTTP2_CLIENT_MAGIC_LEN) + h2_frame(4, 0, 0, "");

TEST(Http2Encode, ARequestWithABodyAndTrailersIsReadByAServerSession) {
  envelope::HttpMessage m;
  m.method = "POST";
  m.scheme = "https";
  m.authority = "api.test";
  m.path = "/submit?x=1";
  m.headers = {{"Host", "api.test"}, {"Connection", "keep-alive, X-Hop"}, {"X-Hop", "1"}, {"X-Order", "kept"},
               {"Content-Length", "999"}, {"TE", "gzip"}, {"Transfer-Encoding", "chunked"}};
  m.body = std::string(40000, 'b');  // three DATA frames
  m.trailers = {{"X-Sum", "5"}};
  H2Encoder enc;
  Peer peer;
  peer.read(kPreface + enc.message(1, m));
  const auto& st = peer.streams[1];
  EXPECT_EQ(st.fields, (envelope::Headers{{":method", "POST"}, {":scheme", "https"}, {":authority", "api.test"},
                                          {":path", "/submit?x=1"}, {"x-order", "kept"}, {"content-length", "40000"},
                                          {"x-sum", "5"}}));
  EXPECT_EQ(st.body, m.body);
  EXPECT_EQ(st.blocks, 2);  // the head and the trailers
  EXPECT_TRUE(st.ended);
  // A second message on the same encoder uses its dynamic table, and the same peer still reads it.
  envelope::HttpMessage get;
  get.method = "GET";
  get.authority = "api.test";
  get.path = "/again";
  get.headers = {{"x-order", "kept"}};
  std::string again = enc.message(3, get);
  EXPECT_LT(again.size(), 9u + 20u);  // indexed fields: a few bytes
  peer.read(again);
  EXPECT_EQ(peer.streams[3].fields.back(), (envelope::Header{"x-order", "kept"}));
  EXPECT_TRUE(peer.streams[3].ended);
}

TEST(Http2Encode, ALargeHeaderBlockGoesOnInContinuationFrames) {
  envelope::HttpMessage m;
  m.method = "GET";
  m.authority = "a";
  m.path = "/";
  for (int i = 0; i < 8; ++i) m.headers.push_back({"x-big-" + std::to_string(i), std::string(5000, 'a' + i)});
  H2Encoder enc;
  std::string bytes = enc.message(5, m);
  EXPECT_EQ(bytes[3], 1);  // HEADERS, without END_HEADERS, with END_STREAM
  EXPECT_EQ(bytes[4], 1);
  size_t first = (uint8_t(bytes[0]) << 16 | uint8_t(bytes[1]) << 8 | uint8_t(bytes[2]));
  EXPECT_EQ(first, 16384u);
  EXPECT_EQ(bytes[9 + first + 3], 9);  // CONTINUATION
  Peer peer;
  peer.read(kPreface + bytes);
  EXPECT_EQ(peer.streams[5].fields.size(), 4u + 8u);
  EXPECT_EQ(peer.streams[5].fields.back().value, std::string(5000, 'h'));
  H2Decoder dec;
  ASSERT_TRUE(dec.feed(bytes));
  ASSERT_NE(dec.find(5), nullptr);
  EXPECT_EQ(H2Decoder::view(*dec.find(5)).headers, m.headers);
}

TEST(Http2Encode, AResponseAndAnEmptyBody) {
  envelope::HttpMessage r;
  r.kind = envelope::HttpMessage::Kind::response;
  r.status = 204;
  r.headers = {{"Server", "x"}};
  H2Encoder enc;
  std::string bytes = enc.message(1, r);
  EXPECT_EQ(bytes[4], 5);  // END_STREAM | END_HEADERS: no DATA frame
  H2Decoder dec;
  ASSERT_TRUE(dec.feed(bytes));
  auto v = H2Decoder::view(*dec.find(1));
  EXPECT_EQ(v.kind, envelope::HttpMessage::Kind::response);
  EXPECT_EQ(v.status, 204);
  EXPECT_EQ(v.headers, (envelope::Headers{{"server", "x"}}));
  EXPECT_TRUE(dec.find(1)->ended);
}

TEST(Http2Decode, WhatAClientSessionSendsAtEverySplitPoint) {
  envelope::HttpMessage m;
  m.method = "PUT";
  m.scheme = "http";
  m.authority = "127.0.0.1:1";
  m.path = "/p";
  m.headers = {{"x-a", "1"}};
  m.body = "payload";
  m.trailers = {{"x-t", "2"}};
  replay::H2Request client(m);
  std::string wire = client.output().substr(NGHTTP2_CLIENT_MAGIC_LEN);
  for (size_t cut = 0; cut <= wire.size(); ++cut) {
    H2Decoder dec;
    ASSERT_TRUE(dec.feed(wire.substr(0, cut)));
    ASSERT_TRUE(dec.feed(wire.substr(cut)));
    const auto* got = dec.find(1);
    ASSERT_NE(got, nullptr);
    auto v = H2Decoder::view(*got);
    EXPECT_EQ(v.method, "PUT");
    EXPECT_EQ(v.path, "/p");
    EXPECT_EQ(v.body, "payload");
    EXPECT_EQ(v.trailers, m.trailers);
    EXPECT_TRUE(got->ended);
  }
}

TEST(Http2Decode, BrokenFramingIsAnErrorNotACrash) {
  H2Decoder a;
  EXPECT_FALSE(a.feed(h2_frame(0, 0, 1, "x")));  // DATA before HEADERS
  H2Decoder b;
  EXPECT_FALSE(b.feed(h2_frame(1, 4, 1, "\xff\xff\xff\xff")));  // an index past every table
  H2Decoder c;
  EXPECT_FALSE(c.feed(h2_frame(1, 0, 1, "\x82") + h2_frame(0, 0, 1, "x")));  // a block not continued
  H2Decoder d;
  EXPECT_FALSE(d.feed(h2_frame(1, 0x8 | 4, 1, "\x05\x82")));  // padding past the frame
}

}  // namespace
}  // namespace sluice::codec
