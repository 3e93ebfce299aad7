// sluice import FILE: a HAR file (Chrome, Firefox, mitmproxy, sluice) or a mitmproxy flow file turned
// into a stream.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include <CLI/CLI.hpp>

#include "common.hpp"
#include "export/export.hpp"
#include "export/mitm.hpp"
#include "stream/writer.hpp"

namespace sluice::cmd {
namespace {

struct ImportConfig {
  std::string input;
  StreamFlags stream;
  std::string write = "-";
};

int run_import(const ImportConfig& cfg) {
  std::string read;       // a pipe's bytes
  std::string_view text;  // the input: a regular file mapped, or what was read
  struct Mapping {
    void* at = MAP_FAILED;
    size_t size = 0;
    ~Mapping() {
      if (at != MAP_FAILED) ::munmap(at, size);
    }
  } mapping;
  {
    int in = cfg.input == "-" ? 0 : ::open(cfg.input.c_str(), O_RDONLY | O_CLOEXEC);
    if (in < 0) throw CommandError(kUsage, "import: cannot read " + cfg.input + ": " + std::strerror(errno));
    struct stat st {};
    if (::fstat(in, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
      mapping.size = static_cast<size_t>(st.st_size);
      mapping.at = ::mmap(nullptr, mapping.size, PROT_READ, MAP_PRIVATE, in, 0);
      if (mapping.at != MAP_FAILED) ::madvise(mapping.at, mapping.size, MADV_SEQUENTIAL);
    }
    char buf[1 << 16];
    while (mapping.at == MAP_FAILED) {
      ssize_t n = ::read(in, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw CommandError(kUsage, "import: cannot read " + cfg.input + ": " + std::strerror(errno));
      if (n == 0) break;
      read.append(buf, static_cast<size_t>(n));
    }
    if (in != 0) ::close(in);
    text = mapping.at != MAP_FAILED ? std::string_view(static_cast<const char*>(mapping.at), mapping.size)
                                    : std::string_view(read);
  }
  std::optional<stream::StreamWriter> writer;
  int fd = -1;
  bool stopped = false;  // the output refused a record: nothing more is written
  auto write = [&](envelope::Record&& r) {
    if (!writer) {
      fd = open_output(cfg.write, "import");
      writer.emplace(fd, stream_options(cfg.write, fd, cfg.stream, "import"));
    }
    if (!stopped && !writer->write(r)) stopped = true;
  };
  std::string damage;
  if (exporter::looks_like_mitm(text)) {  // a mitmproxy flow file, by its first bytes
    // Records are written as they are made; the header waits for the first flow, so that a file that
    // is no flow file at all leaves no output behind.
    std::optional<envelope::Record> header;
    exporter::MitmImport got = exporter::from_mitm(text, [&](envelope::Record&& r) {
      if (std::holds_alternative<envelope::StreamHeader>(r)) {
        header = std::move(r);
        return;
      }
      if (header) write(*std::exchange(header, std::nullopt));
      write(std::move(r));
    });
    if (got.flows == 0 && !got.error.empty())
      throw CommandError(kUsage, "import: " + cfg.input + ": not a mitmproxy flow file: " + got.error);
    if (header) write(std::move(*header));
    if (got.skipped_dns)
      std::fprintf(stderr, "sluice: import: %zu DNS flows left out (the stream has no DNS message)\n", got.skipped_dns);
    damage = got.error;
  } else {
    auto har = exporter::from_har(text);
    if (!har) throw CommandError(kUsage, "import: " + cfg.input + ": " + har.error().message);
    for (auto& r : *har) write(std::move(r));
  }
  if (!writer) write(envelope::StreamHeader{});  // (never: every import has its header)
  if (auto r = writer->flush(); !r) {
    if (writer->broken_pipe()) throw BrokenPipe{};
    throw CommandError(kFailure, "import: cannot write output: " + r.error().message);
  }
  if (fd != 1) ::close(fd);
  if (!damage.empty()) {  // every complete flow before it was written
    std::fprintf(stderr, "sluice: import: %s: damaged or cut short: %s\n", cfg.input.c_str(), damage.c_str());
    return kUsage;
  }
  return kOk;
}

}  // namespace

void setup_import(CLI::App& app, CommandRunner& run) {
  auto icfg = std::make_shared<ImportConfig>();
  auto* imp = app.add_subcommand("import", "Turn a HAR file or a mitmproxy flow file into a stream");
  imp->add_option("file", icfg->input, "The HAR or mitmproxy flow file ('-': standard input)")->required();
  add_stream_flags(imp, icfg->stream);
  imp->add_option("-w,--write", icfg->write, "Write to PATH instead of standard output ('-')");
  imp->callback([&run, icfg] { run = [icfg] { return run_import(*icfg); }; });
}

}  // namespace sluice::cmd
