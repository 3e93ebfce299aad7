// The pieces of mitmproxy's rules that must read as Python reads them: escape_decode (mitmproxy's
// escaped_str_to_bytes), re.sub templates and re.sub itself (expectations from CPython 3.11's re.sub
// with DOTALL), Regex::find's preferences and groups, and the content codings applied again.
#include <gtest/gtest.h>

#include "codec/content.hpp"
#include "filter/regex.hpp"
#include "layer/mode_spec.hpp"
#include "step/transform.hpp"

using sluice::filter::Regex;
using namespace sluice::step;

namespace {

std::string sub(const char* pattern, const char* repl, const std::string& text, size_t* count = nullptr) {
  auto re = Regex::compile(pattern, false);
  EXPECT_TRUE(re) << pattern;
  auto r = Replacement::parse(repl, re->groups());
  EXPECT_TRUE(r) << repl << ": " << (r ? "" : r.error().message);
  std::string out;
  size_t n = regex_sub(*re, *r, text, out);
  if (count) *count = n;
  return out;
}

}  // namespace

TEST(RegexSub, AsPythonsReSub) {
  struct Case {
    const char *pattern, *repl, *text, *want;
  } cases[] = {
      {R"((\d+)-(\d+))", R"(\2-\1)", "a 12-34 b 5-6", "a 34-12 b 6-5"},
      {"x*", "-", "abxd", "-a-b--d-"},
      {"a|ab", R"([\g<0>])", "abab", "[a]b[a]b"},
      {"a+?", R"(<\g<0>>)", "aaa", "<a><a><a>"},
      {"(a)|(b)", R"([\1\2])", "ab", "[a][b]"},
      {R"(\bfoo\b)", "X", "foo food afoo foo", "X food afoo X"},
      {"<.*>", "T", "<a>\n<b>", "T"},
      {"<.*?>", "T", "<a>\n<b>", "T\nT"},
      {"(a|ab)(c|bcd)(d*)", R"(\1,\2,\3)", "abcd", "a,bcd,"},
      {"", "-", "ab", "-a-b-"},
      {"(a*)+", R"(<\1>)", "b", "<>b<>"},
      {"hello", "bye", "hello world, hello", "bye world, bye"},
      {"Hello", "bye", "hello", "hello"},  // case-sensitive, as Python's re without IGNORECASE
  };
  for (const auto& c : cases) EXPECT_EQ(sub(c.pattern, c.repl, c.text), c.want) << c.pattern << " / " << c.repl;
  EXPECT_EQ(sub("x", R"(\n\101\\-\0)", "x"), std::string("\nA\\-\0", 5));
  size_t n = 0;
  sub("o", "0", "foo boo", &n);
  EXPECT_EQ(n, 4u);
}

TEST(RegexSub, TemplateErrorsAsPythonSaysThem) {
  EXPECT_EQ(Replacement::parse(R"(\2)", 1).error().message, "invalid group reference 2");
  EXPECT_EQ(Replacement::parse(R"(\q)", 0).error().message, "bad escape \\q");
  EXPECT_FALSE(Replacement::parse(R"(\g<x>)", 1));
  EXPECT_FALSE(Replacement::parse("\\", 0));
  EXPECT_TRUE(Replacement::parse(R"(\g<0>\-)", 0));
}

TEST(RegexFind, GroupsAndPreferences) {
  auto re = Regex::compile("(a+)(b)?", false);
  ASSERT_TRUE(re);
  EXPECT_EQ(re->groups(), 2u);
  auto m = re->find("xxaaab");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->begin(), 2u);
  EXPECT_EQ(m->end(), 6u);
  EXPECT_EQ(m->slots, (std::vector<int64_t>{2, 6, 2, 5, 5, 6}));
  auto none = re->find("xxaaab", 6);
  EXPECT_FALSE(none);
  auto unmatched = re->find("a");
  ASSERT_TRUE(unmatched);
  EXPECT_EQ(unmatched->slots[4], -1);  // group 2 took no part
  // A literal with groups in it is found as a string, its groups where the pattern puts them.
  auto lit = Regex::compile("o(r)i(gin)", false);
  EXPECT_EQ(lit->find("xx origin origin", 4)->slots, (std::vector<int64_t>{10, 16, 11, 12, 13, 16}));
  EXPECT_EQ(sub("o(r)igin", R"(<\1>)", "the origin, the origins"), "the <r>, the <r>s");
  // A plain string is found without the VM, case-sensitive or not.
  auto plain = Regex::compile("Token", false);
  EXPECT_FALSE(plain->find("a token"));
  EXPECT_EQ(Regex::compile("Token", true)->find("a token")->begin(), 2u);
}

TEST(EscapeDecode, AsPythonsEscapeDecode) {
  EXPECT_EQ(*escape_decode(R"(a\x41\101\n\q\\\'\")"), "aAA\n\\q\\'\"");
  EXPECT_EQ(*escape_decode(R"(text\x2fplain)"), "text/plain");
  EXPECT_EQ(*escape_decode(R"(\d+)"), R"(\d+)");  // unknown escapes stay: a regex keeps its meaning
  EXPECT_EQ(*escape_decode(R"(\\1)"), R"(\1)");
  EXPECT_EQ(*escape_decode(R"(\1)"), std::string("\1", 1));  // octal, as in mitmproxy
  EXPECT_FALSE(escape_decode(R"(\x4)"));
  EXPECT_FALSE(escape_decode("trailing\\"));
}

