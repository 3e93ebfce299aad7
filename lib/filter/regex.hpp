#pragma once
// A regular-expression search that runs in time linear in the input, whatever the pattern: the
// pattern compiles to an NFA program run as a Pike VM (every thread advances in lockstep over the
// input, one state set per byte), so no input can make it backtrack. A hostile pattern from an agent
// cannot hang the process or exhaust the stack; the program size is bounded too.
//
// The syntax is the common subset of Python's and PCRE's: literals, `.`, classes `[a-z_]` `[^...]`,
// escapes `\d \w \s \D \W \S \t \n \r \xHH` and escaped punctuation, word boundaries `\b` `\B`,
// anchors `^` `$` (whole input, as in Python without MULTILINE), groups `(...)` (capturing) and
// `(?:...)`, alternation `|`, and quantifiers `* + ? {m} {m,} {m,n}` and their lazy forms (which
// matter to find(): where a match ends). Matching is on bytes; `.` matches any byte including newline
// (DOTALL, as mitmproxy's filters and modify_body do).
#include <cstdint>
#include <memory>
#include <optional>
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

  // The leftmost match at or after `from`, as Python's re.search picks it (alternatives and greedy or
  // lazy quantifiers in their order of preference), with its groups: `slots[2k]`, `slots[2k + 1]` the
  // bounds of group k (0: the whole match), -1 for a group that took no part. Still linear time: the
  // VM's threads carry their capture slots.
  struct Match {
    std::vector<int64_t> slots;
    size_t begin() const { return static_cast<size_t>(slots[0]); }
    size_t end() const { return static_cast<size_t>(slots[1]); }
  };
  std::optional<Match> find(core::ByteView text, size_t from = 0) const;
  // Capturing groups in the pattern (not counting the whole match).
  size_t groups() const;

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
