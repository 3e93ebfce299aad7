#include "filter/expr.hpp"

#include <charconv>
#include <functional>

#include "codec/content.hpp"
#include "core/ascii.hpp"
#include "filter/regex.hpp"

namespace sluice::filter {

namespace {

using envelope::Envelope;
using envelope::HttpMessage;

const HttpMessage* http_of(const Envelope& e, HttpMessage::Kind kind) {
  if (e.protocol != envelope::Protocol::http || !e.overlay.empty() || e.modified) return nullptr;
  const auto* m = std::get_if<HttpMessage>(&e.message);
  return m && m->kind == kind ? m : nullptr;
}

const Envelope* request(const FlowView& f) {
  for (const auto* e : f.envelopes)
    if (http_of(*e, HttpMessage::Kind::request)) return e;
  return nullptr;
}

// The final response (1xx interim ones are skipped).
const Envelope* response(const FlowView& f) {
  const Envelope* last = nullptr;
  for (const auto* e : f.envelopes)
    if (const auto* m = http_of(*e, HttpMessage::Kind::response); m && (m->status >= 200 || m->status == 101)) last = e;
  return last;
}

const HttpMessage& http(const Envelope* e) { return std::get<HttpMessage>(e->message); }

// Headers as mitmproxy's header filters see them: "Name: value" lines, each ended by CR LF.
std::string header_text(const envelope::Headers& h) {
  std::string s;
  for (const auto& [k, v] : h) s += k + ": " + v + "\r\n";
  return s;
}

std::string_view content_type(const envelope::Headers& h) {
  for (const auto& [k, v] : h)
    if (core::iequals(k, "content-type")) return v;
  return {};
}

std::string_view host_of(const HttpMessage& m) {
  std::string_view a = m.authority;
  if (!a.empty() && a.front() == '[') return a.substr(1, a.find(']') - 1);
  return a.substr(0, a.rfind(':') == std::string_view::npos || a.find(':') != a.rfind(':') ? a.size() : a.rfind(':'));
}


// The bytes of a message's body or payload, for ~b.
core::ByteView body_of(const Envelope& e);

// Whether `r` finds a match in the body of `e`: an HTTP body with its content codings undone (gzip,
// deflate, br, zstd), as mitmproxy matches them; as recorded when they do not decode.
bool search_body(const Regex& r, const Envelope& e) {
  core::ByteView body = body_of(e);
  if (const auto* m = std::get_if<HttpMessage>(&e.message); m && !body.empty()) {
    for (const auto& [k, v] : m->headers)
      if (core::iequals(k, "content-encoding")) {
        constexpr size_t kMaxDecoded = 64u << 20;  // a bomb is matched as it was recorded
        if (auto decoded = codec::decode_content(body, v, kMaxDecoded)) return r.search(*decoded);
        break;
      }
  }
  return r.search(body);
}

core::ByteView body_of(const Envelope& e) {
  return std::visit(
      [&](const auto& m) -> core::ByteView {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, HttpMessage>) return m.body;
        else if constexpr (std::is_same_v<T, envelope::WsMessage>) return m.payload;
        else if constexpr (std::is_same_v<T, envelope::GrpcDataMessage>) return m.payload;
        else if constexpr (std::is_same_v<T, envelope::SseMessage>) return m.data;
        else if constexpr (std::is_same_v<T, envelope::RawMessage>) return e.raw;
        else return {};
      },
      e.message);
}

}  // namespace

struct Filter::Node {
  enum Kind : uint8_t { op_not, op_and, op_or, leaf } kind = leaf;
  std::vector<std::shared_ptr<const Node>> kids;
  std::function<bool(const FlowView&)> test;
};

namespace {

struct Token {
  enum Kind : uint8_t { op, bang, amp, bar, lparen, rparen, word, end } kind = end;
  std::string text;
  size_t column = 0;  // 1-based
};

struct Lexer {
  std::string_view s;
  size_t pos = 0;
  std::string error;

