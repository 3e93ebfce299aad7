#include "view/summary.hpp"

#include <cstdio>

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

FlowSummarizer::FlowSummarizer(LineSink sink, size_t max_pending) : sink_(std::move(sink)), max_pending_(max_pending) {}

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
  sink_(line(*it->second));
  order_.erase(it->second);
  flows_.erase(it);
}

std::string FlowSummarizer::line(const Flow& f) const {
  std::string s = clock_time(f.time) + " " + (f.client.empty() ? "-" : f.client) + " ";
  if (!f.request.empty()) {
    s += f.request + " " + (f.response.empty() ? "-" : f.response);
    s += " " + human_size(f.sent) + " / " + human_size(f.received);
  } else {
    s += f.protocol + " -> " + (f.server.empty() ? "-" : f.server);
    s += " sent " + human_size(f.sent) + " (" + std::to_string(f.sent_chunks) + ")";
    s += " received " + human_size(f.received) + " (" + std::to_string(f.received_chunks) + ")";
  }
  if (!f.note.empty()) s += " [" + f.note + "]";
  return s;
}

void FlowSummarizer::add(const Record& record) {
  if (const auto* e = std::get_if<Envelope>(&record)) {
    if (!e->overlay.empty()) return;
    if (const auto* h = std::get_if<HttpMessage>(&e->message)) {
      if (e->modified) return;
      Flow& f = flow(*e);
      if (h->kind == HttpMessage::Kind::request) {
        f.request = http_target(*h);
        f.sent += h->body.size() + h->body_omitted;
      } else {
        f.response = std::to_string(h->status) + (h->reason.empty() ? "" : " " + printable(h->reason, 40));
        f.received += h->body.size() + h->body_omitted;
        if (f.request.empty()) f.request = "(response only)";
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
    std::string arrow = e->direction == Direction::send ? " -> " : " <- ";
    sink_(clock_time(e->time) + " " + (e->context.client.empty() ? "-" : e->context.client) + " " + protocol_name(*e) +
          arrow + message_line(*e));
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
    return;
  }
  if (const auto* err = std::get_if<ErrorRecord>(&record)) {
    std::string key = err->stream_id + "\x1F" + err->flow_id;
    if (auto it = flows_.find(key); it != flows_.end()) {
      it->second->note = err->code + ": " + err->message;
      return;
    }
    sink_(clock_time(err->time) + " error " + err->code + ": " + err->message);
  }
}

void FlowSummarizer::finish() {
  while (!order_.empty()) print(order_.front().key);
}

}  // namespace sluice::view
