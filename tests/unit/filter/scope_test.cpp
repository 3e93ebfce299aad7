// mitmproxy's ignore_hosts / allow_hosts as HostScope judges them: any name matching (host or SNI),
// searched, any case; allow is the opposite; both at once refused.
#include <gtest/gtest.h>

#include "filter/scope.hpp"

using sluice::filter::HostScope;

TEST(HostScope, IgnoreAllowAndNeither) {
  auto none = HostScope::make({}, {});
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->ignored("anything.example", "x"));
  auto ignore = HostScope::make({}, {R"(\.internal$)", "^BANK\\."});
  ASSERT_TRUE(ignore);
  EXPECT_TRUE(ignore->ignored("db.internal"));
  EXPECT_TRUE(ignore->ignored("10.0.0.1", "bank.example"));  // the SNI decides when the host does not
  EXPECT_FALSE(ignore->ignored("api.example", "api.example"));
  EXPECT_EQ(ignore->flag(), "--ignore-hosts");
  auto allow = HostScope::make({"example\\.com"}, {});
  ASSERT_TRUE(allow);
  EXPECT_FALSE(allow->ignored("api.example.com"));
  EXPECT_FALSE(allow->ignored("10.0.0.1", "api.example.com"));
  EXPECT_TRUE(allow->ignored("other.test", "other.test"));
  EXPECT_FALSE(allow->ignored("", ""));  // nothing to judge: not ignored, as mitmproxy
  EXPECT_EQ(allow->flag(), "--allow-hosts");
  EXPECT_EQ(HostScope::make({"a"}, {"b"}).error().message, "--allow-hosts and --ignore-hosts are mutually exclusive");
  EXPECT_FALSE(HostScope::make({}, {"(x"}));
}
