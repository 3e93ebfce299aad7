#include "layer/http1_parser.hpp"

#include <gtest/gtest.h>

using namespace sluice;
using namespace sluice::layer;
using namespace std::string_literals;

namespace {

struct Parsed {
  Http1Head head;
  std::string body;
  std::vector<std::string> chunks;
  envelope::Headers trailers;
  std::string wire;  // every byte consumed for this message
};

struct Outcome {
  std::vector<Parsed> messages;
  std::string error_name;
  std::string error;
  bool upgraded = false;
  std::string after_upgrade;  // bytes not consumed after an upgrade
};

// Feeds `input` in pieces of `step` bytes (0: all at once), the way a layer does.
Outcome parse(Http1Parser::Type type, const std::string& input, size_t step, std::vector<std::string> methods = {}) {
  Outcome out;
  Http1Parser p(type);
  std::string pending;
  Parsed cur;
  size_t method_index = 0;
  if (type == Http1Parser::Type::response && !methods.empty()) p.set_request_method(methods[0]);
  auto pump = [&](bool at_end) {
    while (true) {
      size_t consumed = 0;
      auto s = p.feed(pending, consumed);
      cur.wire += pending.substr(0, consumed);
      pending.erase(0, consumed);
      cur.body += p.take_body();
      for (auto& c : p.take_chunks()) cur.chunks.push_back(c);
      if (s == Http1Parser::Status::error) {
        out.error_name = p.error_name();
        out.error = p.error();
        return false;
      }
      if (s == Http1Parser::Status::upgrade) {
        out.upgraded = true;
        return false;
      }
      if (s == Http1Parser::Status::complete) {
        cur.head = p.head();
        cur.trailers = p.trailers();
        out.messages.push_back(cur);
        cur = Parsed{};
        if (type == Http1Parser::Type::response && ++method_index < methods.size())
          p.set_request_method(methods[method_index]);
        continue;
      }
      if (s == Http1Parser::Status::head) continue;
      if (at_end) {
        auto f = p.finish();
        cur.body += p.take_body();
        if (f == Http1Parser::Status::complete) {
          cur.head = p.head();
          out.messages.push_back(cur);
        } else if (f == Http1Parser::Status::error) {
          out.error_name = p.error_name();
        }
      }
      return true;
    }
  };
  if (step == 0) step = input.size() ? input.size() : 1;
  for (size_t i = 0; i < input.size(); i += step) {
    pending += input.substr(i, step);
    if (!pump(false)) {
      out.after_upgrade = pending + input.substr(std::min(input.size(), i + step));
      return out;
    }
  }
  pump(true);
  return out;
}

const std::string kChunked =
    "POST /upload?x=1 HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\nX-Case: KeEp\r\n\r\n"
    "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: done\r\n\r\n";
const std::string kGet = "GET /next HTTP/1.1\r\nHost: example.com\r\n\r\n";
const std::string kLength = "PUT /p HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789";

}  // namespace

TEST(Http1Parser, RequestsAtEverySplitPoint) {
  const std::string input = kChunked + kGet + kLength;
  for (size_t cut = 0; cut <= input.size(); ++cut) {
    // Pieces of `cut` bytes: every split position is a piece boundary for some cut.
    Outcome o = parse(Http1Parser::Type::request, input, cut == 0 ? input.size() : cut);
    ASSERT_EQ(o.error_name, "") << "cut " << cut;
    ASSERT_EQ(o.messages.size(), 3u) << "cut " << cut;
    const auto& m = o.messages[0];
    EXPECT_EQ(m.head.method, "POST");
    EXPECT_EQ(m.head.target, "/upload?x=1");
    EXPECT_TRUE(m.head.chunked);
    ASSERT_EQ(m.head.headers.size(), 3u) << "cut " << cut;
    EXPECT_EQ(m.head.headers[2].name, "X-Case");
    EXPECT_EQ(m.head.headers[2].value, "KeEp");
    EXPECT_EQ(m.body, "hello, world") << "cut " << cut;
    EXPECT_EQ(m.wire, kChunked) << "cut " << cut;
    ASSERT_EQ(m.chunks.size(), 3u) << "cut " << cut;
    EXPECT_EQ(m.chunks[0], "5\r\nhello\r\n");
    EXPECT_EQ(m.chunks[1], "7;ext=1\r\n, world\r\n");
    EXPECT_EQ(m.chunks[2], "0\r\nX-Trailer: done\r\n\r\n");
    ASSERT_EQ(m.trailers.size(), 1u);
    EXPECT_EQ(m.trailers[0].name, "X-Trailer");
    EXPECT_EQ(m.head.raw + m.chunks[0] + m.chunks[1] + m.chunks[2], kChunked);
    EXPECT_EQ(o.messages[1].wire, kGet) << "cut " << cut;
    EXPECT_EQ(o.messages[1].body, "");
    EXPECT_EQ(o.messages[2].wire, kLength) << "cut " << cut;
    EXPECT_EQ(o.messages[2].body, "0123456789");
    EXPECT_EQ(o.messages[2].head.content_length, 10u);
  }
  // One byte at a time.
  auto o = parse(Http1Parser::Type::request, input, 1);
  ASSERT_EQ(o.messages.size(), 3u);
  EXPECT_EQ(o.messages[0].body, "hello, world");
}

