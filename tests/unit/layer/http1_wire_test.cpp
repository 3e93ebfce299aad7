// encode_http1: a message a step edited becomes bytes whose framing agrees with its body.
#include <gtest/gtest.h>

#include "layer/http1_parser.hpp"
#include "layer/http1_wire.hpp"

namespace sluice::layer {
namespace {

envelope::HttpMessage request(std::string method, envelope::Headers headers, std::string body) {
  envelope::HttpMessage m;
  m.kind = envelope::HttpMessage::Kind::request;
  m.method = std::move(method);
  m.path = "/p?q=1";
  m.version = "HTTP/1.1";
  m.headers = std::move(headers);
  m.body = std::move(body);
  return m;
}

TEST(EncodeHttp1, ContentLengthFollowsTheBodyAndOtherFieldsKeepOrderAndCase) {
  auto m = request("POST", {{"host", "h"}, {"CONTENT-length", "3"}, {"X-b", "2"}}, "changed");
  EXPECT_EQ(encode_http1(m), "POST /p?q=1 HTTP/1.1\r\nhost: h\r\nCONTENT-length: 7\r\nX-b: 2\r\n\r\nchanged");
  // Added when the message had none; a GET without a body gets none.
  m.headers = {{"Host", "h"}};
  EXPECT_EQ(encode_http1(m), "POST /p?q=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 7\r\n\r\nchanged");
  EXPECT_EQ(encode_http1(request("GET", {{"Host", "h"}}, "")), "GET /p?q=1 HTTP/1.1\r\nHost: h\r\n\r\n");
  // Two Content-Length fields (a smuggling shape) become one.
  m.headers = {{"Content-Length", "1"}, {"Content-Length", "2"}};
  EXPECT_EQ(encode_http1(m), "POST /p?q=1 HTTP/1.1\r\nContent-Length: 7\r\n\r\nchanged");
}

TEST(EncodeHttp1, ChunkedWhenTheMessageSaysSoWithTrailers) {
  envelope::HttpMessage m;
  m.kind = envelope::HttpMessage::Kind::response;
  m.status = 200;
  m.reason = "OK";
  m.version = "HTTP/1.1";
  m.headers = {{"Transfer-Encoding", "chunked"}, {"Content-Length", "99"}};
  m.trailers = {{"X-Sum", "1"}};
  m.body = "hello";
  auto bytes = encode_http1(m);
  EXPECT_EQ(bytes, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n");
  // What our own parser reads back is the message.
  Http1Parser parser(Http1Parser::Type::response);
  core::ByteView rest(bytes);
  size_t used = 0;
  Http1Parser::Status st;
  std::string body;
  while ((st = parser.feed(rest, used)) == Http1Parser::Status::head || st == Http1Parser::Status::need_more) {
    rest.remove_prefix(used);
    body += parser.take_body();
    if (st == Http1Parser::Status::need_more) break;
  }
  body += parser.take_body();
  EXPECT_EQ(st, Http1Parser::Status::complete);
  EXPECT_EQ(body, "hello");
  EXPECT_EQ(parser.trailers(), m.trailers);
}

TEST(EncodeHttp1, ResponsesThatHaveNoBodyGetNoLengthOthersDo) {
  envelope::HttpMessage m;
  m.kind = envelope::HttpMessage::Kind::response;
  m.status = 204;
  m.reason = "No Content";
  m.version = "HTTP/2";  // an HTTP/2 message is written as HTTP/1.1
  m.headers = {{"Content-Length", "0"}};
  EXPECT_EQ(encode_http1(m), "HTTP/1.1 204 No Content\r\n\r\n");  // RFC 9110 §8.6: never on a 204
  m.status = 200;
  m.reason = "OK";
  m.headers = {};
  EXPECT_EQ(encode_http1(m), "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
}

}  // namespace
}  // namespace sluice::layer
