#include "layer/http1_head.hpp"

#include <gtest/gtest.h>

using namespace sluice::layer;

namespace {
const std::string kHead =
    "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nproxy-AUTHORIZATION: Basic eDp5\r\n"
    "X-Empty:\r\nUser-Agent: curl/7.88.1\r\n\r\n";
}

TEST(RequestHeadParser, KeepsEveryByteAtEverySplitPoint) {
  const std::string input = kHead + "\x16\x03\x01 tunnel bytes";
  for (size_t cut = 0; cut <= input.size(); ++cut) {
    RequestHeadParser p;
    size_t consumed = 0;
    auto s = p.feed(std::string_view(input).substr(0, cut), consumed);
    size_t offset = cut;
    if (s == RequestHeadParser::Status::need_more) {
      s = p.feed(std::string_view(input).substr(cut), consumed);
    } else {
      offset = 0;
    }
    ASSERT_EQ(s, RequestHeadParser::Status::done) << "cut " << cut;
    EXPECT_EQ(p.head().raw, kHead) << "cut " << cut;
    EXPECT_EQ(input.substr(offset + consumed), "\x16\x03\x01 tunnel bytes") << "cut " << cut;
    EXPECT_EQ(p.head().method, "CONNECT");
    EXPECT_EQ(p.head().target, "example.com:443");
    EXPECT_EQ(p.head().version, "HTTP/1.1");
    ASSERT_EQ(p.head().headers.size(), 4u) << "cut " << cut;
    EXPECT_EQ(p.head().headers[1].name, "proxy-AUTHORIZATION");  // case kept
    EXPECT_EQ(p.head().headers[1].value, "Basic eDp5");
    EXPECT_EQ(p.head().headers[2].name, "X-Empty");
    EXPECT_EQ(p.head().headers[2].value, "");
    EXPECT_EQ(p.head().headers[3].name, "User-Agent");
  }
}

TEST(RequestHeadParser, RejectsSmugglingVectors) {
  using namespace std::string_literals;
  for (const std::string& bad : {"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n"s,  // obs-fold
                                 "GET / HTTP/1.1\r\nHost : a\r\n\r\n"s,             // space before colon
                                 "GET / HTTP/1.1\r\nHo\0st: a\r\n\r\n"s,            // NUL
                                 "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n"s,        // bare CR
                                 "GET\x01 / HTTP/1.1\r\n\r\n"s}) {
    RequestHeadParser p;
    size_t consumed;
    EXPECT_EQ(p.feed(bad, consumed), RequestHeadParser::Status::error) << bad;
    EXPECT_TRUE(p.error_name() == "malformed_request" || p.error_name() == "space_before_colon" ||
                p.error_name() == "obs_fold")
        << bad;
    EXPECT_FALSE(p.error().empty());
  }
}

TEST(RequestHeadParser, NamesTheSpaceBeforeTheColon) {
  RequestHeadParser p;
  size_t consumed;
  EXPECT_EQ(p.feed("GET / HTTP/1.1\r\nHost : a\r\n\r\n", consumed), RequestHeadParser::Status::error);
  EXPECT_EQ(p.error_name(), "space_before_colon");
  EXPECT_EQ(p.error(), "whitespace between header name 'Host' and the colon");
}

TEST(RequestHeadParser, OversizedHeadIsAnError) {
  RequestHeadParser p;
  size_t consumed;
  std::string head = "GET / HTTP/1.1\r\nX: " + std::string(70 * 1024, 'a');
  EXPECT_EQ(p.feed(head, consumed), RequestHeadParser::Status::error);
  EXPECT_EQ(p.error_name(), "header_too_large");
}
