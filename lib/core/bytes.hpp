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

// Lower-case hex of `v`: "\x01\xab" -> "01ab".
inline std::string hex_encode(ByteView v) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(v.size() * 2);
  for (char c : v) {
    auto b = static_cast<unsigned char>(c);
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

}  // namespace sluice::core
