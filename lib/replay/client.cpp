#include <utility>  // before Asio (Boost 1.74 with GCC 12 in C++20)

#include "replay/client.hpp"

#include <sys/socket.h>

#include <boost/asio.hpp>
#include <cerrno>
#include <cstring>
#include <csignal>
#include <deque>
#include <optional>
#include <unordered_map>

#include "layer/http1_layer.hpp"
#include "layer/http1_parser.hpp"
#include "layer/http2_layer.hpp"
#include "replay/h2_request.hpp"
#include "layer/tls_layer.hpp"
#include "pipeline/pipeline.hpp"
#include "runtime/connection.hpp"
#include "runtime/recorder.hpp"

namespace sluice::replay {

namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using Local = asio::local::stream_protocol;

// The root layer of one replayed request: HTTP/1 or HTTP/2 (as recorded) to the target, under TLS for
// https (ALPN h2 for HTTP/2).
std::unique_ptr<layer::Layer> make_root(layer::ConnectionContext& ctx, const Request& q) {
  std::string host = q.target.host;
  uint16_t port = q.target.port;
  bool http2 = q.http2;
  auto protocol = [host, port, http2](layer::ConnectionContext& c, bool tls, layer::ConnId s) -> std::unique_ptr<layer::Layer> {
    if (http2) return std::make_unique<layer::Http2Layer>(c, layer::Http2Target{host, port, tls, s});
    return std::make_unique<layer::Http1Layer>(c, layer::Http1Target{host, port, tls, s});
  };
  if (q.target.scheme != "https") return protocol(ctx, false, 0);
  layer::TlsLayerSpec spec;
  spec.host = host;
  spec.port = port;
  spec.sni = q.sni;
  return std::make_unique<layer::TlsLayer>(ctx, std::move(spec), [protocol](layer::ConnectionContext& c, layer::ConnId s) {
    return protocol(c, true, s);
  });
}

class Engine {
 public:
  Engine(const std::vector<Recorded>& flows, const std::vector<Request>& requests, const EngineOptions& options,
         runtime::Recorder& recorder, const std::function<void(size_t)>& progress)
      : flows_(flows),
        requests_(requests),
        options_(options),
        recorder_(recorder),
        progress_(progress),
        pipeline_([this](const envelope::Envelope& e) {
          envelope::Record r{e};
          annotate(r);
          recorder_.record(std::move(r));
        }),
        pacer_(io_),
        outcomes_(requests.size()),
        state_(requests.size()) {
    run_id_ = runtime::new_run_id();
    for (size_t i = 0; i < requests.size(); ++i)
      if (requests[i].skipped.empty()) queue_.push_back(i);
  }

  std::vector<Outcome> run() {
    if (options_.stop_on_signal) {
      signals_.emplace(io_, SIGINT, SIGTERM);
      wait_signal();
    }
    pump();
    if (in_flight_ == 0 && signals_) signals_->cancel();  // nothing to send at all
    io_.run();
    // What never got an answer because of an interruption.
    for (size_t k = 0; k < queue_.size(); ++k) {
      Outcome& o = outcomes_[queue_[k]];
      if (interrupted_ && (k >= next_ || (!o.response && o.error.empty()))) o.not_sent = true;
    }
    return std::move(outcomes_);
  }

