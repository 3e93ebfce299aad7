#pragma once
// Client replay, the sans-IO half: which flows of a capture to send again, to where, as which bytes,
// and how the new responses compare with the recorded ones (the JUnit report included).
//
//   capture records --> Collector --> Recorded flows --> plan() --> Request (target, SNI, bytes)
//                                                                 \-> skipped (out of --scope, not
//                                                                     replayable as recorded)
//   new responses ----> check() (diff::compare with `sluice diff`'s options) --> Report --> junit_xml()
//
// A WebSocket flow replays its upgrade request, then, after the 101, the frames the client sent, as
// they were on the wire (masked as recorded; permessage-deflate as negotiated then), each once the
// server has sent as many frames as it had before that one was recorded (or has been quiet a while).
//
// `--as-recorded` sends the bytes the server received (the request's `sluice` variant when the proxy
// changed the head, else its raw bytes); otherwise the structured request is encoded again: origin-form
// target, the recorded fields in order without the framing ones, Content-Length for the body (chunked
// when there are trailers).
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "filter/scope.hpp"

#include "core/result.hpp"
#include "diff/diff.hpp"
#include "envelope/record.hpp"

namespace sluice::replay {

// A frame the client sent after a WebSocket upgrade, and how many frames the server had sent before it
// (a replay waits for as many before sending it, so the conversation keeps its turns).
struct WsFrame {
  core::Bytes raw;
  size_t server_before = 0;
};

// One recorded HTTP exchange with what replaying it needs beyond the structured view.
struct Recorded {
  diff::Exchange exchange;  // its `url` is the one the server was asked for (from `sent`)
  // The request as the server received it: the proxy's variant when it changed the head (origin-form,
  // the reverse target's Host), else the client's. Replays go where it went and say what it said.
  envelope::HttpMessage sent;
  core::Bytes wire;  // its bytes
  std::string sni;   // the client's SNI when it spoke TLS, else empty
  std::string server;  // "host:port" the proxy dialled for it (a reverse proxy's target), if known
  std::vector<WsFrame> ws_frames;  // after a WebSocket upgrade: the client's frames, as the server got them
  bool body_complete = true;  // false when --record-body-limit cut the body
};

// Collects the replayable exchanges of a stream (HTTP requests other than CONNECT), in order.
class Collector {
 public:
  void add(const envelope::Record& r);
  std::vector<Recorded> take();

 private:
  diff::ExchangeCollector exchanges_;
  struct Extra {
    std::optional<envelope::HttpMessage> sent;
    std::vector<std::pair<uint64_t, WsFrame>> ws_frames;  // by seq (a variant replaces its original)
    size_t ws_received = 0;                                // server frames so far
    core::Bytes wire;
    std::string sni;
    std::string server;
    bool body_complete = true;
  };
  std::map<std::string, Extra> extra_;  // flow id -> what the exchange does not keep
};

// Where a replay goes: scheme, host and port (from --target, or the recorded URL).
struct Target {
  std::string scheme;  // "http" or "https"
  std::string host;
  uint16_t port = 0;
};
// "http://host[:port]" or "https://..." (a path is an error).
core::Result<Target> parse_target(std::string_view url);

struct PlanOptions {
  std::optional<Target> target;     // send everything here instead
  bool as_recorded = false;         // the recorded bytes, exactly
  std::vector<std::string> scope;   // host patterns ("*.example.com"); empty: every host
  filter::HostScope hosts;          // --allow-hosts / --ignore-hosts: an ignored host is never contacted
  // --safety: why a request must not be sent (empty: it may), judged on the request as it would go.
  std::function<std::string(const envelope::HttpMessage&)> refuse;
};

struct Request {
  size_t index = 0;  // into the collected flows
  Target target;
  std::string sni;    // empty: the target host unless it is an IP literal
  core::Bytes bytes;  // what goes on the wire (HTTP/1)
  bool http2 = false;  // an HTTP/2 flow: `message` is sent as HTTP/2, re-encoded
  envelope::HttpMessage message;  // HTTP/2: the request to send (its scheme the target's)
  std::string skipped;  // non-empty: not sent, and why (one line)
};

// The request to send for flow `index`, or why it is skipped.
Request plan(const Recorded& r, size_t index, const PlanOptions& o);

// The structured request as HTTP/1.1 bytes.
core::Bytes encode_request(const envelope::HttpMessage& m);

// What happened to one flow.
struct Outcome {
  std::optional<envelope::HttpMessage> response;  // the new final response
  std::string error;                              // why there is none (or why it is not the server's)
  unsigned attempts = 0;
  std::chrono::microseconds elapsed{0};
  std::string new_flow;  // the new flow's id, when one was recorded
  bool not_sent = false; // the run was interrupted before this request finished
};

struct CaseResult {
  enum class Kind : uint8_t { passed, failed, error, skipped } kind = Kind::passed;
  const Recorded* flow = nullptr;
  std::string new_flow;
  std::vector<diff::Difference> differences;  // failed
  std::string message;                         // error or skipped: one line
  std::chrono::microseconds elapsed{0};
};

struct Report {
  std::vector<CaseResult> cases;
  size_t passed = 0, failed = 0, errors = 0, skipped = 0;
  size_t not_sent = 0;  // of `skipped`: left out by an interruption
  std::chrono::microseconds elapsed{0};
  // No request was sent (an empty capture, none with an HTTP request, every one skipped): a check
  // that checked nothing, which fails rather than passes.
  bool nothing_checked() const { return passed + failed + errors == 0; }
};

// Compares each replayed flow's new response with the recorded one. Without `compare`, a flow that got
// a response passes (only errors and skips count).
Report check(const std::vector<Recorded>& flows, const std::vector<Request>& requests,
             const std::vector<Outcome>& outcomes, const diff::Options& options, bool compare);

// The report as JUnit XML: one testsuite, one testcase per flow (classname the host, name "METHOD
// URL"), failures with the differences, errors with the reason, skips with why. A report that checked
// nothing has one testcase "nothing to check" with an error, so a CI dashboard shows it red.
std::string junit_xml(const Report& report);

}  // namespace sluice::replay
