#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include <zstd.h>

#include "core/json.hpp"
#include "envelope/record_codec.hpp"
#include "support/sample_records.hpp"
#include "support/stream_helpers.hpp"

using namespace sluice;
using namespace sluice::stream;
using test_support::decode_stream;
using test_support::encode_stream;

namespace {
std::vector<WriterOptions> all_forms() {
  std::vector<WriterOptions> v;
  for (auto e : {Encoding::jsonl, Encoding::cbor})
    for (auto c : {Compression::none, Compression::zstd}) {
      WriterOptions o;
      o.encoding = e;
      o.compression = c;
      v.push_back(o);
    }
  return v;
}
std::string name(const WriterOptions& o) {
  return std::string(to_string(o.encoding)) + (o.compression == Compression::zstd ? "+zstd" : "");
}
}  // namespace

TEST(Stream, EveryFormRoundTripsEveryRecord) {
  auto records = test_support::sample_records();
  for (const auto& o : all_forms()) {
    auto bytes = encode_stream(records, o);
    auto d = decode_stream(bytes);
    EXPECT_TRUE(d.warnings.empty()) << name(o) << ": " << d.warnings.front();
    ASSERT_EQ(d.records.size(), records.size()) << name(o);
    EXPECT_TRUE(d.records == records) << name(o);
  }
}

TEST(Stream, ConversionChainIsByteExact) {
  // JSONL -> binary -> binary+zstd -> JSONL+zstd -> JSONL gives the same JSONL bytes.
  auto records = test_support::sample_records();
  auto forms = all_forms();
  WriterOptions jsonl = forms[0];
  std::string first = encode_stream(records, jsonl);
  std::string current = first;
  for (const auto& o : {forms[2], forms[3], forms[1], forms[0]}) {
    auto d = decode_stream(current);
    ASSERT_TRUE(d.warnings.empty());
    current = encode_stream(d.records, o);
  }
  EXPECT_EQ(current, first);
}

TEST(Stream, DetectsFormsFromFirstBytes) {
  auto records = test_support::sample_records();
  for (const auto& o : all_forms()) {
    stream::RecordDecoder dec;
    dec.feed(encode_stream(records, o));
    EXPECT_EQ(dec.encoding(), o.encoding);
    EXPECT_EQ(dec.compression(), o.compression);
  }
  auto d = decode_stream("GET / HTTP/1.1\r\n");
  ASSERT_TRUE(d.fatal);
  EXPECT_NE(d.fatal->find("not a sluice stream"), std::string::npos);
  EXPECT_TRUE(decode_stream("").records.empty());
}

// Whatever else a reader is given is named, never read as an empty capture: a HAR (one line, pretty,
// after a byte order mark, compressed), plain JSON, a mitmproxy flow file, a packet capture.
TEST(Stream, NamesWhatIsNotAStream) {
  auto foreign = [](std::string_view bytes) {
    RecordDecoder dec;
    dec.feed(bytes);
    dec.finish();
    EXPECT_FALSE(dec.next()) << bytes;
    EXPECT_TRUE(dec.fatal()) << bytes;
    return dec.foreign();
  };
  using F = RecordDecoder::Foreign;
  EXPECT_EQ(foreign("{\"log\": {\"version\": \"1.2\", \"entries\": []}}\n"), F::har);
  EXPECT_EQ(foreign("{\n  \"log\": {\n    \"version\": \"1.2\",\n    \"entries\": []\n  }\n}\n"), F::har);
  EXPECT_EQ(foreign("\xEF\xBB\xBF{\"log\": {}}\n"), F::har);
  EXPECT_EQ(foreign("{\"a\": 1}\n{\"b\": 2}\n"), F::json);
  EXPECT_EQ(foreign("[{\"type\": \"header\"}]\n"), F::json);
  EXPECT_EQ(foreign("{\n  \"name\": \"x\"\n}\n"), F::json);
  EXPECT_EQ(foreign("320:7:version;2:21#4:type;4:http;}"), F::mitmproxy);
  EXPECT_EQ(foreign(std::string_view("\xD4\xC3\xB2\xA1\x02\x00\x04\x00", 8)), F::pcap);
  EXPECT_EQ(foreign("GET / HTTP/1.1\r\n"), F::other);
  // Compressed, a HAR is still a HAR.
  std::string out;
  {
    std::string har = "{\"log\": {\"entries\": []}}\n";
    size_t bound = ZSTD_compressBound(har.size());
    out.resize(bound);
    out.resize(ZSTD_compress(out.data(), bound, har.data(), har.size(), 1));
  }
  EXPECT_EQ(foreign(out), F::har);
  // A stream whose first line is damaged is still a stream: that line is skipped, the rest read.
  auto records = test_support::sample_records();
  WriterOptions plain;
  plain.compression = Compression::none;
  auto d = decode_stream("{\"type\": \"hea\n" + encode_stream(records, plain));
  EXPECT_FALSE(d.fatal);
  EXPECT_EQ(d.records.size(), records.size());
  EXPECT_EQ(d.warnings.size(), 1u);
}

