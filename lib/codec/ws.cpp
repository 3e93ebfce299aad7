#include <utility>  // before Boost (GCC 12, C++20)

#include "codec/ws.hpp"

#include <algorithm>
#include <random>

#include <boost/beast/zlib/deflate_stream.hpp>

namespace sluice::codec {

namespace zlib = boost::beast::zlib;

core::Bytes ws_frame(int opcode, bool fin, bool rsv1, core::ByteView payload, std::optional<uint32_t> mask_key) {
  core::Bytes out;
  out.reserve(payload.size() + 14);
  out += static_cast<char>((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | (opcode & 0x0f));
  char mask_bit = mask_key ? static_cast<char>(0x80) : 0;
  uint64_t n = payload.size();
  if (n < 126) {
    out += static_cast<char>(mask_bit | static_cast<char>(n));
  } else if (n <= 0xffff) {
    out += static_cast<char>(mask_bit | 126);
    out += static_cast<char>(n >> 8);
    out += static_cast<char>(n & 0xff);
  } else {
    out += static_cast<char>(mask_bit | 127);
    for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>(n >> shift & 0xff);
  }
  if (!mask_key) {
    out.append(payload);
    return out;
  }
  char key[4] = {static_cast<char>(*mask_key >> 24), static_cast<char>(*mask_key >> 16 & 0xff),
                 static_cast<char>(*mask_key >> 8 & 0xff), static_cast<char>(*mask_key & 0xff)};
  out.append(key, 4);
  size_t at = out.size();
  out.append(payload);
  for (size_t i = 0; i < payload.size(); ++i) out[at + i] = static_cast<char>(out[at + i] ^ key[i & 3]);
  return out;
}

core::Bytes ws_deflate(core::ByteView data, int window_bits) {
  zlib::deflate_stream d;
  d.reset(6, std::clamp(window_bits, 9, 15), 8, zlib::Strategy::normal);
  zlib::z_params zs;
  zs.next_in = data.data();
  zs.avail_in = data.size();
  core::Bytes out;
  char buf[16384];
  for (;;) {
    zs.next_out = buf;
    zs.avail_out = sizeof buf;
    boost::system::error_code ec;
    d.write(zs, zlib::Flush::sync, ec);
    out.append(buf, sizeof buf - zs.avail_out);
    if (ec && ec != zlib::error::need_buffers) break;
    if (zs.avail_in == 0 && zs.avail_out != 0) break;  // all input taken and the flush written
  }
  // A sync flush ends with an empty stored block, 00 00 ff ff: the receiver appends it again.
  if (out.size() >= 4 && out.compare(out.size() - 4, 4, std::string_view("\x00\x00\xff\xff", 4)) == 0)
    out.resize(out.size() - 4);
  return out;
}

core::Bytes ws_encode(const envelope::WsMessage& m, bool mask, int window_bits) {
  core::Bytes payload = m.payload;
  if (m.opcode == 8 && payload.empty() && m.close_code) {
    payload += static_cast<char>(*m.close_code >> 8 & 0xff);
    payload += static_cast<char>(*m.close_code & 0xff);
    payload += m.close_reason;
  }
  bool compress = m.compressed && (m.opcode == 1 || m.opcode == 2);
  if (compress) payload = ws_deflate(payload, window_bits);
  return ws_frame(m.opcode, true, compress, payload, mask ? std::optional<uint32_t>(ws_mask_key()) : std::nullopt);
}

uint32_t ws_mask_key() {
  thread_local std::mt19937 gen(std::random_device{}());
  return static_cast<uint32_t>(gen());
}

int ws_window_bits(const envelope::Envelope& e) {
  for (const auto& [k, v] : e.tags)
    if (k == "deflate_window_bits" && v.size() <= 2) {
      int bits = 0;
      for (char c : v) bits = c >= '0' && c <= '9' ? bits * 10 + (c - '0') : -1000;
      if (bits >= 8 && bits <= 15) return bits;
    }
  return 15;
}

}  // namespace sluice::codec
