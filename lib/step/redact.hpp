#pragma once
// Redaction: secrets kept out of what is recorded, never out of what is sent. `sluice proxy --redact`
// runs it on each record on its way to the stream (the recorder's side of the pipeline: every step and
// the peers see the real bytes), `sluice redact` over a recorded stream; one implementation.
//
// A secret is masked in place by as many `*` as it has bytes, so every frame around it (a
// Content-Length, a chunk size, a WebSocket or gRPC length, a protobuf field's length) stays right.
// The view (headers, URL, body, payloads) is redacted first; the raw bytes are then made to say the
// same: the masks copied to the same places of the exact wire bytes where they correspond one to one
// (an HTTP/1 message's head, its body plain or chunked, a WebSocket frame masked or not, a gRPC
// message, an overlay's piece of a body), made again from the view where they do not (a body under a
// content coding, an HTTP/2 message's HPACK-coded frames, a compressed WebSocket message). A redacted
// envelope carries the tag `redacted` listing the kinds replaced ("authorization,email").
//
// Kinds: credit_card (13 to 19 digits, Luhn-checked), email, phone (+ and 8 to 15 digits, or the
// North American (555) 123-4567 / 555-123-4567 forms), jwt, bearer (a token after "Bearer "),
// authorization (Authorization and Proxy-Authorization values after their scheme), cookie (Cookie
// values, Set-Cookie's value), api_key (AWS, GCP, GitHub, GitLab, Slack, Stripe, SendGrid, npm,
// OpenAI and Google OAuth tokens by their shapes, and headers such as X-Api-Key), private_key (a PEM
// private key's contents), password (the values of fields named password, passwd, secret, token,
// api_key, ... in JSON, forms, query strings and text), and a policy file's own patterns.
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "envelope/record.hpp"
#include "filter/regex.hpp"

namespace sluice::step {

// What is redacted: the kinds above (by name), a policy file's patterns, header names whose whole value
// goes, field names added to password's.
struct RedactPolicy {
  std::vector<std::string> kinds;
  struct Pattern {
    std::string name;
    filter::Regex regex;  // group 1 when it has one, else the whole match, is masked
  };
  std::vector<Pattern> patterns;
  std::vector<std::string> headers;  // lower case
  std::vector<std::string> fields;   // lower case
  bool has(std::string_view kind) const;
};

// Every kind, in the order tags list them.
const std::vector<std::string>& redact_kinds();

// PRESET or FILE: `default` (every kind), `credentials` (all but credit_card, email, phone), `pii`
// (those three), a comma-separated list of kinds, or a JSON policy file (formats/redact.schema.json):
// {"kinds": [...], "patterns": [{"name": ..., "regex": ..., "ignore_case": false}], "headers": [...],
// "fields": [...]}. Errors name the file and the member: "policy.json: patterns[1].regex: ...".
core::Result<RedactPolicy> redact_policy(const std::string& spec);

// The kinds found while redacting one record, in the order they were found (a pattern by its name).
struct Found {
  std::vector<std::string> kinds;
  void add(std::string_view kind);
  bool empty() const { return kinds.empty(); }
  std::string joined() const;
};

// Masks every secret in `text` in place; true when any was.
bool redact_text(const RedactPolicy& policy, core::Bytes& text, Found& found);

// Whether a digit string (separators removed) passes the Luhn check.
bool luhn(std::string_view digits);

class Redactor {
 public:
  explicit Redactor(RedactPolicy policy) : policy_(std::move(policy)) {}
  // Redacts `r` in place (envelopes; an error record's message); true when anything changed. Safe to
  // call from many threads: the only shared state is which messages' bodies were recoded, for the
  // overlays that follow them.
  bool apply(envelope::Record& r);
  bool apply(envelope::Envelope& e);
  const RedactPolicy& policy() const { return policy_; }

 private:
  bool overlay(envelope::Envelope& e, Found& found);
  RedactPolicy policy_;
  std::mutex mu_;
  std::vector<std::string> recoded_;  // keys of messages whose body was made again (bounded, oldest first)
};

}  // namespace sluice::step
