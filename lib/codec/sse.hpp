#pragma once
// Server-Sent Events, parsed as the WHATWG HTML standard says (§9.2.6 "Interpreting an event stream"),
// from a response body fed in pieces of any size. Sans-IO.
//
// A blank line ends an event. Lines end in CRLF, LF or CR (a CR at the end of one piece may be the
// first half of a CRLF in the next). "data" lines accumulate, joined by LF; "event", "id" and "retry"
// set their fields; a line starting with ':' is a comment; one space after the colon is dropped.
// Every block is reported with the body bytes it came from; `dispatched` says whether it is an event
// (at least one field), not only comments or unknown fields (a keep-alive).
#include <functional>
#include <optional>

#include "core/bytes.hpp"
#include "envelope/record.hpp"

namespace sluice::codec {

struct SseEvent {
  core::Bytes id, event, data;
  std::optional<int64_t> retry;
  core::Bytes raw;  // the block's bytes, through its blank line (the raws of all blocks add up to the body)
  bool dispatched = false;  // an event, not a block of comments only
};

class SseParser {
 public:
  void feed(core::ByteView body, const std::function<void(SseEvent&&)>& emit);
  // The body ended: an unterminated block is dropped, as a browser would. Returns its bytes.
  core::Bytes finish();

 private:
  void line(core::ByteView text, const std::function<void(SseEvent&&)>& emit);
  void reset();

  core::Bytes partial_;  // a line not ended yet
  bool after_cr_ = false;
  bool has_field_ = false;
  bool has_data_ = false;
  SseEvent current_;
};

// `m` as one event block ending in its blank line, LF line ends: `id`, `event` and `retry` when set
// (a value is cut at its first CR or LF, which the format cannot carry), then `data` one line per
// line of it (also when empty, if nothing else is set, so that the block is still an event).
core::Bytes sse_encode(const envelope::SseMessage& m);

}  // namespace sluice::codec
