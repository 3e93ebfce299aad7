#include "layer/gzip.hpp"

#include <gtest/gtest.h>

using sluice::layer::gunzip;

TEST(Gunzip, InflatesAMemberAndRefusesTheRest) {
  // python3: gzip.compress(b"hello hello hello", mtime=0)
  const std::string gz("\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\xcb\x48\xcd\xc9\xc9\x57\xc8\x40\x90\x00\x80\x88\xf9\xe5\x11\x00\x00\x00", 28);
  EXPECT_EQ(gunzip(gz, 1024), "hello hello hello");
  EXPECT_FALSE(gunzip(gz, 5));                       // over the limit
  EXPECT_FALSE(gunzip(gz.substr(0, 12), 1024));      // cut short
  EXPECT_FALSE(gunzip("plain text, not gzip", 1024));
  std::string corrupt = gz;
  corrupt[12] = static_cast<char>(corrupt[12] ^ 0x55);
  auto r = gunzip(corrupt, 1024);
  EXPECT_TRUE(!r || *r != "hello hello hello");
}
