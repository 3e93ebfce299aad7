#pragma once
// RFC 4648 base64 (standard alphabet, padded).
#include <optional>

#include "core/bytes.hpp"

namespace sluice::core {

// Appends the base64 text of `in` to `out`.
void base64_encode(ByteView in, std::string& out);
std::string base64_encode(ByteView in);
// Decodes padded or unpadded base64; nullopt on any character outside the alphabet or a bad length.
std::optional<Bytes> base64_decode(std::string_view in);

}  // namespace sluice::core
