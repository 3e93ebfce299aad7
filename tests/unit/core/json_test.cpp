#include "core/json.hpp"

#include <gtest/gtest.h>

#include "core/base64.hpp"
#include "core/cbor.hpp"
#include "core/utf8.hpp"

using namespace sluice::core;

TEST(Json, RoundTripsEveryKind) {
  const char* text =
      R"({"a":null,"b":true,"c":-12,"d":18446744073709551615,"e":1.5,"f":"x\"\\\n\u0001é😀","g":[1,[2,{}]],"h":{}})";
  auto v = json_parse(text);
  ASSERT_TRUE(v) << v.error().message;
  EXPECT_EQ(v->find("d")->kind(), Value::Kind::uinteger);
  EXPECT_EQ(v->find("f")->as_string(), "x\"\\\n\x01\xC3\xA9\xF0\x9F\x98\x80");
  auto again = json_parse(json_write(*v));
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *v);
}

TEST(Json, RealStaysReal) {
  auto v = json_parse(json_write(Value(2.0)));
  ASSERT_TRUE(v);
  EXPECT_EQ(v->kind(), Value::Kind::real);
}

TEST(Json, SurrogatePairsAndErrors) {
  auto v = json_parse(R"("\ud83d\ude00")");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->as_string(), "\xF0\x9F\x98\x80");
  for (const char* bad : {R"("\ud83d")", "{\"a\":}", "[1,]", "01", "\"abc", "{\"a\" 1}", "tru", "1 2", "\"\x01\"",
                          "\"\xFF\""}) {
    auto r = json_parse(bad);
    EXPECT_FALSE(r) << bad;
    if (!r) {
      EXPECT_NE(r.error().message.find("at byte"), std::string::npos);
    }
  }
}

TEST(Json, DeepNestingIsAnErrorNotACrash) {
  std::string deep(100000, '[');
  auto r = json_parse(deep);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("too deep"), std::string::npos);
}

TEST(Json, InvalidUtf8IsReplacedOnOutput) {
  std::string out = json_write(Value(std::string("a\xFF" "b")));
  EXPECT_EQ(out, "\"a\xEF\xBF\xBD" "b\"");
  EXPECT_TRUE(is_valid_utf8(out));
}

TEST(Cbor, RoundTripsEveryKind) {
  Value v(Value::Object{{"n", Value()},
                        {"i", Value(int64_t{-1000000})},
                        {"u", Value(uint64_t{18446744073709551615ULL})},
                        {"d", Value(0.1)},
                        {"s", Value("text")},
                        {"b", Value::bytes(std::string("\0\xFF", 2))},
                        {"a", Value(Value::Array{Value(true), Value(false)})}});
  std::string enc;
  cbor_write(v, enc);
  auto back = cbor_parse(enc);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, v);
}

TEST(Cbor, HostileInputIsAnError) {
  EXPECT_FALSE(cbor_parse(std::string("\x9B\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF", 9)));  // huge array
  EXPECT_FALSE(cbor_parse(std::string("\x5F", 1)));                                  // indefinite bytes
  EXPECT_FALSE(cbor_parse(std::string(200000, '\x81')));                             // deep nesting
  EXPECT_FALSE(cbor_parse(std::string("\x62\xFF\xFE", 3)));                          // bad UTF-8 text
  EXPECT_FALSE(cbor_parse(std::string("\xA1\x01\x01", 3)));                          // non-text key
}

TEST(Base64, RoundTripAllLengths) {
  std::string data;
  for (int i = 0; i < 300; ++i) {
    auto enc = base64_encode(data);
    auto dec = base64_decode(enc);
    ASSERT_TRUE(dec);
    EXPECT_EQ(*dec, data);
    data.push_back(static_cast<char>(i * 37));
  }
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_FALSE(base64_decode("Zm9v!"));
  EXPECT_FALSE(base64_decode("Z"));
}

TEST(Base64, MatchesTheBitByBitEncodingAtEveryLength) {
  // The encoder takes 12 bytes per step where the CPU allows, then 3 at a time: every byte value in
  // every position, every length from 0 to 100.
  auto reference = [](std::string_view in) {
    static const char* abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    uint32_t acc = 0;
    int bits = 0;
    for (unsigned char c : in) {
      acc = acc << 8 | c;
      bits += 8;
      while (bits >= 6) out.push_back(abc[(acc >> (bits -= 6)) & 63]);
    }
    if (bits) out.push_back(abc[(acc << (6 - bits)) & 63]);
    while (out.size() % 4) out.push_back('=');
    return out;
  };
  std::string data;
  for (int i = 0; i < 256 * 3; ++i) data.push_back(static_cast<char>((i * 101 + i / 256) & 0xFF));
  for (size_t len = 0; len <= 100; ++len)
    for (size_t at = 0; at + len <= data.size(); at += 61) {
      std::string_view s = std::string_view(data).substr(at, len);
      ASSERT_EQ(base64_encode(s), reference(s)) << "length " << len << " at " << at;
    }
  EXPECT_EQ(base64_encode(data), reference(data));
}

TEST(Utf8, EveryOffsetPastTheFastPath) {
  for (size_t at = 0; at < 80; ++at) {
    std::string ok(90, 'a'), bad(90, 'a');
    ok.insert(at, "\xE2\x82\xAC");
    bad.insert(at, "\xC0\xAF");
    EXPECT_TRUE(is_valid_utf8(ok)) << at;
    EXPECT_FALSE(is_valid_utf8(bad)) << at;
  }
}

TEST(Utf8, RejectsOverlongsAndSurrogates) {
  EXPECT_TRUE(is_valid_utf8("plain ascii text, long enough for the fast path"));
  EXPECT_TRUE(is_valid_utf8("\xE2\x82\xAC"));
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));
  EXPECT_FALSE(is_valid_utf8("\xE2\x82"));
}

TEST(Json, EscapesEverySpecialByteAtEveryOffset) {
  // The writer skips 16, then 8 plain bytes at a time: a special byte must be seen wherever it falls.
  auto reference = [](std::string_view s) {
    std::string out = "\"";
    for (unsigned char c : s) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
          if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
          } else {
            out.push_back(static_cast<char>(c));
          }
      }
    }
    return out + "\"";
  };
  for (std::string special : std::vector<std::string>{"\"", "\\", "\n", std::string(1, '\0'), "\x1f", "\x7f",
                                                       "\xC3\xA9", "\xE2\x82\xAC"}) {
    for (size_t at = 0; at < 70; ++at) {
      std::string s(72, 'a');
      s.insert(at, special);
      std::string out;
      json_write_string(s, out);
      EXPECT_EQ(out, reference(s)) << "at " << at;
    }
  }
}