TEST(Http1Parser, ResponsesWithTheirFramingRules) {
  const std::string head_resp = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";  // to HEAD: no body
  const std::string no_content = "HTTP/1.1 204 No Content\r\n\r\n";
  const std::string not_modified = "HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n";
  const std::string cont = "HTTP/1.1 100 Continue\r\n\r\n";
  const std::string ok = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
  const std::string close_delimited = "HTTP/1.0 200 OK\r\nServer: old\r\n\r\nuntil the end";
  const std::string input = head_resp + no_content + not_modified + cont + ok + close_delimited;
  for (size_t step : {size_t{0}, size_t{1}, size_t{3}, size_t{17}}) {
    auto o = parse(Http1Parser::Type::response, input, step, {"HEAD", "GET", "GET", "POST", "POST", "GET"});
    ASSERT_EQ(o.error_name, "") << step << ": " << o.error << " after " << o.messages.size() << " messages";
    ASSERT_EQ(o.messages.size(), 6u) << step;
    EXPECT_EQ(o.messages[0].wire, head_resp);
    EXPECT_EQ(o.messages[0].head.status, 200);
    EXPECT_EQ(o.messages[1].head.status, 204);
    EXPECT_EQ(o.messages[2].wire, not_modified);
    EXPECT_EQ(o.messages[3].head.status, 100);
    EXPECT_EQ(o.messages[4].body, "abc");
    EXPECT_EQ(o.messages[4].head.reason, "OK");
    EXPECT_EQ(o.messages[5].body, "until the end");
    EXPECT_FALSE(o.messages[5].head.keep_alive);
  }
}

