// Redaction: each kind found and masked in place (same length), its look-alikes left alone, and the
// raw bytes of each kind of envelope made to say what the redacted view says, still well framed.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "codec/content.hpp"
#include "codec/http2.hpp"
#include "codec/ws.hpp"
#include "layer/http1_parser.hpp"
#include "layer/http1_wire.hpp"
#include "step/redact.hpp"

using namespace sluice;
using namespace sluice::step;

namespace {

RedactPolicy all() { return *redact_policy("default"); }

std::string redacted(const std::string& text, std::string* kinds = nullptr, const RedactPolicy& policy = all()) {
  std::string t = text;
  Found found;
  redact_text(policy, t, found);
  EXPECT_EQ(t.size(), text.size()) << text;
  if (kinds) *kinds = found.joined();
  return t;
}

envelope::Envelope http1(const std::string& raw, bool request) {
  envelope::Envelope e;
  e.stream_id = "c1";
  e.flow_id = "c1-0";
  e.protocol = envelope::Protocol::http;
  e.direction = request ? envelope::Direction::send : envelope::Direction::receive;
  e.raw = raw;
  auto whole = request ? layer::parse_whole_request(raw) : layer::parse_whole_response(raw, "GET");
  EXPECT_TRUE(whole) << (whole ? "" : whole.error().message);
  envelope::HttpMessage m;
  m.kind = request ? envelope::HttpMessage::Kind::request : envelope::HttpMessage::Kind::response;
  m.method = whole->head.method;
  m.path = whole->head.target;
  m.status = whole->head.status;
  m.reason = whole->head.reason;
  m.version = "HTTP/1.1";
  m.headers = whole->head.headers;
  m.body = whole->body;
  m.trailers = whole->trailers;
  e.message = m;
  return e;
}

}  // namespace

