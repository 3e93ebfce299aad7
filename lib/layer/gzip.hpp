#pragma once
// gunzip for views (a gRPC message with grpc-encoding gzip): RFC 1952 framing around a raw deflate
// stream, inflated with Boost.Beast's zlib. Never more than `max_out` bytes out.
#include <optional>

#include "core/bytes.hpp"

namespace sluice::layer {

std::optional<core::Bytes> gunzip(core::ByteView in, size_t max_out);

}  // namespace sluice::layer
