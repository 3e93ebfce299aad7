// sluice record PATH [FILE...]: write a stream durably to a file, or to a directory of rotated segments.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <optional>

#include <CLI/CLI.hpp>

#include "common.hpp"
#include "stream/reader.hpp"
#include "stream/writer.hpp"

namespace sluice::cmd {
namespace {

struct RecordConfig {
  std::string path;
  std::vector<std::string> inputs;
  std::string rotate_size;   // empty: 256MiB in a directory, none for a file
  std::string rotate_every;  // empty: none
  std::string name = "capture-%Y%m%d-%H%M%S";
  std::string sync = "interval";
  double sync_interval = 1;
  bool tee = false;
  StreamFlags stream;  // a file: by its name; segments: the input's encoding, compressed
};

using Clock = std::chrono::steady_clock;

// "90s", "15m", "1h", "1d", or plain seconds.
std::chrono::seconds parse_duration(const std::string& text) {
  size_t end = 0;
  long long n = 0;
  while (end < text.size() && text[end] >= '0' && text[end] <= '9' && n < (1ll << 40)) n = n * 10 + (text[end++] - '0');
  std::string unit = text.substr(end);
  long long mul = unit.empty() || unit == "s" ? 1 : unit == "m" ? 60 : unit == "h" ? 3600 : unit == "d" ? 86400 : 0;
  if (end == 0 || mul == 0 || n == 0)
    throw CommandError(kUsage, "record: --rotate-every: expected a duration like 90s, 15m or 1h, got '" + text + "'");
  return std::chrono::seconds(n * mul);
}

std::string strftime_now(const std::string& pattern) {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[512];
  size_t n = std::strftime(buf, sizeof buf, pattern.c_str(), &tm);
  if (n == 0 && !pattern.empty()) throw CommandError(kUsage, "record: bad --name pattern '" + pattern + "'");
  return std::string(buf, n);
}

bool is_directory(const std::string& p) {
  struct stat st{};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

class Recorder {
 public:
  Recorder(const RecordConfig& cfg, bool directory, stream::WriterOptions wopts, uint64_t rotate_size,
           std::chrono::seconds rotate_every)
      : cfg_(cfg), directory_(directory), wopts_(wopts), rotate_size_(rotate_size), rotate_every_(rotate_every) {}
  ~Recorder() {
    if (fd_ >= 0) ::close(fd_);
  }

  void write(const envelope::Record& r) {
    if (const auto* h = std::get_if<envelope::StreamHeader>(&r)) header_ = *h;  // each segment starts with it
    if (fd_ < 0) open_segment();
    check(writer_->write(r));
    ++unsynced_;
    auto now = Clock::now();
    if (cfg_.sync == "always" || (cfg_.sync == "interval" && now - last_sync_ >= interval())) sync();
    if (rotate_every_.count() && now - opened_ >= rotate_every_) rotate();
  }

  // Called before a blocking read: what was written reaches the file (readable after a kill -9).
  void idle() {
    if (fd_ >= 0 && unsynced_ && cfg_.sync != "never") sync();
  }

  void close() {
    if (fd_ < 0) return;
    sync(true);
    if (::close(fd_) != 0) fail("cannot close " + current_);
    fd_ = -1;
  }

  const std::string& current() const { return current_; }

 private:
  std::chrono::milliseconds interval() const {
    return std::chrono::milliseconds(static_cast<int64_t>(cfg_.sync_interval * 1000));
  }

  [[noreturn]] void fail(const std::string& what) {
    throw CommandError(kFailure, "record: " + what + ": " + std::strerror(errno));
  }
  void check(const core::Result<void>& r) {
    if (!r) throw CommandError(kFailure, "record: cannot write " + current_ + ": " + r.error().message);
  }

  void sync(bool final = false) {
    check(writer_->flush());
    if ((cfg_.sync != "never" || final) && ::fdatasync(fd_) != 0 && errno != EINVAL) fail("cannot sync " + current_);
    unsynced_ = 0;
    last_sync_ = Clock::now();
    if (rotate_size_ && !final) {
      struct stat st{};
      if (::fstat(fd_, &st) == 0 && static_cast<uint64_t>(st.st_size) >= rotate_size_) rotate();
    }
  }

  void rotate() {
    close();
    open_segment();
    if (header_) check(writer_->write(envelope::Record{*header_}));
  }

  void open_segment() {
    std::string path = cfg_.path;
    if (directory_) {
      std::string ext = std::string(wopts_.encoding == stream::Encoding::cbor ? ".cbor" : ".jsonl") +
                        (wopts_.compression == stream::Compression::zstd ? ".zst" : "");
      std::string dir = cfg_.path;
      while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
      // NAME-0000, -0001, ...: names sort in the order they were written, even within one second.
      std::string base = dir + "/" + strftime_now(cfg_.name) + "-";
      for (int i = 0;; ++i) {
        char n[16];
        std::snprintf(n, sizeof n, "%04d", i);
        path = base + n + ext;
        if (::access(path.c_str(), F_OK) != 0) break;
      }
    } else {
      path = strftime_now(cfg_.path);
    }
    // A file path is written anew; segments are created exclusively so no run overwrites another.
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (directory_ ? O_EXCL : O_TRUNC);
    fd_ = ::open(path.c_str(), flags, 0600);
    if (fd_ < 0) fail("cannot create " + path);
    current_ = path;
    writer_ = std::make_unique<stream::StreamWriter>(fd_, wopts_);
    opened_ = last_sync_ = Clock::now();
  }

  const RecordConfig& cfg_;
  bool directory_;
  stream::WriterOptions wopts_;
  uint64_t rotate_size_;
  std::chrono::seconds rotate_every_;
  int fd_ = -1;
  std::string current_;
  std::unique_ptr<stream::StreamWriter> writer_;
  std::optional<envelope::StreamHeader> header_;
  Clock::time_point opened_, last_sync_;
  uint64_t unsynced_ = 0;
};


int run_record(const RecordConfig& cfg) {
  if (cfg.path == "-")
    throw CommandError(kUsage, "record: PATH is where the stream is written, and '-' names no file: give a file or "
                               "a directory (sluice record capture.zst, sluice record captures/); the stream is read "
                               "from standard input");
  // The copy on standard output follows the rules of any stream written there (plain JSONL to a pipe or
  // a terminal, CBOR on request but never to a terminal), judged before anything is read or created.
  std::optional<stream::WriterOptions> tee_options;
  if (cfg.tee) tee_options = stream_options("-", 1, {cfg.stream.format}, "record");

  bool directory = is_directory(cfg.path) || (!cfg.path.empty() && cfg.path.back() == '/');
  if (directory && !is_directory(cfg.path)) {
    if (::mkdir(cfg.path.c_str(), 0700) != 0)
      throw CommandError(kFailure, "record: cannot create directory " + cfg.path + ": " + std::strerror(errno));
  }
  if (directory && ::access(cfg.path.c_str(), W_OK) != 0)
    throw CommandError(kFailure, "record: cannot write to " + cfg.path + ": " + std::strerror(errno));
  if (!directory && (!cfg.rotate_size.empty() || !cfg.rotate_every.empty()))
    throw CommandError(kUsage, "record: rotation needs a directory (end PATH with '/')");
  uint64_t rotate_size = cfg.rotate_size.empty() ? (directory ? 256ull << 20 : 0) : parse_size(cfg.rotate_size, "record: --rotate-size");
  auto rotate_every = cfg.rotate_every.empty() ? std::chrono::seconds(0) : parse_duration(cfg.rotate_every);

  std::unique_ptr<Recorder> out;
  std::unique_ptr<stream::StreamWriter> tee;
  auto flush_tee = [&] {
    if (!tee) return;
    if (auto r = tee->flush(); !r) {
      if (tee->broken_pipe()) {
        tee.reset();  // the reader of our copy went away; the recording goes on
        return;
      }
      throw CommandError(kFailure, "record: cannot write standard output: " + r.error().message);
    }
  };
  read_records(
      cfg.inputs, "record",
      [&](envelope::Record&& r, const stream::StreamReader& reader) {
        if (!out) {
          auto input = reader.decoder().encoding().value_or(stream::Encoding::jsonl);
          stream::WriterOptions w = stream_options(directory ? std::string() : cfg.path, -1, cfg.stream, "record",
                                                   directory ? input : stream::Encoding::jsonl, directory);
          out = std::make_unique<Recorder>(cfg, directory, w, rotate_size, rotate_every);
          if (tee_options) tee = std::make_unique<stream::StreamWriter>(1, *tee_options);
        }
        out->write(r);
        if (tee && !tee->write(r)) flush_tee();
      },
      [&] {
        if (out) out->idle();
        flush_tee();
      });
  if (out) out->close();
  flush_tee();
  return kOk;
}

}  // namespace

void setup_record(CLI::App& app, CommandRunner& run) {
  auto cfg = std::make_shared<RecordConfig>();
  auto* sub = app.add_subcommand("record", "Write a stream durably to a file or a directory of rotated segments");
  sub->add_option("path", cfg->path, "A file, or a directory (existing, or ending in '/') of segments")->required();
  sub->add_option("files", cfg->inputs, "Streams to read ('-' or none: standard input)");
  sub->add_option("--rotate-size", cfg->rotate_size, "Start a new segment past this size (default 256MiB)");
  sub->add_option("--rotate-every", cfg->rotate_every, "Start a new segment this often: 90s, 15m, 1h, 1d");
  sub->add_option("--name", cfg->name, "strftime pattern of segment names (default capture-%Y%m%d-%H%M%S)");
  sub->add_option("--sync", cfg->sync, "always: every record; interval (default): every --sync-interval; never")
      ->check(CLI::IsMember({"always", "interval", "never"}));
  sub->add_option("--sync-interval", cfg->sync_interval, "Seconds between syncs with --sync interval (default 1)")
      ->check(CLI::Range(0.001, 86400.0));
  sub->add_flag("--tee", cfg->tee, "Also pass the stream on to standard output");
  add_stream_flags(sub, cfg->stream);
  sub->callback([&run, cfg] { run = [cfg] { return run_record(*cfg); }; });
}

}  // namespace sluice::cmd
