#include "stream/writer.hpp"

#include <zstd.h>

#include <algorithm>
#include <cstring>

#include "core/cbor.hpp"
#include "core/crc32c.hpp"
#include "core/json.hpp"
#include "envelope/record_codec.hpp"
#include "stream/fd_io.hpp"

namespace sluice::stream {

std::string_view to_string(Encoding e) { return e == Encoding::jsonl ? "jsonl" : "cbor"; }

std::optional<Encoding> parse_encoding(std::string_view s) {
  if (s == "jsonl" || s == "json") return Encoding::jsonl;
  if (s == "cbor" || s == "binary") return Encoding::cbor;
  return std::nullopt;
}

void encode_record(const envelope::Record& record, Encoding encoding, std::string& out, envelope::EncodeOptions eo) {
  if (encoding == Encoding::jsonl) {
    envelope::write_json(record, out, nullptr, eo);
  } else {
    core::cbor_write(envelope::to_value(record, envelope::Target::cbor, eo), out);
  }
}

void encode_envelope(const envelope::Envelope& e, Encoding encoding, std::string& out, envelope::EncodeOptions eo) {
  if (encoding == Encoding::jsonl) {
    envelope::write_json(e, out, eo);
  } else {
    core::cbor_write(envelope::to_value(e, envelope::Target::cbor, eo), out);
  }
}

void append_framed(core::ByteView payload, Encoding encoding, std::string& out) {
  if (encoding == Encoding::jsonl) {
    out.append(payload);
    out.push_back('\n');
    return;
  }
  auto len = static_cast<uint32_t>(payload.size());
  uint32_t crc = core::crc32c(payload);
  char head[kFrameHeaderSize];
  std::memcpy(head, kFrameMagic.data(), 4);
  for (int i = 0; i < 4; ++i) {
    head[4 + i] = static_cast<char>(len >> (24 - 8 * i));
    head[8 + i] = static_cast<char>(crc >> (24 - 8 * i));
  }
  out.append(head, sizeof head);
  out.append(payload);
}

struct StreamWriter::Zstd {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ~Zstd() { ZSTD_freeCCtx(cctx); }
};

StreamWriter::StreamWriter(int fd, WriterOptions options) : fd_(fd), options_(options) {
  if (options_.compression == Compression::zstd) {
    zstd_ = std::make_unique<Zstd>();
    ZSTD_CCtx_setParameter(zstd_->cctx, ZSTD_c_compressionLevel, options_.zstd_level);
    ZSTD_CCtx_setParameter(zstd_->cctx, ZSTD_c_checksumFlag, 1);
  }
}

StreamWriter::~StreamWriter() { (void)flush(); }

core::Result<void> StreamWriter::write(const envelope::Record& record) {
  scratch_.clear();
  encode_record(record, options_.encoding, scratch_, {options_.inline_bodies});
  return write_encoded(scratch_);
}

core::Result<void> StreamWriter::write_in_pieces(const envelope::Record& record) {
  if (options_.encoding != Encoding::jsonl) return write(record);
  if (failed_) return core::make_error("stream writer is closed after an earlier error");
  core::Result<void> result;
  envelope::Spill spill = [&](std::string& text) {
    pending_.append(text);
    text.clear();
    if (result && pending_.size() >= options_.buffer_bytes) result = drain(false);
  };
  scratch_.clear();
  envelope::write_json(record, scratch_, &spill, {options_.inline_bodies});
  if (!result) return result;
  pending_.append(scratch_);
  pending_.push_back('\n');
  ++records_;
  if (pending_.size() >= options_.buffer_bytes) return drain(false);
  return {};
}

core::Result<void> StreamWriter::write_encoded(core::ByteView payload) {
  if (failed_) return core::make_error("stream writer is closed after an earlier error");
  if (zstd_ && options_.encoding == Encoding::jsonl && payload.size() >= options_.buffer_bytes) {
    // A large record is compressed where it is rather than copied into pending_ first (what is
    // pending goes before it); its newline follows with the next drain.
    if (auto r = compress(pending_, false); !r) return r;
    pending_.clear();
    if (auto r = compress(payload, false); !r) return r;
    pending_.push_back('\n');
    ++records_;
    return drain(false);
  }
  append_framed(payload, options_.encoding, pending_);
  ++records_;
  if (pending_.size() >= options_.buffer_bytes) return drain(false);
  return {};
}

core::Result<void> StreamWriter::flush() {
  if (failed_) return {};
  return drain(true);
}

core::Result<void> StreamWriter::compress(core::ByteView bytes, bool end) {
  if (bytes.empty() && !end) return {};
  frame_in_ += bytes.size();
  ZSTD_inBuffer in{bytes.data(), bytes.size(), 0};
  ZSTD_EndDirective mode = end ? ZSTD_e_end : ZSTD_e_continue;
  while (true) {
    size_t need = zout_used_ + ZSTD_compressBound(in.size - in.pos) + 64;
    if (zout_.size() < need) zout_.resize(std::max(need, zout_.size() * 2));
    ZSTD_outBuffer ob{zout_.data(), zout_.size(), zout_used_};
    size_t rem = ZSTD_compressStream2(zstd_->cctx, &ob, &in, mode);
    zout_used_ = ob.pos;
    if (ZSTD_isError(rem)) {
      failed_ = true;
      return core::make_error(std::string("zstd: ") + ZSTD_getErrorName(rem));
    }
    if (mode == ZSTD_e_continue ? in.pos == in.size : rem == 0) break;
  }
  if (end) frame_in_ = 0;
  return {};
}

core::Result<void> StreamWriter::drain(bool end_frame) {
  if (pending_.empty() && zout_used_ == 0 && (!zstd_ || frame_in_ == 0)) return {};
  core::ByteView out = pending_;
  if (zstd_) {
    bool end = end_frame || frame_in_ + pending_.size() >= options_.frame_bytes;
    if (auto r = compress(pending_, end); !r) return r;
    pending_.clear();
    out = core::ByteView(zout_.data(), zout_used_);
  }
  core::Result<void> r;
  if (!out.empty()) r = write_all(fd_, out);
  pending_.clear();
  zout_used_ = 0;
  if (zout_.size() > (4u << 20)) std::string().swap(zout_);  // an exceptional record: not kept for ever
  if (!r) {
    failed_ = true;
    broken_pipe_ = last_error_was_broken_pipe();
  }
  return r;
}

}  // namespace sluice::stream
