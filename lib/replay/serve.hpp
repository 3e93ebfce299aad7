#pragma once
// Server replay: the pipeline step behind `sluice proxy --serve-from`. It answers HTTP requests with
// responses recorded in captures, without contacting the server, when one matches.
//
// A request matches a recorded one when their keys are equal: method, scheme, the server's host and
// port (where the request went, not the Host a reverse proxy's client named), path, query parameters
// in order (minus ignored ones), the body (minus ignored form fields) and chosen header values; each
// part can be left out. Keys are hashed: a lookup costs the same for 10 recorded flows or 100k.
//
// Identical requests are answered in recorded order, and once those are used up, they miss;
// `reuse` answers every one with the last recorded response instead. A miss forwards the request,
// answers 404 or 502 naming it, or kills the connection. `refresh_dates` shifts Date, Expires,
// Last-Modified and cookie expiry dates by the time since the response was recorded.
//
// The step is shared by every connection of the proxy (thread-safe).
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/result.hpp"
#include "envelope/record.hpp"
#include "pipeline/pipeline.hpp"

namespace sluice::replay {

struct MatchOptions {
  bool method = true, scheme = true, host = true, port = true, path = true, query = true, body = true;
  std::vector<std::string> ignore_params;       // query parameters left out
  std::vector<std::string> ignore_form_fields;  // application/x-www-form-urlencoded body fields left out
  std::vector<std::string> headers;             // header values that take part (names, any case)
};
// "method,path,query": the parts that take part; the others are left out. Unknown part: error.
core::Result<void> parse_match_parts(std::string_view list, MatchOptions& o);

enum class OnMiss : uint8_t { forward, not_found, bad_gateway, kill };
core::Result<OnMiss> parse_on_miss(std::string_view s);  // forward|404|502|kill

struct ServeOptions {
  MatchOptions match;
  OnMiss on_miss = OnMiss::bad_gateway;
  bool reuse = false;
  bool refresh_dates = false;
};

// The matching key of a request envelope (context.server says where it went).
std::string match_key(const envelope::Envelope& request, const MatchOptions& o);

// The response head `raw` (then its body) with Date, Expires, Last-Modified and Set-Cookie expiry
// moved by `shift_seconds`; every other byte as it was.
core::Bytes shift_dates(core::ByteView raw, int64_t shift_seconds);
// An HTTP date (IMF-fixdate, RFC 850, asctime, or a cookie's "Wdy, DD-Mon-YYYY HH:MM:SS GMT") as Unix
// seconds; nullopt when it is none.
std::optional<int64_t> parse_http_date(std::string_view s);
std::string format_http_date(int64_t unix_seconds);  // IMF-fixdate

class ServeFrom final : public pipeline::Step {
 public:
  explicit ServeFrom(ServeOptions options);

  // Loading: every record of the captures, in order; then finish_loading().
  void add(const envelope::Record& r);
  void finish_loading();
  size_t responses() const { return responses_; }  // recorded responses that can be served
  size_t unusable() const { return unusable_; }    // recorded cut short (--record-body-limit), not served

  std::string_view name() const override { return "serve-from"; }
  pipeline::Outcome process(envelope::Envelope& env, pipeline::Reply& reply, const pipeline::Resume& resume) override;

 private:
  struct Served {
    core::Bytes raw;  // the response as the client received it
    std::string flow_id;
    int64_t recorded_at = 0;  // Unix seconds: its Date, else when it was recorded
  };
  struct Entry {
    std::vector<Served> responses;
    size_t next = 0;
  };
  struct Loading {
    std::string key;
    std::optional<Served> response;
    bool complete = true;
  };

  ServeOptions options_;
  std::mutex mu_;
  std::unordered_map<std::string, Entry> index_;
  std::unordered_map<std::string, size_t> loading_index_;  // flow id -> position in loading_
  std::vector<std::pair<std::string, Loading>> loading_;   // in the order of the requests
  size_t responses_ = 0, unusable_ = 0;
};

}  // namespace sluice::replay
