#pragma once
// JSON text <-> Value. The parser never throws: malformed input, nesting deeper than 256 levels or
// invalid UTF-8 gives an Error naming the byte offset.
#include "core/result.hpp"
#include "core/value.hpp"

namespace sluice::core {

// Appends the compact JSON text of `v` to `out` (no newline). Byte strings are written as an object
// {"base64": "..."}; strings that are not valid UTF-8 get U+FFFD for each bad byte; NaN and infinities
// become null.
void json_write(const Value& v, std::string& out);
std::string json_write(const Value& v);

// Appends `s` as a quoted JSON string (valid UTF-8 expected; bad bytes become U+FFFD).
void json_write_string(std::string_view s, std::string& out);
// The same without the quotes, for writing one long string in pieces (split between UTF-8 sequences).
void json_write_string_content(std::string_view s, std::string& out);

// Parses exactly one JSON value; surrounding whitespace is allowed, anything else is an error.
Result<Value> json_parse(std::string_view text);

}  // namespace sluice::core
