#include "filter/regex.hpp"

#include <algorithm>
#include <bitset>
#include <functional>

namespace sluice::filter {

namespace {

using CharSet = std::bitset<256>;

constexpr size_t kMaxProgram = 20000;  // instructions, after {m,n} expansion
constexpr int kMaxDepth = 200;         // nesting of groups and quantifiers
constexpr int kMaxRepeat = 1000;

struct Node {
  enum Kind : uint8_t { set, concat, alt, repeat, empty, begin, end, group, word_boundary, not_word_boundary } kind = empty;
  CharSet chars;
  std::vector<Node> kids;
  int min = 0, max = -1;  // repeat: max -1 = unbounded
  bool greedy = true;     // repeat: prefers more (a lazy one prefers fewer: it matters where a match ends)
  int cap = 0;            // group: its number, from 1
};

Node make_node(Node::Kind kind) {
  Node n;
  n.kind = kind;
  return n;
}

CharSet fold(CharSet s) {
  for (int c = 'a'; c <= 'z'; ++c) {
    if (s[c] || s[c - 32]) {
      s.set(c);
      s.set(c - 32);
    }
  }
  return s;
}

CharSet range(int from, int to) {
  CharSet s;
  for (int c = from; c <= to; ++c) s.set(static_cast<size_t>(c));
  return s;
}

CharSet digits() { return range('0', '9'); }
CharSet word() { return range('a', 'z') | range('A', 'Z') | range('0', '9') | range('_', '_'); }
CharSet spaces() {
  CharSet s;
  for (char c : std::string_view(" \t\n\r\f\v")) s.set(static_cast<unsigned char>(c));
  return s;
}

struct Parser {
  std::string_view p;
  size_t pos = 0;
  bool icase = true;
  bool multiline = false;
  std::string error;
  size_t error_at = 0;
  int depth = 0;
  int groups = 0;  // capturing groups so far

  bool fail(std::string what, size_t at) {
    if (error.empty()) {
      error = std::move(what);
      error_at = at;
    }
    return false;
  }
  bool more() const { return pos < p.size(); }

  bool parse_alt(Node& out) {
    if (++depth > kMaxDepth) return fail("pattern nested too deeply", pos);
    Node first;
    if (!parse_concat(first)) return false;
    if (!more() || p[pos] != '|') {
      out = std::move(first);
      --depth;
      return true;
    }
    out = make_node(Node::alt);
    out.kids.push_back(std::move(first));
    while (more() && p[pos] == '|') {
      ++pos;
      Node next;
      if (!parse_concat(next)) return false;
      out.kids.push_back(std::move(next));
    }
    --depth;
    return true;
  }

  bool parse_concat(Node& out) {
    out = make_node(Node::concat);
    while (more() && p[pos] != '|' && p[pos] != ')') {
      Node atom;
      if (!parse_repeat(atom)) return false;
      out.kids.push_back(std::move(atom));
    }
    return true;
  }

  // {m}, {m,}, {m,n}; false (and pos unchanged) when the brace is a literal.
  bool quantifier_braces(int& min, int& max) {
    size_t at = pos + 1;
    auto number = [&](int& v) {
      size_t start = at;
      long n = 0;
      while (at < p.size() && p[at] >= '0' && p[at] <= '9') {
        n = std::min<long>(n * 10 + (p[at] - '0'), 1 << 20);
        ++at;
      }
      v = static_cast<int>(n);
      return at > start;
    };
    if (!number(min)) return false;
    max = min;
    if (at < p.size() && p[at] == ',') {
      ++at;
      if (!number(max)) max = -1;
    }
    if (at >= p.size() || p[at] != '}') return false;
    pos = at + 1;
    return true;
  }

