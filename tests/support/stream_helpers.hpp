#pragma once
// Encode records to an in-memory stream and decode them back, for stream tests and fuzzers.
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "stream/decoder.hpp"
#include "stream/writer.hpp"

namespace sluice::test_support {

// Writes `records` through a real StreamWriter into a temporary file and returns its bytes.
// `flush_every` > 0 flushes (ends a zstd frame) after that many records.
// `in_pieces` writes each record with write_in_pieces() instead of write().
inline std::string encode_stream(const std::vector<envelope::Record>& records, stream::WriterOptions opts,
                                 size_t flush_every = 0, bool in_pieces = false) {
  std::FILE* f = std::tmpfile();
  {
    stream::StreamWriter w(fileno(f), opts);
    size_t n = 0;
    for (const auto& r : records) {
      if (!(in_pieces ? w.write_in_pieces(r) : w.write(r))) std::abort();
      if (flush_every && ++n % flush_every == 0) (void)w.flush();
    }
    (void)w.flush();
  }
  std::fflush(f);
  std::string out;
  std::rewind(f);
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

struct Decoded {
  std::vector<envelope::Record> records;
  std::vector<std::string> warnings;
  std::optional<std::string> fatal;
};

// Feeds `bytes` in chunks of `chunk` bytes (0 = all at once).
inline Decoded decode_stream(std::string_view bytes, size_t chunk = 0) {
  Decoded d;
  stream::RecordDecoder dec([&](const std::string& w) { d.warnings.push_back(w); });
  if (chunk == 0) chunk = bytes.size() ? bytes.size() : 1;
  for (size_t i = 0; i < bytes.size(); i += chunk) {
    dec.feed(bytes.substr(i, chunk));
    while (auto r = dec.next()) d.records.push_back(std::move(*r));
  }
  dec.finish();
  while (auto r = dec.next()) d.records.push_back(std::move(*r));
  d.fatal = dec.fatal();
  return d;
}

}  // namespace sluice::test_support
