#include "view/detail.hpp"

#include <cstdio>

#include "core/utf8.hpp"
#include "view/summary.hpp"

namespace sluice::view {

using namespace envelope;

namespace {
constexpr size_t kBodyLimit = 64 * 1024;

std::string escaped(std::string_view s) {
  std::string out;
  bool utf8 = core::is_valid_utf8(s);
  for (unsigned char c : s) {
    if (c == '\n' || c == '\t' || (c >= 0x20 && c != 0x7F && (c < 0x80 || utf8))) {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

void body(std::string& out, std::string_view label, std::string_view b, uint64_t omitted = 0) {
  if (b.empty() && omitted == 0) return;
  out += "    " + std::string(label) + " (" + human_size(b.size() + omitted) + "):\n";
  std::string text = escaped(b.substr(0, kBodyLimit));
  std::string indented = "      ";
  for (char c : text) {
    indented.push_back(c);
    if (c == '\n') indented += "      ";
  }
  out += indented + "\n";
  if (b.size() > kBodyLimit) out += "      ... " + human_size(b.size() - kBodyLimit) + " more shown with jq\n";
  if (omitted) out += "      ... " + human_size(omitted) + " not recorded (body limit)\n";
}

void headers(std::string& out, const Headers& hs, std::string_view indent = "    ") {
  for (const auto& h : hs) out += std::string(indent) + escaped(h.name) + ": " + escaped(h.value) + "\n";
}

void hexdump(std::string& out, std::string_view b) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t shown = std::min<size_t>(b.size(), 4096);
  for (size_t off = 0; off < shown; off += 16) {
    char pos[32];
    std::snprintf(pos, sizeof pos, "    %06zx  ", off);
    out += pos;
    std::string ascii;
    for (size_t i = 0; i < 16; ++i) {
      if (off + i < shown) {
        auto c = static_cast<unsigned char>(b[off + i]);
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 15]);
        out.push_back(' ');
        ascii.push_back(c >= 0x20 && c < 0x7F ? static_cast<char>(c) : '.');
      } else {
        out += "   ";
      }
    }
    out += " " + ascii + "\n";
  }
  if (b.size() > shown) out += "    ... " + human_size(b.size() - shown) + " more\n";
}
}  // namespace

std::string detail(const Record& record, int level) {
  std::string out;
  if (const auto* e = std::get_if<Envelope>(&record)) {
    if (!e->overlay.empty() && level < 3) return {};
    out += clock_time(e->time) + " " + e->stream_id + "/" + e->flow_id + " #" + std::to_string(e->seq) + " " +
           std::string(to_string(e->direction)) + " " +
           (e->protocol == Protocol::other ? e->protocol_name : std::string(to_string(e->protocol))) + " " +
           std::string(message_kind(e->message));
    if (!e->overlay.empty()) out += " overlay=" + e->overlay;
    if (e->modified) out += " modified" + (e->variant_of ? " of #" + std::to_string(*e->variant_of) : "");
    out += " " + e->context.client + (e->direction == Direction::send ? " -> " : " <- ") + e->context.server + "\n";
    for (const auto& a : e->anomalies) out += "    ! " + a.name + ": " + a.detail + "\n";
    for (const auto& [k, v] : e->tags) out += "    tag " + k + "=" + v + "\n";
    if (const auto* h = std::get_if<HttpMessage>(&e->message)) {
      if (h->kind == HttpMessage::Kind::request)
        out += "    " + escaped(h->method) + " " + escaped(h->path) + " " + h->version + "\n";
      else
        out += "    " + h->version + " " + std::to_string(h->status) + " " + escaped(h->reason) + "\n";
      headers(out, h->headers);
      if (level >= 2) body(out, "body", h->body, h->body_omitted);
      if (!h->trailers.empty()) {
        out += "    trailers:\n";
        headers(out, h->trailers, "      ");
      }
    } else if (const auto* w = std::get_if<WsMessage>(&e->message)) {
      out += "    opcode " + std::to_string(w->opcode) + (w->fin ? " fin" : "") + (w->masked ? " masked" : "") +
             (w->compressed ? " compressed" : "") + "\n";
      if (w->close_code) out += "    close " + std::to_string(*w->close_code) + " " + escaped(w->close_reason) + "\n";
      if (level >= 2) body(out, "payload", w->payload);
    } else if (const auto* gs = std::get_if<GrpcStartMessage>(&e->message)) {
      out += "    /" + gs->service + "/" + gs->method + (gs->timeout.empty() ? "" : " timeout " + gs->timeout) + "\n";
      headers(out, gs->metadata);
    } else if (const auto* gd = std::get_if<GrpcDataMessage>(&e->message)) {
      if (level >= 2) body(out, gd->compressed ? "message (compressed)" : "message", gd->payload);
    } else if (const auto* ge = std::get_if<GrpcEndMessage>(&e->message)) {
      out += "    status " + std::to_string(ge->status) + " " + escaped(ge->message) + "\n";
      headers(out, ge->trailers);
    } else if (const auto* s = std::get_if<SseMessage>(&e->message)) {
      if (!s->id.empty()) out += "    id: " + escaped(s->id) + "\n";
      if (!s->event.empty()) out += "    event: " + escaped(s->event) + "\n";
      if (s->retry) out += "    retry: " + std::to_string(*s->retry) + "\n";
      if (level >= 2) body(out, "data", s->data);
    } else if (const auto* t = std::get_if<TlsHandshakeMessage>(&e->message)) {
      out += "    " + t->side + " sni=" + t->sni + " alpn=" + t->alpn + " " + t->version + " " + t->cipher + "\n";
      if (!t->ja3_hash.empty()) out += "    ja3=" + t->ja3_hash + " ja4=" + t->ja4 + "\n";
      if (t->certificate) out += "    certificate " + t->certificate->subject + " issued by " + t->certificate->issuer + "\n";
    } else if (std::holds_alternative<RawMessage>(e->message)) {
      if (level >= 2 && level < 3) body(out, "bytes", e->raw);
    }
    if (level >= 3) {
      out += "    raw (" + human_size(e->raw.size()) + "):\n";
      hexdump(out, e->raw);
    }
    return out;
  }
  if (const auto* err = std::get_if<ErrorRecord>(&record)) {  // errors show at every level
    return clock_time(err->time) + " error " + err->stream_id + " " + err->code + ": " + err->message + "\n";
  }
  if (level < 3) return {};
  if (const auto* h = std::get_if<StreamHeader>(&record)) {
    return clock_time(h->time) + " header " + h->format + " v" + std::to_string(h->version) + " from " + h->producer + "\n";
  }
  if (const auto* end = std::get_if<EndRecord>(&record)) {
    return clock_time(end->time) + " end " + end->scope + " " + end->stream_id +
           (end->flow_id.empty() ? "" : "/" + end->flow_id) + " " + end->reason + " sent " +
           human_size(end->bytes_sent) + " received " + human_size(end->bytes_received) + "\n";
  }
  return "(record of an unknown type)\n";
}

}  // namespace sluice::view
