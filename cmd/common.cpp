#include "common.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <cerrno>
#include <cstring>

#include <CLI/CLI.hpp>
#include <cstdlib>

#include "stream/fd_io.hpp"
#include "stream/format.hpp"
#include "stream/reader.hpp"

namespace sluice::cmd {

Output::~Output() {
  try {
    flush();
  } catch (...) {
    // Destructors must not throw; a failed final flush was already reported or is a broken pipe.
  }
}

void Output::write(std::string_view s) {
  buf_.append(s);
  if (buf_.size() >= (1u << 16)) flush();
}

void Output::flush() {
  if (buf_.empty()) return;
  auto r = stream::write_all(fd_, buf_);
  buf_.clear();
  if (!r) {
    if (stream::last_error_was_broken_pipe()) throw BrokenPipe{};
    throw CommandError(kFailure, "cannot write output: " + r.error().message);
  }
}

bool is_terminal(int fd) { return ::isatty(fd) == 1; }

std::vector<std::string> expand_inputs(const std::vector<std::string>& paths, const std::string& command) {
  std::vector<std::string> out;
  if (paths.empty()) return {"-"};
  for (const auto& p : paths) {
    struct stat st{};
    if (p == "-" || ::stat(p.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      out.push_back(p);  // a file (or an error the reader will name)
      continue;
    }
    DIR* d = ::opendir(p.c_str());
    if (!d) throw CommandError(kUsage, command + ": cannot read directory " + p + ": " + std::strerror(errno));
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name.empty() || name[0] == '.') continue;
      struct stat fst{};
      // An empty segment holds no record (a recorder stopped before its first write).
      if (::stat((p + "/" + name).c_str(), &fst) == 0 && S_ISREG(fst.st_mode) && fst.st_size > 0) names.push_back(name);
    }
    ::closedir(d);
    if (names.empty()) throw CommandError(kUsage, command + ": " + p + " is a directory without captures (no segment files)");
    std::sort(names.begin(), names.end());  // segment names sort in the order they were written
    for (const auto& n : names) out.push_back(p + "/" + n);
  }
  return out;
}



void read_records(const std::vector<std::string>& paths, const std::string& command,
                  const std::function<void(envelope::Record&&, stream::StreamReader&)>& fn,
                  const std::function<void()>& before_read,
                  const std::function<void(stream::StreamReader&)>& prepare) {
  for (const auto& path : expand_inputs(paths, command)) {
    auto reader = stream::StreamReader::open(path);
    if (!reader) throw CommandError(kUsage, command + ": " + reader.error().message);
    if (before_read) (*reader)->set_before_read(before_read);
    if (prepare) prepare(**reader);
    while (true) {
      auto next = (*reader)->next();
      if (!next) throw CommandError(kUsage, command + ": " + next.error().message);
      if (!*next) break;
      fn(std::move(**next), **reader);
    }
  }
}

int open_output(const std::string& path, const std::string& command) {
  if (path == "-") return 1;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw CommandError(kFailure, command + ": cannot open " + path + " for writing: " + std::strerror(errno));
  return fd;
}

uint64_t parse_size(const std::string& text, const std::string& what) {
  size_t end = 0;
  uint64_t n = 0;
  while (end < text.size() && text[end] >= '0' && text[end] <= '9') {
    if (n > (UINT64_MAX - 9) / 10) throw CommandError(kUsage, what + ": number too large: " + text);
    n = n * 10 + static_cast<uint64_t>(text[end++] - '0');
  }
  std::string unit = text.substr(end);
  for (auto& c : unit) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  uint64_t mul = 0;
  if (unit.empty() || unit == "b") mul = 1;
  else if (unit == "k" || unit == "kb" || unit == "kib") mul = 1ull << 10;
  else if (unit == "m" || unit == "mb" || unit == "mib") mul = 1ull << 20;
  else if (unit == "g" || unit == "gb" || unit == "gib") mul = 1ull << 30;
  if (end == 0 || mul == 0) throw CommandError(kUsage, what + ": expected a size like 16MiB, 512k or 0, got '" + text + "'");
  if (n > UINT64_MAX / mul) throw CommandError(kUsage, what + ": number too large: " + text);
  return n * mul;
}

void add_stream_flags(CLI::App* sub, StreamFlags& flags) {
  sub->add_option("--format", flags.format, "Stream encoding: jsonl or cbor (default: from the file name, else jsonl)")
      ->check(CLI::IsMember({"jsonl", "cbor"}));
  sub->add_flag("--compress", flags.compress, "zstd-compress the stream (the default for a file named *.zst)");
  sub->add_flag("--no-compress", flags.no_compress, "Write the stream uncompressed, whatever the file name");
}

