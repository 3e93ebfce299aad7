#include "codec/http2.hpp"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>

#include "core/ascii.hpp"

namespace sluice::codec {

namespace {

constexpr uint8_t kData = 0x0, kHeaders = 0x1, kContinuation = 0x9;
constexpr uint8_t kEndStream = 0x1, kEndHeaders = 0x4, kPadded = 0x8, kPriority = 0x20;

uint32_t be32(const char* p) {
  const auto* u = reinterpret_cast<const uint8_t*>(p);
  return uint32_t(u[0]) << 24 | uint32_t(u[1]) << 16 | uint32_t(u[2]) << 8 | u[3];
}

}  // namespace

bool is_connection_specific(std::string_view name) {
  for (std::string_view n : {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"})
    if (core::iequals(name, n)) return true;
  return false;
}

envelope::Headers h2_fields(const envelope::Headers& fields) {
  std::vector<std::string> named;  // what the Connection field names
  for (const auto& h : fields) {
    if (!core::iequals(h.name, "connection")) continue;
    std::string_view v = h.value;
    while (!v.empty()) {
      size_t comma = v.find(',');
      std::string_view item = core::trim_ows(v.substr(0, comma));
      if (!item.empty()) named.push_back(core::to_lower(item));
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  envelope::Headers out;
  out.reserve(fields.size());
  for (const auto& h : fields) {
    std::string name = core::to_lower(h.name);
    if (is_connection_specific(name) || std::find(named.begin(), named.end(), name) != named.end()) continue;
    if (name == "te" && !core::iequals(core::trim_ows(h.value), "trailers")) continue;
    out.push_back({std::move(name), h.value});
  }
  return out;
}

envelope::Headers h2_header_block(const envelope::HttpMessage& m) {
  envelope::Headers block;
  if (m.kind == envelope::HttpMessage::Kind::request) {
    block.push_back({":method", m.method});
    bool connect = m.method == "CONNECT";
    if (!connect) block.push_back({":scheme", m.scheme.empty() ? std::string("https") : m.scheme});
    if (!m.authority.empty() || connect) block.push_back({":authority", m.authority});
    if (!connect) block.push_back({":path", m.path.empty() ? std::string("/") : m.path});
  } else {
    block.push_back({":status", std::to_string(m.status)});
  }
  for (auto& h : h2_fields(m.headers)) {
    if (h.name == "host" && m.kind == envelope::HttpMessage::Kind::request && !m.authority.empty()) continue;
    if (h.name == "content-length") h.value = std::to_string(m.body.size());
    block.push_back(std::move(h));
  }
  return block;
}

core::Bytes h2_frame(uint8_t type, uint8_t flags, int32_t stream_id, core::ByteView payload) {
  core::Bytes f;
  f.reserve(9 + payload.size());
  size_t n = payload.size();
  f += static_cast<char>(n >> 16 & 0xff);
  f += static_cast<char>(n >> 8 & 0xff);
  f += static_cast<char>(n & 0xff);
  f += static_cast<char>(type);
  f += static_cast<char>(flags);
  uint32_t id = static_cast<uint32_t>(stream_id) & 0x7fffffffu;
  for (int shift = 24; shift >= 0; shift -= 8) f += static_cast<char>(id >> shift & 0xff);
  f.append(payload);
  return f;
}

// ---- encoding ------------------------------------------------------------------------------------

struct H2Encoder::Deflater {
  nghttp2_hd_deflater* d = nullptr;
  Deflater() { nghttp2_hd_deflate_new(&d, 4096); }
  ~Deflater() { nghttp2_hd_deflate_del(d); }
};

H2Encoder::H2Encoder(size_t max_frame)
    : deflater_(std::make_unique<Deflater>()), max_frame_(std::clamp<size_t>(max_frame, 16384, (1u << 24) - 1)) {}
H2Encoder::~H2Encoder() = default;

core::Bytes H2Encoder::headers(int32_t stream_id, const envelope::Headers& fields, bool end_stream) {
  std::vector<nghttp2_nv> nv;
  nv.reserve(fields.size());
  for (const auto& h : fields)
    nv.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(h.name.data())),
                  reinterpret_cast<uint8_t*>(const_cast<char*>(h.value.data())), h.name.size(), h.value.size(),
                  NGHTTP2_NV_FLAG_NONE});
  core::Bytes block(nghttp2_hd_deflate_bound(deflater_->d, nv.data(), nv.size()), '\0');
  ssize_t n = nghttp2_hd_deflate_hd(deflater_->d, reinterpret_cast<uint8_t*>(block.data()), block.size(), nv.data(),
                                    nv.size());
  block.resize(n < 0 ? 0 : static_cast<size_t>(n));  // (the bound is enough: it cannot fail short of memory)
  core::Bytes out;
  core::ByteView rest = block;
  bool first = true;
  do {
    core::ByteView piece = rest.substr(0, max_frame_);
    rest.remove_prefix(piece.size());
    uint8_t flags = rest.empty() ? kEndHeaders : 0;
    if (first && end_stream) flags |= kEndStream;
    out += h2_frame(first ? kHeaders : kContinuation, flags, stream_id, piece);
    first = false;
  } while (!rest.empty());
  return out;
}

core::Bytes H2Encoder::data(int32_t stream_id, core::ByteView bytes, bool end_stream) const {
  core::Bytes out;
  do {
    core::ByteView piece = bytes.substr(0, max_frame_);
    bytes.remove_prefix(piece.size());
    out += h2_frame(kData, bytes.empty() && end_stream ? kEndStream : 0, stream_id, piece);
  } while (!bytes.empty());
  return out;
}

core::Bytes H2Encoder::message(int32_t stream_id, const envelope::HttpMessage& m) {
  envelope::Headers trailers = h2_fields(m.trailers);
  bool body = !m.body.empty();
  core::Bytes out = headers(stream_id, h2_header_block(m), !body && trailers.empty());
  if (body) out += data(stream_id, m.body, trailers.empty());
  if (!trailers.empty()) out += headers(stream_id, trailers, true);
  return out;
}

// ---- decoding ------------------------------------------------------------------------------------

struct H2Decoder::Inflater {
  nghttp2_hd_inflater* i = nullptr;
  Inflater() { nghttp2_hd_inflate_new(&i); }
  ~Inflater() { nghttp2_hd_inflate_del(i); }
};

H2Decoder::H2Decoder() : inflater_(std::make_unique<Inflater>()) {}
H2Decoder::~H2Decoder() = default;

const H2Decoder::Message* H2Decoder::find(int32_t stream_id) const {
  for (const auto& m : messages_)
    if (m.stream_id == stream_id) return &m;
  return nullptr;
}

core::Result<void> H2Decoder::feed(core::ByteView bytes) {
  pending_.append(bytes);
  size_t pos = 0;
  auto fail = [&](std::string why) -> core::Result<void> {
    pending_.erase(0, pos);
    return core::make_error(std::move(why));
  };
  while (pending_.size() - pos >= 9) {
    const char* h = pending_.data() + pos;
    size_t length = uint32_t(uint8_t(h[0])) << 16 | uint32_t(uint8_t(h[1])) << 8 | uint8_t(h[2]);
    if (pending_.size() - pos < 9 + length) break;
    uint8_t type = h[3], flags = h[4];
    int32_t id = static_cast<int32_t>(be32(h + 5) & 0x7fffffffu);
    core::ByteView payload = core::ByteView(pending_).substr(pos + 9, length);
    pos += 9 + length;
    if (block_stream_ && (type != kContinuation || id != block_stream_))
      return fail("a header block was not continued on its stream");
    if (type != kData && type != kHeaders && type != kContinuation) continue;  // not part of a message
    if (id == 0) return fail("a DATA, HEADERS or CONTINUATION frame on stream 0");
    if (type == kContinuation && !block_stream_) return fail("a CONTINUATION frame with no header block open");
    if ((type == kData || type == kHeaders) && (flags & kPadded)) {
      if (payload.empty() || uint8_t(payload[0]) >= payload.size()) return fail("padding longer than its frame");
      size_t pad = uint8_t(payload[0]);
      payload = payload.substr(1, payload.size() - 1 - pad);
    }
    Message* m = nullptr;
    for (auto& each : messages_)
      if (each.stream_id == id) m = &each;
    if (type == kData) {
      if (!m) return fail("DATA before its stream's HEADERS");
      m->body.append(payload);
      if (flags & kEndStream) m->ended = true;
      continue;
    }
    if (type == kHeaders) {
      if (flags & kPriority) {
        if (payload.size() < 5) return fail("a HEADERS frame too short for its priority");
        payload.remove_prefix(5);
      }
      block_stream_ = id;
      block_end_stream_ = flags & kEndStream;
      block_.clear();
    }
    block_.append(payload);
    if (!(flags & kEndHeaders)) continue;
    envelope::Headers fields;
    const auto* in = reinterpret_cast<const uint8_t*>(block_.data());
    size_t left = block_.size();
    for (;;) {
      nghttp2_nv nv;
      int out_flags = 0;
      ssize_t used = nghttp2_hd_inflate_hd2(inflater_->i, &nv, &out_flags, in, left, 1);
      if (used < 0) return fail(std::string("HPACK: ") + nghttp2_strerror(static_cast<int>(used)));
      in += used;
      left -= static_cast<size_t>(used);
      if (out_flags & NGHTTP2_HD_INFLATE_EMIT)
        fields.push_back({std::string(reinterpret_cast<const char*>(nv.name), nv.namelen),
                          std::string(reinterpret_cast<const char*>(nv.value), nv.valuelen)});
      if (out_flags & NGHTTP2_HD_INFLATE_FINAL) {
        nghttp2_hd_inflate_end_headers(inflater_->i);
        break;
      }
      if (used == 0 && left == 0) return fail("HPACK: a header block cut short");
    }
    if (!m) {
      messages_.push_back({id, std::move(fields), {}, {}, false});
      m = &messages_.back();
    } else {
      m->trailers = std::move(fields);
    }
    if (block_end_stream_) m->ended = true;
    block_stream_ = 0;
    block_.clear();
  }
  pending_.erase(0, pos);
  return {};
}

envelope::HttpMessage H2Decoder::view(const Message& m) {
  envelope::HttpMessage v;
  v.version = "HTTP/2";
  v.kind = envelope::HttpMessage::Kind::request;
  for (const auto& h : m.headers) {
    if (h.name == ":status") {
      v.kind = envelope::HttpMessage::Kind::response;
      v.status = std::atoi(h.value.c_str());
    } else if (h.name == ":method") {
      v.method = h.value;
    } else if (h.name == ":scheme") {
      v.scheme = h.value;
    } else if (h.name == ":authority") {
      v.authority = h.value;
    } else if (h.name == ":path") {
      v.path = h.value;
    } else if (h.name.empty() || h.name[0] != ':') {
      v.headers.push_back(h);
    }
  }
  v.trailers = m.trailers;
  v.body = m.body;
  return v;
}

}  // namespace sluice::codec
