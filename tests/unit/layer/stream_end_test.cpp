// The stream-end rule (formats/STREAM.md 2.3): the connection's own stream always ends, last; a
// stream's end also ends the streams nested in it, which may end earlier on their own.
#include <gtest/gtest.h>

#include "layer/layer.hpp"
#include "layer/root_layer.hpp"
#include "support/layer_driver.hpp"
#include "support/stream_rule.hpp"

using namespace sluice;
using namespace sluice::layer;
using test_support::LayerDriver;

namespace {

struct Fixture {
  explicit Fixture(const std::string& mode)
      : ctx("c1", "127.0.0.1:50000", core::Timestamp{0}, *parse_mode_spec(mode), &options) {}
  ProxyOptions options;
  ConnectionContext ctx;
};

// The stream ends a capture holds, in order: "<stream> <reason> <sent>/<received>".
std::vector<std::string> ends(const LayerDriver& d) {
  std::vector<std::string> out;
  for (const auto& e : d.records_of<envelope::EndRecord>())
    if (e.scope == "stream")
      out.push_back(e.stream_id + " " + e.reason + " " + std::to_string(e.bytes_sent) + "/" +
                    std::to_string(e.bytes_received));
  return out;
}

}  // namespace

TEST(StreamEnd, ANestedStreamEndsBeforeTheEnclosingStreamsEndInTheSameTurn) {
  Commands out;
  out.push_back(CloseConnection{kClientConn, false});
  end_stream(out, 0, "c1", "closed", core::Timestamp{0}, 10, 20);  // a child layer owns the connection's stream
  end_stream(out, 0, "c1.2", "closed", core::Timestamp{0}, 5, 6);  // its parent, the TLS layer, ends its own
  end_stream(out, 0, "c10", "closed", core::Timestamp{0}, 0, 0);   // not nested in c1: last
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(describe(out[1]), "EmitRecord(end stream c1.2 closed sent=5 received=6)");
  EXPECT_EQ(describe(out[2]), "EmitRecord(end stream c1 closed sent=10 received=20)");
  EXPECT_EQ(describe(out[3]), "EmitRecord(end stream c10 closed sent=0 received=0)");
  std::string reason;
  EXPECT_TRUE(closes_client(out, 0, reason));
  EXPECT_EQ(reason, "closed");
  EXPECT_FALSE(closes_client(out, 1, reason));
  EXPECT_TRUE(ends_stream(out, 0, "c1"));
  EXPECT_FALSE(ends_stream(out, 0, "c1.1"));
}

TEST(StreamEnd, ACONNECTTunnelEndsThenTheConnectionWithEveryByte) {
  Fixture f("regular@0");
  LayerDriver d(make_root_layer(f.ctx));
  const std::string connect = "CONNECT 127.0.0.1:7000 HTTP/1.1\r\nHost: 127.0.0.1:7000\r\n\r\n";
  d.client(connect);
  ASSERT_EQ(d.sent[kClientConn], "HTTP/1.1 200 Connection established\r\n\r\n");
  d.client("ping");
  d.server("pong!");
  EXPECT_EQ(d.sent[d.last_opened], "ping");
  EXPECT_TRUE(ends(d).empty());  // nothing ends while the tunnel is open
  d.close(kClientConn);
  d.close(d.last_opened);
  // The tunnel's sub-stream, then the connection's stream: the CONNECT and the tunnel's bytes.
  EXPECT_EQ(ends(d), (std::vector<std::string>{"c1.1 closed 4/5",
                                               "c1 closed " + std::to_string(connect.size() + 4) + "/5"}));
  EXPECT_EQ(test_support::stream_rule_breach(d.records, "c1", d.closed), "");
  EXPECT_EQ(std::get<envelope::EndRecord>(d.records.back()).stream_id, "c1");  // the connection's last record
}

TEST(StreamEnd, AConnectionWhoseRecordsAreAllInASubStreamStillEnds) {
  Fixture f("tcp:127.0.0.1:7000@0");
  LayerDriver d(make_root_layer(f.ctx));
  d.client("hello");
  d.server("HELLO, you");
  d.close(kClientConn);
  d.close(d.last_opened);
  EXPECT_EQ(ends(d), (std::vector<std::string>{"c1.1 closed 5/10", "c1 closed 5/10"}));
  EXPECT_EQ(test_support::stream_rule_breach(d.records, "c1", d.closed), "");
}

TEST(StreamEnd, AClientThatLeavesBeforeSayingAnythingLeavesTheConnectionsEnd) {
  Fixture f("reverse:http://127.0.0.1:7000@0");
  LayerDriver d(make_root_layer(f.ctx));
  d.close(kClientConn);
  EXPECT_EQ(ends(d), (std::vector<std::string>{"c1 closed 0/0"}));
  EXPECT_EQ(test_support::stream_rule_breach(d.records, "c1", d.closed), "");
}

TEST(StreamEnd, AnHttpConnectionEndsOnceWithItsOwnReason) {
  Fixture f("reverse:http://127.0.0.1:7000@0");
  LayerDriver d(make_root_layer(f.ctx));
  const std::string request = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  const std::string response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  d.client(request);
  d.server(response);
  d.close(kClientConn);
  EXPECT_EQ(ends(d), (std::vector<std::string>{"c1 closed " + std::to_string(request.size()) + "/" +
                                               std::to_string(response.size())}));
  EXPECT_EQ(test_support::stream_rule_breach(d.records, "c1", d.closed), "");
}
