#pragma once
// Address formatting shared by the runtime: "127.0.0.1:80", "[::1]:80".
#include <utility>

#include <boost/asio/ip/tcp.hpp>
#include <string>

namespace sluice::runtime {

inline std::string format_host_port(const std::string& host, uint16_t port) {
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

inline std::string format_endpoint(const boost::asio::ip::tcp::endpoint& ep) {
  return format_host_port(ep.address().to_string(), ep.port());
}

}  // namespace sluice::runtime
