// SelfAddresses: which targets would reach the proxy's own listeners.
#include <gtest/gtest.h>

#include "runtime/endpoint.hpp"

using namespace sluice::runtime;
namespace ip = boost::asio::ip;

namespace {
ip::tcp::endpoint ep(const char* address, unsigned short port) { return {ip::make_address(address), port}; }
}  // namespace

TEST(SelfAddresses, ALoopbackListenerIsReachedByItsAddressAndTheUnspecifiedOne) {
  SelfAddresses self;
  self.add_listener(ep("127.0.0.1", 8080));
  EXPECT_TRUE(self.contains(ep("127.0.0.1", 8080)));
  EXPECT_TRUE(self.contains(ep("::ffff:127.0.0.1", 8080)));  // IPv4-mapped: the same host
  EXPECT_TRUE(self.contains(ep("0.0.0.0", 8080)));           // Linux connects 0.0.0.0 to loopback
  EXPECT_FALSE(self.contains(ep("127.0.0.1", 8081)));
  EXPECT_FALSE(self.contains(ep("127.0.0.2", 8080)));  // another loopback address: another socket
  EXPECT_FALSE(self.contains(ep("::1", 8080)));
}

TEST(SelfAddresses, AWildcardListenerIsReachedThroughEveryAddressOfThisMachine) {
  SelfAddresses self;
  self.add_listener(ep("::", 3128));
  EXPECT_TRUE(self.contains(ep("::1", 3128)));
  EXPECT_TRUE(self.contains(ep("127.0.0.1", 3128)));
  EXPECT_TRUE(self.contains(ep("127.1.2.3", 3128)));
  EXPECT_FALSE(self.contains(ep("192.0.2.1", 3128)));  // TEST-NET: not this machine
  EXPECT_FALSE(self.contains(ep("127.0.0.1", 3129)));
  SelfAddresses v4;
  v4.add_listener(ep("0.0.0.0", 3128));
  EXPECT_TRUE(v4.contains(ep("127.0.0.1", 3128)));
  EXPECT_FALSE(v4.contains(ep("::1", 3128)));  // an IPv4 socket takes no IPv6
}
