#include "stream/reader.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stream/fd_io.hpp"

namespace sluice::stream {

namespace {
std::function<void(const std::string&)> default_warning(const std::string& name) {
  return [name](const std::string& w) { std::fprintf(stderr, "sluice: %s: %s\n", name.c_str(), w.c_str()); };
}
}  // namespace

StreamReader::StreamReader(int fd, std::string name, std::function<void(const std::string&)> on_warning)
    : fd_(fd),
      name_(std::move(name)),
      decoder_(on_warning ? on_warning : default_warning(name_)),
      on_warning_(on_warning ? std::move(on_warning) : default_warning(name_)) {}

StreamReader::~StreamReader() {
  unmap_mitm();
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
    default:
      return what;
  }
}

core::Result<void> StreamReader::read_mitm() {
  foreign_read_ = true;
  struct stat st {};
  if (::fstat(fd_, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {  // a file: mapped, not copied
    void* at = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd_, 0);
    if (at != MAP_FAILED) {
      ::madvise(at, static_cast<size_t>(st.st_size), MADV_SEQUENTIAL);
      mitm_map_ = std::string_view(static_cast<const char*>(at), static_cast<size_t>(st.st_size));
      mitm_view_ = mitm_map_;
      eof_ = true;
    }
  }
  if (mitm_map_.empty()) mitm_data_ = std::move(seen_);
  seen_.clear();
  std::string chunk(1u << 18, '\0');
  while (!eof_) {
    ssize_t n = read_some(fd_, chunk.data(), chunk.size());
    if (n < 0) return core::make_error("cannot read " + name_ + ": " + std::strerror(errno));
    if (n == 0) break;
    mitm_data_.append(chunk.data(), static_cast<size_t>(n));
  }
  eof_ = true;
  if (mitm_map_.empty()) mitm_view_ = mitm_data_;
  foreign_records_.push_back(exporter::mitm_header());
  next_mitm_flow();
  if (mitm_.flows == 0 && !mitm_.error.empty())
    return core::make_error(name_ + " is not a mitmproxy flow file after all: " + mitm_.error);
  return {};
}

// The next flow's records queued (a flow at a time: memory stays that of the file); at the end, what
// was left out or damaged said once.
void StreamReader::next_mitm_flow() {
  auto queue = [this](envelope::Record&& r) { foreign_records_.push_back(std::move(r)); };
  if (mitm_pos_ < mitm_view_.size() && exporter::mitm_next_flow(mitm_view_, mitm_pos_, mitm_, queue)) return;
  if (mitm_done_) return;
  mitm_done_ = true;
  if (mitm_.skipped_dns) on_warning_(std::to_string(mitm_.skipped_dns) + " DNS flows left out (the stream has no DNS message)");
  if (!mitm_.error.empty() && mitm_.flows > 0) on_warning_("damaged or cut short mitmproxy flow file: " + mitm_.error);
  unmap_mitm();
  mitm_data_.clear();
  mitm_data_.shrink_to_fit();
}

void StreamReader::unmap_mitm() {
  if (!mitm_map_.empty()) ::munmap(const_cast<char*>(mitm_map_.data()), mitm_map_.size());
  mitm_map_ = {};
  mitm_view_ = {};
}

core::Result<std::optional<envelope::Record>> StreamReader::next() {
  while (true) {
    if (!foreign_records_.empty()) {
      envelope::Record r = std::move(foreign_records_.front());
      foreign_records_.pop_front();
      return std::optional<envelope::Record>(std::move(r));
    }
    if (foreign_read_) {
      if (mitm_done_) return std::optional<envelope::Record>();
      next_mitm_flow();
      continue;
    }
    if (auto r = decoder_.next()) {
      decided_ = true;
      seen_.clear();
      return std::optional<envelope::Record>(std::move(*r));
    }
    if (decoder_.fatal() && decoder_.foreign() == RecordDecoder::Foreign::mitmproxy) {
      if (auto ok = read_mitm(); !ok) return ok.error();
      continue;
    }
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
    if (!decided_) {  // (a mitmproxy flow file is read whole from its first byte)
      seen_.append(buf_.data(), static_cast<size_t>(n));
      if (seen_.size() > (1u << 20)) decided_ = true;  // the decoder decides within its first bytes
    }
    decoder_.feed(core::ByteView(buf_.data(), static_cast<size_t>(n)));
  }
}

}  // namespace sluice::stream
