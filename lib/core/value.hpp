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

  Value();
  Value(std::nullptr_t);
  Value(bool b);
  Value(int v);
  Value(int64_t v);
  Value(uint64_t v);  // stored as integer when it fits in int64
  Value(double v);
  Value(std::string s);
  Value(std::string_view s);
  Value(const char* s);
  Value(ByteString b);
  Value(Array a);
  Value(Object o);
  Value(const Value&);
  Value(Value&&) noexcept;
  Value& operator=(const Value&);
  Value& operator=(Value&&) noexcept;
  ~Value();

  static Value bytes(std::string data);
  static Value object();
  static Value array();

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
  bool as_bool() const;
  int64_t as_int() const;
  uint64_t as_uint() const;
  double as_double() const;  // any number kind
  const std::string& as_string() const;
  std::string& as_string();
  const std::string& as_bytes() const;
  std::string& as_bytes();
  const Array& as_array() const;
  Array& as_array();
  const Object& as_object() const;
  Object& as_object();

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

// Defined here, where Member is complete (an Object is a vector of Members).
inline Value::Value() = default;
inline Value::Value(std::nullptr_t) {}
inline Value::Value(bool b) : v_(b) {}
inline Value::Value(int v) : v_(int64_t{v}) {}
inline Value::Value(int64_t v) : v_(v) {}
inline Value::Value(double v) : v_(v) {}
inline Value::Value(std::string s) : v_(std::move(s)) {}
inline Value::Value(std::string_view s) : v_(std::string(s)) {}
inline Value::Value(const char* s) : v_(std::string(s)) {}
inline Value::Value(ByteString b) : v_(std::move(b)) {}
inline Value::Value(Array a) : v_(std::move(a)) {}
inline Value::Value(Object o) : v_(std::move(o)) {}
inline Value::Value(const Value&) = default;
inline Value::Value(Value&&) noexcept = default;
inline Value& Value::operator=(const Value&) = default;
inline Value& Value::operator=(Value&&) noexcept = default;
inline Value::~Value() = default;
inline Value Value::bytes(std::string data) { return Value(ByteString{std::move(data)}); }
inline Value Value::object() { return Value(Object{}); }
inline Value Value::array() { return Value(Array{}); }
inline bool Value::as_bool() const { return std::get<bool>(v_); }
inline int64_t Value::as_int() const { return std::get<int64_t>(v_); }
inline uint64_t Value::as_uint() const { return std::get<uint64_t>(v_); }
inline const std::string& Value::as_string() const { return std::get<std::string>(v_); }
inline std::string& Value::as_string() { return std::get<std::string>(v_); }
inline const std::string& Value::as_bytes() const { return std::get<ByteString>(v_).data; }
inline std::string& Value::as_bytes() { return std::get<ByteString>(v_).data; }
inline const Value::Array& Value::as_array() const { return std::get<Array>(v_); }
inline Value::Array& Value::as_array() { return std::get<Array>(v_); }
inline const Value::Object& Value::as_object() const { return std::get<Object>(v_); }
inline Value::Object& Value::as_object() { return std::get<Object>(v_); }

}  // namespace sluice::core
