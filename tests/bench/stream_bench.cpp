// Encode and decode throughput of 1 KiB-body HTTP envelopes, per core (one thread), for each stream
// form, with jq decoding the same JSONL as the anchor. Usage: sluice_bench_stream [N] [--anchor]
// Prints a Markdown table; tests/bench/RESULTS.md keeps the figures.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "support/sample_records.hpp"
#include "support/stream_helpers.hpp"

using namespace sluice;
using Clock = std::chrono::steady_clock;

namespace {
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Best of `reps` runs of f(), in seconds.
template <typename F>
double best_of(int reps, F&& f) {
  double best = 1e9;
  for (int i = 0; i < reps; ++i) {
    auto t0 = Clock::now();
    f();
    best = std::min(best, seconds_since(t0));
  }
  return best;
}
}  // namespace

int main(int argc, char** argv) {
  size_t n = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 200000;
  bool anchor = argc > 2 && std::string(argv[2]) == "--anchor";
  auto records = test_support::kib_envelopes(n);
  int devnull = ::open("/dev/null", O_WRONLY);

  std::printf("| form | encode env/s | decode env/s | encoded bytes/env |\n|---|---|---|---|\n");
  std::string jsonl_zst;
  for (auto enc : {stream::Encoding::cbor, stream::Encoding::jsonl}) {
    for (auto comp : {stream::Compression::zstd, stream::Compression::none}) {
      stream::WriterOptions o;
      o.encoding = enc;
      o.compression = comp;
      double enc_s = best_of(3, [&] {
        stream::StreamWriter w(devnull, o);
        for (const auto& r : records) (void)w.write(r);
        (void)w.flush();
      });
      std::string bytes = test_support::encode_stream(records, o);
      if (enc == stream::Encoding::jsonl && comp == stream::Compression::zstd) jsonl_zst = bytes;
      size_t decoded = 0;
      double dec_s = best_of(3, [&] {
        stream::RecordDecoder d;
        decoded = 0;
        for (size_t i = 0; i < bytes.size(); i += 1 << 18) {
          d.feed(std::string_view(bytes).substr(i, 1 << 18));
          while (d.next()) ++decoded;
        }
        d.finish();
        while (d.next()) ++decoded;
      });
      if (decoded != n) {
        std::fprintf(stderr, "decoded %zu of %zu records\n", decoded, n);
        return 1;
      }
      std::printf("| %s%s | %.0f | %.0f | %.0f |\n", std::string(stream::to_string(enc)).c_str(),
                  comp == stream::Compression::zstd ? "+zstd" : "", n / enc_s, n / dec_s,
                  static_cast<double>(bytes.size()) / n);
    }
  }
  if (anchor) {
    // The anchor: `zstdcat | jq -c .` over the same compressed JSONL.
    char path[] = "/tmp/sluice-bench-XXXXXX";
    int fd = ::mkstemp(path);
    if (fd < 0 || ::write(fd, jsonl_zst.data(), jsonl_zst.size()) != static_cast<ssize_t>(jsonl_zst.size())) return 1;
    ::close(fd);
    std::string cmd = std::string("zstd -dc ") + path + " | jq -c . > /dev/null";
    double jq_s = best_of(1, [&] {
      if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "jq anchor failed\n");
    });
    ::unlink(path);
    std::printf("\nanchor `zstdcat | jq -c .` on jsonl+zstd: %.0f env/s\n", n / jq_s);
  }
  return 0;
}
