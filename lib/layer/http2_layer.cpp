#include "layer/http2_layer.hpp"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <deque>
#include <cstring>

#include "codec/grpc.hpp"
#include "codec/http2.hpp"
#include "codec/sse.hpp"
#include "core/ascii.hpp"
#include "layer/grpc.hpp"
#include "layer/grpc_web.hpp"
#include "layer/gzip.hpp"
#include "layer/http1_parser.hpp"
#include "layer/http1_wire.hpp"
#include "layer/nghttp2_fields.hpp"
#include "layer/server_memo.hpp"
#include "layer/ws_layer.hpp"

namespace sluice::layer {

namespace {

using envelope::Direction;

constexpr size_t kFrameHeader = 9;
constexpr uint8_t kData = 0x0, kHeaders = 0x1, kContinuation = 0x9;

// Splits a connection's bytes into whole frames (after the client preface, on the client's side), so
// each stream's frames can be recorded exactly as they came.
class FrameSplitter {
 public:
  explicit FrameSplitter(size_t preface) : preface_left_(preface) {}
  template <typename Fn>
  void feed(core::ByteView data, Fn&& fn) {
    if (preface_left_) {
      size_t n = std::min(preface_left_, data.size());
      preface_left_ -= n;
      data.remove_prefix(n);
    }
    pending_.append(data);
    size_t pos = 0;
    while (pending_.size() - pos >= kFrameHeader) {
      const auto* p = reinterpret_cast<const uint8_t*>(pending_.data() + pos);
      size_t len = (size_t{p[0]} << 16) | (size_t{p[1]} << 8) | p[2];
      if (pending_.size() - pos < kFrameHeader + len) break;
      uint8_t type = p[3];
      int32_t stream = static_cast<int32_t>(((p[5] & 0x7fu) << 24) | (p[6] << 16) | (p[7] << 8) | p[8]);
      fn(type, stream, core::ByteView(pending_).substr(pos, kFrameHeader + len));
      pos += kFrameHeader + len;
    }
    pending_.erase(0, pos);
  }

 private:
  size_t preface_left_;
  core::Bytes pending_;
};

// Bytes waiting for one leg, taken from the front.
struct Pending {
  core::Bytes buf;
  size_t pos = 0;
  size_t size() const { return buf.size() - pos; }
  void append(core::ByteView b) {
    if (pos && pos == buf.size()) {
      buf.clear();
      pos = 0;
    }
    buf.append(b);
  }
  size_t take(uint8_t* out, size_t max) {
    size_t n = std::min(max, size());
    std::memcpy(out, buf.data() + pos, n);
    pos += n;
    if (pos > (1u << 16) && pos * 2 > buf.size()) {
      buf.erase(0, pos);
      pos = 0;
    }
    return n;
  }
};

// One direction of a stream, as it is recorded.
struct Message {
  std::string version = "HTTP/2";
  core::Bytes reason;  // from an HTTP/1.1 server
  envelope::Headers pseudo, headers, trailers;
  core::Bytes raw;   // the frames, as they came
  core::Bytes body;  // DATA payloads
  uint64_t body_total = 0;
  std::vector<core::Bytes> data_frames;  // for h2-frame overlays
  core::Timestamp time;
  std::vector<envelope::Anomaly> anomalies;  // what the peer got wrong
  bool have_head = false;
  bool in_trailers = false;  // the HEADERS being received are trailers
  bool ended = false;        // END_STREAM seen
  bool recorded = false;
  uint64_t seq = 0;  // the recorded envelope's
  envelope::Tags tags;  // added to its envelope (a step changed its head)
  BudgetHold hold;      // what its kept bytes hold of --record-memory
  bool over_budget = false;  // --record-memory was spent: nothing more of its body is kept
};

using codec::h2_fields;  // HTTP/1 fields as HTTP/2 carries them

}  // namespace

struct Http2Layer::Impl {
  struct Stream {
    int32_t client_id = 0, upstream_id = 0;
    std::string stream_id, flow_id;
    uint64_t seq = 0;
    Message req, resp;
    Pending to_upstream, to_client;
    bool submitted = false;          // the request went to the server
    bool response_submitted = false; // the response headers went to the client
    bool client_closed = false, upstream_closed = false;
    uint32_t reset_code = 0;  // a RST_STREAM from either side
    uint64_t wire[2] = {0, 0};  // bytes of its own that came from the client and from the server, for its end
    bool grpc = false;
    // An RFC 8441 extended CONNECT for websocket: its DATA is WebSocket frames, recorded as such.
    bool ws = false;
    std::unique_ptr<WsRecorder> ws_recorder;  // once the server accepted
    core::Bytes ws_pending[2];                // frames' bytes (client's, server's) not recorded yet
    LpmParser req_lpm, resp_lpm;
    bool grpc_started = false, grpc_ended = false;
    // Units inside a stream (steps): gRPC messages both ways, a response's events. Each waits in its
    // direction's queue (0: the client's, 1: the server's), in order, for its verdict; what is not a
    // unit (an event stream's comments) waits only for the units before it. A gRPC call's start
    // holds the request's head, its end the trailers (or a trailers-only answer).
    bool grpc_units = false;
    bool sse_units = false;
    bool ws_units = false;         // RFC 8441 WebSocket: whole data messages (once the server accepted)
    bool ws_reencode[2] = {false, false};  // see WsRecorder::verdict_bytes
    struct HeldPiece {
      CommandId id = 0;  // its RunPipeline; 0: not a unit
      core::Bytes bytes;
      std::optional<PipelineVerdict> verdict;
      std::optional<envelope::Envelope> record;  // not a unit: recorded when it goes (a control frame)
    };
    std::deque<HeldPiece> held[2];
    uint64_t held_bytes[2] = {0, 0};
    CommandId grpc_start_unit = 0, grpc_end_unit = 0;
    bool grpc_trailers_only = false;  // the server's answer was one HEADERS frame, held as the end
    std::optional<GrpcWebUnits> grpc_web;  // a gRPC-Web message held whole waits for its units' verdicts
    // A message held whole for steps that grows past the limit streams on, but its head is judged first
    // (a head unit; 0: the request's, 1: the response's): the sender's window is then opened only as
    // the other leg takes the bytes.
    CommandId head_unit[2] = {0, 0};
    bool head_judged[2] = {false, false};
    std::unique_ptr<codec::SseParser> sse;  // the response is an event stream: one envelope per event
    CommandId pipeline = 0;  // the request waits for the pipeline's verdict (lazy_connect, steps)
    CommandId resp_pipeline = 0;  // the response waits for it (steps)
    bool resp_held = false;       // the response is kept from the client until its verdict
    // DATA bytes from the client (0) and the server (1) whose flow-control window is not open again
    // yet: opened as the other leg takes bytes, or at once for a message held whole for its verdict
    // (a step's change may make what goes on longer or shorter than what came).
    uint64_t unconsumed[2] = {0, 0};
    // Translated to an HTTP/1.1 server: the stream's own connection while its exchange lasts.
    struct H1Leg {
      ConnId conn = 0;
      CommandId open = 0;
      bool ready = false;      // connected
      bool chunked = false;    // the request body goes chunked (no content-length)
      bool head_sent = false, body_done = false;
      bool done = false;       // the response ended: the connection is back in the pool or closed
      std::unique_ptr<Http1Parser> parser;
      envelope::Headers fields;  // the head's fields as sent
      core::Bytes body;          // the body as sent (up to the limit)
      core::Bytes sent;        // what went to the server, for the request's variant (up to the limit)
      bool variant_recorded = false;
      bool paused = false;     // reading from the server waits for the client to take the response
    };
    std::unique_ptr<H1Leg> h1;
    // A step sent the request elsewhere (map_remote): it goes there over HTTP/1.1, on a connection
    // of its own (never pooled).
    std::unique_ptr<Http2Target> routed;
    // From an HTTP/1.1 client (front()): how its response goes back.
    bool front_chunked = false, front_done = false, front_variant_recorded = false;
  };

  // What the server speaks: known from a tunnel's ALPN or our own TLS handshake's, or found out
  // on a cleartext connection (our h2c preface answered with SETTINGS, or not).
  enum class Speaks : uint8_t { unknown, h2, h1 };

  ConnectionContext& ctx;
  Http2Target target;
  std::string conn_stream;  // this HTTP/2 connection's sub-stream prefix
  nghttp2_session* client = nullptr;
  nghttp2_session* upstream = nullptr;
  ConnId server = 0;
  CommandId open_id = 0;
  bool closed = false;
  uint64_t from_client = 0, from_servers = 0;  // bytes as they came in, for the stream's end
  Commands* out = nullptr;
  core::Timestamp now;
  FrameSplitter client_frames{kPreface.size()};
  FrameSplitter server_frames{0};
  std::map<int32_t, std::unique_ptr<Stream>> streams;  // by client stream id
  std::map<int32_t, Stream*> by_upstream;
  std::vector<int32_t> waiting;  // client streams whose request waits for the server connection
  // What a RunPipeline was for: a stream's request or response, or a gRPC call's start, message or end.
  enum class Unit : uint8_t { request, response, grpc_start, piece, grpc_end, grpc_web, head };
  std::map<CommandId, std::pair<int32_t, Unit>> verdicts;  // RunPipeline id -> client stream, unit
  std::vector<int32_t> ended;              // client streams whose request just ended (lazy_connect)
  std::string failure_code, failure;  // the server connection could not be opened
  Speaks speaks = Speaks::unknown;
  bool probing = false;     // cleartext: our preface is out, the server's first bytes decide
  core::Bytes probe_bytes;  // the server's first bytes while probing
  std::map<ConnId, Stream*> h1_conns;     // HTTP/1.1 connections in use, by connection
  std::map<CommandId, Stream*> h1_opens;  // ... being opened
  std::vector<ConnId> h1_idle;            // ... kept alive for the next stream
  bool connect_protocol = false;  // we told the client it may use extended CONNECT (the server allows it)
  // An HTTP/1.1 client (target.h1_client): its requests, one exchange at a time.
  std::unique_ptr<Http1Parser> front_parser;
  core::Bytes front_backlog;  // client bytes not parsed yet
  Stream* front_stream = nullptr;
  int32_t next_front_id = 1;
  bool front_close = false, front_paused = false;
  bool front_parsing = false;  // inside front_parse
  bool front_closing = false;  // the client connection is being closed: nothing more is read

  Impl(ConnectionContext& c, Http2Target t) : ctx(c), target(std::move(t)) {}
  ~Impl() {
    if (client) nghttp2_session_del(client);
    if (upstream) nghttp2_session_del(upstream);
  }

  uint64_t limit() const {
    uint64_t l = ctx.options().record_body_limit;
    return l ? l : (16u << 20);
  }
  std::string server_key() const { return format_host_port(target.host, target.port); }
  std::string server_key(const Stream& st) const {
    return st.routed ? format_host_port(st.routed->host, st.routed->port) : server_key();
  }

  // "scheme://host:port" a request's head points to (named_destination); "" none.
  static std::string destination(const Message& m) {
    std::string authority = header_value(m.pseudo, ":authority");
    if (authority.empty())
      if (auto host = find_header(m.headers, "host")) authority = *host;
    return named_destination(header_value(m.pseudo, ":scheme"), authority, header_value(m.pseudo, ":path"));
  }

  // A step changed where the request points (from `before`): the stream goes there.
  void follow(Stream& st, const std::string& before, const std::string& by) {
    if (ctx.mode().kind == ModeSpec::Kind::upstream || header_value(st.req.pseudo, ":method") == "CONNECT") return;
    std::string to = destination(st.req);
    if (before.empty() || to.empty() || to == before) return;
    auto u = parse_absolute_url(to + "/");
    if (!u) return;
    st.routed = std::make_unique<Http2Target>();
    st.routed->host = u->host;
    st.routed->port = u->port;
    st.routed->tls = u->scheme == "https";
    out->push_back(Log{Log::Level::info, "stream " + st.stream_id + " sent to " + to + " (" + by + ")"});
  }

