#include "filter/scope.hpp"

#include <algorithm>

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

bool FlowScope::outside(const envelope::Envelope& e) {
  if (e.flow_id.empty()) return false;
  const auto* m = std::get_if<envelope::HttpMessage>(&e.message);
  bool decides = m && e.protocol == envelope::Protocol::http && m->kind == envelope::HttpMessage::Kind::request &&
                 !e.modified && (e.overlay.empty() || e.overlay == "head");
  std::lock_guard<std::mutex> lock(mu_);
  if (out_.count(e.flow_id)) return true;
  if (!decides) return false;
  FlowView flow;
  flow.envelopes.push_back(&e);
  if (filter_.matches(flow)) return false;
  if (order_.size() >= kRemembered) {
    out_.erase(order_.front());
    order_.pop_front();
  }
  out_.insert(e.flow_id);
  order_.push_back(e.flow_id);
  ++left_out_;
  return true;
}

bool FlowScope::outside(const envelope::Record& r) {
  if (const auto* e = std::get_if<envelope::Envelope>(&r)) return outside(*e);
  const std::string* flow = nullptr;
  bool ends = false;
  if (const auto* end = std::get_if<envelope::EndRecord>(&r)) {
    if (end->scope != "flow") return false;  // a connection's or a stream's end stays
    flow = &end->flow_id;
    ends = true;
  } else if (const auto* err = std::get_if<envelope::ErrorRecord>(&r)) {
    flow = &err->flow_id;
  }
  if (!flow || flow->empty()) return false;
  std::lock_guard<std::mutex> lock(mu_);
  if (!out_.count(*flow)) return false;
  if (ends) {
    out_.erase(*flow);
    order_.erase(std::find(order_.begin(), order_.end(), *flow));
  }
  return true;
}

size_t FlowScope::left_out() const {
  std::lock_guard<std::mutex> lock(mu_);
  return left_out_;
}

}  // namespace sluice::filter
