// Fuzz target: the stream decoder on arbitrary bytes in arbitrary chunks. Properties: no crash, no
// leak, no hang; every record it returns re-encodes to a stream that decodes to a record encoding to
// the same bytes (the encoding is a fixed point after one pass).
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "stream/decoder.hpp"
#include "stream/writer.hpp"

using namespace sluice;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t chunk = 1 + data[0] % 64;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  stream::RecordDecoder dec;
  std::vector<envelope::Record> records;
  for (size_t i = 0; i < input.size(); i += chunk) {
    dec.feed(input.substr(i, chunk));
    while (auto r = dec.next()) records.push_back(std::move(*r));
  }
  dec.finish();
  while (auto r = dec.next()) records.push_back(std::move(*r));

  for (const auto& r : records) {
    for (auto enc : {stream::Encoding::jsonl, stream::Encoding::cbor}) {
      std::string first;
      stream::encode_record(r, enc, first);
      std::string framed;
      stream::append_framed(first, enc, framed);
      stream::RecordDecoder again;
      again.feed(framed);
      again.finish();
      auto back = again.next();
      if (!back || again.warnings() != 0) std::abort();
      std::string second;
      stream::encode_record(*back, enc, second);
      if (second != first) std::abort();
    }
  }
  return 0;
}
