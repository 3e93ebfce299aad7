#pragma once
// Deterministic sample records covering every message kind, odd bytes and unknown members.
#include <random>
#include <vector>

#include "envelope/record.hpp"

namespace sluice::test_support {

inline envelope::Context sample_context(int n) {
  envelope::Context c;
  c.conn_id = "c" + std::to_string(n);
  c.client = "127.0.0.1:" + std::to_string(40000 + n);
  c.server = "example.com:443";
  c.opened = core::Timestamp{1'763'700'000'000'000'000 + n * 1000LL};
  return c;
}

inline envelope::Envelope http_request(int n, std::string body) {
  envelope::Envelope e;
  e.stream_id = "s" + std::to_string(n);
  e.flow_id = "f" + std::to_string(n);
  e.seq = 0;
  e.protocol = envelope::Protocol::http;
  e.time = core::Timestamp{1'763'700'000'123'456'000 + n * 1000LL};
  envelope::HttpMessage m;
  m.method = "POST";
  m.scheme = "http";
  m.authority = "example.com";
  m.path = "/api/items?id=" + std::to_string(n);
  m.version = "HTTP/1.1";
  m.headers = {{"Host", "example.com"}, {"content-TYPE", "application/json"}, {"X-Odd", "caf\xC3\xA9 \xFF"}};
  m.body = std::move(body);
  e.raw = "POST " + m.path + " HTTP/1.1\r\nHost: example.com\r\n\r\n" + m.body;
  e.message = std::move(m);
  e.context = sample_context(n);
  return e;
}

// One of each record kind, with non-UTF-8 bytes and unknown members in several places.
inline std::vector<envelope::Record> sample_records() {
  using namespace envelope;
  std::vector<Record> out;
  StreamHeader h;
  h.producer = "sluice/test";
  h.time = core::Timestamp{1'763'700'000'000'000'000};
  h.listeners.push_back(core::Value(core::Value::Object{{"mode", core::Value("tcp:127.0.0.1:7")}}));
  h.extra.push_back({"future_header_field", core::Value(42)});
  out.push_back(h);

  Envelope req = http_request(1, "{\"a\":1}");
  req.anomalies.push_back({"obs_fold", "header line 3 is folded"});
  req.tags = {{"scope", "in"}, {"note", "ü"}};
  req.extra.push_back({"x_future", core::Value(core::Value::Object{{"nested", core::Value(core::Value::Array{1, "two"})}})});
  std::get<HttpMessage>(req.message).extra.push_back({"x_msg", core::Value(true)});
  req.context.extra.push_back({"x_ctx", core::Value(3.5)});
  req.context.tls = TlsInfo{"TLSv1.3", "TLS_AES_128_GCM_SHA256", "example.com", "http/1.1", {}};
  out.push_back(req);

  Envelope resp = req;
  resp.seq = 1;
  resp.direction = Direction::receive;
  HttpMessage rm;
  rm.kind = HttpMessage::Kind::response;
  rm.status = 200;
  rm.reason = "OK";
  rm.version = "HTTP/1.1";
  rm.headers = {{"Content-Length", "4"}};
  rm.trailers = {{"X-Checksum", "abc"}};
  rm.body = std::string("\x00\x01\xFE\xFF", 4);  // not UTF-8
  rm.body_omitted = 10;
  resp.raw = std::string("HTTP/1.1 200 OK\r\n\r\n\x00\x01\xFE\xFF", 23);
  resp.message = rm;
  out.push_back(resp);

  // A step's edit: a modified variant beside the original response.
  Envelope variant = resp;
  variant.seq = 2;
  variant.modified = true;
  variant.variant_of = 1;
  variant.modified_by = "transform";
  std::get<HttpMessage>(variant.message).status = 503;
  out.push_back(variant);

  Envelope ws = http_request(2, "");
  ws.protocol = Protocol::ws;
  ws.overlay = "";
  WsMessage w;
  w.opcode = 8;
  w.masked = true;
  w.rsv1 = true;
  w.compressed = true;
  w.payload = "bye";
  w.close_code = 1000;
  w.close_reason = "done";
  ws.message = w;
  out.push_back(ws);

  Envelope gs = http_request(3, "");
  gs.protocol = Protocol::grpc;
  gs.message = GrpcStartMessage{"pkg.Svc", "Call", {{"grpc-timeout", "1S"}}, "1S", {}};
  out.push_back(gs);
  Envelope gd = gs;
  gd.seq = 1;
  gd.overlay = "grpc-lpm-frame";
  gd.protocol = Protocol::grpc_web;
  gd.message = GrpcDataMessage{true, std::string("\x08\x96\x01", 3), {}};
  out.push_back(gd);
  Envelope ge = gs;
  ge.seq = 2;
  ge.message = GrpcEndMessage{13, "internal", {{"grpc-status", "13"}}, {}};
  out.push_back(ge);

  Envelope sse = http_request(4, "");
  sse.protocol = Protocol::sse;
  sse.message = SseMessage{"7", "tick", "line1\nline2", 3000, {}};
  out.push_back(sse);

  Envelope raw = http_request(5, "");
  raw.protocol = Protocol::raw;
  raw.raw = std::string("\x16\x03\x01\x00\x00garbage\x00", 13);
  raw.message = RawMessage{};
  out.push_back(raw);

  Envelope tls = http_request(6, "");
  tls.protocol = Protocol::tls_handshake;
  TlsHandshakeMessage t;
  t.side = "client";
  t.sni = "example.com";
  t.alpn_offered = {"h2", "http/1.1"};
  t.alpn = "h2";
  t.version = "TLSv1.3";
  t.cipher = "TLS_AES_128_GCM_SHA256";
  t.ja3 = "771,4865,0-23,29,0";
  t.ja3_hash = "0123456789abcdef0123456789abcdef";
  t.ja4 = "t13d1516h2_8daaf6152771_b186095e22b6";
  t.certificate = Certificate{"CN=example.com", "CN=sluice CA", {"example.com", "127.0.0.1"}, "ab12", {}};
  tls.message = t;
  out.push_back(tls);

  Envelope future = http_request(7, "");
  future.protocol = Protocol::other;
  future.protocol_name = "quic";
  future.message = OpaqueMessage{core::Value(core::Value::Object{{"kind", core::Value("packet")}, {"n", core::Value(5)}})};
  out.push_back(future);

  EndRecord end;
  end.scope = "flow";
  end.stream_id = "s1";
  end.flow_id = "f1";
  end.time = core::Timestamp{1'763'700'001'000'000'000};
  end.reason = "complete";
  end.bytes_sent = 100;
  end.bytes_received = 200;
  out.push_back(end);

  ErrorRecord err;
  err.stream_id = "s9";
  err.time = core::Timestamp{1'763'700'002'000'000'000};
  err.code = "connect_refused";
  err.message = "connection refused by 127.0.0.1:9";
  out.push_back(err);

  out.push_back(UnknownRecord{core::Value(core::Value::Object{{"type", core::Value("checkpoint")}, {"n", core::Value(1)}})});
  return out;
}

// `n` HTTP request envelopes with 1 KiB JSON-ish bodies (the benchmark's shape).
inline std::vector<envelope::Record> kib_envelopes(size_t n, uint32_t seed = 1) {
  std::mt19937 rng(seed);
  std::vector<envelope::Record> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    std::string body = "{\"items\":[";
    while (body.size() < 1000) body += "{\"id\":" + std::to_string(rng() % 100000) + ",\"name\":\"item\"},";
    body.resize(1023);
    body += "}";
    out.push_back(http_request(static_cast<int>(i), std::move(body)));
  }
  return out;
}

}  // namespace sluice::test_support
