// RequestPicker: each flow's request once, in stream order, remembering little on an endless input.
#include <gtest/gtest.h>

#include "export/export.hpp"

namespace sluice::exporter {
namespace {

envelope::Record request(const std::string& stream, const std::string& flow) {
  envelope::Envelope e;
  e.stream_id = stream;
  e.flow_id = flow;
  e.protocol = envelope::Protocol::http;
  envelope::HttpMessage m;
  m.kind = envelope::HttpMessage::Kind::request;
  m.method = "GET";
  m.path = "/" + flow;
  e.message = std::move(m);
  return e;
}

envelope::Record end(const std::string& stream) {
  envelope::EndRecord e;
  e.stream_id = stream;
  e.reason = "closed";
  return e;
}

TEST(RequestPicker, EachFlowOnceAndALongConnectionRemembersOnlyItsLastFlows) {
  RequestPicker picker;
  size_t picked = 0, most = 0;
  for (int x = 0; x < 5000; ++x) {
    std::string flow = "c-" + std::to_string(x);
    picked += picker.pick(request("c", flow)) != nullptr;
    picked += picker.pick(request("c", flow)) != nullptr;  // the same flow again: not exported twice
    most = std::max(most, picker.remembered());
  }
  EXPECT_EQ(picked, 5000u);
  EXPECT_EQ(most, RequestPicker::kKeep);
  EXPECT_EQ(picker.pick(request("c", "c-4999")), nullptr);  // recent: still known
  picker.pick(end("c"));
  EXPECT_EQ(picker.remembered(), 0u);
}

TEST(RequestPicker, AStreamsEndForgetsItsSubStreamsFlows) {
  RequestPicker picker;
  EXPECT_NE(picker.pick(request("c.1", "c.1-0")), nullptr);
  EXPECT_NE(picker.pick(request("c.3", "c.3-0")), nullptr);
  EXPECT_NE(picker.pick(request("c-x", "c-x-0")), nullptr);  // another connection whose id starts alike
  picker.pick(end("c"));
  EXPECT_EQ(picker.remembered(), 1u);
}

}  // namespace
}  // namespace sluice::exporter
