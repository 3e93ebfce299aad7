// The ClientHello parser and the JA3/JA4 fingerprints.
//
// Reference: a Chrome 143 ClientHello as fingerprinted by browserleaks.com (its JSON output is kept in
// the public repository service0427/v2_cp_app, file tls.md): the JA3 text and MD5, the JA4, and the
// JA4_r lists. The test rebuilds a ClientHello with those ciphers, extensions (in Chrome's wire order),
// groups, point formats, signature algorithms and ALPN, adds GREASE values where Chrome puts them
// (which every fingerprint must ignore), and checks our values against browserleaks' ones.
#include <gtest/gtest.h>

#include "tls/client_hello.hpp"

using namespace sluice;
using namespace sluice::tls;

namespace {

std::string u8(uint8_t v) { return std::string(1, static_cast<char>(v)); }
std::string u16(uint16_t v) { return u8(static_cast<uint8_t>(v >> 8)) + u8(static_cast<uint8_t>(v)); }
std::string u24(uint32_t v) { return u8(static_cast<uint8_t>(v >> 16)) + u16(static_cast<uint16_t>(v)); }
std::string vec8(const std::string& s) { return u8(static_cast<uint8_t>(s.size())) + s; }
std::string vec16(const std::string& s) { return u16(static_cast<uint16_t>(s.size())) + s; }
std::string list16(std::initializer_list<uint16_t> v) {
  std::string s;
  for (uint16_t x : v) s += u16(x);
  return s;
}
std::string ext(uint16_t type, const std::string& body) { return u16(type) + vec16(body); }

// The handshake message (type, length, body) of the reference ClientHello.
std::string reference_hello_message() {
  std::string exts;
  exts += ext(0x0a0a, "");                                                      // GREASE
  exts += ext(45, vec8(u8(1)));                                                 // psk_key_exchange_modes
  exts += ext(51, vec16(u16(0x4a4a) + vec16(u8(0)) + u16(29) + vec16(std::string(32, 'k'))));  // key_share
  exts += ext(16, vec16(vec8("h2") + vec8("http/1.1")));                        // ALPN
  exts += ext(65037, std::string(20, 'e'));                                     // encrypted_client_hello
  exts += ext(23, "");                                                          // extended_master_secret
  exts += ext(17613, vec16(vec8("h2")));                                        // application_settings
  exts += ext(0, vec16(u8(0) + vec16("tls-outer.browserleaks.com")));          // server_name
  exts += ext(11, vec8(u8(0)));                                                 // ec_point_formats
  exts += ext(10, vec16(list16({0x4a4a, 4588, 29, 23, 24})));                   // supported_groups
  exts += ext(43, vec8(list16({0x5a5a, 0x0304, 0x0303})));                      // supported_versions
  exts += ext(65281, u8(0));                                                    // renegotiation_info
  exts += ext(35, "");                                                          // session_ticket
  exts += ext(18, "");                                                          // signed_certificate_timestamp
  exts += ext(5, u8(1) + u16(0) + u16(0));                                      // status_request
  exts += ext(13, vec16(list16({0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601})));
  exts += ext(27, vec8(u16(2)));                                                // compress_certificate
  exts += ext(0x1a1a, u8(0));                                                   // GREASE
  std::string body = u16(0x0303) + std::string(32, 'r') + vec8(std::string(32, 's')) +
                     vec16(list16({0x2a2a, 4865, 4866, 4867, 49195, 49199, 49196, 49200, 52393, 52392, 49171, 49172,
                                   156, 157, 47, 53})) +
                     vec8(u8(0)) + vec16(exts);
  return u8(1) + u24(static_cast<uint32_t>(body.size())) + body;
}

std::string record(const std::string& fragment) { return u8(0x16) + u16(0x0301) + vec16(fragment); }

}  // namespace

TEST(ClientHello, MatchesBrowserleaksReferenceFingerprints) {
  auto parse = parse_client_hello(record(reference_hello_message()));
  ASSERT_EQ(parse.status, HelloStatus::ok) << parse.error;
  const ClientHello& h = parse.hello;
  EXPECT_EQ(h.sni, "tls-outer.browserleaks.com");
  EXPECT_EQ(h.alpn, (std::vector<std::string>{"h2", "http/1.1"}));
  EXPECT_EQ(ja3_string(h),
            "771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,"
            "45-51-16-65037-23-17613-0-11-10-43-65281-35-18-5-13-27,4588-29-23-24,0");
  EXPECT_EQ(ja3_hash(h), "98487aa16281980e7d1120d399efb6a4");
  EXPECT_EQ(ja4(h), "t13d1516h2_8daaf6152771_d8a2da3f94cd");
  EXPECT_EQ(ja4_raw(h),
            "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_"
            "0005,000a,000b,000d,0012,0017,001b,0023,002b,002d,0033,44cd,fe0d,ff01_"
            "0403,0804,0401,0503,0805,0501,0806,0601");
}

