// Fuzz target: the HTTP/2 decoder (lib/codec/http2) on arbitrary frames in arbitrary pieces.
// Properties: no crash, no hang; the same bytes give the same messages however they are split; every
// message it read, encoded again by the encoder and decoded by a fresh decoder, reads the same
// (pseudo-header fields, fields, body, trailers).
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "codec/http2.hpp"

using namespace sluice;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  size_t step = 1 + data[0] % 64;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  codec::H2Decoder whole, pieces;
  bool whole_ok = static_cast<bool>(whole.feed(input));
  bool pieces_ok = true;
  for (size_t i = 0; i < input.size() && pieces_ok; i += step) pieces_ok = static_cast<bool>(pieces.feed(input.substr(i, step)));
  if (whole_ok != pieces_ok) std::abort();
  if (!whole_ok) return 0;
  codec::H2Encoder enc;
  codec::H2Decoder again;
  for (int32_t id = 1; id < 1 << 12; ++id) {
    const auto* m = whole.find(id);
    if (!m) continue;
    const auto* p = pieces.find(id);
    if (!p || p->headers != m->headers || p->body != m->body || p->trailers != m->trailers) std::abort();
    // Re-encoded as it reads: the fields as they came (pseudo-header fields first, as HTTP/2 wants).
    std::string bytes = enc.headers(id, m->headers, m->body.empty() && m->trailers.empty());
    if (!m->body.empty()) bytes += enc.data(id, m->body, m->trailers.empty());
    if (!m->trailers.empty()) bytes += enc.headers(id, m->trailers, true);
    if (!again.feed(bytes)) std::abort();
    const auto* r = again.find(id);
    if (!r || r->headers != m->headers || r->body != m->body || r->trailers != m->trailers || !r->ended) std::abort();
  }
  return 0;
}
