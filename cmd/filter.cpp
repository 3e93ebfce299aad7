// sluice filter EXPR [FILE...]: pass the flows (or envelopes) of a stream that match a filter expression.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <CLI/CLI.hpp>

#include "common.hpp"
#include "filter/flow_filter.hpp"
#include "filter/scan.hpp"
#include "stream/reader.hpp"
#include "stream/writer.hpp"

namespace sluice::cmd {
namespace {

struct FilterConfig {
  std::string expression;
  std::vector<std::string> inputs;
  bool envelopes = false;
  size_t max_pending = 10000;
  StreamFlags stream;
  std::string write = "-";
};

int run_filter(const FilterConfig& cfg) {
  auto parsed = filter::Filter::parse(cfg.expression);
  if (!parsed) throw CommandError(kUsage, "filter: " + parsed.error().message);
  filter::FlowFilter flows(std::move(*parsed), {cfg.envelopes, cfg.max_pending});

  int out_fd = open_output(cfg.write, "filter");
  std::unique_ptr<stream::StreamWriter> writer;
  const stream::WriterOptions wopts = stream_options(cfg.write, out_fd, cfg.stream, "filter");
  auto flush = [&] {
    if (!writer) return;
    if (auto r = writer->flush(); !r) {
      if (writer->broken_pipe()) throw BrokenPipe{};
      throw CommandError(kFailure, "filter: cannot write output: " + r.error().message);
    }
  };
  filter::FlowFilter::Sink sink = [&](const filter::FlowFilter::Passed& p) {
    if (!writer) writer = std::make_unique<stream::StreamWriter>(out_fd, wopts);
    // A record goes out as it came when the encodings agree (it may have been read only in part).
    bool as_read = !p.original.empty() && (p.cbor ? stream::Encoding::cbor : stream::Encoding::jsonl) == wopts.encoding;
    if (!(as_read ? writer->write_encoded(p.original) : writer->write(*p.record))) flush();  // surfaces the error
  };

  // JSONL lines are read in part (only what the expression looks at) and written out as they came, as
  // long as the output is JSONL too; anything else is decoded in full. A live pipe sees each flow as
  // soon as it is decided.
  stream::StreamReader* current = nullptr;
  auto jsonl_out = [&] { return wopts.encoding == stream::Encoding::jsonl; };
  read_records(
      cfg.inputs, "filter",
      // (what the handlers below do not see: the flows of a mitmproxy flow file, decoded whole)
      [&](envelope::Record&& r, stream::StreamReader&) { flows.feed(std::move(r), sink, {}, false); }, flush,
      [&](stream::StreamReader& reader) {
        current = &reader;
        auto& d = reader.decoder();
        d.set_handlers([&](core::ByteView line) { return jsonl_out() && flows.feed_line(line, sink); },
                       [&](envelope::Record&& r, core::ByteView payload) {
                         flows.feed(std::move(r), sink, payload, current->decoder().encoding() == stream::Encoding::cbor);
                       });
        d.set_jsonl_parser([&](core::ByteView line) -> core::Result<envelope::Record> {
          if (!jsonl_out()) return core::make_error("re-encoded: decode it in full");
          return filter::scan_jsonl(line);
        });
      });
  flows.finish(sink);
  if (flows.forced())
    std::fprintf(stderr, "sluice: filter: %llu flows were decided before they ended (more than --max-pending %zu open)\n",
                 static_cast<unsigned long long>(flows.forced()), cfg.max_pending);
  flush();
  if (out_fd != 1) ::close(out_fd);
  return flows.matched() ? kOk : kDifference;
}

}  // namespace

void setup_filter(CLI::App& app, CommandRunner& run) {
  auto cfg = std::make_shared<FilterConfig>();
  auto* sub = app.add_subcommand("filter", "Pass the flows of a stream that match a filter expression");
  sub->add_option("expression", cfg->expression, "Filter expression (mitmproxy's language; see sluice-filter(1))")
      ->required();
  sub->add_option("files", cfg->inputs, "Captures to read ('-' or none: standard input)");
  sub->add_flag("--envelopes", cfg->envelopes, "Judge each envelope on its own instead of whole flows");
  sub->add_option("--max-pending", cfg->max_pending,
                  "Undecided flows held at once; past it the oldest is decided on what it has (default 10000)")
      ->check(CLI::Range(size_t{1}, size_t{1} << 30));
  add_stream_flags(sub, cfg->stream);
  sub->add_option("-w,--write", cfg->write, "Write to PATH instead of standard output ('-')");
  sub->callback([&run, cfg] { run = [cfg] { return run_filter(*cfg); }; });
}

}  // namespace sluice::cmd
