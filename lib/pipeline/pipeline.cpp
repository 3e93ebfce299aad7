#include "pipeline/pipeline.hpp"

namespace sluice::pipeline {

namespace {

std::string to_string(Outcome o) {
  switch (o) {
    case Outcome::drop: return "drop";
    case Outcome::kill: return "kill";
    case Outcome::respond: return "respond";
    default: return "next";
  }
}

}  // namespace

void Pipeline::run(envelope::Envelope env, std::function<void(Result)> done) const {
  if (steps_.empty() || (bypass_ && bypass_(env))) {
    finish(nullptr, std::move(env), Outcome::next, {}, std::nullopt, done);
    return;
  }
  // The original is kept only when a step could change the envelope.
  auto original = std::make_shared<const envelope::Envelope>(env);
  run_from(0, std::move(original), std::move(env), {}, false, std::move(done));
}

void Pipeline::run_from(size_t index, std::shared_ptr<const envelope::Envelope> original, envelope::Envelope env,
                        std::string modified_by, bool whole, std::function<void(Result)> done) const {
  for (size_t i = index; i < steps_.size(); ++i) {
    const auto& step = steps_[i];
    std::string before_step = modified_by;
    // A held step resumes the rest of the pipeline from the next step.
    auto resume = [this, i, original, done, name = std::string(step->name()), before_step, whole](Decision d) {
      std::string by = before_step;
      if (by.empty() && !(d.envelope == *original)) by = d.envelope.modified_by.empty() ? name : d.envelope.modified_by;
      if (d.outcome == Outcome::next || d.outcome == Outcome::whole) {
        run_from(i + 1, original, std::move(d.envelope), std::move(by), whole || d.outcome == Outcome::whole, done);
      } else {
        finish(original.get(), std::move(d.envelope), d.outcome == Outcome::held ? Outcome::next : d.outcome,
               std::move(by), std::move(d.reply), done, name);
      }
    };
    Reply reply;
    Outcome o = step->process(env, reply, resume);
    if (o == Outcome::held) return;
    if (modified_by.empty() && !(env == *original))
      modified_by = env.modified_by.empty() ? std::string(step->name()) : env.modified_by;
    if (o == Outcome::respond && !reply) o = Outcome::next;  // nothing to answer with
    if (o == Outcome::whole) {
      whole = true;
      o = Outcome::next;
    }
    if (o != Outcome::next) {
      finish(original.get(), std::move(env), o, std::move(modified_by), std::move(reply), done,
             std::string(step->name()));
      return;
    }
  }
  finish(original.get(), std::move(env), Outcome::next, std::move(modified_by), std::nullopt, done, {}, whole);
}

void Pipeline::finish(const envelope::Envelope* original, envelope::Envelope env, Outcome outcome,
                      std::string modified_by, Reply reply, const std::function<void(Result)>& done,
                      std::string decided_by, bool whole) const {
  // The original of a unit that went no further says why: drop, kill or respond, with who said so.
  if (original && !modified_by.empty()) {
    envelope::Envelope orig = *original;
    if (outcome == Outcome::drop || outcome == Outcome::respond) orig.tags.emplace_back("verdict", to_string(outcome));
    sink_(orig);
    env.modified = true;
    env.variant_of = original->seq;
    env.modified_by = std::move(modified_by);
    sink_(env);
  } else if (outcome == Outcome::next) {
    sink_(env);
  } else {
    envelope::Envelope recorded = env;
    recorded.tags.emplace_back("verdict", to_string(outcome));
    sink_(recorded);
  }
  done(Result{outcome, std::move(env), std::move(reply), outcome == Outcome::next ? std::string() : std::move(decided_by),
              whole});
}

}  // namespace sluice::pipeline
