#pragma once
// Client replay, the runtime half: sends planned requests through the proxy's own layers and records
// the new exchanges as the proxy would.
//
// Each request runs as a client connection of its own whose client side is in memory (one end of a
// socket pair): the replay writes the request bytes into it and reads the response back, while the
// HTTP/1 layer (under a TLS layer for https, presenting the recorded SNI) forwards the request to the
// target, enforces timeouts, answers 502/504 on failure and records every envelope. So a replayed
// flow is recorded exactly like a proxied one, plus the tag `replay_of` naming the flow it replays.
//
// At most `concurrency` requests are in flight, started no faster than `rate` per second; a request
// that fails (no connection, no complete response within `timeout`, a gateway error) is tried again
// up to `retries` times, after 100 ms, 200 ms, 400 ms, ...
//
// This header is Asio-free; the implementation runs one io_context on the calling thread.
#include <chrono>
#include <functional>
#include <vector>

#include "layer/options.hpp"
#include "replay/plan.hpp"

namespace sluice::runtime {
class Recorder;
}

namespace sluice::replay {

struct EngineOptions {
  unsigned concurrency = 1;
  double rate = 0;  // requests started per second; 0: no limit
  std::chrono::milliseconds timeout{30000};          // per attempt, for the whole exchange
  std::chrono::milliseconds connect_timeout{10000};
  unsigned retries = 0;
  layer::ProxyOptions layer;  // body limit, TLS settings (`tls` must be set for https targets)
  // SIGINT/SIGTERM end the run: the first starts no more requests (those in flight finish; the rest
  // are `not_sent`) and calls `on_interrupt`, a second abandons those in flight too.
  bool stop_on_signal = false;
  std::function<void()> on_interrupt;
};

// Sends every request that is not skipped; the outcomes are in the order of `requests`. `progress`
// (may be empty) is called after each request finishes, with the count of finished ones.
std::vector<Outcome> run(const std::vector<Recorded>& flows, const std::vector<Request>& requests,
                         const EngineOptions& options, runtime::Recorder& recorder,
                         const std::function<void(size_t finished)>& progress);

}  // namespace sluice::replay
