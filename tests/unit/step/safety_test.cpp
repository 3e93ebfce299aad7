// The safety filter's judge: the corpus of destructive payloads (tests/fixtures/safety_corpus.json,
// shared with test_safety.py) refused in each encoding, its harmless look-alikes passed, and the
// policies and their errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/base64.hpp"
#include "core/json.hpp"
#include "step/safety.hpp"

using namespace sluice;
using namespace sluice::step;

namespace {

std::vector<std::string> corpus(const char* part) {
  std::ifstream in(std::string(SLUICE_SOURCE_DIR) + "/tests/fixtures/safety_corpus.json");
  std::stringstream ss;
  ss << in.rdbuf();
  auto doc = core::json_parse(ss.str());
  EXPECT_TRUE(doc);
  std::vector<std::string> out;
  for (const auto& v : doc->find(part)->as_array()) out.push_back(v.as_string());
  return out;
}

std::string url_encoded(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c)) {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

std::string json_encoded(const std::string& s) {
  std::string out = "{\"q\": \"";
  for (char c : s) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
    out += c == ' ' || c == '\'' || c == '/' ? std::string(buf) : std::string(1, c);
  }
  return out + "\"}";
}

}  // namespace

TEST(Safety, TheCorpusIsRefusedInEveryEncodingAndItsLookAlikesPass) {
  auto policy = *safety_policy("default");
  auto destructive = corpus("destructive"), harmless = corpus("harmless");
  ASSERT_GE(destructive.size(), 40u);
  ASSERT_GE(harmless.size(), 40u);
  for (const auto& p : destructive) {
    struct Form {
      std::string text, encoding;
    } forms[] = {{"x " + p, ""},
                 {p, ""},
                 {"q=" + url_encoded(p), "url-encoded"},
                 {json_encoded(p), "JSON-encoded"},
                 {"{\"b\": \"" + core::base64_encode(p + "  ") + "\"}", "base64"},
                 {core::base64_encode(url_encoded(p) + "  "), "base64, url-encoded"}};
    for (const auto& f : forms) {
      auto hit = safety_judge_text(policy, f.text, "the body");
      ASSERT_TRUE(hit) << p << " as " << f.text;
    }
  }
  for (const auto& p : harmless)
    for (const auto& text : {p, "q=" + url_encoded(p), json_encoded(p), core::base64_encode(p + "  ")}) {
      auto hit = safety_judge_text(policy, text, "the body");
      EXPECT_FALSE(hit) << p << ": " << hit->describe();
    }
}

TEST(Safety, WhatEachPresetHoldsAndPolicyFiles) {
  auto sql = *safety_policy("destructive-sql");
  EXPECT_TRUE(safety_judge_text(sql, "DROP TABLE t", "the URL"));
  EXPECT_FALSE(safety_judge_text(sql, "rm -rf /", "the URL"));
  auto os = *safety_policy("destructive-os-command");
  EXPECT_TRUE(safety_judge_text(os, "rm -rf /", "the URL"));
  EXPECT_FALSE(safety_judge_text(os, "DROP TABLE t", "the URL"));
  auto hit = safety_judge_text(sql, "q=DROP%20TABLE%20users", "the URL");
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->describe(), "rule sql_drop matched in the URL (url-encoded): drop table");
  hit = safety_judge_text(sql, core::base64_encode("q=DROP%20TABLE%20users"), "header X-Q");
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->describe(), "rule sql_drop matched in header X-Q (base64, url-encoded): drop table");
  hit = safety_judge_text(sql, R"({"q": "drop\u0020table x"})", "the body");
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->encoding, "JSON-encoded");
  EXPECT_FALSE(safety_judge_text(sql, "DELETE FROM t WHERE id = 1; SELECT 1", "the body"));
  EXPECT_TRUE(safety_judge_text(sql, "DELETE FROM t WHERE id = 1; DELETE FROM t;", "the body"));
  EXPECT_FALSE(safety_policy("nosuch"));
  EXPECT_NE(safety_policy("nosuch").error().message.find("no preset named 'nosuch'"), std::string::npos);

  auto dir = std::filesystem::temp_directory_path() / ("safety_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto write = [&](const std::string& text) {
    std::ofstream(dir / "p.json") << text;
    return (dir / "p.json").string();
  };
  auto own = safety_policy(write(R"({"presets": ["destructive-sql"], "patterns": [{"name": "purge", "regex": "PURGE\\s+ALL"}]})"));
  ASSERT_TRUE(own) << own.error().message;
  EXPECT_EQ(safety_judge_text(*own, "please purge   all now", "the body")->rule, "purge");
  EXPECT_TRUE(safety_judge_text(*own, "drop table x", "the body"));
  struct Bad {
    const char *text, *error;
  } bads[] = {{"{}", "no rule"},
              {R"({"preset": []})", "unknown member 'preset'"},
              {R"({"presets": ["sql"]})", "presets[0]: no preset named 'sql'"},
              {R"({"patterns": [{"name": "x", "regex": "(a"}]})", "patterns[0].regex: "},
              {R"({"patterns": [{"regex": "a"}]})", "patterns[0]: {\"name\": STRING"},
              {"[", "not JSON"}};
  for (const auto& b : bads) {
    auto r = safety_policy(write(b.text));
    ASSERT_FALSE(r) << b.text;
    EXPECT_NE(r.error().message.find(b.error), std::string::npos) << r.error().message;
  }
  std::filesystem::remove_all(dir);
}
