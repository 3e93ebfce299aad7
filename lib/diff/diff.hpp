#pragma once
// Comparing HTTP exchanges: the pairing and comparison behind `sluice diff` and `sluice replay --check`.
//
// Exchanges are paired by a key of method, URL and request body (ignored query parameters taken out,
// the host left out when asked); repeated identical requests pair in the order they came. A pair is
// compared on status, headers (names case-insensitive, order kept within a name, ignored names left
// out) and body: JSON bodies structurally, path by path (ignored paths left out), others byte for byte
// with a line diff for text.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "envelope/record.hpp"

namespace sluice::diff {

struct Options {
  std::vector<std::string> ignore_params;   // query parameters left out of the pairing key
  bool ignore_host = false;                 // pair without scheme and authority
  bool ignore_body = false;                 // pair without the request body
  std::vector<std::string> ignore_headers;  // response headers not compared (any case)
  std::vector<std::string> ignore_json_paths;  // "$.a.b", "$.items[0].id", "$.items[*].ts"
};

// Response headers that differ from one run to the next by nature: never compared.
const std::vector<std::string>& volatile_headers();

// One exchange: its request and final response.
struct Exchange {
  std::string flow_id;
  std::string method, url;
  envelope::HttpMessage request;
  std::optional<envelope::HttpMessage> response;
};

// The HTTP exchanges of a stream, in order of their requests (variants and interim responses skipped).
// A request to a reverse listener (its Host the listener's own address, as the header record names
// it) is taken as addressed to the listener's server: two captures on `@0` ports pair their flows.
class ExchangeCollector {
 public:
  void add(const envelope::Record& r);
  std::vector<Exchange> take();

 private:
  std::vector<Exchange> out_;
  std::map<std::string, size_t> index_;  // flow id -> position
  std::map<std::string, std::string> reverse_;  // a reverse listener's address -> "scheme://authority"
};

std::string pairing_key(const Exchange& e, const Options& o);

// "a=1&b=2" (a query, or a form body) without the pairs whose name is in `names`, order kept.
std::string without_pairs(std::string_view pairs, const std::vector<std::string>& names);

struct Difference {
  std::string what;    // "status", "header Content-Type", "body $.user.name", "body"
  std::string before;  // one line each
  std::string after;
};

// The differences between two responses to the same request (empty: the same).
std::vector<Difference> compare(const envelope::HttpMessage* a, const envelope::HttpMessage* b, const Options& o);

struct PairResult {
  enum class Kind : uint8_t { same, changed, added, missing } kind = Kind::same;
  const Exchange* a = nullptr;  // missing, changed, same
  const Exchange* b = nullptr;  // added, changed, same
  std::vector<Difference> differences;
};

// Pairs A's exchanges with B's and compares each pair: in B's order, then A's unpaired ones.
std::vector<PairResult> diff(const std::vector<Exchange>& a, const std::vector<Exchange>& b, const Options& o);

}  // namespace sluice::diff
