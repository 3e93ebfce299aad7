#include "codec/content.hpp"

#include <brotli/decode.h>
#include <brotli/encode.h>
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

// The codings of a Content-Encoding value, lower case, in the order they were applied.
std::vector<std::string> codings_of(std::string_view codings) {
  std::vector<std::string> list;
  while (!codings.empty()) {
    size_t comma = codings.find(',');
    std::string coding = core::to_lower(core::trim_ows(codings.substr(0, comma)));
    if (!coding.empty() && coding != "identity") list.push_back(std::move(coding));
    if (comma == std::string_view::npos) break;
    codings.remove_prefix(comma + 1);
  }
  return list;
}

// zlib's deflate with `window_bits` (31: gzip; 15: zlib), level 6 (gzip's and mitmproxy's default).
std::optional<core::Bytes> deflate(core::ByteView in, int window_bits) {
  z_stream z{};
  if (deflateInit2(&z, 6, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) return std::nullopt;
  core::Bytes out(deflateBound(&z, static_cast<uLong>(in.size())), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int rc = ::deflate(&z, Z_FINISH);
  out.resize(out.size() - z.avail_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) return std::nullopt;
  return out;
}

}  // namespace

std::optional<core::Bytes> encode_content(core::ByteView body, std::string_view codings) {
  core::Bytes out(body);
  for (const auto& coding : codings_of(codings)) {
    std::optional<core::Bytes> next;
    if (coding == "gzip" || coding == "x-gzip") {
      next = deflate(out, 31);
    } else if (coding == "deflate") {
      next = deflate(out, 15);
    } else if (coding == "br") {
      core::Bytes enc(BrotliEncoderMaxCompressedSize(out.size()) + 16, '\0');
      size_t size = enc.size();
      if (BrotliEncoderCompress(BROTLI_DEFAULT_QUALITY, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_GENERIC, out.size(),
                                reinterpret_cast<const uint8_t*>(out.data()), &size,
                                reinterpret_cast<uint8_t*>(enc.data()))) {
        enc.resize(size);
        next = std::move(enc);
      }
    } else if (coding == "zstd") {
      core::Bytes enc(ZSTD_compressBound(out.size()), '\0');
      size_t size = ZSTD_compress(enc.data(), enc.size(), out.data(), out.size(), 3);
      if (!ZSTD_isError(size)) {
        enc.resize(size);
        next = std::move(enc);
      }
    }
    if (!next) return std::nullopt;
    out = std::move(*next);
  }
  return out;
}

std::optional<core::Bytes> decode_content(core::ByteView body, std::string_view codings, size_t max_out) {
  auto list = codings_of(codings);
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
