// sluice import FILE: a HAR file (Chrome, Firefox, mitmproxy, sluice) or a mitmproxy flow file turned
// into a stream.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

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
  std::string text;
  if (cfg.input == "-") {
    std::ostringstream s;
    s << std::cin.rdbuf();
    text = s.str();
  } else {
    std::ifstream f(cfg.input, std::ios::binary);
    if (!f) throw CommandError(kUsage, "import: cannot read " + cfg.input + ": " + std::strerror(errno));
    std::ostringstream s;
    s << f.rdbuf();
    text = s.str();
  }
  std::vector<envelope::Record> records;
  std::string damage;
  if (exporter::looks_like_mitm(text)) {  // a mitmproxy flow file, by its first bytes
    exporter::MitmImport got = exporter::from_mitm(text);
    if (got.flows == 0 && !got.error.empty())
      throw CommandError(kUsage, "import: " + cfg.input + ": not a mitmproxy flow file: " + got.error);
    if (got.skipped_dns)
      std::fprintf(stderr, "sluice: import: %zu DNS flows left out (the stream has no DNS message)\n", got.skipped_dns);
    records = std::move(got.records);
    damage = got.error;
  } else {
    auto har = exporter::from_har(text);
    if (!har) throw CommandError(kUsage, "import: " + cfg.input + ": " + har.error().message);
    records = std::move(*har);
  }
  int fd = open_output(cfg.write, "import");
  stream::StreamWriter writer(fd, stream_options(cfg.write, fd, cfg.stream, "import"));
  for (const auto& r : records) {
    if (auto ok = writer.write(r); !ok) break;
  }
  if (auto r = writer.flush(); !r) {
    if (writer.broken_pipe()) throw BrokenPipe{};
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
