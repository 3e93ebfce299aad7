// sluice diff A B: pair the HTTP exchanges of two captures and report added, missing and changed ones.
#include <CLI/CLI.hpp>

#include "common.hpp"
#include "core/json.hpp"
#include "diff/diff.hpp"
#include "stream/reader.hpp"

namespace sluice::cmd {
namespace {

struct DiffConfig {
  std::string a, b;
  diff::Options options;
  bool json = false;
  bool all = false;  // also list the flows that are the same
};

std::vector<diff::Exchange> load(const std::string& path) {
  diff::ExchangeCollector c;
  read_records({path}, "diff", [&](envelope::Record&& r, const stream::StreamReader&) { c.add(r); });
  return c.take();
}

const char* kind_name(diff::PairResult::Kind k) {
  switch (k) {
    case diff::PairResult::Kind::same: return "same";
    case diff::PairResult::Kind::changed: return "changed";
    case diff::PairResult::Kind::added: return "added";
    case diff::PairResult::Kind::missing: return "missing";
  }
  return "";
}

int run_diff(DiffConfig cfg) {
  if (cfg.a == "-" && cfg.b == "-") throw CommandError(kUsage, "diff: only one of A and B can be standard input");
  auto a = load(cfg.a);
  auto b = load(cfg.b);
  auto results = diff::diff(a, b, cfg.options);
  size_t counts[4] = {0, 0, 0, 0};
  for (const auto& r : results) ++counts[static_cast<int>(r.kind)];
  bool differ = counts[1] + counts[2] + counts[3] > 0;
  Output out;
  if (cfg.json) {
    core::Value flows = core::Value::array();
    for (const auto& r : results) {
      if (r.kind == diff::PairResult::Kind::same && !cfg.all) continue;
      const diff::Exchange* e = r.b ? r.b : r.a;
      core::Value f = core::Value::object();
      f.add("kind", core::Value(kind_name(r.kind)));
      f.add("method", core::Value(e->method));
      f.add("url", core::Value(e->url));
      f.add("a", r.a ? core::Value(r.a->flow_id) : core::Value(nullptr));
      f.add("b", r.b ? core::Value(r.b->flow_id) : core::Value(nullptr));
      core::Value ds = core::Value::array();
      for (const auto& d : r.differences) {
        core::Value x = core::Value::object();
        x.add("what", core::Value(d.what));
        x.add("before", core::Value(d.before));
        x.add("after", core::Value(d.after));
        ds.as_array().push_back(std::move(x));
      }
      f.add("differences", std::move(ds));
      flows.as_array().push_back(std::move(f));
    }
    core::Value summary = core::Value::object();
    summary.add("same", core::Value(static_cast<int64_t>(counts[0])));
    summary.add("changed", core::Value(static_cast<int64_t>(counts[1])));
    summary.add("added", core::Value(static_cast<int64_t>(counts[2])));
    summary.add("missing", core::Value(static_cast<int64_t>(counts[3])));
    core::Value doc = core::Value::object();
    doc.add("differ", core::Value(differ));
    doc.add("summary", std::move(summary));
    doc.add("flows", std::move(flows));
    out.line(core::json_write(doc));
  } else {
    for (const auto& r : results) {
      const diff::Exchange* e = r.b ? r.b : r.a;
      switch (r.kind) {
        case diff::PairResult::Kind::same:
          if (cfg.all) out.line("  " + e->method + " " + e->url);
          break;
        case diff::PairResult::Kind::added: out.line("+ " + e->method + " " + e->url + "  (only in B: " + e->flow_id + ")"); break;
        case diff::PairResult::Kind::missing:
          out.line("- " + e->method + " " + e->url + "  (only in A: " + e->flow_id + ")");
          break;
        case diff::PairResult::Kind::changed:
          out.line("~ " + e->method + " " + e->url + "  (" + r.a->flow_id + " -> " + r.b->flow_id + ")");
          for (const auto& d : r.differences) out.line("    " + d.what + ": " + d.before + " -> " + d.after);
          break;
      }
    }
    out.line(std::to_string(results.size()) + " flows: " + std::to_string(counts[1]) + " changed, " +
             std::to_string(counts[2]) + " added, " + std::to_string(counts[3]) + " missing, " +
             std::to_string(counts[0]) + " the same");
  }
  out.flush();
  return differ ? kDifference : kOk;
}

}  // namespace

void setup_diff(CLI::App& app, CommandRunner& run) {
  auto cfg = std::make_shared<DiffConfig>();
  auto* sub = app.add_subcommand("diff", "Compare the HTTP exchanges of two captures");
  sub->add_option("before", cfg->a, "The capture before (file, directory, or '-')")->required();
  sub->add_option("after", cfg->b, "The capture after")->required();
  sub->add_option("--ignore-param", cfg->options.ignore_params, "Query parameter left out of pairing, repeatable");
  sub->add_flag("--ignore-host", cfg->options.ignore_host, "Pair requests whatever their scheme and host");
  sub->add_flag("--ignore-body", cfg->options.ignore_body, "Pair requests whatever their body");
  sub->add_option("--ignore-header", cfg->options.ignore_headers, "Response header not compared, repeatable");
  sub->add_option("--ignore-json-path", cfg->options.ignore_json_paths,
                  "JSON body path not compared ($.a.b, $.items[*].id), repeatable");
  sub->add_flag("--json", cfg->json, "Write the report as one JSON document");
  sub->add_flag("--all", cfg->all, "Also list the flows that are the same");
  sub->callback([&run, cfg] { run = [cfg] { return run_diff(*cfg); }; });
}

}  // namespace sluice::cmd
