#pragma once
// WebSocket encoding (RFC 6455 frames, RFC 7692 permessage-deflate), for whoever sends a message that
// did not come off the wire as it is: a step's edit, a message re-compressed by the proxy, later a
// macro or a fuzzer. Below the layers and the pipeline: no state of a connection is needed.
//
// A message is encoded as one frame (FIN set). Compressed messages use a fresh compression context
// every time (no back-reference into earlier messages), so any receiver decodes them whatever context
// it kept from earlier messages; the window is the one the handshake allowed the sender.
#include <cstdint>
#include <optional>

#include "core/bytes.hpp"
#include "envelope/record.hpp"

namespace sluice::codec {

// One frame: FIN, RSV1, opcode, the payload masked with `mask_key` when given (frames from a client).
core::Bytes ws_frame(int opcode, bool fin, bool rsv1, core::ByteView payload, std::optional<uint32_t> mask_key);

// `data` deflated as a permessage-deflate message body: raw deflate with a window of 2^window_bits
// (9..15), flushed, the final 00 00 ff ff removed (RFC 7692 §7.2.1).
core::Bytes ws_deflate(core::ByteView data, int window_bits = 15);

// `m` as one frame: its opcode (a close frame's payload made from close_code and close_reason when
// the payload is empty), masked when `mask` (with a fresh random key), its payload deflated with
// RSV1 set when `m.compressed` (a data message only).
core::Bytes ws_encode(const envelope::WsMessage& m, bool mask, int window_bits = 15);

// A masking key from a generator seeded once per thread from the system's entropy.
uint32_t ws_mask_key();

// The window bits a permessage-deflate sender may use, from the tag `deflate_window_bits` a unit's
// envelope carries when the handshake made it smaller than 15.
int ws_window_bits(const envelope::Envelope& e);

}  // namespace sluice::codec