TEST(Stream, EverySplitPointGivesTheSameRecords) {
  auto records = test_support::sample_records();
  for (const auto& o : all_forms()) {
    auto bytes = encode_stream(records, o, 3);
    for (size_t chunk : {1, 2, 3, 7, 64, 1000}) {
      auto d = decode_stream(bytes, chunk);
      EXPECT_TRUE(d.warnings.empty()) << name(o) << " chunk " << chunk;
      EXPECT_TRUE(d.records == records) << name(o) << " chunk " << chunk;
    }
  }
}

// A capture cut at 200 offsets: every record that was complete before the cut comes back, in order, and
// a cut anywhere but a record boundary is reported.
TEST(Stream, TruncatedAt200OffsetsKeepsEveryCompleteRecord) {
  auto records = test_support::kib_envelopes(60);
  auto head = test_support::sample_records();
  records.insert(records.begin(), head.begin(), head.end());
  for (const auto& o : all_forms()) {
    // Record boundaries: encode prefixes (flushing after every record, as the proxy does when idle).
    std::vector<size_t> boundary;  // boundary[i] = stream size holding exactly i records
    std::string full = encode_stream(records, o, 1);
    {
      std::vector<envelope::Record> prefix;
      boundary.push_back(0);
      for (const auto& r : records) {
        prefix.push_back(r);
        boundary.push_back(encode_stream(prefix, o, 1).size());
      }
    }
    ASSERT_EQ(boundary.back(), full.size());
    std::mt19937 rng(7);
    for (int i = 0; i < 200; ++i) {
      size_t cut = i < 10 ? static_cast<size_t>(i) : rng() % full.size();
      auto d = decode_stream(std::string_view(full).substr(0, cut));
      size_t complete = static_cast<size_t>(std::upper_bound(boundary.begin(), boundary.end(), cut) - boundary.begin() - 1);
      ASSERT_FALSE(d.fatal) << name(o) << " cut " << cut << ": " << *d.fatal;
      // A zstd cut inside a frame's trailing checksum still yields that frame's complete record.
      size_t slack = o.compression == Compression::zstd && complete + 1 < boundary.size() &&
                             boundary[complete + 1] - cut <= 4 ? 1 : 0;
      ASSERT_GE(d.records.size(), complete) << name(o) << " cut at " << cut;
      ASSERT_LE(d.records.size(), complete + slack) << name(o) << " cut at " << cut;
      EXPECT_TRUE(std::equal(d.records.begin(), d.records.end(), records.begin())) << name(o) << " cut " << cut;
      bool on_boundary = std::binary_search(boundary.begin(), boundary.end(), cut);
      EXPECT_EQ(d.warnings.empty(), on_boundary) << name(o) << " cut " << cut;
    }
  }
}

// Corrupted bytes in the middle: the reader warns, never crashes, never returns a damaged record, and
// returns the records that the damage did not touch.
TEST(Stream, CorruptionInTheMiddleLosesOnlyTheDamagedPart) {
  auto records = test_support::kib_envelopes(100);
  for (const auto& o : all_forms()) {
    std::string full = encode_stream(records, o, 10);  // zstd: one frame per 10 records
    std::mt19937 rng(11);
    for (int trial = 0; trial < 40; ++trial) {
      std::string bad = full;
      size_t at = full.size() / 4 + rng() % (full.size() / 2);
      size_t len = 1 + rng() % 16;
      for (size_t i = at; i < at + len && i < bad.size(); ++i) bad[i] = static_cast<char>(rng());
      auto d = decode_stream(bad, 4096);
      ASSERT_FALSE(d.fatal);
      // Plain JSONL carries no checksum: damage inside a string can still parse, so up to the two lines
      // the damage spans may come back altered and unreported. zstd frames and binary frames are checked.
      bool checked = o.compression == Compression::zstd || o.encoding == Encoding::cbor;
      size_t altered = 0;
      size_t j = 0;
      for (const auto& r : d.records) {
        size_t k = j;
        while (k < records.size() && !(records[k] == r)) ++k;
        if (k == records.size()) {
          ++altered;
          continue;
        }
        j = k + 1;
      }
      if (checked) {
        EXPECT_FALSE(d.warnings.empty()) << name(o) << " trial " << trial;
        EXPECT_EQ(altered, 0u) << name(o) << " trial " << trial << ": a damaged record was returned";
      } else {
        EXPECT_LE(altered, 2u) << name(o) << " trial " << trial;
        if (altered == 0 && d.records.size() < records.size()) {
          EXPECT_FALSE(d.warnings.empty());
        }
      }
      // The damage costs at most the records of two zstd frames (10 each) or two uncompressed records.
      size_t max_lost = o.compression == Compression::zstd ? 20 : 2;
      EXPECT_GE(d.records.size() + max_lost, records.size()) << name(o) << " trial " << trial;
    }
  }
}

