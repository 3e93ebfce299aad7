#include "layer/grpc_web.hpp"

#include "core/ascii.hpp"
#include "core/base64.hpp"
#include "layer/http1_wire.hpp"

namespace sluice::layer {

GrpcWebForm grpc_web_form(std::string_view content_type) {
  std::string ct = core::to_lower(content_type.substr(0, content_type.find(';')));
  if (ct.starts_with("application/grpc-web-text")) return GrpcWebForm::text;
  if (ct.starts_with("application/grpc-web")) return GrpcWebForm::binary;
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

std::string field(const envelope::Headers& h, std::string_view name) {
  auto v = find_header(h, name);
  return v ? std::string(*v) : std::string();
}

}  // namespace

std::vector<envelope::Envelope> grpc_web_envelopes(const envelope::Envelope& http) {
  std::vector<envelope::Envelope> out;
  const auto* m = std::get_if<envelope::HttpMessage>(&http.message);
  if (!m || m->body_omitted) return out;
  for (const auto& [k, v] : http.tags)
    if (k == "incomplete") return out;
  GrpcWebForm form = grpc_web_form(field(m->headers, "content-type"));
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
  if (request) {
    envelope::GrpcStartMessage s;
    std::string path = m->path;
    if (size_t scheme = path.find("://"); scheme != std::string::npos) {
      size_t slash = path.find('/', scheme + 3);
      path = slash == std::string::npos ? "/" : path.substr(slash);
    }
    size_t slash = path.find('/', 1);
    s.service = path.substr(1, slash == std::string::npos ? std::string::npos : slash - 1);
    if (slash != std::string::npos) s.method = path.substr(slash + 1);
    for (const auto& h : m->headers) {
      std::string name = core::to_lower(h.name);
      if (name == "grpc-timeout") s.timeout = h.value;
      if (name.starts_with("x-") || name.starts_with("grpc-") || name == "authorization") s.metadata.push_back(h);
    }
    make(std::move(s));
  }
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
  size_t pos = 0;
  while (pos < body.size()) {
    if (body.size() - pos < 5) {
      trouble.push_back({"malformed_grpc_web_lpm", "a message prefix cut short (" + std::to_string(body.size() - pos) + " bytes)"});
      break;
    }
    auto flag = static_cast<uint8_t>(body[pos]);
    size_t len = (size_t{static_cast<uint8_t>(body[pos + 1])} << 24) | (size_t{static_cast<uint8_t>(body[pos + 2])} << 16) |
                 (size_t{static_cast<uint8_t>(body[pos + 3])} << 8) | static_cast<uint8_t>(body[pos + 4]);
    if (body.size() - pos - 5 < len) {
      trouble.push_back({"malformed_grpc_web_lpm", "a message says " + std::to_string(len) + " bytes, " +
                                                       std::to_string(body.size() - pos - 5) + " follow"});
      break;
    }
    core::ByteView frame = core::ByteView(body).substr(pos, 5 + len);
    pos += 5 + len;
    if (flag & 0x80) {  // the trailer frame
      envelope::GrpcEndMessage end;
      end.trailers = trailer_block(frame.substr(5));
      std::string status = field(end.trailers, "grpc-status");
      end.status = status.empty() ? -1 : std::atoi(status.c_str());
      end.message = field(end.trailers, "grpc-message");
      make(std::move(end))->raw = core::Bytes(frame);
      ended = true;
      continue;
    }
    envelope::GrpcDataMessage d;
    d.compressed = flag & 1;
    d.payload = core::Bytes(frame.substr(5));
    make(std::move(d))->raw = core::Bytes(frame);
  }
  if (!request && !ended) {
    std::string status = field(m->headers, "grpc-status");  // a trailers-only answer
    if (!status.empty()) {
      envelope::GrpcEndMessage end;
      end.status = std::atoi(status.c_str());
      end.message = field(m->headers, "grpc-message");
      for (const auto& h : m->headers)
        if (core::to_lower(h.name).starts_with("grpc-")) end.trailers.push_back(h);
      make(std::move(end));
    }
  }
  if (!trouble.empty()) {
    if (out.empty()) make(envelope::GrpcDataMessage{});
    out.back().anomalies = std::move(trouble);
  }
  return out;
}

}  // namespace sluice::layer
