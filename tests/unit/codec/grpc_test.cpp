// gRPC message framing: the prefix says the flag and the length, big-endian, as the layers parse it.
#include <gtest/gtest.h>

#include "codec/grpc.hpp"
#include "core/base64.hpp"
#include "layer/grpc.hpp"

using namespace sluice;

TEST(GrpcFrame, PrefixAndPayloadParseBack) {
  std::string payload(300, 'p');
  std::string frame = codec::grpc_frame(payload);
  ASSERT_EQ(frame.size(), 305u);
  EXPECT_EQ(frame.substr(0, 5), std::string("\0\0\0\x01\x2c", 5));
  layer::LpmParser parser;
  int seen = 0;
  parser.feed(frame + codec::grpc_frame("", true), [&](uint8_t flag, core::ByteView lpm) {
    EXPECT_EQ(flag, seen == 0 ? 0 : 1);
    EXPECT_EQ(lpm.substr(5), seen == 0 ? payload : "");
    ++seen;
  });
  EXPECT_EQ(seen, 2);
}

TEST(GrpcWebEncode, TrailerFrameAndTextBody) {
  std::string trailer = codec::grpc_web_trailer_frame({{"Grpc-Status", "5"}, {"grpc-message", "gone"}});
  EXPECT_EQ(trailer, std::string("\x80\0\0\0\x24", 5) + "grpc-status: 5\r\ngrpc-message: gone\r\n");
  std::string frames = codec::grpc_frame("hi") + trailer;
  EXPECT_EQ(codec::grpc_web_body(frames, false), frames);
  EXPECT_EQ(codec::grpc_web_body(frames, true), core::base64_encode(frames));
}
