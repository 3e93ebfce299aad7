#include "layer/ws_layer.hpp"

#include <utility>  // before Boost (GCC 12, C++20)

#include <boost/beast/zlib/inflate_stream.hpp>

#include "codec/ws.hpp"
#include "core/ascii.hpp"

namespace sluice::layer {

namespace zlib = boost::beast::zlib;

namespace {

constexpr uint64_t kMaxInflated = 64u << 20;  // a message inflating past this is not shown (deflate bomb)

uint64_t be(core::ByteView b, size_t at, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = v << 8 | static_cast<uint8_t>(b[at + i]);
  return v;
}

}  // namespace

WsDeflate parse_ws_extensions(std::string_view header) {
  WsDeflate d;
  // extension *( ";" param ), extensions separated by ","; the server accepts at most one deflate.
  size_t start = 0;
  while (start <= header.size()) {
    size_t comma = header.find(',', start);
    core::ByteView ext = header.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    size_t semi = ext.find(';');
    if (core::iequals(core::trim_ows(ext.substr(0, semi)), "permessage-deflate")) {
      d.enabled = true;
      while (semi != core::ByteView::npos) {
        size_t next = ext.find(';', semi + 1);
        size_t len = next == core::ByteView::npos ? core::ByteView::npos : next - semi - 1;
        core::ByteView param = core::trim_ows(ext.substr(semi + 1, len));
        param = core::trim_ows(param.substr(0, param.find('=')));
        if (core::iequals(param, "client_no_context_takeover")) d.client_no_context_takeover = true;
        if (core::iequals(param, "server_no_context_takeover")) d.server_no_context_takeover = true;
        size_t eq = ext.substr(semi + 1, len).find('=');
        if (eq != core::ByteView::npos && (core::iequals(param, "client_max_window_bits") ||
                                           core::iequals(param, "server_max_window_bits"))) {
          core::ByteView value = core::trim_ows(ext.substr(semi + 1, len).substr(eq + 1));
          if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
          int bits = value.size() == 1 || value.size() == 2 ? 0 : -1;
          for (char c : value) bits = bits >= 0 && c >= '0' && c <= '9' ? bits * 10 + (c - '0') : -1;
          if (bits >= 8 && bits <= 15)
            (core::iequals(param, "client_max_window_bits") ? d.client_window_bits : d.server_window_bits) = bits;
        }
        semi = next;
      }
      return d;
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return d;
}

struct WsRecorder::Side {
  envelope::Direction direction = envelope::Direction::send;
  bool client = false;  // frames from the client must be masked
  core::Bytes buf;      // bytes not parsed into frames yet
  bool broken = false;  // parsing gave up on this direction; its bytes still pass
  // The data message in progress.
  bool in_message = false;
  int message_opcode = 0;
  bool message_compressed = false;
  size_t message_frames = 0;
  core::Bytes message;
  // Unit mode: the message's frames as they came, and what its earlier frames showed.
  core::Bytes message_raw;
  bool message_rsv1 = false, message_masked = false;
  std::vector<envelope::Anomaly> message_anomalies;
  std::unique_ptr<zlib::inflate_stream> inflater;
  bool no_context_takeover = false;

  // Inflates one whole message (RFC 7692 §7.2.2: the message plus 00 00 ff ff).
  bool inflate(const core::Bytes& in, core::Bytes& out) {
    if (!inflater) {
      inflater = std::make_unique<zlib::inflate_stream>();
      inflater->reset(15);  // a 15-bit window reads any smaller window too
    }
    core::Bytes input = in + core::Bytes("\x00\x00\xff\xff", 4);
    zlib::z_params zs;
    zs.next_in = input.data();
    zs.avail_in = input.size();
    char buf[16384];
    out.clear();
    bool ok = true;
    for (;;) {
      zs.next_out = buf;
      zs.avail_out = sizeof buf;
      boost::system::error_code ec;
      inflater->write(zs, zlib::Flush::sync, ec);
      out.append(buf, sizeof buf - zs.avail_out);
      if (out.size() > kMaxInflated) {
        ok = false;
        break;
      }
      if (ec == zlib::error::need_buffers || ec == zlib::error::end_of_stream) break;
      if (ec) {
        ok = false;
        break;
      }
      if (zs.avail_in == 0 && zs.avail_out != 0) break;
    }
    if (!ok || no_context_takeover) inflater->reset(15);
    return ok;
  }
};

WsRecorder::WsRecorder(std::string stream_id, std::string flow_id, envelope::Context context, WsDeflate deflate,
                       uint64_t record_body_limit)
    : stream_id_(std::move(stream_id)), flow_id_(std::move(flow_id)), context_(std::move(context)),
      deflate_(deflate), max_frame_(std::max<uint64_t>(record_body_limit ? record_body_limit : 64u << 20, 1u << 20)),
      client_(std::make_unique<Side>()), server_(std::make_unique<Side>()) {
  client_->direction = envelope::Direction::send;
  client_->client = true;
  client_->no_context_takeover = deflate.client_no_context_takeover;
  server_->direction = envelope::Direction::receive;
  server_->no_context_takeover = deflate.server_no_context_takeover;
}

WsRecorder::~WsRecorder() = default;
WsRecorder::WsRecorder(WsRecorder&&) noexcept = default;

void WsRecorder::feed(envelope::Direction direction, core::ByteView data, core::Timestamp now, uint64_t& seq,
                      Commands& out) {
  Side& side = direction == envelope::Direction::send ? *client_ : *server_;
  if (side.broken) return;
  side.buf.append(data);
  parse(side, now, seq, &out, nullptr);
}

void WsRecorder::feed_units(envelope::Direction direction, core::ByteView data, core::Timestamp now, uint64_t& seq,
                            std::vector<Piece>& pieces) {
  Side& side = direction == envelope::Direction::send ? *client_ : *server_;
  if (side.broken) {
    pieces.push_back(Piece{core::Bytes(data), std::nullopt, false});
    return;
  }
  side.buf.append(data);
  parse(side, now, seq, nullptr, &pieces);
}

bool WsRecorder::context_takeover(envelope::Direction direction) const {
  const Side& side = direction == envelope::Direction::send ? *client_ : *server_;
  return deflate_.enabled && !side.no_context_takeover;
}

int WsRecorder::window_bits(envelope::Direction direction) const {
  return direction == envelope::Direction::send ? deflate_.client_window_bits : deflate_.server_window_bits;
}

WsLayer::WsLayer(ConnectionContext& ctx, ConnId server, std::string server_name, std::string stream_id,
                 std::string flow_id, WsDeflate deflate)
    : ctx_(ctx), server_(server), stream_id_(stream_id),
      recorder_(std::move(stream_id), std::move(flow_id), ctx.envelope_context(std::move(server_name)), deflate,
                ctx.options().record_body_limit) {
  client_.from = kClientConn, client_.to = server;
  client_.direction = envelope::Direction::send;
  server_side_.from = server, server_side_.to = kClientConn;
  server_side_.direction = envelope::Direction::receive;
  units_ = ctx.options().step_units;
}

WsLayer::~WsLayer() = default;

void WsLayer::handle(const Event& event, core::Timestamp now, Commands& out) {
  if (done_) return;
  if (const auto* d = std::get_if<DataReceived>(&event)) {
    if (d->conn == kClientConn)
      on_data(client_, d->data, now, out);
    else if (d->conn == server_)
      on_data(server_side_, d->data, now, out);
  } else if (const auto* v = std::get_if<PipelineVerdict>(&event)) {
    on_verdict(*v, now, out);
  } else if (const auto* c = std::get_if<ConnectionClosed>(&event)) {
    if (c->conn != kClientConn && c->conn != server_) return;
    if (c->reset) {
      close_both(c->reason == "shutdown" ? "shutdown" : "reset", now, out);
      return;
    }
    Side& side = c->conn == kClientConn ? client_ : server_side_;
    side.eof = true;
    flush(side, now, out);
  }
}

void WsLayer::on_data(Side& side, core::ByteView data, core::Timestamp now, Commands& out) {
  side.bytes += data.size();
  if (!units_) {
    out.push_back(SendData{side.to, core::Bytes(data)});  // at once: frames are never held back
    recorder_.feed(side.direction, data, now, seq_, out);
    return;
  }
  std::vector<WsRecorder::Piece> pieces;
  recorder_.feed_units(side.direction, data, now, seq_, pieces);
  for (auto& p : pieces) {
    Side::Queued q;
    side.queued_bytes += p.bytes.size();  // units and what waits behind them (a flood of pings too)
    if (p.unit) {
      q.id = ctx_.new_command();
      out.push_back(RunPipeline{q.id, *p.envelope});
      p.envelope.reset();  // the pipeline records it
    }
    q.piece = std::move(p);
    side.queue.push_back(std::move(q));
  }
  flush(side, now, out);
}

void WsLayer::on_verdict(const PipelineVerdict& v, core::Timestamp now, Commands& out) {
  for (Side* side : {&client_, &server_side_}) {
    for (auto& q : side->queue) {
      if (q.id != v.id || q.verdict) continue;
      if (v.verdict == Verdict::kill) {
        close_both("killed", now, out);
        return;
      }
      q.verdict = v;
      flush(*side, now, out);
      return;
    }
  }
}

core::Bytes WsLayer::verdict_bytes(Side& side, Side::Queued& q, core::Timestamp now, Commands& out) {
  return recorder_.verdict_bytes(side.direction, side.reencode, q.piece.bytes, *q.verdict, now, out);
}

core::Bytes WsRecorder::verdict_bytes(envelope::Direction direction, bool& reencode, const core::Bytes& original,
                                      const PipelineVerdict& v, core::Timestamp now, Commands& out) const {
  const auto* m = std::get_if<envelope::WsMessage>(&v.envelope.message);
  bool compressed = m && m->compressed;
  bool breaks_context = compressed && context_takeover(direction);
  if (v.verdict == Verdict::drop) {
    if (breaks_context) reencode = true;
    return {};
  }
  if (v.envelope.raw != original) {  // changed by a step: its bytes
    if (breaks_context) reencode = true;
    return v.envelope.raw;
  }
  if (!reencode || !compressed) return original;
  // The receiver's context lost step with the sender's: compressed again, without back-references.
  envelope::Envelope variant = v.envelope;
  variant.raw = codec::ws_encode(*m, m->masked, window_bits(direction));
  variant.modified = true;
  variant.variant_of = v.envelope.seq;
  variant.modified_by = "sluice";
  variant.tags.emplace_back("reencoded", "permessage-deflate");
  variant.time = now;
  core::Bytes bytes = variant.raw;
  out.push_back(EmitRecord{std::move(variant)});
  return bytes;
}

void WsLayer::flush(Side& side, core::Timestamp now, Commands& out) {
  while (!side.queue.empty() && (side.queue.front().id == 0 || side.queue.front().verdict)) {
    Side::Queued& q = side.queue.front();
    core::Bytes bytes;
    side.queued_bytes -= q.piece.bytes.size();
    if (q.id) {
      bytes = verdict_bytes(side, q, now, out);
    } else {
      bytes = std::move(q.piece.bytes);
      if (q.piece.envelope) out.push_back(EmitRecord{std::move(*q.piece.envelope)});
    }
    if (!bytes.empty()) out.push_back(SendData{side.to, std::move(bytes)});
    side.queue.pop_front();
  }
  // Bounded: a direction whose units wait stops reading once they hold this much.
  constexpr uint64_t kMaxHeld = 4u << 20;
  bool pause = side.queued_bytes > kMaxHeld;
  if (pause != side.paused && !side.eof) {
    side.paused = pause;
    out.push_back(PauseReading{side.from, pause});
  }
  if (side.eof && side.queue.empty() && !side.shut) {
    side.shut = true;
    out.push_back(CloseConnection{side.to, true});
  }
  if (client_.shut && server_side_.shut) finish(now, out);
}

void WsLayer::close_both(const std::string& reason, core::Timestamp now, Commands& out) {
  done_ = true;
  out.push_back(CloseConnection{kClientConn, false});
  out.push_back(CloseConnection{server_, false});
  envelope::EndRecord end;
  end.stream_id = stream_id_;
  end.time = now;
  end.reason = reason;
  end.bytes_sent = client_.bytes;
  end.bytes_received = server_side_.bytes;
  out.push_back(EmitRecord{std::move(end)});
}

void WsRecorder::parse(Side& side, core::Timestamp now, uint64_t& seq, Commands* out, std::vector<Piece>* pieces) {
  uint64_t max_frame = max_frame_;
  size_t pos = 0;
  core::ByteView b = side.buf;
  auto emit = [&](envelope::Envelope&& e, core::ByteView bytes, bool unit) {
    if (out)
      out->push_back(EmitRecord{std::move(e)});
    else
      pieces->push_back(Piece{core::Bytes(bytes), std::move(e), unit});
  };
  while (b.size() - pos >= 2) {
    auto b0 = static_cast<uint8_t>(b[pos]), b1 = static_cast<uint8_t>(b[pos + 1]);
    bool fin = b0 & 0x80, rsv1 = b0 & 0x40, rsv2 = b0 & 0x20, rsv3 = b0 & 0x10, masked = b1 & 0x80;
    int opcode = b0 & 0x0f;
    uint64_t len = b1 & 0x7f;
    size_t head = 2;
    if (len == 126) {
      if (b.size() - pos < 4) break;
      len = be(b, pos + 2, 2);
      head = 4;
    } else if (len == 127) {
      if (b.size() - pos < 10) break;
      len = be(b, pos + 2, 8);
      head = 10;
    }
    if (masked) head += 4;
    envelope::Envelope e;
    e.stream_id = stream_id_;
    e.flow_id = flow_id_;
    e.direction = side.direction;
    e.protocol = envelope::Protocol::ws;
    e.time = now;
    e.context = context_;
    // Recorded by its head only; the rest of this direction passes unparsed (in unit mode with the
    // frames of the message it continues, as they came).
    bool too_large = len > max_frame;
    bool message_too_large = pieces && !too_large && opcode == 0 && side.in_message &&
                             side.message_raw.size() + head + len > max_frame;
    if (too_large || message_too_large) {
      if (b.size() - pos < head) break;
      e.seq = seq++;
      e.raw = core::Bytes(b.substr(pos, head));
      envelope::WsMessage m;
      m.opcode = opcode;
      m.fin = fin;
      m.masked = masked;
      e.message = std::move(m);
      e.anomalies.push_back({too_large ? "ws_frame_too_large" : "ws_message_too_large",
                             (too_large ? "a frame of " + std::to_string(len) + " bytes"
                                        : "a message of more than " + std::to_string(max_frame) + " bytes") +
                                 "; this direction is no longer parsed"});
      core::Bytes rest = side.message_raw;
      rest.append(b.substr(pos));
      emit(std::move(e), rest, false);
      side.broken = true;
      side.buf = core::Bytes();
      side.message_raw = core::Bytes();
      return;
    }
    if (b.size() - pos < head + len) break;
    core::ByteView frame = b.substr(pos, head + static_cast<size_t>(len));
    pos += frame.size();
    core::Bytes payload(frame.substr(head));
    if (masked) {
      core::ByteView key = frame.substr(head - 4, 4);
      for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(payload[i] ^ key[i & 3]);
    }
    envelope::WsMessage m;
    m.opcode = opcode;
    m.fin = fin;
    m.rsv1 = rsv1, m.rsv2 = rsv2, m.rsv3 = rsv3;
    m.masked = masked;
    if (side.client != masked)
      e.anomalies.push_back({side.client ? "ws_unmasked_client_frame" : "ws_masked_server_frame",
                             side.client ? "a frame from the client without a mask" : "a masked frame from the server"});
    bool control = opcode >= 8;
    if ((opcode > 2 && opcode < 8) || opcode > 10) e.anomalies.push_back({"ws_bad_opcode", "opcode " + std::to_string(opcode)});
    if (control && (!fin || len > 125))
      e.anomalies.push_back({"ws_bad_control_frame", "a control frame fragmented or longer than 125 bytes"});
    bool starts_message = opcode == 1 || opcode == 2;
    if (rsv2 || rsv3 || (rsv1 && !(deflate_.enabled && starts_message)))
      e.anomalies.push_back({"ws_bad_rsv", "reserved bits set that no extension gave a meaning"});
    bool unit = false;
    core::Bytes unit_raw;
    if (control) {
      if (opcode == 8 && payload.size() >= 2) {
        m.close_code = static_cast<int>(be(payload, 0, 2));
        m.close_reason = payload.substr(2);
      }
      m.payload = std::move(payload);
    } else if (starts_message || opcode == 0) {
      bool continues = opcode == 0 && side.in_message;
      if (starts_message) {
        if (side.in_message) {
          e.anomalies.push_back({"ws_interleaved_message", "a new message before the last one ended"});
          if (pieces && !side.message_raw.empty())  // the unfinished one goes out as it came
            pieces->push_back(Piece{std::move(side.message_raw), std::nullopt, false});
        }
        side.in_message = true;
        side.message_opcode = opcode;
        side.message_compressed = deflate_.enabled && rsv1;
        side.message_frames = 0;
        side.message.clear();
        side.message_raw.clear();
        side.message_rsv1 = rsv1;
        side.message_masked = masked;
        side.message_anomalies.clear();
      } else if (!side.in_message) {
        e.anomalies.push_back({"ws_unexpected_continuation", "a continuation frame outside a message"});
      }
      ++side.message_frames;
      if (side.message.size() < max_frame) side.message += payload;
      if (!fin) {
        m.payload = std::move(payload);  // a fragment, as on the wire (unmasked)
        if (pieces && side.in_message) {  // unit mode: held until the message is whole
          side.message_raw.append(frame);
          for (auto& a : e.anomalies) side.message_anomalies.push_back(std::move(a));
          continue;
        }
      } else {
        side.in_message = false;
        if (side.message_compressed) {
          core::Bytes inflated;
          if (side.inflate(side.message, inflated)) {
            m.payload = std::move(inflated);
            m.compressed = true;
          } else {
            m.payload = std::move(side.message);
            e.anomalies.push_back({"ws_bad_deflate", "a compressed message that does not inflate"});
          }
        } else {
          m.payload = std::move(side.message);
        }
        side.message = core::Bytes();
        if (side.message_frames > 1) e.tags.emplace_back("message_frames", std::to_string(side.message_frames));
        if (pieces && (starts_message || continues)) {
          // The unit: the whole message, its frames as they came.
          unit = true;
          unit_raw = std::move(side.message_raw);
          unit_raw.append(frame);
          side.message_raw = core::Bytes();
          m.opcode = side.message_opcode;
          m.rsv1 = side.message_rsv1;
          m.masked = side.message_masked;
          side.message_anomalies.insert(side.message_anomalies.end(), e.anomalies.begin(), e.anomalies.end());
          e.anomalies = std::move(side.message_anomalies);
          side.message_anomalies.clear();
          int bits = side.direction == envelope::Direction::send ? deflate_.client_window_bits : deflate_.server_window_bits;
          if (m.compressed && bits < 15) e.tags.emplace_back("deflate_window_bits", std::to_string(bits));
        }
      }
    }
    e.seq = seq++;
    e.message = std::move(m);
    if (unit) {
      e.raw = unit_raw;
      emit(std::move(e), unit_raw, true);
    } else {
      e.raw = core::Bytes(frame);
      emit(std::move(e), frame, false);
    }
  }
  side.buf.erase(0, pos);
}

// GCC 12's false -Wmaybe-uninitialized on std::variant commands pushed back to back (see Http1Layer).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
void WsLayer::finish(core::Timestamp now, Commands& out) { close_both("closed", now, out); }

}  // namespace sluice::layer
