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
  std::string format;  // empty: print text
  bool compress = false;
  bool no_compress = false;
  std::string write = "-";
};

int run_show(const ShowConfig& cfg) {
  bool convert = cfg.jsonl || !cfg.format.empty();
  if (cfg.compress && cfg.no_compress) throw CommandError(kUsage, "show: --compress and --no-compress conflict");
  if ((cfg.compress || cfg.no_compress) && !convert)
    throw CommandError(kUsage, "show: --compress/--no-compress need --format or --jsonl");
  if (cfg.detail > 0 && convert) throw CommandError(kUsage, "show: --detail prints text; it conflicts with --jsonl/--format");
  if (cfg.jsonl && !cfg.format.empty() && cfg.format != "jsonl")
    throw CommandError(kUsage, "show: --jsonl conflicts with --format " + cfg.format);

  int out_fd = open_output(cfg.write, "show");

  std::unique_ptr<stream::StreamWriter> writer;
  std::unique_ptr<Output> text;
  std::unique_ptr<view::FlowSummarizer> summary;
  if (convert) {
    stream::WriterOptions o;
    o.encoding = cfg.jsonl ? stream::Encoding::jsonl : *stream::parse_encoding(cfg.format);
    o.compression = (cfg.jsonl || cfg.no_compress) ? stream::Compression::none : stream::Compression::zstd;
    if (o.compression == stream::Compression::zstd && is_terminal(out_fd) && !cfg.compress)
      throw CommandError(kUsage, "show: refusing to write compressed data to a terminal (use --jsonl or -w FILE)");
    writer = std::make_unique<stream::StreamWriter>(out_fd, o);
  } else {
    text = std::make_unique<Output>(out_fd);
    if (cfg.detail == 0) summary = std::make_unique<view::FlowSummarizer>([&](const std::string& l) { text->line(l); });
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
  sub->add_flag("--jsonl", cfg->jsonl, "Write plain uncompressed JSONL (for jq)");
  sub->add_option("--format", cfg->format, "Write the stream in this encoding")->check(CLI::IsMember({"jsonl", "cbor"}));
  sub->add_flag("--compress", cfg->compress, "zstd-compress the written stream (the default with --format)");
  sub->add_flag("--no-compress", cfg->no_compress, "Write the stream uncompressed");
  sub->add_option("-w,--write", cfg->write, "Write to PATH instead of standard output ('-')");
  sub->callback([&run, cfg] { run = [cfg] { return run_show(*cfg); }; });
}

}  // namespace sluice::cmd
