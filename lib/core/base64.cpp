#include "core/base64.hpp"

#include <array>
#include <cstdint>
#include <cstring>

namespace sluice::core {
namespace {
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<int8_t, 256> make_reverse() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<int8_t>(i);
  return t;
}
constexpr auto kReverse = make_reverse();

// Two output characters per lookup: the 4096 12-bit values.
struct PairTable {
  char t[4096][2]{};
  constexpr PairTable() {
    for (int v = 0; v < 4096; ++v) {
      t[v][0] = kAlphabet[v >> 6];
      t[v][1] = kAlphabet[v & 63];
    }
  }
};
constexpr PairTable kPairs;
}  // namespace

void base64_encode(ByteView in, std::string& out) {
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  size_t n = in.size();
  size_t start = out.size();
  out.resize(start + (n + 2) / 3 * 4);
  char* o = out.data() + start;
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    std::memcpy(o, kPairs.t[v >> 12], 2);
    std::memcpy(o + 2, kPairs.t[v & 0xFFF], 2);
    o += 4;
  }
  if (i < n) {
    uint32_t v = uint32_t{p[i]} << 16;
    if (i + 1 < n) v |= uint32_t{p[i + 1]} << 8;
    *o++ = kAlphabet[v >> 18];
    *o++ = kAlphabet[(v >> 12) & 63];
    *o++ = (i + 1 < n) ? kAlphabet[(v >> 6) & 63] : '=';
    *o++ = '=';
  }
}

std::string base64_encode(ByteView in) {
  std::string out;
  base64_encode(in, out);
  return out;
}

std::optional<Bytes> base64_decode(std::string_view in) {
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  if (in.size() % 4 == 1) return std::nullopt;
  Bytes out;
  out.resize(in.size() / 4 * 3 + (in.size() % 4 ? in.size() % 4 - 1 : 0));
  char* o = out.data();
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    int8_t d = kReverse[c];
    if (d < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(d);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      *o++ = static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return out;
}

}  // namespace sluice::core
