// sluice show: print a stream as one line per flow (or in detail), or convert it between encodings.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <CLI/CLI.hpp>

#include "common.hpp"
#include "stream/reader.hpp"
#include "stream/writer.hpp"
#include "view/detail.hpp"
#include "view/summary.hpp"

namespace sluice::cmd {
namespace {

struct ShowConfig {
  std::vector<std::string> inputs;
  int detail = 0;
  bool jsonl = false;
  StreamFlags stream;  // format empty (and no --jsonl): print text
  std::string write = "-";
};

int run_show(const ShowConfig& cfg) {
  const StreamFlags& sf = cfg.stream;
  bool convert = cfg.jsonl || !sf.format.empty();
  if ((sf.compress || sf.no_compress) && !convert)
    throw CommandError(kUsage, "show: --compress/--no-compress need --format or --jsonl");
  if (cfg.detail > 0 && convert) throw CommandError(kUsage, "show: --detail prints text; it conflicts with --jsonl/--format");
  if (cfg.jsonl && !sf.format.empty() && sf.format != "jsonl")
    throw CommandError(kUsage, "show: --jsonl conflicts with --format " + sf.format);
  if (cfg.jsonl && sf.compress) throw CommandError(kUsage, "show: --jsonl is plain JSONL; it conflicts with --compress");

  int out_fd = open_output(cfg.write, "show");

  std::unique_ptr<stream::StreamWriter> writer;
  std::unique_ptr<Output> text;
  std::unique_ptr<view::FlowSummarizer> summary;
  if (convert) {
    StreamFlags flags = sf;
    if (cfg.jsonl) {
      flags.format = "jsonl";
      flags.no_compress = true;
    }
    stream::WriterOptions o = stream_options(cfg.write, out_fd, flags, "show");
    o.inline_bodies = cfg.jsonl;  // the view for jq: every body in message.body
    writer = std::make_unique<stream::StreamWriter>(out_fd, o);
  } else {
    text = std::make_unique<Output>(out_fd);
    if (cfg.detail == 0)
      summary = std::make_unique<view::FlowSummarizer>([&](const std::string& l) { text->line(l); }, 100000,
                                                       view::use_color(out_fd));
  }

  auto flush = [&] {
    if (writer) {
      auto r = writer->flush();
      if (!r) {
        if (writer->broken_pipe()) throw BrokenPipe{};
        throw CommandError(kFailure, "show: cannot write output: " + r.error().message);
      }
    } else {
      text->flush();
    }
  };

  // A live pipe shows each record as soon as it arrives.
  read_records(
      cfg.inputs, "show",
      [&](envelope::Record&& record, const stream::StreamReader&) {
        if (writer) {
          if (!writer->write(record)) flush();  // surfaces the error
        } else if (summary) {
          summary->add(record);
        } else {
          text->write(view::detail(record, cfg.detail));
        }
      },
      flush);
  if (summary) summary->finish();
  flush();
  if (out_fd != 1) ::close(out_fd);
  return kOk;
}

}  // namespace

void setup_show(CLI::App& app, CommandRunner& run) {
  auto cfg = std::make_shared<ShowConfig>();
  auto* sub = app.add_subcommand("show", "Print a stream as one line per flow, in detail, or convert it");
  sub->add_option("files", cfg->inputs, "Captures to read ('-' or none: standard input)");
  sub->add_option("--detail", cfg->detail, "Detail level: 1 headers, 2 bodies, 3 raw bytes and every record")
      ->check(CLI::Range(0, 3));
  sub->add_flag("--jsonl", cfg->jsonl, "Write plain uncompressed JSONL for jq, every body written out in message.body");
  add_stream_flags(sub, cfg->stream);
  sub->add_option("-w,--write", cfg->write, "Write to PATH instead of standard output ('-')");
  sub->callback([&run, cfg] { run = [cfg] { return run_show(*cfg); }; });
}

}  // namespace sluice::cmd
