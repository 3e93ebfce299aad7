#pragma once
// The sans-IO layer contract.
//
// A layer is a protocol state machine. It receives one Event at a time and appends Commands for the
// runtime to execute; it never touches a socket, a clock or a thread. Time arrives with each event.
//
//   runtime --Event--> root layer --Event--> child layer ...
//   runtime <--Commands-- root layer <--Commands-- child layer (a parent may rewrite them: TLS
//                                                  encrypts a child's SendData, HTTP/2 frames it)
//
// Some commands expect a reply, matched by CommandId: OpenConnection -> OpenCompleted,
// RunPipeline -> PipelineVerdict, StartTimer -> TimerFired. Waiting for a reply pauses only the stream
// that issued the command: the layer keeps that stream's state and goes on handling events for its
// other streams (an HTTP/2 layer keeps serving 50 streams while one waits on an intercept hold).
// The runtime delivers exactly one reply per such command unless the connection closes first.
//
// Connections are named by ConnId: kClientConn is the connection the client opened to us; every other
// id was allocated by a layer (ConnectionContext::new_conn) and named in an OpenConnection.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/bytes.hpp"
#include "core/time.hpp"
#include "envelope/record.hpp"
#include "layer/mode_spec.hpp"
#include "layer/options.hpp"

namespace sluice::layer {

using ConnId = uint32_t;
using CommandId = uint64_t;
inline constexpr ConnId kClientConn = 0;

// ---- Events -------------------------------------------------------------------------------------

// The client connection was accepted; the first event every root layer sees.
struct Start {};
// Bytes arrived on `conn`. `data` is borrowed: valid only during the handle() call.
struct DataReceived {
  ConnId conn;
  core::ByteView data;
};
// The peer closed `conn` for reading (EOF, `reset` false) or it failed (`reset` true, with `reason`).
struct ConnectionClosed {
  ConnId conn;
  bool reset = false;
  std::string reason;
};
// Reply to OpenConnection: `error` empty on success.
struct OpenCompleted {
  CommandId id;
  ConnId conn;
  std::string error_code;  // "connect_refused", "dns_failure", "timeout", ...
  std::string error;       // one line, for the client and the error record
  std::string peer;        // "127.0.0.1:7000" as connected
  std::string alpn = {};   // with TLS: the protocol the server chose ("h2", "http/1.1"; "" none)
};
enum class Verdict : uint8_t {
  forward,  // send the (possibly modified) envelope on
  drop,     // do not send it; the stream goes on
  kill,     // close the stream
  respond,  // do not send it: answer the peer with `reply` (a layer that cannot answer forwards)
};
// Reply to RunPipeline. `envelope` is what to send: the original or the variant a step made.
struct PipelineVerdict {
  CommandId id;
  Verdict verdict = Verdict::forward;
  envelope::Envelope envelope;
  std::optional<envelope::Envelope> reply = {};  // respond: the answer's bytes (and tags)
  std::string decided_by = {};                     // drop, kill, respond: the step that said so
  bool whole = false;  // forward, of a head: a step asked for the whole message (it is held whole)
};
struct TimerFired {
  CommandId id;
};
// The proxy is stopping: finish what is in flight, start nothing new, close when idle. Connections
// still open when the grace period ends are closed by force (ConnectionClosed with reason "shutdown").
struct Shutdown {};

using Event = std::variant<Start, DataReceived, ConnectionClosed, OpenCompleted, PipelineVerdict, TimerFired, Shutdown>;

// ---- Commands -----------------------------------------------------------------------------------

// Connect to host:port as `conn` (reply: OpenCompleted). With `tls`, the TLS layer above the issuer
// speaks TLS on it (SNI the host unless it is an IP literal, ALPN http/1.1): OpenCompleted comes once
// the handshake is done and the certificate verified, and the issuer sees plaintext only.
struct OpenConnection {
  CommandId id;
  ConnId conn;
  std::string host;
  uint16_t port = 0;
  bool tls = false;
  std::vector<std::string> alpn = {};  // with `tls`: the protocols to offer (empty: http/1.1)
};
struct SendData {
  ConnId conn;
  core::Bytes data;
};
// `half`: shut down our sending side only (the peer sees EOF, we may still read).
struct CloseConnection {
  ConnId conn;
  bool half = false;
};
// Stop or resume reading from `conn` (bounded buffering while a stream waits).
struct PauseReading {
  ConnId conn;
  bool paused = true;
};
struct StartTimer {
  CommandId id;
  std::chrono::nanoseconds after;
};
struct CancelTimer {
  CommandId id;
};
// Run the pipeline steps on `envelope` (reply: PipelineVerdict). The pipeline records the envelope,
// and any variant a step makes, into the stream.
struct RunPipeline {
  CommandId id;
  envelope::Envelope envelope;
};
// The peer gave up one stream (an HTTP/2 RST_STREAM) while units of it are in the pipeline: the steps
// that hold them let them go now (their verdicts still come, and are ignored).
struct CancelUnits {
  std::string stream_id;
};
// Write a record straight into the stream (lifecycle records, overlays).
struct EmitRecord {
  envelope::Record record;
};
struct Log {
  enum class Level : uint8_t { debug, info, warn } level = Level::info;
  std::string message;
};

using Command = std::variant<OpenConnection, SendData, CloseConnection, PauseReading, StartTimer, CancelTimer,
                             RunPipeline, CancelUnits, EmitRecord, Log>;
using Commands = std::vector<Command>;

// One line per event or command, for logs and test diffs:
//   SendData(conn=1, 5 bytes "hello")   RunPipeline(#2, send raw seq=0 "hello")
std::string describe(const Event& e);
std::string describe(const Command& c);
// "30 s", "1500 ms": a timeout as messages name it.
std::string describe_duration(std::chrono::milliseconds d);

// ---- Stream ends ----------------------------------------------------------------------------------
// The connection's own stream always ends with an `end` record of scope "stream", its last record. A
// stream's end also ends the streams nested in it ("<id>.<k>"), which may end earlier on their own (a
// tunnel, a TLS layer's handshakes, an HTTP/2 connection or stream). A layer that hands the client connection on
// (to a tunnel, to the child of a TLS layer) ends its stream once the commands of the child's turn
// close the client connection.

// Emits the `end` record of the whole stream `stream_id` among out[from..]: before the first end there
// of a stream it is nested in (a child layer may own the enclosing stream), else last.
void end_stream(Commands& out, size_t from, std::string stream_id, std::string reason, core::Timestamp now,
                uint64_t bytes_sent, uint64_t bytes_received);
// Whether out[from..] closes the client connection (not only its sending side). If so, `reason` is
// set to the reason of the last stream `end` among them (the child's own), else "closed".
bool closes_client(const Commands& out, size_t from, std::string& reason);
// Whether out[from..] holds the stream `end` of `stream_id`.
bool ends_stream(const Commands& out, size_t from, const std::string& stream_id);

// ---- Context ------------------------------------------------------------------------------------

// State shared by the layers of one client connection: identity, addresses, id allocation.
class ConnectionContext {
 public:
  // `options` must outlive the context; nullptr: the defaults.
  ConnectionContext(std::string conn_id, std::string client, core::Timestamp opened, ModeSpec mode,
                    const ProxyOptions* options = nullptr)
      : conn_id_(std::move(conn_id)), client_(std::move(client)), opened_(opened), mode_(std::move(mode)),
        options_(options ? options : &kDefaultOptions) {}

