#include "codec/grpc.hpp"

#include "core/ascii.hpp"
#include "core/base64.hpp"

namespace sluice::codec {

namespace {

core::Bytes lpm(uint8_t flag, core::ByteView payload) {
  core::Bytes out;
  out.reserve(5 + payload.size());
  out.push_back(static_cast<char>(flag));
  auto n = static_cast<uint32_t>(payload.size());
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((n >> shift) & 0xff));
  out.append(payload);
  return out;
}

}  // namespace

core::Bytes grpc_frame(core::ByteView payload, bool compressed) { return lpm(compressed ? 1 : 0, payload); }

core::Bytes grpc_web_trailer_frame(const envelope::Headers& fields) {
  core::Bytes block;
  for (const auto& f : fields) block += core::to_lower(f.name) + ": " + f.value + "\r\n";
  return lpm(0x80, block);
}

core::Bytes grpc_web_body(core::ByteView frames, bool text) {
  return text ? core::Bytes(core::base64_encode(frames)) : core::Bytes(frames);
}

}  // namespace sluice::codec
