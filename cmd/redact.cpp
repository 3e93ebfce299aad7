// sluice redact [--policy PRESET|FILE] [CAPTURE...]: a recorded stream with its secrets masked, as
// `sluice proxy --redact` would have recorded it (step::Redactor, the same implementation): every
// record in its order, each redacted one tagged `redacted` with the kinds it had. Then `sluice export
// --format har` gives a HAR that is safe to attach to a bug report.
#include <unistd.h>

#include <CLI/CLI.hpp>

#include "common.hpp"
#include "stream/reader.hpp"
#include "stream/writer.hpp"

namespace sluice::cmd {
namespace {

struct RedactConfig {
  std::string policy = "default";
  std::vector<std::string> inputs;
  StreamFlags stream;
  std::string write = "-";
};

int run_redact(const RedactConfig& cfg) {
  auto redactor = make_redactor(cfg.policy, "redact", "--policy");
  int out_fd = -1;
  std::unique_ptr<stream::StreamWriter> writer;
  auto flush = [&] {
    if (!writer) return;
    if (auto r = writer->flush(); !r) {
      if (writer->broken_pipe()) throw BrokenPipe{};
      throw CommandError(kFailure, "redact: cannot write output: " + r.error().message);
    }
  };
  size_t records = 0, redacted = 0;
  read_records(
      cfg.inputs, "redact",
      [&](envelope::Record&& r, stream::StreamReader&) {
        if (!writer) {  // opened at the first record: a capture that cannot be read leaves no file behind
          out_fd = open_output(cfg.write, "redact");
          writer = std::make_unique<stream::StreamWriter>(out_fd, stream_options(cfg.write, out_fd, cfg.stream, "redact"));
        }
        ++records;
        redacted += redactor->apply(r);
        if (!writer->write(r)) flush();  // surfaces the error
      },
      flush);
  flush();
  if (out_fd > 1) ::close(out_fd);
  if (is_terminal(2))
    std::fprintf(stderr, "sluice: redact: %zu of %zu records redacted\n", redacted, records);
  return kOk;
}

}  // namespace

void setup_redact(CLI::App& app, CommandRunner& run) {
  auto cfg = std::make_shared<RedactConfig>();
  auto* sub = app.add_subcommand("redact", "Mask the secrets of a recorded stream (what proxy --redact records)");
  sub->add_option("files", cfg->inputs, "Captures to read ('-' or none: standard input)");
  sub->add_option("-p,--policy", cfg->policy,
                  "PRESET (default, credentials, pii, or kinds: email,jwt,...) or a policy FILE (default: default)");
  add_stream_flags(sub, cfg->stream);
  sub->add_option("-w,--write", cfg->write, "Write to PATH instead of standard output ('-')");
  sub->callback([&run, cfg] { run = [cfg] { return run_redact(*cfg); }; });
}

}  // namespace sluice::cmd
