// sluice ca: the local certificate authority TLS interception signs with.
//   init        create it (if absent) and say where it is
//   path        print its directory
//   export      print the certificate (pem, der, or a p12 bundle)
//   spki        print base64(SHA-256(SPKI)) for Chromium's --ignore-certificate-errors-spki-list
//   trust-hint  print the commands that make common clients trust it
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <CLI/CLI.hpp>

#include "common.hpp"
#include "tls/ca.hpp"

namespace sluice::cmd {
namespace {

struct CaConfig {
  std::string dir;
  std::string format = "pem";
  std::string output = "-";
  std::string password;
};

tls::CertificateAuthority open_ca(const CaConfig& cfg, bool* created = nullptr) {
  auto ca = tls::CertificateAuthority::open_or_create(cfg.dir, created);
  if (!ca) throw CommandError(kFailure, "ca: " + ca.error().message);
  return std::move(*ca);
}

void emit(const CaConfig& cfg, std::string_view data) {
  int fd = 1;
  bool to_file = cfg.output != "-";
  if (to_file) {
    fd = ::open(cfg.output.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw CommandError(kUsage, "ca: cannot open " + cfg.output + " for writing: " + std::strerror(errno));
  } else if (cfg.format != "pem" && is_terminal(1)) {
    throw CommandError(kUsage, "ca: not writing binary " + cfg.format + " to a terminal; use -o PATH or a pipe");
  }
  Output out(fd);
  out.write(data);
  out.flush();
  if (to_file) ::close(fd);
}

int run_ca(const std::string& verb, const CaConfig& cfg) {
  Output out;
  if (verb == "path") {
    out.line(cfg.dir);
  } else if (verb == "init") {
    bool created = false;
    auto ca = open_ca(cfg, &created);
    out.line(std::string(created ? "created " : "exists ") + cfg.dir + "/ca.pem");
    out.line("sha256 " + ca.fingerprint_sha256());
  } else if (verb == "export") {
    auto ca = open_ca(cfg);
    if (cfg.format == "pem") {
      emit(cfg, ca.cert_pem());
    } else if (cfg.format == "der") {
      emit(cfg, ca.cert_der());
    } else {
      auto p12 = ca.cert_p12(cfg.password);
      if (!p12) throw CommandError(kFailure, "ca: " + p12.error().message);
      emit(cfg, *p12);
    }
  } else if (verb == "spki") {
    out.line(open_ca(cfg).spki_sha256_base64());
  } else if (verb == "trust-hint") {
    auto ca = open_ca(cfg);
    std::string pem = cfg.dir + "/ca.pem";
    out.line("# The sluice CA: " + ca.subject() + ", sha256 " + ca.fingerprint_sha256());
    out.line("# Debian/Ubuntu system store (curl, wget, most programs):");
    std::string sudo = ::geteuid() == 0 ? "" : "sudo ";  // root needs none (and may not have it)
    out.line(sudo + "cp " + pem + " /usr/local/share/ca-certificates/sluice.crt && " + sudo + "update-ca-certificates");
    out.line("# Chromium and Firefox (NSS database of the current user):");
    out.line("certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n sluice -i " + pem);
    out.line("# Chromium for one run, without installing anything:");
    out.line("chromium --ignore-certificate-errors-spki-list=" + ca.spki_sha256_base64());
    out.line("# curl for one run:");
    out.line("curl --cacert " + pem + " ...");
    out.line("# Python requests:");
    out.line("export REQUESTS_CA_BUNDLE=" + pem);
    out.line("# Node.js:");
    out.line("export NODE_EXTRA_CA_CERTS=" + pem);
  }
  out.flush();
  return kOk;
}

}  // namespace

void setup_ca(CLI::App& app, CommandRunner& run) {
  auto cfg = std::make_shared<CaConfig>();
  auto* ca = app.add_subcommand("ca", "The local certificate authority TLS interception signs with");
  ca->add_option("--ca-dir", cfg->dir, "CA directory (default $XDG_DATA_HOME/sluice/ca or ~/.local/share/sluice/ca)");
  ca->require_subcommand(1);
  struct Verb {
    const char* name;
    const char* help;
  };
  for (Verb v : {Verb{"init", "Create the CA if absent and say where it is"}, Verb{"path", "Print the CA directory"},
                 Verb{"export", "Print the CA certificate"},
                 Verb{"spki", "Print the SPKI hash for Chromium's --ignore-certificate-errors-spki-list"},
                 Verb{"trust-hint", "Print the commands that make clients trust the CA"}}) {
    auto* sub = ca->add_subcommand(v.name, v.help);
    // Where users learn it (`sluice proxy --ca-dir`), after the verb, works too.
    sub->add_option("--ca-dir", cfg->dir, "CA directory (as before the verb)");
    if (std::string_view(v.name) == "export") {
      sub->add_option("--format", cfg->format, "pem (default), der, or p12")->check(CLI::IsMember({"pem", "der", "p12"}));
      sub->add_option("-o,--output", cfg->output, "Write to PATH instead of standard output ('-')");
      sub->add_option("--password", cfg->password, "Password of the p12 bundle (default: empty)");
    }
    sub->callback([&run, cfg, name = std::string(v.name)] {
      if (cfg->dir.empty()) cfg->dir = tls::default_ca_dir();
      run = [cfg, name] { return run_ca(name, *cfg); };
    });
  }
}

}  // namespace sluice::cmd
