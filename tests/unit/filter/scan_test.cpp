// The partial JSONL reader the filter uses: what it reads equals what the full decoder reads, for every
// member a filter looks at, escapes and base64 included; what it cannot read is an error, never garbage.
#include <gtest/gtest.h>

#include "core/json.hpp"
#include "envelope/record_codec.hpp"
#include "filter/scan.hpp"

using namespace sluice;

namespace {

envelope::Envelope full(std::string_view line) {
  auto v = core::json_parse(line);
  EXPECT_TRUE(v);
  auto r = envelope::from_value(std::move(*v));
  EXPECT_TRUE(r);
  return std::get<envelope::Envelope>(*r);
}

}  // namespace

TEST(ScanJsonl, ReadsWhatTheFilterNeedsLikeTheFullDecoder) {
  std::string line =
      R"({"type":"envelope","stream_id":"s\u00e91","flow_id":"f\"1","seq":3,"direction":"receive","protocol":"http",)"
      R"("time":"2026-11-21T10:00:01.000000Z","raw":"SFRUUC8xLjEgMjAw","message":{"kind":"response","status":404,)"
      R"("reason":"Not Found","version":"HTTP/1.1","headers":[["Content-Type","text/html"],["X-Bin",{"base64":"AP8="}]],)"
      R"("body":"caf\u00e9 \ud83d\ude00 \\ \/ \n","x_unknown":{"a":[1,2,{"b":null}]}},)"
      R"("context":{"conn_id":"c1","client":"127.0.0.1:1","server":"h:80","opened":"2026-11-21T10:00:00.000000Z"},)"
      R"("variant":"modified","variant_of":2,"modified_by":"t","anomalies":[{"name":"obs_fold","detail":"d"}],)"
      R"("tags":{"k":"v"},"future":[true,false,1.5e3]})";
  auto scanned = filter::scan_jsonl(line);
  ASSERT_TRUE(scanned) << scanned.error().message;
  const auto& e = std::get<envelope::Envelope>(*scanned);
  auto f = full(line);
  EXPECT_EQ(e.stream_id, f.stream_id);
  EXPECT_EQ(e.flow_id, f.flow_id);
  EXPECT_EQ(e.seq, f.seq);
  EXPECT_EQ(e.direction, f.direction);
  EXPECT_EQ(e.protocol, f.protocol);
  EXPECT_EQ(e.modified, f.modified);
  EXPECT_EQ(e.context.client, f.context.client);
  EXPECT_EQ(e.context.server, f.context.server);
  EXPECT_EQ(e.anomalies, f.anomalies);
  EXPECT_EQ(e.tags, f.tags);
  const auto& m = std::get<envelope::HttpMessage>(e.message);
  const auto& fm = std::get<envelope::HttpMessage>(f.message);
  EXPECT_EQ(m.status, fm.status);
  EXPECT_EQ(m.headers, fm.headers);
  EXPECT_EQ(m.body, fm.body);
  EXPECT_EQ(m.body, "caf\xc3\xa9 \xf0\x9f\x98\x80 \\ / \n");
}

TEST(ScanJsonl, RawIsReadForRawChunksOnly) {
  auto raw = filter::scan_jsonl(
      R"({"type":"envelope","raw":"UElORw0K","stream_id":"s","flow_id":"s","seq":0,"direction":"send","protocol":"raw","message":{"kind":"chunk"}})");
  ASSERT_TRUE(raw);
  EXPECT_EQ(std::get<envelope::Envelope>(*raw).raw, "PING\r\n");
  auto http = filter::scan_jsonl(
      R"({"type":"envelope","raw":"UElORw0K","stream_id":"s","flow_id":"f","protocol":"http","message":{"kind":"request","method":"GET"}})");
  ASSERT_TRUE(http);
  EXPECT_EQ(std::get<envelope::Envelope>(*http).raw, "");  // skipped: the filter never reads it
}

TEST(ScanJsonl, WhatItCannotReadIsAnError) {
  for (const char* bad : {R"({"type":"envelope","seq":)", R"({"type":"envelope","seq":1.5})", R"([1,2])",
                          R"({"type":"envelope","message":{"kind":"request","headers":[["a"]]}})",
                          R"({"type":"header","format":"sluice-stream"})", R"({"type":"envelope","flow_id":"\q"})"}) {
    EXPECT_FALSE(filter::scan_jsonl(bad)) << bad;
  }
}
