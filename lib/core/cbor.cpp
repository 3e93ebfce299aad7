#include "core/cbor.hpp"

#include <bit>
#include <cmath>
#include <cstring>

#include "core/utf8.hpp"

namespace sluice::core {
namespace {

constexpr int kMaxDepth = 256;

void write_head(uint8_t major, uint64_t n, std::string& out) {
  uint8_t m = static_cast<uint8_t>(major << 5);
  if (n < 24) {
    out.push_back(static_cast<char>(m | n));
  } else if (n <= 0xFF) {
    out.push_back(static_cast<char>(m | 24));
    out.push_back(static_cast<char>(n));
  } else if (n <= 0xFFFF) {
    out.push_back(static_cast<char>(m | 25));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n));
  } else if (n <= 0xFFFFFFFFu) {
    out.push_back(static_cast<char>(m | 26));
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<char>(n >> s));
  } else {
    out.push_back(static_cast<char>(m | 27));
    for (int s = 56; s >= 0; s -= 8) out.push_back(static_cast<char>(n >> s));
  }
}

class Reader {
 public:
  explicit Reader(ByteView d) : d_(d) {}

  Result<Value> parse_document() {
    Value v;
    if (!item(v, 0)) return fail();
    if (pos_ != d_.size()) {
      err_ = "trailing bytes after item";
      return fail();
    }
    return v;
  }

 private:
  Error fail() const {
    return make_error("invalid CBOR at byte " + std::to_string(pos_) + ": " + (err_ ? err_ : "malformed"));
  }
  bool set_error(const char* e) {
    err_ = e;
    return false;
  }
  bool need(uint64_t n) {
    if (n > d_.size() - pos_) return set_error("truncated item");
    return true;
  }
  uint8_t byte() { return static_cast<uint8_t>(d_[pos_++]); }
  uint64_t be(int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v = (v << 8) | byte();
    return v;
  }
  // Reads the argument of a head whose additional info is `ai`.
  bool argument(uint8_t ai, uint64_t& n) {
    if (ai < 24) {
      n = ai;
      return true;
    }
    int len = ai == 24 ? 1 : ai == 25 ? 2 : ai == 26 ? 4 : ai == 27 ? 8 : 0;
    if (len == 0) return set_error(ai == 31 ? "indefinite length not supported" : "reserved additional info");
    if (!need(static_cast<uint64_t>(len))) return false;
    n = be(len);
    return true;
  }

  bool item(Value& out, int depth) {
    if (depth > kMaxDepth) return set_error("nesting too deep");
    if (!need(1)) return false;
    uint8_t ib = byte();
    uint8_t major = ib >> 5;
    uint8_t ai = ib & 31;
    if (major == 7) return simple(ai, out);
    uint64_t n;
    if (!argument(ai, n)) return false;
    switch (major) {
      case 0: out = Value(n); return true;
      case 1:
        if (n > static_cast<uint64_t>(INT64_MAX)) return set_error("negative integer out of range");
        out = Value(-1 - static_cast<int64_t>(n));
        return true;
      case 2:
      case 3: {
        if (!need(n)) return false;
        std::string s(d_.substr(pos_, n));
        pos_ += n;
        if (major == 3) {
          if (!is_valid_utf8(s)) return set_error("invalid UTF-8 in text string");
          out = Value(std::move(s));
        } else {
          out = Value::bytes(std::move(s));
        }
        return true;
      }
      case 4: {
        if (n > d_.size() - pos_) return set_error("truncated array");  // each element is >= 1 byte
        Value::Array arr;
        arr.resize(n);
        for (auto& e : arr)
          if (!item(e, depth + 1)) return false;
        out = Value(std::move(arr));
        return true;
      }
      case 5: {
        if (n > (d_.size() - pos_) / 2) return set_error("truncated map");
        Value::Object obj;
        obj.reserve(n);
        for (uint64_t i = 0; i < n; ++i) {
          Value key;
          if (!item(key, depth + 1)) return false;
          if (!key.is_string()) return set_error("map key is not a text string");
          Member m{std::move(key.as_string()), {}};
          if (!item(m.value, depth + 1)) return false;
          obj.push_back(std::move(m));
        }
        out = Value(std::move(obj));
        return true;
      }
      case 6: return item(out, depth + 1);  // tag: the tagged item stands for itself
    }
    return set_error("unreachable");
  }

  bool simple(uint8_t ai, Value& out) {
    switch (ai) {
      case 20: out = Value(false); return true;
      case 21: out = Value(true); return true;
      case 22:
      case 23: out = Value(); return true;
      case 25: {
        if (!need(2)) return false;
        auto h = static_cast<uint16_t>(be(2));
        int exp = (h >> 10) & 0x1F;
        int mant = h & 0x3FF;
        double v = exp == 0 ? std::ldexp(mant, -24) : exp != 31 ? std::ldexp(mant + 1024, exp - 25)
                                                                 : (mant == 0 ? INFINITY : NAN);
        out = Value((h & 0x8000) ? -v : v);
        return true;
      }
      case 26: {
        if (!need(4)) return false;
        out = Value(static_cast<double>(std::bit_cast<float>(static_cast<uint32_t>(be(4)))));
        return true;
      }
      case 27: {
        if (!need(8)) return false;
        out = Value(std::bit_cast<double>(be(8)));
        return true;
      }
      default: return set_error("unsupported simple value");
    }
  }

  ByteView d_;
  size_t pos_ = 0;
  const char* err_ = nullptr;
};

}  // namespace

void cbor_write(const Value& v, std::string& out) {
  switch (v.kind()) {
    case Value::Kind::null: out.push_back(static_cast<char>(0xF6)); return;
    case Value::Kind::boolean: out.push_back(static_cast<char>(v.as_bool() ? 0xF5 : 0xF4)); return;
    case Value::Kind::integer: {
      int64_t i = v.as_int();
      if (i >= 0)
        write_head(0, static_cast<uint64_t>(i), out);
      else
        write_head(1, static_cast<uint64_t>(-1 - i), out);
      return;
    }
    case Value::Kind::uinteger: write_head(0, v.as_uint(), out); return;
    case Value::Kind::real: {
      out.push_back(static_cast<char>(0xFB));
      uint64_t bits = std::bit_cast<uint64_t>(v.as_double());
      for (int s = 56; s >= 0; s -= 8) out.push_back(static_cast<char>(bits >> s));
      return;
    }
    case Value::Kind::string:
      write_head(3, v.as_string().size(), out);
      out.append(v.as_string());
      return;
    case Value::Kind::bytes:
      write_head(2, v.as_bytes().size(), out);
      out.append(v.as_bytes());
      return;
    case Value::Kind::array:
      write_head(4, v.as_array().size(), out);
      for (const auto& e : v.as_array()) cbor_write(e, out);
      return;
    case Value::Kind::object:
      write_head(5, v.as_object().size(), out);
      for (const auto& m : v.as_object()) {
        write_head(3, m.key.size(), out);
        out.append(m.key);
        cbor_write(m.value, out);
      }
      return;
  }
}

Result<Value> cbor_parse(ByteView data) { return Reader(data).parse_document(); }

}  // namespace sluice::core
