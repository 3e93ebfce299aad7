#pragma once
// gRPC-Web, decoded from a whole HTTP message (either HTTP version): binary `application/grpc-web`
// (`+proto`, `+json`, ...) and base64 `application/grpc-web-text`. A request body is a sequence of
// length-prefixed messages; a response body too, ending with a trailer frame (flag 0x80) whose payload
// is the trailers as "name: value\r\n" lines. Malformed base64 or framing is named
// (malformed_grpc_web_base64, malformed_grpc_web_lpm) and what could be read is still shown.
#include <vector>

#include "envelope/record.hpp"

namespace sluice::layer {

enum class GrpcWebForm : uint8_t { none, binary, text };
GrpcWebForm grpc_web_form(std::string_view content_type);

// The grpc-web envelopes of one recorded HTTP message (a request: start, then one data per message;
// a response: data per message, then end from the trailer frame, or from the headers of a
// trailers-only answer). Stream, flow, direction, time and context come from `http`; `seq` is left
// for the caller. Empty when the message is no gRPC-Web or was not recorded whole.
std::vector<envelope::Envelope> grpc_web_envelopes(const envelope::Envelope& http);

}  // namespace sluice::layer
