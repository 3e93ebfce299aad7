#include "tls/client_hello.hpp"

#include <algorithm>

#include <openssl/evp.h>

#include "tls/digest.hpp"

namespace sluice::tls {

namespace {

constexpr size_t kMaxHello = 64 * 1024;

// A bounds-checked reader over one buffer; any overrun sets `bad` and yields zeros.
struct Reader {
  core::ByteView s;
  size_t pos = 0;
  bool bad = false;

  size_t left() const { return s.size() - pos; }
  uint32_t be(size_t n) {
    if (left() < n) {
      bad = true;
      pos = s.size();
      return 0;
    }
    uint32_t v = 0;
    for (size_t i = 0; i < n; ++i) v = v << 8 | static_cast<uint8_t>(s[pos + i]);
    pos += n;
    return v;
  }
  uint8_t u8() { return static_cast<uint8_t>(be(1)); }
  uint16_t u16() { return static_cast<uint16_t>(be(2)); }
  core::ByteView take(size_t n) {
    if (left() < n) {
      bad = true;
      pos = s.size();
      return {};
    }
    core::ByteView v = s.substr(pos, n);
    pos += n;
    return v;
  }
  // A vector with a length prefix of `len_bytes`.
  Reader sub(size_t len_bytes) { return Reader{take(be(len_bytes))}; }
};

std::vector<uint16_t> u16_list(Reader r) {
  std::vector<uint16_t> v;
  while (r.left() >= 2) v.push_back(r.u16());
  return v;
}

std::string parse_extension(ClientHello& h, uint16_t type, Reader body) {
  switch (type) {
    case 0x0000: {  // server_name
      Reader list = body.sub(2);
      while (list.left() && !list.bad) {
        uint8_t kind = list.u8();
        core::ByteView name = list.sub(2).s;
        if (kind == 0 && !h.has_sni) {
          h.has_sni = true;
          h.sni = std::string(name);
        }
      }
      if (list.bad || body.bad) return "bad server_name extension";
      break;
    }
    case 0x0010: {  // application_layer_protocol_negotiation
      Reader list = body.sub(2);
      while (list.left() && !list.bad) {
        core::ByteView p = list.sub(1).s;
        if (!list.bad) h.alpn.emplace_back(p);
      }
      if (list.bad || body.bad) return "bad ALPN extension";
      break;
    }
    case 0x000a: h.groups = u16_list(body.sub(2)); break;
    case 0x000b: {
      core::ByteView f = body.sub(1).s;
      h.point_formats.assign(f.begin(), f.end());
      break;
    }
    case 0x000d: h.signature_algorithms = u16_list(body.sub(2)); break;
    case 0x002b: h.supported_versions = u16_list(body.sub(1)); break;
    default: break;
  }
  return body.bad ? "truncated extension " + std::to_string(type) : std::string();
}

void append_hex4(std::string& out, uint16_t v) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += kHex[v >> 12];
  out += kHex[(v >> 8) & 15];
  out += kHex[(v >> 4) & 15];
  out += kHex[v & 15];
}

// Comma-separated four-digit lower-case hex.
std::string hex4_list(const std::vector<uint16_t>& v) {
  std::string out;
  out.reserve(v.size() * 5);
  for (uint16_t x : v) {
    if (!out.empty()) out += ',';
    append_hex4(out, x);
  }
  return out;
}

std::string digest_hex(const EVP_MD* md, std::string_view data, size_t chars) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), d, &len, md, nullptr);
  return core::hex_encode(core::ByteView(reinterpret_cast<const char*>(d), len)).substr(0, chars);
}

template <class T>
std::string join_decimal(const std::vector<T>& v, bool skip_grease) {
  std::string out;
  for (T x : v) {
    if (skip_grease && is_grease(static_cast<uint16_t>(x))) continue;
    if (!out.empty()) out.push_back('-');
    out += std::to_string(x);
  }
  return out;
}

std::string two_digits(size_t n) {
  n = std::min<size_t>(n, 99);
  return std::string(1, static_cast<char>('0' + n / 10)) + static_cast<char>('0' + n % 10);
}

// The three parts of JA4 before hashing: prefix, sorted ciphers, sorted extensions [_ sigalgs].
struct Ja4Parts {
  std::string prefix, ciphers, extensions;
};

