// sluice proxy: intercept traffic and write it as a stream of envelopes.
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include <CLI/CLI.hpp>

#include "common.hpp"
#include "envelope/record.hpp"
#include "layer/root_layer.hpp"
#include "layer/server_memo.hpp"
#include "pipeline/pipeline.hpp"
#include "replay/serve.hpp"
#include "stream/reader.hpp"
#include "runtime/recorder.hpp"
#include "runtime/server.hpp"
#include "tls/session.hpp"

namespace sluice::cmd {
namespace {

// Raises the soft descriptor limit to the hard one (a proxy holds two per connection), and gives the
// connections that leaves room for: two descriptors each, 64 kept for everything else (listeners,
// the stream, step programs, the resolver).
size_t default_max_connections() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return 0;
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  if (lim.rlim_cur == RLIM_INFINITY) return 0;
  return lim.rlim_cur > 64 + 2 ? static_cast<size_t>((lim.rlim_cur - 64) / 2) : 1;
}

struct ProxyConfig {
  std::vector<std::string> modes;
  int listen_port = -1;     // -p: the port of modes without @PORT (mitmproxy's --listen-port)
  std::string listen_host;  // the host of modes without @HOST:PORT (mitmproxy's --listen-host)
  std::string write;  // empty: stdout
  StreamFlags stream;
  unsigned threads = 0;
  bool pin_threads = false;
  double grace = 5;
  long max_connections = -1;  // -1: from the descriptor limit; 0: none
  double connect_timeout = 10;
  double header_timeout = 30;
  double first_byte_timeout = 60;
  double idle_timeout = 75;
  double detect_timeout = 0.5;
  std::string record_body_limit = "16MiB";
  std::string record_memory = "64MiB";
  bool keep_host_header = false;
  std::string proxy_auth, upstream_auth;
  bool verbose = false;
  // TLS interception.
  std::string ca_dir, ca_cert, ca_key;
  bool ca_ephemeral = false;
  size_t cert_cache = 1024;
  ServerTlsFlags server_tls;
  std::vector<std::string> passthrough;
  // Server replay.
  std::vector<std::string> serve_from;
  std::string match = "method,scheme,host,port,path,query,body";
  std::vector<std::string> ignore_params, ignore_form_fields, match_headers;
  bool ignore_body = false;
  bool reuse = false;
  bool refresh_dates = false;
  std::string on_miss = "502";
  // Step programs (formats/STEP.md), in the order given.
  std::vector<std::string> steps;
  StepFlags step;
  // Rules (mitmproxy's -H, -B, --map-local, --block-list).
  TransformFlags rules;
  HostScopeFlags hosts;
  std::optional<std::string> redact;  // --redact [PRESET|FILE] given (empty: default)
  std::string redact_spec;
  std::string safety;  // --safety PRESET|FILE
  std::string scope_filter;  // --scope-filter EXPR
};


std::chrono::milliseconds millis(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

// The CA (implicitly created on first use) and the TLS settings every intercepted connection shares.
std::unique_ptr<tls::TlsConfig> make_tls(const ProxyConfig& cfg) {
  if (cfg.ca_cert.empty() != cfg.ca_key.empty())
    throw CommandError(kUsage, "proxy: --ca-cert and --ca-key go together");
  if (cfg.ca_ephemeral && (!cfg.ca_cert.empty() || !cfg.ca_dir.empty()))
    throw CommandError(kUsage, "proxy: --ca-ephemeral excludes --ca-dir and --ca-cert");
  core::Result<tls::CertificateAuthority> ca = core::make_error("no CA");
  if (cfg.ca_ephemeral) {
    ca = tls::CertificateAuthority::ephemeral();
  } else if (!cfg.ca_cert.empty()) {
    ca = tls::CertificateAuthority::load(cfg.ca_cert, cfg.ca_key);
  } else {
    std::string dir = cfg.ca_dir.empty() ? tls::default_ca_dir() : cfg.ca_dir;
    bool created = false;
    ca = tls::CertificateAuthority::open_or_create(dir, &created);
    if (ca && created)
      std::fprintf(stderr, "sluice: created a CA in %s (`sluice ca trust-hint` shows how to trust it)\n", dir.c_str());
  }
  if (!ca) throw CommandError(kFailure, "proxy: " + ca.error().message);
  tls::TlsSettings settings = server_tls_settings(cfg.server_tls);
  settings.passthrough = cfg.passthrough;
  settings.cert_cache = cfg.cert_cache;
  auto config = tls::TlsConfig::create(std::move(*ca), std::move(settings));
  if (!config) throw CommandError(kUsage, "proxy: " + config.error().message);
  return std::move(*config);
}

// --serve-from: the recorded responses, loaded before the proxy listens.
std::shared_ptr<replay::ServeFrom> make_serve_from(const ProxyConfig& cfg) {
  replay::ServeOptions o;
  if (auto r = replay::parse_match_parts(cfg.match, o.match); !r) throw CommandError(kUsage, "proxy: --match: " + r.error().message);
  if (cfg.ignore_body) o.match.body = false;
  o.match.ignore_params = cfg.ignore_params;
  o.match.ignore_form_fields = cfg.ignore_form_fields;
  o.match.headers = cfg.match_headers;
  auto miss = replay::parse_on_miss(cfg.on_miss);
  if (!miss) throw CommandError(kUsage, "proxy: " + miss.error().message);
  o.on_miss = *miss;
  o.reuse = cfg.reuse;
  o.refresh_dates = cfg.refresh_dates;
  auto step = std::make_shared<replay::ServeFrom>(std::move(o));
  read_records(cfg.serve_from, "proxy", [&](envelope::Record&& r, const stream::StreamReader&) { step->add(r); });
  step->finish_loading();
  std::fprintf(stderr, "sluice: serving %zu recorded responses (--serve-from)", step->responses());
  if (step->unusable())
    std::fprintf(stderr, "; %zu recorded cut short by --record-body-limit are not served", step->unusable());
  std::fprintf(stderr, "\n");
  return step;
}

int run_proxy(const ProxyConfig& cfg) {
  runtime::ServerOptions opts;
  for (const auto& spec : cfg.modes.empty() ? std::vector<std::string>{"regular"} : cfg.modes) {
    auto m = layer::parse_mode_spec(spec);
    if (!m) throw CommandError(kUsage, "proxy: " + m.error().message);
    if (!m->listen_port_given && cfg.listen_port >= 0) {
      m->listen_port = static_cast<uint16_t>(cfg.listen_port);
      m->listen_port_given = true;
    }
    if (!m->listen_host_given && !cfg.listen_host.empty()) m->listen_host = cfg.listen_host;
    // A forward's port is the one thing its clients must know: no default stands in for it.
    if (!m->listen_port_given && (m->kind == layer::ModeSpec::Kind::tcp || m->kind == layer::ModeSpec::Kind::raw))
      throw CommandError(kUsage, "proxy: mode '" + spec + "' needs a port to listen on: " + spec +
                                     "@PORT (or -p PORT; @0 picks a free one)");
    opts.modes.push_back(*m);
  }
  opts.threads = cfg.threads;
  opts.pin_threads = cfg.pin_threads;
  opts.grace = millis(cfg.grace);
  opts.max_connections = cfg.max_connections >= 0 ? static_cast<size_t>(cfg.max_connections) : default_max_connections();
  opts.connect_timeout = millis(cfg.connect_timeout);
  opts.layer.header_timeout = millis(cfg.header_timeout);
  opts.layer.first_byte_timeout = millis(cfg.first_byte_timeout);
  opts.layer.idle_timeout = millis(cfg.idle_timeout);
  opts.layer.detect_timeout = millis(cfg.detect_timeout);
  opts.layer.record_body_limit = parse_size(cfg.record_body_limit, "proxy: --record-body-limit");
  uint64_t record_memory = parse_size(cfg.record_memory, "proxy: --record-memory");
  if (record_memory == 0) throw CommandError(kUsage, "proxy: --record-memory must be more than 0");
  layer::RecordBudget budget(record_memory);
  opts.layer.record_budget = &budget;
  opts.layer.keep_host_header = cfg.keep_host_header;
  for (const auto* cred : {&cfg.proxy_auth, &cfg.upstream_auth})
    if (!cred->empty() && cred->find(':') == std::string::npos)
      throw CommandError(kUsage, "proxy: credentials must be USER:PASS");
  opts.layer.proxy_auth = cfg.proxy_auth;
  opts.layer.upstream_auth = cfg.upstream_auth;
  opts.verbose = cfg.verbose;
  auto tls = make_tls(cfg);
  opts.layer.tls = tls.get();
  layer::ServerMemo servers;
  opts.layer.servers = &servers;
  std::shared_ptr<replay::ServeFrom> serve_from;
  if (!cfg.serve_from.empty()) {
    serve_from = make_serve_from(cfg);
    opts.layer.lazy_connect = true;  // a recorded answer needs no server, nor any network
  }
  auto transform = make_transform(cfg.rules, "proxy");  // (a bad rule: refused before anything listens)
  auto hosts = std::make_shared<filter::HostScope>(make_host_scope(cfg.hosts, "proxy"));
  if (!hosts->empty())
    opts.layer.ignore_host = [hosts](std::string_view host, std::string_view sni) { return hosts->ignored(host, sni); };
  auto redactor = cfg.redact ? make_redactor(*cfg.redact, "proxy", "--redact") : nullptr;
  std::shared_ptr<filter::FlowScope> scope;
  if (!cfg.scope_filter.empty()) {
    auto f = filter::Filter::parse(cfg.scope_filter);
    if (!f) throw CommandError(kUsage, "proxy: --scope-filter: " + f.error().message);
    scope = std::make_shared<filter::FlowScope>(std::move(*f));
  }
  std::optional<step::SafetyPolicy> safety;
  if (!cfg.safety.empty()) safety = make_safety(cfg.safety, "proxy");
  // Every message is a unit of its own (WebSocket messages, events, HTTP/2 messages wait for verdicts).
  opts.layer.step_units = !cfg.steps.empty() || transform || safety;
  // SIGHUP reads the rule file again: the new rules in force, or the old ones kept and the error said.
  if (transform && !cfg.rules.options.rules_file.empty())
    opts.on_hangup = [transform, path = cfg.rules.options.rules_file] {
      auto n = transform->reload();
      if (n)
        std::fprintf(stderr, "sluice: rules: reloaded %s (%zu rule%s)\n", path.c_str(), *n, *n == 1 ? "" : "s");
      else
        std::fprintf(stderr, "sluice: rules: not reloaded, the rules in force stay: %s\n", n.error().message.c_str());
    };

  // Where the stream goes: -w PATH, or stdout unless it is a terminal (then one line per flow).
  StreamOutput output = open_stream_output(cfg.write, cfg.stream, "proxy");
  int out_fd = output.fd;
  bool to_file = output.to_file;
  bool summary_only = output.summary_only;
  const stream::WriterOptions& wopts = output.options;

  std::atomic<runtime::Server*> server_ptr{nullptr};
  std::atomic<bool> broken_pipe{false};
  runtime::Recorder recorder(
      out_fd, summary_only ? runtime::Recorder::Mode::summary : runtime::Recorder::Mode::stream, wopts,
      [&] {
        broken_pipe = true;
        if (auto* s = server_ptr.load()) s->stop();
      },
      to_file && is_terminal(1) ? 1 : -1);
  // What is recorded: exchanges outside --scope-filter left out, secrets masked (--redact).
  if (redactor || scope)
    recorder.set_before([redactor, scope](envelope::Record& r) {
      if (scope && scope->outside(r)) return false;
      if (redactor) redactor->apply(r);
      return true;
    });
  pipeline::Pipeline pipeline([&recorder](const envelope::Envelope& e) { recorder.record(e); });

  if (scope) pipeline.set_bypass([scope](const envelope::Envelope& e) { return scope->outside(e); });
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
  // Rules first (mitmproxy's addons run before scripts see the flow), then step programs, then the
  // recorded answers of --serve-from.
  if (transform) {
    pipeline.add(transform);
    std::fprintf(stderr, "sluice: %zu rule%s (transform)\n", transform->rules(), transform->rules() == 1 ? "" : "s");
  }
  std::vector<std::shared_ptr<step::ProcessStep>> steps;
  for (const auto& command : cfg.steps) {
    steps.push_back(std::make_shared<step::ProcessStep>(
        step_options(cfg.step, command, header, [&recorder](envelope::Record r) { recorder.record(std::move(r)); })));
    pipeline.add(steps.back());
    std::fprintf(stderr, "sluice: running step %s (%s)\n", std::string(steps.back()->name()).c_str(), command.c_str());
  }
  // The safety filter last: it judges each unit as it is about to leave, after every change.
  if (safety) {
    auto step = std::make_shared<step::SafetyStep>(std::move(*safety), [&recorder](envelope::Record r) { recorder.record(std::move(r)); });
    std::fprintf(stderr, "sluice: safety filter: %zu rule%s\n", step->rules(), step->rules() == 1 ? "" : "s");
    pipeline.add(std::move(step));
  }
  if (serve_from) pipeline.add(serve_from);
  // Say plainly whether the flows are kept, and how to read them.
  if (summary_only)
    std::fprintf(stderr, "sluice: not recording (standard output is a terminal: one line per flow); "
                         "add -w FILE.zst to keep every flow, or pipe it on: sluice proxy | sluice record captures/\n");
  else if (to_file)
    std::fprintf(stderr, "sluice: recording to %s (read it with: sluice show %s)\n", cfg.write.c_str(), cfg.write.c_str());

  server.run();
  server_ptr = nullptr;
  for (auto& step : steps) step->stop();  // before the recorder closes: a step's thread records
  auto closed = recorder.close();
  if (scope && scope->left_out())
    std::fprintf(stderr, "sluice: %zu exchange%s outside --scope-filter forwarded and not recorded\n", scope->left_out(),
                 scope->left_out() == 1 ? "" : "s");
  if (to_file) ::close(out_fd);
  if (!closed && !broken_pipe) throw CommandError(kFailure, "proxy: cannot write the stream: " + closed.error().message);
  return kOk;
}

}  // namespace

void setup_proxy(CLI::App& app, CommandRunner& run) {
  auto cfg = std::make_shared<ProxyConfig>();
  auto* sub = app.add_subcommand("proxy", "Intercept traffic and write it as a stream of envelopes");
  sub->add_option("-m,--mode", cfg->modes,
                  "MODE[:DATA][@[HOST:]PORT], repeatable: regular, reverse:http[s]://HOST[:PORT], "
                  "upstream:http://HOST:PORT, tcp:HOST:PORT@PORT, raw:HOST:PORT@PORT, socks5[@PORT] "
                  "(default regular@127.0.0.1:8080)");
  sub->add_option("-p,--listen-port", cfg->listen_port, "Port of the modes that name none (mitmproxy's -p)")
      ->check(CLI::Range(0, 65535));
  sub->add_option("--listen-host", cfg->listen_host,
                  "Address of the modes that name none (default 127.0.0.1; mitmproxy's --listen-host)");
  sub->add_option("-w,--write", cfg->write, "Write the stream to PATH ('-': standard output)");
  add_stream_flags(sub, cfg->stream);
  sub->add_option("--threads", cfg->threads, "I/O threads (default: one per core)")->check(CLI::Range(0u, 256u));
  sub->add_flag("--pin-threads", cfg->pin_threads,
                "Pin each I/O thread to a CPU of its own (round robin over the CPUs the process may use)");
  sub->add_option("--max-connections", cfg->max_connections,
                  "Open client connections at most; more are refused at once, HTTP ones with a 503 (default: "
                  "what the descriptor limit leaves room for; 0: no limit)")
      ->check(CLI::Range(0L, 100000000L));
  sub->add_option("--grace", cfg->grace, "Seconds open connections get to finish on SIGINT/SIGTERM (default 5)")
      ->check(CLI::Range(0.0, 3600.0));
  sub->add_option("--connect-timeout", cfg->connect_timeout, "Seconds to connect to a server (default 10)")
      ->check(CLI::Range(0.1, 3600.0));
  sub->add_option("--header-timeout", cfg->header_timeout,
                  "Seconds a client gets to send a request head, then 408 (default 30)")
      ->check(CLI::Range(0.1, 86400.0));
  sub->add_option("--first-byte-timeout", cfg->first_byte_timeout,
                  "Seconds a server gets to start its answer, then 504 (default 60)")
      ->check(CLI::Range(0.1, 86400.0));
  sub->add_option("--idle-timeout", cfg->idle_timeout,
                  "Seconds without a byte before a connection is closed (default 75)")
      ->check(CLI::Range(0.1, 86400.0));
  sub->add_option("--detect-timeout", cfg->detect_timeout,
                  "Seconds a tcp: forward's client may stay silent before it is taken for a server-first protocol "
                  "(default 0.5)")
      ->check(CLI::Range(0.01, 3600.0));
  sub->add_option("--record-memory", cfg->record_memory,
                  "Memory all connections together may hold in bodies kept for the record (default 64MiB); "
                  "past it a body streams on and the rest of it is recorded as omitted");
  sub->add_option("--record-body-limit", cfg->record_body_limit,
                  "Body bytes recorded per message, e.g. 16MiB, 512k; 0 records everything (default 16MiB)");
  sub->add_flag("--keep-host-header", cfg->keep_host_header, "Reverse mode: send the client's Host header unchanged");
  sub->add_option("--proxy-auth", cfg->proxy_auth, "USER:PASS clients must present (407 otherwise)");
  sub->add_option("--upstream-auth", cfg->upstream_auth, "USER:PASS to present to the upstream proxy");
  sub->add_option("--ca-dir", cfg->ca_dir,
                  "CA directory, created on first use (default $XDG_DATA_HOME/sluice/ca or ~/.local/share/sluice/ca)");
  sub->add_option("--ca-cert", cfg->ca_cert, "Sign with this CA certificate (PEM; with --ca-key)");
  sub->add_option("--ca-key", cfg->ca_key, "The private key of --ca-cert (PEM)");
  sub->add_flag("--ca-ephemeral", cfg->ca_ephemeral, "Sign with a throwaway CA that lives in memory only");
  sub->add_option("--cert-cache", cfg->cert_cache, "Leaf certificates kept for reuse (default 1024)")
      ->check(CLI::Range(size_t{1}, size_t{1} << 24));
  add_server_tls_flags(sub, cfg->server_tls);
  sub->add_option("--tls-passthrough", cfg->passthrough,
                  "Tunnel hosts matching PATTERN (*.example.com) without intercepting TLS, repeatable");
  add_host_scope_flags(sub, cfg->hosts, true);
  sub->add_option("--step", cfg->steps,
                  "Run COMMAND as a step program (formats/STEP.md) that sees, changes, drops or answers each "
                  "unit before it is sent on, repeatable (run in the order given)");
  add_step_flags(sub, cfg->step);
  add_transform_flags(sub, cfg->rules);
  sub->add_option("--scope-filter", cfg->scope_filter,
                  "Only exchanges whose request matches EXPR (a filter expression) are recorded and seen by steps; "
                  "the others are forwarded untouched");
  sub->add_option("--safety", cfg->safety,
                  "Refuse destructive requests before they leave: PRESET (default, destructive-sql, "
                  "destructive-os-command) or a policy FILE");
  auto* redact = sub->add_option("--redact", cfg->redact_spec,
                                 "Keep secrets out of what is recorded (never out of what is sent): PRESET (default, "
                                 "credentials, pii, or kinds: email,jwt,...) or a policy FILE; alone: default")
                     ->expected(0, 1);
  sub->add_option("--serve-from", cfg->serve_from,
                  "Answer requests from the responses recorded in CAPTURE (file or directory), repeatable");
  sub->add_option("--match", cfg->match,
                  "Server replay: the request parts that must match, comma-separated (default "
                  "method,scheme,host,port,path,query,body)");
  sub->add_option("--ignore-param", cfg->ignore_params, "Server replay: query parameter left out of matching, repeatable");
  sub->add_flag("--ignore-body", cfg->ignore_body, "Server replay: match whatever the request body");
  sub->add_option("--ignore-form-field", cfg->ignore_form_fields,
                  "Server replay: form field (urlencoded body) left out of matching, repeatable");
  sub->add_option("--match-header", cfg->match_headers, "Server replay: a request header that must match too, repeatable");
  sub->add_flag("--reuse", cfg->reuse, "Server replay: answer repeated requests with the last recorded response, always");
  sub->add_option("--on-miss", cfg->on_miss, "Server replay: forward, 404, 502 (default) or kill when nothing matches");
  sub->add_flag("--refresh-dates", cfg->refresh_dates,
                "Server replay: shift Date, Expires, Last-Modified and cookie expiry to now");
  sub->add_flag("-v,--verbose", cfg->verbose, "Log every event and command on stderr");
  sub->callback([&run, cfg, redact] {
    if (redact->count()) cfg->redact = cfg->redact_spec;
    run = [cfg] { return run_proxy(*cfg); };
  });
}

}  // namespace sluice::cmd
