// The event-stream parser, at every split point of the body, against the rules of the HTML standard.
#include <gtest/gtest.h>

#include <algorithm>

#include "codec/sse.hpp"

using namespace sluice;
using namespace sluice::codec;

namespace {

// The events (blocks with a field) of `body` fed in two pieces; `all` gets every block's bytes and
// the unfinished rest, which must add up to the body.
std::vector<SseEvent> parse_split(const std::string& body, size_t split, std::string* all = nullptr) {
  SseParser p;
  std::vector<SseEvent> out;
  std::string bytes;
  auto emit = [&](SseEvent&& e) {
    bytes += e.raw;
    if (e.dispatched) out.push_back(std::move(e));
  };
  p.feed(std::string_view(body).substr(0, split), emit);
  p.feed(std::string_view(body).substr(split), emit);
  bytes += p.finish();
  if (all) *all = bytes;
  return out;
}

}  // namespace

TEST(SseParser, EventsAtEverySplitPointWithEveryLineEnding) {
  for (std::string eol : {"\n", "\r\n", "\r"}) {
    std::string body = ": a comment" + eol + "id: 7" + eol + "event: tick" + eol + "data: one" + eol + "data:two" + eol +
                       "retry: 1500" + eol + eol + "data" + eol + eol + "unknown: x" + eol + eol + "data: tail";
    for (size_t split = 0; split <= body.size(); ++split) {
      std::string all;
      auto events = parse_split(body, split, &all);
      EXPECT_EQ(all, body) << split;  // every byte is in one block, the unfinished tail included
      ASSERT_EQ(events.size(), 2u) << split;  // the unknown-only block has no field; the tail never ended
      EXPECT_EQ(events[0].id, "7");
      EXPECT_EQ(events[0].event, "tick");
      EXPECT_EQ(events[0].data, "one\ntwo");  // one space after the colon dropped, lines joined by LF
      EXPECT_EQ(events[0].retry, 1500);
      EXPECT_EQ(events[1].data, "");  // "data" with no colon: the field with an empty value
      EXPECT_EQ(events[1].id, "");
      // The blocks' bytes add up to the body they came from (up to the unfinished tail).
      std::string raws = events[0].raw + events[1].raw;
      EXPECT_EQ(body.substr(0, raws.size()), raws) << split;
    }
  }
}

TEST(SseParser, BadRetryAndIdWithNulAreIgnored) {
  std::string body = std::string("retry: 12x\nid: a\0b\ndata: d\n\n", 29);
  auto events = parse_split(body, 5);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_FALSE(events[0].retry.has_value());
  EXPECT_EQ(events[0].id, "");
  EXPECT_EQ(events[0].data, "d");
}

TEST(SseEncode, WhatItWritesParsesBackToTheSameEvent) {
  std::vector<envelope::SseMessage> cases = {
      {"7", "tick", "one\ntwo", 1500, {}},
      {"", "", "", std::nullopt, {}},         // nothing set: still an event, with empty data
      {"", "", "a\r\nb\rc\n", std::nullopt, {}},  // every line end a reader splits at
      {"", "only-type", "", std::nullopt, {}},
  };
  for (const auto& m : cases) {
    std::string wire = codec::sse_encode(m);
    auto events = parse_split(wire, wire.size() / 2);
    ASSERT_EQ(events.size(), 1u) << wire;
    EXPECT_EQ(events[0].id, m.id);
    EXPECT_EQ(events[0].event, m.event);
    EXPECT_EQ(events[0].retry, m.retry);
    std::string want = m.data;
    for (size_t i; (i = want.find("\r\n")) != std::string::npos;) want.replace(i, 2, "\n");
    std::replace(want.begin(), want.end(), '\r', '\n');
    EXPECT_EQ(events[0].data, want) << wire;
    EXPECT_EQ(events[0].raw, wire);
  }
  // A line break in a one-line field is cut, never passed on as a field of its own.
  envelope::SseMessage bad{"1\nretry: 5", "x\rdata: y", "d", std::nullopt, {}};
  EXPECT_EQ(codec::sse_encode(bad), "id: 1\nevent: x\ndata: d\n\n");
}
