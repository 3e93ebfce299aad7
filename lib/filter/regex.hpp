#pragma once
// A regular-expression search that runs in time linear in the input, whatever the pattern: the
// pattern compiles to an NFA program run as a Pike VM (every thread advances in lockstep over the
// input, one state set per byte), so no input can make it backtrack. A hostile pattern from an agent
// cannot hang the process or exhaust the stack; the program size is bounded too.
//
// The syntax is the common subset of Python's and PCRE's: literals, `.`, classes `[a-z_]` `[^...]`,
// escapes `\d \w \s \D \W \S \b`-less (word boundaries are not supported), `\t \n \r \xHH` and escaped
// punctuation, anchors `^` `$` (whole input, as in Python without MULTILINE), groups `(...)` and
// `(?:...)`, alternation `|`, and quantifiers `* + ? {m} {m,} {m,n}` (lazy forms accepted: for a yes/no
// search they mean the same). Matching is on bytes; `.` matches any byte including newline (DOTALL,
// as mitmproxy's filters do).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/bytes.hpp"
#include "core/result.hpp"

namespace sluice::filter {

class Regex {
 public:
  // Errors name what is wrong and the 0-based offset in the pattern: "unbalanced ')' at 4".
  // `multiline` (Python's re.MULTILINE without re.DOTALL, as mitmproxy's header filters compile): `^`
  // also matches after each LF, `$` also before each LF (and before a CR LF: a header line's end),
  // and `.` does not match LF.
  static core::Result<Regex> compile(std::string_view pattern, bool ignore_case = true, bool multiline = false);

  // True when the pattern matches somewhere in `text`.
  bool search(core::ByteView text) const;

  const std::string& pattern() const { return pattern_; }

  struct Program;

 private:
  std::string pattern_;
  std::shared_ptr<const Program> prog_;
  // A pattern that is a plain string, perhaps anchored (`^api\.example\.com$`), is searched without the VM.
  bool plain_ = false;
  std::string literal_;
  bool anchored_begin_ = false, anchored_end_ = false;
  bool ignore_case_ = true;
  bool multiline_ = false;
};

}  // namespace sluice::filter
