#include "stream/fd_io.hpp"

#include <cerrno>
#include <cstring>
#include <unistd.h>

namespace sluice::stream {
namespace {
thread_local bool g_broken_pipe = false;
}

core::Result<void> write_all(int fd, core::ByteView data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      g_broken_pipe = errno == EPIPE;
      return core::make_error(std::strerror(errno));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

ssize_t read_some(int fd, char* buf, size_t cap) {
  while (true) {
    ssize_t n = ::read(fd, buf, cap);
    if (n < 0 && errno == EINTR) continue;
    return n;
  }
}

bool last_error_was_broken_pipe() { return g_broken_pipe; }

}  // namespace sluice::stream
