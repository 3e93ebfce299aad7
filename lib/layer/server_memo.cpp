#include "layer/server_memo.hpp"

namespace sluice::layer {

void ServerMemo::remember_http1(std::string_view server, core::Timestamp now) const {
  std::lock_guard lock(mu_);
  if (http1_.size() >= capacity_ && !http1_.count(std::string(server))) http1_.clear();
  http1_[std::string(server)] = now;
}

bool ServerMemo::known_http1(std::string_view server, core::Timestamp now) const {
  std::lock_guard lock(mu_);
  auto it = http1_.find(std::string(server));
  if (it == http1_.end()) return false;
  if (now.ns - it->second.ns >= ttl_.count() || now < it->second) {
    http1_.erase(it);
    return false;
  }
  return true;
}

}  // namespace sluice::layer
