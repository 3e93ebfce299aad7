#pragma once
// A fast, partial reading of one JSONL record for filtering: the members a filter can look at, read
// straight from the text (no document tree), and the rest (the base64 `raw` of anything but raw
// chunks, unknown members) skipped at memchr speed. The record's original bytes are what gets written
// out, so nothing needs to be complete. Anything unexpected is an error: the caller then decodes the
// line the full way.
#include "core/bytes.hpp"
#include "core/result.hpp"
#include "envelope/record.hpp"
#include "filter/expr.hpp"

namespace sluice::filter {

// Any record the scanner reads, every member a filter can look at.
core::Result<envelope::Record> scan_jsonl(core::ByteView line);

// An envelope line into `into`, which is reused (its strings keep their capacity, so a reader that
// recycles envelopes allocates nothing per line): headers, bodies and the context only when `needs`
// (Filter::needs()) asks for them. False when the line is not an envelope this scanner reads.
bool scan_envelope(core::ByteView line, uint32_t needs, envelope::Envelope& into);

}  // namespace sluice::filter
