#pragma once
// Record <-> core::Value, the step shared by both stream encodings.
#include <functional>
#include <string>

#include "core/result.hpp"
#include "envelope/record.hpp"

namespace sluice::envelope {

// Which encoding the Value is for. JSON has no byte strings: `raw` becomes a base64 string and
// text-like byte fields (bodies, header fields, payloads) a string when they are valid UTF-8, else
// {"base64": "..."}. CBOR keeps every byte field a byte string.
enum class Target : uint8_t { json, cbor };

// How bodies are written. By default a body or payload that `raw` ends with (the wire held it
// unchanged: a Content-Length body, an unmasked WebSocket frame, an uncompressed gRPC message) is
// written once, as `body_at`/`payload_at`, the offset in raw where it starts (formats/STREAM.md §4.1);
// `inline_bodies` writes every body out (for jq and other readers of one member).
struct EncodeOptions {
  bool inline_bodies = false;
};

core::Value to_value(const Record& r, Target target, EncodeOptions options = {});
core::Value to_value(const Envelope& e, Target target, EncodeOptions options = {});  // without copying into a Record
// Appends the record's JSON text: the same bytes as core::json_write(to_value(r, Target::json)), without
// building the tree (the proxy's recording path).
// `spill`, when given, is handed the text so far (to write it out and clear it) each time it passes
// about 1 MiB: a record with 16 MiB bodies is then written without ever being whole in memory.
using Spill = std::function<void(std::string&)>;
void write_json(const Record& r, std::string& out, const Spill* spill = nullptr, EncodeOptions options = {});
void write_json(const Envelope& e, std::string& out, EncodeOptions options = {});

// Accepts either representation of every byte field, and bodies and payloads written once
// (`body_at`/`payload_at`) or out. Unknown members land in the `extra` of the
// object they appeared in; an unknown record "type" gives an UnknownRecord. A known member of the wrong
// type gives an Error naming it.
core::Result<Record> from_value(core::Value v);

}  // namespace sluice::envelope
