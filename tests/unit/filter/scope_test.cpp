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

namespace {

sluice::envelope::Envelope http(const std::string& flow, bool request, const std::string& path) {
  sluice::envelope::Envelope e;
  e.stream_id = "c1";
  e.flow_id = flow;
  e.protocol = sluice::envelope::Protocol::http;
  sluice::envelope::HttpMessage m;
  m.kind = request ? sluice::envelope::HttpMessage::Kind::request : sluice::envelope::HttpMessage::Kind::response;
  m.method = "GET";
  m.path = path;
  m.status = 200;
  e.message = m;
  return e;
}

}  // namespace

TEST(FlowScope, JudgedAtTheRequestRememberedByFlowForgottenAtItsEnd) {
  using namespace sluice;
  filter::FlowScope scope(*filter::Filter::parse("~u /in"));
  EXPECT_FALSE(scope.outside(http("c1-0", true, "/in")));
  EXPECT_FALSE(scope.outside(http("c1-0", false, "")));
  EXPECT_TRUE(scope.outside(http("c1-1", true, "/out")));
  auto variant = http("c1-1", true, "/in");  // the proxy's own variant of it: the flow decides
  variant.modified = true;
  EXPECT_TRUE(scope.outside(variant));
  EXPECT_TRUE(scope.outside(http("c1-1", false, "")));
  envelope::ErrorRecord err;
  err.flow_id = "c1-1";
  EXPECT_TRUE(scope.outside(envelope::Record{err}));
  envelope::EndRecord stream_end;
  stream_end.stream_id = "c1";
  EXPECT_FALSE(scope.outside(envelope::Record{stream_end}));  // a connection's end stays
  envelope::EndRecord flow_end;
  flow_end.scope = "flow";
  flow_end.flow_id = "c1-1";
  EXPECT_TRUE(scope.outside(envelope::Record{flow_end}));
  EXPECT_FALSE(scope.outside(http("c1-1", false, "")));  // forgotten once it ended
  envelope::Envelope tls;
  tls.stream_id = "c1.0";
  tls.flow_id = "c1.0-tls";
  tls.protocol = envelope::Protocol::tls_handshake;
  tls.message = envelope::TlsHandshakeMessage{};
  EXPECT_FALSE(scope.outside(tls));
  EXPECT_EQ(scope.left_out(), 1u);
}