  // `add` kept in `into` for the record, up to the limit, drawing on --record-memory: once that is
  // spent nothing more of the message is kept (it is recorded with what it has, the rest omitted; a
  // message held whole streams on), but what `always` says (a head) is kept all the same.
  void keep(Message& m, core::Bytes& into, core::ByteView add, bool always = false) {
    if (into.size() >= limit() || (m.over_budget && !always)) return;
    add = add.substr(0, limit() - into.size());
    if (!m.hold.take(ctx.options().record_budget, add.size()) && !always) {
      m.over_budget = true;
      return;
    }
    into.append(add);
  }

  // ---- sessions ------------------------------------------------------------------------------------

  nghttp2_session_callbacks* callbacks() {
    nghttp2_session_callbacks* cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_invalid_header_callback(cbs, on_invalid_header);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, on_invalid_frame);
    return cbs;
  }

  void start() {
    conn_stream = ctx.new_stream_id();
    if (front()) {
      front_parser = std::make_unique<Http1Parser>(Http1Parser::Type::request);
    } else {
      nghttp2_session_callbacks* cbs = callbacks();
      nghttp2_option* opt;
      nghttp2_option_new(&opt);
      nghttp2_option_set_no_auto_window_update(opt, 1);  // windows open as the other leg takes the bytes
      nghttp2_session_server_new2(&client, cbs, this, opt);
      nghttp2_session_callbacks_del(cbs);
      nghttp2_option_del(opt);
      nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 256}};
      nghttp2_submit_settings(client, NGHTTP2_FLAG_NONE, iv, 1);
    }
    if (target.server) {
      server = target.server;
      speaks = Speaks::h2;
      start_upstream();
    } else if (!lazy() && !front()) {
      open_upstream();  // at once: what the server speaks (and allows: extended CONNECT) is known sooner
    }
  }

  void start_upstream() {
    nghttp2_session_callbacks* cbs = callbacks();
    nghttp2_option* opt;
    nghttp2_option_new(&opt);
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_session_client_new2(&upstream, cbs, this, opt);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(opt);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
    nghttp2_submit_settings(upstream, NGHTTP2_FLAG_NONE, iv, 1);
    if (speaks == Speaks::h2) send_waiting();
  }

  // Requests held until the server's protocol was known.
  void send_waiting() {
    std::vector<int32_t> ids;
    ids.swap(waiting);
    for (int32_t id : ids)
      if (auto it = streams.find(id); it != streams.end()) {
        if (speaks == Speaks::h1)
          start_h1(*it->second);
        else
          submit_request(*it->second);
      }
  }

  // The first connection to the server: TLS offers h2 and http/1.1 and the server picks; cleartext
  // starts with our h2c preface, and the server's answer says which (see on_probe).
  void open_upstream() {
    if (server || open_id || !failure_code.empty() || speaks == Speaks::h1) return;
    if (!target.tls && ctx.options().servers && ctx.options().servers->known_http1(server_key(), now)) {
      // An earlier connection found this cleartext server speaking HTTP/1.1: no probe this time.
      speaks = Speaks::h1;
      send_waiting();
      return;
    }
    server = ctx.new_conn();
    open_id = ctx.new_command();
    std::vector<std::string> alpn;
    if (target.tls) alpn = {"h2", "http/1.1"};
    out->push_back(OpenConnection{open_id, server, target.host, target.port, target.tls, std::move(alpn)});
  }

  // ---- callbacks -----------------------------------------------------------------------------------

  static Impl& self(void* user_data) { return *static_cast<Impl*>(user_data); }

  Stream* find(nghttp2_session* s, int32_t id) {
    if (s == client) {
      auto it = streams.find(id);
      return it == streams.end() ? nullptr : it->second.get();
    }
    auto it = by_upstream.find(id);
    return it == by_upstream.end() ? nullptr : it->second;
  }

  static int on_begin_headers(nghttp2_session* s, const nghttp2_frame* frame, void* ud) {
    Impl& im = self(ud);
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    if (s == im.client && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      auto st = std::make_unique<Stream>();
      st->client_id = frame->hd.stream_id;
      st->stream_id = im.conn_stream + "." + std::to_string(frame->hd.stream_id);
      st->flow_id = st->stream_id + "-0";
      st->req.time = im.now;
      im.streams[frame->hd.stream_id] = std::move(st);
      return 0;
    }
    if (Stream* st = im.find(s, frame->hd.stream_id)) {
      Message& m = s == im.client ? st->req : st->resp;
      if (s != im.client && frame->headers.cat == NGHTTP2_HCAT_RESPONSE) {
        m.pseudo.clear();  // a 1xx before: the final response replaces it
        m.headers.clear();
        m.time = im.now;
      }
      m.in_trailers = frame->headers.cat == NGHTTP2_HCAT_HEADERS;
    }
    return 0;
  }

  static int on_header(nghttp2_session* s, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                       const uint8_t* value, size_t valuelen, uint8_t, void* ud) {
    Impl& im = self(ud);
    Stream* st = im.find(s, frame->hd.stream_id);
    if (!st) return 0;
    Message& m = s == im.client ? st->req : st->resp;
    envelope::Header h{std::string(reinterpret_cast<const char*>(name), namelen),
                       std::string(reinterpret_cast<const char*>(value), valuelen)};
    if (m.in_trailers)
      m.trailers.push_back(std::move(h));
    else if (!h.name.empty() && h.name[0] == ':')
      m.pseudo.push_back(std::move(h));
    else
      m.headers.push_back(std::move(h));
    return 0;
  }

  // A header field HTTP/2 forbids (upper case, connection-specific, a bad pseudo-header): named on
  // the message, and the stream reset with PROTOCOL_ERROR, to that peer only.
  static int on_invalid_header(nghttp2_session* s, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                               const uint8_t*, size_t, uint8_t, void* ud) {
    Impl& im = self(ud);
    if (Stream* st = im.find(s, frame->hd.stream_id)) {
      (s == im.client ? st->req : st->resp)
          .anomalies.push_back({"h2_bad_header", "a header field HTTP/2 does not allow: \"" +
                                                     std::string(reinterpret_cast<const char*>(name), namelen) + "\""});
    }
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }

  static int on_invalid_frame(nghttp2_session* s, const nghttp2_frame* frame, int lib_error, void* ud) {
    Impl& im = self(ud);
    std::string what = std::string(s == im.client ? "the client" : "the server") + " sent an invalid frame: " +
                       nghttp2_strerror(lib_error);
    // nghttp2 refuses forbidden fields (upper case, connection-specific, bad pseudo-headers) here.
    std::string name = lib_error == NGHTTP2_ERR_HTTP_HEADER ? "h2_bad_header" : "h2_protocol_error";
    if (Stream* st = im.find(s, frame->hd.stream_id))
      (s == im.client ? st->req : st->resp).anomalies.push_back({name, what});
    else
      im.error_record("h2_protocol_error", what);
    return 0;
  }

  static int on_frame_recv(nghttp2_session* s, const nghttp2_frame* frame, void* ud) {
    Impl& im = self(ud);
    if (frame->hd.type == NGHTTP2_SETTINGS && s == im.upstream && !(frame->hd.flags & NGHTTP2_FLAG_ACK)) im.on_server_settings();
    Stream* st = im.find(s, frame->hd.stream_id);
    if (!st) return 0;
    bool from_client = s == im.client;
    bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    Message& m = from_client ? st->req : st->resp;
    if (frame->hd.type == NGHTTP2_HEADERS) {
      if (from_client && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        m.have_head = true;
        st->ws = header_value(m.pseudo, ":method") == "CONNECT" && core::iequals(header_value(m.pseudo, ":protocol"), "websocket");
        st->grpc = is_grpc(header_value(m.headers, "content-type"));
        bool units = im.ctx.options().step_units && !im.front() && !im.lazy();
        st->grpc_units = st->grpc && units;
        st->ws_units = st->ws && units;
        if (st->grpc) im.grpc_start(*st);
        if (!im.holds_request(*st) && !st->grpc_units) im.send_on(*st);
      } else if (!from_client && frame->headers.cat == NGHTTP2_HCAT_RESPONSE) {
        std::string status = header_value(m.pseudo, ":status");
        if (status.size() == 3 && status[0] == '1') return 0;  // interim: not passed on
        m.have_head = true;
        if (is_grpc(header_value(m.headers, "content-type"))) st->grpc = true;
        im.sse_head(*st);
        if (st->ws && status[0] == '2') {
          st->ws_recorder = std::make_unique<WsRecorder>(
              st->stream_id, st->flow_id, im.ctx.envelope_context(im.server_key()),
              parse_ws_extensions(header_value(m.headers, "sec-websocket-extensions")), im.limit());
        } else if (st->ws_units) {  // refused: what the client sent early goes on as it came
          st->ws_units = false;
          st->to_upstream.append(st->ws_pending[0]);
          st->ws_pending[0].clear();
          im.resume(*st, true);
        }
        if (st->grpc_units && end)
          st->grpc_trailers_only = true;  // the call's end: it goes once the end unit's verdict is in
        else if (!(st->resp_held = im.holds_response(*st)))
          im.submit_response(*st, end);
      }
      if (end) {
        m.ended = true;
        im.resume(*st, from_client);
        if (from_client) im.request_ended(*st);
      }
    } else if (frame->hd.type == NGHTTP2_DATA && end) {
      m.ended = true;
      im.resume(*st, from_client);
      if (from_client) im.request_ended(*st);
    } else if (frame->hd.type == NGHTTP2_RST_STREAM) {
      st->reset_code = frame->rst_stream.error_code;
      // The client gave up this stream: steps let go of its units now (whatever the error code).
      if (from_client && !st->client_closed && units_pending(*st)) im.out->push_back(CancelUnits{st->stream_id});
    }
    if (!from_client && st->resp.ended && (st->resp_held || st->sse_units)) im.response_over(*st);
    return 0;
  }

  static int on_data_chunk(nghttp2_session* s, uint8_t, int32_t stream_id, const uint8_t* data, size_t len, void* ud) {
    Impl& im = self(ud);
    Stream* st = im.find(s, stream_id);
    if (!st) {
      nghttp2_session_consume(s, stream_id, len);
      return 0;
    }
    bool from_client = s == im.client;
    Message& m = from_client ? st->req : st->resp;
    core::ByteView bytes(reinterpret_cast<const char*>(data), len);
    bool queued = im.queued(*st, from_client);
    if (!queued)  // (units inside the stream join what goes on once their verdicts are in)
      (from_client ? st->to_upstream : st->to_client).append(bytes);
    m.body_total += len;
    if (st->ws)  // WebSocket frames, recorded as such (settle); with units, held until parsed
      st->ws_pending[from_client ? 0 : 1].append(bytes);
    else
      im.keep(m, m.body, bytes);
    LpmParser& lpm_parser = from_client ? st->req_lpm : st->resp_lpm;
    if (st->grpc) {
      lpm_parser.feed(bytes, [&](uint8_t flag, core::ByteView lpm) {
        im.grpc_data(*st, from_client ? Direction::send : Direction::receive, flag & 1, lpm);
      });
    }
    if (!from_client) im.sse_data(*st, bytes);
    st->unconsumed[from_client ? 0 : 1] += len;
    if ((from_client && !st->submitted && im.holds_request(*st) && !st->head_judged[0]) ||
        (!from_client && st->resp_held && !st->head_judged[1]) ||
        (queued && st->held_bytes[from_client ? 0 : 1] + st->ws_pending[from_client ? 0 : 1].size() <= kMaxHeld))
      im.open_window(*st, from_client, len);  // held whole: the sender may go on (up to the limit, then it streams)
    if (st->grpc_units && lpm_parser.pending().size() > im.limit()) {
      // A message that waits whole for its verdict may not grow past the limit: the call is reset.
      im.error_record("grpc_message_too_large", "a gRPC message is larger than --record-body-limit while steps hold "
                                                "each message whole: the call was reset");
      im.reset_stream(*st);
      return 0;
    }
    im.resume(*st, from_client);
    // Too much to hold for a verdict: the request streams on without one.
    if (from_client && im.holds_request(*st) && !st->submitted && !st->pipeline &&
        (st->to_upstream.size() > im.limit() || m.over_budget))
      im.stream_on(*st, 0);
    if (!from_client && st->resp_held && !st->resp_pipeline && (st->to_client.size() > im.limit() || m.over_budget))
      im.stream_on(*st, 1);
    return 0;
  }

  static int on_stream_close(nghttp2_session* s, int32_t stream_id, uint32_t error_code, void* ud) {
    Impl& im = self(ud);
    Stream* st = im.find(s, stream_id);
    if (!st) return 0;
    if (s == im.client) {
      st->client_closed = true;
      if (error_code && im.upstream && st->upstream_id && !st->upstream_closed)
        nghttp2_submit_rst_stream(im.upstream, NGHTTP2_FLAG_NONE, st->upstream_id, error_code);
      if (error_code && st->h1 && !st->h1->done) {
        st->h1->done = true;
        st->upstream_closed = true;
        im.forget_h1(*st);
      }
    } else {
      st->upstream_closed = true;
      if (error_code && !st->client_closed) {
        if (im.front())
          im.front_failed(*st, std::string("the server reset the stream: ") + nghttp2_http2_strerror(error_code));
        else
          nghttp2_submit_rst_stream(im.client, NGHTTP2_FLAG_NONE, st->client_id, error_code);
      }
    }
    if (error_code && !st->reset_code) st->reset_code = error_code;
    return 0;
  }

  // A data provider's read: bytes for the other leg, and the end (with trailers) once they are out.
  static ssize_t read_for(nghttp2_session* s, int32_t, uint8_t* buf, size_t length, uint32_t* flags,
                          nghttp2_data_source* source, void* ud) {
    Impl& im = self(ud);
    Stream* st = static_cast<Stream*>(source->ptr);
    bool to_server = s == im.upstream;
    Pending& p = to_server ? st->to_upstream : st->to_client;
    Message& m = to_server ? st->req : st->resp;
    size_t n = p.take(buf, length);
    // The bytes came from an HTTP/1.1 peer (translated): no window to open, but its connection may
    // be read again; and its trailers go in HTTP/2's form.
    bool from_h1 = to_server ? im.front() : st->h1 != nullptr;
    if (from_h1 && to_server)
      im.front_took(*st);
    else if (from_h1)
      im.h1_resume_reading(*st);
    else  // the sender may send as much again
      im.open_window(*st, to_server, n);
    if (p.size() == 0 && m.ended && st->held[to_server ? 0 : 1].empty() && (to_server || !st->grpc_end_unit)) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!m.trailers.empty()) {
        envelope::Headers translated;
        if (from_h1) translated = h2_fields(m.trailers);
        auto nv = to_nv(from_h1 ? translated : m.trailers);
        if (nghttp2_submit_trailer(s, to_server ? st->upstream_id : st->client_id, nv.data(), nv.size()) == 0)
          *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      }
      return static_cast<ssize_t>(n);
    }
    if (n == 0) return NGHTTP2_ERR_DEFERRED;
    return static_cast<ssize_t>(n);
  }

  void resume(Stream& st, bool from_client) {
    if (from_client) {
      if (st.h1)
        pump_h1(st);
      else if (upstream && st.upstream_id)
        nghttp2_session_resume_data(upstream, st.upstream_id);
    } else if (front()) {
      pump_front(st);
    } else if (st.response_submitted) {
      nghttp2_session_resume_data(client, st.client_id);
    }
  }

  bool lazy() const { return ctx.options().lazy_connect; }

  // Opens the window of the client's (from_client) or the server's side of the stream by up to `n`
  // of the bytes that came and are not opened for yet.
  void open_window(Stream& st, bool from_client, uint64_t n) {
    uint64_t& left = st.unconsumed[from_client ? 0 : 1];
    n = std::min(n, left);
    left -= n;
    nghttp2_session* s = from_client ? client : upstream;
    int32_t id = from_client ? st.client_id : st.upstream_id;
    if (n && s && id) nghttp2_session_consume(s, id, n);
  }

  // Whether a request waits whole for the pipeline before it goes on: under lazy_connect (the
  // pipeline may answer it), and with steps, each request but those that are streams by nature
  // (WebSocket over extended CONNECT, CONNECT, gRPC calls: they would never end while held). An
  // HTTP/1.1 client's (front()) too.
  bool holds_request(const Stream& st) const {
    if (lazy()) return true;
    return ctx.options().step_units && !st.ws && !st.grpc &&
           header_value(st.req.pseudo, ":method") != "CONNECT";
  }

  // The request goes to the server: now, or once the connection is up.
  void send_on(Stream& st) {
    if (st.submitted) return;
    if (speaks == Speaks::h1 || st.routed) {
      start_h1(st);
      return;
    }
    if (upstream && speaks == Speaks::h2) {
      submit_request(st);
      return;
    }
    if (std::find(waiting.begin(), waiting.end(), st.client_id) == waiting.end()) waiting.push_back(st.client_id);
    open_upstream();
    if (!failure_code.empty()) fail_stream(st, 502, "sluice: " + server_key() + ": " + failure + "\n");
  }

  // With steps, a response waits whole for the pipeline too, but those that are streams by nature
  // (an event stream, a gRPC call's, an extended CONNECT's).
  bool holds_response(const Stream& st) const {
    return ctx.options().step_units && !st.ws && !st.grpc && !st.sse &&
           header_value(st.req.pseudo, ":method") != "CONNECT";
  }

  void response_ended(Stream& st) {
    if (st.resp_held && !st.resp_pipeline && !st.client_closed && !st.head_judged[1])
      ended.push_back(-st.client_id);  // (negative: the response)
  }

  // The held response goes to the client as it is: over the limit, or after its verdict.
  void release_response(Stream& st) {
    st.resp_held = false;
    submit_response(st, st.resp.ended && st.to_client.size() == 0 && st.resp.trailers.empty());
  }

  // A whole request goes through the pipeline (which may answer it itself) once its last frames are
  // attributed to it (after the input is parsed): see run_pipelines().
  void request_ended(Stream& st) {
    if (holds_request(st) && !st.submitted && !st.pipeline && !st.head_judged[0]) ended.push_back(st.client_id);
  }

  // Past the limit a held message streams on: with steps, once its head is judged (a head unit).
  void stream_on(Stream& st, int d) {
    if (st.head_judged[d]) return;
    if (!ctx.options().step_units || lazy()) {
      d == 0 ? send_on(st) : release_response(st);
      return;
    }
    st.head_judged[d] = true;
    Message& m = d == 0 ? st.req : st.resp;
    Direction dir = d == 0 ? Direction::send : Direction::receive;
    envelope::Envelope e = envelope_for(st, dir, envelope::Protocol::http);
    e.time = m.time.ns ? m.time : now;
    e.overlay = "head";
    e.message = http_head(m, dir);
    if (front() && d == 0)  // an HTTP/1.1 client's head: its bytes, as the HTTP/1 layer gives them
      if (size_t end = m.raw.find("\r\n\r\n"); end != core::Bytes::npos) e.raw = m.raw.substr(0, end + 4);
    st.head_unit[d] = ctx.new_command();
    verdicts[st.head_unit[d]] = {st.client_id, Unit::head};
    out->push_back(RunPipeline{st.head_unit[d], std::move(e)});
  }

  void on_head_verdict(Stream& st, const PipelineVerdict& v) {
    int d = v.id == st.head_unit[0] ? 0 : 1;
    st.head_unit[d] = 0;
    if (st.client_closed) return;
    bool request = d == 0;
    if (v.verdict == Verdict::kill || (!request && v.verdict == Verdict::drop)) {
      reset_stream(st);
      return;
    }
    if (request && v.verdict == Verdict::drop) {
      std::string by = v.decided_by.empty() ? std::string("a pipeline step") : v.decided_by;
      fail_stream(st, 403, "sluice: the request was dropped by " + by + "\n");
      return;
    }
    if (request && v.verdict == Verdict::respond && v.reply) {
      answer_with(st, *v.reply);
      return;
    }
    const auto* hm = std::get_if<envelope::HttpMessage>(&v.envelope.message);
    std::string before = request ? destination(st.req) : std::string();
    if (v.envelope.modified && hm) {
      Message& m = request ? st.req : st.resp;
      std::string authority = header_value(m.pseudo, ":authority");
      m.pseudo = request ? request_pseudo(*hm, m.pseudo) : envelope::Headers{{":status", std::to_string(hm->status)}};
      if (request && front()) {
        // An HTTP/1.1 client's head as the step left it (its bytes and fields as HTTP/1.1, as
        // `sluice step` writes them); the body's framing as it came. Made HTTP/2 when it goes.
        envelope::Headers fields;
        for (const auto& h : hm->headers)
          if (!is_framing_field(h.name)) fields.push_back(h);
        for (const auto& h : m.headers)
          if (is_framing_field(h.name)) fields.push_back(h);
        if (size_t end = m.raw.find("\r\n\r\n"); end != core::Bytes::npos && !v.envelope.raw.empty())
          m.raw = v.envelope.raw + m.raw.substr(end + 4);
        m.headers = std::move(fields);
        front_authority(st, authority);
      } else {
        // The head as the step left it, in HTTP/2's form; the body's content-length as it came.
        std::string length = header_value(m.headers, "content-length");
        envelope::Headers fields = h2_fields(hm->headers);
        std::erase_if(fields, [](const envelope::Header& h) { return h.name == "content-length"; });
        if (!length.empty()) fields.push_back({"content-length", length});
        m.headers = std::move(fields);
      }
      m.tags.emplace_back("head_modified_by", v.envelope.modified_by);
      if (request) follow(st, before, v.envelope.modified_by);
    }
    if (request)
      send_on(st);
    else
      release_response(st);
  }

  void run_pipelines() {
    std::vector<int32_t> ids;
    ids.swap(ended);
    for (int32_t id : ids) {
      auto it = streams.find(id < 0 ? -id : id);
      if (it == streams.end()) continue;
      Stream& st = *it->second;
      if (id < 0) {
        if (st.resp_held && !st.resp_pipeline && !st.client_closed && !st.head_judged[1]) run_response_pipeline(st);
      } else if (!st.submitted && !st.pipeline) {
        run_pipeline(st);
      }
    }
  }

  void run_response_pipeline(Stream& st) {
    st.resp_pipeline = ctx.new_command();
    verdicts[st.resp_pipeline] = {st.client_id, Unit::response};
    st.resp.recorded = true;
    out->push_back(RunPipeline{st.resp_pipeline, message_envelope(st, st.resp, Direction::receive, {})});
  }

  void run_pipeline(Stream& st) {
    st.pipeline = ctx.new_command();
    verdicts[st.pipeline] = {st.client_id, Unit::request};
    envelope::Envelope e = request_envelope(st);
    out->push_back(RunPipeline{st.pipeline, std::move(e)});
  }

  void on_verdict(const PipelineVerdict& v) {
    auto it = verdicts.find(v.id);
    if (it == verdicts.end()) return;
    auto [id, unit] = it->second;
    verdicts.erase(it);
    auto sit = streams.find(id);
    if (sit == streams.end()) return;
    Stream& st = *sit->second;
    if (unit != Unit::request) {
      if (unit == Unit::response)
        on_response_verdict(st, v);
      else if (unit == Unit::grpc_start)
        on_grpc_start_verdict(st, v);
      else if (unit == Unit::piece)
        on_piece_verdict(st, v);
      else if (unit == Unit::grpc_web)
        on_grpc_web_verdict(st, v);
      else if (unit == Unit::head)
        on_head_verdict(st, v);
      else
        on_grpc_end_verdict(st, v);
      flush();
      return;
    }
    st.pipeline = 0;
    record_overlays(st, st.req, Direction::send);
    if (st.client_closed) {  // the client reset the stream meanwhile: nothing goes on
      flush();
      return;
    }
    if (v.verdict == Verdict::drop) {
      // A clear answer naming who dropped it; the server never sees the request.
      std::string by = v.decided_by.empty() ? std::string("a pipeline step") : v.decided_by;
      fail_stream(st, 403, "sluice: the request was dropped by " + by + "\n");
    } else if (v.verdict == Verdict::kill) {
      reset_stream(st);
    } else if (v.verdict == Verdict::respond && v.reply) {
      record_grpc_web(st, v.envelope);
      answer_with(st, *v.reply);
    } else {
      if (v.envelope.modified) {
        std::string before = destination(st.req);
        apply_request(st, v.envelope);
        follow(st, before, v.envelope.modified_by);
      }
      if (!run_grpc_web(st, v.envelope)) send_on(st);
    }
    flush();
  }

  // A gRPC-Web message held whole: with steps its units go to the pipeline (true: it waits for them);
  // otherwise they are recorded beside.
  bool run_grpc_web(Stream& st, const envelope::Envelope& http) {
    std::vector<envelope::Envelope> units =
        ctx.options().step_units ? grpc_web_units(http) : std::vector<envelope::Envelope>{};
    if (units.empty()) {
      record_grpc_web(st, http);
      return false;
    }
    GrpcWebUnits& call = st.grpc_web.emplace();
    call.start(http, std::move(units), st.seq, ctx, *out);
    for (CommandId id : call.ids) verdicts[id] = {st.client_id, Unit::grpc_web};
    return true;
  }

  void record_grpc_web(Stream& st, const envelope::Envelope& http) {
    for (auto& g : grpc_web_envelopes(http)) {
      g.seq = st.seq++;
      out->push_back(EmitRecord{std::move(g)});
    }
  }

  void on_grpc_web_verdict(Stream& st, const PipelineVerdict& v) {
    if (!st.grpc_web || !st.grpc_web->take(v) || !st.grpc_web->done()) return;
    GrpcWebUnits call = std::move(*st.grpc_web);
    st.grpc_web.reset();
    if (st.client_closed) return;
    GrpcWebOutcome o = grpc_web_outcome(call);
    bool request = call.http.direction == Direction::send;
    if (o.kind == GrpcWebOutcome::Kind::kill) {
      reset_stream(st);
      return;
    }
    if (o.kind == GrpcWebOutcome::Kind::respond) {
      answer_with(st, *o.reply);
      return;
    }
    if (o.changed) {  // made again from its units (their variants record the change)
      envelope::Envelope e;
      e.message = std::move(*o.changed);
      if (request)
        apply_request(st, e);
      else
        apply_response(st, e);
    }
    if (request)
      send_on(st);
    else
      release_response(st);
  }

  void on_response_verdict(Stream& st, const PipelineVerdict& v) {
    st.resp_pipeline = 0;
    if (st.client_closed) return;
    record_overlays(st, st.resp, Direction::receive);
    if (v.verdict == Verdict::drop || v.verdict == Verdict::kill) {
      // A client cannot be told to skip a response: its stream is reset, and only that stream.
      reset_stream(st);
      return;
    }
    if (v.envelope.modified) apply_response(st, v.envelope);  // (respond: the response goes on as it is)
    if (!run_grpc_web(st, v.envelope)) release_response(st);
  }

  // A step changed the response: the client gets its status, fields (in HTTP/2's form, a
  // content-length that says the body's size), body and trailers.
  void apply_response(Stream& st, const envelope::Envelope& e) {
    const auto* m = std::get_if<envelope::HttpMessage>(&e.message);
    if (!m) return;
    st.resp.pseudo = {{":status", std::to_string(m->status)}};
    apply_fields(*m, st.resp, st.to_client);
  }

  // A changed message's fields in HTTP/2's form (a content-length says the new body's size), its
  // trailers, and its body as what is left to send.
  static void apply_fields(const envelope::HttpMessage& m, Message& to, Pending& body) {
    to.headers = h2_fields(m.headers);
    for (auto& h : to.headers)
      if (h.name == "content-length") h.value = std::to_string(m.body.size());
    to.trailers = h2_fields(m.trailers);
    body = Pending{};
    body.append(m.body);
  }

  // A step changed the request: what goes to the server is made from its message (the pseudo-header
  // fields from method, scheme, authority and path; fields in HTTP/2's form; the body, with a
  // content-length that says its size; trailers).
  void apply_request(Stream& st, const envelope::Envelope& e) {
    const auto* m = std::get_if<envelope::HttpMessage>(&e.message);
    if (!m) return;
    if (front() && !e.raw.empty()) {
      front_apply_request(st, e.raw);
      return;
    }
    std::string authority = header_value(st.req.pseudo, ":authority");
    st.req.pseudo = request_pseudo(*m, st.req.pseudo);
    apply_fields(*m, st.req, st.to_upstream);
    if (front()) front_authority(st, authority);
  }

  // A request's pseudo-header fields from a step's message: method, scheme, authority and path from it,
  // :protocol and anything else the message has no member for as they were.
  static envelope::Headers request_pseudo(const envelope::HttpMessage& m, const envelope::Headers& before) {
    envelope::Headers pseudo;
    for (auto [name, value] : {std::pair{":method", &m.method}, {":scheme", &m.scheme},
                               {":authority", &m.authority}, {":path", &m.path}})
      if (!value->empty()) pseudo.push_back({name, *value});
    for (const auto& h : before)
      if (h.name != ":method" && h.name != ":scheme" && h.name != ":authority" && h.name != ":path") pseudo.push_back(h);
    return pseudo;
  }

  // A pipeline step's answer (HTTP/1 response bytes) as this stream's HTTP/2 response.
  void answer_with(Stream& st, const envelope::Envelope& reply) {
    auto parsed = parse_whole_response(reply.raw, header_value(st.req.pseudo, ":method"));
    if (!parsed) {
      error_record("bad_reply", "a pipeline step answered with no complete HTTP/1 response (" + parsed.error().message + ")");
      fail_stream(st, 502, "sluice: a pipeline step answered with no complete response\n");
      return;
    }
    st.resp = Message{};
    st.resp.pseudo.push_back({":status", std::to_string(parsed->head.status)});
    st.resp.headers = h2_fields(parsed->head.headers);
    st.resp.trailers = h2_fields(parsed->trailers);
    st.resp.have_head = true;
    st.resp.time = now;
    st.resp.body_total = parsed->body.size();
    st.to_client.append(parsed->body);
    st.resp.body = std::move(parsed->body);
    st.resp.ended = true;
    st.upstream_closed = true;
    if (is_grpc(header_value(st.resp.headers, "content-type"))) st.grpc = true;
    submit_response(st, st.to_client.size() == 0 && st.resp.trailers.empty());
    record_message(st, st.resp, Direction::receive, reply.tags);
    grpc_end(st, false);
  }

  void submit_request(Stream& st) {
    if (st.submitted) return;
    st.submitted = true;
    envelope::Headers pseudo = st.req.pseudo;
    envelope::Headers fields;
    if (front()) fields = front_fields(st.req.headers);
    auto nv = to_nv(pseudo, front() ? fields : st.req.headers);
    nghttp2_data_provider prd;
    prd.source.ptr = &st;
    prd.read_callback = read_for;
    bool body = !(st.req.ended && st.to_upstream.size() == 0 && st.req.trailers.empty() && st.held[0].empty());
    int32_t id = nghttp2_submit_request(upstream, nullptr, nv.data(), nv.size(), body ? &prd : nullptr, &st);
    if (id < 0) {
      fail_stream(st, 502, std::string("sluice: cannot send the request on: ") + nghttp2_strerror(id) + "\n");
      return;
    }
    st.upstream_id = id;
    by_upstream[id] = &st;
  }

  void submit_response(Stream& st, bool end) {
    if (st.response_submitted || st.client_closed) return;
    st.response_submitted = true;
    if (front()) {
      front_response_head(st, end);
      pump_front(st);
      return;
    }
    envelope::Headers translated;
    if (st.h1) translated = h2_fields(st.resp.headers);
    auto nv = to_nv(st.resp.pseudo, st.h1 ? translated : st.resp.headers);
    nghttp2_data_provider prd;
    prd.source.ptr = &st;
    prd.read_callback = read_for;
    nghttp2_submit_response(client, st.client_id, nv.data(), nv.size(), end ? nullptr : &prd);
  }

  // Answers a stream ourselves (the server is unreachable): a plain-text response.
  void fail_stream(Stream& st, int status, const std::string& text) {
    st.resp = Message{};
    st.resp.pseudo.push_back({":status", std::to_string(status)});
    st.resp.headers.push_back({"content-type", "text/plain; charset=utf-8"});
    st.resp.headers.push_back({"content-length", std::to_string(text.size())});
    st.resp.have_head = true;
    st.resp.time = now;
    st.resp.body = text;
    st.resp.body_total = text.size();
    st.resp.ended = true;
    st.to_client.append(text);
    st.upstream_closed = true;
    submit_response(st, false);
    record_message(st, st.resp, Direction::receive, {{"synthesized", "sluice"}});
  }

  // ---- an HTTP/1.1 server (translation) ------------------------------------------------------------
  //
  // Each stream gets a connection of its own while its exchange lasts (HTTP/1.1 has one exchange at a
  // time per connection), taken from the idle ones kept alive or opened. The request goes out as an
  // HTTP/1.1 message (Host from :authority, cookie fields joined, a body without content-length
  // chunked, trailers in the last chunk); the response comes back as the stream's HTTP/2 response
  // (fields in lower case without the connection-specific ones, body and trailers as they arrive).
  // Recorded: the client's request as it came (HTTP/2), a variant with the HTTP/1.1 bytes sent, and
  // the server's response as it came (HTTP/1.1).

  static constexpr size_t kMaxIdleH1 = 16;

  void start_h1(Stream& st) {
    if (st.submitted) return;
    st.submitted = true;
    if (header_value(st.req.pseudo, ":method") == "CONNECT") {
      fail_stream(st, 501, "sluice: CONNECT over HTTP/2 to an HTTP/1.1 server is not supported\n");
      return;
    }
    st.h1 = std::make_unique<Stream::H1Leg>();
    Stream::H1Leg& h = *st.h1;
    h.parser = std::make_unique<Http1Parser>(Http1Parser::Type::response);
    h.parser->set_request_method(header_value(st.req.pseudo, ":method"));
    if (!h1_idle.empty() && !st.routed) {
      h.conn = h1_idle.back();
      h1_idle.pop_back();
      h.ready = true;
      h1_conns[h.conn] = &st;
      pump_h1(st);
      return;
    }
    h.conn = ctx.new_conn();
    h.open = ctx.new_command();
    h1_conns[h.conn] = &st;
    h1_opens[h.open] = &st;
    const Http2Target& to = st.routed ? *st.routed : target;
    out->push_back(OpenConnection{h.open, h.conn, to.host, to.port, to.tls, {"http/1.1"}});
  }

  // The authority a translated request names: the client's, or in reverse mode the target (unless
  // --keep-host-header), as the HTTP/1 layer rewrites Host.
  std::string authority_for(std::string client_authority) const {
    if (ctx.mode().kind == ModeSpec::Kind::reverse && !ctx.options().keep_host_header)
      return authority_of(target.host, target.port, target.tls ? 443 : 80);
    return client_authority;
  }

  // The request's fields as HTTP/1.1 (kept for the variant's view), and whether its body goes chunked.
  envelope::Headers h1_request_fields(const Stream& st, bool& chunked) const {
    const Message& m = st.req;
    std::string method = header_value(m.pseudo, ":method");
    envelope::Headers fields;
    std::string authority = header_value(m.pseudo, ":authority");
    if (auto host = find_header(m.headers, "host"); host && authority.empty()) authority = *host;
    if (!st.routed) authority = authority_for(std::move(authority));  // (a routed one names where it goes)
    if (!authority.empty()) fields.push_back({"host", authority});
    std::string cookies;  // HTTP/2 may split them; HTTP/1.1 wants one field (RFC 9113 §8.2.3)
    bool has_length = false;
    for (const auto& h : m.headers) {
      if (h.name == "cookie") {
        cookies += (cookies.empty() ? "" : "; ") + h.value;
        continue;
      }
      if (is_connection_specific(h.name) || h.name == "host") continue;
      if (h.name == "content-length") has_length = true;
      fields.push_back(h);
    }
    if (!cookies.empty()) fields.push_back({"cookie", std::move(cookies)});
    bool no_body = m.ended && m.body_total == 0 && m.trailers.empty();
    // Trailers need the chunked coding, which a content-length field would contradict.
    chunked = !no_body && (!has_length || !m.trailers.empty());
    if (chunked && has_length)
      std::erase_if(fields, [](const envelope::Header& h) { return h.name == "content-length"; });
    if (chunked)
      fields.push_back({"transfer-encoding", "chunked"});
    else if (!has_length && body_expected(method))
      fields.push_back({"content-length", "0"});
    return fields;
  }

  // What the server can be sent now: the head, the body bytes received, the end.
  void pump_h1(Stream& st) {
    Stream::H1Leg& h = *st.h1;
    if (!h.ready || h.body_done || !h.conn) return;
    core::Bytes bytes;
    if (!h.head_sent) {
      h.fields = h1_request_fields(st, h.chunked);
      std::string path = header_value(st.req.pseudo, ":path");
      bytes = request_head(header_value(st.req.pseudo, ":method"), path.empty() ? "/" : path, h.fields);
      h.head_sent = true;
    }
    if (size_t n = st.to_upstream.size()) {
      core::Bytes body(n, '\0');
      st.to_upstream.take(reinterpret_cast<uint8_t*>(body.data()), n);
      open_window(st, true, n);  // the client may send as much again
      keep(st.req, h.body, body);
      bytes += h.chunked ? body_chunk(body) : body;
    }
    if (st.req.ended && st.to_upstream.size() == 0) {
      if (h.chunked) bytes += last_chunk(st.req.trailers);
      h.body_done = true;
    }
    if (bytes.empty()) return;
    if (h.sent.size() < limit()) h.sent.append(core::ByteView(bytes).substr(0, limit() - h.sent.size()));
    out->push_back(SendData{h.conn, std::move(bytes)});
  }

  void on_h1_open(const OpenCompleted& o) {
    auto it = h1_opens.find(o.id);
    if (it == h1_opens.end()) return;
    Stream& st = *it->second;
    h1_opens.erase(it);
    Stream::H1Leg& h = *st.h1;
    h.open = 0;
    if (!o.error_code.empty()) {
      h1_conns.erase(h.conn);
      h.conn = 0;
      h.done = true;
      error_record(o.error_code, o.error);
      fail_stream(st, 502, "sluice: " + server_key(st) + ": " + o.error + "\n");
      return;
    }
    h.ready = true;
    pump_h1(st);
  }

  // An HTTP/1.1 server has no flow control: its connection is read no further while the client has
  // this much of its response still to take (the runtime stops reading what it cannot write out).
  static constexpr size_t kH1Buffered = 1u << 20;

  void h1_resume_reading(Stream& st) {
    Stream::H1Leg& h = *st.h1;
    if (h.paused && h.conn && st.to_client.size() + st.held_bytes[1] < kH1Buffered / 2) {
      h.paused = false;
      out->push_back(PauseReading{h.conn, false});
    }
  }

  // Response body bytes the parser decoded: on to the client (and to the record, and gRPC's view).
  void take_h1_body(Stream& st) {
    core::Bytes body = st.h1->parser->take_body();
    if (body.empty()) return;
    if (!queued(st, false)) st.to_client.append(body);
    st.resp.body_total += body.size();
    keep(st.resp, st.resp.body, body);
    if (st.resp_held && !st.resp_pipeline && (st.to_client.size() > limit() || st.resp.over_budget)) stream_on(st, 1);
    if ((!st.resp_held || st.head_judged[1]) && !st.h1->paused && st.h1->conn &&
        st.to_client.size() + st.held_bytes[1] > kH1Buffered) {
      st.h1->paused = true;
      out->push_back(PauseReading{st.h1->conn, true});
    }
    if (st.grpc)
      st.resp_lpm.feed(body, [&](uint8_t flag, core::ByteView lpm) { grpc_data(st, Direction::receive, flag & 1, lpm); });
    sse_data(st, body);
    resume(st, false);
  }

  void on_h1_data(ConnId conn, core::ByteView data) {
    auto it = h1_conns.find(conn);
    if (it == h1_conns.end()) {  // an idle connection spoke: it is not ours to keep
      drop_idle(conn, true);
      return;
    }
    Stream& st = *it->second;
    Stream::H1Leg& h = *st.h1;
    if (!h.done) st.wire[1] += data.size();
    while (!h.done) {
      size_t used = 0;
      Http1Parser::Status status = h.parser->feed(data, used);
      keep(st.resp, st.resp.raw, data.substr(0, used), !st.resp.have_head);  // (a head is kept whatever the budget)
      data.remove_prefix(used);
      take_h1_body(st);
      if (status == Http1Parser::Status::need_more) return;
      bool whole = status == Http1Parser::Status::complete;  // a body-less message may come whole
      if (status == Http1Parser::Status::head || (whole && !st.resp.have_head)) {
        if (h.parser->head().status < 200) {  // interim (100 Continue...): not passed on
          h.parser->take_head();
          st.resp.raw.clear();
          continue;
        }
        Http1Head head = h.parser->take_head();
        st.resp.pseudo = {{":status", std::to_string(head.status)}};
        st.resp.headers = std::move(head.headers);
        st.resp.reason = std::move(head.reason);
        st.resp.version = head.version;
        st.resp.have_head = true;
        st.resp.time = now;
        if (is_grpc(header_value(st.resp.headers, "content-type"))) st.grpc = true;
        sse_head(st);
        if (!(st.resp_held = holds_response(st))) submit_response(st, false);
        if (!whole) continue;
      }
      if (whole) {
        st.resp.trailers = h.parser->trailers();
        end_h1_response(st);
        release_h1(st, h.parser->head().keep_alive && h.body_done && data.empty());
        return;
      }
      // An upgrade (101) cannot be carried to an HTTP/2 stream; a malformed response is refused.
      bool upgrade = status == Http1Parser::Status::upgrade;
      std::string name = upgrade ? "h2_translation_upgrade" : h.parser->error_name();
      std::string why = upgrade ? "the HTTP/1.1 server switched protocols, which an HTTP/2 stream cannot carry"
                                : h.parser->error();
      st.resp.anomalies.push_back({name, why});
      h1_failed(st, why);
      return;
    }
  }

  // The server's response ended: so does the stream's, once the client has taken the rest.
  void end_h1_response(Stream& st) {
    st.resp.ended = true;
    st.upstream_closed = true;
    st.h1->done = true;
    resume(st, false);
    response_over(st);
  }

  // The exchange is over: the connection goes back to the pool, or is closed.
  void release_h1(Stream& st, bool keep) {
    Stream::H1Leg& h = *st.h1;
    if (!h.conn) return;
    h1_conns.erase(h.conn);
    if (keep && !closed && !st.routed && h1_idle.size() < kMaxIdleH1) {
      if (h.paused) out->push_back(PauseReading{h.conn, false});  // the next stream's response is read
      h1_idle.push_back(h.conn);
    } else {
      out->push_back(CloseConnection{h.conn, false});
    }
    h.paused = false;
    h.conn = 0;
  }

  void drop_idle(ConnId conn, bool close) {
    auto it = std::find(h1_idle.begin(), h1_idle.end(), conn);
    if (it == h1_idle.end()) return;
    h1_idle.erase(it);
    if (close) out->push_back(CloseConnection{conn, false});
  }

  // The server's answer failed: a 502 if nothing went to the client yet, else the stream is reset.
  void h1_failed(Stream& st, const std::string& why) {
    Stream::H1Leg& h = *st.h1;
    h.done = true;
    st.upstream_closed = true;
    release_h1(st, false);
    if (!st.response_submitted) {
      fail_stream(st, 502, "sluice: " + server_key(st) + ": " + why + "\n");
      return;
    }
    st.reset_code = NGHTTP2_INTERNAL_ERROR;
    if (!st.client_closed) nghttp2_submit_rst_stream(client, NGHTTP2_FLAG_NONE, st.client_id, NGHTTP2_INTERNAL_ERROR);
  }

  void on_h1_closed(ConnId conn, bool reset) {
    auto it = h1_conns.find(conn);
    if (it == h1_conns.end()) {
      drop_idle(conn, false);
      return;
    }
    Stream& st = *it->second;
    Stream::H1Leg& h = *st.h1;
    h1_conns.erase(it);
    h.conn = 0;
    if (h.done) return;
    if (!reset && h.parser->finish() == Http1Parser::Status::complete) {  // a body delimited by the close
      take_h1_body(st);
      end_h1_response(st);
      return;
    }
    std::string why = st.resp.have_head ? "the server closed the connection in the middle of the response"
                                        : "the server closed the connection without answering";
    error_record(reset ? "server_reset" : "server_closed", why);
    if (st.resp.have_head) st.resp.anomalies.push_back({"truncated_message", why});
    h1_failed(st, why);
  }

  // The stream is over on the client's side before its exchange is: its connection is not reused.
  void forget_h1(Stream& st) {
    if (!st.h1) return;
    Stream::H1Leg& h = *st.h1;
    if (h.open) h1_opens.erase(h.open);
    h.open = 0;
    if (h.conn) {
      h1_conns.erase(h.conn);
      out->push_back(CloseConnection{h.conn, false});
      h.conn = 0;
    }
  }

  // The request as it went to the HTTP/1.1 server, beside the client's: a variant of it.
  void record_h1_variant(Stream& st) {
    if (!st.h1 || st.h1->variant_recorded || !st.req.recorded || !st.h1->head_sent) return;
    st.h1->variant_recorded = true;
    record_translated(st, "HTTP/1.1", std::move(st.h1->fields), st.req.trailers, std::move(st.h1->body),
                      std::move(st.h1->sent), "HTTP/2 to HTTP/1.1");
  }

  // A variant of the stream's request: the message as it went to the server in the other version.
  void record_translated(Stream& st, std::string version, envelope::Headers fields, envelope::Headers trailers,
                         core::Bytes body, core::Bytes raw, std::string how) {
    envelope::Envelope e = envelope_for(st, Direction::send, envelope::Protocol::http);
    --st.seq;  // a variant shares its original's seq
    e.seq = st.req.seq;
    envelope::HttpMessage msg;
    msg.kind = envelope::HttpMessage::Kind::request;
    msg.version = std::move(version);
    msg.method = header_value(st.req.pseudo, ":method");
    msg.scheme = header_value(st.req.pseudo, ":scheme");
    msg.authority = header_value(st.req.pseudo, ":authority");
    msg.path = header_value(st.req.pseudo, ":path");
    msg.headers = std::move(fields);
    msg.trailers = std::move(trailers);
    msg.body = std::move(body);
    e.raw = std::move(raw);
    e.message = std::move(msg);
    e.modified = true;
    e.variant_of = st.req.seq;
    e.modified_by = "sluice";
    e.tags.emplace_back("translated", std::move(how));
    out->push_back(EmitRecord{std::move(e)});
  }

  // ---- an HTTP/1.1 client (translation) ------------------------------------------------------------
  //
  // The client speaks HTTP/1.1 and the server only HTTP/2 (it chose h2 by ALPN when we offered it
  // after it refused the client's http/1.1). Each request becomes a stream, one exchange at a time:
  // pipelined requests wait in `front_backlog` until the response before them is out, so answers go
  // back in order. Request fields go in lower case without the connection-specific ones and Host
  // (which becomes :authority); the response comes back as HTTP/1.1, chunked unless it has a
  // content-length, its trailers in the last chunk. Recorded: the client's request as it came
  // (HTTP/1.1), a variant of it as sent (HTTP/2; `raw` empty: HPACK-coded), the server's response as
  // it came (HTTP/2).

  static constexpr size_t kFrontBuffered = 1u << 20;  // request body bytes held before the client is paused

  bool front() const { return target.h1_client; }

  void on_front_data(core::ByteView data) {
    front_backlog.append(data);
    front_parse();
  }

  void front_parse() {
    if (front_parsing) return;  // an exchange that ended inside this loop: the loop goes on
    front_parsing = true;
    front_parse_loop();
    front_parsing = false;
  }

  void front_parse_loop() {
    while (!closed && !front_closing) {
      if (front_stream && front_stream->req.ended) return;  // the next request waits for this answer
      size_t used = 0;
      Http1Parser::Status status = front_parser->feed(front_backlog, used);
      core::ByteView taken = core::ByteView(front_backlog).substr(0, used);
      if (front_stream && status != Http1Parser::Status::head) {
        front_stream->wire[0] += used;
        Message& m = front_stream->req;
        keep(m, m.raw, taken);
      }
      front_backlog.erase(0, used);
      switch (status) {
        case Http1Parser::Status::need_more:
          take_front_body();
          return;
        case Http1Parser::Status::head:
          front_request(true);
          continue;
        case Http1Parser::Status::complete:
          if (!front_stream) return;  // its exchange already ended (refused before its body came)
          take_front_body();
          front_stream->req.trailers = front_parser->trailers();  // as sent; in lower case to the server
          front_stream->req.ended = true;
          resume(*front_stream, true);
          request_ended(*front_stream);
          continue;
        case Http1Parser::Status::upgrade:
          front_refuse(501, "h2_translation_upgrade",
                       "an upgrade or CONNECT cannot be carried to a server that speaks only HTTP/2");
          return;
        case Http1Parser::Status::error:
          front_refuse(front_parser->error_name() == "header_too_large" ? 431 : 400, front_parser->error_name(),
                       front_parser->error());
          return;
      }
    }
  }

  // A request the client may not send on: an answer of ours, and the connection ends after it.
  void front_refuse(int status, const std::string& anomaly, const std::string& why) {
    if (!front_stream) front_request(false);
    Stream& st = *front_stream;
    st.req.anomalies.push_back({anomaly, why});
    st.req.ended = true;
    front_close = true;
    front_backlog.clear();
    if (upstream && st.upstream_id && !st.upstream_closed)
      nghttp2_submit_rst_stream(upstream, NGHTTP2_FLAG_NONE, st.upstream_id, NGHTTP2_CANCEL);
    st.submitted = true;
    if (st.response_submitted) {
      front_failed(st, why);
      return;
    }
    fail_stream(st, status, "sluice: " + why + "\n");
  }

  // The head just parsed becomes a stream's request.
  void front_request(bool has_head) {
    Http1Head head = has_head ? front_parser->take_head() : Http1Head{};
    auto st = std::make_unique<Stream>();
    st->client_id = next_front_id;
    next_front_id += 2;
    st->stream_id = conn_stream + "." + std::to_string(st->client_id);
    st->flow_id = st->stream_id + "-0";
    st->req.time = now;
    st->req.version = head.version.empty() ? "HTTP/1.1" : head.version;
    st->wire[0] = head.raw.size();
    st->req.raw = std::move(head.raw);
    st->req.have_head = has_head;
    front_close = !head.keep_alive;
    std::string path(head.target);
    if (auto url = parse_absolute_url(path)) path = url->origin_form;
    std::string authority = authority_for(header_value(head.headers, "host"));
    st->req.pseudo = {{":method", std::string(head.method)}, {":scheme", target.tls ? "https" : "http"},
                      {":authority", authority}, {":path", path}};
    st->req.headers = std::move(head.headers);
    st->grpc = is_grpc(header_value(st->req.headers, "content-type"));
    if (st->grpc) grpc_start(*st);
    front_stream = st.get();
    int32_t id = st->client_id;
    streams[id] = std::move(st);
    if (has_head && !holds_request(*front_stream)) send_on(*front_stream);
  }

  void take_front_body() {
    if (!front_stream) return;
    Stream& st = *front_stream;
    core::Bytes body = front_parser->take_body();
    if (body.empty()) return;
    st.to_upstream.append(body);
    st.req.body_total += body.size();
    keep(st.req, st.req.body, body);
    if (st.grpc)
      st.req_lpm.feed(body, [&](uint8_t flag, core::ByteView lpm) { grpc_data(st, Direction::send, flag & 1, lpm); });
    // Held whole for the pipeline, the body is read up to the limit; past it the head is judged and
    // the client waits (paused) until the server takes the bytes.
    bool held = !st.submitted && holds_request(st) && !st.head_judged[0];
    if (held && !st.pipeline && (st.to_upstream.size() > limit() || st.req.over_budget)) {
      stream_on(st, 0);
      held = false;
    }
    if (!front_paused && !held && st.to_upstream.size() > kFrontBuffered) {
      front_paused = true;
      out->push_back(PauseReading{kClientConn, true});
    }
    resume(st, true);
  }

  // The server's window took request bytes: the client may send more.
  void front_took(Stream& st) {
    if (front_paused && st.to_upstream.size() < kFrontBuffered / 2) {
      front_paused = false;
      out->push_back(PauseReading{kClientConn, false});
    }
  }

  // The request's fields as HTTP/2 carries them (Host is :authority).
  static envelope::Headers front_fields(const envelope::Headers& headers) {
    envelope::Headers fields = h2_fields(headers);
    std::erase_if(fields, [](const envelope::Header& h) { return h.name == "host"; });
    return fields;
  }

  // A step changed the request (HTTP/1.1 bytes, made from its message or edited): what goes to the
  // server is made from those bytes, parsed whole.
  void front_apply_request(Stream& st, core::ByteView raw) {
    auto parsed = parse_whole_request(raw);
    if (!parsed) {
      error_record("bad_variant", "a pipeline step changed the request into no complete HTTP/1 request (" +
                                      parsed.error().message + ")");
      fail_stream(st, 502, "sluice: a pipeline step changed the request into no complete request\n");
      return;
    }
    std::string authority = header_value(st.req.pseudo, ":authority");
    std::string path(parsed->head.target);
    if (auto url = parse_absolute_url(path)) path = url->origin_form;
    st.req.pseudo = {{":method", std::string(parsed->head.method)}, {":scheme", header_value(st.req.pseudo, ":scheme")},
                     {":authority", authority}, {":path", path}};
    st.req.headers = std::move(parsed->head.headers);
    st.req.trailers = std::move(parsed->trailers);
    st.to_upstream = Pending{};
    st.to_upstream.append(parsed->body);
    front_authority(st, authority);
  }

  // The server named by a changed request: its Host when the step changed that (an HTTP/1.1
  // client's way of naming it), else the authority as the step left it.
  void front_authority(Stream& st, const std::string& before) {
    std::string host = header_value(st.req.headers, "host");
    if (header_value(st.req.pseudo, ":authority") != before || host.empty()) return;
    std::string authority = authority_for(host);
    for (auto& h : st.req.pseudo)
      if (h.name == ":authority") h.value = authority;
  }

  // The response's head as HTTP/1.1, to the client.
  // `end`: the response ends with its head.
  void front_response_head(Stream& st, bool end) {
    int status = std::atoi(header_value(st.resp.pseudo, ":status").c_str());
    std::string method = header_value(st.req.pseudo, ":method");
    bool bodyless = method == "HEAD" || status == 204 || status == 304;
    bool has_length = find_header(st.resp.headers, "content-length").has_value();
    bool http10 = st.req.version == "HTTP/1.0";
    bool empty = end || (st.resp.ended && st.to_client.size() == 0 && st.resp.trailers.empty());  // all there is
    st.front_chunked = !bodyless && !has_length && !http10 && !empty;
    if (!bodyless && !has_length && http10 && !empty) front_close = true;  // the close delimits the body
    envelope::Headers fields = st.resp.headers;
    std::erase_if(fields, [](const envelope::Header& h) { return is_connection_specific(h.name); });
    if (st.front_chunked) fields.push_back({"transfer-encoding", "chunked"});
    if (!bodyless && !has_length && empty) fields.push_back({"content-length", "0"});
    if (front_close) fields.push_back({"connection", "close"});
    out->push_back(SendData{kClientConn, response_bytes(status, reason_phrase(status), fields, {})});
  }

  // Response body bytes the server sent, on to the client; the exchange ends with the last of them.
  void pump_front(Stream& st) {
    if (!st.response_submitted || st.front_done) return;
    if (size_t n = st.to_client.size()) {
      core::Bytes body(n, '\0');
      st.to_client.take(reinterpret_cast<uint8_t*>(body.data()), n);
      if (!st.upstream_closed) open_window(st, false, n);
      out->push_back(SendData{kClientConn, st.front_chunked ? body_chunk(body) : std::move(body)});
    }
    if (!st.resp.ended) return;
    if (st.front_chunked) out->push_back(SendData{kClientConn, last_chunk(h2_fields(st.resp.trailers))});
    finish_front(st, front_close || !st.req.ended);
  }

  // The exchange is over on the client's side: the next request (a pipelined one, if it came), or,
  // with `close`, the end of the connection.
  void finish_front(Stream& st, bool close) {
    st.front_done = true;
    st.client_closed = true;  // for settle: the client's side of this stream is over
    front_stream = nullptr;
    if (!close) {
      front_parse();
      return;
    }
    front_closing = true;  // the connection ends once this event is handled (Http2Layer::handle)
    front_backlog.clear();
  }

  // The server reset the stream or went away before the response ended: nothing more can be said in
  // HTTP/1.1 but a 502 (before the response began) or the end of the connection.
  void front_failed(Stream& st, const std::string& why) {
    if (st.front_done) return;
    if (!st.response_submitted) {
      fail_stream(st, 502, "sluice: " + server_key() + ": " + why + "\n");
      return;
    }
    finish_front(st, true);
  }

  void record_front_variant(Stream& st) {
    if (!front() || st.front_variant_recorded || !st.req.recorded || !st.submitted || !st.upstream_id) return;
    st.front_variant_recorded = true;
    record_translated(st, "HTTP/2", front_fields(st.req.headers), h2_fields(st.req.trailers), {}, {},
                      "HTTP/1.1 to HTTP/2");
  }

  // ---- the server's protocol -----------------------------------------------------------------------

  // Cleartext: a server that speaks HTTP/2 answers our preface with its SETTINGS (RFC 9113 §3.4);
  // anything else (an HTTP/1 error response, a close) means HTTP/1.1, and the requests go translated.
  void on_probe(core::ByteView data) {
    probe_bytes.append(data);
    if (probe_bytes.size() < kFrameHeader) return;
    const auto* p = reinterpret_cast<const uint8_t*>(probe_bytes.data());
    bool settings = p[3] == 0x4 && (p[5] & 0x7f) == 0 && p[6] == 0 && p[7] == 0 && p[8] == 0;
    if (!settings) {
      fall_back_to_h1(true);
      return;
    }
    probing = false;
    speaks = Speaks::h2;
    core::Bytes bytes;
    bytes.swap(probe_bytes);
    send_waiting();
    on_data(server, bytes);
  }

  // Out of line: inlined here, it sets off GCC 12's -Wmaybe-uninitialized on close_all's variants.
  [[gnu::noinline]] void remember_http1() const {
    if (ctx.options().servers) ctx.options().servers->remember_http1(server_key(), now);
  }

  // `answered`: the server sent bytes that are not HTTP/2 (an HTTP/1 error, as a rule), which later
  // connections remember; a close alone is not remembered (an h2c server may have been overloaded).
  void fall_back_to_h1(bool answered) {
    probing = false;
    speaks = Speaks::h1;
    if (answered) remember_http1();
    probe_bytes.clear();
    if (server) out->push_back(CloseConnection{server, false});
    server = 0;
    if (upstream) nghttp2_session_del(upstream);
    upstream = nullptr;
    send_waiting();
  }

  // ---- records -------------------------------------------------------------------------------------

  envelope::Envelope envelope_for(Stream& st, Direction d, envelope::Protocol p) {
    envelope::Envelope e;
    e.stream_id = st.stream_id;
    e.flow_id = st.flow_id;
    e.seq = st.seq++;
    e.direction = d;
    e.protocol = p;
    e.time = now;
    e.context = ctx.envelope_context(server_key(st));
    return e;
  }

  // The request as the pipeline sees it (and records it): the message, no overlays yet.
  envelope::Envelope request_envelope(Stream& st) {
    Message& m = st.req;
    m.recorded = true;
    return message_envelope(st, m, Direction::send, {});
  }

  void record_message(Stream& st, Message& m, Direction d, envelope::Tags tags = {}) {
    if (m.recorded || (!m.have_head && m.anomalies.empty())) return;  // a refused head is still named
    m.recorded = true;
    envelope::Envelope e = message_envelope(st, m, d, std::move(tags));
    std::vector<envelope::Envelope> grpc_web = grpc_web_envelopes(e);
    out->push_back(EmitRecord{std::move(e)});
    record_overlays(st, m, d);
    for (auto& g : grpc_web) {
      g.seq = st.seq++;
      out->push_back(EmitRecord{std::move(g)});
    }
  }

  void record_overlays(Stream& st, Message& m, Direction d) {
    for (auto& f : m.data_frames) {
      envelope::Envelope o = envelope_for(st, d, envelope::Protocol::http);
      o.overlay = "h2-frame";
      o.raw = std::move(f);
      out->push_back(EmitRecord{std::move(o)});
    }
    m.data_frames.clear();
  }

  // A message's start and fields (no body).
  static envelope::HttpMessage http_head(const Message& m, Direction d) {
    envelope::HttpMessage msg;
    msg.version = m.version;
    if (d == Direction::send) {
      msg.kind = envelope::HttpMessage::Kind::request;
      msg.method = header_value(m.pseudo, ":method");
      msg.scheme = header_value(m.pseudo, ":scheme");
      msg.authority = header_value(m.pseudo, ":authority");
      msg.path = header_value(m.pseudo, ":path");
    } else {
      msg.kind = envelope::HttpMessage::Kind::response;
      msg.status = std::atoi(header_value(m.pseudo, ":status").c_str());
      msg.reason = m.reason;
    }
    msg.headers = m.headers;
    return msg;
  }

  envelope::Envelope message_envelope(Stream& st, Message& m, Direction d, envelope::Tags tags) {
    envelope::Envelope e = envelope_for(st, d, envelope::Protocol::http);
    e.time = m.time.ns ? m.time : now;
    envelope::HttpMessage msg = http_head(m, d);
    m.seq = e.seq;
    msg.trailers = m.trailers;
    msg.body = std::move(m.body);
    msg.body_omitted = m.body_total > msg.body.size() ? m.body_total - msg.body.size() : 0;
    e.raw = std::move(m.raw);
    m.hold.release();  // what it kept moves on to the recorder (or the pipeline)
    e.message = std::move(msg);
    e.tags = std::move(tags);
    for (const auto& t : m.tags) e.tags.push_back(t);
    if (!m.ended && !st.ws) e.tags.emplace_back("incomplete", "true");
    if (st.reset_code) e.tags.emplace_back("rst_stream", nghttp2_http2_strerror(st.reset_code));
    e.anomalies = m.anomalies;
    return e;
  }

  // An event stream (text/event-stream, no content coding) is recorded one `sse` envelope per event,
  // as the HTTP/1 layer records it, beside the response; its bytes go on as they come (with steps,
  // each event as its verdict allows).
  void sse_head(Stream& st) {
    const auto& h = st.resp.headers;
    std::string coding = header_value(h, "content-encoding");
    if (core::iequals(header_value(h, "content-type").substr(0, 17), "text/event-stream") &&
        (coding.empty() || core::iequals(coding, "identity"))) {
      st.sse = std::make_unique<codec::SseParser>();
      // With steps each event is a unit: it waits for its verdict, in order (units inside the stream).
      st.sse_units = ctx.options().step_units && !front() && !lazy();
    }
  }

  void sse_data(Stream& st, core::ByteView body) {
    if (!st.sse) return;
    bool queued = false;
    st.sse->feed(body, [&](codec::SseEvent&& ev) {
      if (!ev.dispatched) {  // comments only (keep-alives): in the body's record
        if (st.sse_units) hold_piece(st, 1, 0, std::move(ev.raw));
        queued = true;
        return;
      }
      envelope::Envelope e = envelope_for(st, Direction::receive, envelope::Protocol::sse);
      e.raw = std::move(ev.raw);
      e.message = envelope::SseMessage{std::move(ev.id), std::move(ev.event), std::move(ev.data), ev.retry, {}};
      if (!st.sse_units) {
        out->push_back(EmitRecord{std::move(e)});
        return;
      }
      CommandId id = ctx.new_command();
      verdicts[id] = {st.client_id, Unit::piece};
      hold_piece(st, 1, id, e.raw);
      out->push_back(RunPipeline{id, std::move(e)});
    });
    if (queued && st.sse_units) release_held(st, 1);
  }

  // The response's body ended: a held one goes to the pipeline, an event stream's unfinished tail
  // goes after its events.
  void response_over(Stream& st) {
    if (st.resp_held) response_ended(st);
    if (st.sse_units && st.sse) {
      if (core::Bytes tail = st.sse->finish(); !tail.empty()) hold_piece(st, 1, 0, std::move(tail));
      release_held(st, 1);
    }
  }

  void grpc_start(Stream& st) {
    st.grpc_started = true;
    envelope::Envelope e = envelope_for(st, Direction::send, envelope::Protocol::grpc);
    e.message = grpc_start_message(header_value(st.req.pseudo, ":path"), st.req.headers);
    if (!st.grpc_units) {
      out->push_back(EmitRecord{std::move(e)});
      return;
    }
    st.grpc_start_unit = ctx.new_command();
    verdicts[st.grpc_start_unit] = {st.client_id, Unit::grpc_start};
    out->push_back(RunPipeline{st.grpc_start_unit, std::move(e)});
  }

  // ---- gRPC units (steps) --------------------------------------------------------------------------

  void on_grpc_start_verdict(Stream& st, const PipelineVerdict& v) {
    st.grpc_start_unit = 0;
    if (st.client_closed) return;
    if (v.verdict == Verdict::drop) {
      std::string by = v.decided_by.empty() ? std::string("a pipeline step") : v.decided_by;
      grpc_refuse(st, 7, "the call was dropped by " + by);  // PERMISSION_DENIED
    } else if (v.verdict == Verdict::kill) {
      reset_stream(st);
    } else if (v.verdict == Verdict::respond && v.reply) {
      answer_with(st, *v.reply);
    } else {
      if (v.envelope.modified) apply_grpc_start(st, v.envelope);
      send_on(st);
    }
  }

  // A step changed the call's start: its path from service and method, its metadata, its timeout.
  void apply_grpc_start(Stream& st, const envelope::Envelope& e) {
    const auto* g = std::get_if<envelope::GrpcStartMessage>(&e.message);
    if (!g) return;
    for (auto& h : st.req.pseudo)
      if (h.name == ":path") h.value = "/" + g->service + "/" + g->method;
    envelope::Headers fields;
    for (const auto& h : st.req.headers)
      if (is_grpc_transport_field(h.name) && h.name != "grpc-timeout") fields.push_back(h);
    if (!g->timeout.empty()) fields.push_back({"grpc-timeout", g->timeout});
    for (auto& h : h2_fields(g->metadata))
      if (!is_grpc_transport_field(h.name)) fields.push_back(std::move(h));
    st.req.headers = std::move(fields);
  }

  void on_piece_verdict(Stream& st, const PipelineVerdict& v) {
    for (int d = 0; d < 2; ++d) {
      for (auto& piece : st.held[d]) {
        if (piece.id != v.id || piece.verdict) continue;
        if (v.verdict == Verdict::kill) {
          reset_stream(st);
          return;
        }
        piece.verdict = v;
        release_held(st, d);
        return;
      }
    }
  }

  // Units inside a stream wait while the queue holds less than this; past it the sender's window is
  // no longer opened as its bytes come (an HTTP/1.1 server is no longer read).
  static constexpr uint64_t kMaxHeld = 4u << 20;

  bool queued(const Stream& st, bool from_client) const {
    return st.grpc_units || (!from_client && st.sse_units) || st.ws_units;
  }

  void hold_piece(Stream& st, int d, CommandId id, core::Bytes bytes, std::optional<envelope::Envelope> record = {}) {
    st.held_bytes[d] += bytes.size();
    st.held[d].push_back({id, std::move(bytes), std::nullopt, std::move(record)});
  }

  // In order: what has its verdict (or needs none) at the front of the queue joins what goes on.
  void release_held(Stream& st, int d) {
    Pending& p = d == 0 ? st.to_upstream : st.to_client;
    auto& q = st.held[d];
    while (!q.empty() && (!q.front().id || q.front().verdict)) {
      Stream::HeldPiece& piece = q.front();
      st.held_bytes[d] -= piece.bytes.size();
      if (!piece.id) {
        p.append(piece.bytes);
        if (piece.record) out->push_back(EmitRecord{std::move(*piece.record)});
      } else if (st.ws_units && st.ws_recorder) {
        p.append(st.ws_recorder->verdict_bytes(d == 0 ? Direction::send : Direction::receive, st.ws_reencode[d],
                                               piece.bytes, *piece.verdict, now, *out));
      } else if (piece.verdict->verdict != Verdict::drop) {  // respond is next: a message is not answered
        p.append(piece.verdict->envelope.raw);
      }
      q.pop_front();
    }
    if (d == 1 && st.h1) h1_resume_reading(st);
    resume(st, d == 0);
  }

  void on_grpc_end_verdict(Stream& st, const PipelineVerdict& v) {
    st.grpc_end_unit = 0;
    if (st.client_closed) return;
    if (v.verdict == Verdict::drop || v.verdict == Verdict::kill) {  // a call's end cannot be left out
      reset_stream(st);
      return;
    }
    if (const auto* g = std::get_if<envelope::GrpcEndMessage>(&v.envelope.message); g && v.envelope.modified) {
      envelope::Headers& fields = st.grpc_trailers_only ? st.resp.headers : st.resp.trailers;
      std::erase_if(fields, [](const envelope::Header& h) { return h.name == "grpc-status" || h.name == "grpc-message"; });
      fields.push_back({"grpc-status", std::to_string(g->status)});
      if (!g->message.empty()) fields.push_back({"grpc-message", g->message});
    }
    if (st.grpc_trailers_only)
      submit_response(st, true);
    else
      resume(st, false);
  }

  // Answers a call ourselves with a status and no message (trailers only).
  void grpc_refuse(Stream& st, int status, const std::string& message) {
    st.resp = Message{};
    st.resp.pseudo.push_back({":status", "200"});
    st.resp.headers = {{"content-type", "application/grpc"}, {"grpc-status", std::to_string(status)},
                       {"grpc-message", message}};
    st.resp.have_head = true;
    st.resp.time = now;
    st.resp.ended = true;
    st.upstream_closed = true;
    submit_response(st, true);
    record_message(st, st.resp, Direction::receive, {{"synthesized", "sluice"}});
    grpc_end(st, false);
  }

  // Resets the stream on both legs (a step's kill, a call that cannot be held).
  void reset_stream(Stream& st) {
    if (upstream && st.upstream_id && !st.upstream_closed)
      nghttp2_submit_rst_stream(upstream, NGHTTP2_FLAG_NONE, st.upstream_id, NGHTTP2_CANCEL);
    st.upstream_closed = true;
    st.submitted = true;  // (a request killed before it went: it never goes)
    if (front()) {  // HTTP/1.1 has no stream to reset: the client's connection ends
      if (!st.front_done) finish_front(st, true);
      return;
    }
    if (!st.client_closed) nghttp2_submit_rst_stream(client, NGHTTP2_FLAG_NONE, st.client_id, NGHTTP2_CANCEL);
    st.client_closed = true;
  }

  void grpc_data(Stream& st, Direction d, bool compressed, core::ByteView lpm) {
    envelope::Envelope e = envelope_for(st, d, envelope::Protocol::grpc);
    envelope::GrpcDataMessage g;
    g.compressed = compressed;
    g.payload = core::Bytes(lpm.substr(5));
    // The view inflates what the sender's grpc-encoding says it compressed with gzip.
    const Message& m = d == Direction::send ? st.req : st.resp;
    if (compressed && core::to_lower(header_value(m.headers, "grpc-encoding")) == "gzip") {
      if (auto plain = gunzip(g.payload, limit()))
        g.payload = std::move(*plain);
      else
        e.anomalies.push_back({"grpc_bad_compression", "a message flagged compressed (gzip) does not inflate"});
    }
    e.raw = core::Bytes(lpm);
    e.message = std::move(g);
    if (!st.grpc_units) {
      out->push_back(EmitRecord{std::move(e)});
      return;
    }
    CommandId id = ctx.new_command();
    verdicts[id] = {st.client_id, Unit::piece};
    hold_piece(st, d == Direction::send ? 0 : 1, id, core::Bytes(lpm));
    out->push_back(RunPipeline{id, std::move(e)});
  }

  // The call's end; with gRPC units and `as_unit` (the server's own end, the client still there) it
  // waits for its verdict before the trailers go on.
  void grpc_end(Stream& st, bool as_unit) {
    if (!st.grpc || st.grpc_ended || !st.resp.have_head) return;
    st.grpc_ended = true;
    envelope::Envelope e = envelope_for(st, Direction::receive, envelope::Protocol::grpc);
    // Trailers, or a trailers-only response's headers.
    e.message = grpc_end_message(st.resp.trailers.empty() ? st.resp.headers : st.resp.trailers);
    if (st.reset_code) e.tags.emplace_back("rst_stream", nghttp2_http2_strerror(st.reset_code));
    if (!as_unit || !st.grpc_units || st.client_closed || !st.resp.ended) {
      if (st.grpc_trailers_only && !st.client_closed) submit_response(st, true);  // (nothing holds it now)
      out->push_back(EmitRecord{std::move(e)});
      return;
    }
    st.grpc_end_unit = ctx.new_command();
    verdicts[st.grpc_end_unit] = {st.client_id, Unit::grpc_end};
    out->push_back(RunPipeline{st.grpc_end_unit, std::move(e)});
  }

  // Raw frames to the messages they belong to.
  void attribute(bool from_client, uint8_t type, int32_t id, core::ByteView frame) {
    if (id == 0) return;
    Stream* st = find(from_client ? client : upstream, id);
    if (!st) return;
    st->wire[from_client ? 0 : 1] += frame.size();
    if (type != kData && type != kHeaders && type != kContinuation) return;
    Message& m = from_client ? st->req : st->resp;
    if (type == kData && st->ws) return;  // the frames inside are recorded one envelope each
    keep(m, m.raw, frame, type != kData);  // (header blocks are kept whatever the budget)
    if (type == kData && m.data_frames.size() < 4096 && m.body_total <= limit() && !m.over_budget) {
      if (m.hold.take(ctx.options().record_budget, frame.size()))
        m.data_frames.emplace_back(frame);
      else
        m.over_budget = true;
    }
  }

  // A WebSocket stream: its request and response when their heads are in (the frames follow them),
  // then the frames that came.
  void record_ws(Stream& st) {
    if (st.req.have_head) record_message(st, st.req, Direction::send);
    if (st.resp.have_head) record_message(st, st.resp, Direction::receive);
    if (!st.ws_recorder) return;
    for (int i = 0; i < 2; ++i) {
      if (st.ws_pending[i].empty()) continue;
      core::Bytes bytes;
      bytes.swap(st.ws_pending[i]);
      Direction d = i == 0 ? Direction::send : Direction::receive;
      if (!st.ws_units) {
        st.ws_recorder->feed(d, bytes, now, st.seq, *out);
        continue;
      }
      // Units: each whole data message waits for its verdict; control frames wait behind them.
      std::vector<WsRecorder::Piece> pieces;
      st.ws_recorder->feed_units(d, bytes, now, st.seq, pieces);
      for (auto& piece : pieces) {
        CommandId id = 0;
        if (piece.unit) {
          id = ctx.new_command();
          verdicts[id] = {st.client_id, Unit::piece};
          out->push_back(RunPipeline{id, std::move(*piece.envelope)});
          piece.envelope.reset();
        }
        hold_piece(st, i, id, std::move(piece.bytes), std::move(piece.envelope));
      }
      release_held(st, i);
    }
  }

  // The server allows extended CONNECT (RFC 8441): so may the client, from now on.
  void on_server_settings() {
    if (!client || connect_protocol || !nghttp2_session_get_remote_settings(upstream, NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL))
      return;
    connect_protocol = true;
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1}};
    nghttp2_submit_settings(client, NGHTTP2_FLAG_NONE, iv, 1);
  }

  // After each input: messages that ended are recorded, streams closed on both legs are forgotten.
  void settle() {
    for (auto it = streams.begin(); it != streams.end();) {
      Stream& st = *it->second;
      if (st.ws) record_ws(st);
      if ((st.req.ended || st.client_closed) && !st.head_unit[0]) record_message(st, st.req, Direction::send);
      if (st.h1 && (st.h1->body_done || st.client_closed)) record_h1_variant(st);
      record_front_variant(st);
      if ((st.resp.ended || (st.upstream_closed && st.client_closed)) && !st.head_unit[1]) {
        record_message(st, st.resp, Direction::receive);
        grpc_end(st, true);
      }
      // A stream ends once both legs closed and no unit of it waits in the pipeline (its record comes
      // with the verdict, and nothing of a stream may follow its end).
      if (st.client_closed && (st.upstream_closed || !st.upstream_id) && !units_pending(st)) {
        record_message(st, st.req, Direction::send);
        record_h1_variant(st);
        forget_h1(st);
        if (st.upstream_id) by_upstream.erase(st.upstream_id);
        end_own_stream(st);
        it = streams.erase(it);
      } else {
        ++it;
      }
    }
  }

  static bool units_pending(const Stream& st) {
    return st.pipeline || st.resp_pipeline || st.grpc_start_unit || st.grpc_end_unit || st.grpc_web || st.head_unit[0] ||
           st.head_unit[1] || !st.held[0].empty() ||
           !st.held[1].empty();
  }

  // A stream closed on both legs ends (those still open when the connection closes end with it).
  void end_own_stream(const Stream& st) {
    envelope::EndRecord end;
    end.stream_id = st.stream_id;
    end.time = now;
    end.reason = st.reset_code ? "reset" : "complete";
    end.bytes_sent = st.wire[0];
    end.bytes_received = st.wire[1];
    out->push_back(EmitRecord{std::move(end)});
  }

  // Everything either session has to send. Sending on one leg can make the other owe something (bytes
  // the server-side provider took open the client's window: a WINDOW_UPDATE), so until both are quiet.
  size_t drain(nghttp2_session* s, ConnId conn) {
    size_t total = 0;
    for (;;) {
      const uint8_t* data;
      ssize_t n = nghttp2_session_mem_send(s, &data);
      if (n <= 0) break;
      out->push_back(SendData{conn, core::Bytes(reinterpret_cast<const char*>(data), n)});
      total += n;
    }
    return total;
  }

  void flush() {
    run_pipelines();  // messages that ended in this input, now that their frames are attributed
    for (auto& [id, st] : streams)  // WebSocket units: frames parsed before the bytes that are ready go out
      if (st->ws_units && st->ws_recorder) record_ws(*st);
    for (;;) {
      size_t sent = client ? drain(client, kClientConn) : 0;
      if (upstream && server) sent += drain(upstream, server);
      if (sent == 0) break;
    }
    settle();
    if (!closed && client && !nghttp2_session_want_read(client) && !nghttp2_session_want_write(client))
      close_all("closed");
  }