  bool parse_repeat(Node& out) {
    size_t atom_at = pos;
    if (!parse_atom(out)) return false;
    while (more()) {
      int min = 0, max = -1;
      size_t q_at = pos;
      char c = p[pos];
      if (c == '*') {
        ++pos;
      } else if (c == '+') {
        min = 1;
        ++pos;
      } else if (c == '?') {
        max = 1;
        ++pos;
      } else if (c == '{' && quantifier_braces(min, max)) {
        if (max != -1 && max < min) return fail("bad repeat range", q_at);
        if (min > kMaxRepeat || max > kMaxRepeat) return fail("repeat count over " + std::to_string(kMaxRepeat), q_at);
      } else {
        break;
      }
      bool greedy = true;
      if (more() && p[pos] == '?') {  // lazy: prefers the fewest repetitions
        greedy = false;
        ++pos;
      }
      if (out.kind == Node::begin || out.kind == Node::end || out.kind == Node::empty ||
          out.kind == Node::word_boundary || out.kind == Node::not_word_boundary)
        return fail("nothing to repeat", atom_at);
      Node r = make_node(Node::repeat);
      r.min = min;
      r.max = max;
      r.greedy = greedy;
      r.kids.push_back(std::move(out));
      out = std::move(r);
    }
    return true;
  }

  bool escape(CharSet& s, bool in_class) {
    size_t at = pos;
    if (!more()) return fail("trailing backslash", at - 1);
    char c = p[pos++];
    switch (c) {
      case 'd': s = digits(); break;
      case 'D': s = ~digits(); break;
      case 'w': s = word(); break;
      case 'W': s = ~word(); break;
      case 's': s = spaces(); break;
      case 'S': s = ~spaces(); break;
      case 't': s.set('\t'); break;
      case 'n': s.set('\n'); break;
      case 'r': s.set('\r'); break;
      case 'f': s.set('\f'); break;
      case 'v': s.set('\v'); break;
      case '0': s.set(0); break;
      case 'x': {
        auto hex = [](char h) {
          return h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
        };
        if (pos + 2 > p.size() || hex(p[pos]) < 0 || hex(p[pos + 1]) < 0) return fail("bad \\x escape", at - 1);
        s.set(static_cast<size_t>(hex(p[pos]) * 16 + hex(p[pos + 1])));
        pos += 2;
        break;
      }
      default:
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
          if (c == 'b' && in_class) {
            s.set('\b');
            break;
          }
          return fail(std::string("unsupported escape \\") + c, at - 1);
        }
        s.set(static_cast<unsigned char>(c));  // escaped punctuation stands for itself
    }
    return true;
  }

  bool parse_class(CharSet& s) {
    size_t open = pos - 1;
    bool negate = more() && p[pos] == '^';
    if (negate) ++pos;
    bool first = true;
    while (true) {
      if (!more()) return fail("unterminated character class", open);
      char c = p[pos];
      if (c == ']' && !first) {
        ++pos;
        break;
      }
      first = false;
      CharSet item;
      int lo = -1;
      if (c == '\\') {
        ++pos;
        if (!escape(item, true)) return false;
        if (item.count() == 1)
          for (int i = 0; i < 256; ++i)
            if (item[i]) lo = i;
      } else {
        lo = static_cast<unsigned char>(c);
        item.set(static_cast<size_t>(lo));
        ++pos;
      }
      // a range "a-z" (a '-' first or last is literal)
      if (lo >= 0 && pos + 1 < p.size() && p[pos] == '-' && p[pos + 1] != ']') {
        ++pos;
        int hi;
        if (p[pos] == '\\') {
          ++pos;
          CharSet h;
          if (!escape(h, true)) return false;
          if (h.count() != 1) return fail("bad class range", pos);
          hi = 0;
          for (int i = 0; i < 256; ++i)
            if (h[i]) hi = i;
        } else {
          hi = static_cast<unsigned char>(p[pos++]);
        }
        if (hi < lo) return fail("bad class range", pos - 1);
        item = range(lo, hi);
      }
      s |= item;
    }
    if (icase) s = fold(s);
    if (negate) s = ~s;
    return true;
  }

