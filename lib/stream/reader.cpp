#include "stream/reader.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

#include "stream/fd_io.hpp"

namespace sluice::stream {

namespace {
std::function<void(const std::string&)> default_warning(const std::string& name) {
  return [name](const std::string& w) { std::fprintf(stderr, "sluice: %s: %s\n", name.c_str(), w.c_str()); };
}
}  // namespace

StreamReader::StreamReader(int fd, std::string name, std::function<void(const std::string&)> on_warning)
    : fd_(fd), name_(std::move(name)), decoder_(on_warning ? std::move(on_warning) : default_warning(name_)) {}

StreamReader::~StreamReader() {
  if (owns_fd_) ::close(fd_);
}

core::Result<std::unique_ptr<StreamReader>> StreamReader::open(const std::string& path,
                                                               std::function<void(const std::string&)> on_warning) {
  if (path == "-") return std::make_unique<StreamReader>(STDIN_FILENO, "<stdin>", std::move(on_warning));
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return core::make_error("cannot open " + path + ": " + std::strerror(errno));
  auto r = std::make_unique<StreamReader>(fd, path, std::move(on_warning));
  r->owns_fd_ = true;
  return r;
}

std::string StreamReader::refusal() const {
  std::string what = name_ + " is " + *decoder_.fatal();
  switch (decoder_.foreign()) {
    case RecordDecoder::Foreign::har:
      return what + " (convert it: sluice import " + (owns_fd_ ? name_ : std::string("-")) + ")";
    case RecordDecoder::Foreign::mitmproxy:
      return what + " (sluice cannot read mitmproxy's own format yet; save the flows as HAR in mitmproxy and "
                    "run sluice import on that)";
    default:
      return what;
  }
}

core::Result<std::optional<envelope::Record>> StreamReader::next() {
  while (true) {
    if (auto r = decoder_.next()) return std::optional<envelope::Record>(std::move(*r));
    if (decoder_.fatal()) return core::make_error(refusal());
    if (eof_) {
      if (owns_fd_ && !decoder_.saw_data()) return core::make_error(name_ + " is empty, not a sluice stream");
      return std::optional<envelope::Record>();
    }
    if (before_read_) before_read_();
    buf_.resize(1u << 18);
    ssize_t n = read_some(fd_, buf_.data(), buf_.size());
    if (n < 0) return core::make_error("cannot read " + name_ + ": " + std::strerror(errno));
    if (n == 0) {
      eof_ = true;
      decoder_.finish();
      continue;
    }
    decoder_.feed(core::ByteView(buf_.data(), static_cast<size_t>(n)));
  }
}

}  // namespace sluice::stream
