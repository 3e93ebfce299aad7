#pragma once
// CBOR (RFC 8949) <-> Value, definite-length items only. Tags are skipped on input; half, single and
// double floats are read; integers beyond the int64/uint64 range are an error.
#include "core/bytes.hpp"
#include "core/result.hpp"
#include "core/value.hpp"

namespace sluice::core {

// Appends the CBOR encoding of `v` to `out`. Doubles are written as 8-byte floats.
void cbor_write(const Value& v, std::string& out);

// Decodes exactly one CBOR data item occupying all of `data`. Never throws: truncation, an
// indefinite length, nesting deeper than 256 or invalid UTF-8 in a text string gives an Error.
Result<Value> cbor_parse(ByteView data);

}  // namespace sluice::core
