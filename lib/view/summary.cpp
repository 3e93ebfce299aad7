#include "view/summary.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace sluice::view {

using namespace envelope;

std::string clock_time(core::Timestamp t) {
  int64_t ms = t.ns / 1'000'000;
  int64_t day_ms = ((ms % 86'400'000) + 86'400'000) % 86'400'000;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02d:%02d:%02d.%03d", static_cast<int>(day_ms / 3'600'000),
                static_cast<int>(day_ms / 60'000 % 60), static_cast<int>(day_ms / 1000 % 60),
                static_cast<int>(day_ms % 1000));
  return buf;
}

std::string human_size(uint64_t b) {
  char buf[32];
  if (b < 1024)
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(b));
  else if (b < 1024 * 1024)
    std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(b) / 1024);
  else if (b < 1024ull * 1024 * 1024)
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(b) / (1024 * 1024));
  else
    std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(b) / (1024.0 * 1024 * 1024));
  return buf;
}

std::string human_duration(int64_t ns) {
  char buf[32];
  if (ns < 0) ns = 0;
  if (ns < 1'000'000)
    std::snprintf(buf, sizeof buf, "%lld us", static_cast<long long>(ns / 1000));
  else if (ns < 10'000'000'000)
    std::snprintf(buf, sizeof buf, "%lld ms", static_cast<long long>(ns / 1'000'000));
  else
    std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ns) / 1e9);
  return buf;
}

bool use_color(int fd) {
  const char* no = std::getenv("NO_COLOR");
  const char* term = std::getenv("TERM");
  return ::isatty(fd) == 1 && !(no && *no) && !(term && std::strcmp(term, "dumb") == 0);
}

