#include "stream/decoder.hpp"

#include <zstd.h>

#include "core/cbor.hpp"
#include "core/crc32c.hpp"
#include "core/json.hpp"
#include "envelope/record_codec.hpp"
#include "export/mitm.hpp"

namespace sluice::stream {
namespace {
constexpr size_t kHoldLimit = 4u << 20;   // decoded bytes of one zstd frame held for its checksum
constexpr size_t kMaxLine = 1u << 30;

std::string hex_prefix(core::ByteView b) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < b.size() && i < 8; ++i) {
    auto c = static_cast<unsigned char>(b[i]);
    if (i) s.push_back(' ');
    s.push_back(kHex[c >> 4]);
    s.push_back(kHex[c & 15]);
  }
  return s;
}

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

// `{` then `"log"`: how every HAR file starts (HAR 1.2, Chrome, Firefox, mitmproxy, sluice export).
bool looks_like_har(core::ByteView b) {
  size_t i = 0;
  while (i < b.size() && is_space(b[i])) ++i;
  if (i >= b.size() || b[i] != '{') return false;
  ++i;
  while (i < b.size() && is_space(b[i])) ++i;
  return b.substr(i).starts_with("\"log\"");
}

}  // namespace

struct RecordDecoder::Zstd {
  ZSTD_DCtx* dctx = ZSTD_createDCtx();
  std::string in;             // compressed bytes not yet decoded, from the current frame's start
  size_t pos = 0;             // next byte of `in` to decode
  std::string frame;          // decoded bytes of the current frame, held until it ends
  uint64_t in_base = 0;       // input offset of in[0]
  bool searching = false;     // after an error: looking for the next frame magic
  uint64_t search_from = 0;   // input offset where the search started
  bool in_frame = false;
  ~Zstd() { ZSTD_freeDCtx(dctx); }
};

RecordDecoder::RecordDecoder(std::function<void(const std::string&)> on_warning)
    : on_warning_(std::move(on_warning)) {}
RecordDecoder::~RecordDecoder() = default;

void RecordDecoder::warn(std::string message) {
  ++warnings_;
  if (on_warning_) on_warning_(message);
}

std::optional<envelope::Record> RecordDecoder::next() {
  if (out_.empty()) return std::nullopt;
  envelope::Record r = std::move(out_.front());
  out_.pop_front();
  if (!payloads_.empty()) {
    payload_ = std::move(payloads_.front());
    payloads_.pop_front();
  }
  return r;
}

void RecordDecoder::feed(core::ByteView data) {
  if (fatal_ || data.empty()) return;
  if (!compression_) {
    head_.append(data);
    size_t i = 0;
    while (i < head_.size() && (head_[i] == ' ' || head_[i] == '\n' || head_[i] == '\r' || head_[i] == '\t')) ++i;
    if (i == head_.size()) return;
    saw_data_ = true;
    core::ByteView h(head_);
    h.remove_prefix(i);
    if (h[0] != '{' && h.size() < 4) return;  // need the whole magic
    if (h.starts_with(kZstdMagic)) {
      compression_ = Compression::zstd;
      z_ = std::make_unique<Zstd>();
    } else if (h[0] == '{' || h.starts_with(kFrameMagic)) {
      compression_ = Compression::none;
    } else {
      refuse(h);
      return;
    }
    std::string buffered;
    buffered.swap(head_);
    data = buffered;
    if (*compression_ == Compression::zstd)
      feed_zstd(data);
    else
      feed_plain(data);
    return;
  }
  if (*compression_ == Compression::zstd)
    feed_zstd(data);
  else
    feed_plain(data);
}

