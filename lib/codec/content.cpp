#include "codec/content.hpp"

#include <brotli/decode.h>
#include <zlib.h>
#include <zstd.h>

#include <string>
#include <vector>

#include "core/ascii.hpp"

namespace sluice::codec {

namespace {

constexpr size_t kPiece = 64 << 10;

// zlib's inflate with `window_bits` (31: gzip; 15: zlib; -15: raw), members of a gzip stream one
// after another (as gunzip reads them).
std::optional<core::Bytes> inflate(core::ByteView in, int window_bits, size_t max_out) {
  core::Bytes out;
  z_stream z{};
  if (inflateInit2(&z, window_bits) != Z_OK) return std::nullopt;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  int rc = Z_OK;
  for (;;) {
    size_t have = out.size();
    out.resize(have + kPiece);
    z.next_out = reinterpret_cast<Bytef*>(out.data() + have);
    z.avail_out = kPiece;
    rc = ::inflate(&z, Z_NO_FLUSH);
    out.resize(have + kPiece - z.avail_out);
    if (out.size() > max_out) rc = Z_MEM_ERROR;
    if (rc == Z_STREAM_END && window_bits == 31 && z.avail_in > 0) {  // another gzip member
      if (inflateReset(&z) != Z_OK) break;
      continue;
    }
    if (rc != Z_OK) break;
    if (z.avail_in == 0 && z.avail_out > 0) break;  // all taken, no end: cut short
  }
  inflateEnd(&z);
  if (rc != Z_STREAM_END) return std::nullopt;
  return out;
}

std::optional<core::Bytes> unbrotli(core::ByteView in, size_t max_out) {
  BrotliDecoderState* s = BrotliDecoderCreateInstance(nullptr, nullptr, nullptr);
  if (!s) return std::nullopt;
  core::Bytes out;
  size_t avail_in = in.size();
  const auto* next_in = reinterpret_cast<const uint8_t*>(in.data());
  BrotliDecoderResult rc;
  do {
    size_t have = out.size();
    out.resize(have + kPiece);
    size_t avail_out = kPiece;
    auto* next_out = reinterpret_cast<uint8_t*>(out.data() + have);
    rc = BrotliDecoderDecompressStream(s, &avail_in, &next_in, &avail_out, &next_out, nullptr);
    out.resize(have + kPiece - avail_out);
    if (out.size() > max_out) rc = BROTLI_DECODER_RESULT_ERROR;
  } while (rc == BROTLI_DECODER_RESULT_NEEDS_MORE_OUTPUT);
  BrotliDecoderDestroyInstance(s);
  if (rc != BROTLI_DECODER_RESULT_SUCCESS) return std::nullopt;
  return out;
}

std::optional<core::Bytes> unzstd(core::ByteView in, size_t max_out) {
  ZSTD_DStream* d = ZSTD_createDStream();
  if (!d) return std::nullopt;
  core::Bytes out;
  ZSTD_inBuffer input{in.data(), in.size(), 0};
  size_t rc = 1;
  bool ok = true;
  while (ok && (input.pos < input.size || rc != 0)) {
    size_t have = out.size();
    out.resize(have + kPiece);
    ZSTD_outBuffer output{out.data() + have, kPiece, 0};
    size_t before = input.pos;
    rc = ZSTD_decompressStream(d, &output, &input);
    out.resize(have + output.pos);
    ok = !ZSTD_isError(rc) && out.size() <= max_out && (output.pos > 0 || input.pos > before || rc == 0);
  }
  ZSTD_freeDStream(d);
  if (!ok || rc != 0) return std::nullopt;  // (rc != 0: a frame cut short)
  return out;
}

}  // namespace

std::optional<core::Bytes> decode_content(core::ByteView body, std::string_view codings, size_t max_out) {
  std::vector<std::string> list;
  while (!codings.empty()) {
    size_t comma = codings.find(',');
    std::string coding = core::to_lower(core::trim_ows(codings.substr(0, comma)));
    if (!coding.empty() && coding != "identity") list.push_back(std::move(coding));
    if (comma == std::string_view::npos) break;
    codings.remove_prefix(comma + 1);
  }
  core::Bytes out(body);
  for (auto it = list.rbegin(); it != list.rend(); ++it) {
    std::optional<core::Bytes> next;
    if (*it == "gzip" || *it == "x-gzip")
      next = inflate(out, 31, max_out);
    else if (*it == "deflate" && !(next = inflate(out, 15, max_out)))
      next = inflate(out, -15, max_out);  // (raw deflate, as some servers send it)
    else if (*it == "br")
      next = unbrotli(out, max_out);
    else if (*it == "zstd")
      next = unzstd(out, max_out);
    if (!next) return std::nullopt;
    out = std::move(*next);
  }
  return out;
}

}  // namespace sluice::codec
