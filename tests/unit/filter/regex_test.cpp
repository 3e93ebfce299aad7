// The linear-time regex: a table of patterns and inputs (expectations as Python's re.search with
// IGNORECASE|DOTALL gives them), errors with offsets, and hostile patterns that stay linear.
#include <gtest/gtest.h>

#include "filter/regex.hpp"

using sluice::filter::Regex;

TEST(Regex, MatchesLikePythonSearch) {
  struct Case {
    const char* pattern;
    const char* text;
    bool match;
  } cases[] = {
      {"abc", "xxabcxx", true},          {"abc", "ABC", true},           {"a.c", "a\nc", true},
      {"^abc", "xabc", false},           {"^abc", "abcx", true},         {"abc$", "xabc", true},
      {"abc$", "abcx", false},           {"a|b|c", "zzc", true},         {"(ab)+$", "xabab", true},
      {"colou?r", "color", true},        {"colou?r", "colour", true},    {"go{2,3}gle", "gogle", false},
      {"go{2,3}gle", "google", true},    {"go{2,3}gle", "gooogle", true}, {"go{2,3}gle", "goooogle", false},
      {"x{2,}", "axxb", true},           {"x{2}", "axb", false},         {"[a-c]+z", "bbz", true},
      {"[^a-c]z", "az", false},          {"[^a-c]z", "dz", true},        {"\\d{3}-\\d{4}", "call 555-1234", true},
      {"\\w+@\\w+\\.com", "mail ada@example.com now", true},          {"\\s", "nospace", false},
      {"\\.json$", "a/b.json", true},    {"\\.json$", "a/bjson", false}, {"[.]", "a.b", true},
      {"a[-x]b", "a-b", true},           {"(?:ab|cd)e", "cde", true},    {"\\x41", "a", true},
      {"", "anything", true},            {"a*", "", true},               {"^$", "", true},
      {"^$", "x", false},                {"a{0}b", "b", true},           {"(a|ab)(c|bcd)(d*)", "abcd", true},
      {"[A-Z]", "q", true},  // case-insensitive
      {"api\\.example\\.com", "https://api.example.com/users", true}, {"5\\d\\d", "status 503", true},
      // plain strings, anchored or not, take the path without the VM
      {"^api3\\.example\\.com$", "API3.example.com", true}, {"^api3\\.example\\.com$", "xapi3.example.com", false},
      {"^api3\\.example\\.com$", "api3.example.com:443", false}, {"^api3\\.example\\.com$", "api3xexample.com", false},
      {"^api3", "api30.example.com", true}, {"^ab", "a", false},   {"com$", "x.COM", true},    {"ab$", "b", false},
      {"a\\$", "a$b", true},            {"^a\\$$", "a$", true},       {"^a\\$$", "a$x", false}, {"^", "", true},
      {"$", "x", true},                  {"^a\\-b$", "A-B", true},     {"^a\\tb$", "a\tb", true},
  };
  for (const auto& c : cases) {
    auto re = Regex::compile(c.pattern);
    ASSERT_TRUE(re) << c.pattern << ": " << re.error().message;
    EXPECT_EQ(re->search(c.text), c.match) << "/" << c.pattern << "/ on '" << c.text << "'";
  }
  auto exact = Regex::compile("ABC", false);
  EXPECT_FALSE(exact->search("abc"));
  EXPECT_TRUE(exact->search("xABC"));
}

TEST(Regex, ErrorsSayWhereWithOffsets) {
  struct Case {
    const char* pattern;
    const char* error;
  } cases[] = {{"ab)", "unbalanced ')' at 2"},        {"(ab", "missing ')' at 0"},
               {"*a", "nothing to repeat at 0"},      {"[abc", "unterminated character class at 0"},
               {"a{3,2}", "bad repeat range at 1"},   {"a{5000}", "repeat count over 1000 at 1"},
               {"\\q", "unsupported escape \\q at 0"}, {"(?=a)", "unsupported group (?= at 0"},
               {"[z-a]", "bad class range at 3"}};
  for (const auto& c : cases) {
    auto re = Regex::compile(c.pattern);
    ASSERT_FALSE(re) << c.pattern;
    EXPECT_EQ(re.error().message, c.error) << c.pattern;
  }
  EXPECT_FALSE(Regex::compile("(((a{1000}){1000}){1000})"));  // too large, not a hang or a crash
  std::string deep(1000, '(');
  EXPECT_FALSE(Regex::compile(deep + "a" + std::string(1000, ')')));  // nesting bounded: no stack overflow
}

TEST(Regex, CatastrophicPatternsStayLinear) {
  std::string text(1 << 20, 'a');  // 1 MiB of 'a' with no 'b': exponential for a backtracking engine
  for (const char* p : {"(a+)+b", "(a|a)*b", "(a*)*b", "(a|aa)+$x", "(.*a){20}b"}) {
    auto re = Regex::compile(p);
    ASSERT_TRUE(re) << p;
    EXPECT_FALSE(re->search(text)) << p;
  }
  EXPECT_TRUE(Regex::compile("(a+)+$")->search(text));
}

TEST(Regex, MultilineAnchorsAtEachLineAndDotStaysInOne) {
  const std::string headers = "Host: api.test\r\nX-Multi: one\r\nX-Multi: two\r\n";
  auto re = [](std::string_view p) { return *Regex::compile(p, true, true); };
  EXPECT_TRUE(re("^x-multi: two").search(headers));
  EXPECT_TRUE(re("^X-Multi: one$").search(headers));  // $ before the line's CR LF
  EXPECT_TRUE(re("api\\.test$").search(headers));
  EXPECT_FALSE(re("^Multi").search(headers));
  EXPECT_FALSE(re("Host:.*X-Multi").search(headers));  // . does not cross LF
  EXPECT_TRUE(re("one\\r\\nX").search(headers));         // an explicit CR LF still does
  EXPECT_TRUE(re("^$").search("a\n\nb"));                // an empty line
  // Without multiline: anchors at the whole text only, . crosses lines.
  auto whole = [](std::string_view p) { return *Regex::compile(p, true, false); };
  EXPECT_FALSE(whole("^X-Multi").search(headers));
  EXPECT_TRUE(whole("Host:.*X-Multi").search(headers));
  EXPECT_TRUE(whole("^Host").search(headers));
}