TEST(Http1Parser, ConnectAndUpgradeStopTheParser) {
  auto o = parse(Http1Parser::Type::request, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01", 0);
  ASSERT_EQ(o.messages.size(), 1u);
  EXPECT_TRUE(o.messages[0].head.upgrade);
  EXPECT_TRUE(o.upgraded);
  EXPECT_EQ(o.after_upgrade, "\x16\x03\x01");
  auto r = parse(Http1Parser::Type::response, "HTTP/1.1 200 Connection established\r\n\r\nTLS bytes", 0, {"CONNECT"});
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_TRUE(r.upgraded);
  EXPECT_EQ(r.after_upgrade, "TLS bytes");
}

TEST(Http1Parser, TruncatedBodyIsAnError) {
  auto o = parse(Http1Parser::Type::request, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n12345", 0);
  EXPECT_EQ(o.error_name, "truncated_message");
  EXPECT_TRUE(o.messages.empty());
}

// Smuggling and malformed messages: each is rejected with a named anomaly. The table is the contract
// the HTTP/1 layer builds on: nothing of a rejected message is ever forwarded.
TEST(Http1Parser, SmugglingTable) {
  struct Case {
    const char* what;
    std::string message;
    const char* anomaly;
  };
  const std::vector<Case> requests = {
      {"CL and TE", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "cl_te_conflict"},
      {"TE and CL", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", "cl_te_conflict"},
      {"differing CLs", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", "duplicate_content_length"},
      {"CL list", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 6\r\n\r\nhello!", "bad_content_length"},
      {"negative CL", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", "bad_content_length"},
      {"CL with plus", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello", "bad_content_length"},
      {"TE not final chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "bad_transfer_encoding"},
      {"unknown TE", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", "bad_transfer_encoding"},
      {"TE identity", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", "bad_transfer_encoding"},
      {"obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", "obs_fold"},
      {"obs-fold tab", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n\tb\r\n\r\n", "obs_fold"},
      {"space before colon", "GET / HTTP/1.1\r\nHost: h\r\nContent-Length : 5\r\n\r\n", "space_before_colon"},
      {"tab before colon", "GET / HTTP/1.1\r\nHost: h\r\nX\t: 1\r\n\r\n", "space_before_colon"},
      {"bare CR in header", "GET / HTTP/1.1\r\nHost: h\rX: 1\r\n\r\n", "bare_cr"},
      {"NUL in header value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n"s, "nul_in_header"},
      {"NUL in header name", "GET / HTTP/1.1\r\nHost: h\r\nX\0Y: 1\r\n\r\n"s, "nul_in_header"},
      {"bad chunk size", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhi\r\n0\r\n\r\n", "bad_chunked"},
      {"chunk without CRLF", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhiX0\r\n\r\n", "bad_chunked"},
      {"chunk size overflow", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF\r\n", "bad_chunked"},
      {"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "duplicate_host"},
      {"no Host in 1.1", "GET / HTTP/1.1\r\nX: 1\r\n\r\n", "missing_host"},
      {"bad method", "G(T / HTTP/1.1\r\nHost: h\r\n\r\n", "bad_method"},
      {"bad version", "GET / HTTP/1.7\r\nHost: h\r\n\r\n", "bad_version"},
      {"space in target", "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", "bad_version"},
      {"control char in target", "GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n", "bad_target"},
      {"invalid header name char", "GET / HTTP/1.1\r\nHost: h\r\nX(y): 1\r\n\r\n", "invalid_header"},
      {"LF only line ends", "GET / HTTP/1.1\nHost: h\n\n", "bare_lf"},
      // The request line is exactly METHOD SP TARGET SP VERSION, in a version HTTP/1 speaks: an origin
      // may read any other shape differently from us.
      {"two spaces after method", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", "bad_request_line"},
      {"two spaces before version", "GET /  HTTP/1.1\r\nHost: h\r\n\r\n", "bad_request_line"},
      {"tab separator", "GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", "bad_method"},
      {"space at the end", "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", "bad_version"},
      {"lower-case version", "GET / http/1.1\r\nHost: h\r\n\r\n", "bad_version"},
      {"HTTP/2.0 on an HTTP/1 connection", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", "bad_version"},
      {"HTTP/0.9", "GET / HTTP/0.9\r\nHost: h\r\n\r\n", "bad_version"},
  };
  for (const auto& c : requests) {
    for (size_t step : {size_t{0}, size_t{1}}) {
      auto o = parse(Http1Parser::Type::request, c.message, step);
      EXPECT_EQ(o.error_name, c.anomaly) << c.what << " (step " << step << ")";
      EXPECT_TRUE(o.messages.empty()) << c.what;
    }
  }
  const std::vector<Case> responses = {
      {"response CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "cl_te_conflict"},
      {"response differing CLs", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", "duplicate_content_length"},
      {"response obs-fold", "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n", "obs_fold"},
      {"response bad status", "HTTP/1.1 2x0 OK\r\n\r\n", "bad_status"},
  };
  for (const auto& c : responses) {
    auto o = parse(Http1Parser::Type::response, c.message, 0, {"GET"});
    EXPECT_EQ(o.error_name, c.anomaly) << c.what;
  }
  EXPECT_GE(requests.size() + responses.size(), 25u);
}

TEST(Http1Parser, OversizedHead) {
  auto o = parse(Http1Parser::Type::request, "GET / HTTP/1.1\r\nX: " + std::string(70000, 'a'), 4096);
  EXPECT_EQ(o.error_name, "header_too_large");
}

TEST(Http1Parser, WholeMessagesInMemory) {
  auto get = parse_whole_request("GET /a?b=1 HTTP/1.1\r\nHost: x.test\r\n\r\n");
  ASSERT_TRUE(get) << get.error().message;
  EXPECT_EQ(get->head.method, "GET");
  EXPECT_EQ(get->head.target, "/a?b=1");
  EXPECT_EQ(get->body, "");
  auto post = parse_whole_request("POST / HTTP/1.1\r\nHost: x.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n");
  ASSERT_TRUE(post) << post.error().message;
  EXPECT_EQ(post->body, "abc");
  ASSERT_EQ(post->trailers.size(), 1u);
  EXPECT_EQ(post->trailers[0].value, "1");
  EXPECT_FALSE(parse_whole_request("POST / HTTP/1.1\r\nHost: x.test\r\nContent-Length: 5\r\n\r\nab"));  // cut short
  EXPECT_FALSE(parse_whole_request("GET / HTTP/1.1\r\n"));                              // no end of head
  auto resp = parse_whole_response("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "GET");
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->body, "ok");
  EXPECT_FALSE(parse_whole_response("HTTP/1.1 100 Continue\r\n\r\n", "GET"));  // interim only
}
