// sluice step 'CMD' [CAPTURE...]: run a step program over a recorded stream and write the stream the proxy
// would have recorded with it: each unit's original, its variant when the step changed it, a drop or kill
// marked on the original, a step's own reply after the request it answered.
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <tuple>

#include <CLI/CLI.hpp>

#include "common.hpp"
#include "pipeline/pipeline.hpp"
#include "step/process_step.hpp"
#include "stream/writer.hpp"

namespace sluice::cmd {
namespace {

struct StepConfig {
  std::string command;
  StepFlags step;
  OfflineIo io;
};

// Records in input order; a unit's slot is filled when its step answers (on the step's thread).
struct Slot {
  std::vector<envelope::Record> records;
  bool done = false;
  bool unit = false;  // what the steps made of a unit (else a record passed on as it came)
};

}  // namespace

int run_offline_steps(const std::string& command, const OfflineIo& cfg, const StepFactory& make,
                      const std::function<void()>& stop) {
  int out_fd = open_output(cfg.write, command);
  const stream::WriterOptions wopts = stream_options(cfg.write, out_fd, cfg.stream, command);
  stream::StreamWriter writer(out_fd, wopts);

  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::shared_ptr<Slot>> slots;
  size_t in_flight = 0;
  bool started = false;
  std::vector<std::shared_ptr<pipeline::Step>> steps;

  auto flush = [&] {
    if (auto r = writer.flush(); !r) {
      if (writer.broken_pipe()) throw BrokenPipe{};
      throw CommandError(kFailure, command + ": cannot write output: " + r.error().message);
    }
  };
  // Units the steps changed in this run (stream, flow, seq), the last few thousand: a recorded
  // variant the proxy made of one of them (its own wire edits, `modified_by: sluice`) was made from
  // bytes that would no longer have been sent, so it is left out (the step's variant is then the last,
  // the one replay sends). Variants the input already had pass as they came, with the proxy's after them.
  std::set<std::tuple<std::string, std::string, uint64_t>> changed;
  std::deque<std::tuple<std::string, std::string, uint64_t>> changed_order;
  auto superseded = [&](const envelope::Record& r, bool from_steps) {
    const auto* e = std::get_if<envelope::Envelope>(&r);
    if (!e || !e->modified || !e->variant_of) return false;
    auto key = std::make_tuple(e->stream_id, e->flow_id, *e->variant_of);
    if (!from_steps) return e->modified_by == "sluice" && changed.count(key) > 0;
    if (changed.insert(key).second) changed_order.push_back(std::move(key));
    if (changed_order.size() > 4096) {
      changed.erase(changed_order.front());
      changed_order.pop_front();
    }
    return false;
  };
  auto write_done = [&](std::unique_lock<std::mutex>& lock) {
    while (!slots.empty() && slots.front()->done) {
      auto slot = std::move(slots.front());
      slots.pop_front();
      lock.unlock();
      for (const auto& r : slot->records)
        if (!superseded(r, slot->unit) && !writer.write(r)) flush();  // surfaces the error
      lock.lock();
    }
  };
  auto done_slot = [](envelope::Record r) {
    auto slot = std::make_shared<Slot>();
    slot->records.push_back(std::move(r));
    slot->done = true;
    return slot;
  };
  auto push = [&](envelope::Record r) {
    std::unique_lock lock(mu);
    slots.push_back(done_slot(std::move(r)));
    write_done(lock);
  };

  std::set<std::pair<std::string, std::string>> h2_connects;  // (stream, flow) of HTTP/2 extended CONNECTs
  std::set<std::pair<std::string, std::string>> h2_flows;     // ... of HTTP/2 requests, until their response
  read_records(
      cfg.inputs, command,
      [&](envelope::Record&& r, const stream::StreamReader&) {
        if (auto* h = std::get_if<envelope::StreamHeader>(&r)) {
          if (!started) {
            started = true;
            // An error record (from the step's thread) takes its place in the order; the main thread writes it.
            auto on_error = [&](envelope::Record e) {
              std::lock_guard lock(mu);
              slots.push_back(done_slot(std::move(e)));
              cv.notify_all();
            };
            steps = make(*h, on_error);
          }
          push(std::move(r));
          return;
        }
        auto* env = std::get_if<envelope::Envelope>(&r);
        // Live, the response to an HTTP/2 extended CONNECT is not sent to steps: such flows are known
        // from their request, until their response.
        bool not_unit = false;
        bool over_h2 = false;  // (a response translated from an HTTP/1.1 server says HTTP/1.1)
        if (env && env->protocol == envelope::Protocol::http && !env->modified && env->overlay.empty()) {
          if (const auto* m = std::get_if<envelope::HttpMessage>(&env->message)) {
            auto key = std::make_pair(env->stream_id, env->flow_id);
            bool request = m->kind == envelope::HttpMessage::Kind::request;
            if (request && m->version == "HTTP/2" && m->method == "CONNECT") {
              h2_connects.insert(key);
            } else if (!request) {
              not_unit = h2_connects.erase(key) > 0;
              over_h2 = h2_flows.erase(key) > 0;
            }
            if (request && m->version == "HTTP/2") h2_flows.insert(std::move(key));
          }
        }
        // A message that streamed was judged by its head first: the head goes to the step, then the
        // message is written as the proxy records it (with the head the step left).
        std::optional<envelope::Envelope> head = env && !not_unit ? step::head_unit_of(*env, over_h2) : std::nullopt;
        if (!env || not_unit || (!head && !step::is_unit(*env))) {
          push(std::move(r));
          return;
        }
        if (!started)
          throw CommandError(kUsage, command + ": the stream has no header record before its first envelope");
        auto slot = std::make_shared<Slot>();
        slot->unit = true;
        {
          std::unique_lock lock(mu);
          cv.wait(lock, [&] { return in_flight < cfg.window; });
          ++in_flight;
          slots.push_back(slot);
        }
        // A pipeline per unit, kept alive by its own completion (a held unit resumes it later).
        auto pipe = std::make_shared<pipeline::Pipeline>([slot](const envelope::Envelope& e) { slot->records.emplace_back(e); });
        for (const auto& step : steps) pipe->add(step);
        std::function<void(pipeline::Result)> finish = [&, slot, pipe](pipeline::Result res) {
          if (res.outcome == pipeline::Outcome::respond && res.reply) slot->records.emplace_back(*res.reply);
          std::lock_guard lock(mu);
          slot->done = true;
          --in_flight;
          cv.notify_all();
        };
        std::optional<envelope::Envelope> message;
        if (head) message = std::move(*env);
        pipe->run(head ? std::move(*head) : std::move(*env), [&, slot, pipe, finish, message = std::move(message)](pipeline::Result res) mutable {
          if (message && res.outcome == pipeline::Outcome::next) {
            if (res.envelope.modified) step::apply_head(*message, res.envelope);
            // Asked whole (a 100-continue request the proxy then buffers): the message is a unit too.
            if (res.whole && step::is_unit(*message)) {
              std::erase_if(message->tags, [](const auto& t) { return t.first == "streamed"; });
              pipe->run(std::move(*message), finish);
              return;
            }
          }
          if (message) slot->records.emplace_back(std::move(*message));
          finish(std::move(res));
        });
        std::unique_lock lock(mu);
        write_done(lock);
      },
      flush);
  {
    std::unique_lock lock(mu);
    while (!slots.empty()) {
      cv.wait(lock, [&] { return slots.empty() || slots.front()->done; });
      write_done(lock);
    }
  }
  if (stop) stop();
  flush();
  if (out_fd != 1) ::close(out_fd);
  return kOk;
}

namespace {

int run_step(const StepConfig& cfg) {
  std::shared_ptr<step::ProcessStep> program;
  auto make = [&](const envelope::StreamHeader& h, std::function<void(envelope::Record)> on_error) {
    program = std::make_shared<step::ProcessStep>(step_options(cfg.step, cfg.command, h, std::move(on_error)));
    return std::vector<std::shared_ptr<pipeline::Step>>{program};
  };
  return run_offline_steps("step", cfg.io, make, [&] {
    if (program) program->stop();
  });
}

}  // namespace

void setup_step(CLI::App& app, CommandRunner& run) {
  auto cfg = std::make_shared<StepConfig>();
  auto* sub = app.add_subcommand("step", "Run a step program (formats/STEP.md) over a recorded stream");
  sub->add_option("command", cfg->command, "The step program, run with /bin/sh -c")->required();
  sub->add_option("files", cfg->io.inputs, "Captures to read ('-' or none: standard input)");
  add_step_flags(sub, cfg->step);
  add_stream_flags(sub, cfg->io.stream);
  sub->add_option("-w,--write", cfg->io.write, "Write to PATH instead of standard output ('-')");
  sub->callback([&run, cfg] { run = [cfg] { return run_step(*cfg); }; });
}

}  // namespace sluice::cmd
