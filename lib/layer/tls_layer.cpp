#include "layer/tls_layer.hpp"

#include <algorithm>

#include "layer/raw_layer.hpp"

namespace sluice::layer {

namespace {

bool offers(const std::vector<std::string>& alpn, std::string_view p) {
  return std::find(alpn.begin(), alpn.end(), p) != alpn.end();
}

// Alerts by which a client says it does not trust the certificate it was shown.
bool rejects_certificate(const std::string& alert) {
  return alert == "unknown_ca" || alert == "bad_certificate" || alert == "certificate_unknown" ||
         alert == "unsupported_certificate" || alert == "certificate_expired" || alert == "access_denied";
}

}  // namespace

TlsLayer::TlsLayer(ConnectionContext& ctx, TlsLayerSpec spec, TlsChildFactory child)
    : ctx_(ctx), spec_(std::move(spec)), factory_(std::move(child)), config_(ctx.options().tls),
      connect_(spec_.server != 0), stream_id_(ctx.new_stream_id()), flow_id_(stream_id_ + "-tls") {}

TlsLayer::~TlsLayer() = default;

void TlsLayer::handle(const Event& event, core::Timestamp now, Commands& out) {
  if (phase_ == Phase::closed) return;
  if (const auto* d = std::get_if<DataReceived>(&event))
    (d->conn == kClientConn ? from_client_ : from_servers_) += d->data.size();
  if (phase_ == Phase::passthrough) {
    size_t from = out.size();
    child_->handle(event, now, out);
    after_child(from, now, out);
    return;
  }
  if (std::holds_alternative<Start>(event)) {
    if (!spec_.terminate) {
      phase_ = Phase::established;
      child_ = factory_(ctx_, spec_.server);
      to_child(event, now, out);
      return;
    }
    timer_ = ctx_.new_command();
    out.push_back(StartTimer{timer_, ctx_.options().header_timeout});
  } else if (const auto* d = std::get_if<DataReceived>(&event)) {
    if (d->conn == kClientConn && spec_.terminate) {
      on_client_bytes(d->data, now, out);
    } else if (wrapped_.count(d->conn)) {
      on_wrapped_data(d->conn, d->data, now, out);
    } else if (child_) {
      to_child(event, now, out);
    }
  } else if (const auto* c = std::get_if<ConnectionClosed>(&event)) {
    if (c->conn == kClientConn && spec_.terminate && phase_ != Phase::established) {
      std::string how = c->reset ? "reset the connection" : "closed the connection";
      if (client_ && !client_->alert().empty()) {
        client_failed(now, out);
        return;
      }
      fail("tls_handshake_aborted", "the client " + how + " during the TLS handshake", now, out);
    } else if (auto it = wrapped_.find(c->conn); it != wrapped_.end() && !it->second.ready) {
      std::string why = c->reset ? "reset the connection" : "closed the connection";
      wrapped_failed(c->conn, "tls_failed",
                     "the server " + why + " during the TLS handshake" +
                         (it->second.session && !it->second.session->alert().empty()
                              ? " (alert " + it->second.session->alert() + ")"
                              : ""),
                     now, out);
    } else {
      // Told already at the peer's close_notify: like the runtime, which reports a connection's end
      // once, the child hears of it once.
      bool told = c->conn == kClientConn ? client_eof_told_ : it != wrapped_.end() && it->second.eof_told;
      if (it != wrapped_.end()) wrapped_.erase(it);
      if (child_ && !told) to_child(event, now, out);
    }
  } else if (const auto* o = std::get_if<OpenCompleted>(&event); o && o->id == retry_open_) {
    retry_open_ = 0;
    spec_.server = o->conn;
    retry_.peer = o->peer;
    if (!o->error_code.empty()) {
      wrapped_[o->conn] = std::move(retry_);
      wrapped_failed(o->conn, o->error_code, o->error, now, out);
      return;
    }
    start_wrapped(o->conn, std::move(retry_), now, out);
  } else if (const auto* o = std::get_if<OpenCompleted>(&event)) {
    auto it = opening_.find(o->id);
    if (it == opening_.end()) {
      if (child_) to_child(event, now, out);
      return;
    }
    Opening op = it->second;
    opening_.erase(it);
    if (!o->error_code.empty()) {
      to_child(event, now, out);
      return;
    }
    if (!server_failure_code_.empty() && op.host == spec_.host && op.port == spec_.port) {
      // The intercepted server already failed its handshake: say so rather than try again.
      std::string code, message;
      code.swap(server_failure_code_);
      message.swap(server_failure_);
      out.push_back(CloseConnection{o->conn, false});
      to_child(OpenCompleted{o->id, o->conn, code, message, o->peer}, now, out);
      return;
    }
    Wrapped w;
    w.host = op.host;
    w.port = op.port;
    // Within an intercepted connection, the server is addressed by the name the client used.
    if (connect_ && op.host == spec_.host && hello_.has_sni)
      w.sni = hello_.sni;
    else if (!spec_.sni.empty() && op.host == spec_.host)
      w.sni = spec_.sni;
    else if (!tls::is_ip_literal(op.host))
      w.sni = op.host;
    w.alpn = op.alpn.empty() ? std::vector<std::string>{"http/1.1"} : op.alpn;
    w.open_id = o->id;
    w.peer = o->peer;
    start_wrapped(o->conn, std::move(w), now, out);
  } else if (const auto* t = std::get_if<TimerFired>(&event)) {
    if (t->id == timer_) {
      timer_ = 0;
      if (phase_ != Phase::established)
        fail("tls_handshake_timeout", "no TLS handshake from the client within the header timeout", now, out);
      return;
    }
    if (child_) to_child(event, now, out);
  } else if (std::holds_alternative<Shutdown>(event)) {
    if (child_) {
      to_child(event, now, out);
      return;
    }
    fail("shutdown", "the proxy stopped during the TLS handshake", now, out);
  } else if (child_) {
    to_child(event, now, out);
  }
}

// ---- the client's side ---------------------------------------------------------------------------

void TlsLayer::on_client_bytes(core::ByteView data, core::Timestamp now, Commands& out) {
  if (phase_ == Phase::hello || phase_ == Phase::server_handshake) {
    hello_bytes_.append(data);
    if (phase_ == Phase::server_handshake) return;  // kept for the client session
    auto parse = tls::parse_client_hello(hello_bytes_);
    if (parse.status == tls::HelloStatus::need_more) {
      if (hello_bytes_.size() > kMaxHello) fail("tls_bad_client_hello", "ClientHello larger than 64 KiB", now, out);
      return;
    }
    if (parse.status != tls::HelloStatus::ok) {
      std::string why = parse.status == tls::HelloStatus::not_tls ? "the client did not start a TLS handshake"
                                                                  : "malformed ClientHello: " + parse.error;
      fail("tls_bad_client_hello", why, now, out);
      return;
    }
    hello_ = std::move(parse.hello);
    hello_raw_ = hello_bytes_;
    on_hello(now, out);
    return;
  }
  if (!client_) return;
  core::Bytes plain;
  client_->receive(data, plain);
  flush(kClientConn, *client_, out);
  if (client_->state() == tls::TlsSession::State::failed) {
    if (phase_ != Phase::established) {
      client_failed(now, out);
      return;
    }
    // A broken session after the handshake: the child sees a reset client.
    out.push_back(CloseConnection{kClientConn, false});
    to_child(ConnectionClosed{kClientConn, true, "TLS error: " + client_->error()}, now, out);
    return;
  }
  if (phase_ == Phase::client_handshake && client_->established()) {
    on_client_established(now, out);
  }
  if (phase_ != Phase::established) return;
  if (!plain.empty()) to_child(DataReceived{kClientConn, plain}, now, out);
  // Likewise the client's close_notify (unless the child has closed the client connection already).
  if (client_ && !client_eof_told_ && !ended_ && client_->peer_closed()) {
    client_eof_told_ = true;
    to_child(ConnectionClosed{kClientConn, false, {}}, now, out);
  }
}

void TlsLayer::on_hello(core::Timestamp now, Commands& out) {
  std::string name = hello_.has_sni ? hello_.sni : spec_.host;
  const auto& ignore = ctx_.options().ignore_host;
  bool ignored = ignore && ignore(spec_.host, hello_.has_sni ? std::string_view(hello_.sni) : std::string_view());
  if (ignored || config_->passthrough(name) || config_->passthrough(spec_.host)) {
    if (timer_) {
      out.push_back(CancelTimer{timer_});
      timer_ = 0;
    }
    record_handshake(nullptr, nullptr, {}, now, out, {{ignored ? "ignored" : "passthrough", "true"}});
    phase_ = Phase::passthrough;
    std::string stream = ctx_.new_stream_id();
    std::unique_ptr<RawLayer> raw;
    if (spec_.server)
      raw = std::make_unique<RawLayer>(ctx_, spec_.server, format_host_port(spec_.host, spec_.port), stream);
    else
      raw = std::make_unique<RawLayer>(ctx_, spec_.host, spec_.port, stream);
    if (ignored) raw->summary_only();
    child_ = std::move(raw);
    size_t from = out.size();
    child_->handle(Start{}, now, out);
    core::Bytes first;
    first.swap(hello_bytes_);
    child_->handle(DataReceived{kClientConn, first}, now, out);
    after_child(from, now, out);
    return;
  }
  std::string alpn = offers(hello_.alpn, "http/1.1") ? "http/1.1" : "";
  if (spec_.server) {
    // The server chooses among what the client offered of h2 and http/1.1, and the client gets its
    // choice: both legs speak the same HTTP.
    phase_ = Phase::server_handshake;
    Wrapped w;
    w.host = spec_.host;
    w.port = spec_.port;
    if (hello_.has_sni)
      w.sni = hello_.sni;
    else if (!tls::is_ip_literal(spec_.host))
      w.sni = spec_.host;
    for (const auto& p : hello_.alpn)
      if (p == "h2" || p == "http/1.1") w.alpn.push_back(p);
    start_wrapped(spec_.server, std::move(w), now, out);
    return;
  }
  // Answering before any server is contacted (a reverse proxy, a TCP forward, --serve-from): HTTP/2
  // when the client offers it, since the HTTP/2 layer then speaks h2 to the server if it can, or
  // HTTP/1.1 translated (as mitmproxy and nginx do in front of an HTTP/1.1 server).
  if (offers(hello_.alpn, "h2")) alpn = "h2";
  start_client_handshake({name}, alpn, now, out);
}

void TlsLayer::start_client_handshake(std::vector<std::string> names, std::string alpn, core::Timestamp now,
                                      Commands& out) {
  bool minted = false;
  auto leaf = config_->leaves().get(names, &minted);
  if (!leaf) {
    fail("tls_certificate", "cannot make a certificate for " + names[0] + ": " + leaf.error().message, now, out);
    return;
  }
  auto session = tls::TlsSession::accept(*config_, **leaf, std::move(alpn));
  if (!session) {
    fail("tls_handshake_failed", session.error().message, now, out);
    return;
  }
  client_ = std::move(*session);
  leaf_minted_ = minted;
  phase_ = Phase::client_handshake;
  core::Bytes first;
  first.swap(hello_bytes_);
  on_client_bytes(first, now, out);
}

void TlsLayer::on_client_established(core::Timestamp now, Commands& out) {
  if (timer_) {
    out.push_back(CancelTimer{timer_});
    timer_ = 0;
  }
  phase_ = Phase::established;
  envelope::TlsInfo info;
  info.version = client_->version();
  info.cipher = client_->cipher();
  info.sni = hello_.sni;
  info.alpn = client_->alpn();
  ctx_.set_tls(std::move(info));
  envelope::Tags tags{{"leaf", leaf_minted_ ? "minted" : "cached"}};
  if (client_->resumed()) tags.emplace_back("resumed", "true");
  record_handshake(client_.get(), nullptr, {}, now, out, std::move(tags));
  child_ = factory_(ctx_, spec_.server);
  to_child(Start{}, now, out);
  if (auto it = wrapped_.find(spec_.server); spec_.server && it != wrapped_.end()) {
    it->second.ready = true;
    if (!it->second.early.empty()) {
      core::Bytes early;
      early.swap(it->second.early);
      to_child(DataReceived{spec_.server, early}, now, out);
    }
    server_sent_close_notify(spec_.server, now, out);
  }
}

void TlsLayer::client_failed(core::Timestamp now, Commands& out) {
  const std::string& alert = client_->alert();
  if (rejects_certificate(alert)) {
    std::string message = "the client rejected our certificate (alert " + alert +
                          "): trust the CA (sluice ca trust-hint) or let the host through with --tls-passthrough";
    record_handshake(client_.get(), nullptr, {{"tls_client_rejected", message}}, now, out);
    fail("tls_client_rejected", message, now, out);
    return;
  }
  std::string message = "TLS handshake with the client failed: " + client_->error();
  record_handshake(client_.get(), nullptr, {{"tls_handshake_failed", message}}, now, out);
  fail("tls_handshake_failed", message, now, out);
}

// ---- the servers' side ---------------------------------------------------------------------------

void TlsLayer::start_wrapped(ConnId conn, Wrapped w, core::Timestamp now, Commands& out) {
  auto session = tls::TlsSession::connect(*config_, w.sni.empty() ? w.host : w.sni, format_host_port(w.host, w.port),
                                          w.sni, w.alpn);
  if (!session) {
    wrapped_[conn] = std::move(w);
    wrapped_failed(conn, "tls_failed", session.error().message, now, out);
    return;
  }
  w.session = std::move(*session);
  Wrapped& placed = wrapped_[conn] = std::move(w);
  flush(conn, *placed.session, out);
}

void TlsLayer::on_wrapped_data(ConnId conn, core::ByteView data, core::Timestamp now, Commands& out) {
  Wrapped& w = wrapped_.at(conn);
  bool was_established = w.session->established();
  core::Bytes plain;
  w.session->receive(data, plain);
  flush(conn, *w.session, out);
  if (!was_established) {
    if (w.session->state() == tls::TlsSession::State::handshaking) return;
    on_wrapped_handshake(conn, now, out);
    auto it = wrapped_.find(conn);
    if (it == wrapped_.end() || plain.empty()) return;
    if (!it->second.ready) {
      it->second.early += plain;
      return;
    }
  } else if (w.session->state() == tls::TlsSession::State::failed) {
    std::string why = "TLS error from the server: " + w.session->error();
    if (!w.ready) {  // the intercepted server, while the client's handshake is still going on
      wrapped_failed(conn, "tls_failed", why, now, out);
      return;
    }
    wrapped_.erase(conn);
    out.push_back(CloseConnection{conn, false});
    to_child(ConnectionClosed{conn, true, why}, now, out);
    return;
  }
  if (!plain.empty()) {
    if (!w.ready) {
      w.early += plain;
      return;
    }
    to_child(DataReceived{conn, plain}, now, out);
  }
  server_sent_close_notify(conn, now, out);
}

void TlsLayer::server_sent_close_notify(ConnId conn, core::Timestamp now, Commands& out) {
  // The server's close_notify ends what it sends, whether or not its TCP FIN follows (a server may
  // wait for ours before it closes: the child's close answers it).
  auto it = wrapped_.find(conn);
  if (it != wrapped_.end() && it->second.ready && !it->second.eof_told && it->second.session->peer_closed()) {
    it->second.eof_told = true;
    to_child(ConnectionClosed{conn, false, {}}, now, out);
  }
}

void TlsLayer::on_wrapped_handshake(ConnId conn, core::Timestamp now, Commands& out) {
  Wrapped& w = wrapped_.at(conn);
  tls::TlsSession& s = *w.session;
  std::string target = format_host_port(w.host, w.port);
  if (s.state() == tls::TlsSession::State::failed) {
    std::string message = "TLS handshake with " + target + " failed: " + s.error();
    record_handshake(&s, &w, {{"tls_handshake_failed", message}}, now, out);
    if (conn == spec_.server && phase_ == Phase::server_handshake && s.alert() == "no_application_protocol" &&
        !alpn_retried_ && !offers(hello_.alpn, "h2")) {
      // An HTTP/2-only server: once more, offering h2 (the HTTP/2 layer then translates).
      alpn_retried_ = true;
      retry_ = Wrapped{};
      retry_.host = w.host;
      retry_.sni = w.sni;
      retry_.port = w.port;
      retry_.alpn = {"h2"};
      wrapped_.erase(conn);
      out.push_back(CloseConnection{conn, false});
      retry_open_ = ctx_.new_command();
      out.push_back(OpenConnection{retry_open_, ctx_.new_conn(), retry_.host, retry_.port, false});
      return;
    }
    wrapped_failed(conn, "tls_failed", message, now, out);
    return;
  }
  if (std::string verify = s.verify_error(); !verify.empty()) {
    std::string message = "the certificate of " + target + " failed verification: " + verify;
    if (!config_->settings().insecure) {
      record_handshake(&s, &w, {{"tls_verify_failed", message}}, now, out);
      wrapped_failed(conn, "tls_verify_failed", message + " (--server-ca adds trust, --insecure skips the check)", now,
                     out);
      return;
    }
    record_handshake(&s, &w, {}, now, out, {{"verify_skipped", verify}});
  } else {
    record_handshake(&s, &w, {}, now, out);
  }
  if (conn == spec_.server && phase_ == Phase::server_handshake) {
    // The leaf carries the client's name and the server certificate's names.
    std::vector<std::string> names{hello_.has_sni ? hello_.sni : spec_.host};
    if (auto cert = s.peer_certificate()) {
      for (auto& n : cert->sans) {
        if (names.size() >= 32) break;
        if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(std::move(n));
      }
    }
    // The client gets the server's choice if it offered it (an HTTP/2-only server chosen on a retry
    // leaves an HTTP/1.1 client with http/1.1).
    ctx_.set_server_alpn(s.alpn());
    std::string alpn = s.alpn();
    if (!alpn.empty() && !offers(hello_.alpn, alpn)) alpn = offers(hello_.alpn, "http/1.1") ? "http/1.1" : "";
    start_client_handshake(std::move(names), alpn, now, out);
    return;
  }
  w.ready = true;
  to_child(OpenCompleted{w.open_id, conn, "", "", w.peer, s.alpn()}, now, out);
}

void TlsLayer::wrapped_failed(ConnId conn, std::string code, std::string message, core::Timestamp now, Commands& out) {
  Wrapped w = std::move(wrapped_.at(conn));
  wrapped_.erase(conn);
  out.push_back(CloseConnection{conn, false});
  if (conn == spec_.server) {
    // The child's first connection to this server is answered with the failure (a 502 naming it).
    server_failure_code_ = std::move(code);
    server_failure_ = std::move(message);
    spec_.server = 0;
    if (phase_ != Phase::server_handshake) return;
    // Finish the client's handshake anyway, so its request can be answered.
    start_client_handshake({hello_.has_sni ? hello_.sni : spec_.host},
                           offers(hello_.alpn, "http/1.1") ? "http/1.1" : "", now, out);
    return;
  }
  if (w.open_id) to_child(OpenCompleted{w.open_id, conn, std::move(code), std::move(message), w.peer}, now, out);
}

// ---- plumbing ------------------------------------------------------------------------------------

void TlsLayer::flush(ConnId conn, tls::TlsSession& s, Commands& out) {
  core::Bytes bytes = s.take_output();
  if (!bytes.empty()) out.push_back(SendData{conn, std::move(bytes)});
}

void TlsLayer::to_child(const Event& event, core::Timestamp now, Commands& out) {
  if (!child_) return;
  size_t from = out.size();
  child_->handle(event, now, out);
  rewrite(out, from);
  after_child(from, now, out);
}

void TlsLayer::after_child(size_t from, core::Timestamp now, Commands& out) {
  std::string reason;
  if (ended_ || seq_ == 0 || !closes_client(out, from, reason)) return;
  ended_ = true;
  end_stream(out, from, stream_id_, std::move(reason), now, from_client_, from_servers_);
}

void TlsLayer::rewrite(Commands& out, size_t from) {
  auto session_for = [this](ConnId conn) -> tls::TlsSession* {
    if (conn == kClientConn) return client_ && client_->established() ? client_.get() : nullptr;
    auto it = wrapped_.find(conn);
    return it != wrapped_.end() && it->second.session && it->second.session->established() ? it->second.session.get()
                                                                                            : nullptr;
  };
  // A connection of the child's that is ours to wrap: opening, in its handshake, or established.
  auto wrapping = [this](ConnId conn) {
    return wrapped_.count(conn) ||
           std::any_of(opening_.begin(), opening_.end(), [conn](const auto& o) { return o.second.conn == conn; });
  };
  bool touched = false;
  for (size_t i = from; i < out.size() && !touched; ++i) {
    if (const auto* s = std::get_if<SendData>(&out[i]))
      touched = session_for(s->conn) != nullptr;
    else if (const auto* c = std::get_if<CloseConnection>(&out[i]))
      touched = session_for(c->conn) != nullptr || (!c->half && c->conn != kClientConn && wrapping(c->conn));
    else if (const auto* o = std::get_if<OpenConnection>(&out[i]))
      touched = o->tls;
  }
  if (!touched) return;
  Commands tail(std::make_move_iterator(out.begin() + static_cast<std::ptrdiff_t>(from)),
                std::make_move_iterator(out.end()));
  out.resize(from);
  for (auto& cmd : tail) {
    if (auto* s = std::get_if<SendData>(&cmd)) {
      if (tls::TlsSession* session = session_for(s->conn)) {
        session->send(s->data);
        s->data = session->take_output();
        if (s->data.empty()) continue;
      }
    } else if (auto* c = std::get_if<CloseConnection>(&cmd)) {
      if (tls::TlsSession* session = session_for(c->conn)) {
        session->close();
        flush(c->conn, *session, out);
      }
      // Closed by the child, even while opening or mid-handshake: nothing more of it is read or
      // recorded (its OpenCompleted, if one still comes, goes to the child as it is).
      if (!c->half && c->conn != kClientConn) {
        wrapped_.erase(c->conn);
        std::erase_if(opening_, [conn = c->conn](const auto& o) { return o.second.conn == conn; });
      }
    } else if (auto* o = std::get_if<OpenConnection>(&cmd)) {
      if (o->tls) {
        opening_[o->id] = Opening{o->conn, o->host, o->port, o->alpn};
        o->tls = false;
      }
    }
    out.push_back(std::move(cmd));
  }
}

void TlsLayer::record_handshake(const tls::TlsSession* s, const Wrapped* w, std::vector<envelope::Anomaly> anomalies,
                                core::Timestamp now, Commands& out, envelope::Tags tags) {
  envelope::Envelope e;
  e.stream_id = stream_id_;
  e.flow_id = flow_id_;
  e.seq = seq_++;
  e.direction = w ? envelope::Direction::receive : envelope::Direction::send;
  e.protocol = envelope::Protocol::tls_handshake;
  e.time = now;
  e.context = ctx_.envelope_context(w ? format_host_port(w->host, w->port) : format_host_port(spec_.host, spec_.port));
  envelope::TlsHandshakeMessage m;
  if (w) {
    m.side = "server";
    m.sni = w->sni;
    m.alpn_offered = w->alpn;
  } else {
    m.side = "client";
    m.sni = hello_.sni;
    m.alpn_offered = hello_.alpn;
    m.ja3 = tls::ja3_string(hello_);
    m.ja3_hash = tls::ja3_digest(m.ja3);
    m.ja4 = tls::ja4(hello_);
    e.raw = hello_raw_;
  }
  if (s && s->established()) {
    m.alpn = s->alpn();
    m.version = s->version();
    m.cipher = s->cipher();
  }
  if (s && w) {
    if (auto cert = s->peer_certificate()) {
      envelope::Certificate c;
      c.subject = std::move(cert->subject);
      c.issuer = std::move(cert->issuer);
      c.sans = std::move(cert->sans);
      c.sha256 = std::move(cert->sha256);
      m.certificate = std::move(c);
    }
  }
  e.message = std::move(m);
  e.anomalies = std::move(anomalies);
  e.tags = std::move(tags);
  if (s && w && s->established() && s->resumed()) e.tags.emplace_back("resumed", "true");
  out.push_back(EmitRecord{std::move(e)});
}

void TlsLayer::fail(std::string code, std::string message, core::Timestamp now, Commands& out) {
  std::string reason = code == "shutdown"                ? "shutdown"
                       : code == "tls_handshake_timeout" ? "timeout"
                       : code == "tls_handshake_aborted" ? "aborted"
                                                         : "error";
  envelope::ErrorRecord err;
  err.stream_id = stream_id_;
  err.flow_id = flow_id_;
  err.time = now;
  err.code = std::move(code);
  err.message = std::move(message);
  out.push_back(EmitRecord{std::move(err)});
  if (timer_) {
    out.push_back(CancelTimer{timer_});
    timer_ = 0;
  }
  for (auto& [conn, w] : wrapped_) out.push_back(CloseConnection{conn, false});
  wrapped_.clear();
  if (spec_.server) out.push_back(CloseConnection{spec_.server, false});
  out.push_back(CloseConnection{kClientConn, false});
  phase_ = Phase::closed;
  if (ended_) return;
  ended_ = true;
  end_stream(out, out.size(), stream_id_, std::move(reason), now, from_client_, from_servers_);
}

}  // namespace sluice::layer
