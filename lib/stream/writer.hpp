#pragma once
// StreamWriter: encodes records and writes them to a file descriptor.
//
// Records are buffered; flush() pushes everything written so far to the descriptor and, when
// compressing, ends the current zstd frame so that a reader at the other end of a pipe can decode it
// at once. Frames also end every `frame_bytes` of uncompressed data, which bounds what a corrupt byte
// can cost a reader. Not thread-safe: one writer per thread (lib/runtime's Recorder owns one).
#include <cstdint>
#include <memory>

#include "core/result.hpp"
#include "envelope/record.hpp"
#include "envelope/record_codec.hpp"
#include "stream/format.hpp"

namespace sluice::stream {

struct WriterOptions {
  Encoding encoding = Encoding::jsonl;
  Compression compression = Compression::zstd;
  int zstd_level = 1;  // live capture: speed first; recompress with zstd -19 for archives
  size_t frame_bytes = 1u << 20;  // end a zstd frame after this much uncompressed data
  size_t buffer_bytes = 1u << 16; // write to the fd once this much is pending, even without flush()
  bool inline_bodies = false;     // write every body out, also those raw holds (envelope::EncodeOptions)
};

class StreamWriter {
 public:
  // `fd` is borrowed: the writer never closes it.
  StreamWriter(int fd, WriterOptions options);
  ~StreamWriter();
  StreamWriter(const StreamWriter&) = delete;
  StreamWriter& operator=(const StreamWriter&) = delete;

  core::Result<void> write(const envelope::Record& record);
  // Like write(), but a JSONL record is encoded in pieces straight into the output, never whole in
  // memory: for records with large bodies. (A binary record is written whole: its frame header needs
  // the payload's length and CRC first.)
  core::Result<void> write_in_pieces(const envelope::Record& record);
  // Writes an already encoded record (one JSON line without its newline, or one CBOR map).
  core::Result<void> write_encoded(core::ByteView payload);
  core::Result<void> flush();

  const WriterOptions& options() const { return options_; }
  uint64_t records_written() const { return records_; }
  // True once a write failed because the reader went away (EPIPE): callers stop quietly.
  bool broken_pipe() const { return broken_pipe_; }

 private:
  core::Result<void> drain(bool end_frame);
  // Compresses `in` onto zout_ (zstd only); the frame ends when `end`.
  core::Result<void> compress(core::ByteView in, bool end);

  int fd_;
  WriterOptions options_;
  struct Zstd;
  std::unique_ptr<Zstd> zstd_;
  std::string pending_;  // encoded, not yet compressed or written
  std::string scratch_;
  std::string zout_;      // compressed bytes waiting to be written: zout_[0, zout_used_); never shrunk,
  size_t zout_used_ = 0;  // so that it is not allocated and zero-filled again for every write
  size_t frame_in_ = 0;  // uncompressed bytes in the open zstd frame
  uint64_t records_ = 0;
  bool broken_pipe_ = false;
  bool failed_ = false;
};

// Appends `payload` as it appears in a stream of `encoding`: a JSONL line with its newline, or a binary
// record frame (magic, length, CRC-32C, payload).
void append_framed(core::ByteView payload, Encoding encoding, std::string& out);

// Encodes one record as the payload write_encoded() takes (no newline, no frame header).
void encode_record(const envelope::Record& record, Encoding encoding, std::string& out,
                   envelope::EncodeOptions eo = {});
void encode_envelope(const envelope::Envelope& envelope, Encoding encoding, std::string& out,
                     envelope::EncodeOptions eo = {});

}  // namespace sluice::stream