  ConnId new_conn() { return next_conn_++; }
  CommandId new_command() { return next_command_++; }
  // A fresh stream id for a sub-stream (an HTTP/2 stream, a tunnelled connection): "<conn_id>.<n>".
  std::string new_stream_id() { return conn_id_ + "." + std::to_string(++next_stream_); }

  const std::string& conn_id() const { return conn_id_; }
  const std::string& client() const { return client_; }
  core::Timestamp opened() const { return opened_; }
  const ModeSpec& mode() const { return mode_; }
  const ProxyOptions& options() const { return *options_; }
  // The context every envelope of this connection carries; `server` as dialled.
  envelope::Context envelope_context(std::string server) const;
  // The client-facing TLS session, once a TLS layer established it; envelopes carry it from then on.
  void set_tls(envelope::TlsInfo info) { tls_ = std::move(info); }
  const std::optional<envelope::TlsInfo>& tls() const { return tls_; }
  // The protocol the intercepted server chose by ALPN ("h2", "http/1.1"; "" none or no TLS).
  void set_server_alpn(std::string alpn) { server_alpn_ = std::move(alpn); }
  const std::string& server_alpn() const { return server_alpn_; }

 private:
  std::string conn_id_;
  std::string client_;
  core::Timestamp opened_;
  ModeSpec mode_;
  const ProxyOptions* options_;
  std::optional<envelope::TlsInfo> tls_;
  std::string server_alpn_;
  static inline const ProxyOptions kDefaultOptions{};
  ConnId next_conn_ = kClientConn + 1;
  CommandId next_command_ = 1;
  uint64_t next_stream_ = 0;
};

// ---- Layer --------------------------------------------------------------------------------------

class Layer {
 public:
  virtual ~Layer() = default;
  // Handles one event that happened at `now`; appends commands to `out`. Never throws, never blocks.
  virtual void handle(const Event& event, core::Timestamp now, Commands& out) = 0;
  // A short name for logs ("raw", "next", "http1").
  virtual std::string_view name() const = 0;
};

// Picks the child layer once enough of the client's first bytes are known (mitmproxy's NextLayer).
// A decider returns nullptr to ask for more bytes; `at_eof` says no more will come.
using LayerDecider =
    std::function<std::unique_ptr<Layer>(ConnectionContext& ctx, core::ByteView first_bytes, bool at_eof)>;

// When a server speaks or closes first, the client closes or resets, or the client stays silent for
// `silence` (0: no limit), the decider is asked with `at_eof` true: it must choose with what it has
// (the child then gets the event). A decider that still chooses nothing when the client left gets the
// client connection closed and nothing more. With a `deadline`, a client that has not made the
// decider choose within it (silent, or a few bytes and then silent) is given up: an `error` record
// (`client_timeout`), the client connection and `server` (when one is open) closed.
class NextLayer final : public Layer {
 public:
  // `decide_at_start`: ask the decider on Start with no bytes (forced modes).
  NextLayer(ConnectionContext& ctx, LayerDecider decider, bool decide_at_start,
            std::chrono::milliseconds silence = std::chrono::milliseconds(0),
            std::chrono::milliseconds deadline = std::chrono::milliseconds(0), ConnId server = 0);
  void handle(const Event& event, core::Timestamp now, Commands& out) override;
  std::string_view name() const override { return "next"; }

 private:
  bool decide(bool at_eof, core::Timestamp now, Commands& out);

  ConnectionContext& ctx_;
  LayerDecider decider_;
  bool decide_at_start_;
  std::chrono::milliseconds silence_;
  std::chrono::milliseconds deadline_;
  ConnId server_;
  CommandId timer_ = 0;
  CommandId deadline_timer_ = 0;
  std::unique_ptr<Layer> child_;
  core::Bytes buffered_;
  bool given_up_ = false;  // the client left and the decider chose nothing: the connection is closed
};

}  // namespace sluice::layer
