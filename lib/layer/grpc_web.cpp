#include "layer/grpc_web.hpp"

#include "core/ascii.hpp"
#include "core/base64.hpp"
#include "codec/grpc.hpp"
#include "layer/grpc.hpp"
#include "layer/http1_wire.hpp"

namespace sluice::layer {

// Checked on every recorded HTTP message: no allocation.
GrpcWebForm grpc_web_form(std::string_view content_type) {
  auto starts = [content_type](std::string_view prefix) {
    return content_type.size() >= prefix.size() && core::iequals(content_type.substr(0, prefix.size()), prefix);
  };
  if (starts("application/grpc-web-text")) return GrpcWebForm::text;
  if (starts("application/grpc-web")) return GrpcWebForm::binary;
  return GrpcWebForm::none;
}

namespace {

// grpc-web-text: base64 chunks as the sender flushed them, each padded on its own.
std::optional<core::Bytes> decode_text(std::string_view text) {
  core::Bytes out;
  std::string chunk;
  for (char c : text) {
    if (c == '\r' || c == '\n' || c == ' ') continue;
    chunk += c;
    if (c == '=' || chunk.size() % 4 == 0) {
      // A padded quantum ends a chunk; an unpadded one may go on.
      if (chunk.size() % 4 == 0) {
        auto part = core::base64_decode(chunk);
        if (!part) return std::nullopt;
        out += *part;
        chunk.clear();
      }
    }
  }
  if (!chunk.empty()) return std::nullopt;
  return out;
}

envelope::Headers trailer_block(core::ByteView block) {
  envelope::Headers out;
  size_t pos = 0;
  while (pos < block.size()) {
    size_t eol = block.find('\n', pos);
    if (eol == core::ByteView::npos) eol = block.size();
    core::ByteView line = block.substr(pos, eol - pos);
    if (line.ends_with('\r')) line.remove_suffix(1);
    pos = eol + 1;
    size_t colon = line.find(':');
    if (colon == core::ByteView::npos) continue;
    core::ByteView value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    out.push_back({core::to_lower(line.substr(0, colon)), std::string(value)});
  }
  return out;
}

}  // namespace

std::vector<envelope::Envelope> grpc_web_envelopes(const envelope::Envelope& http) {
  std::vector<envelope::Envelope> out;
  const auto* m = std::get_if<envelope::HttpMessage>(&http.message);
  if (!m || m->body_omitted) return out;
  for (const auto& [k, v] : http.tags)
    if (k == "incomplete") return out;
  GrpcWebForm form = grpc_web_form(find_header(m->headers, "content-type").value_or(""));
  if (form == GrpcWebForm::none) return out;
  bool request = m->kind == envelope::HttpMessage::Kind::request;
  auto make = [&](envelope::Message msg) {
    envelope::Envelope e;
    e.stream_id = http.stream_id;
    e.flow_id = http.flow_id;
    e.direction = http.direction;
    e.protocol = envelope::Protocol::grpc_web;
    e.time = http.time;
    e.context = http.context;
    e.message = std::move(msg);
    out.push_back(std::move(e));
    return &out.back();
  };
  if (request) make(grpc_start_message(m->path, m->headers));
  core::Bytes body = m->body;
  std::vector<envelope::Anomaly> trouble;
  if (form == GrpcWebForm::text) {
    auto decoded = decode_text(body);
    if (!decoded) {
      trouble.push_back({"malformed_grpc_web_base64", "the grpc-web-text body is not base64"});
      body.clear();
    } else {
      body = std::move(*decoded);
    }
  }
  bool ended = false;
  LpmParser lpm;
  lpm.feed(body, [&](uint8_t flag, core::ByteView frame) {
    if (flag & 0x80) {  // the trailer frame
      make(grpc_end_message(trailer_block(frame.substr(5))))->raw = core::Bytes(frame);
      ended = true;
      return;
    }
    envelope::GrpcDataMessage d;
    d.compressed = flag & 1;
    d.payload = core::Bytes(frame.substr(5));
    make(std::move(d))->raw = core::Bytes(frame);
  });
  if (core::ByteView rest = lpm.pending(); !rest.empty()) {
    std::string what = rest.size() < 5
        ? "a message prefix cut short (" + std::to_string(rest.size()) + " bytes)"
        : "a message says " + std::to_string(LpmParser::message_length(reinterpret_cast<const uint8_t*>(rest.data()))) +
              " bytes, " + std::to_string(rest.size() - 5) + " follow";
    trouble.push_back({"malformed_grpc_web_lpm", what});
  }
  // A trailers-only answer: the status is in the headers.
  if (!request && !ended && find_header(m->headers, "grpc-status")) make(grpc_end_message(m->headers));
  if (!trouble.empty()) {
    if (out.empty()) make(envelope::GrpcDataMessage{});
    out.back().anomalies = std::move(trouble);
  }
  return out;
}

// ---- units ---------------------------------------------------------------------------------------

void GrpcWebUnits::start(const envelope::Envelope& message, std::vector<envelope::Envelope> parts, uint64_t& seq,
                         ConnectionContext& ctx, Commands& out) {
  http = message;
  waiting = parts.size();
  verdicts.resize(parts.size());
  for (auto& u : parts) {
    u.seq = seq++;
    ids.push_back(ctx.new_command());
    units.push_back(u);
    out.push_back(RunPipeline{ids.back(), std::move(u)});
  }
}

bool GrpcWebUnits::take(const PipelineVerdict& v) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] != v.id || verdicts[i]) continue;
    verdicts[i] = v;
    --waiting;
    return true;
  }
  return false;
}

