#pragma once
// The Envelope model and the other records of a sluice stream (formats/STREAM.md is the normative text).
//
// A stream is a sequence of records: one `StreamHeader` first, then `Envelope`s (one per message seen
// on the wire, plus overlay envelopes for wire-level units such as HTTP/1 chunks or HTTP/2 DATA frames),
// and lifecycle records (`EndRecord`, `ErrorRecord`). Every object keeps the members a reader did not
// know in `extra`, so that records pass through every command unchanged.
//
// Byte fields are `core::Bytes` (arbitrary octets). `raw` holds the exact wire bytes and is the truth;
// `message` is the structured overlay decoded from them.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "core/bytes.hpp"
#include "core/time.hpp"
#include "core/value.hpp"

namespace sluice::envelope {

using core::Bytes;
using core::Timestamp;
using Extra = core::Value::Object;  // unknown members, re-emitted after the known ones

// send: client -> server; receive: server -> client.
enum class Direction : uint8_t { send, receive };
enum class Protocol : uint8_t { http, ws, grpc, grpc_web, sse, raw, tls_handshake, other };

std::string_view to_string(Direction d);
std::optional<Direction> parse_direction(std::string_view s);
std::string_view to_string(Protocol p);  // "other" for Protocol::other: use Envelope::protocol_name
Protocol parse_protocol(std::string_view s);  // Protocol::other when unknown

struct Header {
  Bytes name;  // as on the wire: case and spelling preserved
  Bytes value;
  bool operator==(const Header&) const = default;
};
using Headers = std::vector<Header>;  // wire order

struct HttpMessage {
  enum class Kind : uint8_t { request, response };
  Kind kind = Kind::request;
  // Request line (request only). `authority` is the Host header or :authority; `path` the request-target
  // as sent (origin-form path and query, or the absolute form for a proxy request).
  Bytes method, scheme, authority, path;
  // Status line (response only).
  int status = 0;
  Bytes reason;
  std::string version;  // "HTTP/1.1", "HTTP/1.0", "HTTP/2"
  Headers headers;
  Headers trailers;
  Bytes body;                 // decoded from the transfer coding (de-chunked); content coding untouched
  uint64_t body_omitted = 0;  // body bytes seen on the wire but not recorded (--record-body-limit)
  Extra extra;
  bool operator==(const HttpMessage&) const = default;
};

struct WsMessage {
  int opcode = 1;
  bool fin = true, rsv1 = false, rsv2 = false, rsv3 = false, masked = false;
  bool compressed = false;  // permessage-deflate: `payload` is the inflated view
  Bytes payload;
  std::optional<int> close_code;
  Bytes close_reason;
  Extra extra;
  bool operator==(const WsMessage&) const = default;
};

struct GrpcStartMessage {
  std::string service, method;
  Headers metadata;
  std::string timeout;  // grpc-timeout as sent, empty when absent
  Extra extra;
  bool operator==(const GrpcStartMessage&) const = default;
};

struct GrpcDataMessage {
  bool compressed = false;
  Bytes payload;  // decompressed view when the encoding is known (gzip), else as sent
  Extra extra;
  bool operator==(const GrpcDataMessage&) const = default;
};

struct GrpcEndMessage {
  int status = 0;
  Bytes message;
  Headers trailers;
  Extra extra;
  bool operator==(const GrpcEndMessage&) const = default;
};

struct SseMessage {
  Bytes id, event, data;
  std::optional<int64_t> retry;
  Extra extra;
  bool operator==(const SseMessage&) const = default;
};

// A chunk of an opaque byte stream; the bytes are the envelope's `raw`.
struct RawMessage {
  Extra extra;
  bool operator==(const RawMessage&) const = default;
};

struct Certificate {
  std::string subject, issuer;
  std::vector<std::string> sans;
  std::string sha256;  // hex
  Extra extra;
  bool operator==(const Certificate&) const = default;
};

struct TlsHandshakeMessage {
  std::string side;  // "client" (their hello, our answer) or "server"
  std::string sni;
  std::vector<std::string> alpn_offered;
  std::string alpn;  // chosen, empty when none
  std::string version, cipher;
  std::string ja3, ja3_hash, ja4;  // client side only
  std::optional<Certificate> certificate;
  Extra extra;
  bool operator==(const TlsHandshakeMessage&) const = default;
};

// A message of a protocol or kind this reader does not know; kept whole.
struct OpaqueMessage {
  core::Value value;
  bool operator==(const OpaqueMessage&) const = default;
};

using Message = std::variant<HttpMessage, WsMessage, GrpcStartMessage, GrpcDataMessage, GrpcEndMessage, SseMessage,
                             RawMessage, TlsHandshakeMessage, OpaqueMessage>;

// A request's URL: scheme://authority followed by the target, the target itself when it was sent in
// absolute form, the authority for CONNECT.
std::string url_of(const HttpMessage& request);

// Whether stream `id` is nested in stream `outer` ("c1.2" and "c1.2.5" in "c1"; not "c10", not "c1").
inline bool nested_in(std::string_view id, std::string_view outer) {
  return id.size() > outer.size() && id[outer.size()] == '.' && id.starts_with(outer);
}

// The "kind" member that names a message's alternative in the stream.
std::string_view message_kind(const Message& m);

struct TlsInfo {
  std::string version, cipher, sni, alpn;
  Extra extra;
  bool operator==(const TlsInfo&) const = default;
};

struct Context {
  std::string conn_id;  // the client connection this envelope arrived on
  std::string client;   // "127.0.0.1:51234" / "[::1]:51234"
  std::string server;   // "host:port" as dialled
  std::optional<TlsInfo> tls;  // client-facing TLS, when the connection is TLS
  Timestamp opened;            // when the client connection was accepted
  Extra extra;
  bool operator==(const Context&) const = default;
};

struct Anomaly {
  std::string name;    // snake_case, from formats/STREAM.md's list: "cl_te_conflict"
  std::string detail;  // one human-readable line
  bool operator==(const Anomaly&) const = default;
};

using Tags = std::vector<std::pair<std::string, std::string>>;

struct Envelope {
  std::string stream_id;
  std::string flow_id;
  uint64_t seq = 0;  // per stream, from 0
  Direction direction = Direction::send;
  Protocol protocol = Protocol::raw;
  std::string protocol_name;  // only for Protocol::other
  Timestamp time;
  std::string overlay;  // empty for the canonical envelope; "h1-chunk", "h2-frame", "grpc-lpm-frame", ...
  Bytes raw;
  Message message = RawMessage{};
  Context context;
  bool modified = false;                // variant: original or modified
  std::optional<uint64_t> variant_of;   // seq of the original this modifies
  std::string modified_by;              // the step that made the variant
  std::vector<Anomaly> anomalies;
  Tags tags;
  Extra extra;
  bool operator==(const Envelope&) const = default;
};

// A response's envelope for `request` (its stream, flow and context; direction receive; HTTP), to be
// filled by whoever answers it in place of the server (a step, a rule, the gRPC-Web layer).
inline Envelope reply_to(const Envelope& request, Timestamp time) {
  Envelope reply;
  reply.stream_id = request.stream_id;
  reply.flow_id = request.flow_id;
  reply.direction = Direction::receive;
  reply.protocol = Protocol::http;
  reply.context = request.context;
  reply.time = time;
  return reply;
}

inline constexpr std::string_view kFormatName = "sluice-stream";
inline constexpr int kFormatVersion = 1;

struct StreamHeader {
  std::string format{kFormatName};
  int version = kFormatVersion;
  std::string producer;  // "sluice/0.1.0 proxy"
  Timestamp time;
  core::Value::Array listeners;  // [{"mode": "...", "address": "127.0.0.1:8080"}]
  Extra extra;
  bool operator==(const StreamHeader&) const = default;
};

// The end of a flow or of a whole stream (connection / HTTP/2 stream).
struct EndRecord {
  std::string scope = "stream";  // "flow" or "stream"
  std::string stream_id, flow_id;
  Timestamp time;
  std::string reason;  // "complete", "closed", "aborted", "reset", "timeout", "shutdown"
  uint64_t bytes_sent = 0, bytes_received = 0;  // wire bytes from the client / from the server
  Extra extra;
  bool operator==(const EndRecord&) const = default;
};

// A failure the proxy answered or gave up on: connect refused, DNS failure, timeout, ...
struct ErrorRecord {
  std::string stream_id, flow_id;
  Timestamp time;
  std::string code;     // "connect_refused", "dns_failure", "timeout", ...
  std::string message;  // one line
  Extra extra;
  bool operator==(const ErrorRecord&) const = default;
};

// A record whose "type" this reader does not know; passes through unchanged.
struct UnknownRecord {
  core::Value value;
  bool operator==(const UnknownRecord&) const = default;
};

using Record = std::variant<StreamHeader, Envelope, EndRecord, ErrorRecord, UnknownRecord>;

}  // namespace sluice::envelope
