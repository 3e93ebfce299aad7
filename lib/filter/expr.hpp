#pragma once
// Flow filter expressions in mitmproxy's language, with sluice's additions, evaluated against a flow's
// envelopes. One implementation for `sluice filter`, the proxy's live steps and `mcp-serve`.
//
//   ~a ~all ~e ~http ~q ~s ~tcp ~websocket ~replay           no argument
//   ~b ~bq ~bs ~d ~dst ~h ~hq ~hs ~m ~src ~t ~tq ~ts ~u       a regular expression (case-insensitive)
//   ~c CODE                                                  the response status
//   ~proto NAME ~grpc SERVICE/METHOD ~anomaly NAME           sluice: protocol, gRPC call, anomaly name
//   ~tag KEY[=VALUE] ~variant modified|original              sluice: a tag, a variant
//   !  &  |  ( )  juxtaposition (AND)  a bare regex (= ~u)   values quoted with ' or " (backslash escapes)
//
// Precedence: ! binds tightest, then & (and juxtaposition), then |.
#include <memory>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "envelope/record.hpp"

namespace sluice::filter {

// One flow as the filter sees it: its envelopes and error records, in stream order.
struct FlowView {
  std::vector<const envelope::Envelope*> envelopes;
  std::vector<const envelope::ErrorRecord*> errors;
};

// What of a record a filter reads beyond ids, kinds, protocols, statuses, URLs, tags and anomalies.
enum Reads : uint32_t { reads_headers = 1, reads_bodies = 2, reads_context = 4, reads_all = 7 };

class Filter {
 public:
  // Errors say what and where, 1-based: "unknown operator '~x' at column 7".
  static core::Result<Filter> parse(std::string_view text);
  bool matches(const FlowView& flow) const;
  uint32_t needs() const { return needs_; }  // Reads bits


  struct Node;

 private:
  std::shared_ptr<const Node> root_;
  uint32_t needs_ = 0;
};

}  // namespace sluice::filter
