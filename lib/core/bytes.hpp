#pragma once
// Byte containers. `Bytes` holds arbitrary octets (not necessarily UTF-8); std::string is used for its
// small-buffer optimisation and because every I/O API we call takes char buffers.
#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace sluice::core {

using Bytes = std::string;
using ByteView = std::string_view;  // borrowed; valid only as long as the owner says

inline ByteView as_view(std::span<const std::byte> s) {
  return {reinterpret_cast<const char*>(s.data()), s.size()};
}
inline std::span<const std::byte> as_span(ByteView v) {
  return {reinterpret_cast<const std::byte*>(v.data()), v.size()};
}

}  // namespace sluice::core
