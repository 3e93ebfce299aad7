#include "layer/regular_layer.hpp"

#include <gtest/gtest.h>

#include "support/playbook.hpp"

using namespace sluice;
using namespace sluice::layer;
using test_support::data;
using test_support::Playbook;

namespace {
ConnectionContext make_ctx() {
  return ConnectionContext("c1", "127.0.0.1:50000", core::Timestamp{0}, *parse_mode_spec("regular@0"));
}
const envelope::HttpMessage& http(const Command& c) {
  return std::get<envelope::HttpMessage>(std::get<envelope::Envelope>(std::get<EmitRecord>(c).record).message);
}
}  // namespace

TEST(RegularLayer, ConnectOpensATunnelOfRawChunks) {
  auto ctx = make_ctx();
  Playbook p(std::make_unique<RegularLayer>(ctx));
  p >> Start{};
  p >> data(kClientConn, "CONNECT 127.0.0.1:7000 HTTP/1.1\r\nHost: 127.0.0.1:7000\r\n\r\n")
    << "EmitRecord(send http seq=0 57 bytes \"CONNECT 127.0.0.1:7000 HTTP/1.1\\x0d...\")"
    << "OpenConnection(#1, conn=1, 127.0.0.1:7000)";
  p >> OpenCompleted{1, 1, {}, {}, "127.0.0.1:7000"}
    << "SendData(conn=0, 39 bytes \"HTTP/1.1 200 Connection establis...\")"
    << "EmitRecord(receive http seq=1 39 bytes \"HTTP/1.1 200 Connection establis...\")";
  p >> data(kClientConn, "ping") << "RunPipeline(#2, send raw seq=0 4 bytes \"ping\")";
  p >> p.forward(2) << "SendData(conn=1, 4 bytes \"ping\")";
  EXPECT_TRUE(p.check());
  const auto& req = http(p.history()[0]);
  EXPECT_EQ(req.method, "CONNECT");
  EXPECT_EQ(req.authority, "127.0.0.1:7000");
  const auto& run = std::get<RunPipeline>(p.history()[4]);
  EXPECT_EQ(run.envelope.stream_id, "c1.1");  // the tunnel is a sub-stream
}

TEST(RegularLayer, UnreachableServerIs502WithTheReason) {
  auto ctx = make_ctx();
  Playbook p(std::make_unique<RegularLayer>(ctx));
  p >> Start{};
  p >> data(kClientConn, "CONNECT 127.0.0.1:9 HTTP/1.1\r\n\r\n")
    << "EmitRecord(send http seq=0 32 bytes \"CONNECT 127.0.0.1:9 HTTP/1.1\\x0d\\x0a\\x0d\\x0a\")"
    << "OpenConnection(#1, conn=1, 127.0.0.1:9)";
  p >> OpenCompleted{1, 1, "connect_refused", "connection refused by 127.0.0.1:9", {}}
    << "SendData(conn=0, 181 bytes \"HTTP/1.1 502 Bad Gateway\\x0d\\x0aConten...\")"
    << "EmitRecord(receive http seq=1 181 bytes \"HTTP/1.1 502 Bad Gateway\\x0d\\x0aConten...\")"
    << "EmitRecord(error c1.1 connect_refused: connection refused by 127.0.0.1:9)"
    << "CloseConnection(conn=0)" << "EmitRecord(end stream c1.1 error sent=0 received=0)";
  EXPECT_TRUE(p.check());
  EXPECT_NE(http(p.history()[3]).body.find("connection refused by 127.0.0.1:9"), std::string::npos);
}

TEST(RegularLayer, MalformedRequestIs400WithAnAnomaly) {
  auto ctx = make_ctx();
  Playbook p(std::make_unique<RegularLayer>(ctx));
  p >> Start{};
  p >> data(kClientConn, "CONNECT a:1 HTTP/1.1\r\nHost : a\r\n\r\n")
    << "EmitRecord(send http seq=0 34 bytes \"CONNECT a:1 HTTP/1.1\\x0d\\x0aHost : a\\x0d\\x0a\\x0d\\x0a\")";
  p.nothing();  // moves the rest (response, close, end) into history: asserted below, not byte for byte
  const auto& cmds = p.history();
  const auto& env = std::get<envelope::Envelope>(std::get<EmitRecord>(cmds[0]).record);
  ASSERT_EQ(env.anomalies.size(), 1u);
  EXPECT_EQ(env.anomalies[0].name, "space_before_colon");
  bool got_400 = false;
  for (const auto& c : cmds)
    if (const auto* s = std::get_if<SendData>(&c)) got_400 = s->data.starts_with("HTTP/1.1 400 Bad Request\r\n");
  EXPECT_TRUE(got_400);
}

TEST(RegularLayer, AbsoluteFormIs501ForNow) {
  auto ctx = make_ctx();
  Playbook p(std::make_unique<RegularLayer>(ctx));
  p >> Start{};
  p >> data(kClientConn, "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n");
  p.nothing();
  const auto& cmds = p.history();
  ASSERT_GE(cmds.size(), 4u);
  EXPECT_EQ(http(cmds[0]).authority, "example.com");
  const auto* s = std::get_if<SendData>(&cmds[1]);
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->data.starts_with("HTTP/1.1 501 Not Implemented\r\n"));
  EXPECT_TRUE(std::holds_alternative<CloseConnection>(cmds[3]));
}
