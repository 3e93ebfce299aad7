// Fuzz target: the JSON and CBOR parsers. No crash, no hang; whatever parses re-encodes to a text or
// item that parses to an equal Value (NaN aside, compared through a second encoding).
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "core/cbor.hpp"
#include "core/json.hpp"

using namespace sluice::core;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto v = json_parse(in)) {
    std::string once = json_write(*v);
    auto again = json_parse(once);
    if (!again || json_write(*again) != once) std::abort();
  }
  if (auto v = cbor_parse(in)) {
    std::string once;
    cbor_write(*v, once);
    auto again = cbor_parse(once);
    if (!again) std::abort();
    std::string twice;
    cbor_write(*again, twice);
    if (twice != once) std::abort();
  }
  return 0;
}
