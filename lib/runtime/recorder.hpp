#pragma once
// Recorder: the stream sink of `sluice proxy`. Any thread hands it records; they are encoded on the
// calling thread (so encoding scales with the I/O threads) and written, in arrival order, by one writer
// thread that flushes when it runs out of work (after a 2 ms linger, and at least every 50 ms under
// load, since every flush ends a zstd frame), so a reader at the other end of a pipe sees each
// record within milliseconds. On a terminal it prints one summary line per flow instead.
//
// Records are never dropped: when the output is slower than the traffic, producers block once 16 MiB
// waits (the proxy slows down rather than lose records).
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "envelope/record.hpp"
#include "stream/writer.hpp"

namespace sluice::view {
class FlowSummarizer;
}

namespace sluice::runtime {

class Recorder {
 public:
  enum class Mode : uint8_t { stream, summary };
  // `fd` is borrowed. `on_broken_pipe` runs once, on the writer thread, when the reader went away.
  // In stream mode, `summary_fd` >= 0 also gets the summary lines (a terminal beside `-w FILE`).
  Recorder(int fd, Mode mode, stream::WriterOptions options, std::function<void()> on_broken_pipe = {},
           int summary_fd = -1);
  ~Recorder();

  void record(const envelope::Envelope& e);
  void record(const envelope::Record& r);
  void record(envelope::Record&& r);  // large envelopes are written in pieces by the writer thread
  // Runs on the writer thread just before summary lines are written (a progress line on the same
  // terminal clears itself). Set before the first record.
  void set_before_summary(std::function<void()> f) { before_summary_ = std::move(f); }
  // Runs on each record before it is encoded, on the calling thread: it may change the record
  // (`--redact`: what is recorded, never what is sent) or leave it out by returning false
  // (`--scope-filter`). Set before the first record.
  void set_before(std::function<bool(envelope::Record&)> f) { before_ = std::move(f); }
  // Writes everything queued, flushes and stops the writer thread. Idempotent.
  core::Result<void> close();

 private:
  template <typename R>
  void record_any(const R& r);  // encodes on the calling thread
  void push(std::string encoded, std::unique_ptr<envelope::Record> record, size_t size);
  static constexpr size_t kInPieces = 1u << 20;  // raw + body bytes from which a record is written in pieces
  void run();

  int fd_;
  Mode mode_;
  int summary_fd_;
  stream::WriterOptions options_;
  std::function<void()> on_broken_pipe_;
  std::function<void()> before_summary_;
  std::function<bool(envelope::Record&)> before_;
  std::mutex mu_;
  std::condition_variable ready_, space_;
  struct Item {
    std::string encoded;                      // stream mode
    std::unique_ptr<envelope::Record> record;  // summary lines; or the record itself when `whole`
    bool whole = false;                        // encode `record` on the writer thread, in pieces
  };
  std::deque<Item> queue_;
  size_t queued_bytes_ = 0;
  bool closing_ = false;
  bool writer_waiting_ = false;  // the writer sleeps until signalled (not lingering)
  static constexpr std::chrono::milliseconds kLinger{2};
  static constexpr std::chrono::milliseconds kMaxFlushDelay{50};
  bool dead_ = false;  // output failed: records are discarded from now on, and the error is kept
  std::string error_;
  std::thread thread_;
};

}  // namespace sluice::runtime
