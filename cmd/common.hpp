#pragma once
// Helpers shared by the subcommands: exit codes, errors, buffered stdout that turns EPIPE into a quiet
// exit, and the registry each cmd/*.cpp adds itself to.
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "envelope/record.hpp"
#include "step/process_step.hpp"
#include "filter/scope.hpp"
#include "step/redact.hpp"
#include "step/safety.hpp"
#include "step/transform.hpp"
#include "stream/writer.hpp"
#include "tls/session.hpp"

namespace CLI {
class App;
}
namespace sluice::stream {
class StreamReader;
}


namespace sluice::cmd {

// Exit statuses, as sluice(1) documents them.
enum Exit : int {
  kOk = 0,
  kDifference = 1,  // filter matched nothing, diff/replay --check found a difference
  kUsage = 2,       // bad arguments or unreadable / invalid input
  kFailure = 3,     // the job itself failed: cannot listen, cannot write output
  kInterrupted = 130,  // stopped by SIGINT before the job was done (128 + SIGINT, as shells report it)
};

// Thrown inside cmd/ only; main() prints "sluice: MESSAGE" and exits with `code`.
struct CommandError : std::runtime_error {
  CommandError(int code, const std::string& message) : std::runtime_error(message), code(code) {}
  int code;
};
// Thrown when stdout's reader went away: main() exits 0 silently (`sluice show | head -1`).
struct BrokenPipe {};

// Buffered writer for fd 1 (or another fd). Throws BrokenPipe on EPIPE, CommandError on other errors.
class Output {
 public:
  explicit Output(int fd = 1) : fd_(fd) {}
  ~Output();
  void write(std::string_view s);
  void line(std::string_view s) {
    write(s);
    write("\n");
  }
  void flush();
  int fd() const { return fd_; }

