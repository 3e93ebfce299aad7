#pragma once
// FlowSummarizer: turns a record stream into one human-readable line per flow, as `sluice show` and
// `sluice proxy` on a terminal print them.
//
// HTTP flows print when their response arrives (or when the flow ends without one), with the HTTP
// version, the client-facing TLS version, the response's size (and the request's, when it had a body)
// and the time from request to response; raw byte streams print when their stream ends, with byte
// and chunk counts each way; other protocols print a line per message; error records print as they
// come. TLS handshakes print nothing of their own (their version is on the flows inside), and a
// CONNECT that succeeded prints only when nothing inside its tunnel did, at the connection's end: one
// HTTPS request is one line. Pending flows are bounded: past `max_pending` the oldest is printed as it
// stands.
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
  // `color`: ANSI colours for status codes and errors (see use_color()).
  explicit FlowSummarizer(LineSink sink, size_t max_pending = 100000, bool color = false);

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
    int status = 0;
    std::string version, tls;           // "HTTP/1.1", "TLSv1.3"
    core::Timestamp response_time{};    // 0 until the response came
    bool has_request = false;
    uint64_t sent = 0, received = 0, sent_chunks = 0, received_chunks = 0;
    std::string note;     // error or end reason
    std::string tunnel;   // a CONNECT that succeeded: the stream its tunnel is nested in
  };
  Flow& flow(const envelope::Envelope& e);
  void print(const std::string& key);
  void emit(const std::string& stream_id, const std::string& text);
  std::string line(const Flow& f) const;
  std::string paint(const char* code, const std::string& text) const;

  LineSink sink_;
  size_t max_pending_;
  bool color_;
  // Succeeded CONNECTs not printed yet, by their stream: dropped once a line of their tunnel prints,
  // printed at their stream's end otherwise.
  std::map<std::string, Flow> tunnels_;
  std::list<Flow> order_;
  std::map<std::string, std::list<Flow>::iterator> flows_;
};

// Whether lines written to `fd` get colours: a terminal, NO_COLOR unset or empty, TERM not "dumb".
bool use_color(int fd);
// "07:54:49.123" in UTC.
std::string clock_time(core::Timestamp t);
// "1.2 KiB" style sizes.
std::string human_size(uint64_t bytes);
// "850 us", "12 ms", "1.4 s".
std::string human_duration(int64_t ns);

}  // namespace sluice::view