  bool is_space(char c) const { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

  Token next() {
    while (pos < s.size() && is_space(s[pos])) ++pos;
    Token t;
    t.column = pos + 1;
    if (pos >= s.size()) return t;
    char c = s[pos];
    if (c == '!') return ++pos, t.kind = Token::bang, t;
    if (c == '&') return ++pos, t.kind = Token::amp, t;
    if (c == '|') return ++pos, t.kind = Token::bar, t;
    if (c == '(') return ++pos, t.kind = Token::lparen, t;
    if (c == ')') return ++pos, t.kind = Token::rparen, t;
    if (c == '~') {
      size_t start = pos++;
      while (pos < s.size() && ((s[pos] >= 'a' && s[pos] <= 'z') || (s[pos] >= 'A' && s[pos] <= 'Z'))) ++pos;
      t.kind = Token::op;
      t.text = std::string(s.substr(start, pos - start));
      return t;
    }
    t.kind = Token::word;
    if (c == '"' || c == '\'') {
      ++pos;
      while (pos < s.size() && s[pos] != c) {
        if (s[pos] == '\\' && pos + 1 < s.size() && (s[pos + 1] == c || s[pos + 1] == '\\')) ++pos;
        t.text.push_back(s[pos++]);
      }
      if (pos >= s.size()) {
        error = std::string("unterminated quote at column ") + std::to_string(t.column);
        t.kind = Token::end;
        return t;
      }
      ++pos;
      return t;
    }
    // Unquoted: up to whitespace or one of ( ) ~ ' " (mitmproxy's rule).
    while (pos < s.size() && !is_space(s[pos]) && std::string_view("()~'\"").find(s[pos]) == std::string_view::npos)
      t.text.push_back(s[pos++]);
    return t;
  }
};

using NodeP = std::shared_ptr<const Filter::Node>;

struct Parser {
  Lexer lex;
  Token tok;
  std::string error;
  uint32_t needs = 0;  // Reads bits of every leaf

  void advance() {
    tok = lex.next();
    if (!lex.error.empty() && error.empty()) error = lex.error;
  }
  bool fail(std::string message) {
    if (error.empty()) error = std::move(message);
    return false;
  }

  NodeP leaf(std::function<bool(const FlowView&)> f) {
    auto n = std::make_shared<Filter::Node>();
    n->test = std::move(f);
    return n;
  }
  NodeP combine(Filter::Node::Kind kind, NodeP a, NodeP b) {
    auto n = std::make_shared<Filter::Node>();
    n->kind = kind;
    n->kids = {std::move(a), std::move(b)};
    return n;
  }

  bool starts_unary() const {
    return tok.kind == Token::op || tok.kind == Token::bang || tok.kind == Token::lparen || tok.kind == Token::word;
  }

  // Filters side by side mean "and", binding most loosely (as mitmproxy's grammar: "~a ~b | ~c" is
  // "~a & (~b | ~c)"); then |, then &, then !.
  bool parse_all(NodeP& out) {
    if (!parse_or(out)) return false;
    while (starts_unary()) {
      NodeP rhs;
      if (!parse_or(rhs)) return false;
      out = combine(Filter::Node::op_and, out, rhs);
    }
    return true;
  }

  bool parse_or(NodeP& out) {
    if (!parse_and(out)) return false;
    while (tok.kind == Token::bar) {
      advance();
      NodeP rhs;
      if (!parse_and(rhs)) return false;
      out = combine(Filter::Node::op_or, out, rhs);
    }
    return true;
  }

  bool parse_and(NodeP& out) {
    if (!parse_unary(out)) return false;
    while (tok.kind == Token::amp) {
      advance();
      NodeP rhs;
      if (!parse_unary(rhs)) return false;
      out = combine(Filter::Node::op_and, out, rhs);
    }
    return true;
  }

  bool parse_unary(NodeP& out) {
    if (!error.empty()) return false;
    if (tok.kind == Token::bang) {
      advance();
      NodeP inner;
      if (!parse_unary(inner)) return false;
      auto n = std::make_shared<Filter::Node>();
      n->kind = Filter::Node::op_not;
      n->kids = {inner};
      out = n;
      return true;
    }
    if (tok.kind == Token::lparen) {
      size_t col = tok.column;
      advance();
      if (!parse_all(out)) return false;
      if (tok.kind != Token::rparen) return fail("unbalanced '(' at column " + std::to_string(col));
      advance();
      return true;
    }
    if (tok.kind == Token::word) {  // a bare regex: the URL
      Token w = tok;
      advance();
      return regex_leaf("~u", w, out);
    }
    if (tok.kind == Token::op) return parse_op(out);
    if (tok.kind == Token::rparen) return fail("unexpected ')' at column " + std::to_string(tok.column));
    if (tok.kind == Token::end) return fail(tok.column == 1 ? "empty expression" : "expression ends too soon");
    return fail("expected a filter at column " + std::to_string(tok.column));
  }

  bool value(const Token& op, Token& out) {
    advance();
    if (tok.kind != Token::word)
      return fail("'" + op.text + "' needs a value at column " + std::to_string(tok.column));
    out = tok;
    advance();
    return true;
  }

