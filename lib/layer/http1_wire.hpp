#pragma once
// Byte-level helpers for HTTP/1 messages a proxy forwards or answers itself. Edits work on the exact
// head bytes, so everything not edited (order, case, spacing of the other fields) goes out as it came.
#include <optional>
#include <string>
#include <vector>

#include "codec/http2.hpp"
#include "core/bytes.hpp"
#include "envelope/record.hpp"

namespace sluice::layer {

// How a request head is changed on its way to the server.
struct HeadEdit {
  std::optional<std::string> target;  // a new request-target
  std::optional<std::string> host;    // a new Host value (in place; added after the request line if absent)
  std::vector<std::string> remove;    // field names to drop, case-insensitive
  envelope::Headers add;              // fields appended after the others
  bool empty() const { return !target && !host && remove.empty() && add.empty(); }
};

// Applies `edit` to a request head (the exact bytes through the empty line).
core::Bytes edit_head(core::ByteView head, const HeadEdit& edit);
// The same edit on the structured view, so a recorded variant's overlay matches its bytes.
void edit_message(envelope::HttpMessage& m, const HeadEdit& edit);

// `bytes` (a message: its head through the empty line, then anything) with the value of every field
// `name` (case-insensitive) of the head replaced by `value`; the rest as it was.
core::Bytes replace_field_values(core::ByteView bytes, std::string_view name, std::string_view value);

// The first value of field `name` (case-insensitive), if present.
std::optional<std::string_view> find_header(const envelope::Headers& headers, std::string_view name);
// The same, empty when absent.
std::string header_value(const envelope::Headers& headers, std::string_view name);

// A body in chunked coding: `body` as one chunk (none when empty), the last chunk, `trailers`.
core::Bytes chunked_body(core::ByteView body, const envelope::Headers& trailers);
// One chunk of a body sent as it comes ("" for no bytes: an empty chunk would end the body).
core::Bytes body_chunk(core::ByteView data);
// The last chunk and the trailers.
core::Bytes last_chunk(const envelope::Headers& trailers);

// (codec/http2.hpp) A field that belongs to one HTTP/1 connection and that HTTP/2 forbids.
using codec::is_connection_specific;

// A request head: "METHOD TARGET HTTP/1.1", the fields, the empty line.
core::Bytes request_head(std::string_view method, std::string_view target, const envelope::Headers& headers);
// Whether a request with this method is expected to carry a body (so an empty one says Content-Length: 0).
bool body_expected(std::string_view method);

// An HTTP/1 message's bytes from its structured view (a step edited the message): the start line, the
// headers in their order and case, the body with framing made consistent. A body goes chunked when the
// message says `Transfer-Encoding: chunked` (trailers after it), else with a Content-Length that is set
// (or replaced) to the body's size; a request whose method carries no body and that has none gets no
// Content-Length. Every other field goes out as the message has it.
core::Bytes encode_http1(const envelope::HttpMessage& m);
// Only the head of `m` (start line, fields in their order and case, the empty line), for a step that
// judged a head before its body: the body's framing fields (Content-Length, Transfer-Encoding) are
// `framing`'s, wherever `m` has them or not (the body goes on as it came).
core::Bytes encode_http1_head(const envelope::HttpMessage& m, const envelope::Headers& framing);
bool is_framing_field(std::string_view name);

// The reason phrase of a status code (the table mitmproxy's block_list accepts codes from), empty for
// one it does not know.
std::string_view reason_phrase(int status);

// A response the proxy makes itself: "HTTP/1.1 STATUS REASON", the fields, the body.
core::Bytes response_bytes(int status, std::string_view reason, const envelope::Headers& headers,
                           core::ByteView body);
// Content-Type text/plain, Content-Length and (when `close`) Connection: close.
envelope::Headers plain_text_headers(const std::string& text, bool close);

}  // namespace sluice::layer
