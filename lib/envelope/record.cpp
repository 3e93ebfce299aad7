#include "envelope/record.hpp"

#include <array>

namespace sluice::envelope {
namespace {
constexpr std::array<std::string_view, 7> kProtocols = {"http", "ws", "grpc", "grpc-web", "sse", "raw",
                                                        "tls-handshake"};
}

std::string_view to_string(Direction d) { return d == Direction::send ? "send" : "receive"; }

std::optional<Direction> parse_direction(std::string_view s) {
  if (s == "send") return Direction::send;
  if (s == "receive") return Direction::receive;
  return std::nullopt;
}

std::string_view to_string(Protocol p) {
  auto i = static_cast<size_t>(p);
  return i < kProtocols.size() ? kProtocols[i] : "other";
}

Protocol parse_protocol(std::string_view s) {
  for (size_t i = 0; i < kProtocols.size(); ++i)
    if (kProtocols[i] == s) return static_cast<Protocol>(i);
  return Protocol::other;
}

std::string_view message_kind(const Message& m) {
  struct V {
    std::string_view operator()(const HttpMessage& h) const {
      return h.kind == HttpMessage::Kind::request ? "request" : "response";
    }
    std::string_view operator()(const WsMessage&) const { return "frame"; }
    std::string_view operator()(const GrpcStartMessage&) const { return "start"; }
    std::string_view operator()(const GrpcDataMessage&) const { return "data"; }
    std::string_view operator()(const GrpcEndMessage&) const { return "end"; }
    std::string_view operator()(const SseMessage&) const { return "event"; }
    std::string_view operator()(const RawMessage&) const { return "chunk"; }
    std::string_view operator()(const TlsHandshakeMessage&) const { return "handshake"; }
    std::string_view operator()(const OpaqueMessage&) const { return "opaque"; }
  };
  return std::visit(V{}, m);
}


std::string url_of(const HttpMessage& m) {
  if (m.method == "CONNECT") return m.authority;
  if (m.path.find("://") != std::string::npos) return m.path;
  return (m.scheme.empty() ? std::string("http") : m.scheme) + "://" + m.authority + m.path;
}
}  // namespace sluice::envelope
