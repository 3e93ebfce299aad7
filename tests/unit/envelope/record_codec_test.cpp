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
  for (const char* k : {"method", "scheme", "authority", "path", "version", "headers", "body"})
    EXPECT_NE(msg->find(k), nullptr) << k;
  // Header value that is not UTF-8 becomes {"base64": ...}; valid ones stay strings, case preserved.
  const auto& hdrs = msg->find("headers")->as_array();
  EXPECT_EQ(hdrs[1].as_array()[0].as_string(), "content-TYPE");
  EXPECT_TRUE(hdrs[2].as_array()[1].is_object());
  auto resp = to_value(recs[2], Target::json);
  EXPECT_TRUE(resp.find("message")->find("body")->is_object());
  EXPECT_EQ(resp.find("variant")->as_string(), "original");
  auto variant = to_value(recs[3], Target::json);
  EXPECT_EQ(variant.find("variant")->as_string(), "modified");
  EXPECT_EQ(variant.find("variant_of")->as_int(), 1);
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
