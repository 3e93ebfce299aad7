// sluice proxy: intercept traffic and write it as a stream of envelopes.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include <CLI/CLI.hpp>

#include "common.hpp"
#include "envelope/record.hpp"
#include "layer/root_layer.hpp"
#include "pipeline/pipeline.hpp"
#include "runtime/recorder.hpp"
#include "runtime/server.hpp"

namespace sluice::cmd {
namespace {

struct ProxyConfig {
  std::vector<std::string> modes;
  std::string write;  // empty: stdout
  std::string format = "jsonl";
  bool no_compress = false;
  unsigned threads = 0;
  double grace = 5;
  double connect_timeout = 10;
  bool verbose = false;
};

int run_proxy(const ProxyConfig& cfg) {
  runtime::ServerOptions opts;
  for (const auto& spec : cfg.modes.empty() ? std::vector<std::string>{"regular"} : cfg.modes) {
    auto m = layer::parse_mode_spec(spec);
    if (!m) throw CommandError(kUsage, "proxy: " + m.error().message);
    if (!layer::mode_available(m->kind))
      throw CommandError(kUsage, "proxy: mode '" + spec + "' is not available in this build yet; " +
                                     "it serves regular (CONNECT tunnels), tcp:HOST:PORT and raw:HOST:PORT");
    opts.modes.push_back(*m);
  }
  opts.threads = cfg.threads;
  opts.grace = std::chrono::milliseconds(static_cast<int64_t>(cfg.grace * 1000));
  opts.connect_timeout = std::chrono::milliseconds(static_cast<int64_t>(cfg.connect_timeout * 1000));
  opts.verbose = cfg.verbose;

  // Where the stream goes: -w PATH, or stdout unless it is a terminal (then one line per flow).
  int out_fd = 1;
  bool to_file = !cfg.write.empty() && cfg.write != "-";
  if (to_file) {
    out_fd = ::open(cfg.write.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out_fd < 0)
      throw CommandError(kUsage, "proxy: cannot open " + cfg.write + " for writing: " + std::strerror(errno));
  }
  bool summary_only = !to_file && cfg.write.empty() && is_terminal(1);
  stream::WriterOptions wopts;
  wopts.encoding = *stream::parse_encoding(cfg.format);
  wopts.compression = cfg.no_compress ? stream::Compression::none : stream::Compression::zstd;

  std::atomic<runtime::Server*> server_ptr{nullptr};
  std::atomic<bool> broken_pipe{false};
  runtime::Recorder recorder(
      out_fd, summary_only ? runtime::Recorder::Mode::summary : runtime::Recorder::Mode::stream, wopts,
      [&] {
        broken_pipe = true;
        if (auto* s = server_ptr.load()) s->stop();
      },
      to_file && is_terminal(1) ? 1 : -1);
  pipeline::Pipeline pipeline([&recorder](const envelope::Envelope& e) { recorder.record(e); });

  runtime::Server server(opts, recorder, pipeline);
  auto bound = server.bind();
  if (!bound) throw CommandError(kFailure, "proxy: " + bound.error().message);
  server_ptr = &server;

  envelope::StreamHeader header;
  header.producer = std::string("sluice/") + SLUICE_VERSION + " proxy";
  header.time = core::now_wall();
  for (const auto& b : *bound) {
    header.listeners.push_back(core::Value(core::Value::Object{{"mode", core::Value(b.mode)},
                                                               {"address", core::Value(b.address)}}));
    std::fprintf(stderr, "sluice: listening on %s (%s)\n", b.address.c_str(), b.mode.c_str());
  }
  if (!summary_only) recorder.record(envelope::Record{header});

  server.run();
  server_ptr = nullptr;
  auto closed = recorder.close();
  if (to_file) ::close(out_fd);
  if (!closed && !broken_pipe) throw CommandError(kFailure, "proxy: cannot write the stream: " + closed.error().message);
  return kOk;
}

}  // namespace

void setup_proxy(CLI::App& app, CommandRunner& run) {
  auto cfg = std::make_shared<ProxyConfig>();
  auto* sub = app.add_subcommand("proxy", "Intercept traffic and write it as a stream of envelopes");
  sub->add_option("-m,--mode", cfg->modes,
                  "MODE[:DATA][@[HOST:]PORT], repeatable: regular, tcp:HOST:PORT@PORT, raw:HOST:PORT@PORT (default regular@127.0.0.1:8080)");
  sub->add_option("-w,--write", cfg->write, "Write the stream to PATH ('-': standard output)");
  sub->add_option("--format", cfg->format, "Stream encoding")->check(CLI::IsMember({"jsonl", "cbor"}));
  sub->add_flag("--no-compress", cfg->no_compress, "Write the stream without zstd compression");
  sub->add_option("--threads", cfg->threads, "I/O threads (default: one per core)")->check(CLI::Range(0u, 256u));
  sub->add_option("--grace", cfg->grace, "Seconds open connections get to finish on SIGINT/SIGTERM (default 5)")
      ->check(CLI::Range(0.0, 3600.0));
  sub->add_option("--connect-timeout", cfg->connect_timeout, "Seconds to connect to a server (default 10)")
      ->check(CLI::Range(0.1, 3600.0));
  sub->add_flag("-v,--verbose", cfg->verbose, "Log every event and command on stderr");
  sub->callback([&run, cfg] { run = [cfg] { return run_proxy(*cfg); }; });
}

}  // namespace sluice::cmd