void RecordDecoder::feed_zstd(core::ByteView data) {
  Zstd& z = *z_;
  z.in.append(data);
  while (true) {
    if (z.searching) {
      size_t at = z.in.find(kZstdMagic, z.pos);
      if (at == std::string::npos) {
        size_t keep = std::min<size_t>(z.in.size() - z.pos, kZstdMagic.size() - 1);
        z.pos = z.in.size() - keep;
        break;
      }
      z.pos = at;
      z.searching = false;
      warn("skipped " + std::to_string(z.in_base + at - z.search_from) + " bytes of compressed input at byte " +
           std::to_string(z.search_from) + " looking for the next zstd frame");
    }
    // Drop decoded input before the current frame start; keep the frame so it can be rescanned.
    if (!z.in_frame && z.pos > 0) {
      z.in.erase(0, z.pos);
      z.in_base += z.pos;
      z.pos = 0;
    }
    if (z.pos >= z.in.size()) break;
    z.in_frame = true;
    size_t before = z.frame.size();
    z.frame.resize(before + (1u << 17));
    ZSTD_inBuffer in{z.in.data(), z.in.size(), z.pos};
    ZSTD_outBuffer out{z.frame.data() + before, z.frame.size() - before, 0};
    size_t ret = ZSTD_decompressStream(z.dctx, &out, &in);
    z.frame.resize(before + out.pos);
    z.pos = in.pos;
    if (ZSTD_isError(ret)) {
      uint64_t frame_at = z.in_base;
      warn("corrupt compressed data in the zstd frame at byte " + std::to_string(frame_at) + " (" +
           ZSTD_getErrorName(ret) + "); its records are lost (" + std::to_string(z.frame.size()) +
           " decoded bytes dropped)");
      z.frame.clear();
      ZSTD_DCtx_reset(z.dctx, ZSTD_reset_session_only);
      z.in_frame = false;
      z.pos = 1;  // rescan from the byte after the failed frame's start
      z.searching = true;
      z.search_from = frame_at + 1;
      continue;
    }
    if (ret == 0) {  // frame complete and verified
      z.in_frame = false;
      release_frame();
      continue;
    }
    if (z.frame.size() > kHoldLimit) release_frame();
    if (in.pos == in.size && out.pos < out.size) break;  // needs more input
  }
  // Bound the retained frame bytes: a third-party writer may produce one huge frame.
  if (z.in_frame && z.pos > kHoldLimit) {
    z.in.erase(0, z.pos);
    z.in_base += z.pos;
    z.pos = 0;
  }
}

void RecordDecoder::release_frame() {
  Zstd& z = *z_;
  if (!fatal_ && tpos_ == text_.size()) {
    // Nothing left over: the frame becomes the text without a copy, and the old text's buffer (its
    // capacity kept) takes the next frame.
    text_base_ += text_.size();
    text_.swap(z.frame);
    tpos_ = 0;
    z.frame.clear();
    split_records(false);
    return;
  }
  feed_plain(z.frame);
  z.frame.clear();
}

void RecordDecoder::feed_plain(core::ByteView data) {
  if (fatal_) return;
  text_.append(data);
  split_records(false);
}

void RecordDecoder::split_records(bool at_end) {
  if (!encoding_) {
    size_t i = tpos_;
    while (i < text_.size() && (text_[i] == ' ' || text_[i] == '\n' || text_[i] == '\r' || text_[i] == '\t')) ++i;
    if (i == text_.size()) return;
    core::ByteView h = core::ByteView(text_).substr(i);
    if (h[0] == '{') {
      encoding_ = Encoding::jsonl;
    } else if (h.starts_with(kFrameMagic)) {
      encoding_ = Encoding::cbor;
    } else if (h.size() < 4 && (kFrameMagic.starts_with(h) || kZstdMagic.starts_with(h))) {
      if (at_end) {
        warn("input ends inside a record: lost the last " + std::to_string(h.size()) + " bytes");
        tpos_ = text_.size();
      }
      return;
    } else {
      refuse(h);
      return;
    }
  }
  while (*encoding_ == Encoding::jsonl ? split_jsonl(at_end) : split_cbor(at_end)) {
  }
  compact();
}