  bool parse_atom(Node& out) {
    size_t at = pos;
    char c = p[pos++];
    switch (c) {
      case '(': {
        bool capture = true;
        if (pos + 1 < p.size() && p[pos] == '?') {
          if (p[pos + 1] != ':') return fail("unsupported group (?" + std::string(1, p[pos + 1]), at);
          pos += 2;
          capture = false;
        }
        int cap = capture ? ++groups : 0;
        Node inner;
        if (!parse_alt(inner)) return false;
        if (!more() || p[pos] != ')') return fail("missing ')'", at);
        ++pos;
        if (!capture) {
          out = std::move(inner);
          return true;
        }
        out = make_node(Node::group);
        out.cap = cap;
        out.kids.push_back(std::move(inner));
        return true;
      }
      case ')': return fail("unbalanced ')'", at);
      case '[': out = make_node(Node::set); return parse_class(out.chars);
      case '.':
        out = make_node(Node::set);
        out.chars.set();
        if (multiline) out.chars.reset('\n');
        return true;
      case '^': out = make_node(Node::begin); return true;
      case '$': out = make_node(Node::end); return true;
      case '*':
      case '+':
      case '?': return fail("nothing to repeat", at);
      case '\\':
        if (more() && (p[pos] == 'b' || p[pos] == 'B')) {
          out = make_node(p[pos] == 'b' ? Node::word_boundary : Node::not_word_boundary);
          ++pos;
          return true;
        }
        out = make_node(Node::set);
        if (!escape(out.chars, false)) return false;
        if (icase) out.chars = fold(out.chars);
        return true;
      default:
        out = make_node(Node::set);
        out.chars.set(static_cast<unsigned char>(c));
        if (icase) out.chars = fold(out.chars);
        return true;
    }
  }
};

}  // namespace

struct Regex::Program {
  // split: both targets, x preferred; save: x is the capture slot (2 * group, + 1 for its end).
  enum Op : uint8_t { chars, split, jmp, match, begin, end, save, word_boundary, not_word_boundary };
  struct Inst {
    Op op;
    uint32_t x = 0, y = 0;  // split: both targets; jmp: x; chars: set index
  };
  size_t slots = 2;      // capture slots: 2 per group, group 0 the whole match
  std::vector<Inst> code;
  std::vector<CharSet> sets;
  std::string prefix;    // bytes every match starts with (a literal run before any choice), maybe none
  // A program that is the prefix and nothing else (group marks aside): each slot's offset in a match.
  bool literal = false;
  std::vector<int64_t> literal_slots;
  CharSet first;         // bytes a match can start with
  bool first_any = false;  // a match may start without consuming (anchor, empty, ...): no skipping
};

namespace {

struct Compiler {
  Regex::Program& prog;
  bool too_big = false;

  uint32_t emit(Regex::Program::Inst i) {
    if (prog.code.size() >= kMaxProgram) {
      too_big = true;
      return 0;
    }
    prog.code.push_back(i);
    return static_cast<uint32_t>(prog.code.size() - 1);
  }

  // A quantifier's split: into the body first when greedy, past it first when lazy.
  void prefer(uint32_t split, uint32_t body, uint32_t past, bool greedy) {
    prog.code[split].x = greedy ? body : past;
    prog.code[split].y = greedy ? past : body;
  }

