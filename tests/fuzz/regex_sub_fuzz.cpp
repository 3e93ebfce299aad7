// Fuzz target: the regex engine's find() (capture groups, Python's preferences) and the rules' re.sub
// (templates, empty matches) on arbitrary patterns, templates and texts. Input: PATTERN \0 TEMPLATE \0
// TEXT (the first byte's low bit: case-insensitive). Properties: no crash, no sanitizer report; find()
// finds a match exactly when the yes/no search() does (two VMs, one answer); every match and group lies
// in the text, a group within its match; a replacement that replaced nothing leaves the text as it was.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "filter/regex.hpp"
#include "step/transform.hpp"

using namespace sluice;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > 4096) return 0;
  bool icase = data[0] & 1;
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  size_t a = in.find('\0');
  if (a == std::string_view::npos) return 0;
  size_t b = in.find('\0', a + 1);
  if (b == std::string_view::npos) return 0;
  std::string_view pattern = in.substr(0, a), tmpl = in.substr(a + 1, b - a - 1), text = in.substr(b + 1);
  auto re = filter::Regex::compile(pattern, icase);
  if (!re) return 0;
  auto m = re->find(text);
  if (m.has_value() != re->search(text)) std::abort();
  for (size_t from = 0; m && from <= text.size(); from = m->end() + 1) {
    m = re->find(text, from);
    if (!m) break;
    if (m->slots.size() != 2 * (re->groups() + 1)) std::abort();
    if (m->begin() < from || m->begin() > m->end() || m->end() > text.size()) std::abort();
    for (size_t g = 1; g <= re->groups(); ++g) {
      int64_t s = m->slots[2 * g], e = m->slots[2 * g + 1];
      if (s < 0) continue;
      if (e < s || s < m->slots[0] || e > m->slots[1]) std::abort();
    }
  }
  auto repl = step::Replacement::parse(tmpl, re->groups());
  if (!repl) return 0;
  std::string out;
  size_t n = step::regex_sub(*re, *repl, text, out);
  if (n == 0 && out != text) std::abort();
  return 0;
}
