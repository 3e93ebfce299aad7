// The golden samples in formats/samples/ are what the code writes, byte for byte, and every form of
// them reads back as the sample records. SLUICE_UPDATE_GOLDEN=1 rewrites them after a deliberate change.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "support/sample_records.hpp"
#include "support/stream_helpers.hpp"

using namespace sluice;
using namespace sluice::stream;

namespace {
std::string path(const std::string& name) { return std::string(SLUICE_SOURCE_DIR) + "/formats/samples/" + name; }
std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
}  // namespace

TEST(Golden, SamplesMatchTheWriterAndReadBack) {
  auto records = test_support::sample_records();
  struct Form {
    const char* file;
    Encoding encoding;
    Compression compression;
    bool exact;  // zstd output may differ between library versions: decode-only
  };
  for (const Form& f : {Form{"sample.jsonl", Encoding::jsonl, Compression::none, true},
                        Form{"sample.cbor", Encoding::cbor, Compression::none, true},
                        Form{"sample.jsonl.zst", Encoding::jsonl, Compression::zstd, false},
                        Form{"sample.cbor.zst", Encoding::cbor, Compression::zstd, false}}) {
    WriterOptions o;
    o.encoding = f.encoding;
    o.compression = f.compression;
    std::string written = test_support::encode_stream(records, o);
    if (std::getenv("SLUICE_UPDATE_GOLDEN")) std::ofstream(path(f.file), std::ios::binary) << written;
    std::string golden = slurp(path(f.file));
    ASSERT_FALSE(golden.empty()) << f.file;
    if (f.exact) {
      EXPECT_EQ(golden, written) << f.file << " differs from what the writer produces";
    }
    auto d = test_support::decode_stream(golden);
    EXPECT_TRUE(d.warnings.empty()) << f.file;
    EXPECT_TRUE(d.records == records) << f.file;
  }
  // Captures written before bodies were stored once (every body in message.body) read the same, and
  // with inline_bodies the writer still produces them byte for byte.
  std::string inline_golden = slurp(path("sample-bodies-inline.jsonl"));
  auto d = test_support::decode_stream(inline_golden);
  EXPECT_TRUE(d.warnings.empty());
  EXPECT_TRUE(d.records == records);
  WriterOptions o;
  o.compression = Compression::none;
  o.inline_bodies = true;
  EXPECT_EQ(test_support::encode_stream(records, o), inline_golden);
}
