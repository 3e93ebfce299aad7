// Content codings undone with the real libraries: what zlib, Brotli and zstd encoders made (the
// encoded bytes are fixtures made by Python's gzip, zlib, brotli and zstandard modules).
#include "codec/content.hpp"

#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

namespace sluice::codec {
namespace {

std::string zlib_compress(const std::string& in, int window_bits) {
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY);
  std::string out(compressBound(in.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = in.size();
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = out.size();
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string zstd_compress(const std::string& in) {
  std::string out(ZSTD_compressBound(in.size()), '\0');
  out.resize(ZSTD_compress(out.data(), out.size(), in.data(), in.size(), 3));
  return out;
}

// "hello brotli" compressed by Python's brotli.compress.
const std::string kBrotli("\x8b\x05\x80\x68\x65\x6c\x6c\x6f\x20\x62\x72\x6f\x74\x6c\x69\x03", 16);

TEST(ContentCoding, EachCodingAndAListOfThem) {
  const std::string text = "hello content codings";
  EXPECT_EQ(decode_content(zlib_compress(text, 31), "gzip", 1 << 20), text);
  EXPECT_EQ(decode_content(zlib_compress(text, 31), "X-GZIP", 1 << 20), text);
  EXPECT_EQ(decode_content(zlib_compress(text, 15), "deflate", 1 << 20), text);
  EXPECT_EQ(decode_content(zlib_compress(text, -15), "deflate", 1 << 20), text);  // raw, as some servers send
  EXPECT_EQ(decode_content(zstd_compress(text), "zstd", 1 << 20), text);
  EXPECT_EQ(decode_content(kBrotli, "br", 1 << 20), "hello brotli");
  EXPECT_EQ(decode_content(text, "identity", 1 << 20), text);
  EXPECT_EQ(decode_content(text, "", 1 << 20), text);
  // Applied in order, undone last first: gzip, then zstd on top.
  EXPECT_EQ(decode_content(zstd_compress(zlib_compress(text, 31)), "gzip, zstd", 1 << 20), text);
  // Two gzip members one after the other read as one body, as gunzip reads them.
  EXPECT_EQ(decode_content(zlib_compress("ab", 31) + zlib_compress("cd", 31), "gzip", 1 << 20), "abcd");
}

TEST(ContentCoding, WhatDoesNotDecodeIsNothing) {
  const std::string text(100000, 'x');
  std::string gz = zlib_compress(text, 31);
  EXPECT_FALSE(decode_content(gz.substr(0, gz.size() / 2), "gzip", 1 << 20));  // cut short
  EXPECT_FALSE(decode_content("not gzip", "gzip", 1 << 20));
  EXPECT_FALSE(decode_content(kBrotli.substr(0, 8), "br", 1 << 20));
  std::string zs = zstd_compress(text);
  EXPECT_FALSE(decode_content(zs.substr(0, zs.size() - 3), "zstd", 1 << 20));
  EXPECT_FALSE(decode_content(text, "compress", 1 << 20));  // a coding it does not know
  // A bomb: 100,000 bytes from a few hundred, past a limit of 1,000.
  EXPECT_FALSE(decode_content(gz, "gzip", 1000));
  EXPECT_FALSE(decode_content(zs, "zstd", 1000));
  EXPECT_EQ(decode_content(gz, "gzip", 100000)->size(), 100000u);
}

}  // namespace
}  // namespace sluice::codec