  bool regex_leaf(const std::string& op, const Token& value, NodeP& out) {
    // Header filters anchor at each line, and `.` stays within one (re.MULTILINE, as mitmproxy's).
    bool lines = op == "~h" || op == "~hq" || op == "~hs";
    auto re = Regex::compile(value.text, true, lines);
    if (!re) return fail("bad regular expression for '" + op + "' at column " + std::to_string(value.column) + ": " +
                         re.error().message);
    Regex r = std::move(*re);
    std::function<bool(const FlowView&)> f;
    auto any_request = [](auto pred) {
      return [pred](const FlowView& fl) {
        const Envelope* q = request(fl);
        return q && pred(http(q));
      };
    };
    if (op == "~u") {
      f = any_request([r](const HttpMessage& m) { return r.search(envelope::url_of(m)); });
    } else if (op == "~d") {
      f = any_request([r](const HttpMessage& m) { return r.search(host_of(m)); });
    } else if (op == "~m") {
      f = any_request([r](const HttpMessage& m) { return r.search(m.method); });
    } else if (op == "~h" || op == "~hq" || op == "~hs") {
      needs |= reads_headers;
      bool q = op != "~hs", s = op != "~hq";
      f = [r, q, s](const FlowView& fl) {
        const Envelope* a = q ? request(fl) : nullptr;
        const Envelope* b = s ? response(fl) : nullptr;
        return (a && r.search(header_text(http(a).headers))) || (b && r.search(header_text(http(b).headers)));
      };
    } else if (op == "~t" || op == "~tq" || op == "~ts") {
      needs |= reads_headers;
      bool q = op != "~ts", s = op != "~tq";
      f = [r, q, s](const FlowView& fl) {
        const Envelope* a = q ? request(fl) : nullptr;
        const Envelope* b = s ? response(fl) : nullptr;
        return (a && r.search(content_type(http(a).headers))) || (b && r.search(content_type(http(b).headers)));
      };
    } else if (op == "~b" || op == "~bq" || op == "~bs") {
      needs |= reads_bodies | reads_headers;  // (Content-Encoding says how to decode a body)
      bool q = op != "~bs", s = op != "~bq";
      f = [r, q, s](const FlowView& fl) {
        for (const auto* e : fl.envelopes) {
          if (e->modified || !e->overlay.empty()) continue;
          bool from_client = e->direction == envelope::Direction::send;
          if ((from_client ? q : s) && search_body(r, *e)) return true;
        }
        return false;
      };
    } else if (op == "~src" || op == "~dst") {
      needs |= reads_context;
      bool src = op == "~src";
      f = [r, src](const FlowView& fl) {
        return !fl.envelopes.empty() && r.search(src ? fl.envelopes[0]->context.client : fl.envelopes[0]->context.server);
      };
    } else if (op == "~grpc") {
      f = [r](const FlowView& fl) {
        for (const auto* e : fl.envelopes)
          if (const auto* g = std::get_if<envelope::GrpcStartMessage>(&e->message); g && r.search(g->service + "/" + g->method))
            return true;
        return false;
      };
    } else if (op == "~anomaly") {
      f = [r](const FlowView& fl) {
        for (const auto* e : fl.envelopes)
          for (const auto& a : e->anomalies)
            if (r.search(a.name)) return true;
        return false;
      };
    }
    out = leaf(std::move(f));
    return true;
  }

