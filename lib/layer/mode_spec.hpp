#pragma once
// Proxy modes in mitmproxy's syntax: MODE[:DATA][@[HOST:]PORT].
//   regular                      listen 127.0.0.1:8080, absolute-form requests and CONNECT
//   tcp:HOST:PORT@LISTEN          TCP forward to HOST:PORT, protocol detected from the first bytes
//   raw:HOST:PORT@LISTEN          TCP forward, bytes recorded as raw chunks, no detection
// Listeners bind to loopback unless the spec names a host; port 0 asks the system for a free port.
#include <cstdint>
#include <string>

#include "core/result.hpp"

namespace sluice::layer {

struct ModeSpec {
  enum class Kind : uint8_t { regular, reverse, upstream, tcp, raw, socks5 };
  Kind kind = Kind::regular;
  std::string data;                 // text after "MODE:" (an URL or HOST:PORT)
  std::string target_host;          // tcp/raw: where to connect
  uint16_t target_port = 0;
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 8080;
  std::string text;                 // the spec as given, for logs and the header record
};

core::Result<ModeSpec> parse_mode_spec(std::string_view spec);
// Splits "host:port", "[v6]:port"; the host keeps no brackets.
core::Result<std::pair<std::string, uint16_t>> parse_host_port(std::string_view s);

}  // namespace sluice::layer