  void compile(const Node& n) {
    if (too_big) return;
    using P = Regex::Program;
    switch (n.kind) {
      case Node::empty: break;
      case Node::begin: emit({P::begin, 0, 0}); break;
      case Node::end: emit({P::end, 0, 0}); break;
      case Node::word_boundary: emit({P::word_boundary, 0, 0}); break;
      case Node::not_word_boundary: emit({P::not_word_boundary, 0, 0}); break;
      case Node::group:
        emit({P::save, static_cast<uint32_t>(2 * n.cap), 0});
        compile(n.kids[0]);
        emit({P::save, static_cast<uint32_t>(2 * n.cap + 1), 0});
        prog.slots = std::max<size_t>(prog.slots, 2 * static_cast<size_t>(n.cap) + 2);
        break;
      case Node::set:
        prog.sets.push_back(n.chars);
        emit({P::chars, static_cast<uint32_t>(prog.sets.size() - 1), 0});
        break;
      case Node::concat:
        for (const auto& k : n.kids) compile(k);
        break;
      case Node::alt: {
        // split L1, next; L1: a; jmp end; next: split L2, ...
        std::vector<uint32_t> jumps;
        for (size_t i = 0; i < n.kids.size(); ++i) {
          if (i + 1 < n.kids.size()) {
            uint32_t s = emit({P::split, 0, 0});
            if (too_big) return;
            prog.code[s].x = s + 1;
            compile(n.kids[i]);
            jumps.push_back(emit({P::jmp, 0, 0}));
            if (too_big) return;
            prog.code[s].y = static_cast<uint32_t>(prog.code.size());
          } else {
            compile(n.kids[i]);
          }
        }
        for (uint32_t j : jumps)
          if (!too_big) prog.code[j].x = static_cast<uint32_t>(prog.code.size());
        break;
      }
      case Node::repeat: {
        const Node& k = n.kids[0];
        for (int i = 0; i < n.min && !too_big; ++i) compile(k);
        if (n.max == -1) {  // L: split body, out; body; jmp L
          uint32_t s = emit({P::split, 0, 0});
          if (too_big) return;
          compile(k);
          uint32_t j = emit({P::jmp, s, 0});
          if (too_big) return;
          (void)j;
          prefer(s, s + 1, static_cast<uint32_t>(prog.code.size()), n.greedy);
        } else {
          std::vector<uint32_t> splits;
          for (int i = n.min; i < n.max && !too_big; ++i) {
            uint32_t s = emit({P::split, 0, 0});
            if (too_big) return;
            splits.push_back(s);
            compile(k);
          }
          for (uint32_t s : splits)
            if (!too_big) prefer(s, s + 1, static_cast<uint32_t>(prog.code.size()), n.greedy);
        }
        break;
      }
    }
  }
};

bool is_word(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}
// \b: a word byte on one side of `at` and none on the other.
bool at_word_boundary(core::ByteView text, size_t at) {
  bool before = at > 0 && is_word(text[at - 1]);
  bool after = at < text.size() && is_word(text[at]);
  return before != after;
}

// Follows splits and jumps from `pc` (no byte consumed), adding the states reached to `list`.
struct ThreadList {
  std::vector<uint32_t> dense;
  std::vector<uint32_t> sparse;
  explicit ThreadList(size_t n) : sparse(n, UINT32_MAX) {}
  bool has(uint32_t pc) const { return sparse[pc] < dense.size() && dense[sparse[pc]] == pc; }
  void add(uint32_t pc) {
    sparse[pc] = static_cast<uint32_t>(dense.size());
    dense.push_back(pc);
  }
  void clear() { dense.clear(); }
};

}  // namespace

namespace {

// A pattern that is a plain string, its punctuation perhaps escaped, perhaps anchored at either end:
// searched without the VM. Anything else (classes, quantifiers, escapes like \d) is not.
bool plain_string(std::string_view p, std::string& text, bool& begin, bool& end) {
  auto alnum = [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  text.clear();
  size_t i = 0;
  begin = !p.empty() && p[0] == '^';
  if (begin) ++i;
  end = false;
  for (; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\') {
      if (i + 1 >= p.size() || alnum(p[i + 1])) return false;
      text.push_back(p[++i]);
    } else if (c == '$' && i + 1 == p.size()) {
      end = true;
    } else if (std::string_view(".[]()^$*+?{}|").find(c) != std::string_view::npos) {
      return false;
    } else {
      text.push_back(c);
    }
  }
  return true;
}

}  // namespace

