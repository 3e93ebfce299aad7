// sluice import FILE: a HAR file (Chrome, Firefox, mitmproxy, sluice) turned into a stream.
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
  auto records = exporter::from_har(text);
  if (!records) throw CommandError(kUsage, "import: " + cfg.input + ": " + records.error().message);
  int fd = open_output(cfg.write, "import");
  stream::StreamWriter writer(fd, stream_options(cfg.write, fd, cfg.stream, "import"));
  for (const auto& r : *records) {
    if (auto ok = writer.write(r); !ok) break;
  }
  if (auto r = writer.flush(); !r) {
    if (writer.broken_pipe()) throw BrokenPipe{};
    throw CommandError(kFailure, "import: cannot write output: " + r.error().message);
  }
  if (fd != 1) ::close(fd);
  return kOk;
}

}  // namespace

void setup_import(CLI::App& app, CommandRunner& run) {
  auto icfg = std::make_shared<ImportConfig>();
  auto* imp = app.add_subcommand("import", "Turn a HAR file (Chrome, Firefox, mitmproxy, sluice) into a stream");
  imp->add_option("file", icfg->input, "The HAR file ('-': standard input)")->required();
  add_stream_flags(imp, icfg->stream);
  imp->add_option("-w,--write", icfg->write, "Write to PATH instead of standard output ('-')");
  imp->callback([&run, icfg] { run = [icfg] { return run_import(*icfg); }; });
}

}  // namespace sluice::cmd
