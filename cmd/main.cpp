// sluice: intercept, record, transform and replay network traffic. main() only dispatches.
#include <malloc.h>

#include <csignal>
#include <cstdio>

#include <CLI/CLI.hpp>

#include "common.hpp"

using namespace sluice::cmd;

namespace {
// Prints "SUBCOMMAND --flag" for every flag of every subcommand; the documentation test checks that
// man pages and completions name them all.
// Nested subcommands (`ca export`) list their flags under the top-level name, and their own names as
// "SUBCOMMAND VERB" lines without a dash.
void dump_options(const std::string& top, const CLI::App& sub) {
  for (const auto* opt : sub.get_options()) {
    for (const auto& l : opt->get_lnames()) std::printf("%s --%s\n", top.c_str(), l.c_str());
    for (const auto& s : opt->get_snames()) std::printf("%s -%s\n", top.c_str(), s.c_str());
  }
  for (const auto* verb : sub.get_subcommands({})) {
    std::printf("%s %s\n", top.c_str(), verb->get_name().c_str());
    dump_options(top, *verb);
  }
}

void dump_cli(const CLI::App& app) {
  for (const auto* sub : app.get_subcommands({})) {
    std::printf("%s\n", sub->get_name().c_str());
    dump_options(sub->get_name(), *sub);
  }
}

// A repeatable option takes one value per occurrence (`--server-ca A --server-ca B`), so that
// `sluice replay --server-ca ca.pem capture` does not swallow the capture (CLI11's vectors otherwise
// take every value up to the next flag).
void one_value_per_flag(CLI::App& app) {
  for (CLI::Option* opt : app.get_options())
    if (!opt->get_positional()) opt->allow_extra_args(false);
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) one_value_per_flag(*sub);
}

}  // namespace

int main(int argc, char** argv) {
  // Writes to a closed pipe fail with EPIPE (reported quietly) instead of killing us silently mid-record.
  std::signal(SIGPIPE, SIG_IGN);
  // Large buffers (bodies, records of several MiB) always get their own mapping, returned when freed:
  // glibc otherwise raises its mmap threshold after the first such free and serves the next ones from
  // the heap, whose memory stays with the process (the 1 GiB download's RSS bound).
  mallopt(M_MMAP_THRESHOLD, 1 << 20);

  CLI::App app{"sluice: intercept, record, transform and replay network traffic", "sluice"};
  app.set_version_flag("--version", std::string("sluice ") + SLUICE_VERSION);
  app.require_subcommand(1);
  bool dump = false;
  app.add_flag("--dump-cli", dump, "List every subcommand and flag (for tests)")->group("");
  CommandRunner run;
  setup_proxy(app, run);
  setup_show(app, run);
  setup_ca(app, run);
  setup_filter(app, run);
  setup_record(app, run);
  setup_diff(app, run);
  setup_export(app, run);
  setup_import(app, run);
  setup_replay(app, run);
  one_value_per_flag(app);

  try {
    if (argc >= 2 && std::string_view(argv[1]) == "--dump-cli") {
      dump_cli(app);
      return kOk;
    }
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "sluice: %s\nRun 'sluice --help' for usage.\n", e.what());
    return kUsage;
  }
  try {
    return run ? run() : kUsage;
  } catch (const BrokenPipe&) {
    return kOk;
  } catch (const CommandError& e) {
    std::fprintf(stderr, "sluice: %s\n", e.what());
    return e.code;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sluice: %s\n", e.what());
    return kFailure;
  }
}