TEST(ClientHello, EveryPrefixNeedsMoreAndSplitRecordsParseTheSame) {
  std::string msg = reference_hello_message();
  std::string one = record(msg);
  for (size_t n = 0; n < one.size(); ++n)
    ASSERT_EQ(parse_client_hello(std::string_view(one).substr(0, n)).status, HelloStatus::need_more) << n;
  // The same message across three records, as a client with a small record size would send it.
  std::string three = record(msg.substr(0, 3)) + record(msg.substr(3, 200)) + record(msg.substr(203));
  auto parse = parse_client_hello(three);
  ASSERT_EQ(parse.status, HelloStatus::ok) << parse.error;
  EXPECT_EQ(ja4(parse.hello), "t13d1516h2_8daaf6152771_d8a2da3f94cd");
  // Application bytes after the hello do not matter.
  EXPECT_EQ(parse_client_hello(one + "trailing").status, HelloStatus::ok);
}

TEST(ClientHello, NoSniNoAlpnNoExtensions) {
  std::string body = u16(0x0303) + std::string(32, 'r') + vec8("") + vec16(list16({0x1301, 0x002f})) + vec8(u8(0));
  auto parse = parse_client_hello(record(u8(1) + u24(static_cast<uint32_t>(body.size())) + body));
  ASSERT_EQ(parse.status, HelloStatus::ok) << parse.error;
  EXPECT_FALSE(parse.hello.has_sni);
  EXPECT_EQ(ja3_string(parse.hello), "771,4865-47,,,");
  // TLS 1.2 from the legacy version, "i" for no SNI, 2 ciphers, 0 extensions, "00" for no ALPN.
  EXPECT_EQ(ja4(parse.hello).substr(0, 11), "t12i020000_");
  EXPECT_EQ(ja4(parse.hello).substr(24), "000000000000");
}

TEST(ClientHello, AlpnWithNonAlphanumericEndsUsesHex) {
  std::string exts = ext(16, vec16(vec8(std::string("\xab", 1) + "x" + std::string("\x0c", 1))));
  std::string body = u16(0x0303) + std::string(32, 'r') + vec8("") + vec16(list16({0x1301})) + vec8(u8(0)) + vec16(exts);
  auto parse = parse_client_hello(record(u8(1) + u24(static_cast<uint32_t>(body.size())) + body));
  ASSERT_EQ(parse.status, HelloStatus::ok);
  EXPECT_EQ(ja4(parse.hello).substr(0, 10), "t12i0101ac");
}

TEST(ClientHello, RejectsWhatIsNotAClientHello) {
  EXPECT_EQ(parse_client_hello("GET / HTTP/1.1\r\n").status, HelloStatus::not_tls);
  EXPECT_EQ(parse_client_hello(std::string("\x16\x01", 2)).status, HelloStatus::not_tls);
  // A ServerHello (type 2) where a ClientHello belongs.
  EXPECT_EQ(parse_client_hello(record(u8(2) + u24(2) + "xx")).status, HelloStatus::malformed);
  // An extension whose length runs past the message.
  std::string body = u16(0x0303) + std::string(32, 'r') + vec8("") + vec16(list16({0x1301})) + vec8(u8(0)) +
                     vec16(u16(0) + u16(500));
  EXPECT_EQ(parse_client_hello(record(u8(1) + u24(static_cast<uint32_t>(body.size())) + body)).status,
            HelloStatus::malformed);
  // A server_name list whose entry overruns it.
  std::string sni = ext(0, vec16(u8(0) + u16(40) + "short"));
  body = u16(0x0303) + std::string(32, 'r') + vec8("") + vec16(list16({0x1301})) + vec8(u8(0)) + vec16(sni);
  EXPECT_EQ(parse_client_hello(record(u8(1) + u24(static_cast<uint32_t>(body.size())) + body)).status,
            HelloStatus::malformed);
  // An alert record before any handshake.
  EXPECT_EQ(parse_client_hello(std::string("\x16\x03\x01\x00\x02\x01\x00\x15\x03\x01\x00\x02xx", 14)).status,
            HelloStatus::malformed);
}

TEST(ClientHello, GreaseValues) {
  for (uint16_t g : {0x0a0a, 0x1a1a, 0x2a2a, 0xfafa}) EXPECT_TRUE(is_grease(g)) << g;
  for (uint16_t v : {0x0a1a, 0x0303, 0x1301, 0x0000, 0xabab}) EXPECT_FALSE(is_grease(v)) << v;
}
