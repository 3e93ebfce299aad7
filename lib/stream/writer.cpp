#include "stream/writer.hpp"

#include <zstd.h>

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

void encode_record(const envelope::Record& record, Encoding encoding, std::string& out) {
  if (encoding == Encoding::jsonl) {
    envelope::write_json(record, out);
  } else {
    core::cbor_write(envelope::to_value(record, envelope::Target::cbor), out);
  }
}

void encode_envelope(const envelope::Envelope& e, Encoding encoding, std::string& out) {
  if (encoding == Encoding::jsonl) {
    envelope::write_json(e, out);
  } else {
    core::cbor_write(envelope::to_value(e, envelope::Target::cbor), out);
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
  encode_record(record, options_.encoding, scratch_);
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
  envelope::write_json(record, scratch_, &spill);
  if (!result) return result;
  pending_.append(scratch_);
  pending_.push_back('\n');
  ++records_;
  if (pending_.size() >= options_.buffer_bytes) return drain(false);
  return {};
}

core::Result<void> StreamWriter::write_encoded(core::ByteView payload) {
  if (failed_) return core::make_error("stream writer is closed after an earlier error");
  append_framed(payload, options_.encoding, pending_);
  ++records_;
  if (pending_.size() >= options_.buffer_bytes) return drain(false);
  return {};
}

core::Result<void> StreamWriter::flush() {
  if (failed_) return {};
  return drain(true);
}

core::Result<void> StreamWriter::drain(bool end_frame) {
  if (pending_.empty() && (!zstd_ || frame_in_ == 0)) return {};
  std::string out;
  if (!zstd_) {
    out.swap(pending_);
  } else {
    frame_in_ += pending_.size();
    bool end = end_frame || frame_in_ >= options_.frame_bytes;
    ZSTD_inBuffer in{pending_.data(), pending_.size(), 0};
    out.resize(ZSTD_compressBound(pending_.size()) + 64);
    ZSTD_outBuffer ob{out.data(), out.size(), 0};
    ZSTD_EndDirective mode = end ? ZSTD_e_end : ZSTD_e_continue;
    while (true) {
      size_t rem = ZSTD_compressStream2(zstd_->cctx, &ob, &in, mode);
      if (ZSTD_isError(rem)) {
        failed_ = true;
        return core::make_error(std::string("zstd: ") + ZSTD_getErrorName(rem));
      }
      bool done = mode == ZSTD_e_continue ? in.pos == in.size : rem == 0;
      if (done) break;
      if (ob.pos == ob.size) {
        out.resize(out.size() * 2);
        ob.dst = out.data();
        ob.size = out.size();
      }
    }
    out.resize(ob.pos);
    pending_.clear();
    if (end) frame_in_ = 0;
  }
  if (out.empty()) return {};
  auto r = write_all(fd_, out);
  if (!r) {
    failed_ = true;
    broken_pipe_ = last_error_was_broken_pipe();
  }
  return r;
}

}  // namespace sluice::stream
