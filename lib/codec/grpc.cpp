#include "codec/grpc.hpp"

namespace sluice::codec {

core::Bytes grpc_frame(core::ByteView payload, bool compressed) {
  core::Bytes out;
  out.reserve(5 + payload.size());
  out.push_back(compressed ? '\1' : '\0');
  auto n = static_cast<uint32_t>(payload.size());
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((n >> shift) & 0xff));
  out.append(payload);
  return out;
}

}  // namespace sluice::codec
