#pragma once
// The safety filter: requests that would destroy something are refused before they leave, for the
// traffic tools and agents generate (`sluice proxy --safety`, `sluice replay --safety`; later macros,
// fuzzing and agents through the same judge).
//
// What is judged: what a client sends (a request's URL, header values and body, its Content-Encoding
// undone; a WebSocket message from the client, whole however many frames it came in; a gRPC call's
// metadata and each message it sends), as it is about to leave: the step runs after every other step,
// so a unit a rule or a step program changed is judged as changed. Each text is judged as it is, and
// also url-decoded, JSON-unescaped and base64-decoded (runs of 8 or more base64 characters that
// decode to text), two levels deep (base64 of url-encoded text), lower-cased, with SQL comments and
// runs of white space made one space.
//
// Presets: `destructive-sql` (DROP TABLE/DATABASE/..., TRUNCATE, ALTER TABLE/DATABASE/USER, DELETE FROM
// a table as a whole statement, UPDATE ... SET without WHERE, xp_cmdshell, SHUTDOWN),
// `destructive-os-command` (rm -rf and its spellings, rm -r /, mkfs, dd to a device, redirection to a
// disk device, shutdown/reboot/halt/poweroff as commands, init 0/6, fork bombs, chmod 777 / and chown
// -R on /, wipefs, shred of a device, format C:, del /s /q, rd /s, kill -9 -1, crontab -r, mv to
// /dev/null), `default` (both). A policy file adds a user's own patterns.
//
// A match is refused: an HTTP request is answered 403 with a body naming the rule and where it
// matched ("sluice: refused by the safety filter: rule sql_drop matched in the body (base64)"); a
// WebSocket message is left out (the connection goes on); a gRPC call is refused with status 7 at its
// start, or reset at a message; each with an `error` record (code `safety`) naming the rule and the
// place, and the unit tagged `safety`.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "envelope/record.hpp"
#include "filter/regex.hpp"
#include "pipeline/pipeline.hpp"

namespace sluice::step {

struct SafetyRule {
  std::string name;
  filter::Regex regex;        // on the normalized text (lower case, one space)
  bool without_where = false;  // a match counts only when its statement (to `;`) has no WHERE
};

struct SafetyPolicy {
  std::vector<SafetyRule> rules;
  bool empty() const { return rules.empty(); }
};

// PRESET[,PRESET...] or FILE: `default`, `destructive-sql`, `destructive-os-command`, or a JSON policy
// file (formats/safety.schema.json): {"presets": [...], "patterns": [{"name": ..., "regex": ...}]}
// (presets default to none in a file). Errors name the file and the member.
core::Result<SafetyPolicy> safety_policy(const std::string& spec);

struct SafetyHit {
  std::string rule;
  std::string where;     // "the URL", "header X-Query", "the body", "a WebSocket message", ...
  std::string encoding;  // "", "url-encoded", "JSON-encoded", "base64", "base64, url-encoded"
  std::string excerpt;   // the normalized text that matched (at most 80 bytes)
  std::string describe() const;  // "rule sql_drop matched in the body (base64): drop table users"
};

// The first rule that matches `text` in any of its encodings.
std::optional<SafetyHit> safety_judge_text(const SafetyPolicy& policy, std::string_view text, std::string_view where);
// The first match in what a unit sends (requests, client WebSocket messages, gRPC starts and client
// messages); none for anything else.
std::optional<SafetyHit> safety_judge(const SafetyPolicy& policy, const envelope::Envelope& e);
// The same for a request about to be sent (`sluice replay`).
std::optional<SafetyHit> safety_judge_request(const SafetyPolicy& policy, const envelope::HttpMessage& m);

class SafetyStep : public pipeline::Step {
 public:
  // `on_record` gets the error record of each refusal (the recorder); may be empty.
  SafetyStep(SafetyPolicy policy, std::function<void(envelope::Record)> on_record)
      : policy_(std::move(policy)), on_record_(std::move(on_record)) {}
  std::string_view name() const override { return "safety"; }
  pipeline::Outcome process(envelope::Envelope& env, pipeline::Reply& reply, const pipeline::Resume& resume) override;
  size_t rules() const { return policy_.rules.size(); }

 private:
  SafetyPolicy policy_;
  std::function<void(envelope::Record)> on_record_;
};

}  // namespace sluice::step
