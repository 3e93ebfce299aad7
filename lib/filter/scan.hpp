#pragma once
// A fast, partial reading of one JSONL record for filtering: the members a filter can look at, read
// straight from the text (no document tree), and the rest (the base64 `raw` of anything but raw
// chunks, unknown members) skipped at memchr speed. The record's original bytes are what gets written
// out, so nothing needs to be complete. Anything unexpected is an error: the caller then decodes the
// line the full way.
#include "core/bytes.hpp"
#include "core/result.hpp"
#include "envelope/record.hpp"

namespace sluice::filter {

core::Result<envelope::Record> scan_jsonl(core::ByteView line);

}  // namespace sluice::filter
