#pragma once
// Connection: executes the commands of one client connection's layer stack on its I/O thread.
// Internal to lib/runtime (includes Asio).
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp needs std::exchange

#include <boost/asio.hpp>
#include <deque>
#include <map>
#include <memory>
#include <vector>

#include "layer/layer.hpp"
#include "runtime/endpoint.hpp"

namespace sluice::pipeline {
class Pipeline;
}

namespace sluice::runtime {

class Recorder;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct ConnectionDeps {
  Recorder& recorder;
  const pipeline::Pipeline& pipeline;
  std::chrono::milliseconds connect_timeout;
  bool verbose;
  // Sees every record the layers emit straight to the stream before it is written (a replay tags its
  // flows here); may be empty.
  std::function<void(envelope::Record&)> annotate = {};
  // The proxy's own listeners, never connected to; may be null (a replay has none).
  const SelfAddresses* own_listeners = nullptr;
};

// A short random id naming one run (proxy or replay): the prefix of its connection ids.
std::string new_run_id();

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // The connection's handlers run on its socket's io_context, which exactly one thread runs (a
  // worker of the server, the replay engine's loop): that thread serialises them, without a strand.
  using Executor = asio::io_context::executor_type;
  Connection(tcp::socket client, std::unique_ptr<layer::ConnectionContext> ctx, ConnectionDeps deps);

  // `make_root` builds the root layer from the context (called on the connection's thread).
  void start(std::function<std::unique_ptr<layer::Layer>(layer::ConnectionContext&)> make_root);
  // Ends the connection now: the layer sees the client reset with reason "shutdown". Any thread.
  void force_close();
  // The proxy is stopping: the layer finishes what is in flight and closes when idle. Any thread.
  void shutdown();
  bool finished() const { return finished_.load(); }

 private:
  struct Socket {
    explicit Socket(tcp::socket s) : sock(std::move(s)) {}
    tcp::socket sock;
    std::array<char, 64 * 1024> buf;
    std::deque<core::Bytes> writes;
    bool writing = false;
    bool reading = false;
    bool undelivered = false;  // a DataReceived pointing into `buf` waits in the event queue
    bool paused = false;     // by the layer (PauseReading)
    size_t queued = 0;       // bytes waiting in `writes`
    bool backed_up = false;  // queued passed the high-water mark and has not drained to the low one
    bool read_eof = false;   // no more reads (EOF, error or closed)
    bool reset_told = false;  // the layer was told the peer is gone (a reset), not only that it sent EOF
    bool shut_after_writes = false;
    bool close_after_writes = false;
    bool closed = false;
  };

  void post_event(layer::Event ev);
  void drain();
  void execute(layer::Command& cmd);
  void start_read(layer::ConnId id);
  // Backpressure: while one socket's writes are backed up, the others are not read, so a fast
  // server cannot fill memory faster than a slow client drains it.
  bool blocked_by_backlog(layer::ConnId id) const;
  void note_queued(layer::ConnId id);
  void resume_reads();  // start_read on every socket that may read now
  static constexpr size_t kWriteHighWater = 256u << 10;
  static constexpr size_t kWriteLowWater = 64u << 10;
  void start_write(layer::ConnId id);
  void after_writes(layer::ConnId id);
  void close_socket(layer::ConnId id);
  void open(layer::OpenConnection cmd);
  void check_finished();

  Executor exec_;
  std::unique_ptr<layer::ConnectionContext> ctx_;
  ConnectionDeps deps_;
  std::unique_ptr<layer::Layer> root_;
  std::map<layer::ConnId, std::unique_ptr<Socket>> sockets_;
  std::map<layer::CommandId, std::unique_ptr<asio::steady_timer>> timers_;
  std::deque<layer::Event> events_;
  int opening_ = 0;
  int in_pipeline_ = 0;
  // Units in the pipeline by stream, and the end records waiting for them: a unit is recorded when its
  // verdict comes, and nothing of a stream (or of the streams inside it) may follow its end.
  std::map<std::string, int> held_by_stream_;
  std::deque<envelope::Record> deferred_ends_;
  bool cancelled_ = false;  // the held units were cancelled (every socket closed)
  void record_deferred_ends(bool all);
  bool draining_ = false;
  bool force_closed_ = false;  // shutting down: late server connections are closed at once
  std::vector<layer::ConnId> closed_while_opening_;  // a layer closed them before they were open
  std::atomic<bool> finished_{false};
  layer::Commands scratch_;
};

}  // namespace sluice::runtime