 private:
  int fd_;
  std::string buf_;
};

bool is_terminal(int fd);

// Reads every record of `paths` (expanded as above), in order, handing each to `fn` with its reader
// (which knows the input's encoding). `before_read` runs before each blocking read (flush output then,
// so that a live pipe sees records at once). Errors become "COMMAND: ..." with exit status 2.
// `prepare` configures each reader before its first record.
void read_records(const std::vector<std::string>& paths, const std::string& command,
                  const std::function<void(envelope::Record&&, stream::StreamReader&)>& fn,
                  const std::function<void()>& before_read = {},
                  const std::function<void(stream::StreamReader&)>& prepare = {});

// The descriptor to write PATH ("-": standard output, 1), created or truncated, readable by its owner
// alone (0600: captures and exports hold cookies and credentials); errors are
// "COMMAND: cannot open PATH for writing: ..." with exit status 3 (the job cannot be done).
int open_output(const std::string& path, const std::string& command);

// How a stream is encoded: --format, --compress, --no-compress (every command that writes one).
struct StreamFlags {
  std::string format;  // empty: from the file name (.cbor), else JSONL
  bool compress = false, no_compress = false;
};
void add_stream_flags(CLI::App* sub, StreamFlags& flags);

// The encoding and compression of a stream written to `fd`, opened for `path` ("-" or empty: standard
// output). Encoding: --format, else the name (".cbor" in it: CBOR), else `fallback`. Compression:
// --compress or --no-compress, else zstd for a name ending in ".zst" or when `compress_by_default`
// (segments in a directory), never otherwise: a pipe gets plain JSONL that jq reads. Compressed or
// binary bytes are refused on a terminal (exit 2, with a hint).
stream::WriterOptions stream_options(const std::string& path, int fd, const StreamFlags& flags,
                                     const std::string& command,
                                     stream::Encoding fallback = stream::Encoding::jsonl,
                                     bool compress_by_default = false);

// Where a command that produces a stream writes it: -w PATH (opened here), or standard output unless
// it is a terminal, where one summary line per flow goes instead (`summary_only`).
struct StreamOutput {
  int fd = 1;
  bool to_file = false;
  bool summary_only = false;
  stream::WriterOptions options;
};
StreamOutput open_stream_output(const std::string& write, const StreamFlags& flags, const std::string& command);

// How sluice talks TLS to servers (proxy and replay alike): --insecure, --server-ca, --client-cert,
// --no-tls-resume.
struct ServerTlsFlags {
  bool insecure = false;
  bool no_resume = false;
  std::vector<std::string> server_ca, client_certs;
};
void add_server_tls_flags(CLI::App* sub, ServerTlsFlags& flags);
// The settings those flags make, with SSLKEYLOGFILE from the environment.
tls::TlsSettings server_tls_settings(const ServerTlsFlags& flags);

// How step programs are run (proxy --step, sluice step): --step-timeout, --step-on-error.
struct StepFlags {
  double timeout = 5;            // seconds an answer may take
  std::string on_error = "pass";  // what units in flight get when a step fails: pass or kill
};
void add_step_flags(CLI::App* sub, StepFlags& flags);
std::string step_name(const std::string& command);
step::ProcessStepOptions step_options(const StepFlags& flags, const std::string& command,
                                      const envelope::StreamHeader& header,
                                      std::function<void(envelope::Record)> on_record);

// Rules that change traffic (proxy, transform): mitmproxy's -H/--modify-headers, -B/--modify-body,
// --map-local, --block-list, and --set NAME=VALUE for those options' mitmproxy names (the values --set
// gives an option replace its flag's, as in mitmproxy).
struct TransformFlags {
  step::TransformOptions options;
  std::vector<std::string> set;
};
void add_transform_flags(CLI::App* sub, TransformFlags& flags);
// The step, or null when no rule is given; a rule that does not parse is a usage error naming it.
std::shared_ptr<step::TransformStep> make_transform(const TransformFlags& flags, const std::string& command);

// Which hosts sluice intercepts and contacts (proxy, replay): mitmproxy's --allow-hosts and
// --ignore-hosts, repeatable regular expressions.
struct HostScopeFlags {
  std::vector<std::string> allow, ignore;
};
void add_host_scope_flags(CLI::App* sub, HostScopeFlags& flags, bool proxy);
filter::HostScope make_host_scope(const HostScopeFlags& flags, const std::string& command);

// Redaction of what is recorded (proxy --redact, sluice redact --policy): PRESET or FILE, as
// step::redact_policy reads it; an unknown one is a usage error "COMMAND: FLAG: ...".
std::shared_ptr<step::Redactor> make_redactor(const std::string& spec, const std::string& command, const std::string& flag);

// The safety filter (proxy --safety, replay --safety): PRESET or FILE, as step::safety_policy reads
// it; an unknown one is a usage error "COMMAND: --safety: ...".
step::SafetyPolicy make_safety(const std::string& spec, const std::string& command);

// The offline driver of `sluice step` and `sluice transform`: reads records, sends each unit the proxy
// would have sent through a pipeline of the steps `make` gives (called at the first header), and writes
// the stream the proxy would have recorded with them, in input order. `stop` runs at the end.
struct OfflineIo {
  std::vector<std::string> inputs;
  StreamFlags stream;
  std::string write = "-";
  size_t window = 256;  // units in flight at once
};
using StepFactory = std::function<std::vector<std::shared_ptr<pipeline::Step>>(
    const envelope::StreamHeader& header, std::function<void(envelope::Record)> on_error)>;
int run_offline_steps(const std::string& command, const OfflineIo& io, const StepFactory& make,
                      const std::function<void()>& stop);

// "16MiB", "512k", "0", "1G": a byte count with an optional binary suffix. `what` prefixes errors
// ("proxy: --record-body-limit").
uint64_t parse_size(const std::string& text, const std::string& what);

// The inputs to read, in order: "-" when none; a directory stands for its segments (regular files not
// starting with '.'), sorted by name, which is the order `sluice record` wrote them in.
std::vector<std::string> expand_inputs(const std::vector<std::string>& paths, const std::string& command);

// Each subcommand registers itself: setup_X adds the CLI11 subcommand and, when it is chosen, sets
// `run` to the function that runs it after parsing.
using CommandRunner = std::function<int()>;
void setup_proxy(CLI::App& app, CommandRunner& run);
void setup_show(CLI::App& app, CommandRunner& run);
void setup_ca(CLI::App& app, CommandRunner& run);
void setup_filter(CLI::App& app, CommandRunner& run);
void setup_step(CLI::App& app, CommandRunner& run);
void setup_transform(CLI::App& app, CommandRunner& run);
void setup_redact(CLI::App& app, CommandRunner& run);
void setup_record(CLI::App& app, CommandRunner& run);
void setup_diff(CLI::App& app, CommandRunner& run);
void setup_export(CLI::App& app, CommandRunner& run);
void setup_import(CLI::App& app, CommandRunner& run);
void setup_replay(CLI::App& app, CommandRunner& run);

}  // namespace sluice::cmd
