#include "layer/socks5_layer.hpp"

#include <arpa/inet.h>

#include "core/ascii.hpp"
#include "layer/root_layer.hpp"

namespace sluice::layer {

namespace {

constexpr uint8_t kVersion = 5;
constexpr uint8_t kNoAuth = 0x00, kUserPass = 0x02, kNoAcceptable = 0xff;
// Reply codes (RFC 1928 §6).
constexpr uint8_t kSucceeded = 0, kGeneralFailure = 1, kNotAllowed = 2, kNetworkUnreachable = 3, kHostUnreachable = 4,
                  kConnectionRefused = 5, kCommandNotSupported = 7, kAddressTypeNotSupported = 8;

uint8_t byte(const core::Bytes& b, size_t i) { return static_cast<uint8_t>(b[i]); }

// A reply with an all-zero IPv4 bound address (we do not tell the client our outgoing address).
core::Bytes reply_bytes(uint8_t rep) { return core::Bytes("\x05", 1) + static_cast<char>(rep) + core::Bytes("\x00\x01\x00\x00\x00\x00\x00\x00", 8); }

uint8_t rep_for(const std::string& code) {
  if (code == "connect_refused") return kConnectionRefused;
  if (code == "dns_failure" || code == "connect_timeout") return kHostUnreachable;
  if (code == "unreachable") return kNetworkUnreachable;
  if (code == "self_loop") return kNotAllowed;  // the proxy's own listener
  return kGeneralFailure;
}

}  // namespace

Socks5Layer::Socks5Layer(ConnectionContext& ctx) : ctx_(ctx) {}
Socks5Layer::~Socks5Layer() = default;

void Socks5Layer::handle(const Event& event, core::Timestamp now, Commands& out) {
  if (state_ == State::closed) return;
  if (state_ == State::tunnel) {
    tunnel_->handle(event, now, out);
    return;
  }
  if (std::holds_alternative<Start>(event)) {
    timer_ = ctx_.new_command();
    out.push_back(StartTimer{timer_, ctx_.options().header_timeout});
  } else if (const auto* d = std::get_if<DataReceived>(&event); d && d->conn == kClientConn) {
    in_.append(d->data);
    if (state_ != State::connecting)
      while (step(now, out)) {
      }
  } else if (const auto* c = std::get_if<ConnectionClosed>(&event); c && c->conn == kClientConn) {
    client_eof_ = true;
    if (state_ != State::connecting) {
      fail(kGeneralFailure, "socks_aborted", "the client closed the connection during the SOCKS5 negotiation", now,
           out);
    }
  } else if (const auto* o = std::get_if<OpenCompleted>(&event); o && o->id == open_id_) {
    if (!o->error_code.empty()) {
      fail(rep_for(o->error_code), o->error_code, o->error, now, out);
      return;
    }
    reply(reply_bytes(kSucceeded), out);
    record(now, out);
    if (timer_) {
      out.push_back(CancelTimer{timer_});
      timer_ = 0;
    }
    state_ = State::tunnel;
    tunnel_ = make_tunnel_layer(ctx_, server_, host_, port_);
    tunnel_->handle(Start{}, now, out);
    if (!in_.empty()) {  // sent before our answer (optimistic clients)
      core::Bytes early;
      early.swap(in_);
      tunnel_->handle(DataReceived{kClientConn, early}, now, out);
    }
    if (client_eof_) tunnel_->handle(ConnectionClosed{kClientConn, false, {}}, now, out);
  } else if (const auto* t = std::get_if<TimerFired>(&event); t && t->id == timer_) {
    timer_ = 0;
    fail(kGeneralFailure, "socks_timeout", "no complete SOCKS5 request within the header timeout", now, out);
  } else if (std::holds_alternative<Shutdown>(event)) {
    if (state_ != State::connecting) fail(kGeneralFailure, "shutdown", "the proxy is stopping", now, out);
  }
}

bool Socks5Layer::step(core::Timestamp now, Commands& out) {
  switch (state_) {
    case State::greeting: {
      if (in_.size() < 2) return false;
      if (byte(in_, 0) != kVersion) {
        fail(kGeneralFailure, "socks_bad_request", "not a SOCKS5 greeting (version " + std::to_string(byte(in_, 0)) + ")",
             now, out);
        return false;
      }
      size_t n = byte(in_, 1);
      if (in_.size() < 2 + n) return false;
      bool none = false, userpass = false;
      for (size_t i = 0; i < n; ++i) {
        none |= byte(in_, 2 + i) == kNoAuth;
        userpass |= byte(in_, 2 + i) == kUserPass;
      }
      from_client_ += in_.substr(0, 2 + n);
      in_.erase(0, 2 + n);
      bool need_auth = !ctx_.options().proxy_auth.empty();
      if (need_auth ? !userpass : !none) {
        reply(core::Bytes("\x05\xff", 2), out);
        fail(kNoAcceptable, "socks_auth_required",
             need_auth ? "the client offered no username/password authentication" : "the client offered no method we take",
             now, out);
        return false;
      }
      reply(core::Bytes("\x05", 1) + static_cast<char>(need_auth ? kUserPass : kNoAuth), out);
      state_ = need_auth ? State::auth : State::request;
      return true;
    }
    case State::auth: {  // RFC 1929: VER=1 ULEN UNAME PLEN PASSWD
      if (in_.size() < 2) return false;
      size_t ulen = byte(in_, 1);
      if (in_.size() < 2 + ulen + 1) return false;
      size_t plen = byte(in_, 2 + ulen);
      if (in_.size() < 3 + ulen + plen) return false;
      std::string user = in_.substr(2, ulen), pass = in_.substr(3 + ulen, plen);
      bool ok = byte(in_, 0) == 1 && core::constant_time_equals(user + ":" + pass, ctx_.options().proxy_auth);
      from_client_ += in_.substr(0, 3 + ulen + plen);
      in_.erase(0, 3 + ulen + plen);
      reply(core::Bytes("\x01", 1) + (ok ? '\x00' : '\x01'), out);
      if (!ok) {
        fail(kNoAcceptable, "socks_auth_failed", "wrong SOCKS5 username or password", now, out);
        return false;
      }
      state_ = State::request;
      return true;
    }
    case State::request: {  // VER CMD RSV ATYP DST.ADDR DST.PORT
      if (in_.size() < 5) return false;
      uint8_t cmd = byte(in_, 1), atyp = byte(in_, 3);
      size_t addr_len = atyp == 1 ? 4 : atyp == 4 ? 16 : atyp == 3 ? 1 + byte(in_, 4) : 0;
      if (byte(in_, 0) != kVersion || addr_len == 0) {
        from_client_ += in_;
        fail(addr_len == 0 ? kAddressTypeNotSupported : kGeneralFailure, "socks_bad_request",
             addr_len == 0 ? "address type " + std::to_string(atyp) + " is not supported" : "not a SOCKS5 request",
             now, out);
        return false;
      }
      size_t total = 4 + addr_len + 2;
      if (in_.size() < total) return false;
      char text[INET6_ADDRSTRLEN] = "";
      if (atyp == 1)
        inet_ntop(AF_INET, in_.data() + 4, text, sizeof text);
      else if (atyp == 4)
        inet_ntop(AF_INET6, in_.data() + 4, text, sizeof text);
      host_ = atyp == 3 ? in_.substr(5, addr_len - 1) : std::string(text);
      port_ = static_cast<uint16_t>(byte(in_, 4 + addr_len) << 8 | byte(in_, 5 + addr_len));
      from_client_ += in_.substr(0, total);
      in_.erase(0, total);
      command_ = cmd == 1 ? "connect" : cmd == 2 ? "bind" : cmd == 3 ? "udp_associate" : "command_" + std::to_string(cmd);
      if (cmd != 1) {
        fail(kCommandNotSupported, "socks_command_not_supported",
             "SOCKS5 " + command_ + " is not supported (only CONNECT)", now, out);
        return false;
      }
      if (host_.empty() || port_ == 0) {
        fail(kGeneralFailure, "socks_bad_request", "bad SOCKS5 target", now, out);
        return false;
      }
      state_ = State::connecting;
      server_ = ctx_.new_conn();
      open_id_ = ctx_.new_command();
      out.push_back(OpenConnection{open_id_, server_, host_, port_});
      return false;
    }
    default: return false;
  }
}

void Socks5Layer::reply(core::Bytes bytes, Commands& out) {
  to_client_ += bytes;
  out.push_back(SendData{kClientConn, std::move(bytes)});
}

void Socks5Layer::record(core::Timestamp now, Commands& out) {
  envelope::Context context = ctx_.envelope_context(host_.empty() ? "" : host_ + ":" + std::to_string(port_));
  uint64_t seq = 0;
  for (auto* bytes : {&from_client_, &to_client_}) {
    if (bytes->empty()) continue;
    envelope::Envelope e;
    e.stream_id = ctx_.conn_id();
    e.flow_id = ctx_.conn_id() + "-socks";
    e.seq = seq++;
    e.direction = bytes == &from_client_ ? envelope::Direction::send : envelope::Direction::receive;
    e.protocol = envelope::Protocol::raw;
    e.time = now;
    e.context = context;
    e.raw = *bytes;
    e.message = envelope::RawMessage{};
    e.tags.emplace_back("socks5", command_);
    if (!host_.empty()) e.tags.emplace_back("target", context.server);
    out.push_back(EmitRecord{std::move(e)});
  }
}

void Socks5Layer::fail(uint8_t rep, std::string code, std::string message, core::Timestamp now, Commands& out) {
  if (rep != kNoAcceptable && state_ != State::greeting && state_ != State::auth) reply(reply_bytes(rep), out);
  record(now, out);
  envelope::ErrorRecord err;
  err.stream_id = ctx_.conn_id();
  err.flow_id = ctx_.conn_id() + "-socks";
  err.time = now;
  err.code = std::move(code);
  err.message = std::move(message);
  out.push_back(EmitRecord{std::move(err)});
  if (timer_) {
    out.push_back(CancelTimer{timer_});
    timer_ = 0;
  }
  if (server_ && state_ == State::connecting) out.push_back(CloseConnection{server_, false});
  out.push_back(CloseConnection{kClientConn, false});
  state_ = State::closed;
}

}  // namespace sluice::layer
