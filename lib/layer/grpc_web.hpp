#pragma once
// gRPC-Web, decoded from a whole HTTP message (either HTTP version): binary `application/grpc-web`
// (`+proto`, `+json`, ...) and base64 `application/grpc-web-text`. A request body is a sequence of
// length-prefixed messages; a response body too, ending with a trailer frame (flag 0x80) whose payload
// is the trailers as "name: value\r\n" lines. Malformed base64 or framing is named
// (malformed_grpc_web_base64, malformed_grpc_web_lpm) and what could be read is still shown.
#include <optional>
#include <vector>

#include "envelope/record.hpp"
#include "layer/layer.hpp"

namespace sluice::layer {

enum class GrpcWebForm : uint8_t { none, binary, text };
GrpcWebForm grpc_web_form(std::string_view content_type);

// The grpc-web envelopes of one recorded HTTP message (a request: start, then one data per message;
// a response: data per message, then end from the trailer frame, or from the headers of a
// trailers-only answer). Stream, flow, direction, time and context come from `http`; `seq` is left
// for the caller. Empty when the message is no gRPC-Web or was not recorded whole.
std::vector<envelope::Envelope> grpc_web_envelopes(const envelope::Envelope& http);

// ---- gRPC-Web units (with steps) -------------------------------------------------------------------
// After an HTTP message's own verdict, its grpc-web envelopes pass the pipeline, each a unit (all in
// flight at once); the message waits until every one has its verdict, then `grpc_web_outcome` says what
// becomes of it. Both HTTP layers use this: the message is whole by then (HTTP/1 buffered, HTTP/2 held).
struct GrpcWebUnits {
  envelope::Envelope http;                          // the message as the pipeline left it
  std::vector<envelope::Envelope> units;            // as they were sent to the pipeline
  std::vector<CommandId> ids;                       // one per unit
  std::vector<std::optional<PipelineVerdict>> verdicts;
  size_t waiting = 0;
  // Sends `units` (from grpc_web_units(http)) to the pipeline: each gets the next `seq` and a command
  // id of `ctx`, kept in `ids`.
  void start(const envelope::Envelope& http, std::vector<envelope::Envelope> units, uint64_t& seq,
             ConnectionContext& ctx, Commands& out);
  // Keeps `v` when it answers one of these units.
  bool take(const PipelineVerdict& v);
  bool done() const { return waiting == 0; }
};

// The units of `http` (its grpc-web envelopes, seq left for the caller), or none: no gRPC-Web, not whole,
// or not well formed (a message that cannot be framed again is recorded beside, as without steps).
std::vector<envelope::Envelope> grpc_web_units(const envelope::Envelope& http);

struct GrpcWebOutcome {
  enum class Kind : uint8_t { send, kill, respond } kind = Kind::send;
  // send: the message made again from the verdicts (the call's path and metadata, the messages left
  // and changed, the trailer frame); nullopt when no unit changed anything.
  std::optional<envelope::HttpMessage> changed;
  std::optional<envelope::Envelope> reply;  // respond: an HTTP/1 gRPC-Web response (a refusal: status 7)
};
// Defined for every unit: kill on any unit kills the stream; the start dropped answers status 7
// (PERMISSION_DENIED) naming the step, answered: the step's reply in the request's form; a message
// dropped is left out; the end dropped kills (a call's end cannot be left out).
GrpcWebOutcome grpc_web_outcome(const GrpcWebUnits& call);

}  // namespace sluice::layer
