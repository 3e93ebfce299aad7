#pragma once
// Address formatting shared by the runtime: "127.0.0.1:80", "[::1]:80".
#include <string>
#include <utility>

#include <boost/asio/ip/tcp.hpp>

#include "layer/mode_spec.hpp"

namespace sluice::runtime {

using layer::format_host_port;

inline std::string format_endpoint(const boost::asio::ip::tcp::endpoint& ep) {
  return format_host_port(ep.address().to_string(), ep.port());
}

}  // namespace sluice::runtime
