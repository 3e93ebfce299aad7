// Fuzz target: the HTTP/1 parser on arbitrary bytes, as requests and as responses, in arbitrary
// chunks. Properties: no crash, no hang; the bytes it says a message consumed are exactly its head plus
// its body's wire bytes; a message's chunks concatenate to its wire bytes after the head.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "layer/http1_parser.hpp"

using namespace sluice::layer;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  auto type = data[0] & 1 ? Http1Parser::Type::response : Http1Parser::Type::request;
  size_t step = 1 + data[1] % 32;
  std::string_view input(reinterpret_cast<const char*>(data) + 2, size - 2);
  Http1Parser p(type);
  if (type == Http1Parser::Type::response) p.set_request_method(data[0] & 2 ? "HEAD" : "GET");
  std::string pending;
  std::string wire;
  std::string chunks;
  for (size_t i = 0; i <= input.size(); i += step) {
    pending += input.substr(i, step);
    while (true) {
      size_t consumed = 0;
      auto s = p.feed(pending, consumed);
      if (consumed > pending.size()) std::abort();
      wire += pending.substr(0, consumed);
      pending.erase(0, consumed);
      (void)p.take_body();
      for (auto& c : p.take_chunks()) chunks += c;
      if (s == Http1Parser::Status::complete) {
        const auto& h = p.head();
        if (h.chunked && h.raw + chunks != wire) std::abort();
        if (!wire.starts_with(h.raw)) std::abort();
        wire.clear();
        chunks.clear();
        continue;
      }
      if (s == Http1Parser::Status::head) continue;
      if (s == Http1Parser::Status::need_more) break;
      return 0;  // error or upgrade: the parser takes nothing more
    }
  }
  (void)p.finish();
  return 0;
}
