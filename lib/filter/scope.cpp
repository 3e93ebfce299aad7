#include "filter/scope.hpp"

namespace sluice::filter {

core::Result<HostScope> HostScope::make(const std::vector<std::string>& allow, const std::vector<std::string>& ignore) {
  if (!allow.empty() && !ignore.empty())
    return core::make_error("--allow-hosts and --ignore-hosts are mutually exclusive");
  HostScope s;
  for (const auto* list : {&allow, &ignore}) {
    for (const auto& pattern : *list) {
      auto re = Regex::compile(pattern, true);
      if (!re)
        return core::make_error(std::string(list == &allow ? "--allow-hosts" : "--ignore-hosts") + " '" + pattern +
                                "': " + re.error().message);
      (list == &allow ? s.allow_ : s.ignore_).push_back(std::move(*re));
    }
  }
  return s;
}

bool HostScope::ignored(std::string_view host, std::string_view sni) const {
  if (empty()) return false;
  auto any = [&](const std::vector<Regex>& patterns) {
    for (const auto& re : patterns)
      for (std::string_view name : {host, sni})
        if (!name.empty() && re.search(name)) return true;
    return false;
  };
  if (!ignore_.empty()) return any(ignore_);
  if (host.empty() && sni.empty()) return false;  // (mitmproxy: nothing to judge, not ignored)
  return !any(allow_);
}

}  // namespace sluice::filter
