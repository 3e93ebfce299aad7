#pragma once
// Captures to other tools' formats and back: HAR 1.2 (with WebSocket messages in _webSocketMessages and
// sluice's extras in _sluice), curl and HTTPie command lines that reproduce a request exactly, and HAR
// files from browsers, mitmproxy or sluice turned into a stream.
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/result.hpp"
#include "core/value.hpp"
#include "envelope/record.hpp"

namespace sluice::exporter {

// One HTTP exchange with what a HAR entry needs, gathered from a stream.
struct Exchange {
  const envelope::Envelope* request = nullptr;
  const envelope::Envelope* response = nullptr;
  std::vector<const envelope::Envelope*> ws;  // WebSocket frames of the flow
  std::vector<std::string> errors;
};

// Gathers the exchanges of a stream (it keeps the records it is given).
class Collector {
 public:
  void add(envelope::Record r);
  // In order of their requests.
  std::vector<Exchange> exchanges() const;

 private:
  std::vector<envelope::Record> records_;
};

// The requests of a stream as they come, each flow's once, for the formats that need no response
// (curl, HTTPie, raw): what `Collector` would list, without keeping the stream. A flow is remembered
// until its stream (or a stream it is nested in) ends, or `kKeep` later flows of its stream came.
class RequestPicker {
 public:
  static constexpr size_t kKeep = 1024;
  // The request to export in `r`, or nullptr.
  const envelope::Envelope* pick(const envelope::Record& r);
  size_t remembered() const;  // flow ids, in all streams

 private:
  struct Seen {
    std::unordered_set<std::string> ids;
    std::deque<std::string> order;  // oldest first
  };
  std::map<std::string, Seen> flows_;  // stream id -> flows seen in it
};

core::Value to_har(const std::vector<Exchange>& exchanges, const std::string& creator_version);
// A shell command (bash) that sends the same request: method, target, headers in order and case, body.
std::string to_curl(const envelope::HttpMessage& request);
std::string to_httpie(const envelope::HttpMessage& request);

// A HAR document (Chrome, Firefox, mitmproxy or sluice) as stream records: a header, then a request and
// a response envelope per entry (raw synthesized as HTTP/1.1 and tagged `imported`), WebSocket messages.
core::Result<std::vector<envelope::Record>> from_har(std::string_view json);

}  // namespace sluice::exporter
