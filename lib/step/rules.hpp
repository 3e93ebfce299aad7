#pragma once
// A rule file (`--rules FILE`, formats/rules.schema.json): what the mitmproxy flags cannot say, for
// every protocol. Part of the transform step (one implementation, live and offline); the flags' rules
// run first, then the file's, in its order.
//
//   {"rules": [{"name": "staging", "filter": "~d api.example.com", "protocol": "http",
//               "direction": "request", "actions": [{"action": "set_header", "name": "X-Env", "value": "staging"}]}]}
//
// `protocol` (default http) and its actions:
//   http       set_header, add_header, remove_header (name, value); replace_body (pattern, replacement);
//              json_set (path: a JSON Pointer, value: any JSON), json_delete (path); set_query,
//              remove_query, set_form, remove_form (name, value); set_method, set_url, set_status
//              (value); map_remote (pattern, replacement); map_local (path, content_type); block (status)
//   websocket  replace (pattern, replacement, opcode text|binary|any), drop
//   sse        replace (field data|event|id, pattern, replacement), drop
//   grpc       set_metadata, remove_metadata (name, value), replace (pattern, replacement: a message's
//              bytes), answer (status, message)
//   raw        replace (pattern, replacement: the bytes of a raw chunk)
// `direction`: request (what the client sends), response (what the server sends) or both (default).
// `filter`: a filter expression judged on the unit (an HTTP response: on its request and itself).
// Patterns are regular expressions (filter::Regex, `.` matching newlines), replacements Python re.sub
// templates (`\1`); both are JSON strings, so a group is "\\1".
//
// A file that does not parse is refused whole, with the file, the rule and the reason:
//   "rules.json: rule 2 (staging): action 1 (set_header): needs a string \"value\"".
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "core/value.hpp"
#include "filter/expr.hpp"
#include "pipeline/pipeline.hpp"

namespace sluice::step {

class RuleFile {
 public:
  static core::Result<std::shared_ptr<const RuleFile>> load(const std::string& path);
  // `where` names the file in errors.
  static core::Result<std::shared_ptr<const RuleFile>> parse(const core::Value& doc, const std::string& where);

  size_t size() const;
  // A rule on HTTP responses has a filter (the step keeps requests for it), one that reads bodies.
  bool responses_filtered() const { return responses_filtered_; }
  bool responses_read_bodies() const { return responses_read_bodies_; }

  // An HTTP request or response (`head`: a head unit, no body), changed in place by each matching
  // rule; the names of those that changed it are appended to `applied`. `respond` with `reply` (block,
  // map_local), `kill` (block 444), else `next`.
  pipeline::Outcome apply_http(envelope::Envelope& env, bool head, const filter::FlowView& flow,
                               pipeline::Reply& reply, std::vector<std::string_view>& applied) const;
  // A WebSocket message, an event, a gRPC start, message or end, a raw chunk: changed in place (its
  // bytes made again), `drop`ped, or answered (a gRPC call).
  pipeline::Outcome apply_unit(envelope::Envelope& env, pipeline::Reply& reply, std::vector<std::string_view>& applied) const;

  struct Rule;

 private:
  std::vector<Rule> rules_;
  bool responses_filtered_ = false, responses_read_bodies_ = false;
};

}  // namespace sluice::step