std::vector<envelope::Envelope> grpc_web_units(const envelope::Envelope& http) {
  std::vector<envelope::Envelope> units = grpc_web_envelopes(http);
  for (const auto& u : units)
    if (!u.anomalies.empty()) return {};
  return units;
}

namespace {

bool is_status_field(std::string_view name) {
  return core::iequals(name, "grpc-status") || core::iequals(name, "grpc-message");
}

envelope::Headers with_status(envelope::Headers fields, const envelope::GrpcEndMessage& end) {
  std::erase_if(fields, [](const envelope::Header& h) { return is_status_field(h.name); });
  fields.push_back({"grpc-status", std::to_string(end.status)});
  if (!end.message.empty()) fields.push_back({"grpc-message", end.message});
  return fields;
}

// The call's start as a step left it: its path from service and method (an absolute-form target keeps
// its scheme and authority), its timeout, its metadata; the fields of HTTP and of gRPC's transport stay.
void apply_start(envelope::HttpMessage& m, const envelope::GrpcStartMessage& g) {
  std::string prefix;
  if (size_t scheme = m.path.find("://"); scheme != std::string::npos)
    prefix = m.path.substr(0, std::min(m.path.find('/', scheme + 3), m.path.size()));
  m.path = prefix + "/" + g.service + "/" + g.method;
  envelope::Headers fields;
  for (const auto& h : m.headers)
    if (is_grpc_transport_field(h.name) && !core::iequals(h.name, "grpc-timeout")) fields.push_back(h);
  if (!g.timeout.empty()) fields.push_back({"grpc-timeout", g.timeout});
  for (const auto& h : g.metadata)
    if (!is_grpc_transport_field(h.name)) fields.push_back(h);
  m.headers = std::move(fields);
}

envelope::Envelope respond(const envelope::Envelope& request, envelope::HttpMessage m, std::string_view content_type,
                           envelope::Tags tags) {
  bool text = grpc_web_form(content_type) == GrpcWebForm::text;
  std::erase_if(m.headers, [](const envelope::Header& h) {
    return core::iequals(h.name, "content-type") || core::iequals(h.name, "content-length") ||
           core::iequals(h.name, "transfer-encoding");
  });
  m.headers.insert(m.headers.begin(), {"content-type", std::string(content_type)});
  if (text) m.body = codec::grpc_web_body(m.body, true);
  envelope::Envelope reply = envelope::reply_to(request, request.time);
  reply.tags = std::move(tags);
  reply.raw = encode_http1(m);
  reply.message = std::move(m);
  return reply;
}

}  // namespace

GrpcWebOutcome grpc_web_outcome(const GrpcWebUnits& call) {
  GrpcWebOutcome o;
  const auto& original = std::get<envelope::HttpMessage>(call.http.message);
  std::string content_type(find_header(original.headers, "content-type").value_or("application/grpc-web"));
  envelope::HttpMessage m = original;
  bool changed = false;
  core::Bytes frames;
  for (size_t i = 0; i < call.units.size(); ++i) {
    const envelope::Envelope& before = call.units[i];
    const PipelineVerdict& v = *call.verdicts[i];
    const envelope::Envelope& after = v.envelope;
    std::string by = v.decided_by.empty() ? std::string("a pipeline step") : v.decided_by;
    if (v.verdict == Verdict::kill) {
      o.kind = GrpcWebOutcome::Kind::kill;
      return o;
    }
    if (std::holds_alternative<envelope::GrpcStartMessage>(before.message)) {
      if (v.verdict == Verdict::drop || (v.verdict == Verdict::respond && v.reply)) {
        o.kind = GrpcWebOutcome::Kind::respond;
        if (v.verdict == Verdict::respond) {
          const auto* r = std::get_if<envelope::HttpMessage>(&v.reply->message);
          o.reply = respond(call.http, r ? *r : envelope::HttpMessage{}, content_type, v.reply->tags);
        } else {
          envelope::HttpMessage refusal;
          refusal.kind = envelope::HttpMessage::Kind::response;
          refusal.version = "HTTP/1.1";
          refusal.status = 200;
          refusal.reason = "OK";
          refusal.headers = {{"grpc-status", "7"}, {"grpc-message", "the call was dropped by " + by}};
          o.reply = respond(call.http, std::move(refusal), content_type, {{"synthesized", "sluice"}});
        }
        return o;
      }
      if (const auto* g = std::get_if<envelope::GrpcStartMessage>(&after.message); g && after.modified) {
        apply_start(m, *g);
        changed = true;
      }
    } else if (std::holds_alternative<envelope::GrpcDataMessage>(before.message)) {
      if (v.verdict == Verdict::drop) {
        changed = true;
        continue;
      }
      if (after.modified) changed = true;
      frames += after.raw;
    } else if (const auto* end = std::get_if<envelope::GrpcEndMessage>(&after.message)) {
      if (v.verdict == Verdict::drop) {
        o.kind = GrpcWebOutcome::Kind::kill;
        return o;
      }
      if (!after.modified) {
        frames += after.raw;
        continue;
      }
      changed = true;
      if (before.raw.empty())  // a trailers-only answer: the status is in the headers
        m.headers = with_status(std::move(m.headers), *end);
      else if (after.raw != before.raw)  // the step edited the frame's bytes
        frames += after.raw;
      else
        frames += codec::grpc_web_trailer_frame(with_status(end->trailers, *end));
    }
  }
  if (!changed) return o;
  m.body = codec::grpc_web_body(frames, grpc_web_form(content_type) == GrpcWebForm::text);
  o.changed = std::move(m);
  return o;
}

}  // namespace sluice::layer
