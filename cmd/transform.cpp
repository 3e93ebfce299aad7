// sluice transform [RULES] [CAPTURE...]: apply rules (mitmproxy's -H, -B, --map-local, --block-list) to a
// recorded stream, as `sluice proxy` with the same rules would have: each changed unit's original and its
// variant named after the rules, a blocked or locally answered request marked and its answer after it.
// `sluice replay` then sends the last variant, what the server would have received.
#include <CLI/CLI.hpp>

#include "common.hpp"

namespace sluice::cmd {
namespace {

struct TransformConfig {
  TransformFlags rules;
  OfflineIo io;
};

int run_transform(const TransformConfig& cfg) {
  auto step = make_transform(cfg.rules, "transform");
  if (!step)
    throw CommandError(kUsage, "transform: no rule given (-H, -B, --map-local, --block-list or --set NAME=VALUE)");
  auto make = [&](const envelope::StreamHeader&, std::function<void(envelope::Record)>) {
    return std::vector<std::shared_ptr<pipeline::Step>>{step};
  };
  return run_offline_steps("transform", cfg.io, make, {});
}

}  // namespace

void setup_transform(CLI::App& app, CommandRunner& run) {
  auto cfg = std::make_shared<TransformConfig>();
  auto* sub = app.add_subcommand("transform", "Apply rules (mitmproxy's -H, -B, --map-local, --block-list) to a recorded stream");
  sub->add_option("files", cfg->io.inputs, "Captures to read ('-' or none: standard input)");
  add_transform_flags(sub, cfg->rules);
  add_stream_flags(sub, cfg->io.stream);
  sub->add_option("-w,--write", cfg->io.write, "Write to PATH instead of standard output ('-')");
  sub->callback([&run, cfg] { run = [cfg] { return run_transform(*cfg); }; });
}

}  // namespace sluice::cmd
