#pragma once
#include "core/bytes.hpp"

namespace sluice::core {

// True when `s` is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF).
bool is_valid_utf8(ByteView s);

}  // namespace sluice::core
