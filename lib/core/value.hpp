#pragma once
// Value: the generic document model shared by the JSONL and CBOR stream encodings.
// Objects keep their members in insertion order (a record's unknown fields are re-emitted as read),
// and byte strings are a kind of their own so that CBOR keeps them binary.
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace sluice::core {

struct Member;

class Value {
 public:
  struct ByteString {
    std::string data;
    bool operator==(const ByteString&) const = default;
  };
  using Array = std::vector<Value>;
  using Object = std::vector<Member>;
  enum class Kind : uint8_t { null, boolean, integer, uinteger, real, string, bytes, array, object };

  Value() = default;
  Value(std::nullptr_t) {}
  Value(bool b) : v_(b) {}
  Value(int v) : v_(int64_t{v}) {}
  Value(int64_t v) : v_(v) {}
  Value(uint64_t v);  // stored as integer when it fits in int64
  Value(double v) : v_(v) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(std::string_view s) : v_(std::string(s)) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(ByteString b) : v_(std::move(b)) {}
  Value(Array a) : v_(std::move(a)) {}
  Value(Object o) : v_(std::move(o)) {}

  static Value bytes(std::string data) { return Value(ByteString{std::move(data)}); }
  static Value object() { return Value(Object{}); }
  static Value array() { return Value(Array{}); }

  Kind kind() const { return static_cast<Kind>(v_.index()); }
  bool is_null() const { return kind() == Kind::null; }
  bool is_bool() const { return kind() == Kind::boolean; }
  bool is_int() const { return kind() == Kind::integer; }
  bool is_number() const { return kind() == Kind::integer || kind() == Kind::uinteger || kind() == Kind::real; }
  bool is_string() const { return kind() == Kind::string; }
  bool is_bytes() const { return kind() == Kind::bytes; }
  bool is_array() const { return kind() == Kind::array; }
  bool is_object() const { return kind() == Kind::object; }

  // Accessors: the caller checks the kind first; a wrong kind is a programming error (std::get throws).
  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const { return std::get<int64_t>(v_); }
  uint64_t as_uint() const { return std::get<uint64_t>(v_); }
  double as_double() const;  // any number kind
  const std::string& as_string() const { return std::get<std::string>(v_); }
  std::string& as_string() { return std::get<std::string>(v_); }
  const std::string& as_bytes() const { return std::get<ByteString>(v_).data; }
  std::string& as_bytes() { return std::get<ByteString>(v_).data; }
  const Array& as_array() const { return std::get<Array>(v_); }
  Array& as_array() { return std::get<Array>(v_); }
  const Object& as_object() const { return std::get<Object>(v_); }
  Object& as_object() { return std::get<Object>(v_); }

  // Object helpers. find() returns nullptr when absent or when this is not an object.
  const Value* find(std::string_view key) const;
  Value* find(std::string_view key);
  // Appends a member (no duplicate check: the encoders build objects from known field lists).
  Value& add(std::string key, Value v);

  bool operator==(const Value& other) const;

 private:
  std::variant<std::monostate, bool, int64_t, uint64_t, double, std::string, ByteString, Array, Object> v_;
};

struct Member {
  std::string key;
  Value value;
  bool operator==(const Member&) const = default;
};

}  // namespace sluice::core
