#pragma once
// The TLS ClientHello, parsed from the client's first bytes before any TLS library sees them, and the
// JA3 and JA4 fingerprints computed from it. Sans-IO: bytes in, a parse out.
//
// JA3 (salesforce/ja3): "version,ciphers,extensions,groups,point_formats" in decimal, values joined by
// '-', GREASE values (RFC 8701) left out; ja3_hash is its MD5. JA4 (FoxIO JA4 technical details):
// "t<version><d|i><ciphers:2><extensions:2><alpn first+last char>_<sha256(sorted ciphers)[:12]>_
// <sha256(sorted extensions without SNI and ALPN "_" signature algorithms)[:12]>".
#include <cstdint>
#include <string>
#include <vector>

#include "core/bytes.hpp"

namespace sluice::tls {

struct ClientHello {
  uint16_t legacy_version = 0;          // client_version of the handshake message (0x0303)
  std::vector<uint16_t> ciphers;        // in wire order, GREASE included
  std::vector<uint16_t> extensions;     // extension types in wire order, GREASE included
  std::string sni;                      // the host_name entry, empty when absent
  bool has_sni = false;
  std::vector<std::string> alpn;        // protocols offered, in order
  std::vector<uint16_t> groups;         // supported_groups
  std::vector<uint8_t> point_formats;   // ec_point_formats
  std::vector<uint16_t> signature_algorithms;
  std::vector<uint16_t> supported_versions;
};

enum class HelloStatus : uint8_t {
  ok,
  need_more,  // a prefix of a ClientHello: feed more bytes
  not_tls,    // the bytes are not a TLS handshake record
  malformed,  // a TLS handshake record whose ClientHello does not parse
};

struct HelloParse {
  HelloStatus status = HelloStatus::need_more;
  ClientHello hello;
  std::string error;  // for malformed: what was wrong
};

// Parses the ClientHello at the start of `bytes` (TLS records of type handshake; the message may span
// several records). Messages larger than 64 KiB are malformed.
HelloParse parse_client_hello(core::ByteView bytes);

// True for the GREASE values of RFC 8701 (0x0a0a, 0x1a1a, ... 0xfafa).
constexpr bool is_grease(uint16_t v) { return (v & 0x0f0f) == 0x0a0a && (v >> 8) == (v & 0xff); }

std::string ja3_string(const ClientHello& h);
std::string ja3_hash(const ClientHello& h);  // MD5 of ja3_string, lower-case hex
std::string ja3_digest(std::string_view ja3_string);  // the same, of a ja3_string already made
std::string ja4(const ClientHello& h);
// JA4_r: the same fields before hashing (the sorted lists), for explaining a JA4 value.
std::string ja4_raw(const ClientHello& h);

}  // namespace sluice::tls