namespace {
// Header and path bytes are shown as text with control bytes escaped, so a line stays one line.
std::string printable(std::string_view s, size_t max = 200) {
  std::string out;
  for (unsigned char c : s.substr(0, max)) {
    if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

std::string http_target(const HttpMessage& m) {
  if (m.authority.empty() && m.method != "CONNECT") return printable(m.method) + " " + printable(m.path);
  return printable(m.method) + " " + printable(envelope::url_of(m));
}

std::string message_line(const Envelope& e) {
  struct V {
    std::string operator()(const HttpMessage&) const { return {}; }
    std::string operator()(const WsMessage& m) const {
      static const char* kNames[] = {"continuation", "text", "binary", "op3", "op4", "op5", "op6", "op7",
                                     "close", "ping", "pong"};
      std::string name = m.opcode >= 0 && m.opcode <= 10 ? kNames[m.opcode] : "op" + std::to_string(m.opcode);
      std::string s = name + " " + human_size(m.payload.size());
      if (m.close_code) s += " code " + std::to_string(*m.close_code);
      return s;
    }
    std::string operator()(const GrpcStartMessage& m) const { return "start /" + m.service + "/" + m.method; }
    std::string operator()(const GrpcDataMessage& m) const { return "message " + human_size(m.payload.size()); }
    std::string operator()(const GrpcEndMessage& m) const {
      return "end status " + std::to_string(m.status) + (m.message.empty() ? "" : " " + printable(m.message, 80));
    }
    std::string operator()(const SseMessage& m) const {
      return "event " + (m.event.empty() ? std::string("message") : printable(m.event, 40)) + " " +
             human_size(m.data.size());
    }
    std::string operator()(const RawMessage&) const { return {}; }
    std::string operator()(const TlsHandshakeMessage& m) const {
      return m.side + " hello sni=" + (m.sni.empty() ? "-" : m.sni) + (m.alpn.empty() ? "" : " alpn=" + m.alpn) +
             (m.version.empty() ? "" : " " + m.version);
    }
    std::string operator()(const OpaqueMessage&) const { return "(unknown message kind)"; }
  };
  return std::visit(V{}, e.message);
}

std::string protocol_name(const Envelope& e) {
  return e.protocol == Protocol::other ? e.protocol_name : std::string(to_string(e.protocol));
}
}  // namespace

FlowSummarizer::FlowSummarizer(LineSink sink, size_t max_pending, bool color)
    : sink_(std::move(sink)), max_pending_(max_pending), color_(color) {}

std::string FlowSummarizer::paint(const char* code, const std::string& text) const {
  return color_ ? std::string("\x1b[") + code + "m" + text + "\x1b[0m" : text;
}

void FlowSummarizer::emit(const std::string& stream_id, const std::string& text) {
  // A line from inside a tunnel stands for the CONNECT that opened it.
  for (auto it = tunnels_.begin(); it != tunnels_.end();)
    it = nested_in(stream_id, it->first) ? tunnels_.erase(it) : std::next(it);
  sink_(text);
}

FlowSummarizer::Flow& FlowSummarizer::flow(const Envelope& e) {
  std::string key = e.stream_id + "\x1F" + e.flow_id;
  auto it = flows_.find(key);
  if (it != flows_.end()) return *it->second;
  if (flows_.size() >= max_pending_ && !order_.empty()) print(order_.front().key);
  Flow f;
  f.key = key;
  f.time = e.time;
  f.client = e.context.client;
  f.server = e.context.server;
  f.protocol = protocol_name(e);
  order_.push_back(std::move(f));
  auto pos = std::prev(order_.end());
  flows_.emplace(key, pos);
  return *pos;
}

void FlowSummarizer::print(const std::string& key) {
  auto it = flows_.find(key);
  if (it == flows_.end()) return;
  Flow& f = *it->second;
  std::string stream_id = key.substr(0, key.find('\x1F'));
  if (!f.tunnel.empty() && f.note.empty()) {
    tunnels_[f.tunnel] = std::move(f);  // printed at its stream's end, unless its tunnel prints
  } else {
    emit(stream_id, line(f));
  }
  order_.erase(it->second);
  flows_.erase(it);
}

std::string FlowSummarizer::line(const Flow& f) const {
  std::string s = clock_time(f.time) + " " + (f.client.empty() ? "-" : f.client) + " ";
  if (!f.request.empty()) {
    const char* colour = f.status >= 500 ? "31" : f.status >= 400 ? "33" : f.status >= 300 ? "36" : "32";
    s += f.request + " " + (f.response.empty() ? "-" : paint(colour, f.response));
    if (!f.version.empty()) s += " " + f.version;
    if (!f.tls.empty()) s += " " + f.tls;
    if (f.has_request && f.sent) s += " " + human_size(f.sent) + " ->";
    if (!f.response.empty()) s += " " + human_size(f.received);
    if (f.has_request && f.response_time.ns) s += " " + human_duration(f.response_time.ns - f.time.ns);
  } else {
    s += f.protocol + " -> " + (f.server.empty() ? "-" : f.server);
    s += " sent " + human_size(f.sent) + " (" + std::to_string(f.sent_chunks) + ")";
    s += " received " + human_size(f.received) + " (" + std::to_string(f.received_chunks) + ")";
  }
  if (!f.note.empty()) s += " " + paint("33", "[" + f.note + "]");
  return s;
}

void FlowSummarizer::add(const Record& record) {
  if (const auto* e = std::get_if<Envelope>(&record)) {
    if (!e->overlay.empty()) return;
    if (const auto* h = std::get_if<HttpMessage>(&e->message)) {
      if (e->modified) return;
      Flow& f = flow(*e);
      if (e->context.tls && f.tls.empty()) f.tls = e->context.tls->version;
      if (f.version.empty()) f.version = h->version;
      if (h->kind == HttpMessage::Kind::request) {
        f.request = http_target(*h);
        f.has_request = true;
        f.sent += h->body.size() + h->body_omitted;
        if (h->method == "CONNECT") f.tunnel = e->stream_id;
      } else {
        if (h->status < 200 && h->status != 101) return;  // interim: the final response comes later
        f.response = std::to_string(h->status) + (h->reason.empty() ? "" : " " + printable(h->reason, 40));
        f.status = h->status;
        f.response_time = e->time;
        f.received += h->body.size() + h->body_omitted;
        if (f.request.empty()) f.request = "(response only)";
        if (h->status >= 300) f.tunnel.clear();  // a refused CONNECT prints at once
        print(f.key);
      }
      return;
    }
    if (std::holds_alternative<RawMessage>(e->message)) {
      Flow& f = flow(*e);
      if (e->direction == Direction::send) {
        f.sent += e->raw.size();
        ++f.sent_chunks;
      } else {
        f.received += e->raw.size();
        ++f.received_chunks;
      }
      return;
    }
    if (e->protocol == Protocol::tls_handshake) return;  // its version shows on the flows inside
    std::string arrow = e->direction == Direction::send ? " -> " : " <- ";
    emit(e->stream_id, clock_time(e->time) + " " + (e->context.client.empty() ? "-" : e->context.client) + " " +
                           protocol_name(*e) + arrow + message_line(*e));
    return;
  }
  if (const auto* end = std::get_if<EndRecord>(&record)) {
    // A stream end settles every flow of that stream; a flow end settles one.
    std::string prefix = end->stream_id + "\x1F";
    std::vector<std::string> keys;
    for (const auto& f : order_) {
      if (end->scope == "flow" ? f.key == prefix + end->flow_id : f.key.starts_with(prefix)) keys.push_back(f.key);
    }
    for (const auto& k : keys) {
      auto& f = *flows_[k];
      if (f.note.empty() && end->reason != "complete" && end->reason != "closed") f.note = end->reason;
      print(k);
    }
    if (end->scope != "flow") {
      // A tunnel nothing inside printed (a refused handshake, an empty tunnel): its CONNECT now.
      for (auto it = tunnels_.begin(); it != tunnels_.end();) {
        if (it->first == end->stream_id || nested_in(it->first, end->stream_id)) {
          sink_(line(it->second));
          it = tunnels_.erase(it);
        } else {
          ++it;
        }
      }
    }
    return;
  }
  if (const auto* err = std::get_if<ErrorRecord>(&record)) {
    std::string key = err->stream_id + "\x1F" + err->flow_id;
    if (auto it = flows_.find(key); it != flows_.end()) {
      it->second->note = err->code + ": " + err->message;
      return;
    }
    emit(err->stream_id, clock_time(err->time) + " " + paint("31", "error " + err->code + ": " + err->message));
  }
}

void FlowSummarizer::finish() {
  while (!order_.empty()) print(order_.front().key);
  for (auto& [id, f] : tunnels_) sink_(line(f));
  tunnels_.clear();
}

}  // namespace sluice::view
