#include "core/json.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "core/base64.hpp"
#include "core/utf8.hpp"

namespace sluice::core {
namespace {

constexpr int kMaxDepth = 256;

// Escape table: 0 = copy as is, otherwise the escape letter ('u' = \u00XX).
struct EscapeTable {
  char t[256]{};
  constexpr EscapeTable() {
    for (int i = 0; i < 0x20; ++i) t[i] = 'u';
    t['\b'] = 'b', t['\f'] = 'f', t['\n'] = 'n', t['\r'] = 'r', t['\t'] = 't';
    t['"'] = '"', t['\\'] = '\\';
  }
};
constexpr EscapeTable kEscape;

void write_utf8_checked(std::string_view s, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t i = 0;
  size_t run = 0;  // start of the pending run of bytes copied verbatim
  auto flush = [&](size_t end) { out.append(s.data() + run, end - run); };
  while (i < s.size()) {
    // Fast path: 16, then eight bytes at a time while none needs a look (control, '"', '\\', non-ASCII).
#ifdef __SSE2__
    while (i + 16 <= s.size()) {
      __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s.data() + i));
      // Signed: bytes from 0x80 are negative, so "less than 0x20" also catches non-ASCII.
      __m128i special = _mm_or_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),
                                     _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))));
      if (_mm_movemask_epi8(special)) break;
      i += 16;
    }
#endif
    constexpr uint64_t kOnes = 0x0101010101010101ULL, kHigh = 0x8080808080808080ULL;
    while (i + 8 <= s.size()) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      uint64_t quote = w ^ (kOnes * '"'), backslash = w ^ (kOnes * '\\');
      uint64_t special = ((w - kOnes * 0x20) & ~w) | ((quote - kOnes) & ~quote) | ((backslash - kOnes) & ~backslash) | w;
      if (special & kHigh) break;
      i += 8;
    }
    if (i >= s.size()) break;
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      char e = kEscape.t[c];
      if (e == 0) {
        ++i;
        continue;
      }
      flush(i);
      out.push_back('\\');
      if (e == 'u') {
        out.append("u00");
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 15]);
      } else {
        out.push_back(e);
      }
      run = ++i;
      continue;
    }
    // Multi-byte sequence: validate it alone.
    size_t len = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (len != 0 && i + len <= s.size() && is_valid_utf8(s.substr(i, len))) {
      i += len;
      continue;
    }
    flush(i);
    out.append("\xEF\xBF\xBD");
    run = ++i;
  }
  flush(i);
}

void write_value(const Value& v, std::string& out) {
  switch (v.kind()) {
    case Value::Kind::null: out.append("null"); return;
    case Value::Kind::boolean: out.append(v.as_bool() ? "true" : "false"); return;
    case Value::Kind::integer: {
      char buf[24];
      auto r = std::to_chars(buf, buf + sizeof buf, v.as_int());
      out.append(buf, r.ptr);
      return;
    }
    case Value::Kind::uinteger: {
      char buf[24];
      auto r = std::to_chars(buf, buf + sizeof buf, v.as_uint());
      out.append(buf, r.ptr);
      return;
    }
    case Value::Kind::real: {
      double d = v.as_double();
      if (!std::isfinite(d)) {
        out.append("null");
        return;
      }
      char buf[40];
      auto r = std::to_chars(buf, buf + sizeof buf, d);
      std::string_view text(buf, static_cast<size_t>(r.ptr - buf));
      out.append(text);
      // Keep it a real number when read back.
      if (text.find_first_of(".eE") == std::string_view::npos) out.append(".0");
      return;
    }
    case Value::Kind::string: json_write_string(v.as_string(), out); return;
    case Value::Kind::bytes:
      out.append("{\"base64\":\"");
      base64_encode(v.as_bytes(), out);
      out.append("\"}");
      return;
    case Value::Kind::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& e : v.as_array()) {
        if (!first) out.push_back(',');
        first = false;
        write_value(e, out);
      }
      out.push_back(']');
      return;
    }
    case Value::Kind::object: {
      out.push_back('{');
      bool first = true;
      for (const auto& m : v.as_object()) {
        if (!first) out.push_back(',');
        first = false;
        json_write_string(m.key, out);
        out.push_back(':');
        write_value(m.value, out);
      }
      out.push_back('}');
      return;
    }
  }
}

class Parser {
 public:
  explicit Parser(std::string_view text) : s_(text) {}

  Result<Value> parse_document() {
    Value v;
    skip_ws();
    if (!parse_value(v, 0)) return fail();
    skip_ws();
    if (pos_ != s_.size()) {
      error_ = "unexpected trailing data";
      return fail();
    }
    return v;
  }

 private:
  Error fail() const {
    return make_error("invalid JSON at byte " + std::to_string(pos_) + ": " + (error_ ? error_ : "syntax error"));
  }
  bool set_error(const char* e) {
    error_ = e;
    return false;
  }
  void skip_ws() {
    while (pos_ < s_.size()) {
      char c = s_[pos_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      ++pos_;
    }
  }
  bool literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return set_error("invalid literal");
    pos_ += word.size();
    return true;
  }

