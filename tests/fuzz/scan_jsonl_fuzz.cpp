// Fuzz target: the filter's partial JSONL reader on arbitrary lines. Properties: no crash, no sanitizer
// report; a line it reads as an envelope keeps the flow id the full decoder would read (when both read
// it), and so does the reading into one envelope reused from input to input, whatever it was asked for.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "core/json.hpp"
#include "envelope/record_codec.hpp"
#include "filter/scan.hpp"

using namespace sluice;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static envelope::Envelope reused;
  core::ByteView line(reinterpret_cast<const char*>(data), size);
  auto scanned = filter::scan_jsonl(line);
  uint32_t needs = size ? data[size - 1] & filter::reads_all : 0;
  bool in_part = filter::scan_envelope(line, needs, reused);
  if (!scanned && !in_part) return 0;
  auto value = core::json_parse(line);
  if (!value) return 0;
  auto full = envelope::from_value(std::move(*value));
  if (!full) return 0;
  const auto* a = scanned ? std::get_if<envelope::Envelope>(&*scanned) : nullptr;
  const auto* b = std::get_if<envelope::Envelope>(&*full);
  if (a && b && (a->flow_id != b->flow_id || a->stream_id != b->stream_id)) std::abort();
  if (in_part && b) {
    bool http = std::holds_alternative<envelope::HttpMessage>(b->message);
    if (reused.flow_id != b->flow_id || reused.stream_id != b->stream_id || reused.seq != b->seq ||
        (http && !std::holds_alternative<envelope::HttpMessage>(reused.message)))
      std::abort();
    if ((needs & filter::reads_context) && reused.context.server != b->context.server) std::abort();
    const auto* m = std::get_if<envelope::HttpMessage>(&reused.message);
    const auto* fm = std::get_if<envelope::HttpMessage>(&b->message);
    if (m && fm && (m->kind != fm->kind || m->status != fm->status || m->authority != fm->authority)) std::abort();
    if (m && fm && (needs & filter::reads_headers) && m->headers != fm->headers) std::abort();
    if (m && fm && (needs & filter::reads_bodies) && m->body != fm->body) std::abort();
  }
  return 0;
}
