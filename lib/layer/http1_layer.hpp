#pragma once
// Http1Layer: the HTTP/1.x proxy layer of `regular`, `reverse` and `upstream` modes.
//
// One client connection carries a sequence of exchanges (request, interim responses, response), one at
// a time; pipelined requests wait in the client buffer and are answered in order. For each exchange:
//
//   head ---> body (buffered) ---> complete ---> RunPipeline ---> verdict ---> sent to the server
//     |         \--over the buffer limit, or Expect: 100-continue--> streamed (head and body go on as
//     |            they arrive; the envelope is recorded when the message ends, its body cut at
//     |            --record-body-limit)
//     |--CONNECT (regular): server up --> "200 Connection established" --> tunnel (RawLayer child)
//     |--malformed, too large, unauthorised, unroutable --> 400/431/407/501 with a reason, close
//     \--server fails (refused, DNS, reset, no answer in time) --> 502/504 with a reason, error record
//
// The response side is the same machine in the other direction, ending in "flow done": the server
// connection goes back to this connection's pool of idle connections when both sides allow keep-alive,
// and the next pipelined request starts. A 101 answer hands both connections to a RawLayer tunnel.
//
// What the server receives is the client's head with the edits the mode needs (origin-form target,
// Host, proxy credentials) and nothing else; when those edits change the bytes, the stream holds the
// client's envelope and, beside it, a variant (modified_by "sluice") with the bytes as sent.
#include <map>
#include <memory>
#include <utility>
#include <optional>

#include "layer/http1_parser.hpp"
#include "layer/http1_wire.hpp"
#include "layer/raw_layer.hpp"

namespace sluice::layer {

// The one server every request goes to, for a layer inside an intercepted tunnel (after CONNECT and
// TLS): requests arrive in origin form and keep their Host; no proxy credentials are asked for.
struct Http1Target {
  std::string host;
  uint16_t port = 0;
  bool tls = false;
  ConnId idle_server = 0;  // a connection to it already open (and its TLS up), used first
};

class Http1Layer final : public Layer {
 public:
  explicit Http1Layer(ConnectionContext& ctx, std::optional<Http1Target> target = std::nullopt);
  ~Http1Layer() override;
  void handle(const Event& event, core::Timestamp now, Commands& out) override;
  std::string_view name() const override { return "http1"; }

  // Unsent bytes held for one peer before reading from the other pauses.
  static constexpr size_t kHighWater = 1u << 20;
  // With --record-body-limit 0, messages are buffered up to this much before they stream.
  static constexpr uint64_t kUnlimitedBuffer = 16u << 20;

 private:
  // One message of an exchange, as far as it has been read.
  struct Message {
    envelope::Direction direction = envelope::Direction::send;
    Http1Head head;
    bool have_head = false;
    core::Timestamp time;                 // first byte
    core::Bytes wire;                     // body wire bytes kept for the record (chunked bodies)
    core::Bytes body;                     // decoded body kept for the record
    uint64_t body_total = 0;              // decoded body bytes seen
    uint64_t wire_total = 0;              // body wire bytes seen
    std::vector<core::Bytes> chunks;      // chunk wire bytes kept for h1-chunk overlays
    uint64_t chunk_bytes = 0;
    bool streaming = false;               // bytes go on as they arrive
    bool over_budget = false;             // the RecordBudget was spent: nothing more is kept
    BudgetHold hold;
    bool recorded = false;                // the canonical envelope is in the stream
    bool complete = false;
    std::vector<envelope::Anomaly> anomalies;
    envelope::Tags tags;  // added to its envelope (a pipeline step's answer says where it came from)
    // With steps, a message about to stream waits for its head's verdict (a head unit) before any
    // byte of it goes on; what would have gone meanwhile waits in `held_out` (the head not included).
    CommandId head_unit = 0;
    core::Bytes held_out;
    bool head_judged = false;
  };
  struct Exchange;
  struct ServerConn {
    std::string key;  // "host:port", "tls host:port"
    bool idle = false;
  };
  enum class State : uint8_t { http, tunnel, closed };
  enum class Deadline : uint8_t { none, client_idle, header, first_byte, body_idle };

  // Client side.
  void on_client_data(core::ByteView data, core::Timestamp now, Commands& out);
  void pump_client(core::Timestamp now, Commands& out);
  void on_request_head(core::Timestamp now, Commands& out);
  void on_request_complete(core::Timestamp now, Commands& out);
  void on_request_error(core::Timestamp now, Commands& out);
  void capture_partial_request();
  void on_client_closed(const ConnectionClosed& c, core::Timestamp now, Commands& out);
  bool authorized(const Http1Head& head) const;
  // Fills the exchange's server and head edit from the mode; false after answering the client itself.
  bool route(core::Timestamp now, Commands& out);
  static std::string asked_destination(const Http1Head& h, bool tls);
  // A step changed the request: its absolute-form target goes in origin form as the step left it, and
  // when where it points changed (scheme, authority, an absolute-form URL's: map_remote) it goes there,
  // on another connection. False after answering the client itself.
  bool reroute(const envelope::Envelope& verdict_env, core::Timestamp now, Commands& out);
  void send_request(const envelope::Envelope& verdict_env, core::Timestamp now, Commands& out);

