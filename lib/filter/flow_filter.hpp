#pragma once
// FlowFilter: a filter applied to a stream, whole flows at a time, sans-IO (records in, records out).
//
// Records are held until their flow is decided, then passed on or dropped, always in stream order. A
// flow is decided when its final HTTP response arrives (later records of the flow, such as overlays,
// follow its verdict), when an `end` record closes it or a stream it has records in (a WebSocket flow
// goes on in the sub-stream after its 101, which the proxy ends), at the end of input, or, when more
// than `max_pending` flows are undecided, the oldest is decided on what it has so far. A stream's `end`
// record passes when any flow with records in that stream or its sub-streams did, even in a sub-stream
// that ended before it.
//
// Memory stays bounded on an endless input: a stream's `end` record ends its sub-streams too ("c.2",
// "c.2.1" with "c", as the proxy names them), and the flows and streams it ends are forgotten once no
// held record needs them. A record that comes for a stream after its end starts a new flow. Within a
// stream that goes on (a keep-alive connection's millionth exchange), only its last `keep_decided`
// decided flows are remembered; a record for an older one starts a new flow too.
//
// With `per_envelope`, each envelope is judged on its own instead. The stream header always passes.
//
// Two ways in: feed() takes a decoded record; feed_line() takes a JSONL line and reads only what the
// filter looks at (filter::scan_envelope into recycled envelopes), holding the line's text, never a
// decoded copy of all of it. A held record costs its text plus, until its flow is decided, the few
// members the filter reads.
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/bytes.hpp"
#include "filter/expr.hpp"

namespace sluice::filter {

class FlowFilter {
 public:
  struct Options {
    bool per_envelope = false;
    size_t max_pending = 10000;  // undecided flows held at once
    size_t keep_decided = 1024;  // decided flows of its own remembered per stream that has not ended
  };
  // A record passed on. `original`: its encoded form as given (JSONL text, or a CBOR map when `cbor`),
  // empty when none was; `record`: the decoded record, null for lines taken by feed_line().
  struct Passed {
    const envelope::Record* record = nullptr;
    core::ByteView original;
    bool cbor = false;
  };
  using Sink = std::function<void(const Passed&)>;

  FlowFilter(Filter filter, Options options);
  ~FlowFilter();
  FlowFilter(const FlowFilter&) = delete;
  FlowFilter& operator=(const FlowFilter&) = delete;

  // Takes one record; every record that is now decided to pass goes to `out`, in stream order.
  // `original`: the record as it was encoded (copied), passed on with it (so a partially read record
  // can be written out as it came).
  void feed(envelope::Record record, const Sink& out, core::ByteView original = {}, bool cbor = false);
  // Takes one JSONL line (copied). False, having taken nothing, when it is not an envelope the fast
  // reader reads (the header, end and error records, anything odd): decode it and feed() it instead.
  bool feed_line(core::ByteView line, const Sink& out);
  // End of input: decides every flow still open and passes what remains.
  void finish(const Sink& out);

  uint64_t matched() const { return matched_; }  // flows (or envelopes) that matched
  uint64_t forced() const { return forced_; }    // flows decided early because of max_pending
  // Flows and streams remembered now (pending, held, or of a stream that has not ended).
  size_t remembered() const { return flows_.size() + streams_.size(); }

 private:
  enum class State : uint8_t { pending, pass, drop };
  struct Flow;
  struct StreamState {
    std::string id;
    bool passed = false;         // a flow of it passed: its end record passes too
    bool ended = false;          // its end (or an ancestor's) came: forgotten when `alive` is 0
    // Flows it ends: its own (whose `stream` it is, forgotten after its end) and others' going on in it
    // (dropped from here once decided).
    std::vector<Flow*> open;
    size_t pruned = 16;          // open's size after the last sweep of decided flows, doubled
    uint32_t alive = 0;          // its own flows not forgotten yet
  };
  static constexpr uint32_t kNone = UINT32_MAX;
  struct Flow {
    std::string id;
    StreamState* stream = nullptr;
    uint32_t view = kNone;       // its FlowView in views_ while pending
    State state = State::pending;
    bool loose = false;          // let go by its stream (not ended) to bound memory: forgotten when refs is 0
    uint32_t refs = 0;           // queued items, order_, other streams' `open`: not forgotten while > 0
  };
  struct Item {
    Flow* flow = nullptr;            // null: `state` is the item's own verdict
    State state = State::pending;
    bool cbor = false;
    uint32_t envelope = kNone;       // a recycled envelope (feed_line), else `record`
    std::unique_ptr<envelope::Record> record;
    uint64_t at = 0;                 // the original's bytes: text_[at - text_base_, + size)
    size_t size = 0;
  };

  // Ids to T (which has a std::string `id`), open addressing over (hash, index): one probe and one
  // comparison per lookup, no node per entry; entries stay put (a deque), erased ones are reused.
  template <class T>
  class IdTable {
   public:
    T* find(std::string_view id, size_t hash);
    T& insert(std::string_view id, size_t hash);  // id must not be present
    void erase(T& entry);                         // resets it for reuse
    size_t size() const { return entries_.size() - free_.size(); }

   private:
    struct Slot {
      size_t hash = 0;
      uint32_t index = 0;  // entry + 1; 0: empty
    };
    std::vector<Slot> slots_ = std::vector<Slot>(1024);
    std::deque<T> entries_;
    std::vector<uint32_t> free_;
  };

  Flow& flow(const std::string& id, const std::string& stream);
  StreamState& stream(const std::string& id);
  void take(const envelope::Envelope& e, Item& item);
  void place(Item item, const Sink& out);
  // Adds `f` to the flows `s` decides when it ends (those registered in it, and those going on in it).
  void join(Flow& f, StreamState& s);
  void decide(Flow& f);
  // The end of `s` and its sub-streams: decides their flows; `s.passed` then says whether the end passes.
  // `s` is kept for the caller (one `alive` more), who releases it.
  void end_stream(StreamState& s);
  // The item's reference to `f`, released when it leaves the queue; `f` joins `stream` (the record's)
  // when it started in another.
  void hold(Item& item, Flow& f, const std::string& stream);
  void unref(Flow& f);
  void forget(Flow& f);
  void forget(StreamState& s);
  void drain(const Sink& out);

  Filter filter_;
  Options options_;
  std::deque<Item> queue_;
  std::string text_;          // the originals of queued items
  uint64_t text_base_ = 0;    // offset of text_[0] in all the text ever held
  std::vector<std::unique_ptr<envelope::Envelope>> envelopes_;  // recycled for feed_line()
  std::vector<uint32_t> free_;
  IdTable<Flow> flows_;  // decided ones stay until their stream ends (or keep_decided later): later records follow their verdict
  IdTable<StreamState> streams_;
  StreamState* last_stream_ = nullptr;
  std::map<std::string_view, StreamState*> by_name_;  // sub-streams ("c.2") by id: found from "c" by prefix
  std::vector<FlowView> views_;  // of pending flows, recycled
  std::vector<uint32_t> free_views_;
  std::deque<Flow*> order_;   // flows in order of their first record (decided ones are skipped)
  size_t pending_ = 0;
  uint64_t matched_ = 0, forced_ = 0;
};

}  // namespace sluice::filter
