#pragma once
// Http1Parser: a sans-IO HTTP/1.x message parser (requests or responses) on llhttp that keeps every
// byte. Feed it bytes in any chunking; it stops at each point a proxy must decide something:
//
//   need_more ----> head ----> (body bytes accumulate) ----> complete ----> head (next message) ...
//        \              \                                        \--> upgrade (CONNECT, 101: the rest
//         \--> error     \--> error                                   of the connection is not HTTP)
//
// What it keeps: the head's exact bytes, method/target or status/reason, version, header fields in
// wire order with their case; the decoded body; each chunk's exact bytes (for h1-chunk overlays); the
// trailers. The caller forwards the wire bytes it fed (feed() says how many belong to the message).
//
// Strict (RFC 9112 §6.3, §11.2): no lenient llhttp modes, plus the checks llhttp 8.1 lacks
// (obs-fold, whitespace before the colon, a second Host). Each rejection has an anomaly name
// (formats/STREAM.md §5) and a one-line reason.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/bytes.hpp"
#include "core/result.hpp"
#include "envelope/record.hpp"

namespace sluice::layer {

struct Http1Head {
  bool is_request = true;
  core::Bytes method, target;  // request
  int status = 0;              // response
  core::Bytes reason;
  std::string version;  // "HTTP/1.1"
  envelope::Headers headers;
  core::Bytes raw;  // the head's exact bytes, through the empty line
  bool chunked = false;
  std::optional<uint64_t> content_length;
  bool keep_alive = true;  // after this message, per the version and Connection header
  bool upgrade = false;    // CONNECT, or an Upgrade the peer will accept
};

class Http1Parser {
 public:
  enum class Type : uint8_t { request, response };
  enum class Status : uint8_t { need_more, head, complete, upgrade, error };
  static constexpr size_t kMaxHeadBytes = 64 * 1024;

  explicit Http1Parser(Type type);
  ~Http1Parser();
  Http1Parser(const Http1Parser&) = delete;
  Http1Parser& operator=(const Http1Parser&) = delete;

  // Responses only: the method of the request being answered (HEAD and CONNECT change the framing).
  void set_request_method(std::string_view method);

  // Parses from the start of `data` (borrowed; may be empty). `consumed` says how many bytes were taken:
  // all of them on need_more; up to the end of the head or of the message otherwise. Feed the rest
  // (even nothing) again to go on: a body-less message reports `head`, then `complete` on the next call;
  // a message without a head stop (a response to HEAD) goes straight to `complete`. head() is valid from
  // `head` or `complete` on. After a message with `head().upgrade`, feed() answers `upgrade` and takes
  // nothing more: the rest of the connection is not HTTP (if the peer refused the upgrade, make a new
  // parser).
  Status feed(core::ByteView data, size_t& consumed);
  // End of input. Completes a body delimited by the close of the connection (complete), or reports a
  // message cut short (error "truncated_message"); need_more when between messages.
  Status finish();

  const Http1Head& head() const { return head_; }
  // Moves the head's bytes, fields and start line out (the framing flags stay): from `head` on, once.
  Http1Head take_head();
  // Decoded body bytes since the last take (moved out).
  core::Bytes take_body();
  // Each chunk's exact wire bytes (size line, data, CRLF; the last one with the trailers), since the
  // last take.
  std::vector<core::Bytes> take_chunks();
  const envelope::Headers& trailers() const { return trailers_; }

  const std::string& error_name() const { return error_name_; }
  const std::string& error() const { return error_; }

 private:
  struct Llhttp;
  friend struct Http1Callbacks;
  Status fail(std::string name, std::string reason);
  Status map_error(int llhttp_errno, core::ByteView data);
  Status check_head();
  void start_message();

  std::unique_ptr<Llhttp> p_;
  Type type_;
  std::string request_method_;
  enum class Phase : uint8_t { head, body, done, upgraded, failed } phase_ = Phase::head;
  Http1Head head_;
  core::Bytes body_;
  std::vector<core::Bytes> chunks_;
  core::Bytes chunk_raw_;  // wire bytes of the chunk in progress
  envelope::Headers trailers_;
  std::string error_name_, error_;
  char last_byte_ = 0;  // the byte before the next input, for naming errors at a chunk boundary
};

// A complete final response held in memory (a pipeline step's answer), parsed whole.
struct WholeResponse {
  Http1Head head;
  core::Bytes body;                // decoded
  std::vector<core::Bytes> chunks;  // chunked: each chunk's wire bytes
  envelope::Headers trailers;
  size_t size = 0;  // bytes of `raw` the response took
};
// Fails (with the reason) unless `raw` starts with one complete final response to `request_method`.
core::Result<WholeResponse> parse_whole_response(core::ByteView raw, std::string_view request_method);
// A complete request held in memory (a step's changed request), parsed whole the same way.
using WholeRequest = WholeResponse;
core::Result<WholeRequest> parse_whole_request(core::ByteView raw);

}  // namespace sluice::layer
