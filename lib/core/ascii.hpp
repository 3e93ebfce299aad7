#pragma once
// ASCII helpers for protocol tokens (header names, methods): no locale, bytes outside ASCII compare as is.
#include <string>
#include <string_view>

namespace sluice::core {

// ASCII lower case ("Content-Type" -> "content-type").
inline std::string to_lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
  return out;
}

// Case-insensitive equality of two ASCII tokens ("Host" == "host").
inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

// Equality that takes the same time wherever the first difference is (credentials: a comparison that
// stops early tells an attacker how much of a guess was right). Only the lengths may show.
inline bool constant_time_equals(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

// Without the optional whitespace (spaces, tabs) around a header value or list item (RFC 9110 §5.6.3).
inline std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace sluice::core
