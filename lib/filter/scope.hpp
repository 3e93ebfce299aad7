#pragma once
// Which hosts sluice intercepts and talks to: mitmproxy's --ignore-hosts and --allow-hosts (regular
// expressions searched in a host name, case-insensitive). A connection is ignored when any of its names
// (the CONNECT or SOCKS5 target's host, the TLS SNI) matches an --ignore-hosts pattern, or, with
// --allow-hosts instead, when none of them matches an --allow-hosts pattern. The same object judges
// what the proxy intercepts and what replay (and later macros, fuzzing, agents) may contact.
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
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

}  // namespace sluice::filter
