// The event-stream parser, at every split point of the body, against the rules of the HTML standard.
#include <gtest/gtest.h>

#include "layer/sse.hpp"

using namespace sluice;
using namespace sluice::layer;

namespace {

std::vector<SseEvent> parse_split(const std::string& body, size_t split) {
  SseParser p;
  std::vector<SseEvent> out;
  auto emit = [&](SseEvent&& e) { out.push_back(std::move(e)); };
  p.feed(std::string_view(body).substr(0, split), emit);
  p.feed(std::string_view(body).substr(split), emit);
  return out;
}

}  // namespace

TEST(SseParser, EventsAtEverySplitPointWithEveryLineEnding) {
  for (std::string eol : {"\n", "\r\n", "\r"}) {
    std::string body = ": a comment" + eol + "id: 7" + eol + "event: tick" + eol + "data: one" + eol + "data:two" + eol +
                       "retry: 1500" + eol + eol + "data" + eol + eol + "unknown: x" + eol + eol + "data: tail";
    for (size_t split = 0; split <= body.size(); ++split) {
      auto events = parse_split(body, split);
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
