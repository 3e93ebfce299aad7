#pragma once
// The stream-end rule of formats/STREAM.md 2.3, checked over what a layer stack recorded (a
// LayerDriver's `records`): nothing of a stream, or of a stream nested in it, comes after its end; a
// stream ends at most once; once the client connection was closed, the connection's own stream has
// ended. Returns "" when the records keep it, else what broke it.
#include <string>
#include <vector>

#include "envelope/record.hpp"
#include "layer/layer.hpp"

namespace sluice::test_support {

inline std::string stream_id_of(const envelope::Record& r) {
  return std::visit(
      [](const auto& x) -> std::string {
        if constexpr (requires { x.stream_id; })
          return x.stream_id;
        else
          return "";
      },
      r);
}

inline std::string stream_rule_breach(const std::vector<envelope::Record>& records, const std::string& conn_id,
                                      const std::vector<layer::CloseConnection>& closed) {
  std::vector<std::string> ended;
  for (size_t i = 0; i < records.size(); ++i) {
    std::string id = stream_id_of(records[i]);
    if (id.empty()) continue;
    for (const auto& e : ended)
      if (id == e || envelope::nested_in(id, e))
        return "record " + std::to_string(i) + " of stream " + id + " after the end of " + e;
    if (const auto* end = std::get_if<envelope::EndRecord>(&records[i]); end && end->scope == "stream")
      ended.push_back(id);
  }
  bool client_closed = false;
  for (const auto& c : closed) client_closed = client_closed || (c.conn == layer::kClientConn && !c.half);
  bool conn_ended = false;
  for (const auto& e : ended) conn_ended = conn_ended || e == conn_id;
  if (client_closed && !conn_ended) return "the client connection closed without the end of " + conn_id;
  return "";
}

}  // namespace sluice::test_support
