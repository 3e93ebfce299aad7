#pragma once
// Blocking file-descriptor I/O used by the stream reader and writer (not by the proxy's sockets).
#include <sys/types.h>

#include "core/bytes.hpp"
#include "core/result.hpp"

namespace sluice::stream {

// Writes all of `data`, retrying on EINTR and short writes. Error text names the errno
// ("broken pipe", "no space left on device").
core::Result<void> write_all(int fd, core::ByteView data);
// Reads up to `cap` bytes; 0 at end of file, -1 on error (errno set).
ssize_t read_some(int fd, char* buf, size_t cap);
// True when the last write_all failure on this thread was EPIPE.
bool last_error_was_broken_pipe();

}  // namespace sluice::stream