stream::WriterOptions stream_options(const std::string& path, int fd, const StreamFlags& flags,
                                     const std::string& command, stream::Encoding fallback, bool compress_by_default) {
  if (flags.compress && flags.no_compress)
    throw CommandError(kUsage, command + ": --compress and --no-compress conflict");
  bool file = !path.empty() && path != "-";
  std::string_view name = file ? std::string_view(path).substr(path.rfind('/') + 1) : std::string_view();
  auto named = [&](std::string_view ext) { return name.find(ext) != std::string_view::npos; };
  stream::WriterOptions o;
  o.encoding = !flags.format.empty() ? *stream::parse_encoding(flags.format)
               : named(".cbor")      ? stream::Encoding::cbor
               : named(".jsonl")     ? stream::Encoding::jsonl
                                     : fallback;
  bool zstd = flags.compress || (!flags.no_compress && (compress_by_default || name.ends_with(".zst")));
  o.compression = zstd ? stream::Compression::zstd : stream::Compression::none;
  if (is_terminal(fd)) {
    // `record` writes to a terminal only its --tee copy; the others write a stream there with -w -.
    bool tee = command == "record";
    if (zstd)
      throw CommandError(kUsage, command + ": refusing to write compressed data to a terminal (drop --compress, "
                                           "pipe it on, or write a file with -w FILE.zst)");
    if (o.encoding == stream::Encoding::cbor)
      throw CommandError(kUsage, command + ": refusing to write binary CBOR to a terminal (" +
                                     (tee ? "pipe the --tee copy on, or drop --tee)"
                                          : "pipe it on, or write a file with -w FILE.cbor)"));
  }
  return o;
}

StreamOutput open_stream_output(const std::string& write, const StreamFlags& flags, const std::string& command) {
  StreamOutput out;
  out.to_file = !write.empty() && write != "-";
  out.summary_only = !out.to_file && write.empty() && is_terminal(1);
  if (out.summary_only) return out;
  if (out.to_file) out.fd = open_output(write, command);
  try {
    out.options = stream_options(write, out.fd, flags, command);
  } catch (...) {
    if (out.to_file) ::close(out.fd);
    throw;
  }
  return out;
}

void add_server_tls_flags(CLI::App* sub, ServerTlsFlags& flags) {
  sub->add_flag("--insecure", flags.insecure, "Do not verify servers' TLS certificates");
  sub->add_option("--server-ca", flags.server_ca, "Also trust the CA certificates in FILE (PEM) for servers, repeatable");
  sub->add_option("--client-cert", flags.client_certs,
                  "FILE[:HOST_PATTERN]: present the certificate and key in FILE (PEM) to matching servers, repeatable");
  sub->add_flag("--no-tls-resume", flags.no_resume,
                "Do not resume TLS sessions with servers: every server connection makes a full handshake");
}

// What a step is called in messages and records: its script's file name when the command runs one
// ("python3 steps/add_header.py --host x" is add_header.py), else its program's.
std::string step_name(const std::string& command) {
  std::vector<std::string> words;
  for (size_t i = 0; i < command.size();) {
    size_t end = command.find(' ', i);
    if (end == std::string::npos) end = command.size();
    if (end > i) words.push_back(command.substr(i, end - i));
    i = end + 1;
  }
  if (words.empty()) return command;
  auto base = [](const std::string& w) { return w.substr(w.rfind('/') + 1); };
  for (const auto& w : words)
    if (w[0] != '-' && base(w).find('.') != std::string::npos) return base(w);
  return base(words[0]);
}

void add_step_flags(CLI::App* sub, StepFlags& flags) {
  sub->add_option("--step-timeout", flags.timeout,
                  "Seconds a step program may take to answer a unit before it counts as hung (default 5)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--step-on-error", flags.on_error,
                  "What units in flight get when a step program fails: pass (sent on as they are) or kill")
      ->check(CLI::IsMember({"pass", "kill"}));
}

step::ProcessStepOptions step_options(const StepFlags& flags, const std::string& command,
                                      const envelope::StreamHeader& header,
                                      std::function<void(envelope::Record)> on_record) {
  step::ProcessStepOptions o;
  o.command = command;
  o.name = "step:" + step_name(command);
  o.timeout = std::chrono::milliseconds(static_cast<int64_t>(flags.timeout * 1000));
  o.on_error = flags.on_error == "kill" ? step::OnError::kill : step::OnError::pass;
  o.header = header;
  o.on_record = std::move(on_record);
  return o;
}

tls::TlsSettings server_tls_settings(const ServerTlsFlags& flags) {
  tls::TlsSettings settings;
  settings.insecure = flags.insecure;
  settings.server_ca = flags.server_ca;
  if (flags.no_resume) settings.server_sessions = 0;
  for (const auto& spec : flags.client_certs) settings.client_certs.push_back(tls::parse_client_cert_spec(spec));
  if (const char* keylog = std::getenv("SSLKEYLOGFILE"); keylog && *keylog) settings.keylog_path = keylog;
  return settings;
}

}  // namespace sluice::cmd