bool RecordDecoder::split_jsonl(bool at_end) {
  if (tpos_ >= text_.size()) return false;
  size_t nl = text_.find('\n', tpos_);
  if (nl == std::string::npos) {
    if (!at_end) {
      if (text_.size() - tpos_ > kMaxLine) {
        warn("line " + std::to_string(line_ + 1) + " is longer than 1 GiB; skipped");
        text_base_ += text_.size();
        text_.clear();
        tpos_ = 0;
      }
      return false;
    }
    nl = text_.size();
  }
  core::ByteView line = core::ByteView(text_).substr(tpos_, nl - tpos_);
  uint64_t line_offset = text_base_ + tpos_;
  ++line_;
  tpos_ = nl < text_.size() ? nl + 1 : nl;
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
  if (line.empty()) return true;
  bool complete = nl < text_.size();
  if (!first_checked_ && complete && !first_line_is_a_record(line)) return false;
  if (!complete) {
    // The last line has no newline: a whole record still counts, a cut one is reported.
    auto parsed = core::json_parse(line);
    if (!parsed) {
      warn("input ends inside a record: lost the last " + std::to_string(line.size()) + " bytes (line " +
           std::to_string(line_) + ")");
      return false;
    }
  }
  emit(line, false, line_, line_offset);
  return true;
}

bool RecordDecoder::split_cbor(bool at_end) {
  size_t avail = text_.size() - tpos_;
  if (avail == 0) return false;
  core::ByteView rest = core::ByteView(text_).substr(tpos_);
  if (!rest.starts_with(kFrameMagic)) {
    if (rest.size() < kFrameMagic.size() && kFrameMagic.starts_with(rest) && !at_end) return false;
    size_t at = rest.find(kFrameMagic, 1);
    if (skipping_ == 0) skip_start_ = text_base_ + tpos_;
    if (at == std::string::npos) {
      size_t drop = at_end ? rest.size() : rest.size() - std::min(rest.size(), kFrameMagic.size() - 1);
      skipping_ += drop;
      tpos_ += drop;
      if (at_end && skipping_) {
        warn("skipped " + std::to_string(skipping_) + " bytes of corrupt data at byte " + std::to_string(skip_start_) +
             " (no further record frame)");
        skipping_ = 0;
      }
      return false;
    }
    skipping_ += at;
    tpos_ += at;
    warn("skipped " + std::to_string(skipping_) + " bytes of corrupt data at byte " + std::to_string(skip_start_) +
         " looking for the next record frame");
    skipping_ = 0;
    return true;
  }
  if (avail < kFrameHeaderSize) {
    if (at_end) {
      warn("input ends inside a record frame header: lost the last " + std::to_string(avail) + " bytes");
      tpos_ = text_.size();
    }
    return false;
  }
  auto u32 = [&](size_t off) {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(rest[off + static_cast<size_t>(i)]);
    return v;
  };
  uint32_t len = u32(4);
  uint32_t crc = u32(8);
  uint64_t offset = text_base_ + tpos_;
  if (len > kMaxFramePayload) {
    warn("record frame at byte " + std::to_string(offset) + " claims " + std::to_string(len) +
         " bytes; treated as corrupt");
    tpos_ += 1;
    return true;
  }
  if (avail < kFrameHeaderSize + len) {
    if (at_end) {
      // A corrupt length can claim more than is left: look for a later frame before giving up.
      if (rest.find(kFrameMagic, 1) != std::string::npos) {
        warn("record frame at byte " + std::to_string(offset) + " is cut short by a later frame; treated as corrupt");
        tpos_ += 1;
        return true;
      }
      warn("input ends inside a record: lost the last " + std::to_string(avail) + " bytes (a record of " +
           std::to_string(len) + " bytes at byte " + std::to_string(offset) + ")");
      tpos_ = text_.size();
    }
    return false;
  }
  core::ByteView payload = rest.substr(kFrameHeaderSize, len);
  if (core::crc32c(payload) != crc) {
    warn("record frame at byte " + std::to_string(offset) + " fails its checksum; skipped");
    tpos_ += 1;
    return true;
  }
  tpos_ += kFrameHeaderSize + len;
  emit(payload, true, offset);
  return true;
}