core::Result<Regex> Regex::compile(std::string_view pattern, bool ignore_case, bool multiline) {
  Parser parser;
  parser.p = pattern;
  parser.icase = ignore_case;
  parser.multiline = multiline;
  Node root;
  bool ok = parser.parse_alt(root);
  if (ok && parser.more()) ok = parser.fail("unbalanced ')'", parser.pos);
  if (!ok) return core::make_error(parser.error + " at " + std::to_string(parser.error_at));
  auto prog = std::make_shared<Program>();
  Compiler c{*prog};
  c.compile(root);
  c.emit({Program::match, 0, 0});
  if (c.too_big) return core::make_error("pattern too large (over " + std::to_string(kMaxProgram) + " steps)");
  // The bytes a match can begin with, to skip ahead while no thread is alive.
  {
    ThreadList seen(prog->code.size());
    std::vector<uint32_t> stack{0};
    while (!stack.empty()) {
      uint32_t pc = stack.back();
      stack.pop_back();
      if (seen.has(pc)) continue;
      seen.add(pc);
      const auto& in = prog->code[pc];
      switch (in.op) {
        case Program::chars: prog->first |= prog->sets[in.x]; break;
        case Program::split:
          stack.push_back(in.y);
          stack.push_back(in.x);
          break;
        case Program::jmp: stack.push_back(in.x); break;
        case Program::save: stack.push_back(pc + 1); break;
        default: prog->first_any = true;  // match, begin, end: decided without a first byte
      }
    }
  }
  // The literal every match begins with: single-byte classes from the start, through group marks.
  prog->literal_slots.assign(prog->slots, -1);
  for (size_t pc = 0; pc < prog->code.size(); ++pc) {
    const auto& in = prog->code[pc];
    if (in.op == Program::save) {
      prog->literal_slots[in.x] = static_cast<int64_t>(prog->prefix.size());
      continue;
    }
    if (in.op == Program::match) prog->literal = true;
    if (in.op != Program::chars || prog->sets[in.x].count() != 1) break;
    for (int b = 0; b < 256; ++b)
      if (prog->sets[in.x][static_cast<size_t>(b)]) prog->prefix.push_back(static_cast<char>(b));
  }
  Regex r;
  r.pattern_ = std::string(pattern);
  r.ignore_case_ = ignore_case;
  r.multiline_ = multiline;
  r.plain_ = plain_string(pattern, r.literal_, r.anchored_begin_, r.anchored_end_) &&
             !(multiline && (r.anchored_begin_ || r.anchored_end_));  // (anchors at each line: the VM)
  r.prog_ = std::move(prog);
  return r;
}

bool Regex::search(core::ByteView text) const {
  if (pattern_.empty()) return true;
  if (plain_) {
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    auto same = [&](core::ByteView part) {
      if (!ignore_case_) return part == literal_;
      for (size_t i = 0; i < part.size(); ++i)
        if (lower(part[i]) != lower(literal_[i])) return false;
      return true;
    };
    size_t n = literal_.size();
    if (anchored_begin_ && anchored_end_) return text.size() == n && same(text);
    if (anchored_begin_) return text.size() >= n && same(text.substr(0, n));
    if (anchored_end_) return text.size() >= n && same(text.substr(text.size() - n));
    if (!ignore_case_) return text.find(literal_) != core::ByteView::npos;
    struct Hash {
      size_t operator()(char c) const { return static_cast<unsigned char>(c >= 'A' && c <= 'Z' ? c + 32 : c); }
    };
    auto eq = [lower](char a, char b) { return lower(a) == lower(b); };
    std::boyer_moore_horspool_searcher searcher(literal_.begin(), literal_.end(), Hash{}, eq);
    return std::search(text.begin(), text.end(), searcher) != text.end();
  }
  const Program& p = *prog_;
  ThreadList clist(p.code.size()), nlist(p.code.size());
  std::vector<uint32_t> stack;
  auto add = [&](ThreadList& list, uint32_t start, size_t at) {
    stack.push_back(start);
    while (!stack.empty()) {
      uint32_t pc = stack.back();
      stack.pop_back();
      if (list.has(pc)) continue;
      list.add(pc);
      const auto& in = p.code[pc];
      switch (in.op) {
        case Program::split:
          stack.push_back(in.y);
          stack.push_back(in.x);
          break;
        case Program::jmp: stack.push_back(in.x); break;
        case Program::save: stack.push_back(pc + 1); break;
        case Program::word_boundary:
        case Program::not_word_boundary:
          if (at_word_boundary(text, at) == (in.op == Program::word_boundary)) stack.push_back(pc + 1);
          break;
        case Program::begin:
          if (at == 0 || (multiline_ && text[at - 1] == '\n')) stack.push_back(pc + 1);
          break;
        case Program::end:
          if (at == text.size() ||
              (multiline_ && (text[at] == '\n' || (text[at] == '\r' && at + 1 < text.size() && text[at + 1] == '\n'))))
            stack.push_back(pc + 1);
          break;
        default: break;
      }
    }
  };
  auto matched = [&](const ThreadList& list) {
    for (uint32_t pc : list.dense)
      if (p.code[pc].op == Program::match) return true;
    return false;
  };
  for (size_t i = 0;; ++i) {
    if (clist.dense.empty() && !p.first_any) {  // nothing alive: skip to a byte a match can start with
      while (i < text.size() && !p.first[static_cast<unsigned char>(text[i])]) ++i;
    }
    add(clist, 0, i);
    if (matched(clist)) return true;
    if (i >= text.size()) return false;
    auto c = static_cast<unsigned char>(text[i]);
    nlist.clear();
    for (uint32_t pc : clist.dense) {
      const auto& in = p.code[pc];
      if (in.op == Program::chars && p.sets[in.x][c]) add(nlist, pc + 1, i + 1);
    }
    std::swap(clist, nlist);
    if (matched(clist)) return true;
  }
}

}  // namespace sluice::filter

