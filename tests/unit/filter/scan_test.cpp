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

// Every member the scanner reads (with reads_all) is what the full decoder read from `line`.
void expect_read_like_full(const envelope::Envelope& e, std::string_view line) {
  auto f = full(line);
  EXPECT_EQ(e.stream_id, f.stream_id);
  EXPECT_EQ(e.flow_id, f.flow_id);
  EXPECT_EQ(e.seq, f.seq);
  EXPECT_EQ(e.direction, f.direction);
  EXPECT_EQ(e.protocol, f.protocol);
  EXPECT_EQ(e.overlay, f.overlay);
  EXPECT_EQ(e.modified, f.modified);
  EXPECT_EQ(e.context.client, f.context.client);
  EXPECT_EQ(e.context.server, f.context.server);
  EXPECT_EQ(e.anomalies, f.anomalies);
  EXPECT_EQ(e.tags, f.tags);
  const auto& m = std::get<envelope::HttpMessage>(e.message);
  const auto& fm = std::get<envelope::HttpMessage>(f.message);
  EXPECT_EQ(m.kind, fm.kind);
  EXPECT_EQ(m.method, fm.method);
  EXPECT_EQ(m.authority, fm.authority);
  EXPECT_EQ(m.status, fm.status);
  EXPECT_EQ(m.headers, fm.headers);
  EXPECT_EQ(m.body, fm.body);
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
  expect_read_like_full(e, line);
  EXPECT_EQ(std::get<envelope::HttpMessage>(e.message).body, "caf\xc3\xa9 \xf0\x9f\x98\x80 \\ / \n");
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
                          R"({"type":"header","format":"sluice-stream"})", R"({"type":"envelope","flow_id":"\q"})",
                          // a repeated member: the full decoder decides which one counts
                          R"({"type":"envelope","flow_id":"a","flow_id":"b"})",
                          R"({"type":"envelope","message":{"kind":"request","authority":"a","authority":"b"}})",
                          R"({"type":"envelope","context":{"server":"a","server":"b"}})"}) {
    EXPECT_FALSE(filter::scan_jsonl(bad)) << bad;
  }
}

TEST(ScanJsonl, AnEnvelopeReusedLineAfterLineKeepsNothingOfTheLastOne) {
  std::string first =
      R"({"type":"envelope","stream_id":"s1","flow_id":"f1","seq":4,"direction":"receive","protocol":"http",)"
      R"("overlay":"h1-chunk","variant":"modified","message":{"kind":"response","status":500,"headers":[["A","1"],["B","2"]],)"
      R"("body":"x"},"context":{"client":"c","server":"h:1"},"anomalies":[{"name":"obs_fold"}],"tags":{"k":"v"}})";
  std::string second =
      R"({"type":"envelope","stream_id":"s2","flow_id":"f2","seq":0,"direction":"send","protocol":"http","message":{"method":"PUT","kind":"request",)"
      R"("authority":"h","headers":[["C","3"]]}})";
  envelope::Envelope e;
  ASSERT_TRUE(filter::scan_envelope(first, filter::reads_all, e));
  ASSERT_TRUE(filter::scan_envelope(second, filter::reads_all, e));  // kind not first: looked for
  expect_read_like_full(e, second);
}

TEST(ScanJsonl, ReadsOnlyWhatTheFilterNeeds) {
  std::string line =
      R"({"type":"envelope","stream_id":"s","flow_id":"f","protocol":"http","message":{"kind":"request","method":"GET",)"
      R"("authority":"h","headers":[["A","1"]],"body":"b"},"context":{"client":"c","server":"h:1"}})";
  envelope::Envelope e;
  ASSERT_TRUE(filter::scan_envelope(line, 0, e));
  const auto& m = std::get<envelope::HttpMessage>(e.message);
  EXPECT_EQ(m.authority, "h");  // always: ~d, ~u and ~m read it
  EXPECT_TRUE(m.headers.empty());
  EXPECT_TRUE(m.body.empty());
  EXPECT_TRUE(e.context.server.empty());
  ASSERT_TRUE(filter::scan_envelope(line, filter::reads_headers | filter::reads_context, e));
  EXPECT_EQ(std::get<envelope::HttpMessage>(e.message).headers.size(), 1u);
  EXPECT_TRUE(std::get<envelope::HttpMessage>(e.message).body.empty());
  EXPECT_EQ(e.context.server, "h:1");
  // What each operator reads is what the filter asks for.
  EXPECT_EQ(filter::Filter::parse("~d x & ~c 200 | ~m GET")->needs(), 0u);
  EXPECT_EQ(filter::Filter::parse("~h x")->needs(), static_cast<uint32_t>(filter::reads_headers));
  // (a body operator reads the headers too: Content-Encoding says how to decode the body)
  EXPECT_EQ(filter::Filter::parse("!~bs x")->needs(), static_cast<uint32_t>(filter::reads_bodies | filter::reads_headers));
  EXPECT_EQ(filter::Filter::parse("~a | ~src x")->needs(), static_cast<uint32_t>(filter::reads_headers | filter::reads_context));
  // Not envelopes: declined (the caller decodes them).
  EXPECT_FALSE(filter::scan_envelope(R"({"type":"end","stream_id":"s"})", filter::reads_all, e));
  EXPECT_FALSE(filter::scan_envelope(R"({"type":"envelope","stream_id":"s"} x)", filter::reads_all, e));
}