TEST(Stream, RandomGarbageNeverCrashes) {
  std::mt19937 rng(3);
  auto base = encode_stream(test_support::sample_records(), all_forms()[1]);
  for (int i = 0; i < 300; ++i) {
    std::string s = i % 2 ? base : std::string("{");
    size_t n = rng() % 2000;
    for (size_t k = 0; k < n; ++k) s.push_back(static_cast<char>(rng()));
    (void)decode_stream(s, 1 + rng() % 100);
  }
  SUCCEED();
}

TEST(Stream, LargeRecordsWrittenInPiecesReadBackTheSame) {
  // Bodies of a few MiB, UTF-8 (escaped in pieces, a multi-byte character at every piece boundary
  // region) and binary (base64 in pieces), next to small records: byte-identical to write().
  std::mt19937 rng(7);
  std::string binary(3u << 20, '\0');
  for (auto& c : binary) c = static_cast<char>(rng());
  std::string text;
  while (text.size() < (5u << 20)) text += "h\xC3\xA9llo \"w\xE2\x82\xAC" "rld\"\n\t";
  std::vector<envelope::Record> records = test_support::sample_records();
  records.push_back(test_support::http_request(1, binary));
  records.push_back(test_support::http_request(2, text));
  records.push_back(test_support::http_request(3, "small"));
  for (auto compression : {Compression::zstd, Compression::none}) {
    WriterOptions opts;
    opts.compression = compression;
    std::string whole = encode_stream(records, opts);
    std::string pieces = encode_stream(records, opts, 0, true);
    auto a = decode_stream(whole), b = decode_stream(pieces);
    EXPECT_TRUE(b.warnings.empty());
    ASSERT_EQ(b.records.size(), records.size());
    EXPECT_EQ(a.records, b.records);
    EXPECT_EQ(b.records, records);
    if (compression == Compression::none) {
      EXPECT_EQ(whole, pieces);
    }
  }
}

// With handlers, records come over as they are decoded, in stream order: JSONL lines to the line
// handler first (which declines some), every other record decoded, with its encoded form.
TEST(Stream, HandlersTakeEveryRecordInOrder) {
  auto records = test_support::sample_records();
  for (const auto& o : all_forms()) {
    auto bytes = encode_stream(records, o, 3);
    for (size_t chunk : {size_t{1}, size_t{7}, size_t{1000}, bytes.size()}) {
      stream::RecordDecoder dec;
      std::vector<envelope::Record> got;
      size_t lines = 0, offered = 0;
      dec.set_handlers(
          [&](core::ByteView line) {
            if (offered++ % 2) return false;  // every other one is decoded as usual
            auto v = core::json_parse(line);
            EXPECT_TRUE(v);
            got.push_back(*envelope::from_value(std::move(*v)));
            ++lines;
            return true;
          },
          [&](envelope::Record&& r, core::ByteView payload) {
            EXPECT_FALSE(payload.empty());
            got.push_back(std::move(r));
          });
      for (size_t at = 0; at < bytes.size(); at += chunk) dec.feed(core::ByteView(bytes).substr(at, chunk));
      dec.finish();
      EXPECT_FALSE(dec.next());  // nothing queued
      EXPECT_EQ(dec.warnings(), 0u);
      EXPECT_EQ(dec.records(), records.size());
      EXPECT_TRUE(got == records) << name(o) << " chunk " << chunk;
      EXPECT_EQ(lines, o.encoding == Encoding::jsonl ? (records.size() + 1) / 2 : 0u) << name(o);
    }
  }
}
