#pragma once
// One HTTP/2 request on a fresh connection, sans-IO (nghttp2 client session): what a replayed HTTP/2
// flow's in-memory client speaks. The recorded request is encoded again (HPACK state cannot be
// replayed byte for byte): its pseudo-headers, its fields in order (without the connection-specific
// ones HTTP/2 forbids), its body, its trailers.
#include <memory>
#include <string>

#include "core/bytes.hpp"
#include "envelope/record.hpp"

namespace sluice::replay {

class H2Request {
 public:
  explicit H2Request(const envelope::HttpMessage& request);
  ~H2Request();
  H2Request(const H2Request&) = delete;
  H2Request& operator=(const H2Request&) = delete;

  core::Bytes output();               // bytes for the server: the preface and settings, then the request
  void input(core::ByteView data);    // bytes from the server
  bool done() const { return done_; }  // the response ended, or the stream or connection failed
  const std::string& error() const { return error_; }  // why it failed; empty when it ended well
  int status() const { return status_; }

  struct Session;

 private:
  std::unique_ptr<Session> s_;
  bool done_ = false;
  std::string error_;
  int status_ = 0;
  friend struct Session;
};

}  // namespace sluice::replay
