#pragma once
#include <cstdint>

#include "core/bytes.hpp"

namespace sluice::core {

// CRC-32C (Castagnoli), as used by the binary stream encoding's record frames.
uint32_t crc32c(ByteView data, uint32_t crc = 0);
// The portable table-driven version (what crc32c() uses without SSE4.2); exposed for tests.
uint32_t crc32c_sw(ByteView data, uint32_t crc = 0);

}  // namespace sluice::core
