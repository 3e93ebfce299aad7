#include "core/time.hpp"

#include <gtest/gtest.h>

#include "core/crc32c.hpp"

using namespace sluice::core;

TEST(Time, FormatsAndParsesRfc3339) {
  Timestamp t{1'763'711'689'123'456'000};
  EXPECT_EQ(format_rfc3339(t), "2025-11-21T07:54:49.123456Z");
  EXPECT_EQ(parse_rfc3339("2025-11-21T07:54:49.123456Z"), t);
  EXPECT_EQ(parse_rfc3339("2025-11-21T08:54:49.123456+01:00"), t);
  EXPECT_EQ(format_rfc3339(Timestamp{0}), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(format_rfc3339(Timestamp{-1'000}), "1969-12-31T23:59:59.999999Z");
  EXPECT_FALSE(parse_rfc3339("2025-11-21 junk"));
  EXPECT_FALSE(parse_rfc3339("2025-13-21T07:54:49Z"));
  EXPECT_FALSE(parse_rfc3339("2425-11-21T07:54:49Z"));  // beyond int64 nanoseconds: invalid, not UB
}

TEST(Crc32c, KnownVector) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  std::string long_input(1000, 'a');
  EXPECT_EQ(crc32c(long_input), crc32c(long_input.substr(500), crc32c(long_input.substr(0, 500))));
  for (size_t n = 0; n < 40; ++n) EXPECT_EQ(crc32c(long_input.substr(0, n)), crc32c_sw(long_input.substr(0, n)));
  EXPECT_EQ(crc32c_sw("123456789"), 0xE3069283u);
}
