#include "runtime/server.hpp"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <thread>

#include "layer/root_layer.hpp"
#include "runtime/connection.hpp"
#include "runtime/endpoint.hpp"
#include "runtime/recorder.hpp"

namespace sluice::runtime {

struct Server::Impl {
  ServerOptions options;
  Recorder& recorder;
  const pipeline::Pipeline& pipeline;
  // `ioc` runs the listeners, signals and shutdown; each worker context is run by one thread and owns
  // the connections accepted onto it, so a connection's handlers never hop between threads (no lock
  // contention, no wake-ups of another core per event).
  asio::io_context ioc{1};
  std::vector<std::unique_ptr<asio::io_context>> workers;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> worker_guards;
  std::atomic<size_t> next_worker{0};
  asio::signal_set signals{ioc, SIGINT, SIGTERM};
  asio::signal_set hangup{ioc};  // SIGHUP, with options.on_hangup

  void wait_hangup() {
    hangup.async_wait([this](boost::system::error_code ec, int) {
      if (ec || stopping) return;
      options.on_hangup();
      wait_hangup();
    });
  }
  std::vector<std::pair<layer::ModeSpec, std::unique_ptr<tcp::acceptor>>> listeners;
  std::vector<std::unique_ptr<asio::steady_timer>> accept_timers;  // one per listener: the EMFILE pause
  std::mutex mu;
  std::vector<std::weak_ptr<Connection>> connections;
  std::string run_id;
  std::atomic<uint64_t> next_conn{0};
  std::atomic<bool> stopping{false};
  std::atomic<bool> exhausted{false};   // the last accept ran out of descriptors
  std::atomic<bool> over_limit{false};  // the last accept was over --max-connections
  asio::steady_timer grace_timer{ioc};
  std::chrono::steady_clock::time_point stop_began{};
  bool announced = false;
  asio::steady_timer poll_timer{ioc};
  SelfAddresses self;  // the listeners' addresses, filled by bind() before any connection starts

  Impl(ServerOptions o, Recorder& r, const pipeline::Pipeline& p) : options(std::move(o)), recorder(r), pipeline(p) {
    unsigned n = options.threads ? options.threads : std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < n; ++i) {
      workers.push_back(std::make_unique<asio::io_context>(1));
      worker_guards.push_back(asio::make_work_guard(*workers.back()));
    }
    run_id = new_run_id();
  }

  void accept(size_t index) {
    auto& [mode, acceptor] = listeners[index];
    auto& worker = *workers[next_worker++ % workers.size()];
    acceptor->async_accept(worker, [this, index](boost::system::error_code ec, tcp::socket sock) {
      if (ec == asio::error::operation_aborted || stopping) return;
      if (ec == asio::error::no_descriptors || ec.value() == ENFILE || ec == asio::error::no_buffer_space ||
          ec == asio::error::no_memory) {
        // Out of descriptors: retrying at once would spin a core and starve the open connections.
        // Wait a moment (as nginx does), keep serving, and try again until some have closed.
        if (!exhausted.exchange(true)) {
          size_t open = live().size();
          note("descriptors_exhausted", "out of file descriptors (" + ec.message() + ") with " + std::to_string(open) +
                                            " connection" + (open == 1 ? "" : "s") +
                                            " open: new ones wait until some close (raise `ulimit -n`, or set "
                                            "--max-connections to refuse them at once)");
        }
        // The listener's own timer, made at bind time: nothing is allocated when nothing can be.
        auto& timer = *accept_timers[index];
        timer.expires_after(std::chrono::milliseconds(100));
        timer.async_wait([this, index](boost::system::error_code e) {
          if (!e && !stopping) accept(index);
        });
        return;
      }
      if (!ec) {
        if (exhausted.exchange(false)) std::fprintf(stderr, "sluice: accepting connections again\n");
        on_accept(listeners[index].first, std::move(sock));
      }
      accept(index);  // other transient errors (ECONNABORTED) must not end the listener
    });
  }

  // Forgets finished connections (under `mu`); returns how many are open.
  size_t prune_locked() {
    std::erase_if(connections, [](const auto& w) {
      auto c = w.lock();
      return !c || c->finished();
    });
    return connections.size();
  }

