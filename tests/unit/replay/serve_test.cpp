#include "replay/serve.hpp"

#include <gtest/gtest.h>

namespace sluice::replay {
namespace {

envelope::Envelope request(std::string flow, std::string method, std::string path, std::string server,
                           std::string body = "", envelope::Headers extra = {}) {
  envelope::Envelope e;
  e.flow_id = std::move(flow);
  e.protocol = envelope::Protocol::http;
  e.context.server = std::move(server);
  envelope::HttpMessage m;
  m.method = std::move(method);
  m.scheme = "http";
  m.authority = "proxy.local:8080";
  m.path = std::move(path);
  m.headers = std::move(extra);
  m.body = std::move(body);
  e.message = m;
  return e;
}

envelope::Envelope response(std::string flow, std::string raw, int status = 200) {
  envelope::Envelope e;
  e.flow_id = std::move(flow);
  e.protocol = envelope::Protocol::http;
  e.direction = envelope::Direction::receive;
  e.raw = std::move(raw);
  envelope::HttpMessage m;
  m.kind = envelope::HttpMessage::Kind::response;
  m.status = status;
  e.message = m;
  return e;
}

TEST(HttpDate, TheThreeFormatsAndCookieDates) {
  const int64_t t = 784111777;  // Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110's example)
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), t);
  EXPECT_EQ(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), t);
  EXPECT_EQ(parse_http_date("Sun Nov  6 08:49:37 1994"), t);
  EXPECT_EQ(parse_http_date("Sun, 06-Nov-1994 08:49:37 GMT"), t);
  EXPECT_EQ(format_http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
  EXPECT_FALSE(parse_http_date("0"));
  EXPECT_FALSE(parse_http_date("-1"));
  EXPECT_FALSE(parse_http_date("Sun, 06 Nov 1994 25:49:37 GMT"));
  EXPECT_FALSE(parse_http_date("tomorrow"));
}

TEST(ShiftDates, MovesOnlyTheDatesAndKeepsEveryOtherByte) {
  std::string raw =
      "HTTP/1.1 200 OK\r\nDate:  Sun, 06 Nov 1994 08:49:37 GMT\r\nX-Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
      "expires: 0\r\nLast-Modified: Sat, 05 Nov 1994 08:49:37 GMT\r\n"
      "Set-Cookie: a=1; expires=Sun, 06-Nov-1994 09:49:37 GMT; Path=/\r\nContent-Length: 2\r\n\r\nok";
  EXPECT_EQ(shift_dates(raw, 86400),
            "HTTP/1.1 200 OK\r\nDate:  Mon, 07 Nov 1994 08:49:37 GMT\r\nX-Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
            "expires: 0\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
            "Set-Cookie: a=1; expires=Mon, 07 Nov 1994 09:49:37 GMT; Path=/\r\nContent-Length: 2\r\n\r\nok");
  EXPECT_EQ(shift_dates("not http", 5), "not http");
}

TEST(MatchKey, WhereTheRequestWentNotTheHostItNamed) {
  MatchOptions o;
  auto a = request("1", "GET", "/p?x=1&ts=5", "api.test:80");
  auto b = request("2", "GET", "http://api.test/p?x=1&ts=6", "api.test:80");
  b.context.server.clear();  // no context: the absolute URL says
  EXPECT_NE(match_key(a, o), match_key(b, o));
  o.ignore_params = {"ts"};
  EXPECT_EQ(match_key(a, o), match_key(b, o));
  auto other_port = request("3", "GET", "/p?x=1&ts=5", "api.test:81");
  EXPECT_NE(match_key(a, o), match_key(other_port, o));
  ASSERT_TRUE(parse_match_parts("method,path,query", o));
  EXPECT_EQ(match_key(a, o), match_key(other_port, o));
  EXPECT_FALSE(parse_match_parts("method,colour", o));
}

TEST(MatchKey, FormFieldsAndHeaders) {
  MatchOptions o;
  envelope::Headers form{{"Content-Type", "application/x-www-form-urlencoded"}};
  auto a = request("1", "POST", "/f", "h:80", "item=cup&csrf=1", form);
  auto b = request("2", "POST", "/f", "h:80", "item=cup&csrf=2", form);
  EXPECT_NE(match_key(a, o), match_key(b, o));
  o.ignore_form_fields = {"csrf"};
  EXPECT_EQ(match_key(a, o), match_key(b, o));
  auto json = request("3", "POST", "/f", "h:80", "item=cup&csrf=1", {{"Content-Type", "application/json"}});
  auto json2 = request("4", "POST", "/f", "h:80", "item=cup&csrf=2", {{"Content-Type", "application/json"}});
  EXPECT_NE(match_key(json, o), match_key(json2, o));  // not a form: the body as is
  o.headers = {"accept"};
  auto h1 = request("5", "GET", "/", "h:80", "", {{"ACCEPT", "a"}});
  auto h2 = request("6", "GET", "/", "h:80", "", {{"Accept", "b"}});
  EXPECT_NE(match_key(h1, o), match_key(h2, o));
}

TEST(ServeFrom, InRecordedOrderThenMissOrTheLastWithReuse) {
  for (bool reuse : {false, true}) {
    ServeOptions o;
    o.reuse = reuse;
    ServeFrom s(o);
    for (std::string n : {"1", "2"}) {
      s.add(envelope::Record{request("f" + n, "GET", "/poll", "h:80")});
      s.add(envelope::Record{response("f" + n, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n" + n)});
    }
    auto cut = response("f3", "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n");
    std::get<envelope::HttpMessage>(cut.message).body_omitted = 9;
    s.add(envelope::Record{request("f3", "GET", "/big", "h:80")});
    s.add(envelope::Record{cut});
    s.finish_loading();
    EXPECT_EQ(s.responses(), 2u);
    EXPECT_EQ(s.unusable(), 1u);
    std::vector<std::string> got;
    for (int i = 0; i < 3; ++i) {
      auto req = request("new", "GET", "/poll", "h:80");
      pipeline::Reply reply;
      auto outcome = s.process(req, reply, {});
      ASSERT_EQ(outcome, pipeline::Outcome::respond);
      got.push_back(reply->raw.starts_with("HTTP/1.1 502") ? "miss" : reply->raw.substr(reply->raw.size() - 1));
    }
    EXPECT_EQ(got, reuse ? (std::vector<std::string>{"2", "2", "2"}) : (std::vector<std::string>{"1", "2", "miss"}));
  }
}

TEST(ServeFrom, MissAnswersAsConfigured) {
  for (auto [miss, outcome, status] : {std::tuple{OnMiss::forward, pipeline::Outcome::next, ""},
                                       std::tuple{OnMiss::kill, pipeline::Outcome::kill, ""},
                                       std::tuple{OnMiss::not_found, pipeline::Outcome::respond, "HTTP/1.1 404"},
                                       std::tuple{OnMiss::bad_gateway, pipeline::Outcome::respond, "HTTP/1.1 502"}}) {
    ServeOptions o;
    o.on_miss = miss;
    ServeFrom s(o);
    s.finish_loading();
    auto req = request("n", "GET", "/x", "h:80");
    pipeline::Reply reply;
    EXPECT_EQ(s.process(req, reply, {}), outcome);
    if (*status) {
      ASSERT_TRUE(reply);
      EXPECT_TRUE(reply->raw.starts_with(status));
      EXPECT_NE(reply->raw.find("no recorded response matches GET http://proxy.local:8080/x"), std::string::npos);
    }
  }
  ASSERT_TRUE(parse_on_miss("404"));
  EXPECT_FALSE(parse_on_miss("418"));
}

}  // namespace
}  // namespace sluice::replay
