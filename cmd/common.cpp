#include "common.hpp"

#include <unistd.h>

#include "stream/fd_io.hpp"

namespace sluice::cmd {

Output::~Output() {
  try {
    flush();
  } catch (...) {
    // Destructors must not throw; a failed final flush was already reported or is a broken pipe.
  }
}

void Output::write(std::string_view s) {
  buf_.append(s);
  if (buf_.size() >= (1u << 16)) flush();
}

void Output::flush() {
  if (buf_.empty()) return;
  auto r = stream::write_all(fd_, buf_);
  buf_.clear();
  if (!r) {
    if (stream::last_error_was_broken_pipe()) throw BrokenPipe{};
    throw CommandError(kFailure, "cannot write output: " + r.error().message);
  }
}

bool is_terminal(int fd) { return ::isatty(fd) == 1; }

}  // namespace sluice::cmd
