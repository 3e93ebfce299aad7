#pragma once
// HTTP/2 encoding (RFC 9113 frames, RFC 7541 HPACK through nghttp2's deflater and inflater), for
// whoever has to put a message on an HTTP/2 wire that no session of ours made: a later command that
// crafts frames (a fuzzer, a macro), a test playing a peer. Below the layers and the pipeline: the
// only state is the HPACK context of one direction of one connection, which the caller keeps.
//
// The proxy's own HTTP/2 legs do not use it: there nghttp2's sessions make the frames (with their
// flow control, priorities and SETTINGS), and a recorded message's `raw` is what came on the wire.
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "core/bytes.hpp"
#include "core/result.hpp"
#include "envelope/record.hpp"

namespace sluice::codec {

// A field that belongs to one HTTP/1 connection and that HTTP/2 forbids (RFC 9113 §8.2.2): Connection,
// Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade. Case-insensitive.
bool is_connection_specific(std::string_view name);

// Fields as HTTP/2 carries them: names in lower case, without the connection-specific ones and those
// the Connection field names (RFC 9113 §8.2.2); TE only when it says "trailers".
envelope::Headers h2_fields(const envelope::Headers& fields);

// `m`'s header block as HTTP/2 sends it: the pseudo-header fields first (a request's :method,
// :scheme, :authority, :path; `:path` omitted for CONNECT; a response's :status), then its fields as
// h2_fields makes them, a content-length set to the body's size where the message has one (or has a
// body and no content-length of its own: none is added).
envelope::Headers h2_header_block(const envelope::HttpMessage& m);

// One frame: the 9-byte header (length, type, flags, stream id) and the payload.
core::Bytes h2_frame(uint8_t type, uint8_t flags, int32_t stream_id, core::ByteView payload);

// The encoding side of one direction of one connection: its HPACK context (the dynamic table grows
// as fields are sent, so frames from one encoder go to one receiver, in order).
class H2Encoder {
 public:
  explicit H2Encoder(size_t max_frame = 16384);
  ~H2Encoder();
  H2Encoder(const H2Encoder&) = delete;
  H2Encoder& operator=(const H2Encoder&) = delete;

  // HEADERS, then CONTINUATION frames while the block is larger than a frame; END_HEADERS on the
  // last, END_STREAM on the HEADERS when `end_stream`. Fields go as given (order and values kept).
  core::Bytes headers(int32_t stream_id, const envelope::Headers& fields, bool end_stream);
  // DATA frames of at most the frame size; END_STREAM on the last when `end_stream` (one empty frame
  // for no data).
  core::Bytes data(int32_t stream_id, core::ByteView bytes, bool end_stream) const;
  // A whole message on `stream_id`: its header block, its body, its trailers (the stream ends with
  // the last of them).
  core::Bytes message(int32_t stream_id, const envelope::HttpMessage& m);

 private:
  struct Deflater;
  std::unique_ptr<Deflater> deflater_;
  size_t max_frame_;
};

// The decoding side: the frames of one direction of one connection (no preface, no SETTINGS
// handling), each stream's message as it completes.
class H2Decoder {
 public:
  H2Decoder();
  ~H2Decoder();
  H2Decoder(const H2Decoder&) = delete;
  H2Decoder& operator=(const H2Decoder&) = delete;

  struct Message {
    int32_t stream_id = 0;
    envelope::Headers headers;   // as they came, pseudo-header fields included
    envelope::Headers trailers;
    core::Bytes body;
    bool ended = false;          // END_STREAM seen
  };
  // Takes whole frames from `bytes` (a frame cut short waits for the rest). Fails with the reason on
  // a frame that breaks the framing or HPACK; the messages read so far stay.
  core::Result<void> feed(core::ByteView bytes);
  // The message of a stream, once its header block came.
  const Message* find(int32_t stream_id) const;
  // A request's or response's view of a decoded message (pseudo-header fields to members).
  static envelope::HttpMessage view(const Message& m);

 private:
  struct Inflater;
  std::unique_ptr<Inflater> inflater_;
  core::Bytes pending_;
  std::vector<Message> messages_;
  int32_t block_stream_ = 0;  // a header block waiting for its CONTINUATION
  core::Bytes block_;
  bool block_end_stream_ = false;
};

}  // namespace sluice::codec