  // One line on stderr and an `error` record in the stream (no stream of its own: the proxy's).
  void note(const std::string& code, const std::string& message) {
    std::fprintf(stderr, "sluice: %s\n", message.c_str());
    envelope::ErrorRecord err;
    err.time = core::now_wall();
    err.code = code;
    err.message = message;
    recorder.record(envelope::Record{std::move(err)});
  }

  // Over --max-connections: refused at once, politely where the client speaks HTTP first.
  void refuse(const layer::ModeSpec& mode, tcp::socket& sock) {
    using Kind = layer::ModeSpec::Kind;
    if (mode.kind == Kind::regular || mode.kind == Kind::upstream || mode.kind == Kind::reverse) {
      static const std::string kBody = "sluice: too many connections open; try again shortly\n";
      static const std::string kBusy = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: " +
                                       std::to_string(kBody.size()) +
                                       "\r\nConnection: close\r\nRetry-After: 1\r\n\r\n" + kBody;
      boost::system::error_code ec;
      sock.non_blocking(true, ec);
      asio::write(sock, asio::buffer(kBusy), ec);  // a fresh socket's send buffer takes it at once
    }
    boost::system::error_code ec;
    sock.shutdown(tcp::socket::shutdown_both, ec);
    sock.close(ec);
  }

  void on_accept(const layer::ModeSpec& mode, tcp::socket sock) {
    boost::system::error_code ec;
    size_t open;
    {
      std::lock_guard lock(mu);
      open = prune_locked();  // once per accept: the list is pruned here, not again when the connection is added
    }
    if (options.max_connections) {
      if (open >= options.max_connections) {
        if (!over_limit.exchange(true))
          note("too_many_connections", std::to_string(open) + " connections open (--max-connections " +
                                           std::to_string(options.max_connections) + "): refusing new ones until some close");
        refuse(mode, sock);
        return;
      }
      if (over_limit.exchange(false)) std::fprintf(stderr, "sluice: accepting connections again\n");
    }
    sock.set_option(tcp::no_delay(true), ec);
    auto peer = sock.remote_endpoint(ec);
    std::string conn_id = run_id + "-" + std::to_string(++next_conn);
    auto ctx = std::make_unique<layer::ConnectionContext>(conn_id, ec ? std::string("?") : format_endpoint(peer),
                                                          core::now_wall(), mode, &options.layer);
    auto conn = std::make_shared<Connection>(
        std::move(sock), std::move(ctx),
        ConnectionDeps{recorder, pipeline, options.connect_timeout, options.verbose, {}, &self});
    {
      std::lock_guard lock(mu);
      connections.push_back(conn);
    }
    conn->start([](layer::ConnectionContext& c) { return layer::make_root_layer(c); });
  }

  std::vector<std::shared_ptr<Connection>> live() {
    std::lock_guard lock(mu);
    std::vector<std::shared_ptr<Connection>> out;
    for (auto& w : connections)
      if (auto c = w.lock(); c && !c->finished()) out.push_back(std::move(c));
    return out;
  }

  void begin_stop() {
    if (stopping) {  // a second signal: no more waiting
      if (auto n = live().size()) std::fprintf(stderr, "sluice: closing %zu open connection%s now\n", n, n == 1 ? "" : "s");
      force_all();
      return;
    }
    stopping = true;
    hangup.cancel();
    for (auto& [mode, acceptor] : listeners) {
      boost::system::error_code ec;
      acceptor->close(ec);
    }
    for (auto& t : accept_timers) t->cancel();
    // Idle keep-alive connections close now; busy ones after the exchange in flight.
    for (auto& c : live()) c->shutdown();
    stop_began = std::chrono::steady_clock::now();
    signals.async_wait([this](boost::system::error_code ec, int) {
      if (!ec) begin_stop();
    });
    grace_timer.expires_after(options.grace);
    grace_timer.async_wait([this](boost::system::error_code ec) {
      if (!ec) force_all();
    });
    poll();
  }