void RecordDecoder::emit(core::ByteView payload, bool cbor, uint64_t at, uint64_t line_offset) {
  if (!cbor && line_handler_ && line_handler_(payload)) {
    ++records_;
    return;
  }
  auto deliver = [&](envelope::Record&& record) {
    ++records_;
    if (record_handler_) {
      record_handler_(std::move(record), payload);
      return;
    }
    out_.push_back(std::move(record));
    if (keep_payloads_) payloads_.emplace_back(payload);
  };
  if (parser_ && !cbor) {
    if (auto fast = parser_(payload)) return deliver(std::move(fast).value());
  }
  auto where = [&] {
    return cbor ? "record frame at byte " + std::to_string(at)
                : "line " + std::to_string(at) + " (byte " + std::to_string(line_offset) + ")";
  };
  auto value = cbor ? core::cbor_parse(payload) : core::json_parse(payload);
  if (!value) {
    warn(where() + ": " + value.error().message + "; record skipped");
    return;
  }
  auto record = envelope::from_value(std::move(value).value());
  if (!record) {
    warn(where() + ": " + record.error().message + "; record skipped");
    return;
  }
  deliver(std::move(record).value());
}

void RecordDecoder::refuse(core::ByteView h) {
  core::ByteView json = h.starts_with("\xEF\xBB\xBF") ? h.substr(3) : h;  // a UTF-8 byte order mark
  if (looks_like_har(json)) {
    foreign_ = Foreign::har;
    fatal_ = "a HAR file, not a sluice stream";
  } else if (!json.empty() && (json[0] == '{' || json[0] == '[')) {
    foreign_ = Foreign::json;
    fatal_ = "a JSON document, not a sluice stream (a stream has one JSON record per line, each with a \"type\")";
  } else if (exporter::looks_like_mitm(h)) {
    foreign_ = Foreign::mitmproxy;
    fatal_ = "a mitmproxy flow file, not a sluice stream";
  } else if (h.starts_with("\xD4\xC3\xB2\xA1") || h.starts_with("\xA1\xB2\xC3\xD4") ||
             h.starts_with("\x4D\x3C\xB2\xA1") || h.starts_with("\xA1\xB2\x3C\x4D") ||
             h.starts_with("\x0A\x0D\x0D\x0A")) {
    foreign_ = Foreign::pcap;
    fatal_ = "a packet capture (pcap), not a sluice stream";
  } else {
    foreign_ = Foreign::other;
    fatal_ = "not a sluice stream (first bytes: " + hex_prefix(h) + ")";
  }
}

bool RecordDecoder::first_line_is_a_record(core::ByteView line) {
  core::ByteView t = line;
  while (!t.empty() && is_space(t.front())) t.remove_prefix(1);
  if (t == "{") {  // pretty-printed JSON: judged by its start
    refuse(core::ByteView(text_).substr(0, std::min<size_t>(text_.size(), 4096)));
    return false;
  }
  auto parsed = core::json_parse(line);
  if (!parsed) return true;  // a damaged line: skipped as usual, the next one is judged
  const core::Value* type = parsed->is_object() ? parsed->find("type") : nullptr;
  if (type && type->is_string()) {
    first_checked_ = true;
    return true;
  }
  refuse(line);
  return false;
}

void RecordDecoder::compact() {
  if (tpos_ > (1u << 16) && tpos_ * 2 > text_.size()) {
    text_.erase(0, tpos_);
    text_base_ += tpos_;
    tpos_ = 0;
  }
}

void RecordDecoder::finish() {
  if (fatal_) return;
  if (!compression_) {
    // Fewer bytes than a magic: decide with what there is.
    if (head_.empty()) return;
    std::string h;
    h.swap(head_);
    bool blank = h.find_first_not_of(" \r\n\t") == std::string::npos;
    if (blank) return;
    saw_data_ = true;
    compression_ = Compression::none;
    feed_plain(h);
  }
  if (z_) {
    Zstd& z = *z_;
    if (z.in_frame || !z.frame.empty()) {
      warn("input ends inside a zstd frame at byte " + std::to_string(z.in_base) + " (" +
           std::to_string(z.in.size() - z.pos) + " undecoded bytes); keeping the records decoded so far");
      release_frame();
    } else if (z.searching && z.in.size() > z.pos) {
      warn("skipped " + std::to_string(z.in_base + z.in.size() - z.search_from) +
           " bytes of compressed input at the end (no further zstd frame)");
    }
  }
  split_records(true);
  if (encoding_ == Encoding::cbor && skipping_) {
    warn("skipped " + std::to_string(skipping_) + " bytes of corrupt data at byte " + std::to_string(skip_start_));
    skipping_ = 0;
  }
}

}  // namespace sluice::stream
