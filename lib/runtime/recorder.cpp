#include "runtime/recorder.hpp"

#include <pthread.h>

#include "stream/fd_io.hpp"
#include "view/summary.hpp"

namespace sluice::runtime {

namespace {
constexpr size_t kMaxQueued = 8u << 20;  // encoded bytes waiting for the writer; producers wait past it
}

Recorder::Recorder(int fd, Mode mode, stream::WriterOptions options, std::function<void()> on_broken_pipe,
                   int summary_fd)
    : fd_(fd), mode_(mode), summary_fd_(mode == Mode::summary ? fd : summary_fd), options_(options),
      on_broken_pipe_(std::move(on_broken_pipe)) {
  thread_ = std::thread([this] { run(); });
}

Recorder::~Recorder() { (void)close(); }

void Recorder::record(const envelope::Envelope& e) {
  if (before_)
    record(envelope::Record{e});
  else
    record_any(e);
}
void Recorder::record(const envelope::Record& r) {
  if (before_)
    record(envelope::Record{r});
  else
    record_any(r);
}

void Recorder::record(envelope::Record&& r) {
  if (before_ && !before_(r)) return;
  // A record with large bodies is handed over whole and written in pieces by the writer thread, so
  // that it never also exists encoded in one piece (a 16 MiB body is ~21 MiB of JSON).
  const auto* e = std::get_if<envelope::Envelope>(&r);
  size_t big = 0;
  if (e) {
    big = e->raw.size();
    if (const auto* m = std::get_if<envelope::HttpMessage>(&e->message)) big += m->body.size();
  }
  if (mode_ != Mode::stream || options_.encoding != stream::Encoding::jsonl || big < kInPieces) {
    record_any(r);
    return;
  }
  push({}, std::make_unique<envelope::Record>(std::move(r)), big);
}

template <typename R>
void Recorder::record_any(const R& r) {
  std::string encoded;
  if (mode_ == Mode::stream) {
    if constexpr (std::is_same_v<R, envelope::Envelope>)
      stream::encode_envelope(r, options_.encoding, encoded, {options_.inline_bodies});
    else
      stream::encode_record(r, options_.encoding, encoded, {options_.inline_bodies});
  }
  size_t size = encoded.size();
  push(std::move(encoded), summary_fd_ >= 0 ? std::make_unique<envelope::Record>(r) : nullptr, size);
}

void Recorder::push(std::string encoded, std::unique_ptr<envelope::Record> record, size_t size) {
  std::unique_lock lock(mu_);
  space_.wait(lock, [&] { return queued_bytes_ < kMaxQueued || dead_ || closing_; });
  if (dead_) return;
  queued_bytes_ += size;
  bool whole = mode_ == Mode::stream && encoded.empty() && record;
  queue_.push_back(Item{std::move(encoded), std::move(record), whole});
  // Wake the writer only when it sleeps: a signal per record costs a context switch per record.
  if (writer_waiting_) ready_.notify_one();
}

void Recorder::run() {
  pthread_setname_np(pthread_self(), "sluice-writer");  // as top -H and perf show it
  stream::StreamWriter writer(fd_, options_);
  std::string out;
  view::FlowSummarizer summary(
      [&](const std::string& line) {
        out += line;
        out += '\n';
      },
      100000, summary_fd_ >= 0 && view::use_color(summary_fd_));
  auto fail = [&](const std::string& message, bool broken_pipe) {
    std::lock_guard lock(mu_);
    dead_ = true;
    error_ = message;
    queue_.clear();
    queued_bytes_ = 0;
    space_.notify_all();
    return broken_pipe;
  };
  auto last_flush = std::chrono::steady_clock::now();
  while (true) {
    std::deque<Item> batch;
    {
      std::unique_lock lock(mu_);
      writer_waiting_ = true;
      ready_.wait(lock, [&] { return !queue_.empty() || closing_; });
      writer_waiting_ = false;
      if (queue_.empty() && closing_) break;
      batch.swap(queue_);
      queued_bytes_ = 0;
      space_.notify_all();
    }
    bool broken = false;
    bool failed = false;
    for (auto& item : batch) {
      if (item.record && summary_fd_ >= 0) summary.add(*item.record);
      if (mode_ == Mode::summary) continue;
      if (auto r = item.whole ? writer.write_in_pieces(*item.record) : writer.write_encoded(item.encoded); !r) {
        broken = fail(r.error().message, writer.broken_pipe());
        failed = true;
        break;
      }
    }
    if (!failed) {
      // Idle now: flush so the consumer sees what we have. Each flush ends a zstd frame, so under load
      // the writer lingers a moment for more records first, and flushes at least every kMaxFlushDelay.
      bool more;
      {
        std::unique_lock lock(mu_);
        // Not marked waiting: producers need not signal a linger, it ends by itself.
        ready_.wait_for(lock, kLinger, [&] { return closing_; });
        more = !queue_.empty();
      }
      auto now = std::chrono::steady_clock::now();
      if (!more || now - last_flush > kMaxFlushDelay) {
        last_flush = now;
        if (!out.empty()) {
          if (before_summary_) before_summary_();
          auto r = stream::write_all(summary_fd_, out);
          out.clear();
          if (!r && mode_ == Mode::summary) broken = fail(r.error().message, stream::last_error_was_broken_pipe()), failed = true;
        }
        if (mode_ == Mode::summary) {
        } else if (auto r = writer.flush(); !r) {
          broken = fail(r.error().message, writer.broken_pipe());
          failed = true;
        }
      }
    }
    if (failed) {
      if (broken && on_broken_pipe_) on_broken_pipe_();
      break;
    }
  }
  if (summary_fd_ >= 0 && !dead_) {
    summary.finish();
    if (!out.empty() && before_summary_) before_summary_();
    (void)stream::write_all(summary_fd_, out);
  }
  if (mode_ == Mode::stream) (void)writer.flush();
}

core::Result<void> Recorder::close() {
  {
    std::lock_guard lock(mu_);
    closing_ = true;
    ready_.notify_all();
    space_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mu_);
  if (dead_) return core::make_error(error_);
  return {};
}

}  // namespace sluice::runtime
