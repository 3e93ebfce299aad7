#include <utility>  // before Boost (GCC 12, C++20)

#include "layer/gzip.hpp"

#include <boost/beast/zlib/inflate_stream.hpp>

namespace sluice::layer {

namespace zlib = boost::beast::zlib;

std::optional<core::Bytes> gunzip(core::ByteView in, size_t max_out) {
  // Header: ID1 ID2 CM FLG MTIME(4) XFL OS, then what FLG announces.
  if (in.size() < 18 || static_cast<uint8_t>(in[0]) != 0x1f || static_cast<uint8_t>(in[1]) != 0x8b || in[2] != 8)
    return std::nullopt;
  uint8_t flags = static_cast<uint8_t>(in[3]);
  size_t pos = 10;
  if (flags & 0x04) {  // FEXTRA
    if (pos + 2 > in.size()) return std::nullopt;
    size_t xlen = static_cast<uint8_t>(in[pos]) | (static_cast<size_t>(static_cast<uint8_t>(in[pos + 1])) << 8);
    pos += 2 + xlen;
  }
  for (uint8_t bit : {uint8_t{0x08}, uint8_t{0x10}}) {  // FNAME, FCOMMENT: zero-terminated
    if (!(flags & bit)) continue;
    size_t zero = in.find('\0', pos);
    if (zero == core::ByteView::npos) return std::nullopt;
    pos = zero + 1;
  }
  if (flags & 0x02) pos += 2;  // FHCRC
  if (pos + 8 > in.size()) return std::nullopt;
  core::ByteView deflated = in.substr(pos, in.size() - pos - 8);  // then CRC32 and ISIZE
  zlib::inflate_stream inflater;
  inflater.reset(15);
  zlib::z_params zs;
  zs.next_in = deflated.data();
  zs.avail_in = deflated.size();
  core::Bytes out;
  char buf[16384];
  for (;;) {
    zs.next_out = buf;
    zs.avail_out = sizeof buf;
    boost::system::error_code ec;
    inflater.write(zs, zlib::Flush::sync, ec);
    out.append(buf, sizeof buf - zs.avail_out);
    if (out.size() > max_out) return std::nullopt;
    if (ec == zlib::error::end_of_stream) return out;
    if (ec == zlib::error::need_buffers) return zs.avail_in == 0 ? std::optional<core::Bytes>(out) : std::nullopt;
    if (ec) return std::nullopt;
    if (zs.avail_in == 0 && zs.avail_out != 0) return out;
  }
}

}  // namespace sluice::layer
