#pragma once
// Multi-line views of one record for `sluice show --detail N`.
//   1: envelope heading, start line and headers (and trailers)
//   2: + bodies and payloads (first 64 KiB, escaped where not printable)
//   3: + overlay envelopes and a hex dump of the raw bytes, header and end records
// Error records show at every level.
#include <string>

#include "envelope/record.hpp"

namespace sluice::view {

// Returns the text for `record` at `level`, ending in a newline; empty when the level hides it.
std::string detail(const envelope::Record& record, int level);

}  // namespace sluice::view
