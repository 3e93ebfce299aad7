// sluice export --format har|mitmproxy|curl|httpie|raw [FILE...]: the HTTP exchanges of a capture in
// other tools' formats.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include <CLI/CLI.hpp>

#include "common.hpp"
#include "core/json.hpp"
#include "export/export.hpp"
#include "export/mitm.hpp"
#include "stream/reader.hpp"

namespace sluice::cmd {
namespace {

struct ExportConfig {
  std::string format = "har";
  std::vector<std::string> inputs;
  std::string write = "-";
};

// HAR and mitmproxy's flow files need every exchange whole: the capture is read to its end first.
int export_whole(const ExportConfig& cfg) {
  exporter::Collector collector;
  read_records(cfg.inputs, "export",
               [&](envelope::Record&& r, const stream::StreamReader&) { collector.add(std::move(r)); });
  bool mitm = cfg.format == "mitmproxy";
  if (mitm && cfg.write == "-" && ::isatty(1))
    throw CommandError(kUsage, "export: a mitmproxy flow file is binary: not written to a terminal (use -w FILE)");
  int fd = open_output(cfg.write, "export");
  auto exchanges = collector.exchanges();
  {
    Output out(fd);
    if (mitm)
      out.write(exporter::to_mitm(exchanges));
    else
      out.line(core::json_write(exporter::to_har(exchanges, SLUICE_VERSION)));
    out.flush();
  }
  if (fd != 1) ::close(fd);
  return exchanges.empty() ? kDifference : kOk;
}

// Requests alone: each goes out as it comes, so a live pipe (`sluice proxy | sluice export --format
// curl`) sees it at once. The output is opened at the first one (or at the end), so a capture that
// cannot be read leaves no file behind.
int export_requests(const ExportConfig& cfg) {
  exporter::RequestPicker picker;
  std::optional<Output> out;
  int fd = -1;
  size_t n = 0;
  auto opened = [&]() -> Output& {
    if (!out) out.emplace(fd = open_output(cfg.write, "export"));
    return *out;
  };
  read_records(
      cfg.inputs, "export",
      [&](envelope::Record&& r, const stream::StreamReader&) {
        const envelope::Envelope* e = picker.pick(r);
        if (!e) return;
        ++n;
        const auto& q = std::get<envelope::HttpMessage>(e->message);
        if (cfg.format == "raw") {
          opened().write(e->raw);
          return;
        }
        opened().line("# " + e->flow_id + ": " + q.method + " " + envelope::url_of(q));
        opened().line(cfg.format == "curl" ? exporter::to_curl(q) : exporter::to_httpie(q));
      },
      [&] {
        if (out) out->flush();
      });
  opened().flush();
  out.reset();
  if (fd != 1) ::close(fd);
  return n == 0 ? kDifference : kOk;
}

int run_export(const ExportConfig& cfg) {
  return cfg.format == "har" || cfg.format == "mitmproxy" ? export_whole(cfg) : export_requests(cfg);
}

}  // namespace

void setup_export(CLI::App& app, CommandRunner& run) {
  auto cfg = std::make_shared<ExportConfig>();
  auto* sub = app.add_subcommand(
      "export", "Write the HTTP exchanges of a capture as HAR, a mitmproxy flow file, curl or HTTPie commands, or raw");
  sub->add_option("--format", cfg->format, "har (default), mitmproxy, curl, httpie or raw")
      ->check(CLI::IsMember({"har", "mitmproxy", "curl", "httpie", "raw"}));
  sub->add_option("files", cfg->inputs, "Captures to read ('-' or none: standard input)");
  sub->add_option("-w,--write", cfg->write, "Write to PATH instead of standard output ('-')");
  sub->callback([&run, cfg] { run = [cfg] { return run_export(*cfg); }; });

}

}  // namespace sluice::cmd
