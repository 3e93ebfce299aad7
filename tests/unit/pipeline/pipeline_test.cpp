#include "pipeline/pipeline.hpp"

#include <gtest/gtest.h>

#include "support/sample_records.hpp"

using namespace sluice;
using namespace sluice::pipeline;

namespace {
struct Upcase : Step {
  std::string_view name() const override { return "upcase"; }
  Outcome process(envelope::Envelope& e, Reply&, const Resume&) override {
    for (auto& c : e.raw) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return Outcome::next;
  }
};
struct Hold : Step {
  Resume saved;
  envelope::Envelope held;
  std::string_view name() const override { return "hold"; }
  Outcome process(envelope::Envelope& e, Reply&, const Resume& r) override {
    saved = r;
    held = e;
    return Outcome::held;
  }
};
struct Dropper : Step {
  std::string_view name() const override { return "dropper"; }
  Outcome process(envelope::Envelope&, Reply&, const Resume&) override { return Outcome::drop; }
};
envelope::Envelope chunk(std::string bytes) {
  envelope::Envelope e;
  e.seq = 4;
  e.raw = std::move(bytes);
  return e;
}
}  // namespace

TEST(Pipeline, UnchangedEnvelopeIsRecordedOnce) {
  std::vector<envelope::Envelope> recorded;
  Pipeline p([&](const envelope::Envelope& e) { recorded.push_back(e); });
  bool done = false;
  p.run(chunk("abc"), [&](Result r) {
    done = true;
    EXPECT_EQ(r.outcome, Outcome::next);
  });
  EXPECT_TRUE(done);
  ASSERT_EQ(recorded.size(), 1u);
  EXPECT_FALSE(recorded[0].modified);
}

TEST(Pipeline, AChangeIsAVariantBesideTheOriginal) {
  std::vector<envelope::Envelope> recorded;
  Pipeline p([&](const envelope::Envelope& e) { recorded.push_back(e); });
  p.add(std::make_shared<Upcase>());
  std::string sent;
  p.run(chunk("abc"), [&](Result r) { sent = r.envelope.raw; });
  EXPECT_EQ(sent, "ABC");
  ASSERT_EQ(recorded.size(), 2u);
  EXPECT_EQ(recorded[0].raw, "abc");
  EXPECT_FALSE(recorded[0].modified);
  EXPECT_EQ(recorded[1].raw, "ABC");
  EXPECT_TRUE(recorded[1].modified);
  EXPECT_EQ(recorded[1].variant_of, 4u);
  EXPECT_EQ(recorded[1].modified_by, "upcase");
}

TEST(Pipeline, AHoldResumesTheRestLater) {
  std::vector<envelope::Envelope> recorded;
  Pipeline p([&](const envelope::Envelope& e) { recorded.push_back(e); });
  auto hold = std::make_shared<Hold>();
  p.add(hold);
  p.add(std::make_shared<Upcase>());
  bool done = false;
  std::string sent;
  p.run(chunk("abc"), [&](Result r) {
    done = true;
    sent = r.envelope.raw;
  });
  EXPECT_FALSE(done);
  EXPECT_TRUE(recorded.empty());
  hold->held.raw = "xyz";  // edited while held
  hold->saved(Decision{Outcome::next, hold->held});
  EXPECT_TRUE(done);
  EXPECT_EQ(sent, "XYZ");
  ASSERT_EQ(recorded.size(), 2u);
  EXPECT_EQ(recorded[1].modified_by, "hold");  // the first step that changed it
}

TEST(Pipeline, DropIsRecordedAndTagged) {
  std::vector<envelope::Envelope> recorded;
  Pipeline p([&](const envelope::Envelope& e) { recorded.push_back(e); });
  p.add(std::make_shared<Dropper>());
  p.add(std::make_shared<Upcase>());  // never reached
  Outcome got = Outcome::next;
  p.run(chunk("abc"), [&](Result r) { got = r.outcome; });
  EXPECT_EQ(got, Outcome::drop);
  ASSERT_EQ(recorded.size(), 1u);
  EXPECT_EQ(recorded[0].raw, "abc");
  ASSERT_EQ(recorded[0].tags.size(), 1u);
  EXPECT_EQ(recorded[0].tags[0].second, "drop");
}