TEST(TransformStep, RefusesWhatMitmproxyRefusesInItsWords) {
  TransformOptions o;
  o.modify_headers = {"/X"};
  EXPECT_EQ(TransformStep::create(o).error().message,
            "Cannot parse modify_headers option /X: Invalid number of parameters (2 or 3 are expected)");
  o = {};
  o.block_list = {"/~q/999"};
  EXPECT_EQ(TransformStep::create(o).error().message, "Cannot parse block_list option /~q/999: Invalid HTTP status code: 999");
  o = {};
  o.modify_body = {"/(?=a)/b"};
  EXPECT_NE(TransformStep::create(o).error().message.find("Invalid regular expression (?=a)"), std::string::npos);
  o = {};
  o.modify_headers = {"/~q/X-A/1", ":~s:X-B:"};
  o.modify_body = {"/a/b"};
  o.block_list = {"/~u ads/404"};
  auto ok = TransformStep::create(o);
  ASSERT_TRUE(ok);
  EXPECT_EQ((*ok)->rules(), 4u);
}

TEST(ContentCoding, EncodedAgainDecodesToTheSame) {
  std::string body(5000, 'x');
  body += "hello world";
  for (const char* coding : {"gzip", "deflate", "br", "zstd", "gzip, br"}) {
    auto enc = sluice::codec::encode_content(body, coding);
    ASSERT_TRUE(enc) << coding;
    EXPECT_LT(enc->size(), body.size()) << coding;
    EXPECT_EQ(sluice::codec::decode_content(*enc, coding, 1 << 20), body) << coding;
  }
  EXPECT_FALSE(sluice::codec::encode_content(body, "compress"));
}

// map_remote's URL setter (mitmproxy's Request.url = ...) and where the layers then send the request.
TEST(MapRemote, SetUrlAsMitmproxysUrlSetter) {
  using sluice::envelope::HttpMessage;
  HttpMessage m;
  m.kind = HttpMessage::Kind::request;
  m.method = "GET";
  m.scheme = "http";
  m.authority = "a.test:8080";
  m.path = "http://a.test:8080/x?q=1";  // absolute form (a regular proxy's request)
  m.headers = {{"User-Agent", "t"}, {"host", "a.test:8080"}, {"Host", "again"}};
  ASSERT_TRUE(set_url(m, "https://B.test:443/y?q=2"));
  EXPECT_EQ(m.scheme, "https");
  EXPECT_EQ(m.authority, "b.test");  // the scheme's default port left out, the host in lower case
  EXPECT_EQ(m.path, "https://b.test/y?q=2");
  // The first Host field keeps its place and its name's case; the others go.
  EXPECT_EQ(m.headers, (sluice::envelope::Headers{{"User-Agent", "t"}, {"host", "b.test"}}));
  EXPECT_EQ(sluice::layer::named_destination(m.scheme, m.authority, m.path), "https://b.test:443");

  HttpMessage o;  // origin form (a tunnel, reverse mode, HTTP/2): the path stays a path
  o.kind = HttpMessage::Kind::request;
  o.scheme = "https";
  o.authority = "a.test";
  o.path = "/x";
  ASSERT_TRUE(set_url(o, "http://[::1]:9000/z"));
  EXPECT_EQ(o.path, "/z");
  EXPECT_EQ(o.authority, "[::1]:9000");
  EXPECT_TRUE(o.headers.empty());  // no Host field is added where there was none
  EXPECT_EQ(sluice::layer::named_destination(o.scheme, o.authority, o.path), "http://[::1]:9000");
  EXPECT_FALSE(set_url(o, "ftp://a.test/"));
  EXPECT_FALSE(set_url(o, "not a url"));
  EXPECT_EQ(o.path, "/z");

  TransformOptions opts;
  opts.map_remote = {"|a.test|b.test", "/~u x/(x)/\\1\\1"};
  auto step = TransformStep::create(opts);
  ASSERT_TRUE(step);
  EXPECT_EQ((*step)->rules(), 2u);
  // On a request: the URL rewritten, the bytes made from it, the variant named after the rule.
  sluice::envelope::Envelope env;
  env.protocol = sluice::envelope::Protocol::http;
  env.direction = sluice::envelope::Direction::send;
  HttpMessage r;
  r.kind = HttpMessage::Kind::request;
  r.method = "GET";
  r.scheme = "http";
  r.authority = "a.test";
  r.path = "http://a.test/xy";
  r.version = "HTTP/1.1";
  r.headers = {{"Host", "a.test"}};
  env.message = r;
  sluice::pipeline::Reply reply;
  EXPECT_EQ((*step)->process(env, reply, {}), sluice::pipeline::Outcome::next);
  const auto& after = std::get<HttpMessage>(env.message);
  EXPECT_EQ(after.path, "http://b.test/xxy");
  EXPECT_EQ(env.modified_by, "map_remote#1,map_remote#2");
  EXPECT_EQ(env.raw, "GET http://b.test/xxy HTTP/1.1\r\nHost: b.test\r\n\r\n");
  opts.map_remote = {"/(ab/x"};
  EXPECT_NE(TransformStep::create(opts).error().message.find("Cannot parse map_remote option /(ab/x: Invalid regular expression (ab"),
            std::string::npos);
}
