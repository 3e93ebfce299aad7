#pragma once
// What gRPC over HTTP/2 and gRPC-Web share: the length-prefixed message framing, and the start and end
// of a call as the stream records them.
#include <string_view>

#include "envelope/record.hpp"

namespace sluice::layer {

// Length-prefixed messages (1 flag byte, 4 bytes big-endian length, the message), fed in any chunking.
class LpmParser {
 public:
  // Calls fn(flag, frame) for each whole message; `frame` holds the prefix and the message.
  template <typename Fn>
  void feed(core::ByteView data, Fn&& fn) {
    buf_.append(data);
    size_t pos = 0;
    while (buf_.size() - pos >= 5) {
      const auto* p = reinterpret_cast<const uint8_t*>(buf_.data() + pos);
      size_t len = message_length(p);
      if (buf_.size() - pos < 5 + len) break;
      fn(p[0], core::ByteView(buf_).substr(pos, 5 + len));
      pos += 5 + len;
    }
    buf_.erase(0, pos);
  }
  // The bytes of a message not whole yet.
  core::ByteView pending() const { return buf_; }
  static size_t message_length(const uint8_t* prefix) {
    return (size_t{prefix[1]} << 24) | (size_t{prefix[2]} << 16) | (size_t{prefix[3]} << 8) | prefix[4];
  }

 private:
  core::Bytes buf_;
};

// application/grpc (+proto, +json, ...), gRPC-Web's content types excluded.
bool is_grpc(std::string_view content_type);

// Whether a request field belongs to HTTP or gRPC's transport (pseudo-header fields, content-type,
// te, grpc-timeout, ...) rather than to the call's metadata.
bool is_grpc_transport_field(std::string_view name);

// A call's start from its request path ("/package.Service/Method", or an absolute URL) and headers:
// service, method, grpc-timeout, and the metadata (the fields other than HTTP's own and content-type).
envelope::GrpcStartMessage grpc_start_message(std::string_view path, const envelope::Headers& headers);
// A call's end from its trailers (or a trailers-only answer's headers): grpc-status (-1 when absent),
// grpc-message, and the fields themselves.
envelope::GrpcEndMessage grpc_end_message(const envelope::Headers& fields);

}  // namespace sluice::layer
