// Fuzz target: the filter's partial JSONL reader on arbitrary lines. Properties: no crash, no sanitizer
// report; a line it reads as an envelope keeps the flow id the full decoder would read (when both read it).
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "core/json.hpp"
#include "envelope/record_codec.hpp"
#include "filter/scan.hpp"

using namespace sluice;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  core::ByteView line(reinterpret_cast<const char*>(data), size);
  auto scanned = filter::scan_jsonl(line);
  if (!scanned) return 0;
  auto value = core::json_parse(line);
  if (!value) return 0;
  auto full = envelope::from_value(std::move(*value));
  if (!full) return 0;
  const auto* a = std::get_if<envelope::Envelope>(&*scanned);
  const auto* b = std::get_if<envelope::Envelope>(&*full);
  if (a && b && (a->flow_id != b->flow_id || a->stream_id != b->stream_id)) std::abort();
  return 0;
}
