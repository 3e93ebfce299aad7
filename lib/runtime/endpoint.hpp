#pragma once
// Address formatting shared by the runtime: "127.0.0.1:80", "[::1]:80".
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/ip/tcp.hpp>

#include "layer/mode_spec.hpp"

namespace sluice::runtime {

using layer::format_host_port;

inline std::string format_endpoint(const boost::asio::ip::tcp::endpoint& ep) {
  return format_host_port(ep.address().to_string(), ep.port());
}

// The proxy's own listening addresses, so that it never connects to itself (a client naming the
// proxy as its target, directly or by a name that resolves to it, would make it connect to itself
// again and again). A listener on a wildcard address (0.0.0.0, ::) is reached through every address
// of this machine: loopback, the unspecified address, and each interface's address (read once).
class SelfAddresses {
 public:
  void add_listener(const boost::asio::ip::tcp::endpoint& ep);
  // Whether connecting to `ep` would reach one of the listeners.
  bool contains(const boost::asio::ip::tcp::endpoint& ep) const;
  bool empty() const { return listeners_.empty(); }

 private:
  std::vector<boost::asio::ip::tcp::endpoint> listeners_;
  std::vector<boost::asio::ip::address> local_;  // this machine's interface addresses
  bool read_interfaces_ = false;
};

}  // namespace sluice::runtime