  bool parse_value(Value& out, int depth) {
    if (depth > kMaxDepth) return set_error("nesting too deep");
    if (pos_ >= s_.size()) return set_error("unexpected end of input");
    char c = s_[pos_];
    switch (c) {
      case '{': return parse_object(out, depth);
      case '[': return parse_array(out, depth);
      case '"': {
        std::string str;
        if (!parse_string(str)) return false;
        out = Value(std::move(str));
        return true;
      }
      case 't': out = Value(true); return literal("true");
      case 'f': out = Value(false); return literal("false");
      case 'n': out = Value(); return literal("null");
      default: return parse_number(out);
    }
  }

  bool parse_object(Value& out, int depth) {
    ++pos_;  // '{'
    Value::Object obj;
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      out = Value(std::move(obj));
      return true;
    }
    while (true) {
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != '"') return set_error("expected a member name");
      Member m;
      if (!parse_string(m.key)) return false;
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != ':') return set_error("expected ':'");
      ++pos_;
      skip_ws();
      if (!parse_value(m.value, depth + 1)) return false;
      obj.push_back(std::move(m));
      skip_ws();
      if (pos_ >= s_.size()) return set_error("unexpected end of input");
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == '}') {
        ++pos_;
        out = Value(std::move(obj));
        return true;
      }
      return set_error("expected ',' or '}'");
    }
  }

  bool parse_array(Value& out, int depth) {
    ++pos_;  // '['
    Value::Array arr;
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      out = Value(std::move(arr));
      return true;
    }
    while (true) {
      skip_ws();
      arr.emplace_back();
      if (!parse_value(arr.back(), depth + 1)) return false;
      skip_ws();
      if (pos_ >= s_.size()) return set_error("unexpected end of input");
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == ']') {
        ++pos_;
        out = Value(std::move(arr));
        return true;
      }
      return set_error("expected ',' or ']'");
    }
  }

  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  bool read_hex4(uint32_t& v) {
    if (pos_ + 4 > s_.size()) return set_error("truncated \\u escape");
    v = 0;
    for (int i = 0; i < 4; ++i) {
      int h = hex(s_[pos_ + i]);
      if (h < 0) return set_error("bad \\u escape");
      v = (v << 4) | static_cast<uint32_t>(h);
    }
    pos_ += 4;
    return true;
  }
  static void append_utf8(uint32_t cp, std::string& out) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  bool parse_string(std::string& out) {
    ++pos_;  // opening quote
    while (true) {
      size_t start = pos_;
      while (pos_ < s_.size()) {
        auto c = static_cast<unsigned char>(s_[pos_]);
        if (c == '"' || c == '\\' || c < 0x20) break;
        ++pos_;
      }
      std::string_view run = s_.substr(start, pos_ - start);
      if (!is_valid_utf8(run)) return set_error("invalid UTF-8 in string");
      out.append(run);
      if (pos_ >= s_.size()) return set_error("unterminated string");
      char c = s_[pos_];
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c != '\\') return set_error("control character in string");
      if (++pos_ >= s_.size()) return set_error("unterminated string");
      char e = s_[pos_++];
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          uint32_t cp;
          if (!read_hex4(cp)) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t lo;
            if (s_.substr(pos_, 2) != "\\u") return set_error("lone surrogate");
            pos_ += 2;
            if (!read_hex4(lo)) return false;
            if (lo < 0xDC00 || lo > 0xDFFF) return set_error("lone surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return set_error("lone surrogate");
          }
          append_utf8(cp, out);
          break;
        }
        default: return set_error("bad escape");
      }
    }
  }

  bool parse_number(Value& out) {
    size_t start = pos_;
    bool is_real = false;
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    size_t digits = pos_;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
    if (pos_ == digits) return set_error("unexpected character");
    if (s_[digits] == '0' && pos_ - digits > 1) return set_error("leading zero");
    if (pos_ < s_.size() && s_[pos_] == '.') {
      is_real = true;
      size_t f = ++pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      if (pos_ == f) return set_error("bad number");
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      is_real = true;
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      size_t e = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      if (pos_ == e) return set_error("bad number");
    }
    const char* b = s_.data() + start;
    const char* e = s_.data() + pos_;
    if (!is_real) {
      int64_t i;
      auto r = std::from_chars(b, e, i);
      if (r.ec == std::errc() && r.ptr == e) {
        out = Value(i);
        return true;
      }
      uint64_t u;
      r = std::from_chars(b, e, u);
      if (r.ec == std::errc() && r.ptr == e) {
        out = Value(u);
        return true;
      }
    }
    double d = 0;
    auto r = std::from_chars(b, e, d);
    if (r.ptr != e) return set_error("bad number");
    if (r.ec == std::errc::result_out_of_range) d = std::strtod(std::string(b, e).c_str(), nullptr);
    out = Value(d);
    return true;
  }

  std::string_view s_;
  size_t pos_ = 0;
  const char* error_ = nullptr;
};

}  // namespace

void json_write_string(std::string_view s, std::string& out) {
  out.push_back('"');
  write_utf8_checked(s, out);
  out.push_back('"');
}

void json_write_string_content(std::string_view s, std::string& out) { write_utf8_checked(s, out); }

void json_write(const Value& v, std::string& out) { write_value(v, out); }

std::string json_write(const Value& v) {
  std::string out;
  write_value(v, out);
  return out;
}

Result<Value> json_parse(std::string_view text) { return Parser(text).parse_document(); }

}  // namespace sluice::core