// GCC 12 sees an uninitialised variant alternative when a loop grows the command vector (a false
// positive of -Wmaybe-uninitialized with std::variant, as in Http1Layer::close_all).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
  void close_all(const std::string& reason) {
    if (closed) return;
    for (auto& [id, st] : streams) {
      if (st->ws) record_ws(*st);
      record_message(*st, st->req, Direction::send);
      record_h1_variant(*st);
      record_front_variant(*st);
      record_message(*st, st->resp, Direction::receive);
      grpc_end(*st, false);
      forget_h1(*st);
    }
    streams.clear();
    by_upstream.clear();
    closed = true;
    if (server) out->push_back(CloseConnection{server, false});
    for (ConnId idle : h1_idle) out->push_back(CloseConnection{idle, false});
    h1_idle.clear();
    out->push_back(CloseConnection{kClientConn, false});
    end_stream(*out, out->size(), conn_stream, reason, now, from_client, from_servers);
  }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

  void error_record(const std::string& code, const std::string& message) {
    envelope::ErrorRecord err;
    err.stream_id = conn_stream;
    err.time = now;
    err.code = code;
    err.message = message;
    out->push_back(EmitRecord{std::move(err)});
  }

  // ---- events --------------------------------------------------------------------------------------

  void on_data(ConnId conn, core::ByteView data) {
    if (conn == kClientConn && front()) {
      on_front_data(data);
      flush();
      return;
    }
    if (conn != kClientConn && conn != server) {
      on_h1_data(conn, data);
      flush();
      return;
    }
    if (conn == server && probing) {
      on_probe(data);
      flush();
      return;
    }
    bool from_client = conn == kClientConn;
    nghttp2_session* s = from_client ? client : upstream;
    if (!s) return;
    ssize_t n = nghttp2_session_mem_recv(s, reinterpret_cast<const uint8_t*>(data.data()), data.size());
    (from_client ? client_frames : server_frames).feed(data, [&](uint8_t type, int32_t id, core::ByteView frame) {
      attribute(from_client, type, id, frame);
    });
    run_pipelines();
    if (n < 0) {
      std::string why = std::string(from_client ? "the client" : "the server") + " broke HTTP/2: " + nghttp2_strerror(static_cast<int>(n));
      error_record("h2_protocol_error", why);
      flush();
      close_all("error");
      return;
    }
    flush();
  }

  void on_open(const OpenCompleted& o) {
    if (o.id != open_id) {
      on_h1_open(o);
      flush();
      return;
    }
    open_id = 0;
    if (!o.error_code.empty()) {
      failure_code = o.error_code;
      failure = o.error;
      server = 0;
      error_record(o.error_code, o.error);
      for (int32_t id : waiting)
        if (auto it = streams.find(id); it != streams.end())
          fail_stream(*it->second, 502, "sluice: " + server_key() + ": " + o.error + "\n");
      waiting.clear();
      flush();
      return;
    }
    if (target.tls && o.alpn != "h2") {
      // The server chose HTTP/1.1 (or nothing): this connection serves the first stream translated.
      speaks = Speaks::h1;
      h1_idle.push_back(server);
      server = 0;
      send_waiting();
    } else {
      speaks = target.tls ? Speaks::h2 : Speaks::unknown;
      probing = !target.tls;
      start_upstream();
    }
    flush();
  }

  void on_closed(const ConnectionClosed& c) {
    if (c.conn == kClientConn) {
      close_all(c.reset ? "reset" : "closed");
      return;
    }
    if (c.conn != server || !server) {
      on_h1_closed(c.conn, c.reset);
      flush();
      return;
    }
    if (probing) {  // our h2c preface was answered with a close: an HTTP/1.1 server
      fall_back_to_h1(false);
      flush();
      return;
    }
    // The server went away: every stream still waiting for it is reset, then the connection ends.
    for (auto& [id, st] : streams)
      if (!st->upstream_closed && !st->client_closed) {
        st->upstream_closed = true;
        st->reset_code = NGHTTP2_INTERNAL_ERROR;
        if (front())
          front_failed(*st, "the server closed the HTTP/2 connection");
        else
          nghttp2_submit_rst_stream(client, NGHTTP2_FLAG_NONE, st->client_id, NGHTTP2_INTERNAL_ERROR);
      }
    error_record(c.reset ? "server_reset" : "server_closed", "the server closed the HTTP/2 connection");
    if (client) nghttp2_session_terminate_session(client, NGHTTP2_NO_ERROR);
    server = 0;
    flush();
    close_all("error");
  }
};