  bool parse_op(NodeP& out) {
    Token op = tok;
    static const std::vector<std::string> kRegexOps = {"~b",  "~bq", "~bs", "~d",  "~dst", "~h",    "~hq",     "~hs",
                                                       "~m",  "~src", "~t", "~tq", "~ts",  "~u",    "~grpc", "~anomaly"};
    if (std::find(kRegexOps.begin(), kRegexOps.end(), op.text) != kRegexOps.end()) {
      Token v;
      return value(op, v) && regex_leaf(op.text, v, out);
    }
    auto no_arg = [&](std::function<bool(const FlowView&)> f) {
      advance();
      out = leaf(std::move(f));
      return true;
    };
    if (op.text == "~all") return no_arg([](const FlowView&) { return true; });
    if (op.text == "~http")
      return no_arg([](const FlowView& f) {
        for (const auto* e : f.envelopes)
          if (e->protocol == envelope::Protocol::http) return true;
        return false;
      });
    auto has_protocol = [](envelope::Protocol p) {
      return [p](const FlowView& f) {
        for (const auto* e : f.envelopes)
          if (e->protocol == p) return true;
        return false;
      };
    };
    if (op.text == "~tcp") return no_arg(has_protocol(envelope::Protocol::raw));
    if (op.text == "~websocket") return no_arg(has_protocol(envelope::Protocol::ws));
    if (op.text == "~q") return no_arg([](const FlowView& f) { return request(f) && !response(f); });
    if (op.text == "~s") return no_arg([](const FlowView& f) { return response(f) != nullptr; });
    if (op.text == "~e") return no_arg([](const FlowView& f) { return !f.errors.empty(); });
    if (op.text == "~replay")
      return no_arg([](const FlowView& f) {
        for (const auto* e : f.envelopes)
          for (const auto& [k, v] : e->tags)
            if (k == "replay_of") return true;
        return false;
      });
    if (op.text == "~a") {
      needs |= reads_headers;
      return no_arg([](const FlowView& f) {
        const Envelope* r = response(f);
        if (!r) return false;
        std::string_view t = content_type(http(r).headers);
        for (std::string_view kind : {"javascript", "css", "image", "font"})
          if (core::to_lower(t).find(kind) != std::string::npos) return true;
        return false;
      });
    }
    if (op.text == "~c") {
      Token v;
      if (!value(op, v)) return false;
      int code = 0;
      auto [p, ec] = std::from_chars(v.text.data(), v.text.data() + v.text.size(), code);
      if (ec != std::errc() || p != v.text.data() + v.text.size() || code < 100 || code > 999)
        return fail("'~c' needs a status code at column " + std::to_string(v.column) + ", got '" + v.text + "'");
      out = leaf([code](const FlowView& f) {
        const Envelope* r = response(f);
        return r && http(r).status == code;
      });
      return true;
    }
    if (op.text == "~proto") {
      Token v;
      if (!value(op, v)) return false;
      std::string name = core::to_lower(v.text);
      static const std::vector<std::string> kProtocols = {"http", "ws", "grpc", "grpc-web", "sse", "raw", "tls-handshake"};
      if (std::find(kProtocols.begin(), kProtocols.end(), name) == kProtocols.end())
        return fail("unknown protocol '" + v.text + "' at column " + std::to_string(v.column) +
                    " (http, ws, grpc, grpc-web, sse, raw, tls-handshake)");
      out = leaf([name](const FlowView& f) {
        for (const auto* e : f.envelopes)
          if ((e->protocol == envelope::Protocol::other ? e->protocol_name : std::string(envelope::to_string(e->protocol))) ==
              name)
            return true;
        return false;
      });
      return true;
    }
    if (op.text == "~tag") {
      Token v;
      if (!value(op, v)) return false;
      size_t eq = v.text.find('=');
      std::string key = v.text.substr(0, eq);
      std::optional<std::string> want;
      if (eq != std::string::npos) want = v.text.substr(eq + 1);
      out = leaf([key, want](const FlowView& f) {
        for (const auto* e : f.envelopes)
          for (const auto& [k, val] : e->tags)
            if (k == key && (!want || val == *want)) return true;
        return false;
      });
      return true;
    }
    if (op.text == "~variant") {
      Token v;
      if (!value(op, v)) return false;
      if (v.text != "modified" && v.text != "original")
        return fail("'~variant' takes modified or original at column " + std::to_string(v.column));
      bool modified = v.text == "modified";
      out = leaf([modified](const FlowView& f) {
        for (const auto* e : f.envelopes)
          if (e->modified == modified) return true;
        return false;
      });
      return true;
    }
    return fail("unknown operator '" + op.text + "' at column " + std::to_string(op.column));
  }
};

bool eval(const Filter::Node& n, const FlowView& f) {
  switch (n.kind) {
    case Filter::Node::op_not: return !eval(*n.kids[0], f);
    case Filter::Node::op_and: return eval(*n.kids[0], f) && eval(*n.kids[1], f);
    case Filter::Node::op_or: return eval(*n.kids[0], f) || eval(*n.kids[1], f);
    case Filter::Node::leaf: return n.test(f);
  }
  return false;
}

}  // namespace

core::Result<Filter> Filter::parse(std::string_view text) {
  Parser p;
  p.lex.s = text;
  p.advance();
  NodeP root;
  bool ok = p.error.empty() && p.parse_all(root);
  if (ok && p.tok.kind != Token::end) {
    ok = p.fail(p.tok.kind == Token::rparen ? "unexpected ')' at column " + std::to_string(p.tok.column)
                                            : "unexpected text at column " + std::to_string(p.tok.column));
  }
  if (!ok) return core::make_error(p.error.empty() ? "bad expression" : p.error);
  Filter f;
  f.root_ = std::move(root);
  f.needs_ = p.needs;
  return f;
}

bool Filter::matches(const FlowView& flow) const { return eval(*root_, flow); }

}  // namespace sluice::filter
