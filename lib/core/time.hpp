#pragma once
// Wall-clock timestamps as carried by records: nanoseconds since the Unix epoch, UTC.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::core {

struct Timestamp {
  int64_t ns = 0;  // since 1970-01-01T00:00:00Z
  auto operator<=>(const Timestamp&) const = default;
};

Timestamp now_wall();
// RFC 3339 in UTC with microseconds: "2026-11-21T07:54:49.123456Z".
std::string format_rfc3339(Timestamp t);
// Accepts RFC 3339 with any fraction (up to ns) and 'Z' or a numeric offset.
std::optional<Timestamp> parse_rfc3339(std::string_view s);

}  // namespace sluice::core