Http2Layer::Http2Layer(ConnectionContext& ctx, Http2Target target)
    : impl_(std::make_unique<Impl>(ctx, std::move(target))) {}

Http2Layer::~Http2Layer() = default;

void Http2Layer::handle(const Event& event, core::Timestamp now, Commands& out) {
  Impl& im = *impl_;
  if (im.closed) return;
  im.out = &out;
  im.now = now;
  if (std::holds_alternative<Start>(event)) {
    im.start();
    im.flush();
  } else if (const auto* d = std::get_if<DataReceived>(&event)) {
    (d->conn == kClientConn ? im.from_client : im.from_servers) += d->data.size();
    im.on_data(d->conn, d->data);
  } else if (const auto* o = std::get_if<OpenCompleted>(&event)) {
    im.on_open(*o);
  } else if (const auto* c = std::get_if<ConnectionClosed>(&event)) {
    im.on_closed(*c);
  } else if (const auto* v = std::get_if<PipelineVerdict>(&event)) {
    im.on_verdict(*v);
  } else if (std::holds_alternative<Shutdown>(event)) {
    if (im.client) {
      nghttp2_submit_goaway(im.client, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(im.client),
                            NGHTTP2_NO_ERROR, nullptr, 0);
    } else if (!im.front_stream) {  // an HTTP/1.1 client between requests
      im.close_all("shutdown");
    } else {
      im.front_close = true;  // after the exchange in flight
    }
    im.flush();
  }
  // An HTTP/1.1 client's last exchange is over: the connection ends, with its stream's end, and
  // nothing the server says later is recorded.
  if (im.front_closing) im.close_all("closed");
  im.out = nullptr;
}

}  // namespace sluice::layer
