#pragma once
// StreamReader: reads records from a file descriptor through a RecordDecoder.
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "core/result.hpp"
#include "export/mitm.hpp"
#include "stream/decoder.hpp"

namespace sluice::stream {

class StreamReader {
 public:
  // `fd` is borrowed. `name` appears in warnings ("capture.zst", "<stdin>"). Warnings go to
  // `on_warning`; by default to stderr as "sluice: NAME: WARNING".
  StreamReader(int fd, std::string name, std::function<void(const std::string&)> on_warning = {});

  // Opens PATH ("-" = stdin).
  static core::Result<std::unique_ptr<StreamReader>> open(const std::string& path,
                                                          std::function<void(const std::string&)> on_warning = {});
  ~StreamReader();
  StreamReader(const StreamReader&) = delete;
  StreamReader& operator=(const StreamReader&) = delete;

  // The next record; nullopt at end of input, or an Error for a read failure or an input that is not
  // a stream at all (a HAR file, plain JSON, an empty file named by its path: the error says which and
  // how to read it). Damaged records are skipped with a warning, never returned. A mitmproxy flow file
  // (known by its first bytes) is read whole and its flows come as `sluice import` makes them; a
  // damage in it ends its records with a warning.
  core::Result<std::optional<envelope::Record>> next();

  // Called just before each blocking read, so a consumer can flush its own output first.
  void set_before_read(std::function<void()> f) { before_read_ = std::move(f); }

  const RecordDecoder& decoder() const { return decoder_; }
  RecordDecoder& decoder() { return decoder_; }
  const std::string& name() const { return name_; }

 private:
  // "NAME is a HAR file, not a sluice stream (convert it: ...)": the decoder's fatal(), with a hint.
  std::string refusal() const;

  // A mitmproxy flow file: the rest of the input read, its header and first flow queued.
  core::Result<void> read_mitm();
  void next_mitm_flow();
  void unmap_mitm();

  int fd_;
  bool owns_fd_ = false;
  bool eof_ = false;
  std::string name_;
  RecordDecoder decoder_;
  std::string buf_;
  std::function<void()> before_read_;
  std::string seen_;  // what was fed while the decoder had not yet decided what the input is
  bool decided_ = false;
  std::deque<envelope::Record> foreign_records_;
  bool foreign_read_ = false;
  std::function<void(const std::string&)> on_warning_;
  std::string mitm_data_;       // a mitmproxy flow file, read whole from a pipe
  std::string_view mitm_map_;   // ... or a file, mapped
  std::string_view mitm_view_;  // the one of them it is
  size_t mitm_pos_ = 0;
  exporter::MitmImport mitm_;
  bool mitm_done_ = false;
};

}  // namespace sluice::stream
