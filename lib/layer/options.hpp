#pragma once
// Settings the protocol layers share, from `sluice proxy`'s flags. One const instance per proxy run.
#include <algorithm>
#include <atomic>
#include <utility>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace sluice::tls {
class TlsConfig;
}

namespace sluice::layer {

class ServerMemo;

// The memory all connections together may hold in message bodies kept for the record or buffered
// whole for the pipeline (--record-memory). A message that cannot get more streams on as it comes,
// and what it could not keep is recorded as omitted (`body_omitted`). Thread-safe.
class RecordBudget {
 public:
  explicit RecordBudget(uint64_t bytes) : left_(static_cast<int64_t>(bytes)) {}
  // Up to `want` bytes; what was granted (0 when the budget is spent).
  uint64_t take(uint64_t want) {
    int64_t left = left_.load(std::memory_order_relaxed);
    for (;;) {
      int64_t grant = std::min<int64_t>(left, static_cast<int64_t>(want));
      if (grant <= 0) return 0;
      if (left_.compare_exchange_weak(left, left - grant, std::memory_order_relaxed)) return static_cast<uint64_t>(grant);
    }
  }
  void give(uint64_t bytes) { left_.fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed); }
  int64_t left() const { return left_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> left_;
};

// Bytes a message holds of the RecordBudget, given back when it lets them go (or dies).
class BudgetHold {
 public:
  BudgetHold() = default;
  BudgetHold(BudgetHold&& o) noexcept : budget_(o.budget_), bytes_(std::exchange(o.bytes_, 0)) {}
  BudgetHold& operator=(BudgetHold&& o) noexcept {
    if (this != &o) {
      release();
      budget_ = o.budget_;
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }
  ~BudgetHold() { release(); }
  void add(RecordBudget* budget, uint64_t bytes) {
    budget_ = budget;
    bytes_ += bytes;
  }
  void release() {
    if (budget_ && bytes_) budget_->give(bytes_);
    bytes_ = 0;
  }
  // Takes `bytes` from `budget` (nullptr: no budget, always granted): all of them, or none.
  bool take(RecordBudget* budget, uint64_t bytes) {
    if (!budget || !bytes) return true;
    uint64_t granted = budget->take(bytes);
    if (granted < bytes) {
      budget->give(granted);
      return false;
    }
    add(budget, granted);
    return true;
  }

 private:
  RecordBudget* budget_ = nullptr;
  uint64_t bytes_ = 0;
};

struct ProxyOptions {
  // Body bytes recorded per message; more are forwarded and counted in `body_omitted`. 0: record all,
  // in chunks (formats/STREAM.md §3.1).
  uint64_t record_body_limit = 16u << 20;
  bool keep_host_header = false;  // reverse mode: send the client's Host as is
  std::string proxy_auth;         // "USER:PASS" clients must present; empty: none
  std::string upstream_auth;      // "USER:PASS" we present to an upstream proxy
  std::chrono::milliseconds header_timeout{30'000};      // a request head must arrive within this
  std::chrono::milliseconds first_byte_timeout{60'000};  // the server's answer must begin within this
  std::chrono::milliseconds idle_timeout{75'000};        // no byte either way for this long: close
  // A tunnel or TCP forward whose client says nothing for this long is a server-first protocol: raw.
  std::chrono::milliseconds detect_timeout{500};
  // TLS interception (the CA, trust, passthrough); nullptr: TLS is not intercepted, CONNECT tunnels raw
  // bytes, and https:// targets are refused. Owned by the caller.
  const tls::TlsConfig* tls = nullptr;
  // Contact a server only when a request is sent on to it, after the pipeline's verdict (a step such
  // as --serve-from may answer instead): CONNECT is answered at once, TLS inside it is terminated with
  // a leaf for the client's SNI, and tunnels wait for their client's first bytes without a timer.
  bool lazy_connect = false;
  // Shared by every connection; nullptr: no budget beyond the limit per message. Owned by the caller.
  RecordBudget* record_budget = nullptr;
  // The pipeline has steps that see units (`--step`): WebSocket messages are held until their
  // verdict instead of passing frame by frame as they arrive.
  bool step_units = false;
  // What cleartext servers speak, learned by earlier connections (see server_memo.hpp); nullptr: each
  // connection finds out for itself. Owned by the caller.
  const ServerMemo* servers = nullptr;
  // --ignore-hosts / --allow-hosts: whether a TLS connection to `host` (the CONNECT or SOCKS5 target's
  // host) with this SNI is left alone: tunnelled without interception, summarized in the stream (its
  // client's hello, its end with byte counts) and no byte of it recorded. Empty: none is.
  std::function<bool(std::string_view host, std::string_view sni)> ignore_host;
};

}  // namespace sluice::layer