  // Ends the shutdown as soon as every connection has finished by itself.
  void poll() {
    auto busy = live().size();
    if (busy == 0) {
      grace_timer.cancel();
      signals.cancel();
      return;
    }
    // Whoever pressed Ctrl-C learns what the wait is for and how to cut it short (once the idle
    // connections had their moment to close, so only those still busy are counted).
    if (!announced && std::chrono::steady_clock::now() - stop_began >= std::chrono::milliseconds(200)) {
      announced = true;
      auto left = options.grace - std::chrono::duration_cast<std::chrono::milliseconds>(
                                      std::chrono::steady_clock::now() - stop_began);
      std::fprintf(stderr,
                   "sluice: stopping: waiting up to %.1f s for %zu open connection%s to finish "
                   "(Ctrl-C again closes them now)\n",
                   std::max(0.0, std::chrono::duration<double>(left).count()), busy, busy == 1 ? "" : "s");
    }
    poll_timer.expires_after(std::chrono::milliseconds(20));
    poll_timer.async_wait([this](boost::system::error_code ec) {
      if (!ec) poll();
    });
  }

  void force_all() {
    for (auto& c : live()) c->force_close();
  }
};

Server::Server(ServerOptions options, Recorder& recorder, const pipeline::Pipeline& pipeline)
    : impl_(std::make_unique<Impl>(std::move(options), recorder, pipeline)) {}

Server::~Server() = default;

core::Result<std::vector<BoundListener>> Server::bind() {
  std::vector<BoundListener> bound;
  for (const auto& mode : impl_->options.modes) {
    std::string where = format_host_port(mode.listen_host, mode.listen_port);
    boost::system::error_code ec;
    tcp::resolver resolver(impl_->ioc);
    auto results = resolver.resolve(mode.listen_host, std::to_string(mode.listen_port),
                                    tcp::resolver::passive | tcp::resolver::numeric_service, ec);
    if (ec || results.empty())
      return core::make_error("cannot listen on " + where + ": cannot resolve " + mode.listen_host);
    tcp::endpoint ep = results.begin()->endpoint();
    auto acceptor = std::make_unique<tcp::acceptor>(impl_->ioc);
    acceptor->open(ep.protocol(), ec);
    if (!ec) acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor->bind(ep, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return core::make_error("cannot listen on " + where + ": " + ec.message());
    auto local = acceptor->local_endpoint(ec);
    impl_->self.add_listener(local);
    bound.push_back(BoundListener{mode.text, format_endpoint(local)});
    impl_->listeners.emplace_back(mode, std::move(acceptor));
    impl_->accept_timers.push_back(std::make_unique<asio::steady_timer>(impl_->ioc));
  }
  return bound;
}

void Server::run() {
  auto& impl = *impl_;
  for (size_t i = 0; i < impl.listeners.size(); ++i) impl.accept(i);
  impl.signals.async_wait([&impl](boost::system::error_code ec, int) {
    if (!ec) impl.begin_stop();
  });
  if (impl.options.on_hangup) {
    impl.hangup.add(SIGHUP);
    impl.wait_hangup();
  }
  std::vector<int> cpus;  // the CPUs this process may run on, for --pin-threads
  if (impl.options.pin_threads) {
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (sched_getaffinity(0, sizeof allowed, &allowed) == 0)
      for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &allowed)) cpus.push_back(c);
  }
  std::vector<std::thread> threads;
  for (size_t i = 0; i < impl.workers.size(); ++i)
    threads.emplace_back([&w = impl.workers[i], cpu = cpus.empty() ? -1 : cpus[i % cpus.size()]] {
      pthread_setname_np(pthread_self(), "sluice-io");  // as top -H and perf show it
      if (cpu >= 0) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        pthread_setaffinity_np(pthread_self(), sizeof one, &one);
      }
      w->run();
    });
  impl.ioc.run();
  // Every connection has finished (or was closed by force): let the workers run dry and stop.
  impl.worker_guards.clear();
  for (auto& w : impl.workers) w->stop();
  for (auto& t : threads) t.join();
}

void Server::stop() {
  asio::post(impl_->ioc, [impl = impl_.get()] { impl->begin_stop(); });
}

}  // namespace sluice::runtime
