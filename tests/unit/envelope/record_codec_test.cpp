#include "envelope/record_codec.hpp"

#include <gtest/gtest.h>

#include "core/json.hpp"
#include "support/sample_records.hpp"

using namespace sluice;
using namespace sluice::envelope;

TEST(RecordCodec, EveryRecordRoundTripsThroughBothTargets) {
  for (const auto& r : test_support::sample_records()) {
    for (Target t : {Target::json, Target::cbor}) {
      auto back = from_value(to_value(r, t));
      ASSERT_TRUE(back) << back.error().message;
      EXPECT_EQ(*back, r) << core::json_write(to_value(r, Target::json));
    }
  }
}

TEST(RecordCodec, JsonShapeIsWhatTheSpecSays) {
  auto recs = test_support::sample_records();
  auto v = to_value(recs[1], Target::json);
  for (const char* k : {"type", "stream_id", "flow_id", "seq", "direction", "protocol", "time", "raw", "message",
                        "context", "variant", "anomalies", "tags"})
    EXPECT_NE(v.find(k), nullptr) << k;
  const auto* msg = v.find("message");
  for (const char* k : {"method", "scheme", "authority", "path", "version", "headers", "body_at"})
    EXPECT_NE(msg->find(k), nullptr) << k;
  // The body is at the end of raw, so it is written once: where it starts in raw. Inline on request.
  EXPECT_EQ(msg->find("body"), nullptr);
  EXPECT_EQ(msg->find("body_at")->as_int(), 52);
  auto inline_v = to_value(recs[1], Target::json, {.inline_bodies = true});
  EXPECT_EQ(inline_v.find("message")->find("body")->as_string(), "{\"a\":1}");
  EXPECT_EQ(inline_v.find("message")->find("body_at"), nullptr);
  // Header value that is not UTF-8 becomes {"base64": ...}; valid ones stay strings, case preserved.
  const auto& hdrs = msg->find("headers")->as_array();
  EXPECT_EQ(hdrs[1].as_array()[0].as_string(), "content-TYPE");
  EXPECT_TRUE(hdrs[2].as_array()[1].is_object());
  auto resp = to_value(recs[2], Target::json, {.inline_bodies = true});
  EXPECT_TRUE(resp.find("message")->find("body")->is_object());
  EXPECT_EQ(resp.find("variant")->as_string(), "original");
  auto variant = to_value(recs[3], Target::json);
  EXPECT_EQ(variant.find("variant")->as_string(), "modified");
  EXPECT_EQ(variant.find("variant_of")->as_int(), 1);
}

// A body or payload is written once when raw ends with it, in both encodings, and reads back whole;
// one raw does not hold (chunked, masked, compressed) is written out. An offset past raw is an error.
TEST(RecordCodec, BodiesTheWireHoldsAreWrittenOnce) {
  Envelope e;
  e.stream_id = "s";
  e.flow_id = "f";
  e.protocol = Protocol::http;
  HttpMessage m;
  m.kind = HttpMessage::Kind::response;
  m.status = 200;
  m.version = "HTTP/1.1";
  m.body = std::string(5000, 'x') + "\xff";
  e.raw = "HTTP/1.1 200 OK\r\nContent-Length: 5001\r\n\r\n" + m.body;
  e.message = m;
  for (auto target : {Target::json, Target::cbor}) {
    auto v = to_value(e, target);
    const auto* msg = v.find("message");
    ASSERT_NE(msg->find("body_at"), nullptr);
    EXPECT_EQ(msg->find("body"), nullptr);
    auto back = from_value(v);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(std::get<HttpMessage>(std::get<Envelope>(*back).message).body, m.body);
  }
  // Chunked on the wire: the body is not the end of raw, so it is written out.
  Envelope chunked = e;
  chunked.raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
  std::get<HttpMessage>(chunked.message).body = "abc";
  EXPECT_NE(to_value(chunked, Target::json).find("message")->find("body"), nullptr);
  // A server's WebSocket frame (unmasked) and an uncompressed gRPC message: payload_at.
  Envelope ws;
  ws.protocol = Protocol::ws;
  WsMessage frame;
  frame.opcode = 2;
  frame.payload = "hello";
  ws.raw = std::string("\x82\x05", 2) + "hello";
  ws.message = frame;
  auto wv = to_value(ws, Target::json);
  EXPECT_EQ(wv.find("message")->find("payload_at")->as_int(), 2);
  auto wback = from_value(wv);
  ASSERT_TRUE(wback);
  EXPECT_EQ(std::get<WsMessage>(std::get<Envelope>(*wback).message).payload, "hello");
  // Damage: an offset past the end of raw names the member.
  auto bad = core::json_parse(R"({"type":"envelope","stream_id":"s","flow_id":"f","seq":0,"direction":"send","protocol":"http","time":"2026-01-01T00:00:00.000000Z","raw":"YWJj","message":{"kind":"request","method":"GET","body_at":9},"context":{"conn_id":"c","client":"","server":"","opened":"2026-01-01T00:00:00.000000Z"},"variant":"original","anomalies":[],"tags":{}})");
  ASSERT_TRUE(bad);
  auto r = from_value(std::move(bad).value());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("body_at"), std::string::npos) << r.error().message;
}

TEST(RecordCodec, WrongTypeIsANamedError) {
  auto v = core::json_parse(R"({"type":"envelope","stream_id":"s","seq":"zero","direction":"send"})");
  ASSERT_TRUE(v);
  auto r = from_value(std::move(v).value());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("'seq'"), std::string::npos) << r.error().message;
}

TEST(RecordCodec, UnknownTypeAndProtocolPassThrough) {
  auto text = R"({"type":"envelope","stream_id":"s","flow_id":"f","seq":0,"direction":"send","protocol":"mqtt","time":"2026-01-01T00:00:00.000000Z","raw":"","message":{"kind":"publish","topic":"t"},"context":{"conn_id":"c","client":"","server":"","opened":"2026-01-01T00:00:00.000000Z"},"variant":"original","anomalies":[],"tags":{}})";
  auto v = core::json_parse(text);
  ASSERT_TRUE(v);
  auto r = from_value(std::move(v).value());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(core::json_write(to_value(*r, Target::json)), text);
}

TEST(RecordCodec, DirectJsonWriterMatchesTheValueTree) {
  auto records = test_support::sample_records();
  for (auto& r : test_support::kib_envelopes(20)) records.push_back(r);
  for (const auto& r : records) {
    std::string direct;
    envelope::write_json(r, direct);
    EXPECT_EQ(direct, core::json_write(envelope::to_value(r, envelope::Target::json)));
    if (const auto* e = std::get_if<envelope::Envelope>(&r)) {
      std::string one;
      envelope::write_json(*e, one);
      EXPECT_EQ(one, direct);
    }
  }
}
