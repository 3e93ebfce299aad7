#pragma once
// What cleartext servers were found to speak, shared by a proxy run's connections. An HTTP/2 client's
// connection to a cleartext server starts with our h2c preface (RFC 9113 §3.4) and falls back to
// HTTP/1.1 when the server answers otherwise; remembering an answer that was not HTTP/2 (a close alone
// is not remembered) spares every later connection
// to the same server the probe: one connection more per client connection, and a "PRI *" request
// refused in the server's log each time. Thread-safe; entries are forgotten after `ttl` (a server may
// be upgraded while we run) and all at once past `capacity`.
#include <chrono>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/time.hpp"

namespace sluice::layer {

class ServerMemo {
 public:
  explicit ServerMemo(std::chrono::nanoseconds ttl = std::chrono::minutes(5), size_t capacity = 4096)
      : ttl_(ttl), capacity_(capacity) {}
  // `server`: "host:port" as the layers name it.
  void remember_http1(std::string_view server, core::Timestamp now) const;
  bool known_http1(std::string_view server, core::Timestamp now) const;

 private:
  std::chrono::nanoseconds ttl_;
  size_t capacity_;
  mutable std::mutex mu_;
  mutable std::unordered_map<std::string, core::Timestamp> http1_;  // server -> when it was found out
};

}  // namespace sluice::layer
