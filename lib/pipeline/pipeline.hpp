#pragma once
// Pipeline: the ordered steps every envelope passes through before it is sent on (scope, safety,
// intercept, transform, ... in later issues), ending in the record sink.
//
// A step sees the envelope, may change it, and answers with an outcome. A step that must wait (an
// intercept hold, an external step process) answers `held` and later calls the Resume it was given,
// exactly once, from any thread; only that envelope waits. Raw bytes stay the truth: when a step
// changes the envelope, the sink receives the original unchanged and then the variant, marked
// modified, linked to the original's seq and named after the step.
//
// The same Step objects run inside `sluice proxy` and, over a recorded stream, as their own commands.
#include <functional>
#include <optional>
#include <memory>
#include <string_view>
#include <vector>

#include "envelope/record.hpp"

namespace sluice::pipeline {

// `respond`: the step answered a request itself (a recorded response, a mock, an intercept's edit):
// the request goes no further and the reply goes back to the peer. Layers that cannot answer (raw
// bytes) treat it as `next`. `whole`: `next`, and the step asks for the whole message after this head
// (a head unit; on any other unit it is `next`).
enum class Outcome : uint8_t { next, drop, kill, held, respond, whole };

// A step's answer to a request: the reply's exact bytes in `raw` (an HTTP/1 response for HTTP), any
// tags for the layer to add to the envelope it records for the reply.
using Reply = std::optional<envelope::Envelope>;

struct Decision {
  Outcome outcome = Outcome::next;
  envelope::Envelope envelope;  // for a resumed hold: the envelope as the step left it
  Reply reply = {};             // Outcome::respond
};
using Resume = std::function<void(Decision)>;

class Step {
 public:
  virtual ~Step() = default;
  virtual std::string_view name() const = 0;
  // Inspect or change `env`. Return `held` only after arranging to call `resume` later; return
  // `respond` after setting `reply`. A step that changes `env` may name the change in its
  // `modified_by` (the rules that made it); the variant is named after the step otherwise.
  virtual Outcome process(envelope::Envelope& env, Reply& reply, const Resume& resume) = 0;
  // The client connection `conn_id` is gone: units of it this step holds are cancelled. The step
  // resumes each now (any thread, at most once as always: a later answer of its own is ignored).
  virtual void cancel(std::string_view conn_id) { (void)conn_id; }
  // The same for the units of one stream (an HTTP/2 stream its client reset).
  virtual void cancel_stream(std::string_view stream_id) { (void)stream_id; }
};

// What the pipeline finally says about one envelope.
struct Result {
  Outcome outcome = Outcome::next;  // next (forward), drop, kill or respond; never held
  envelope::Envelope envelope;      // what to send (respond: the request as recorded)
  Reply reply = {};                 // respond: what to answer
  std::string decided_by;           // drop, kill, respond: the step that said so
  bool whole = false;               // next: a step asked for the whole message (Outcome::whole)
};

class Pipeline {
 public:
  using RecordSink = std::function<void(const envelope::Envelope&)>;
  explicit Pipeline(RecordSink sink) : sink_(std::move(sink)) {}

  void add(std::shared_ptr<Step> step) { steps_.push_back(std::move(step)); }
  // Units for which `bypass` says true go on untouched: no step sees them (`--scope-filter`); they
  // still go to the sink. Set before the first unit.
  void set_bypass(std::function<bool(const envelope::Envelope&)> bypass) { bypass_ = std::move(bypass); }
  bool empty() const { return steps_.empty(); }

  // Runs every step on `env` and records it. `done` is called exactly once: before run() returns when
  // no step held, otherwise from the thread that resumed the last hold.
  void run(envelope::Envelope env, std::function<void(Result)> done) const;
  // Cancels the units of a client connection that steps hold (Step::cancel): they finish now.
  void cancel(std::string_view conn_id) const {
    for (const auto& s : steps_) s->cancel(conn_id);
  }
  void cancel_stream(std::string_view stream_id) const {
    for (const auto& s : steps_) s->cancel_stream(stream_id);
  }

 private:
  void run_from(size_t index, std::shared_ptr<const envelope::Envelope> original, envelope::Envelope env,
                std::string modified_by, bool whole, std::function<void(Result)> done) const;
  void finish(const envelope::Envelope* original, envelope::Envelope env, Outcome outcome, std::string modified_by,
              Reply reply, const std::function<void(Result)>& done, std::string decided_by = {},
              bool whole = false) const;

  RecordSink sink_;
  std::vector<std::shared_ptr<Step>> steps_;
  std::function<bool(const envelope::Envelope&)> bypass_;
};

}  // namespace sluice::pipeline