Ja4Parts ja4_parts(const ClientHello& h) {
  uint16_t version = h.legacy_version;
  if (!h.supported_versions.empty()) {
    version = 0;
    for (uint16_t v : h.supported_versions)
      if (!is_grease(v)) version = std::max(version, v);
  }
  std::string ver = "00";
  switch (version) {
    case 0x0304: ver = "13"; break;
    case 0x0303: ver = "12"; break;
    case 0x0302: ver = "11"; break;
    case 0x0301: ver = "10"; break;
    case 0x0300: ver = "s3"; break;
    case 0x0002: ver = "s2"; break;
    default: break;
  }
  std::vector<uint16_t> ciphers, exts;
  for (uint16_t c : h.ciphers)
    if (!is_grease(c)) ciphers.push_back(c);
  size_t ext_count = 0;
  for (uint16_t e : h.extensions) {
    if (is_grease(e)) continue;
    ++ext_count;
    if (e != 0x0000 && e != 0x0010) exts.push_back(e);
  }
  std::string alpn = "00";
  if (!h.alpn.empty() && !h.alpn[0].empty()) {
    const std::string& a = h.alpn[0];
    auto alnum = [](unsigned char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
    unsigned char first = static_cast<unsigned char>(a.front()), last = static_cast<unsigned char>(a.back());
    if (alnum(first) && alnum(last)) {
      alpn = {static_cast<char>(first), static_cast<char>(last)};
    } else {  // non-alphanumeric: the first hex digit of the first byte, the last of the last byte
      static constexpr char kHex[] = "0123456789abcdef";
      alpn = {kHex[first >> 4], kHex[last & 15]};
    }
  }
  Ja4Parts p;
  p.prefix = "t" + ver + (h.has_sni ? "d" : "i") + two_digits(ciphers.size()) + two_digits(ext_count) + alpn;
  // Sorted as numbers: for fixed-width hex digits that is JA4's sort of the hex strings.
  std::sort(ciphers.begin(), ciphers.end());
  std::sort(exts.begin(), exts.end());
  p.ciphers = hex4_list(ciphers);
  p.extensions = hex4_list(exts);
  if (!h.signature_algorithms.empty()) p.extensions += "_" + hex4_list(h.signature_algorithms);
  return p;
}

}  // namespace

HelloParse parse_client_hello(core::ByteView bytes) {
  HelloParse out;
  if (bytes.empty()) return out;
  if (static_cast<uint8_t>(bytes[0]) != 0x16) {
    out.status = HelloStatus::not_tls;
    return out;
  }
  if (bytes.size() >= 2 && static_cast<uint8_t>(bytes[1]) != 0x03) {
    out.status = HelloStatus::not_tls;
    return out;
  }
  // Gather the handshake message from as many records as it spans.
  core::Bytes msg;
  size_t pos = 0;
  size_t need = 0;  // 4 + message length, once known
  while (need == 0 || msg.size() < need) {
    if (bytes.size() - pos < 5) return out;  // need_more
    auto type = static_cast<uint8_t>(bytes[pos]);
    size_t len = static_cast<uint8_t>(bytes[pos + 3]) << 8 | static_cast<uint8_t>(bytes[pos + 4]);
    if (type != 0x16 || static_cast<uint8_t>(bytes[pos + 1]) != 0x03) {
      out.status = HelloStatus::malformed;
      out.error = "a non-handshake record inside the ClientHello";
      return out;
    }
    if (len == 0 || len > 16384 + 2048) {
      out.status = HelloStatus::malformed;
      out.error = "bad TLS record length " + std::to_string(len);
      return out;
    }
    if (bytes.size() - pos - 5 < len) return out;  // need_more
    msg.append(bytes.substr(pos + 5, len));
    pos += 5 + len;
    if (need == 0 && msg.size() >= 4) {
      if (static_cast<uint8_t>(msg[0]) != 1) {
        out.status = HelloStatus::malformed;
        out.error = "the first handshake message is not a ClientHello";
        return out;
      }
      need = 4 + (static_cast<uint8_t>(msg[1]) << 16 | static_cast<uint8_t>(msg[2]) << 8 | static_cast<uint8_t>(msg[3]));
      if (need > kMaxHello) {
        out.status = HelloStatus::malformed;
        out.error = "ClientHello larger than 64 KiB";
        return out;
      }
    }
  }
  Reader r{core::ByteView(msg).substr(4, need - 4)};
  ClientHello& h = out.hello;
  h.legacy_version = r.u16();
  r.take(32);  // random
  r.sub(1);    // legacy_session_id
  h.ciphers = u16_list(r.sub(2));
  r.sub(1);  // compression methods
  if (r.left()) {
    Reader exts = r.sub(2);
    while (exts.left() && !exts.bad) {
      uint16_t type = exts.u16();
      Reader body = exts.sub(2);
      if (exts.bad) break;
      h.extensions.push_back(type);
      if (std::string err = parse_extension(h, type, body); !err.empty()) {
        out.status = HelloStatus::malformed;
        out.error = err;
        return out;
      }
    }
    if (exts.bad) r.bad = true;
  }
  if (r.bad) {
    out.status = HelloStatus::malformed;
    out.error = "truncated ClientHello";
    return out;
  }
  out.status = HelloStatus::ok;
  return out;
}

std::string ja3_string(const ClientHello& h) {
  return std::to_string(h.legacy_version) + "," + join_decimal(h.ciphers, true) + "," +
         join_decimal(h.extensions, true) + "," + join_decimal(h.groups, true) + "," +
         join_decimal(h.point_formats, false);
}

std::string ja3_hash(const ClientHello& h) { return ja3_digest(ja3_string(h)); }

std::string ja3_digest(std::string_view ja3) { return digest_hex(md5_digest(), ja3, 32); }

std::string ja4(const ClientHello& h) {
  Ja4Parts p = ja4_parts(h);
  std::string b = p.ciphers.empty() ? "000000000000" : digest_hex(sha256_digest(), p.ciphers, 12);
  std::string c = p.extensions.empty() ? "000000000000" : digest_hex(sha256_digest(), p.extensions, 12);
  return p.prefix + "_" + b + "_" + c;
}

std::string ja4_raw(const ClientHello& h) {
  Ja4Parts p = ja4_parts(h);
  return p.prefix + "_" + p.ciphers + "_" + p.extensions;
}

}  // namespace sluice::tls
