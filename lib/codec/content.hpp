#pragma once
// Content codings (RFC 9110 §8.4) undone for views and matching: gzip (also x-gzip), deflate (zlib
// framing, or the raw deflate some servers send), br (Brotli, RFC 7932) and zstd (RFC 8878), with the
// real libraries (zlib, libbrotlidec and libbrotlienc, libzstd). The recorded bytes stay as they came: this makes a
// decoded copy.
#include <optional>
#include <string_view>

#include "core/bytes.hpp"

namespace sluice::codec {

// `body` with the codings of a Content-Encoding value undone, the last applied first ("gzip, br":
// Brotli undone, then gzip). "identity" and an empty value leave it as it is. Nothing (nullopt) for a
// coding it does not know, bytes that do not decode, or an output past `max_out` bytes (a bomb).
std::optional<core::Bytes> decode_content(core::ByteView body, std::string_view codings, size_t max_out);

// `body` with the codings of a Content-Encoding value applied in order (gzip at level 6, deflate in
// zlib framing, br and zstd at their default levels), for a body a rule changed that must go on as
// encoded as it came. Nothing for a coding it does not know.
std::optional<core::Bytes> encode_content(core::ByteView body, std::string_view codings);

}  // namespace sluice::codec
