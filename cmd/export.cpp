// sluice export --format har|curl|httpie|raw [FILE...]: the HTTP exchanges of a capture in other tools'
// formats.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <CLI/CLI.hpp>

#include "common.hpp"
#include "core/json.hpp"
#include "export/export.hpp"
#include "stream/reader.hpp"

namespace sluice::cmd {
namespace {

struct ExportConfig {
  std::string format = "har";
  std::vector<std::string> inputs;
  std::string write = "-";
};

int run_export(const ExportConfig& cfg) {
  exporter::Collector collector;
  read_records(cfg.inputs, "export",
               [&](envelope::Record&& r, const stream::StreamReader&) { collector.add(std::move(r)); });
  int fd = open_output(cfg.write, "export");
  Output out(fd);
  auto exchanges = collector.exchanges();
  if (cfg.format == "har") {
    out.line(core::json_write(exporter::to_har(exchanges, SLUICE_VERSION)));
  } else {
    for (const auto& x : exchanges) {
      const auto& q = std::get<envelope::HttpMessage>(x.request->message);
      if (cfg.format == "raw") {
        out.write(x.request->raw);
      } else {
        out.line("# " + x.request->flow_id + ": " + q.method + " " + envelope::url_of(q));
        out.line(cfg.format == "curl" ? exporter::to_curl(q) : exporter::to_httpie(q));
      }
    }
  }
  out.flush();
  if (fd != 1) ::close(fd);
  return exchanges.empty() ? kDifference : kOk;
}

}  // namespace

void setup_export(CLI::App& app, CommandRunner& run) {
  auto cfg = std::make_shared<ExportConfig>();
  auto* sub = app.add_subcommand("export", "Write the HTTP exchanges of a capture as HAR, curl or HTTPie commands, or raw");
  sub->add_option("--format", cfg->format, "har (default), curl, httpie or raw")
      ->check(CLI::IsMember({"har", "curl", "httpie", "raw"}));
  sub->add_option("files", cfg->inputs, "Captures to read ('-' or none: standard input)");
  sub->add_option("-w,--write", cfg->write, "Write to PATH instead of standard output ('-')");
  sub->callback([&run, cfg] { run = [cfg] { return run_export(*cfg); }; });

}

}  // namespace sluice::cmd