 private:
  // The in-memory client of one attempt.
  struct Client {
    explicit Client(asio::io_context& io)
        : sock(io), timer(io), idle(io), parser(layer::Http1Parser::Type::response) {}
    Local::socket sock;
    asio::steady_timer timer;
    asio::steady_timer idle;  // after an upgrade: the conversation is over once the server is quiet
    layer::Http1Parser parser;
    std::unique_ptr<H2Request> h2;  // an HTTP/2 flow's client
    std::array<char, 64 * 1024> buf;
    Clock::time_point started = Clock::now();
    bool done = false;
    bool upgraded = false;  // 101 seen: the recorded frames go out, the server's are recorded by the layers
    size_t next_frame = 0;  // the next recorded client frame to send
    std::deque<core::Bytes> out;  // bytes to write, in order
    bool writing = false;
  };
  // What the stream said about the current attempt of a request.
  struct State {
    unsigned attempt = 0;
    std::optional<envelope::HttpMessage> response;
    std::string error;
    std::string flow;
    size_t ws_received = 0;  // the server's WebSocket frames so far
    std::weak_ptr<Client> client;  // the attempt in flight
  };
  // How long a replayed WebSocket conversation waits for more from the server after its last bytes.
  static constexpr std::chrono::milliseconds kUpgradedQuiet{1000};

  void annotate(envelope::Record& r) {
    std::string conn;
    if (const auto* e = std::get_if<envelope::Envelope>(&r))
      conn = e->context.conn_id;
    else if (const auto* er = std::get_if<envelope::ErrorRecord>(&r))
      conn = er->stream_id.substr(0, er->stream_id.find('.'));
    auto it = conns_.find(conn);
    if (it == conns_.end()) return;
    auto [index, attempt] = it->second;
    State& st = state_[index];
    bool current = st.attempt == attempt;
    if (auto* e = std::get_if<envelope::Envelope>(&r)) {
      e->tags.emplace_back("replay_of", flows_[requests_[index].index].exchange.flow_id);
      if (current && e->protocol == envelope::Protocol::ws && e->direction == envelope::Direction::receive &&
          !e->modified && e->overlay.empty()) {
        ++st.ws_received;
        if (auto c = st.client.lock(); c && c->upgraded) send_frames(index, c, false);
        return;
      }
      const auto* m = std::get_if<envelope::HttpMessage>(&e->message);
      if (!current || !m || e->protocol != envelope::Protocol::http || e->modified || !e->overlay.empty()) return;
      if (m->kind == envelope::HttpMessage::Kind::request && st.flow.empty()) st.flow = e->flow_id;
      if (m->kind == envelope::HttpMessage::Kind::response && (m->status >= 200 || m->status == 101)) st.response = *m;
    } else if (const auto* er = std::get_if<envelope::ErrorRecord>(&r); er && current && st.error.empty()) {
      st.error = er->message;
    }
  }

  void wait_signal() {
    signals_->async_wait([this](boost::system::error_code ec, int) {
      if (ec) return;
      if (interrupted_) {  // a second time: abandon what is in flight
        io_.stop();
        return;
      }
      interrupted_ = true;
      if (options_.on_interrupt) options_.on_interrupt();
      if (in_flight_ == 0) return;  // the handler is not rearmed: io_ runs out of work
      wait_signal();
    });
  }