  // Server side.
  void acquire_server(Commands& out);
  void on_open(const OpenCompleted& o, core::Timestamp now, Commands& out);
  void on_server_data(core::ByteView data, core::Timestamp now, Commands& out);
  void on_response_head(Commands& out);
  void on_response_complete(core::ByteView rest, core::Timestamp now, Commands& out);
  void on_server_closed(const ConnectionClosed& c, core::Timestamp now, Commands& out);
  void send_to_server(core::Bytes bytes, Commands& out);
  void send_to_client(core::Bytes bytes, Commands& out);

  // Both.
  void on_body(Message& m, Http1Parser& parser, core::ByteView wire, core::Timestamp now, Commands& out);
  void start_streaming(Message& m, Commands& out);
  // The head of a message about to stream goes to the steps first (true: it waits for the verdict).
  bool judge_head(Message& m, Commands& out);
  void on_head_verdict(Message& m, const PipelineVerdict& v, core::Timestamp now, Commands& out);
  // A step changed the head: the message goes on with it (the body's framing as it came).
  bool apply_head(Message& m, const envelope::Envelope& variant);
  // What the message sends once it streams: the head (with the mode's edits for a request), then `rest`.
  void send_streamed(Message& m, core::Bytes rest, Commands& out);
  // Event-stream units (Exchange::sse_queue): a block joins the queue; the queue goes out in order as
  // far as verdicts allow, and the response is finished once it ended and the queue is empty.
  void queue_sse_block(CommandId id, core::Bytes bytes);
  void flush_sse(core::Timestamp now, Commands& out);
  // `take`: the message is recorded for good, its body moves into the envelope.
  envelope::Envelope make_envelope(Message& m, core::Timestamp time, bool take = false);
  void record_message(Message& m, core::Timestamp now, Commands& out);
  envelope::Envelope overlay(const Message& m, std::string_view kind, core::Timestamp now);
  void record_overlays(const Message& m, core::Timestamp now, Commands& out);
  // gRPC-Web requests and responses also as grpc-web envelopes (start, data, end).
  void record_grpc_web(const envelope::Envelope& http, Commands& out);
  // With steps, a gRPC-Web message's units go to the pipeline (true: the message waits for them);
  // without, they are recorded beside.
  bool run_grpc_web(const envelope::Envelope& http, Commands& out);
  void finish_grpc_web(core::Timestamp now, Commands& out);
  void send_response(const envelope::Envelope& env, core::Timestamp now, Commands& out);
  void emit_numbered(std::vector<envelope::Envelope> envelopes, Commands& out);  // seq assigned here
  void on_verdict(const PipelineVerdict& v, core::Timestamp now, Commands& out);
  void finish_exchange(core::Timestamp now, Commands& out);
  void start_tunnel(core::ByteView server_rest, core::Timestamp now, Commands& out);
  // Hands one event to the tunnel; once the tunnel closes the client connection, ends this stream.
  void to_tunnel(const Event& event, core::Timestamp now, Commands& out);
  // Answers the request with a pipeline step's reply (its raw bytes, an HTTP/1 response), records it,
  // and goes on with the connection as after a server's response.
  void answer_with(const envelope::Envelope& reply, core::Timestamp now, Commands& out);
  // Answers the client ourselves (a refusal or a gateway error), records it, and closes.
  void answer(int status, std::string_view reason, const std::string& text, core::Timestamp now, Commands& out,
              envelope::Headers extra = {});
  void fail(int status, std::string_view reason, std::string code, const std::string& message, core::Timestamp now,
            Commands& out);
  void close_all(std::string reason, core::Timestamp now, Commands& out);
  void update_timer(core::Timestamp now, Commands& out);
  void on_timeout(core::Timestamp now, Commands& out);
  uint64_t record_limit() const;
  uint64_t buffer_limit() const;

  ConnectionContext& ctx_;
  State state_ = State::http;
  std::unique_ptr<Http1Parser> req_parser_;
  std::unique_ptr<Http1Parser> resp_parser_;
  core::Bytes client_in_;  // client bytes not parsed yet (pipelined requests, tunnel leftovers)
  size_t client_pos_ = 0;
  bool client_paused_ = false;
  bool client_eof_ = false;
  bool stopping_ = false;  // Shutdown: close after the exchange in flight
  std::unique_ptr<Exchange> ex_;
  uint64_t exchanges_ = 0;
  uint64_t seq_ = 0;
  std::map<ConnId, ServerConn> servers_;
  uint64_t bytes_from_client_ = 0, bytes_from_server_ = 0;
  core::Timestamp last_client_, last_server_;
  std::unique_ptr<Layer> tunnel_;
  bool tunnel_ended_ = false;  // the tunnel closed the connection and this stream's end is written
  std::vector<ConnId> retired_;  // pooled connections closed when the tunnel began
  std::optional<Http1Target> target_;
  std::string stream_id_;
  // One timer at a time; later deadlines move `deadline_` without a command.
  CommandId timer_ = 0;
  core::Timestamp timer_at_;
  Deadline deadline_kind_ = Deadline::none;
  core::Timestamp deadline_;
};

}  // namespace sluice::layer
