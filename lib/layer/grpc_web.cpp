#include "layer/grpc_web.hpp"

#include "core/ascii.hpp"
#include "core/base64.hpp"
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

}  // namespace sluice::layer
