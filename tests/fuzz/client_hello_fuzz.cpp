// Fuzz target: the ClientHello parser and the fingerprints computed from what it parsed. Properties: no
// crash, no sanitizer report; a parse that succeeded does not change when more bytes follow.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "tls/client_hello.hpp"

using namespace sluice;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  core::ByteView in(reinterpret_cast<const char*>(data), size);
  auto parse = tls::parse_client_hello(in);
  if (parse.status != tls::HelloStatus::ok) return 0;
  std::string fingerprints = tls::ja3_string(parse.hello) + tls::ja3_hash(parse.hello) + tls::ja4(parse.hello);
  auto again = tls::parse_client_hello(std::string(in) + "\x17\x03\x03");
  if (again.status != tls::HelloStatus::ok || tls::ja4(again.hello) != tls::ja4(parse.hello)) std::abort();
  return fingerprints.empty() ? 1 : 0;
}
