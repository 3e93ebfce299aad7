#pragma once
// A pipeline step that is a program: `sluice proxy --step 'CMD'` and `sluice step 'CMD'`.
//
// The program runs once, as a long-lived child of this process (`/bin/sh -c CMD`), and speaks the step
// protocol of formats/STEP.md on its standard input and output: the stream's header record first, then
// each unit as its envelope record with an added "ask": N; it answers each ask with one line carrying
// the same "ask" (the envelope, changed or not, or a verdict record). Answers come in any order and many
// units may be in flight. A step may first declare its interest (a filter expression, protocols,
// directions): units outside it are not sent to it and go on at once.
//
// Threads and ownership. process() is called on whichever thread runs the pipeline (a connection's I/O
// thread, or `sluice step`'s reader); it never blocks: it queues the unit's line and returns `held`.
// One thread of this step's own writes the queue to the child, reads its answers and its stderr, keeps
// the deadlines and restarts the child; it calls each unit's Resume exactly once (with the answer, or
// with the --step-on-error policy when the child exits, hangs past the timeout or writes something that
// is not an answer). While the child is down (between a failure and its restart) units get the policy
// at once. stop() ends the child and the thread; in-flight units are then dropped without a resume
// (their connections are gone or going). An `error` record naming the step goes to `on_record` for each
// failure; the child's stderr goes to ours, each line prefixed with the step's name.
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "envelope/record.hpp"
#include "pipeline/pipeline.hpp"

namespace sluice::step {

enum class OnError : uint8_t { pass, kill };

struct ProcessStepOptions {
  std::string command;  // run with /bin/sh -c
  std::string name;     // in messages, error records and `modified_by`; empty: "step:" + the command
  std::chrono::milliseconds timeout{5000};  // an answer later than this is the step hanging
  OnError on_error = OnError::pass;
  envelope::StreamHeader header;  // the first line the child reads
  std::function<void(envelope::Record)> on_record;  // error records (the recorder); may be empty
};

class ProcessStep : public pipeline::Step {
 public:
  explicit ProcessStep(ProcessStepOptions options);
  ~ProcessStep() override;
  ProcessStep(const ProcessStep&) = delete;
  ProcessStep& operator=(const ProcessStep&) = delete;

  std::string_view name() const override;
  pipeline::Outcome process(envelope::Envelope& env, pipeline::Reply& reply, const pipeline::Resume& resume) override;
  // Units of the connection still with the program are resumed now; with the interest member
  // "cancel": true it is sent {"type": "cancel", "ask": N} for each (formats/STEP.md).
  void cancel(std::string_view conn_id) override;
  void cancel_stream(std::string_view stream_id) override;

  // Ends the child (its stdin closed, then a second to exit, then SIGKILL) and the thread. Idempotent.
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Whether a unit of this kind passes steps today: HTTP/1 and HTTP/2 requests and responses the proxy
// holds whole, whole WebSocket data messages, events, gRPC and gRPC-Web calls' starts, messages and
// ends, and raw chunks (the envelopes the layers send through the pipeline). `sluice step` sends the
// same kinds.
bool is_unit(const envelope::Envelope& e);
// A head unit: an HTTP message's head (overlay "head", no body) judged before its body streams.
bool is_head_unit(const envelope::Envelope& e);
// For `sluice step`: the head unit the proxy would have sent before the recorded message `e` streamed
// (an HTTP/1 message tagged streamed whose body went past the limit, an event stream's response, a
// 100-continue request; an HTTP/2 request or response past the limit), or none.
// `over_h2`: the message went through the HTTP/2 layer (a response translated from an HTTP/1.1 server
// says HTTP/1.1).
std::optional<envelope::Envelope> head_unit_of(const envelope::Envelope& e, bool over_h2);
// The recorded message as the proxy records it after a step changed its head (`variant`, the head
// unit's modified variant): start line and fields from it, the body's framing as it came, tagged
// head_modified_by.
void apply_head(envelope::Envelope& message, const envelope::Envelope& variant);

// A unit `e` a step changed (from `original`), made whole again as the layers send it (formats/STEP.md):
// changed in `message`, its `raw` is made from the message (HTTP/1 bytes; a head's with the body's
// framing as it came; one WebSocket frame; one event block; a gRPC message framed again; none over
// HTTP/2); `raw_changed` (the step changed the bytes themselves), they stay as it left them. False,
// with `why` ("changed the raw bytes of an HTTP/2 message ..."), for a change that cannot go out.
bool settle_change(const envelope::Envelope& original, envelope::Envelope& e, bool raw_changed, std::string& why);

// What making a changed HTTP message's bytes again needs to know of it as it came (so that a step need
// not keep a copy of the whole unit): HTTP/2 (no bytes of its own), a head (the body's framing fields).
struct HttpOrigin {
  bool h2 = false, head = false, had_raw = false;
  envelope::Headers framing;
};
HttpOrigin http_origin(const envelope::Envelope& original);
// settle_change for an HTTP message changed in `message`.
void settle_http(const HttpOrigin& origin, envelope::Envelope& e);

}  // namespace sluice::step
