#include "runtime/endpoint.hpp"

#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>

namespace sluice::runtime {

namespace ip = boost::asio::ip;

namespace {

// IPv4 addresses as IPv4, however written (an IPv4-mapped IPv6 address is the same host).
ip::address plain(const ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) return ip::make_address_v4(ip::v4_mapped, a.to_v6());
  return a;
}

}  // namespace

void SelfAddresses::add_listener(const ip::tcp::endpoint& ep) {
  listeners_.emplace_back(plain(ep.address()), ep.port());
  if (!ep.address().is_unspecified() || read_interfaces_) return;
  read_interfaces_ = true;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return;
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr) continue;
    if (i->ifa_addr->sa_family == AF_INET) {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
      local_.push_back(ip::address_v4(ntohl(sin->sin_addr.s_addr)));
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
      ip::address_v6::bytes_type bytes;
      std::copy(std::begin(sin6->sin6_addr.s6_addr), std::end(sin6->sin6_addr.s6_addr), bytes.begin());
      local_.push_back(ip::address_v6(bytes));
    }
  }
  freeifaddrs(list);
}

bool SelfAddresses::contains(const ip::tcp::endpoint& ep) const {
  ip::address target = plain(ep.address());
  bool this_machine = target.is_loopback() || target.is_unspecified() ||
                      std::find(local_.begin(), local_.end(), target) != local_.end();
  for (const auto& l : listeners_) {
    if (l.port() != ep.port()) continue;
    if (l.address() == target) return true;
    // A wildcard listener: every address of this machine, of its family (:: also takes IPv4 unless
    // the socket is IPv6-only, which ours are not).
    if (l.address().is_unspecified() && this_machine && (l.address().is_v6() || target.is_v4())) return true;
    // Any loopback address reaches a listener on another loopback address only if it is the same;
    // 0.0.0.0 as a target is this machine's loopback.
    if (target.is_unspecified() && l.address().is_loopback() && l.address().is_v4() == target.is_v4()) return true;
  }
  return false;
}

}  // namespace sluice::runtime
