#include "core/value.hpp"

#include <limits>

namespace sluice::core {

Value::Value(uint64_t v) {
  if (v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    v_ = static_cast<int64_t>(v);
  else
    v_ = v;
}

double Value::as_double() const {
  switch (kind()) {
    case Kind::integer: return static_cast<double>(as_int());
    case Kind::uinteger: return static_cast<double>(as_uint());
    default: return std::get<double>(v_);
  }
}

const Value* Value::find(std::string_view key) const {
  if (!is_object()) return nullptr;
  for (const auto& m : as_object())
    if (m.key == key) return &m.value;
  return nullptr;
}

Value* Value::find(std::string_view key) {
  return const_cast<Value*>(static_cast<const Value*>(this)->find(key));
}

Value& Value::add(std::string key, Value v) {
  auto& obj = as_object();
  obj.push_back(Member{std::move(key), std::move(v)});
  return obj.back().value;
}

bool Value::operator==(const Value& other) const { return v_ == other.v_; }

}  // namespace sluice::core