namespace sluice::cmd {

void add_transform_flags(CLI::App* sub, TransformFlags& flags) {
  auto& o = flags.options;
  sub->add_option("-H,--modify-headers", o.modify_headers,
                  "Set or remove a header: [/FILTER]/NAME/[@]VALUE, any separator; an empty VALUE removes "
                  "(mitmproxy's modify_headers), repeatable");
  sub->add_option("-B,--modify-body", o.modify_body,
                  "Replace in bodies: [/FILTER]/REGEX/[@]REPLACEMENT, any separator (mitmproxy's modify_body), "
                  "repeatable");
  sub->add_option("--map-local", o.map_local,
                  "Answer from local files: [/FILTER]/URL-REGEX/FILE-OR-DIRECTORY (mitmproxy's map_local), "
                  "repeatable");
  sub->add_option("-M,--map-remote", o.map_remote,
                  "Send requests elsewhere: [/FILTER]/URL-REGEX/REPLACEMENT, any separator; the URL is rewritten "
                  "with re.sub and the request goes where it now points (mitmproxy's map_remote), repeatable");
  sub->add_option("--block-list", o.block_list,
                  "Answer matching requests with an empty response: /FILTER/STATUS, 444 closes the connection "
                  "(mitmproxy's block_list), repeatable");
  sub->add_option("--rules", o.rules_file,
                  "A rule file (JSON, formats/rules.schema.json) for what the flags cannot say, on HTTP, WebSocket, "
                  "SSE, gRPC and raw messages; the proxy reads it again on SIGHUP")
      ->type_name("FILE");
  sub->add_option("--set", flags.set,
                  "NAME=VALUE for mitmproxy's options modify_headers, modify_body, map_local, map_remote, block_list "
                  "(repeatable; an option's --set values replace its flag's)");
}

std::shared_ptr<step::TransformStep> make_transform(const TransformFlags& flags, const std::string& command) {
  step::TransformOptions o = flags.options;
  std::map<std::string, std::vector<std::string>> set;
  for (const auto& spec : flags.set) {
    size_t eq = spec.find('=');
    std::string name = spec.substr(0, eq);
    auto& values = set[name];
    if (eq != std::string::npos) values.push_back(spec.substr(eq + 1));
  }
  for (auto& [name, values] : set) {
    std::vector<std::string>* target = name == "modify_headers" ? &o.modify_headers
                                       : name == "modify_body"  ? &o.modify_body
                                       : name == "map_local"    ? &o.map_local
                                       : name == "map_remote"   ? &o.map_remote
                                       : name == "block_list"   ? &o.block_list
                                                                : nullptr;
    if (!target)
      throw CommandError(kUsage, command + ": --set: unknown option '" + name +
                                     "' (sluice takes modify_headers, modify_body, map_local, map_remote and block_list)");
    *target = std::move(values);
  }
  if (o.empty()) return nullptr;
  auto step = step::TransformStep::create(o);
  if (!step) throw CommandError(kUsage, command + ": " + step.error().message);
  return std::move(*step);
}

void add_host_scope_flags(CLI::App* sub, HostScopeFlags& flags, bool proxy) {
  sub->add_option("--allow-hosts", flags.allow,
                  proxy ? "Intercept only connections to hosts matching REGEX (CONNECT/SOCKS5 host or SNI); tunnel "
                          "the others untouched, recording only their summary (mitmproxy's allow_hosts), repeatable"
                        : "Send only to hosts matching REGEX; refuse the others (mitmproxy's allow_hosts), repeatable");
  sub->add_option("--ignore-hosts", flags.ignore,
                  proxy ? "Tunnel connections to hosts matching REGEX without interception, recording only their "
                          "summary (mitmproxy's ignore_hosts), repeatable"
                        : "Refuse to send to hosts matching REGEX (mitmproxy's ignore_hosts), repeatable");
}

filter::HostScope make_host_scope(const HostScopeFlags& flags, const std::string& command) {
  auto scope = filter::HostScope::make(flags.allow, flags.ignore);
  if (!scope) throw CommandError(kUsage, command + ": " + scope.error().message);
  return std::move(*scope);
}

std::shared_ptr<step::Redactor> make_redactor(const std::string& spec, const std::string& command, const std::string& flag) {
  auto policy = step::redact_policy(spec);
  if (!policy) throw CommandError(kUsage, command + ": " + flag + ": " + policy.error().message);
  return std::make_shared<step::Redactor>(std::move(*policy));
}

step::SafetyPolicy make_safety(const std::string& spec, const std::string& command) {
  auto policy = step::safety_policy(spec);
  if (!policy) throw CommandError(kUsage, command + ": --safety: " + policy.error().message);
  return std::move(*policy);
}

}  // namespace sluice::cmd
