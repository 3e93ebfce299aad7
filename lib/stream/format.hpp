#pragma once
// Stream encodings and their wire constants (formats/STREAM.md).
#include <cstdint>
#include <optional>
#include <string_view>

namespace sluice::stream {

enum class Encoding : uint8_t { jsonl, cbor };
enum class Compression : uint8_t { none, zstd };

std::string_view to_string(Encoding e);
std::optional<Encoding> parse_encoding(std::string_view s);  // "jsonl" | "cbor"

// Binary record frame: magic, u32 big-endian payload length, u32 big-endian CRC-32C of the payload,
// then the payload (one CBOR map).
inline constexpr std::string_view kFrameMagic = "\xC5SLR";
inline constexpr size_t kFrameHeaderSize = 12;
inline constexpr uint32_t kMaxFramePayload = 1u << 30;
inline constexpr std::string_view kZstdMagic = "\x28\xB5\x2F\xFD";

}  // namespace sluice::stream
