// gRPC-Web units: what becomes of a message once every unit has its verdict (both HTTP layers use it).
#include <gtest/gtest.h>

#include "codec/grpc.hpp"
#include "core/base64.hpp"
#include "layer/grpc_web.hpp"

using namespace sluice;
using namespace sluice::layer;

namespace {

envelope::Envelope message(bool request, std::string content_type, std::string body, envelope::Headers extra = {}) {
  envelope::HttpMessage m;
  m.kind = request ? envelope::HttpMessage::Kind::request : envelope::HttpMessage::Kind::response;
  m.version = "HTTP/1.1";
  m.method = "POST";
  m.path = request ? "http://h:1/pkg.S/Call" : "";
  m.status = request ? 0 : 200;
  m.headers = {{"Host", "h:1"}, {"Content-Type", std::move(content_type)}, {"X-Md", "1"}};
  for (auto& h : extra) m.headers.push_back(std::move(h));
  m.body = std::move(body);
  envelope::Envelope e;
  e.direction = request ? envelope::Direction::send : envelope::Direction::receive;
  e.message = std::move(m);
  return e;
}

// Every unit answered `next` (its envelope as it came), then `change` applied to the verdicts.
template <typename Change>
GrpcWebOutcome judge(const envelope::Envelope& http, Change change) {
  GrpcWebUnits call;
  call.http = http;
  call.units = grpc_web_units(http);
  for (size_t i = 0; i < call.units.size(); ++i) {
    call.ids.push_back(i + 1);
    call.verdicts.push_back(PipelineVerdict{i + 1, Verdict::forward, call.units[i]});
  }
  change(call.verdicts);
  return grpc_web_outcome(call);
}

}  // namespace

TEST(GrpcWebUnits, UnchangedUnitsLeaveTheMessageAlone) {
  auto http = message(true, "application/grpc-web+proto", codec::grpc_frame("a") + codec::grpc_frame("b"));
  ASSERT_EQ(grpc_web_units(http).size(), 3u);  // start, two messages
  auto o = judge(http, [](auto&) {});
  EXPECT_EQ(o.kind, GrpcWebOutcome::Kind::send);
  EXPECT_FALSE(o.changed);
}

TEST(GrpcWebUnits, TextFormMadeAgainWithoutTheDroppedMessageAndWithTheNewStart) {
  auto http = message(true, "application/grpc-web-text", core::base64_encode(codec::grpc_frame("a") + codec::grpc_frame("b")),
                      {{"grpc-timeout", "1S"}});
  auto o = judge(http, [](auto& v) {
    auto& start = std::get<envelope::GrpcStartMessage>(v[0]->envelope.message);
    start.method = "Other";
    start.metadata.push_back({"x-new", "2"});
    v[0]->envelope.modified = true;
    v[1]->verdict = Verdict::drop;
  });
  ASSERT_TRUE(o.changed);
  EXPECT_EQ(o.changed->path, "http://h:1/pkg.S/Other");
  EXPECT_EQ(o.changed->headers, (envelope::Headers{{"Host", "h:1"}, {"Content-Type", "application/grpc-web-text"},
                                                   {"grpc-timeout", "1S"}, {"X-Md", "1"}, {"x-new", "2"}}));
  EXPECT_EQ(o.changed->body, core::base64_encode(codec::grpc_frame("b")));
}

TEST(GrpcWebUnits, AChangedEndIsANewTrailerFrameOrNewHeaders) {
  auto framed = message(false, "application/grpc-web", codec::grpc_frame("x") +
                                                           codec::grpc_web_trailer_frame({{"grpc-status", "0"}, {"x-t", "1"}}));
  auto set_status = [](auto& v) {
    auto& end = std::get<envelope::GrpcEndMessage>(v.back()->envelope.message);
    end.status = 3;
    end.message = "bad";
    v.back()->envelope.modified = true;
  };
  auto o = judge(framed, set_status);
  ASSERT_TRUE(o.changed);
  EXPECT_EQ(o.changed->body, codec::grpc_frame("x") + codec::grpc_web_trailer_frame({{"x-t", "1"}, {"grpc-status", "3"},
                                                                                      {"grpc-message", "bad"}}));
  auto trailers_only = message(false, "application/grpc-web", "", {{"grpc-status", "0"}});
  o = judge(trailers_only, set_status);
  ASSERT_TRUE(o.changed);
  EXPECT_EQ(o.changed->body, "");
  EXPECT_EQ(o.changed->headers.back(), (envelope::Header{"grpc-message", "bad"}));
  EXPECT_EQ(o.changed->headers[o.changed->headers.size() - 2], (envelope::Header{"grpc-status", "3"}));
  // An end cannot be left out: dropping it kills the stream.
  EXPECT_EQ(judge(framed, [](auto& v) { v.back()->verdict = Verdict::drop; }).kind, GrpcWebOutcome::Kind::kill);
}

TEST(GrpcWebUnits, ADroppedStartIsRefusedInTheRequestsForm) {
  auto http = message(true, "application/grpc-web-text+proto", core::base64_encode(codec::grpc_frame("a")));
  auto o = judge(http, [](auto& v) {
    v[0]->verdict = Verdict::drop;
    v[0]->decided_by = "step:x";
  });
  ASSERT_EQ(o.kind, GrpcWebOutcome::Kind::respond);
  const auto& r = std::get<envelope::HttpMessage>(o.reply->message);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers, (envelope::Headers{{"content-type", "application/grpc-web-text+proto"}, {"grpc-status", "7"},
                                          {"grpc-message", "the call was dropped by step:x"}}));
  EXPECT_NE(o.reply->raw.find("Content-Length: 0\r\n"), std::string::npos);
}

TEST(GrpcWebUnits, MalformedBodiesAreNoUnits) {
  EXPECT_TRUE(grpc_web_units(message(true, "application/grpc-web", std::string("\0\0\0\0\x09" "abc", 8))).empty());
  EXPECT_TRUE(grpc_web_units(message(true, "application/json", "{}")).empty());
}
