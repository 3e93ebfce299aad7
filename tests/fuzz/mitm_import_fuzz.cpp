// Fuzz target: a mitmproxy flow file (tnetstrings) from arbitrary bytes, as `sluice import` reads one.
// Properties: no crash, no hang, no stack exhaustion (nesting is bounded); a value that parses dumps
// to bytes that parse to the same value again; the import keeps the flows it read before a damage.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "export/mitm.hpp"

using namespace sluice;

namespace {

bool same(const exporter::TNet& a, const exporter::TNet& b) {
  if (a.kind != b.kind || a.s != b.s || a.i != b.i || a.b != b.b) return false;
  if (a.kind == exporter::TNet::Kind::floating && !(a.d == b.d || (a.d != a.d && b.d != b.d))) return false;
  if (a.items.size() != b.items.size() || a.keys != b.keys) return false;
  for (size_t i = 0; i < a.items.size(); ++i)
    if (!same(a.items[i], b.items[i])) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t used = 0;
  if (auto v = exporter::tnet_parse(input, used)) {
    if (used > size) std::abort();
    std::string again = exporter::tnet_dump(*v);
    size_t used2 = 0;
    auto w = exporter::tnet_parse(again, used2);
    if (!w || used2 != again.size() || !same(*v, *w)) std::abort();
  }
  size_t records = 0;
  exporter::MitmImport got = exporter::from_mitm(input, [&](envelope::Record&&) { ++records; });
  // The header always (a dict without a request or messages is read as a flow of nothing).
  if (records == 0 || (got.flows == 0 && records != 1)) std::abort();
  return 0;
}
