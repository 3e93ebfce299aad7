#pragma once
// mitmproxy's flow files: a sequence of tnetstrings (length:data type), one dict per flow, the flow's
// state as mitmproxy's get_state() makes it, its format version in "version". Read in every version
// mitmproxy's migration chain reads (its io/compat.py: (0, 11) through 17, which mitmproxy 8.1 writes),
// and the later ones by their members' names; written in version 17, which every mitmproxy since 8 reads.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "envelope/record.hpp"
#include "export/export.hpp"

namespace sluice::exporter {

// One tnetstring value. Dict keys are kept as text (mitmproxy wrote them as bytes before 1.0).
struct TNet {
  enum class Kind : uint8_t { bytes, text, integer, floating, boolean, null, list, dict } kind = Kind::null;
  std::string s;  // bytes, text
  int64_t i = 0;
  double d = 0;
  bool b = false;
  std::vector<TNet> items;        // a list's items; a dict's values, in order
  std::vector<std::string> keys;  // a dict's keys (keys[i] names items[i])

  const TNet* find(std::string_view key) const;
  // bytes or text as they are; a number as its digits; anything else empty.
  std::string str() const;
  double number() const;  // an integer or a float; 0 otherwise
};

// One value from the front of `data` (its size in `used`); fails with the reason on bytes that are
// not a whole tnetstring (nesting deeper than 64 included).
core::Result<TNet> tnet_parse(std::string_view data, size_t& used);
std::string tnet_dump(const TNet& v);

// Whether `data` starts like a flow file: a tnetstring length, ':' and (within reach) a dict.
bool looks_like_mitm(std::string_view data);

// What an import read.
struct MitmImport {
  size_t flows = 0;
  size_t skipped_dns = 0;  // DNS flows: the envelope model has no DNS message
  std::string error;       // why reading stopped early (a damaged or cut file); empty when it read all
};
// A flow file as stream records, each given to `emit` as it is made: a header, then per HTTP flow its
// request and response envelopes (raw synthesized as HTTP/1.1 heads and bodies, tagged `imported:
// mitmproxy`), its WebSocket messages, its error; per TCP or UDP flow its messages as raw chunks.
// Every complete flow before a damage is given.
MitmImport from_mitm(std::string_view data, const std::function<void(envelope::Record&&)>& emit);
// The same a flow at a time, for a reader that goes at its consumer's pace: the header, then the next
// flow from `pos` (DNS flows skipped), `pos` moved past it; false at the end or at a damage (in
// `out.error`, and `pos` at the end).
envelope::StreamHeader mitm_header();
bool mitm_next_flow(std::string_view data, size_t& pos, MitmImport& out,
                    const std::function<void(envelope::Record&&)>& emit);

// The exchanges of a stream as a flow file mitmproxy reads (version 17): HTTP flows with their
// WebSocket messages and errors.
std::string to_mitm(const std::vector<Exchange>& exchanges);

}  // namespace sluice::exporter