  void pump() {
    if (interrupted_) {
      if (in_flight_ == 0 && signals_) signals_->cancel();
      return;
    }
    while (in_flight_ < std::max(1u, options_.concurrency) && next_ < queue_.size()) {
      if (options_.rate > 0) {
        auto now = Clock::now();
        if (now < next_start_) {
          if (!pacing_) {
            pacing_ = true;
            pacer_.expires_at(next_start_);
            pacer_.async_wait([this](boost::system::error_code) {
              pacing_ = false;
              pump();
            });
          }
          return;
        }
        auto interval = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / options_.rate));
        next_start_ = std::max(now, next_start_) + interval;
      }
      ++in_flight_;
      launch(queue_[next_++]);
    }
  }

  void launch(size_t i) {
    const Request& q = requests_[i];
    State& st = state_[i];
    auto c = std::make_shared<Client>(io_);
    st = State{st.attempt + 1, std::nullopt, {}, {}, 0, c};
    outcomes_[i].attempts = st.attempt;
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
      end(i, c, std::string("socketpair: ") + std::strerror(errno));
      return;
    }
    c->sock.assign(Local(), fds[1]);
    runtime::tcp::socket proxy_side(io_);
    proxy_side.assign(runtime::tcp::v4(), fds[0]);
    std::string conn_id = run_id_ + "-" + std::to_string(++next_conn_);
    conns_[conn_id] = {i, st.attempt};
    layer::ModeSpec mode;
    mode.kind = layer::ModeSpec::Kind::reverse;
    mode.target_scheme = q.target.scheme;
    mode.target_host = q.target.host;
    mode.target_port = q.target.port;
    mode.text = "replay";
    auto ctx = std::make_unique<layer::ConnectionContext>(conn_id, "replay", core::now_wall(), mode, &options_.layer);
    auto conn = std::make_shared<runtime::Connection>(
        std::move(proxy_side), std::move(ctx),
        runtime::ConnectionDeps{recorder_, pipeline_, options_.connect_timeout, false,
                                [this](envelope::Record& r) { annotate(r); }});
    conn->start([&q](layer::ConnectionContext& ctx) { return make_root(ctx, q); });

    c->parser.set_request_method(flows_[q.index].exchange.method);
    c->timer.expires_after(options_.timeout);
    c->timer.async_wait([this, i, c](boost::system::error_code ec) {
      if (ec || c->done) return;
      char buf[64];
      std::snprintf(buf, sizeof buf, "%.1f", static_cast<double>(options_.timeout.count()) / 1000.0);
      end(i, c, std::string("no complete response within ") + buf + " s (--timeout)");
    });
    if (q.http2) {
      c->h2 = std::make_unique<H2Request>(q.message);
      write(i, c, c->h2->output());
    } else {
      write(i, c, q.bytes);
    }
    read(i, c);
  }

  void write(size_t i, const std::shared_ptr<Client>& c, core::Bytes bytes) {
    c->out.push_back(std::move(bytes));
    if (!c->writing) write_next(i, c);
  }

  void write_next(size_t i, const std::shared_ptr<Client>& c) {
    c->writing = true;
    asio::async_write(c->sock, asio::buffer(c->out.front()), [this, i, c](boost::system::error_code ec, size_t) {
      c->writing = false;
      c->out.pop_front();
      if (c->done) return;
      if (ec) {
        end(i, c, "cannot send the request: " + ec.message());
        return;
      }
      if (!c->out.empty()) write_next(i, c);
    });
  }

  // After the 101: the recorded client frames whose turn has come (the server sent as many frames as
  // it had before each was recorded), or, with `force`, the next one anyway.
  void send_frames(size_t i, const std::shared_ptr<Client>& c, bool force) {
    const auto& frames = flows_[requests_[i].index].ws_frames;
    core::Bytes batch;
    while (c->next_frame < frames.size() && (force || frames[c->next_frame].server_before <= state_[i].ws_received)) {
      batch += frames[c->next_frame++].raw;
      force = false;
    }
    if (!batch.empty()) write(i, c, std::move(batch));
    quiet_after(i, c);
  }

  void read(size_t i, const std::shared_ptr<Client>& c) {
    c->sock.async_read_some(asio::buffer(c->buf), [this, i, c](boost::system::error_code ec, size_t n) {
      if (c->done) return;
      if (ec) {
        bool whole = ec == asio::error::eof &&
                     (c->upgraded || (c->h2 ? c->h2->done() : c->parser.finish() == layer::Http1Parser::Status::complete));
        end(i, c, whole ? (c->h2 ? c->h2->error() : "") : "the connection closed before a complete response");
        return;
      }
      if (c->h2) {
        c->h2->input(core::ByteView(c->buf.data(), n));
        if (core::Bytes more = c->h2->output(); !more.empty()) write(i, c, std::move(more));
        if (c->h2->done())
          end(i, c, c->h2->error());
        else
          read(i, c);
        return;
      }
      if (c->upgraded) {  // the server's frames: the stream has them (annotate counts them)
        quiet_after(i, c);
        read(i, c);
        return;
      }
      core::ByteView data(c->buf.data(), n);
      for (;;) {
        size_t used = 0;
        auto s = c->parser.feed(data, used);
        data.remove_prefix(used);
        c->parser.take_body();  // the stream has the body; the client only needs the framing
        c->parser.take_chunks();
        if (s == layer::Http1Parser::Status::need_more) break;
        if (s == layer::Http1Parser::Status::error) {
          end(i, c, "malformed response: " + c->parser.error());
          return;
        }
        if (s == layer::Http1Parser::Status::upgrade && c->parser.head().status == 101 &&
            !flows_[requests_[i].index].ws_frames.empty()) {
          c->upgraded = true;
          send_frames(i, c, false);
          break;
        }
        if (s == layer::Http1Parser::Status::upgrade ||
            (s == layer::Http1Parser::Status::complete && c->parser.head().status >= 200)) {
          end(i, c, "");
          return;
        }
      }
      read(i, c);
    });
  }

  // After an upgrade, when the server has said nothing for a while: the next recorded frame goes out
  // whatever the server sent, and once none is left, the exchange is over.
  void quiet_after(size_t i, const std::shared_ptr<Client>& c) {
    c->idle.expires_after(kUpgradedQuiet);
    c->idle.async_wait([this, i, c](boost::system::error_code ec) {
      if (ec || c->done) return;
      if (c->next_frame < flows_[requests_[i].index].ws_frames.size())
        send_frames(i, c, true);
      else
        end(i, c, "");
    });
  }

  void end(size_t i, const std::shared_ptr<Client>& c, std::string error) {
    c->done = true;
    c->timer.cancel();
    c->idle.cancel();
    boost::system::error_code ignored;
    c->sock.close(ignored);
    State& st = state_[i];
    Outcome& o = outcomes_[i];
    // The proxy's own account (connection refused, TLS verification, a 502 it made) names the cause.
    if (!st.error.empty()) error = st.error;
    if (error.empty() && !st.response) error = "no response was recorded";
    o.elapsed += std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - c->started);
    if (!error.empty() && st.attempt <= options_.retries) {
      auto backoff = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(100 << std::min(st.attempt - 1, 6u)));
      backoff->async_wait([this, i, backoff](boost::system::error_code) { launch(i); });
      return;
    }
    o.error = std::move(error);
    o.response = std::move(st.response);
    o.new_flow = st.flow;
    --in_flight_;
    ++finished_;
    if (progress_) progress_(finished_);
    pump();
    if (in_flight_ == 0 && next_ >= queue_.size() && signals_) signals_->cancel();  // done: stop listening
  }

  const std::vector<Recorded>& flows_;
  const std::vector<Request>& requests_;
  const EngineOptions& options_;
  runtime::Recorder& recorder_;
  const std::function<void(size_t)>& progress_;
  asio::io_context io_;
  std::optional<asio::signal_set> signals_;
  bool interrupted_ = false;
  pipeline::Pipeline pipeline_;
  asio::steady_timer pacer_;
  bool pacing_ = false;
  Clock::time_point next_start_{};
  std::vector<Outcome> outcomes_;
  std::vector<State> state_;
  std::vector<size_t> queue_;
  size_t next_ = 0;
  unsigned in_flight_ = 0;
  size_t finished_ = 0;
  std::string run_id_;
  uint64_t next_conn_ = 0;
  std::unordered_map<std::string, std::pair<size_t, unsigned>> conns_;  // conn id -> request, attempt
};

}  // namespace

std::vector<Outcome> run(const std::vector<Recorded>& flows, const std::vector<Request>& requests,
                         const EngineOptions& options, runtime::Recorder& recorder,
                         const std::function<void(size_t finished)>& progress) {
  Engine engine(flows, requests, options, recorder, progress);
  return engine.run();
}

}  // namespace sluice::replay
