// sluice: intercept, record, transform and replay network traffic. main() only dispatches.
#include <malloc.h>

#include <csignal>
#include <algorithm>
#include <cstdio>
#include <string_view>
#include <vector>

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

// Edit distance, for "did you mean" (names are short).
size_t distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

// What a parse error says: an unknown command is named with the nearest one; any other error points
// to the help of the command it was given to ("sluice diff --help"), and a missing argument is named
// as that command's help names it.
int usage_error(const CLI::App& app, const CLI::ParseError& e, int argc, char** argv) {
  const CLI::App* sub = nullptr;
  std::string path = "sluice";
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    const CLI::App* scope = sub ? sub : &app;
    const CLI::App* found = nullptr;
    for (const auto* s : scope->get_subcommands({}))
      if (s->get_name() == arg) found = s;
    if (found) {
      sub = found;
      path += " " + found->get_name();
      continue;
    }
    // The first word that is no option, where a command is expected, is an unknown command.
    if (!arg.starts_with("-") && scope->get_require_subcommand_min() > 0 && scope->get_subcommands().empty()) {
      bool value_of_flag = i > 1 && std::string_view(argv[i - 1]).starts_with("-");
      if (!value_of_flag) {
        std::string best;
        size_t best_d = 3;
        for (const auto* s : scope->get_subcommands({}))
          if (size_t d = distance(arg, s->get_name()); d < best_d) best_d = d, best = s->get_name();
        std::string where = path == "sluice" ? "a sluice command" : "a command of " + path;
        std::fprintf(stderr, "sluice: '%s' is not %s%s\nRun '%s --help' for the commands.\n",
                     std::string(arg).c_str(), where.c_str(),
                     best.empty() ? "" : ("; did you mean '" + best + "'?").c_str(), path.c_str());
        return kUsage;
      }
    }
    if (sub) break;
  }
  std::string message = e.what();
  // A missing positional argument, said as the command's synopsis says it.
  static const std::pair<const char*, const char*> kNeeds[] = {
      {"diff", "needs two captures to compare: sluice diff BEFORE AFTER"},
      {"filter", "needs a filter expression: sluice filter EXPR [CAPTURE...]"},
      {"step", "needs the step program to run: sluice step 'COMMAND' [CAPTURE...]"},
      {"record", "needs the file or directory to write: sluice record PATH [CAPTURE...]"},
      {"import", "needs the HAR file to read: sluice import FILE.har ('-': standard input)"},
  };
  if (sub && dynamic_cast<const CLI::RequiredError*>(&e))
    for (const auto& [name, needs] : kNeeds)
      if (sub->get_name() == name) message = needs;
  std::fprintf(stderr, "sluice: %s%s\nRun '%s --help' for usage.\n", sub ? (sub->get_name() + ": ").c_str() : "",
               message.c_str(), path.c_str());
  return kUsage;
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
  setup_step(app, run);
  setup_transform(app, run);
  setup_redact(app, run);
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
    return usage_error(app, e, argc, argv);
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