namespace sluice::filter {

size_t Regex::groups() const { return prog_ ? prog_->slots / 2 - 1 : 0; }

std::optional<Regex::Match> Regex::find(core::ByteView text, size_t from) const {
  if (from > text.size()) return std::nullopt;
  const Program& p = *prog_;
  const size_t n = p.slots;
  if (plain_ && !multiline_) {
    size_t len = literal_.size();
    auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    auto same_at = [&](size_t at) {
      if (at + len > text.size()) return false;
      for (size_t i = 0; i < len; ++i)
        if (ignore_case_ ? lower(text[at + i]) != lower(literal_[i]) : text[at + i] != literal_[i]) return false;
      return true;
    };
    auto hit = [&](size_t at) {
      Match m;
      m.slots.assign(n, -1);
      m.slots[0] = static_cast<int64_t>(at);
      m.slots[1] = static_cast<int64_t>(at + len);
      return m;
    };
    if (anchored_begin_) {
      if (from == 0 && same_at(0) && (!anchored_end_ || len == text.size())) return hit(0);
      return std::nullopt;
    }
    if (anchored_end_) {
      if (text.size() >= len && text.size() - len >= from && same_at(text.size() - len)) return hit(text.size() - len);
      return std::nullopt;
    }
    if (!ignore_case_) {
      size_t at = text.find(literal_, from);
      if (at == core::ByteView::npos) return std::nullopt;
      return hit(at);
    }
    for (size_t at = from; at + len <= text.size(); ++at)
      if (same_at(at)) return hit(at);
    return std::nullopt;
  }
  if (p.literal && !p.prefix.empty()) {  // a literal with groups in it: found as a string
    size_t at = text.find(p.prefix, from);
    if (at == core::ByteView::npos) return std::nullopt;
    Match m;
    m.slots = p.literal_slots;
    for (auto& slot : m.slots)
      if (slot >= 0) slot += static_cast<int64_t>(at);
    m.slots[0] = static_cast<int64_t>(at);
    m.slots[1] = static_cast<int64_t>(at + p.prefix.size());
    return m;
  }
  // A Pike VM whose threads are kept in order of preference, each with its capture slots (by pc: a
  // state is in a list at most once, held by the most preferred thread that reached it).
  // The VM's memory, kept per thread between calls (a replacement calls find once per match).
  struct List {
    ThreadList pcs{0};
    std::vector<int64_t> caps;
    void reset(size_t code, size_t slots) {
      if (pcs.sparse.size() < code) pcs.sparse.assign(code, UINT32_MAX);
      pcs.clear();
      if (caps.size() < code * slots) caps.resize(code * slots);
    }
  };
  struct Item {
    bool restore;
    uint32_t pc_or_slot;
    int64_t value;
  };
  struct Scratch {
    List a, b;
    std::vector<Item> stack;
    std::vector<int64_t> caps;
  };
  thread_local Scratch scratch;
  scratch.a.reset(p.code.size(), n);
  scratch.b.reset(p.code.size(), n);
  scratch.stack.clear();
  scratch.caps.assign(n, -1);
  List* cur = &scratch.a;
  List* next = &scratch.b;
  auto& stack = scratch.stack;
  auto& caps = scratch.caps;
  auto add = [&](List& list, uint32_t start, size_t at) {
    stack.push_back({false, start, 0});
    while (!stack.empty()) {
      Item it = stack.back();
      stack.pop_back();
      if (it.restore) {
        caps[it.pc_or_slot] = it.value;
        continue;
      }
      uint32_t pc = it.pc_or_slot;
      if (list.pcs.has(pc)) continue;
      list.pcs.add(pc);
      const auto& in = p.code[pc];
      switch (in.op) {
        case Program::split:
          stack.push_back({false, in.y, 0});
          stack.push_back({false, in.x, 0});
          break;
        case Program::jmp: stack.push_back({false, in.x, 0}); break;
        case Program::save:
          stack.push_back({true, in.x, caps[in.x]});
          caps[in.x] = static_cast<int64_t>(at);
          stack.push_back({false, pc + 1, 0});
          break;
        case Program::word_boundary:
        case Program::not_word_boundary:
          if (at_word_boundary(text, at) == (in.op == Program::word_boundary)) stack.push_back({false, pc + 1, 0});
          break;
        case Program::begin:
          if (at == 0 || (multiline_ && text[at - 1] == '\n')) stack.push_back({false, pc + 1, 0});
          break;
        case Program::end:
          if (at == text.size() ||
              (multiline_ && (text[at] == '\n' || (text[at] == '\r' && at + 1 < text.size() && text[at + 1] == '\n'))))
            stack.push_back({false, pc + 1, 0});
          break;
        case Program::chars:
        case Program::match: std::copy(caps.begin(), caps.end(), list.caps.begin() + pc * n); break;
      }
    }
  };
  std::optional<Match> found;
  for (size_t i = from;; ++i) {
    if (!found) {
      if (cur->pcs.dense.empty() && p.prefix.size() > 1) {  // nothing alive: skip to where a match can start
        i = text.find(p.prefix, i);
        if (i == core::ByteView::npos) break;
      } else if (cur->pcs.dense.empty() && !p.first_any) {
        while (i < text.size() && !p.first[static_cast<unsigned char>(text[i])]) ++i;
        if (i >= text.size()) break;
      }
      std::fill(caps.begin(), caps.end(), -1);
      caps[0] = static_cast<int64_t>(i);
      add(*cur, 0, i);  // the least preferred: a match that starts later
    }
    if (cur->pcs.dense.empty()) break;
    next->pcs.clear();
    for (uint32_t pc : cur->pcs.dense) {
      const auto& in = p.code[pc];
      if (in.op == Program::match) {  // the threads after this one are less preferred: cut
        found.emplace();
        found->slots.assign(cur->caps.begin() + pc * n, cur->caps.begin() + (pc + 1) * n);
        found->slots[1] = static_cast<int64_t>(i);
        break;
      }
      if (in.op == Program::chars && i < text.size() && p.sets[in.x][static_cast<unsigned char>(text[i])]) {
        std::copy(cur->caps.begin() + pc * n, cur->caps.begin() + (pc + 1) * n, caps.begin());
        add(*next, pc + 1, i + 1);
      }
    }
    std::swap(cur, next);
    if (i >= text.size()) break;
  }
  return found;
}

}  // namespace sluice::filter
