#pragma once
// Server: the Boost.Asio runtime of `sluice proxy`. Binds one listener per mode, accepts client
// connections, gives each a root layer and a Connection that executes the layer's commands, and runs
// one io_context per thread (`threads` of them), each owning the connections accepted onto it.
// SIGINT/SIGTERM stop accepting, let open connections finish for up to `grace`, then close the rest;
// the caller closes the Recorder afterwards.
//
// This header is Asio-free so that cmd/ stays light; the implementation holds the io_context.
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "layer/mode_spec.hpp"
#include "layer/options.hpp"

namespace sluice::pipeline {
class Pipeline;
}

namespace sluice::runtime {

class Recorder;

struct ServerOptions {
  std::vector<layer::ModeSpec> modes;
  unsigned threads = 0;  // 0: one per core
  // Each I/O thread on a CPU of its own, round robin over the CPUs the process may use. Off by
  // default: it keeps the scheduler from stacking I/O threads on one CPU under load (tail latency),
  // and keeps it from moving one off a CPU that something else is busy on.
  bool pin_threads = false;
  std::chrono::milliseconds grace{5000};
  // Open client connections at most: one more is refused at once (an HTTP listener answers 503 first)
  // rather than left to hang. 0: no limit. Out of descriptors all the same (EMFILE), accepting pauses
  // for a moment at a time, said once on stderr and in the stream, and resumes by itself.
  size_t max_connections = 0;
  std::chrono::milliseconds connect_timeout{10000};
  bool verbose = false;
  // SIGHUP calls it (on the signal thread), until the shutdown begins; unset: SIGHUP is not handled.
  std::function<void()> on_hangup;
  layer::ProxyOptions layer;  // what the protocol layers need (body limit, auth, timeouts)
};

struct BoundListener {
  std::string mode;     // the spec as given
  std::string address;  // "127.0.0.1:43567", the port the system chose for port 0
};

class Server {
 public:
  // `recorder` and `pipeline` must outlive the server.
  Server(ServerOptions options, Recorder& recorder, const pipeline::Pipeline& pipeline);
  ~Server();

  // Binds every listener; on success the bound addresses are known.
  core::Result<std::vector<BoundListener>> bind();
  // Serves until a signal (or stop()) and the shutdown that follows complete.
  void run();
  // Starts a graceful shutdown; safe from any thread.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::runtime
