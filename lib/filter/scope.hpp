#pragma once
// Which hosts sluice intercepts and talks to: mitmproxy's --ignore-hosts and --allow-hosts (regular
// expressions searched in a host name, case-insensitive). A connection is ignored when any of its names
// (the CONNECT or SOCKS5 target's host, the TLS SNI) matches an --ignore-hosts pattern, or, with
// --allow-hosts instead, when none of them matches an --allow-hosts pattern. The same object judges
// what the proxy intercepts and what replay (and later macros, fuzzing, agents) may contact.
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "core/result.hpp"
#include "envelope/record.hpp"
#include "filter/expr.hpp"
#include "filter/regex.hpp"

namespace sluice::filter {

class HostScope {
 public:
  // Both lists given is an error (as in mitmproxy: they are each other's opposite).
  static core::Result<HostScope> make(const std::vector<std::string>& allow, const std::vector<std::string>& ignore);
  bool empty() const { return allow_.empty() && ignore_.empty(); }
  // Whether a connection with these names (empty ones left out) is ignored.
  bool ignored(std::string_view host, std::string_view sni = {}) const;
  // "--ignore-hosts" or "--allow-hosts": the flag that decides, for messages.
  std::string_view flag() const { return ignore_.empty() ? "--allow-hosts" : "--ignore-hosts"; }

 private:
  std::vector<Regex> allow_, ignore_;
};

// `--scope-filter EXPR`: which exchanges are in scope, judged on each HTTP exchange by its request
// (the first request envelope of its flow as it came: a head, or the whole request; `~s` and `~c`
// see no response there) and remembered by flow. An exchange outside is forwarded untouched (no step
// sees it) and nothing of it is recorded: its envelopes (the request, its variants, the response,
// its overlays, the WebSocket frames or tunnel of its upgrade), its flow's end and error records.
// What belongs to no exchange (TLS handshakes, raw TCP, the connections' ends) is kept. Safe from many
// threads; flows outside are remembered until their flow ends, at most 65,536 (the oldest forgotten).
class FlowScope {
 public:
  explicit FlowScope(Filter filter) : filter_(std::move(filter)) {}
  // Whether `e` belongs to an exchange outside the scope (judging it when it is the one that decides).
  bool outside(const envelope::Envelope& e);
  // The same for any record (an end or error of a flow outside: forgotten or left out).
  bool outside(const envelope::Record& r);
  // Exchanges left out so far.
  size_t left_out() const;

 private:
  static constexpr size_t kRemembered = 65536;
  Filter filter_;
  mutable std::mutex mu_;
  std::unordered_set<std::string> out_;
  std::deque<std::string> order_;
  size_t left_out_ = 0;
};

}  // namespace sluice::filter
