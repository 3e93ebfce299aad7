#include "runtime/connection.hpp"

#include <cstdio>
#include <random>

#include "pipeline/pipeline.hpp"
#include "runtime/endpoint.hpp"
#include "runtime/recorder.hpp"

namespace sluice::runtime {

using namespace layer;

std::string new_run_id() {
  std::random_device rd;
  char buf[16];
  std::snprintf(buf, sizeof buf, "%06x", rd() & 0xFFFFFF);
  return buf;
}

namespace {
asio::io_context::executor_type io_executor(tcp::socket& sock) {
  auto any = sock.get_executor();  // target() points into it: it must outlive the pointer
  const auto* e = any.target<asio::io_context::executor_type>();
  if (!e) throw std::logic_error("Connection: the socket's executor is not an io_context's");
  return *e;
}
}  // namespace

Connection::Connection(tcp::socket client, std::unique_ptr<ConnectionContext> ctx, ConnectionDeps deps)
    : exec_(io_executor(client)), ctx_(std::move(ctx)), deps_(deps) {
  sockets_.emplace(kClientConn, std::make_unique<Socket>(std::move(client)));
}

void Connection::start(std::function<std::unique_ptr<Layer>(ConnectionContext&)> make_root) {
  asio::dispatch(exec_, [self = shared_from_this(), make_root = std::move(make_root)] {
    self->root_ = make_root(*self->ctx_);
    self->post_event(Start{});
    self->start_read(kClientConn);
  });
}

void Connection::force_close() {
  asio::post(exec_, [self = shared_from_this()] {
    if (self->finished_) return;
    self->force_closed_ = true;
    self->post_event(ConnectionClosed{kClientConn, true, "shutdown"});
    for (auto& [id, s] : self->sockets_) self->close_socket(id);
    for (auto& [id, t] : self->timers_) t->cancel();
    self->timers_.clear();
    self->check_finished();
  });
}

void Connection::shutdown() {
  asio::post(exec_, [self = shared_from_this()] {
    if (!self->finished_ && self->root_) self->post_event(Shutdown{});
  });
}

void Connection::post_event(Event ev) {
  events_.push_back(std::move(ev));
  drain();
}

void Connection::drain() {
  if (draining_) return;
  draining_ = true;
  while (!events_.empty()) {
    Event ev = std::move(events_.front());
    events_.pop_front();
    if (deps_.verbose) std::fprintf(stderr, "sluice: %s: event %s\n", ctx_->conn_id().c_str(), describe(ev).c_str());
    scratch_.clear();
    root_->handle(ev, core::now_wall(), scratch_);
    // Executed from a swapped-out vector (a command may post events); its capacity is kept.
    Commands cmds;
    cmds.swap(scratch_);
    for (auto& cmd : cmds) execute(cmd);
    cmds.clear();
    scratch_.swap(cmds);
    // The read buffer behind a DataReceived is free again: read on.
    if (const auto* d = std::get_if<DataReceived>(&ev)) {
      sockets_.at(d->conn)->undelivered = false;
      start_read(d->conn);
    }
  }
  draining_ = false;
  check_finished();
}

void Connection::execute(Command& cmd) {
  if (deps_.verbose) std::fprintf(stderr, "sluice: %s: command %s\n", ctx_->conn_id().c_str(), describe(cmd).c_str());
  if (auto* o = std::get_if<OpenConnection>(&cmd)) {
    open(std::move(*o));
  } else if (auto* s = std::get_if<SendData>(&cmd)) {
    auto it = sockets_.find(s->conn);
    if (it == sockets_.end() || it->second->closed || s->data.empty()) return;
    it->second->queued += s->data.size();
    it->second->writes.push_back(std::move(s->data));
    note_queued(s->conn);
    start_write(s->conn);
  } else if (auto* c = std::get_if<CloseConnection>(&cmd)) {
    auto it = sockets_.find(c->conn);
    if (it == sockets_.end()) {
      // Still connecting (a layer that gave up on it): closed as soon as it is open.
      if (!c->half && opening_ > 0 && c->conn != kClientConn) closed_while_opening_.push_back(c->conn);
      return;
    }
    (c->half ? it->second->shut_after_writes : it->second->close_after_writes) = true;
    after_writes(c->conn);
  } else if (auto* p = std::get_if<PauseReading>(&cmd)) {
    auto it = sockets_.find(p->conn);
    if (it == sockets_.end()) return;
    it->second->paused = p->paused;
    if (!p->paused) start_read(p->conn);
  } else if (auto* t = std::get_if<StartTimer>(&cmd)) {
    auto timer = std::make_unique<asio::steady_timer>(exec_, t->after);
    timer->async_wait([self = shared_from_this(), id = t->id](boost::system::error_code ec) {
      if (ec) return;
      self->timers_.erase(id);
      self->post_event(TimerFired{id});
    });
    timers_[t->id] = std::move(timer);
  } else if (auto* ct = std::get_if<CancelTimer>(&cmd)) {
    timers_.erase(ct->id);  // destroying the timer cancels its wait
  } else if (auto* r = std::get_if<RunPipeline>(&cmd)) {
    ++in_pipeline_;
    ++held_by_stream_[r->envelope.stream_id];
    deps_.pipeline.run(std::move(r->envelope), [self = shared_from_this(), id = r->id,
                                                stream = r->envelope.stream_id](pipeline::Result res) {
      Verdict v = res.outcome == pipeline::Outcome::drop      ? Verdict::drop
                  : res.outcome == pipeline::Outcome::kill    ? Verdict::kill
                  : res.outcome == pipeline::Outcome::respond ? Verdict::respond
                                                              : Verdict::forward;
      auto deliver = [self, stream, ev = PipelineVerdict{id, v, std::move(res.envelope), std::move(res.reply),
                                                         std::move(res.decided_by), res.whole}]() mutable {
        --self->in_pipeline_;
        if (auto it = self->held_by_stream_.find(stream); it != self->held_by_stream_.end() && --it->second == 0)
          self->held_by_stream_.erase(it);
        self->record_deferred_ends(false);  // (the unit itself was recorded by the pipeline)
        if (self->finished_) return;  // closed while the unit was held: nothing is left to act on it
        self->post_event(std::move(ev));
      };
      if (self->exec_.running_in_this_thread())
        deliver();
      else
        asio::post(self->exec_, std::move(deliver));
    });
  } else if (auto* cu = std::get_if<CancelUnits>(&cmd)) {
    deps_.pipeline.cancel_stream(cu->stream_id);
  } else if (auto* e = std::get_if<EmitRecord>(&cmd)) {
    if (deps_.annotate) deps_.annotate(e->record);
    if (in_pipeline_ > 0 && std::holds_alternative<envelope::EndRecord>(e->record)) {
      deferred_ends_.push_back(std::move(e->record));
      record_deferred_ends(false);
      return;
    }
    deps_.recorder.record(std::move(e->record));
  } else if (auto* l = std::get_if<Log>(&cmd)) {
    if (deps_.verbose || l->level == Log::Level::warn)
      std::fprintf(stderr, "sluice: %s: %s\n", ctx_->conn_id().c_str(), l->message.c_str());
  }
}

void Connection::start_read(ConnId id) {
  auto it = sockets_.find(id);
  if (it == sockets_.end()) return;
  Socket& s = *it->second;
  // Never read into `buf` while an event still points into it (Asio may read speculatively at once).
  if (s.reading || s.undelivered || s.paused || s.read_eof || s.closed || blocked_by_backlog(id)) return;
  s.reading = true;
  s.sock.async_read_some(
      asio::buffer(s.buf), asio::bind_executor(exec_, [self = shared_from_this(), id](boost::system::error_code ec,
                                                                                        size_t n) {
        Socket& s = *self->sockets_.at(id);
        s.reading = false;
        if (s.closed || ec == asio::error::operation_aborted) return;
        if (ec == asio::error::eof) {
          s.read_eof = true;
          self->post_event(ConnectionClosed{id, false, {}});
        } else if (ec) {
          s.read_eof = true;
          s.reset_told = true;
          self->post_event(ConnectionClosed{id, true, ec.message()});
        } else {
          s.undelivered = true;
          self->post_event(DataReceived{id, core::ByteView(s.buf.data(), n)});
        }
      }));
}

void Connection::start_write(ConnId id) {
  Socket& s = *sockets_.at(id);
  if (s.writing || s.writes.empty() || s.closed) return;
  s.writing = true;
  asio::async_write(s.sock, asio::buffer(s.writes.front()),
                    asio::bind_executor(exec_, [self = shared_from_this(), id](boost::system::error_code ec, size_t) {
                      Socket& s = *self->sockets_.at(id);
                      s.writing = false;
                      if (s.closed) return;
                      if (ec) {
                        // The peer is gone: tell the layer once, then drop what was queued. Also after
                        // its EOF: a client that half-closed and then left must not keep a response
                        // downloading for nobody.
                        s.writes.clear();
                        s.queued = 0;
                        bool report = !s.reset_told;
                        s.read_eof = true;
                        s.reset_told = true;
                        self->close_socket(id);
                        if (report) self->post_event(ConnectionClosed{id, true, ec.message()});
                        self->check_finished();
                        return;
                      }
                      s.queued -= s.writes.front().size();
                      s.writes.pop_front();
                      self->note_queued(id);
                      if (!s.writes.empty())
                        self->start_write(id);
                      else
                        self->after_writes(id);
                    }));
}

void Connection::resume_reads() {
  for (auto& [id, s] : sockets_) start_read(id);
}

bool Connection::blocked_by_backlog(ConnId id) const {
  for (const auto& [other, s] : sockets_)
    if (other != id && s->backed_up && !s->closed) return true;
  return false;
}

void Connection::note_queued(ConnId id) {
  Socket& s = *sockets_.at(id);
  if (!s.backed_up && s.queued > kWriteHighWater) {
    s.backed_up = true;
  } else if (s.backed_up && s.queued < kWriteLowWater) {
    s.backed_up = false;
    resume_reads();
  }
}

void Connection::after_writes(ConnId id) {
  Socket& s = *sockets_.at(id);
  if (s.writing || !s.writes.empty() || s.closed) return;
  if (s.close_after_writes) {
    close_socket(id);
  } else if (s.shut_after_writes) {
    boost::system::error_code ec;
    s.sock.shutdown(tcp::socket::shutdown_send, ec);
  }
}

void Connection::close_socket(ConnId id) {
  Socket& s = *sockets_.at(id);
  if (s.closed) return;
  s.closed = true;
  boost::system::error_code ec;
  s.sock.shutdown(tcp::socket::shutdown_both, ec);
  s.sock.close(ec);
  if (s.backed_up) {  // nothing will drain it now: let the others read again
    s.backed_up = false;
    resume_reads();
  }
}

void Connection::open(OpenConnection cmd) {
  ++opening_;
  auto resolver = std::make_shared<tcp::resolver>(exec_);
  auto timer = std::make_shared<asio::steady_timer>(exec_, deps_.connect_timeout);
  auto sock = std::make_shared<tcp::socket>(exec_);
  auto timed_out = std::make_shared<bool>(false);
  std::string target = format_host_port(cmd.host, cmd.port);
  auto done = [self = shared_from_this(), cmd, sock, timer, target](std::string code, std::string message) {
    timer->cancel();
    --self->opening_;
    OpenCompleted ev{cmd.id, cmd.conn, std::move(code), std::move(message), {}};
    auto& abandoned = self->closed_while_opening_;
    bool closed_early = std::erase(abandoned, cmd.conn) > 0;
    if (ev.error_code.empty() && (self->force_closed_ || closed_early)) {
      boost::system::error_code ignored;
      sock->close(ignored);
      ev.error_code = self->force_closed_ ? "shutdown" : "closed";
      ev.error = self->force_closed_ ? "the proxy is shutting down" : "closed before it was open";
    }
    if (ev.error_code.empty()) {
      boost::system::error_code ec;
      sock->set_option(tcp::no_delay(true), ec);
      ev.peer = format_endpoint(sock->remote_endpoint(ec));
      self->sockets_.emplace(cmd.conn, std::make_unique<Socket>(std::move(*sock)));
    }
    bool ok = ev.error_code.empty();
    self->post_event(std::move(ev));
    if (ok) self->start_read(cmd.conn);
  };
  timer->async_wait([resolver, sock, timed_out](boost::system::error_code ec) {
    if (ec) return;
    *timed_out = true;
    resolver->cancel();
    boost::system::error_code ignored;
    sock->close(ignored);
  });
  auto connect = [sock, timed_out, done, target, timeout = deps_.connect_timeout,
                  self_addresses = deps_.own_listeners](const std::vector<tcp::endpoint>& all) {
    // Never this proxy's own listener: a self-loop would feed on itself until descriptors run out.
    std::vector<tcp::endpoint> endpoints;
    for (const auto& e : all)
      if (!self_addresses || !self_addresses->contains(e)) endpoints.push_back(e);
    if (endpoints.empty() && !all.empty()) {
      done("self_loop", "refusing to connect to " + target + ": it is this proxy's own listener");
      return;
    }
    asio::async_connect(*sock, endpoints, [sock, timed_out, done, target, timeout](boost::system::error_code ec,
                                                                                   const tcp::endpoint&) {
      if (*timed_out) {
        done("connect_timeout", "no connection to " + target + " within " + std::to_string(timeout.count()) + " ms");
      } else if (ec == asio::error::connection_refused) {
        done("connect_refused", "connection refused by " + target);
      } else if (ec == asio::error::network_unreachable || ec == asio::error::host_unreachable) {
        done("unreachable", target + " is unreachable: " + ec.message());
      } else if (ec) {
        done("connect_failed", "cannot connect to " + target + ": " + ec.message());
      } else {
        done({}, {});
      }
    });
  };
  // An address needs no lookup (the resolver would hop to its own thread and back for nothing).
  boost::system::error_code not_literal;
  auto address = asio::ip::make_address(cmd.host, not_literal);
  if (!not_literal) {
    connect(std::vector<tcp::endpoint>{tcp::endpoint(address, cmd.port)});
    return;
  }
  resolver->async_resolve(
      cmd.host, std::to_string(cmd.port),
      [resolver, timed_out, done, connect, target, timeout = deps_.connect_timeout](
          boost::system::error_code ec, tcp::resolver::results_type results) {
        if (*timed_out) {
          done("connect_timeout", "no answer from " + target + " within " + std::to_string(timeout.count()) + " ms");
          return;
        }
        if (ec) {
          done("dns_failure", "cannot resolve " + target + ": " + ec.message());
          return;
        }
        std::vector<tcp::endpoint> endpoints;
        for (const auto& r : results) endpoints.push_back(r.endpoint());
        connect(endpoints);
      });
}

// The end records that no held unit waits for go into the stream, in order (`all`: every one).
void Connection::record_deferred_ends(bool all) {
  while (!deferred_ends_.empty()) {
    const auto& end = std::get<envelope::EndRecord>(deferred_ends_.front());
    if (!all) {
      // Held: a unit of this stream, or of a stream inside it ("conn.1" inside "conn").
      auto it = held_by_stream_.lower_bound(end.stream_id);
      if (it != held_by_stream_.end() &&
          (it->first == end.stream_id || it->first.starts_with(end.stream_id + ".")))
        return;
    }
    deps_.recorder.record(std::move(deferred_ends_.front()));
    deferred_ends_.pop_front();
  }
}

void Connection::check_finished() {
  if (finished_ || draining_ || opening_ > 0 || !events_.empty()) return;
  for (const auto& [id, s] : sockets_)
    if (!s->closed) return;
  if (in_pipeline_ > 0 && !cancelled_) {
    // Every socket is closed and units are still held: nothing can act on their verdicts. They are
    // cancelled (a step that asked is told; a step program answers at once), so that their records
    // come now, before the ends that wait for them.
    cancelled_ = true;
    deps_.pipeline.cancel(ctx_->conn_id());
    if (finished_) return;  // (finished while the cancelled units were delivered)
  }
  // A unit still held is waited for, unless the proxy is closing the connection anyway: its late
  // verdict is then dropped (in RunPipeline's delivery).
  if (in_pipeline_ > 0 && !force_closed_) return;
  finished_ = true;
  timers_.clear();
  record_deferred_ends(true);
}

}  // namespace sluice::runtime