TEST(Redact, EachKindIsMaskedInPlace) {
  struct Case {
    const char *text, *secret, *kind;
  } cases[] = {
      {"card 4111 1111 1111 1111 ok", "4111 1111 1111 1111", "credit_card"},
      {"{\"pan\":\"5555555555554444\"}", "5555555555554444", "credit_card"},
      {"amex 3782-822463-10005.", "3782-822463-10005", "credit_card"},
      {"mail jane.doe+x@example.co.uk now", "jane.doe+x@example.co.uk", "email"},
      {"email=jane%40example.com&x=1", "jane%40example.com", "email"},
      {"call +14155550123 today", "14155550123", "phone"},
      {"call (415) 555-0134 today", "415) 555-0134", "phone"},
      {"tel 415-555-0199", "415-555-0199", "phone"},
      {"t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U&",
       "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "jwt"},
      {"auth: Bearer abcdef0123456789xyz", "abcdef0123456789xyz", "bearer"},
      {"key AKIAIOSFODNN7EXAMPLE.", "IOSFODNN7EXAMPLE", "api_key"},
      {"k=AIzaSyA1234567890abcdefghijklmnopqrstuv", "SyA1234567890abcdefghijklmnopqrstuv", "api_key"},
      {"ghp_0123456789abcdefghijklmnopqrstuvwxyz", "0123456789abcdefghijklmnopqrstuvwxyz", "api_key"},
      {"xoxb-123456789012-abcdefABCDEF", "123456789012-abcdefABCDEF", "api_key"},
      {"sk_live_4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqLyjWDarjtT1zdp7dc", "api_key"},
      {"{\"password\": \"hunter2\"}", "hunter2", "password"},
      {"user=a&password=s3cr%21t&b=2", "s3cr%21t", "password"},
      {"user%5Bpassword%5D=letmein", "letmein", "password"},
      {"db_password: correcthorse", "correcthorse", "password"},
      {"{\"client_secret\":\"abc\\\"def\"}", "abc\\\"def", "password"},
      {"-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAKC\n-----END RSA PRIVATE KEY-----", "MIIEow", "private_key"},
  };
  for (const auto& c : cases) {
    std::string kinds;
    std::string out = redacted(c.text, &kinds);
    EXPECT_EQ(out.find(c.secret), std::string::npos) << c.text << " -> " << out;
    EXPECT_NE(kinds.find(c.kind), std::string::npos) << c.text << " -> " << kinds;
  }
  // Only the secret goes: what frames it stays.
  EXPECT_EQ(redacted("{\"password\": \"hunter2\", \"user\": \"ann\"}"), "{\"password\": \"*******\", \"user\": \"ann\"}");
  EXPECT_EQ(redacted("x ghp_0123456789abcdefghijklmnopqrstuvwxyz y"), "x ghp_" + std::string(36, '*') + " y");
  EXPECT_EQ(redacted("-----BEGIN PRIVATE KEY-----\nAB\nCD\n-----END PRIVATE KEY-----"),
            "-----BEGIN PRIVATE KEY-----\n**\n**\n-----END PRIVATE KEY-----");
}

TEST(Redact, LookAlikesStay) {
  const char* harmless[] = {
      "order 4111111111111112 shipped",  // 16 digits, fails Luhn
      "ts 1733515200000 ms",             // 13 digits (a time), starts with 1
      "on 2026-12-06 at 10:30",          // a date
      "id 550e8400-e29b-41d4-a716-446655440000",
      "ssh git@localhost and @media and @scope/pkg",
      "version 1.2.3.4 and 10.0.0.1",
      "the bearer of good news",
      "{\"token_count\": 42, \"password_set\": true, \"secret\": null}",
      "AKIA too short, sk-short, ghp_short",
      "a passage about dropping tokens in prose",
  };
  for (const char* text : harmless) {
    std::string kinds;
    EXPECT_EQ(redacted(text, &kinds), text) << kinds;
  }
  // A NUL byte ends a token or an address (binary bodies): what follows it stays.
  EXPECT_EQ(redacted(std::string("Bearer abcdef0123456789xyz\0keep", 31)), std::string("Bearer *******************\0keep", 31));
  EXPECT_EQ(redacted(std::string("\0\0a@example.com", 15)), std::string("\0\0*@***********", 15));
  EXPECT_TRUE(luhn("4111111111111111"));
  EXPECT_FALSE(luhn("4111111111111112"));
}

TEST(Redact, PoliciesChooseKinds) {
  std::string kinds;
  auto pii = *redact_policy("pii");
  EXPECT_EQ(redacted("a@example.com Bearer abcdef0123456789xyz", &kinds, pii), "*@*********** Bearer abcdef0123456789xyz");
  auto some = *redact_policy("jwt,bearer");
  EXPECT_EQ(redacted("a@example.com", &kinds, some), "a@example.com");
  auto bad = redact_policy("nosuch");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("no preset or kind named 'nosuch'"), std::string::npos);

  auto dir = std::filesystem::temp_directory_path() / ("redact_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  };
  auto good = redact_policy(write("p.json", R"J({"kinds": ["email"], "patterns": [{"name": "employee", "regex": "EMP-([0-9]{6})"}],
      "headers": ["X-Internal"], "fields": ["ssn"]})J"));
  ASSERT_TRUE(good) << good.error().message;
  EXPECT_EQ(redacted("EMP-123456 ssn=123-45-6789 a@example.com", &kinds, *good), "EMP-****** ssn=*********** *@***********");
  EXPECT_EQ(kinds, "password,email,employee");
  struct Bad {
    const char *text, *error;
  } bads[] = {
      {"[1]", "a policy is a JSON object"},
      {"{\"kind\": []}", "unknown member 'kind'"},
      {"{\"kinds\": [\"emails\"]}", "kinds[0]: no preset or kind named 'emails'"},
      {"{\"patterns\": [{\"name\": \"x\", \"regex\": \"(a\"}]}", "patterns[0].regex: "},
      {"{\"patterns\": [{\"name\": \"x\"}]}", "patterns[0]: {\"name\": STRING"},
      {"{\"headers\": \"x\"}", "headers: an array is expected"},
      {"{", "not JSON"},
  };
  for (const auto& b : bads) {
    auto r = redact_policy(write("bad.json", b.text));
    ASSERT_FALSE(r) << b.text;
    EXPECT_NE(r.error().message.find(b.error), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("bad.json"), std::string::npos) << r.error().message;
  }
  EXPECT_FALSE(redact_policy((dir / "missing.json").string()));
  std::filesystem::remove_all(dir);
}

TEST(Redact, Http1BytesAreMaskedInTheirPlacesChunkedOrNot) {
  Redactor r(all());
  std::string body = "{\"user\":\"ann\",\"password\":\"hunter2\"}";
  std::string req =
      "POST /login?access_token=abcdef123456 HTTP/1.1\r\nHost: a\r\nAuthorization: Basic dXNlcjpwYXNz\r\n"
      "Cookie: sid=abc123; theme=dark\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  auto e = http1(req, true);
  ASSERT_TRUE(r.apply(e));
  EXPECT_EQ(e.raw.size(), req.size());
  for (const char* secret : {"abcdef123456", "dXNlcjpwYXNz", "abc123", "hunter2"})
    EXPECT_EQ(e.raw.find(secret), std::string::npos) << secret;
  EXPECT_NE(e.raw.find("Authorization: Basic ************\r\n"), std::string::npos) << e.raw;
  EXPECT_NE(e.raw.find("Cookie: sid=******; theme=****\r\n"), std::string::npos) << e.raw;
  const auto& m = std::get<envelope::HttpMessage>(e.message);
  EXPECT_EQ(layer::encode_http1(m), e.raw);  // the view and the bytes say the same
  ASSERT_EQ(e.tags.size(), 1u);
  EXPECT_EQ(e.tags[0].first, "redacted");
  EXPECT_EQ(e.tags[0].second, "authorization,cookie,password");

  std::string chunked =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8;x=y\r\nmail jan\r\n11\r\ne@example.com ok\n\r\n0\r\n\r\n";
  auto c = http1(chunked, false);
  ASSERT_TRUE(r.apply(c));
  EXPECT_EQ(std::get<envelope::HttpMessage>(c.message).body, "mail ****@*********** ok\n");
  auto again = layer::parse_whole_response(c.raw, "GET");
  ASSERT_TRUE(again) << c.raw;
  EXPECT_EQ(again->body, "mail ****@*********** ok\n");
  EXPECT_EQ(c.raw.size(), chunked.size());
  EXPECT_NE(c.raw.find("8;x=y\r\nmail ***\r\n11\r\n*@***"), std::string::npos) << c.raw;
}

TEST(Redact, CodedBodiesHttp2WebSocketAndGrpcAreMadeAgain) {
  Redactor r(all());
  // A gzip body: decoded, masked, coded again, Content-Length made right; its chunks' overlays lose bytes.
  std::string plain = "{\"email\":\"a.b@example.com\"}";
  auto gz = *codec::encode_content(plain, "gzip");
  auto e = http1("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: " + std::to_string(gz.size()) + "\r\n\r\n" + gz, false);
  ASSERT_TRUE(r.apply(e));
  auto parsed = layer::parse_whole_response(e.raw, "GET");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(*codec::decode_content(parsed->body, "gzip", 1 << 20), "{\"email\":\"***@***********\"}");
  envelope::Envelope piece = e;
  piece.overlay = "h1-chunk";
  piece.raw = "5\r\nabcde\r\n";
  ASSERT_TRUE(r.apply(piece));
  EXPECT_TRUE(piece.raw.empty());

  // HTTP/2: HPACK-coded frames are made again from the view.
  envelope::Envelope h2;
  h2.stream_id = "c1.0.3";
  h2.protocol = envelope::Protocol::http;
  envelope::HttpMessage m;
  m.method = "GET";
  m.scheme = "https";
  m.authority = "a";
  m.path = "/?token=abc123xyz";
  m.version = "HTTP/2";
  m.headers = {{"authorization", "Bearer abcdef0123456789xyz"}};
  codec::H2Encoder enc;
  h2.raw = enc.message(3, m);
  h2.message = m;
  ASSERT_TRUE(r.apply(h2));
  codec::H2Decoder dec;
  ASSERT_TRUE(dec.feed(h2.raw));
  ASSERT_NE(dec.find(3), nullptr);
  auto view = codec::H2Decoder::view(*dec.find(3));
  EXPECT_EQ(view.path, "/?token=*********");
  EXPECT_EQ(layer::header_value(view.headers, "authorization"), "Bearer *******************");

  // A masked WebSocket frame keeps its key and length.
  envelope::Envelope ws;
  ws.protocol = envelope::Protocol::ws;
  envelope::WsMessage w;
  w.payload = "{\"password\":\"hunter2\"}";
  w.masked = true;
  ws.raw = codec::ws_frame(1, true, false, w.payload, 0x01020304u);
  ws.message = w;
  std::string before = ws.raw;
  ASSERT_TRUE(r.apply(ws));
  EXPECT_EQ(ws.raw.substr(0, 6), before.substr(0, 6));
  EXPECT_EQ(ws.raw, codec::ws_frame(1, true, false, "{\"password\":\"*******\"}", 0x01020304u));

  // A gRPC message: the prefix stays, the payload (protobuf lengths too) keeps its size.
  envelope::Envelope g;
  g.protocol = envelope::Protocol::grpc;
  envelope::GrpcDataMessage d;
  d.payload = std::string("\x0a\x0d", 2) + "x@example.com";
  g.raw = std::string("\0\0\0\0\x0f", 5) + d.payload;
  g.message = d;
  ASSERT_TRUE(r.apply(g));
  EXPECT_EQ(g.raw, std::string("\0\0\0\0\x0f\x0a\x0d", 7) + "*@***********");
}
