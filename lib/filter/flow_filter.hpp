#pragma once
// FlowFilter: a filter applied to a stream, whole flows at a time, sans-IO (records in, records out).
//
// Records are held until their flow is decided, then passed on or dropped, always in stream order. A
// flow is decided when its final HTTP response arrives (later records of the flow, such as overlays,
// follow its verdict), when an `end` record closes it or its stream, at the end of input, or, when
// more than `max_pending` flows are undecided, the oldest is decided on what it has so far. A stream's
// `end` record passes when any flow of that stream did. With `per_envelope`, each envelope is judged on
// its own instead. The stream header always passes.
#include <deque>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "filter/expr.hpp"

namespace sluice::filter {

class FlowFilter {
 public:
  struct Options {
    bool per_envelope = false;
    size_t max_pending = 10000;  // undecided flows held at once
  };
  // Each record passed on, with its original encoding when feed() was given one (else empty).
  using Sink = std::function<void(envelope::Record&&, std::string&& original)>;

  FlowFilter(Filter filter, Options options) : filter_(std::move(filter)), options_(options) {}

  // Takes one record; every record that is now decided to pass goes to `out`, in stream order.
  // `original`: the record as it was encoded, passed on with it (so a partially read record can be
  // written out as it came).
  void feed(envelope::Record record, const Sink& out, std::string original = {});
  // End of input: decides every flow still open and passes what remains.
  void finish(const Sink& out);

  uint64_t matched() const { return matched_; }  // flows (or envelopes) that matched
  uint64_t forced() const { return forced_; }    // flows decided early because of max_pending

 private:
  enum class State : uint8_t { pending, pass, drop };
  struct Flow {
    std::string stream;
    State state = State::pending;
    FlowView view;
  };
  struct Item {
    envelope::Record record;
    std::string original;
    std::string flow;                 // empty: `state` is the item's own verdict
    State state = State::pending;
  };

  Flow& flow(const std::string& id, const std::string& stream);
  void decide(Flow& f);
  void drain(const Sink& out);

  Filter filter_;
  Options options_;
  std::deque<Item> queue_;
  std::unordered_map<std::string, Flow> flows_;
  std::deque<std::string> order_;  // flow ids in order of their first record (decided ones are skipped)
  std::unordered_map<std::string, bool> stream_passed_;
  size_t pending_ = 0;
  uint64_t matched_ = 0, forced_ = 0;
};

}  // namespace sluice::filter
