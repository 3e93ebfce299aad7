#pragma once
// Proxy modes in mitmproxy's syntax: MODE[:DATA][@[HOST:]PORT].
//   regular                      listen 127.0.0.1:8080, absolute-form requests and CONNECT
//   tcp:HOST:PORT@LISTEN          TCP forward to HOST:PORT, protocol detected from the first bytes
//                                 (mitmproxy's reverse:tcp://HOST:PORT and reverse:tls://HOST:PORT too)
//   raw:HOST:PORT@LISTEN          TCP forward, bytes recorded as raw chunks, no detection
//   reverse:http://HOST[:PORT]    every request goes to that server (mitmproxy's reverse:HOST[:PORT]:
//                                 https)
//   upstream:http://HOST:PORT     requests and CONNECT go on through that proxy (scheme optional)
//   socks5                        SOCKS5 on 127.0.0.1:1080
// Listeners bind to loopback unless the spec names a host; port 0 asks the system for a free port.
#include <cstdint>
#include <string>

#include "core/result.hpp"

namespace sluice::layer {

struct ModeSpec {
  enum class Kind : uint8_t { regular, reverse, upstream, tcp, raw, socks5 };
  Kind kind = Kind::regular;
  std::string data;                 // text after "MODE:" (an URL or HOST:PORT)
  std::string target_scheme;        // reverse/upstream: "http" or "https"
  std::string target_host;          // tcp/raw/reverse/upstream: where to connect
  uint16_t target_port = 0;
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 8080;
  bool listen_port_given = false;   // the spec named a port (`@PORT`); otherwise the mode's default
  bool listen_host_given = false;   // the spec named a host (`@HOST:PORT`)
  std::string text;                 // the spec as given, for logs and the header record
};

core::Result<ModeSpec> parse_mode_spec(std::string_view spec);
// Splits "host:port", "[v6]:port"; the host keeps no brackets.
core::Result<std::pair<std::string, uint16_t>> parse_host_port(std::string_view s);
// The inverse: "host:port", "[v6]:port".
inline std::string format_host_port(const std::string& host, uint16_t port) {
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}
// A Host value: "host", or "host:port" unless the port is the scheme's `default_port`.
inline std::string authority_of(const std::string& host, uint16_t port, uint16_t default_port) {
  bool v6 = host.find(':') != std::string::npos;
  return port == default_port ? (v6 ? "[" + host + "]" : host) : format_host_port(host, port);
}

// An absolute URL's parts as a proxy needs them: "http://h:1/p?q" -> http, h, 1, "/p?q".
struct Url {
  std::string scheme;  // lower case
  std::string host;    // without brackets
  uint16_t port = 0;   // the scheme's default when absent
  std::string authority;  // as written ("h:1", "[::1]:8080")
  std::string origin_form;  // path and query, "/" when empty
};
core::Result<Url> parse_absolute_url(std::string_view url);
// "scheme://host:port" (host in lower case) a request points to: its absolute-form target, else its
// scheme and authority (the Host field); "" when that is no http(s) URL. A step that changes it sends
// the request elsewhere (map_remote).
std::string named_destination(std::string_view scheme, std::string_view authority, std::string_view target);

}  // namespace sluice::layer
