#pragma once
// RequestHeadParser: reads an HTTP/1.x request head (request line and header fields, through the
// empty line) with llhttp, keeping every byte: method, target and version as sent, header fields in
// wire order with their case. Sans-IO: feed bytes in any chunking. Strict: llhttp's lenient modes are
// off, so obs-fold, bare CR/LF, a space before the colon and similar smuggling vectors are errors.
#include <memory>
#include <string>

#include "core/bytes.hpp"
#include "envelope/record.hpp"

namespace sluice::layer {

struct RequestHead {
  core::Bytes method, target, version;  // version as "HTTP/1.1"
  envelope::Headers headers;
  core::Bytes raw;  // the head's exact bytes, through the final CRLF CRLF
};

class RequestHeadParser {
 public:
  enum class Status : uint8_t { need_more, done, error };
  static constexpr size_t kMaxHeadBytes = 64 * 1024;

  RequestHeadParser();
  ~RequestHeadParser();
  RequestHeadParser(const RequestHeadParser&) = delete;
  RequestHeadParser& operator=(const RequestHeadParser&) = delete;

  // Feeds `data` (borrowed). On `done`, `consumed` says how many of these bytes belong to the head; the
  // rest follows it on the wire (a body, or a tunnel's first bytes).
  Status feed(core::ByteView data, size_t& consumed);

  const RequestHead& head() const { return head_; }
  // On error: an anomaly name ("malformed_request", "header_too_large") and a one-line reason.
  const std::string& error_name() const { return error_name_; }
  const std::string& error() const { return error_; }

 private:
  struct Llhttp;
  std::unique_ptr<Llhttp> p_;
  RequestHead head_;
  std::string error_name_, error_;
  bool done_ = false;
  friend struct HeadCallbacks;
};

}  // namespace sluice::layer
