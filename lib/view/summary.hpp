#pragma once
// FlowSummarizer: turns a record stream into one human-readable line per flow, as `sluice show` and
// `sluice proxy` on a terminal print them.
//
// HTTP flows print when their response arrives (or when the flow ends without one); raw byte streams
// print when their stream ends, with byte and chunk counts each way; other protocols print a line per
// message; error records print as they come. Pending flows are bounded: past `max_pending` the oldest
// is printed as it stands.
#include <cstddef>
#include <functional>
#include <list>
#include <map>
#include <string>

#include "envelope/record.hpp"

namespace sluice::view {

class FlowSummarizer {
 public:
  using LineSink = std::function<void(const std::string&)>;
  explicit FlowSummarizer(LineSink sink, size_t max_pending = 100000);

  void add(const envelope::Record& record);
  // Prints every flow still pending (end of input).
  void finish();

 private:
  struct Flow {
    std::string key;
    core::Timestamp time;
    std::string client, server, protocol;
    std::string request;  // "POST http://host/path"
    std::string response; // "200 OK"
    uint64_t sent = 0, received = 0, sent_chunks = 0, received_chunks = 0;
    std::string note;     // error or end reason
  };
  Flow& flow(const envelope::Envelope& e);
  void print(const std::string& key);
  std::string line(const Flow& f) const;

  LineSink sink_;
  size_t max_pending_;
  std::list<Flow> order_;
  std::map<std::string, std::list<Flow>::iterator> flows_;
};

// "07:54:49.123" in UTC.
std::string clock_time(core::Timestamp t);
// "1.2 KiB" style sizes.
std::string human_size(uint64_t bytes);

}  // namespace sluice::view
