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
  enum Kind : uint8_t { set, concat, alt, repeat, empty, begin, end } kind = empty;
  CharSet chars;
  std::vector<Node> kids;
  int min = 0, max = -1;  // repeat: max -1 = unbounded
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
      if (more() && p[pos] == '?') ++pos;  // lazy: the same for a yes/no search
      if (out.kind == Node::begin || out.kind == Node::end || out.kind == Node::empty)
        return fail("nothing to repeat", atom_at);
      Node r = make_node(Node::repeat);
      r.min = min;
      r.max = max;
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
        if (pos + 1 < p.size() && p[pos] == '?') {
          if (p[pos + 1] != ':') return fail("unsupported group (?" + std::string(1, p[pos + 1]), at);
          pos += 2;
        }
        if (!parse_alt(out)) return false;
        if (!more() || p[pos] != ')') return fail("missing ')'", at);
        ++pos;
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
  enum Op : uint8_t { chars, split, jmp, match, begin, end };
  struct Inst {
    Op op;
    uint32_t x = 0, y = 0;  // split: both targets; jmp: x; chars: set index
  };
  std::vector<Inst> code;
  std::vector<CharSet> sets;
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

  void compile(const Node& n) {
    if (too_big) return;
    using P = Regex::Program;
    switch (n.kind) {
      case Node::empty: break;
      case Node::begin: emit({P::begin, 0, 0}); break;
      case Node::end: emit({P::end, 0, 0}); break;
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
          prog.code[s].x = s + 1;
          compile(k);
          uint32_t j = emit({P::jmp, s, 0});
          if (too_big) return;
          (void)j;
          prog.code[s].y = static_cast<uint32_t>(prog.code.size());
        } else {
          std::vector<uint32_t> splits;
          for (int i = n.min; i < n.max && !too_big; ++i) {
            uint32_t s = emit({P::split, 0, 0});
            if (too_big) return;
            prog.code[s].x = s + 1;
            splits.push_back(s);
            compile(k);
          }
          for (uint32_t s : splits)
            if (!too_big) prog.code[s].y = static_cast<uint32_t>(prog.code.size());
        }
        break;
      }
    }
  }
};

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
        default: prog->first_any = true;  // match, begin, end: decided without a first byte
      }
    }
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
