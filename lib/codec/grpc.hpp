#pragma once
// gRPC's length-prefixed messages (the framing gRPC over HTTP/2 and gRPC-Web share), for whoever sends
// a message that did not come off the wire as it is: a step's edit, a step's own answer to a call.
#include "core/bytes.hpp"
#include "envelope/record.hpp"

namespace sluice::codec {

// One message: the compressed flag (0: the payload as it is), 4 bytes of length, big-endian, the
// payload. A message the proxy makes is never compressed: a receiver takes flag 0 whatever
// grpc-encoding was agreed (gRPC's protocol over HTTP/2, "Length-Prefixed-Message").
core::Bytes grpc_frame(core::ByteView payload, bool compressed = false);

// gRPC-Web's trailer frame: flag 0x80, then the fields as "name: value\r\n" lines (names lower-case).
core::Bytes grpc_web_trailer_frame(const envelope::Headers& fields);

// A gRPC-Web body in its content type's form: the frames as they are (application/grpc-web...), or
// base64 in one padded run (application/grpc-web-text...).
core::Bytes grpc_web_body(core::ByteView frames, bool text);

}  // namespace sluice::codec
