#pragma once
// RecordDecoder: the sans-IO core of every stream reader. Feed it bytes as they arrive, in any
// chunking; it detects compression (zstd or none) and encoding (JSONL or binary) from the first bytes,
// and yields each complete record. It never throws and never crashes on corrupt input: damaged regions
// are skipped, with a warning naming where and how much was lost, and decoding resumes at the next
// record (JSONL: next line; binary: next frame magic; zstd: next frame).
//
// Compressed frames up to 4 MiB of decoded data are held until their checksum verifies, so that a
// corrupt frame loses its records rather than yielding garbage.
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/bytes.hpp"
#include "core/result.hpp"
#include "envelope/record.hpp"
#include "stream/format.hpp"

namespace sluice::stream {

class RecordDecoder {
 public:
  // `on_warning` receives one line per problem (no prefix, no newline).
  explicit RecordDecoder(std::function<void(const std::string&)> on_warning = {});
  ~RecordDecoder();
  RecordDecoder(const RecordDecoder&) = delete;
  RecordDecoder& operator=(const RecordDecoder&) = delete;

  // `data` is borrowed for the call only.
  void feed(core::ByteView data);
  // End of input: anything incomplete is reported as lost.
  void finish();
  // The next decoded record, in stream order, or nullopt when more input is needed.
  std::optional<envelope::Record> next();

  // Replaces the decoding of JSONL records: a reader that needs only part of each record (the filter)
  // reads it faster. An error from `parser` falls back to the full decoding of that line.
  using Parser = std::function<core::Result<envelope::Record>(core::ByteView line)>;
  void set_jsonl_parser(Parser parser) { parser_ = std::move(parser); }
  // Hands records over as they are decoded instead of queueing them for next(), in stream order: a
  // JSONL line first to `lines` (when set), which returns false to have it decoded as usual; every
  // record decoded then goes to `records` with its encoded form (a JSON line without its newline, or a
  // CBOR map), valid for the call only.
  using LineHandler = std::function<bool(core::ByteView line)>;
  using RecordHandler = std::function<void(envelope::Record&& record, core::ByteView payload)>;
  void set_handlers(LineHandler lines, RecordHandler records) {
    line_handler_ = std::move(lines);
    record_handler_ = std::move(records);
  }
  // Keeps each record's encoded form (a JSON line without its newline, or a CBOR map): payload()
  // is that of the record next() returned last.
  void set_keep_payloads(bool keep) { keep_payloads_ = keep; }
  const std::string& payload() const { return payload_; }
  std::string take_payload() { return std::move(payload_); }

  // Set when the input is not a sluice stream at all (nothing more will be decoded): what it is instead,
  // as a phrase ("a HAR file, not a sluice stream"); foreign() says which kind, for a hint.
  const std::optional<std::string>& fatal() const { return fatal_; }
  enum class Foreign : uint8_t { none, har, mitmproxy, json, pcap, other };
  Foreign foreign() const { return foreign_; }
  // Decoded bytes seen so far (0 for an empty or blank input).
  bool saw_data() const { return saw_data_; }
  std::optional<Encoding> encoding() const { return encoding_; }
  std::optional<Compression> compression() const { return compression_; }
  uint64_t records() const { return records_; }
  uint64_t warnings() const { return warnings_; }

 private:
  void warn(std::string message);
  void feed_zstd(core::ByteView data);
  void release_frame();
  void feed_plain(core::ByteView data);
  void split_records(bool at_end);
  bool split_jsonl(bool at_end);
  bool split_cbor(bool at_end);
  // `at`: the JSONL line number, or the binary frame's byte offset (named only in a warning).
  void emit(core::ByteView payload, bool cbor, uint64_t at, uint64_t line_offset = 0);
  void compact();
  // The input is something else than a stream: `head` its first bytes.
  void refuse(core::ByteView head);
  // False (and the decoder refused the input) when the first JSON line is a document of another kind.
  bool first_line_is_a_record(core::ByteView line);

  std::function<void(const std::string&)> on_warning_;
  std::optional<Compression> compression_;
  std::optional<Encoding> encoding_;
  std::optional<std::string> fatal_;
  Foreign foreign_ = Foreign::none;
  bool saw_data_ = false;
  bool first_checked_ = false;  // a JSONL line judged to be a record (not a HAR, not plain JSON)
  std::string head_;  // first bytes, until compression is known

  struct Zstd;
  std::unique_ptr<Zstd> z_;

  std::string text_;       // decoded bytes not yet split into records
  size_t tpos_ = 0;        // first unconsumed byte of text_
  uint64_t text_base_ = 0; // offset of text_[0] in the decoded stream
  uint64_t line_ = 0;      // JSONL line number of the next line
  uint64_t skipping_ = 0;  // binary: bytes skipped while looking for a frame magic
  uint64_t skip_start_ = 0;

  std::deque<envelope::Record> out_;
  std::deque<std::string> payloads_;  // with keep_payloads_: one per record in out_
  std::string payload_;
  Parser parser_;
  LineHandler line_handler_;
  RecordHandler record_handler_;
  bool keep_payloads_ = false;
  uint64_t records_ = 0;
  uint64_t warnings_ = 0;
};

}  // namespace sluice::stream
