// sluice replay [FILE...]: send a capture's requests again and write the new exchanges as a stream;
// --check compares the new responses with the recorded ones (exit 1 on a mismatch), --junit reports it.
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <mutex>

#include "common.hpp"
#include "replay/client.hpp"
#include "replay/plan.hpp"
#include "runtime/recorder.hpp"
#include "stream/reader.hpp"
#include "tls/ca.hpp"
#include "tls/session.hpp"

namespace sluice::cmd {
namespace {

struct ReplayConfig {
  std::vector<std::string> inputs;
  std::string target;
  unsigned concurrency = 1;
  double rate = 0;
  double timeout = 30;
  double connect_timeout = 10;
  unsigned retries = 0;
  bool as_recorded = false;
  bool check = false;
  std::string junit;
  std::vector<std::string> scope;
  HostScopeFlags hosts;
  std::string safety;  // --safety PRESET|FILE
  diff::Options diff;
  std::string write;
  StreamFlags stream;
  std::string record_body_limit = "16MiB";
  ServerTlsFlags server_tls;
  bool quiet = false;
};

std::chrono::milliseconds millis(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

// TLS towards servers only: the CA is a throwaway one (nothing is intercepted), verification as in
// `sluice proxy`.
std::unique_ptr<tls::TlsConfig> make_client_tls(const ReplayConfig& cfg) {
  auto ca = tls::CertificateAuthority::ephemeral();
  if (!ca) throw CommandError(kFailure, "replay: " + ca.error().message);
  auto config = tls::TlsConfig::create(std::move(*ca), server_tls_settings(cfg.server_tls));
  if (!config) throw CommandError(kUsage, "replay: " + config.error().message);
  return std::move(*config);
}

// "sluice: replay: 12/100 flows" on a terminal, redrawn in place at most ten times a second. Lines
// that other threads print on the same terminal (the flow summaries) clear it first (clear()), so
// nothing runs into it; it comes back at the next update.
class Progress {
 public:
  Progress(size_t total, bool on) : total_(total), on_(on) {}
  void update(size_t done) {
    if (!on_) return;
    std::lock_guard lock(mu_);
    auto now = std::chrono::steady_clock::now();
    if (done < total_ && drawn_ && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    std::fprintf(stderr, "\r\x1b[Ksluice: replay: %zu/%zu flows", done, total_);
    drawn_ = done < total_;
    if (!drawn_) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }
  void clear() {
    if (!on_) return;
    std::lock_guard lock(mu_);
    if (!drawn_) return;
    std::fprintf(stderr, "\r\x1b[K");
    std::fflush(stderr);
    drawn_ = false;
  }

 private:
  size_t total_;
  bool on_;
  std::mutex mu_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_{};
};

std::string describe(const replay::CaseResult& c) {
  const diff::Exchange& e = c.flow->exchange;
  return e.method + " " + e.url + " (" + e.flow_id + (c.new_flow.empty() ? "" : " -> " + c.new_flow) + ")";
}

int run_replay(ReplayConfig cfg) {
  replay::PlanOptions plan;
  if (!cfg.target.empty()) {
    auto t = replay::parse_target(cfg.target);
    if (!t) throw CommandError(kUsage, "replay: " + t.error().message);
    plan.target = *t;
  }
  plan.as_recorded = cfg.as_recorded;
  plan.scope = cfg.scope;
  plan.hosts = make_host_scope(cfg.hosts, "replay");
  if (!cfg.safety.empty()) {
    auto policy = std::make_shared<step::SafetyPolicy>(make_safety(cfg.safety, "replay"));
    plan.refuse = [policy](const envelope::HttpMessage& m) {
      auto hit = step::safety_judge_request(*policy, m);
      return hit ? "refused by the safety filter: " + hit->describe() : std::string();
    };
  }

  replay::Collector collector;
  read_records(cfg.inputs, "replay", [&](envelope::Record&& r, const stream::StreamReader&) { collector.add(r); });
  std::vector<replay::Recorded> flows = collector.take();
  std::vector<replay::Request> requests;
  bool any_tls = false;
  for (size_t i = 0; i < flows.size(); ++i) {
    requests.push_back(replay::plan(flows[i], i, plan));
    const auto& q = requests.back();
    if (!q.skipped.empty()) {
      std::fprintf(stderr, "sluice: replay: skipped %s %s (%s): %s\n", flows[i].exchange.method.c_str(),
                   flows[i].exchange.url.c_str(), flows[i].exchange.flow_id.c_str(), q.skipped.c_str());
    } else if (q.target.scheme == "https") {
      any_tls = true;
    }
  }

  replay::EngineOptions eo;
  eo.concurrency = cfg.concurrency;
  eo.rate = cfg.rate;
  eo.timeout = millis(cfg.timeout);
  eo.connect_timeout = millis(cfg.connect_timeout);
  eo.retries = cfg.retries;
  eo.layer.record_body_limit = parse_size(cfg.record_body_limit, "replay: --record-body-limit");
  eo.layer.keep_host_header = true;
  // The exchange's own limits never cut in before --timeout does.
  eo.layer.first_byte_timeout = eo.layer.idle_timeout = eo.layer.header_timeout = eo.timeout + std::chrono::seconds(1);
  std::unique_ptr<tls::TlsConfig> tls;
  if (any_tls) {
    tls = make_client_tls(cfg);
    eo.layer.tls = tls.get();
  }

  // The new exchanges: -w PATH, or stdout unless it is a terminal (then one line per flow).
  StreamOutput output = open_stream_output(cfg.write, cfg.stream, "replay");
  bool broken_pipe = false;
  runtime::Recorder recorder(output.fd,
                             output.summary_only ? runtime::Recorder::Mode::summary : runtime::Recorder::Mode::stream,
                             output.options, [&broken_pipe] { broken_pipe = true; });
  if (!output.summary_only) {
    envelope::StreamHeader header;
    header.producer = std::string("sluice/") + SLUICE_VERSION + " replay";
    header.time = core::now_wall();
    recorder.record(envelope::Record{header});
  }

  size_t to_send = 0;
  for (const auto& q : requests) to_send += q.skipped.empty();
  Progress progress(to_send, !cfg.quiet && is_terminal(2));
  recorder.set_before_summary([&progress] { progress.clear(); });
  eo.stop_on_signal = true;
  eo.on_interrupt = [&progress] {
    progress.clear();
    std::fprintf(stderr, "sluice: replay: interrupted: sending no more requests, waiting for those in flight "
                         "(Ctrl-C again stops at once)\n");
  };
  auto outcomes = replay::run(flows, requests, eo, recorder, [&progress](size_t done) { progress.update(done); });
  progress.clear();
  auto closed = recorder.close();
  if (output.to_file) ::close(output.fd);
  if (!closed && !broken_pipe) throw CommandError(kFailure, "replay: cannot write the stream: " + closed.error().message);

  replay::Report report = replay::check(flows, requests, outcomes, cfg.diff, cfg.check);
  if (!cfg.junit.empty()) {
    int fd = open_output(cfg.junit, "replay");
    std::string xml = replay::junit_xml(report);
    Output junit(fd);
    junit.write(xml);
    junit.flush();
    if (fd != 1) ::close(fd);
  }
  if (!cfg.quiet) {
    for (const auto& c : report.cases) {
      if (c.kind == replay::CaseResult::Kind::failed) {
        std::fprintf(stderr, "FAIL  %s\n", describe(c).c_str());
        for (const auto& d : c.differences)
          std::fprintf(stderr, "      %s: %s -> %s\n", d.what.c_str(), d.before.c_str(), d.after.c_str());
      } else if (c.kind == replay::CaseResult::Kind::error) {
        std::fprintf(stderr, "ERROR %s: %s\n", describe(c).c_str(), c.message.c_str());
      }
    }
    std::fprintf(stderr, "sluice: replay: %zu flows: %zu %s, %zu failed, %zu errors, %zu skipped%s\n",
                 report.cases.size(), report.passed, cfg.check ? "passed" : "replayed", report.failed, report.errors,
                 report.skipped,
                 report.not_sent ? (" (" + std::to_string(report.not_sent) + " not sent: interrupted)").c_str() : "");
  }
  if (report.not_sent) return kInterrupted;
  // A check that checked nothing is no pass: a CI job pointed at the wrong file must not go green.
  if (report.nothing_checked()) {
    std::string what = report.cases.empty() ? "the input holds no HTTP request" : "every request was skipped";
    if (cfg.check || !cfg.junit.empty())
      throw CommandError(kDifference, "replay: nothing to check: " + what);
    std::fprintf(stderr, "sluice: replay: nothing was replayed: %s\n", what.c_str());
  }
  return report.failed + report.errors > 0 ? kDifference : kOk;
}

}  // namespace

void setup_replay(CLI::App& app, CommandRunner& run) {
  auto cfg = std::make_shared<ReplayConfig>();
  auto* sub = app.add_subcommand("replay", "Send a capture's requests again; --check compares the responses");
  sub->add_option("inputs", cfg->inputs, "Captures: files, directories of segments, or '-' (default: stdin)");
  sub->add_option("--target", cfg->target, "Send every request to scheme://host[:port] instead (a staging server)");
  sub->add_option("-j,--concurrency", cfg->concurrency, "Requests in flight at once (default 1: in order)")
      ->check(CLI::Range(1u, 10000u));
  sub->add_option("--rate", cfg->rate, "Requests started per second at most (default: no limit)")
      ->check(CLI::Range(0.0, 1e6));
  sub->add_option("--timeout", cfg->timeout, "Seconds an exchange may take before it counts as failed (default 30)")
      ->check(CLI::Range(0.01, 86400.0));
  sub->add_option("--connect-timeout", cfg->connect_timeout, "Seconds to connect to a server (default 10)")
      ->check(CLI::Range(0.01, 3600.0));
  sub->add_option("--retries", cfg->retries, "Tries again after a failure this many times (default 0)")
      ->check(CLI::Range(0u, 100u));
  sub->add_flag("--as-recorded", cfg->as_recorded,
                "Send the recorded bytes exactly (as the server received them) instead of re-encoding the request");
  sub->add_flag("--check", cfg->check, "Compare each new response with the recorded one; exit 1 on a mismatch");
  sub->add_option("--junit", cfg->junit, "Write a JUnit XML report to FILE");
  sub->add_option("--scope", cfg->scope, "Only send to hosts matching PATTERN (*.example.com), repeatable");
  add_host_scope_flags(sub, cfg->hosts, false);
  sub->add_option("--safety", cfg->safety,
                  "Never send a destructive request: PRESET (default, destructive-sql, destructive-os-command) or "
                  "a policy FILE; one it matches is skipped, naming the rule");
  sub->add_option("--ignore-header", cfg->diff.ignore_headers, "Response header not compared, repeatable");
  sub->add_option("--ignore-json-path", cfg->diff.ignore_json_paths,
                  "JSON body path not compared ($.a.b, $.items[*].id), repeatable");
  sub->add_option("-w,--write", cfg->write, "Write the new exchanges to PATH ('-': standard output)");
  add_stream_flags(sub, cfg->stream);
  sub->add_option("--record-body-limit", cfg->record_body_limit,
                  "Body bytes recorded per message, e.g. 16MiB, 512k; 0 records everything (default 16MiB)");
  add_server_tls_flags(sub, cfg->server_tls);
  sub->add_flag("-q,--quiet", cfg->quiet, "No progress, report or skip lines on stderr (the exit status still tells)");
  sub->callback([&run, cfg] { run = [cfg] { return run_replay(*cfg); }; });
}

}  // namespace sluice::cmd
