#include "step/rules.hpp"

#include <algorithm>

#include "codec/grpc.hpp"
#include "core/ascii.hpp"
#include "core/json.hpp"
#include "filter/regex.hpp"
#include "layer/grpc.hpp"
#include "layer/http1_wire.hpp"
#include "layer/mode_spec.hpp"
#include "step/process_step.hpp"
#include "step/transform.hpp"

namespace sluice::step {

namespace {

enum class Proto : uint8_t { http, websocket, sse, grpc, raw };
enum class Dir : uint8_t { request, response, both };

struct Action {
  std::string kind;
  std::string name;     // a header, query, form or metadata name; a JSON Pointer; a file
  core::Bytes value;    // a header value, method, URL
  core::Value json;     // json_set
  int status = 0;       // set_status, block, answer
  std::string field;    // sse replace: data, event, id; websocket replace: text, binary, any
  std::optional<filter::Regex> regex;
  std::optional<Replacement> replacement;
};

constexpr std::string_view kProtocols[] = {"http", "websocket", "sse", "grpc", "raw"};

// The actions each protocol takes, and the members each action needs.
struct ActionSpec {
  Proto proto;
  std::string_view kind;
  std::vector<std::string_view> members;  // required; "pattern" and "replacement" compile together
  std::vector<std::string_view> optional = {};
};

const std::vector<ActionSpec>& action_specs() {
  static const std::vector<ActionSpec> specs = {
      {Proto::http, "set_header", {"name", "value"}},
      {Proto::http, "add_header", {"name", "value"}},
      {Proto::http, "remove_header", {"name"}},
      {Proto::http, "replace_body", {"pattern", "replacement"}},
      {Proto::http, "json_set", {"path", "value"}},
      {Proto::http, "json_delete", {"path"}},
      {Proto::http, "set_query", {"name", "value"}},
      {Proto::http, "remove_query", {"name"}},
      {Proto::http, "set_form", {"name", "value"}},
      {Proto::http, "remove_form", {"name"}},
      {Proto::http, "set_method", {"value"}},
      {Proto::http, "set_url", {"value"}},
      {Proto::http, "set_status", {"status"}},
      {Proto::http, "map_remote", {"pattern", "replacement"}},
      {Proto::http, "map_local", {"path"}, {"content_type"}},
      {Proto::http, "block", {"status"}},
      {Proto::websocket, "replace", {"pattern", "replacement"}, {"opcode"}},
      {Proto::websocket, "drop", {}},
      {Proto::sse, "replace", {"field", "pattern", "replacement"}},
      {Proto::sse, "drop", {}},
      {Proto::grpc, "set_metadata", {"name", "value"}},
      {Proto::grpc, "remove_metadata", {"name"}},
      {Proto::grpc, "replace", {"pattern", "replacement"}},
      {Proto::grpc, "answer", {"status"}, {"message"}},
      {Proto::raw, "replace", {"pattern", "replacement"}},
  };
  return specs;
}

std::string kinds_of(Proto p) {
  std::string out;
  for (const auto& s : action_specs())
    if (s.proto == p) out += (out.empty() ? "" : ", ") + std::string(s.kind);
  return out;
}

bool applies(Dir d, envelope::Direction e) {
  return d == Dir::both || (d == Dir::request) == (e == envelope::Direction::send);
}

// ---- HTTP helpers --------------------------------------------------------------------------------

bool unreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

std::string percent_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (unreserved(c)) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// "a=1&b=2" with NAME set to VALUE (the first pair of that name in its place, the others gone; else
// appended) or removed (`value` nullopt). Pairs are compared by their decoded names.
bool edit_pairs(std::string& text, const std::string& name, const std::optional<std::string>& value, bool form) {
  std::vector<std::string> pairs;
  size_t start = 0;
  while (start <= text.size() && !text.empty()) {
    size_t amp = text.find('&', start);
    pairs.push_back(text.substr(start, amp == std::string::npos ? std::string::npos : amp - start));
    if (amp == std::string::npos) break;
    start = amp + 1;
  }
  std::vector<std::string> out;
  bool placed = false;
  for (auto& p : pairs) {
    std::string key = url_unquote(p.substr(0, p.find('=')), form);
    if (key != name) {
      out.push_back(std::move(p));
      continue;
    }
    if (value && !placed) out.push_back(percent_encode(name) + "=" + percent_encode(*value));
    placed = true;
  }
  if (value && !placed) out.push_back(percent_encode(name) + "=" + percent_encode(*value));
  std::string joined;
  for (const auto& p : out) joined += (joined.empty() ? "" : "&") + p;
  if (joined == text) return false;
  text = std::move(joined);
  return true;
}

// The query of a path (origin or absolute form) edited.
bool edit_query(envelope::HttpMessage& m, const std::string& name, const std::optional<std::string>& value) {
  size_t q = m.path.find('?');
  std::string base = m.path.substr(0, q);
  std::string query = q == std::string::npos ? std::string() : m.path.substr(q + 1);
  if (!edit_pairs(query, name, value, false)) return false;
  m.path = query.empty() ? base : base + "?" + query;
  return true;
}

// RFC 6901: "/a/b/0" -> ["a", "b", "0"] with ~1 and ~0 undone.
std::vector<std::string> pointer_tokens(const std::string& pointer) {
  std::vector<std::string> tokens;
  size_t i = 1;
  while (i <= pointer.size()) {
    size_t slash = pointer.find('/', i);
    std::string t = pointer.substr(i, slash == std::string::npos ? std::string::npos : slash - i);
    std::string u;
    for (size_t k = 0; k < t.size(); ++k) {
      if (t[k] == '~' && k + 1 < t.size() && (t[k + 1] == '0' || t[k + 1] == '1')) {
        u.push_back(t[k + 1] == '0' ? '~' : '/');
        ++k;
      } else {
        u.push_back(t[k]);
      }
    }
    tokens.push_back(std::move(u));
    if (slash == std::string::npos) break;
    i = slash + 1;
  }
  return tokens;
}

std::optional<size_t> array_index(const std::string& t, size_t size, bool append_ok) {
  if (append_ok && t == "-") return size;
  if (t.empty() || t.size() > 9 || !std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      (t.size() > 1 && t[0] == '0'))
    return std::nullopt;
  size_t i = std::stoul(t);
  if (i > size || (i == size && !append_ok)) return std::nullopt;
  return i;
}

// json_set (`value`) or json_delete (nullptr) at a JSON Pointer; false when the path does not lead there.
bool edit_json(core::Value& doc, const std::vector<std::string>& tokens, const core::Value* value) {
  if (tokens.empty()) {
    if (!value) return false;
    doc = *value;
    return true;
  }
  core::Value* at = &doc;
  for (size_t k = 0; k + 1 < tokens.size(); ++k) {
    if (at->is_object()) {
      at = at->find(tokens[k]);
    } else if (at->is_array()) {
      auto i = array_index(tokens[k], at->as_array().size(), false);
      at = i ? &at->as_array()[*i] : nullptr;
    } else {
      at = nullptr;
    }
    if (!at) return false;
  }
  const std::string& last = tokens.back();
  if (at->is_object()) {
    auto& members = at->as_object();
    auto it = std::find_if(members.begin(), members.end(), [&](const core::Member& mm) { return mm.key == last; });
    if (!value) {
      if (it == members.end()) return false;
      members.erase(it);
    } else if (it != members.end()) {
      if (it->value == *value) return false;
      it->value = *value;
    } else {
      members.push_back({last, *value});
    }
    return true;
  }
  if (at->is_array()) {
    auto& items = at->as_array();
    auto i = array_index(last, items.size(), value != nullptr);
    if (!i) return false;
    if (!value) {
      items.erase(items.begin() + static_cast<std::ptrdiff_t>(*i));
    } else if (*i == items.size()) {
      items.push_back(*value);
    } else {
      if (items[*i] == *value) return false;
      items[*i] = *value;
    }
    return true;
  }
  return false;
}

bool replace_in(core::Bytes& text, const Action& a) {
  core::Bytes out;
  if (regex_sub(*a.regex, *a.replacement, text, out) == 0 || out == text) return false;
  text = std::move(out);
  return true;
}

}  // namespace

struct RuleFile::Rule {
  std::string name;
  std::optional<filter::Filter> filter;
  Proto proto = Proto::http;
  Dir dir = Dir::both;
  std::vector<Action> actions;
};

namespace {

core::Result<Action> parse_action(const core::Value& v, Proto proto) {
  if (!v.is_object()) return core::make_error("an action is a JSON object");
  const core::Value* kind = v.find("action");
  if (!kind || !kind->is_string()) return core::make_error("needs a string \"action\"");
  const ActionSpec* spec = nullptr;
  for (const auto& s : action_specs())
    if (s.proto == proto && s.kind == kind->as_string()) spec = &s;
  std::string proto_name(kProtocols[static_cast<int>(proto)]);
  if (!spec)
    return core::make_error("unknown action \"" + kind->as_string() + "\" for " + proto_name + " (one of: " +
                            kinds_of(proto) + ")");
  std::string prefix = "(" + kind->as_string() + "): ";
  for (const auto& m : v.as_object()) {
    bool known = m.key == "action" || std::find(spec->members.begin(), spec->members.end(), m.key) != spec->members.end() ||
                 std::find(spec->optional.begin(), spec->optional.end(), m.key) != spec->optional.end();
    if (!known) return core::make_error(prefix + "unknown member \"" + m.key + "\"");
  }
  Action a;
  a.kind = kind->as_string();
  for (std::string_view member : spec->members)
    if (!v.find(member)) return core::make_error(prefix + "needs \"" + std::string(member) + "\"");
  auto text = [&](std::string_view member, std::string& out) -> core::Result<void> {
    const core::Value* x = v.find(member);
    if (!x) return {};
    if (!x->is_string()) return core::make_error(prefix + "\"" + std::string(member) + "\" must be a string");
    out = x->as_string();
    return {};
  };
  auto status = [&](int lo, int hi) -> core::Result<void> {
    const core::Value* x = v.find("status");
    if (!x || !x->is_int() || x->as_int() < lo || x->as_int() > hi)
      return core::make_error(prefix + "\"status\" must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
    a.status = static_cast<int>(x->as_int());
    return {};
  };
  std::string pattern, replacement, path;
  // (each action has at most one of field/opcode and one of value/message/content_type: see action_specs)
  for (auto [member, out] : {std::pair<std::string_view, std::string*>{"name", &a.name}, {"field", &a.field},
                             {"pattern", &pattern}, {"replacement", &replacement}, {"path", &path},
                             {"opcode", &a.field}, {"message", &a.value}, {"content_type", &a.value}})
    if (auto r = text(member, *out); !r) return r.error();
  if (a.kind != "json_set")
    if (auto r = text("value", a.value); !r) return r.error();
  if (v.find("pattern")) {
    auto re = filter::Regex::compile(pattern, false);
    if (!re) return core::make_error(prefix + "invalid regular expression " + pattern + " (" + re.error().message + ")");
    auto repl = Replacement::parse(replacement, re->groups());
    if (!repl) return core::make_error(prefix + "invalid replacement " + replacement + " (" + repl.error().message + ")");
    a.regex = std::move(*re);
    a.replacement = std::move(*repl);
  }
  if (a.kind == "json_set" || a.kind == "json_delete") {
    if (!path.empty() && path[0] != '/') return core::make_error(prefix + "\"path\" is a JSON Pointer: empty or starting with /");
    a.name = path;
    if (a.kind == "json_set") a.json = *v.find("value");
  } else if (a.kind == "map_local") {
    if (auto r = read_file(path); !r) return core::make_error(prefix + r.error().message);
    a.name = path;
  } else if (a.kind == "set_status") {
    if (auto r = status(100, 599); !r) return r.error();
  } else if (a.kind == "block") {
    if (auto r = status(100, 599); !r) return r.error();
  } else if (a.kind == "answer") {
    if (auto r = status(0, 16); !r) return r.error();
  } else if (a.kind == "set_url") {
    if (auto u = layer::parse_absolute_url(a.value); !u) return core::make_error(prefix + u.error().message);
  } else if (a.kind == "set_method") {
    if (a.value.empty() || !std::all_of(a.value.begin(), a.value.end(), [](char c) { return c > 32 && c < 127; }))
      return core::make_error(prefix + "\"value\" must be a method token");
  } else if ((a.kind == "set_header" || a.kind == "add_header" || a.kind == "set_metadata") &&
             (a.name.empty() || a.value.find_first_of("\r\n") != std::string::npos ||
              a.name.find_first_of(" :\r\n\t") != std::string::npos)) {
    return core::make_error(prefix + "a field needs a name without spaces or colons and a value on one line");
  }
  if (proto == Proto::sse && a.kind == "replace" && a.field != "data" && a.field != "event" && a.field != "id")
    return core::make_error(prefix + "\"field\" is one of data, event, id");
  if (proto == Proto::websocket && a.kind == "replace") {
    if (a.field.empty()) a.field = "any";
    if (a.field != "text" && a.field != "binary" && a.field != "any")
      return core::make_error(prefix + "\"opcode\" is one of text, binary, any");
  }
  if (proto == Proto::grpc && a.kind == "answer") a.field = std::move(a.value);  // (the status message)
  if (a.kind == "map_local") a.field = std::move(a.value);                     // (the content type)
  return a;
}

}  // namespace

core::Result<std::shared_ptr<const RuleFile>> RuleFile::load(const std::string& path) {
  auto text = read_file(path);
  if (!text) return text.error();
  auto doc = core::json_parse(*text);
  if (!doc) return core::make_error(path + ": not JSON: " + doc.error().message);
  return parse(*doc, path);
}

core::Result<std::shared_ptr<const RuleFile>> RuleFile::parse(const core::Value& doc, const std::string& where) {
  auto file = std::make_shared<RuleFile>();
  const core::Value* rules = doc.is_object() ? doc.find("rules") : nullptr;
  if (!rules || !rules->is_array()) return core::make_error(where + ": a rule file is a JSON object with a \"rules\" array");
  for (const auto& m : doc.as_object())
    if (m.key != "rules" && m.key != "$schema" && m.key != "comment")
      return core::make_error(where + ": unknown member \"" + m.key + "\"");
  size_t n = 0;
  for (const auto& r : rules->as_array()) {
    ++n;
    Rule rule;
    rule.name = "rules#" + std::to_string(n);
    std::string at = where + ": rule " + std::to_string(n);
    if (!r.is_object()) return core::make_error(at + ": a rule is a JSON object");
    if (const auto* name = r.find("name")) {
      if (!name->is_string() || name->as_string().empty() || name->as_string().find(',') != std::string::npos)
        return core::make_error(at + ": \"name\" must be a string without commas");
      rule.name = name->as_string();
      at += " (" + rule.name + ")";
    }
    for (const auto& m : r.as_object())
      if (m.key != "name" && m.key != "filter" && m.key != "protocol" && m.key != "direction" && m.key != "actions" &&
          m.key != "comment")
        return core::make_error(at + ": unknown member \"" + m.key + "\"");
    if (const auto* p = r.find("protocol")) {
      auto it = p->is_string() ? std::find(std::begin(kProtocols), std::end(kProtocols), p->as_string()) : std::end(kProtocols);
      if (it == std::end(kProtocols))
        return core::make_error(at + ": \"protocol\" is one of http, websocket, sse, grpc, raw");
      rule.proto = static_cast<Proto>(it - std::begin(kProtocols));
    }
    if (const auto* d = r.find("direction")) {
      std::string dir = d->is_string() ? d->as_string() : "";
      if (dir != "request" && dir != "response" && dir != "both")
        return core::make_error(at + ": \"direction\" is one of request, response, both");
      rule.dir = dir == "request" ? Dir::request : dir == "response" ? Dir::response : Dir::both;
    }
    if (const auto* f = r.find("filter")) {
      if (!f->is_string()) return core::make_error(at + ": \"filter\" must be a string");
      auto parsed = filter::Filter::parse(f->as_string());
      if (!parsed) return core::make_error(at + ": bad filter: " + parsed.error().message);
      rule.filter = std::move(*parsed);
    }
    const auto* actions = r.find("actions");
    if (!actions || !actions->is_array() || actions->as_array().empty())
      return core::make_error(at + ": needs a non-empty \"actions\" array");
    size_t k = 0;
    for (const auto& av : actions->as_array()) {
      ++k;
      auto a = parse_action(av, rule.proto);
      if (!a) return core::make_error(at + ": action " + std::to_string(k) + " " + a.error().message);
      bool request_only = a->kind == "block" || a->kind == "map_local" || a->kind == "map_remote" ||
                          a->kind == "set_method" || a->kind == "set_url" || a->kind == "set_query" ||
                          a->kind == "remove_query" || a->kind == "answer";
      if (request_only && rule.dir == Dir::response)
        return core::make_error(at + ": action " + std::to_string(k) + " (" + a->kind + "): acts on requests only");
      if (a->kind == "set_status" && rule.dir == Dir::request)
        return core::make_error(at + ": action " + std::to_string(k) + " (set_status): acts on responses only");
      rule.actions.push_back(std::move(*a));
    }
    if (rule.filter && rule.proto == Proto::http && rule.dir != Dir::request) {
      file->responses_filtered_ = true;
      file->responses_read_bodies_ |= (rule.filter->needs() & filter::reads_bodies) != 0;
    }
    file->rules_.push_back(std::move(rule));
  }
  return std::shared_ptr<const RuleFile>(std::move(file));
}

size_t RuleFile::size() const { return rules_.size(); }

pipeline::Outcome RuleFile::apply_http(envelope::Envelope& env, bool head, const filter::FlowView& flow,
                                       pipeline::Reply& reply, std::vector<std::string_view>& applied) const {
  auto& m = std::get<envelope::HttpMessage>(env.message);
  bool request = m.kind == envelope::HttpMessage::Kind::request;
  for (const auto& rule : rules_) {
    if (rule.proto != Proto::http || !applies(rule.dir, env.direction)) continue;
    if (rule.filter && !rule.filter->matches(flow)) continue;
    bool changed = false;
    for (const auto& a : rule.actions) {
      const std::string& k = a.kind;
      bool body_action = k == "replace_body" || k == "json_set" || k == "json_delete" || k == "set_form" || k == "remove_form";
      if (head && body_action) continue;  // (a streamed message's body is not held)
      if (k == "block") {
        if (!request) continue;
        if (a.status == 444) return pipeline::Outcome::kill;
        reply = answer(env, a.status, {{"Server", "sluice"}}, {}, rule.name);
        reply->tags.emplace_back("blocklisted", rule.name);
        return pipeline::Outcome::respond;
      }
      if (k == "map_local") {
        if (!request) continue;
        auto contents = read_file(a.name);
        if (!contents) {
          reply = answer(env, 404, {{"Server", "sluice"}}, {}, rule.name);
          return pipeline::Outcome::respond;
        }
        std::string type = a.field.empty() ? mime_type_of(a.name) : a.field;
        envelope::Headers h{{"Server", "sluice"}};
        if (!type.empty()) h.push_back({"Content-Type", type});
        reply = answer(env, 200, std::move(h), std::move(*contents), rule.name);
        return pipeline::Outcome::respond;
      }
      if (k == "set_header") {
        auto before = m.headers;
        remove_headers(m.headers, a.name);
        m.headers.push_back({a.name, a.value});
        changed |= m.headers != before;
      } else if (k == "add_header") {
        m.headers.push_back({a.name, a.value});
        changed = true;
      } else if (k == "remove_header") {
        size_t n = m.headers.size();
        remove_headers(m.headers, a.name);
        changed |= m.headers.size() != n;
      } else if (k == "replace_body") {
        changed |= edit_body(m, [&](core::Bytes& b) { return replace_in(b, a); });
      } else if (k == "json_set" || k == "json_delete") {
        auto tokens = pointer_tokens(a.name);
        changed |= edit_body(m, [&](core::Bytes& b) {
          auto doc = core::json_parse(b);
          if (!doc || !edit_json(*doc, tokens, k == "json_set" ? &a.json : nullptr)) return false;
          b = core::json_write(*doc);
          return true;
        });
      } else if (k == "set_form" || k == "remove_form") {
        if (header_value(m.headers, "content-type").find("application/x-www-form-urlencoded") == std::string::npos) continue;
        std::optional<std::string> value = k == "set_form" ? std::optional<std::string>(a.value) : std::nullopt;
        changed |= edit_body(m, [&](core::Bytes& b) { return edit_pairs(b, a.name, value, true); });
      } else if (k == "set_query" || k == "remove_query") {
        if (!request) continue;
        changed |= edit_query(m, a.name, k == "set_query" ? std::optional<std::string>(a.value) : std::nullopt);
      } else if (k == "set_method") {
        if (!request || m.method == a.value) continue;
        m.method = a.value;
        changed = true;
      } else if (k == "set_url" || k == "map_remote") {
        if (!request) continue;
        std::string url = envelope::url_of(m);
        core::Bytes to;
        if (k == "set_url")
          to = a.value;
        else if (regex_sub(*a.regex, *a.replacement, url, to) == 0)
          continue;
        if (to == url || !set_url(m, to)) continue;
        changed = true;
      } else if (k == "set_status") {
        if (request || m.status == a.status) continue;
        m.status = a.status;
        m.reason = std::string(layer::reason_phrase(a.status));
        changed = true;
      }
    }
    if (changed) applied.push_back(rule.name);
  }
  return pipeline::Outcome::next;
}

pipeline::Outcome RuleFile::apply_unit(envelope::Envelope& env, pipeline::Reply& reply,
                                       std::vector<std::string_view>& applied) const {
  Proto proto;
  switch (env.protocol) {
    case envelope::Protocol::ws: proto = Proto::websocket; break;
    case envelope::Protocol::sse: proto = Proto::sse; break;
    case envelope::Protocol::grpc:
    case envelope::Protocol::grpc_web: proto = Proto::grpc; break;
    case envelope::Protocol::raw: proto = Proto::raw; break;
    default: return pipeline::Outcome::next;
  }
  if (!env.overlay.empty()) return pipeline::Outcome::next;
  std::optional<envelope::Envelope> original;  // what settle_change makes the bytes again from
  bool raw_changed = false;
  filter::FlowView flow;
  flow.envelopes.push_back(&env);
  for (const auto& rule : rules_) {
    if (rule.proto != proto || !applies(rule.dir, env.direction)) continue;
    if (rule.filter && !rule.filter->matches(flow)) continue;
    bool changed = false;
    for (const auto& a : rule.actions) {
      if (a.kind == "drop") {
        if (proto == Proto::websocket) {
          const auto* w = std::get_if<envelope::WsMessage>(&env.message);
          if (!w || w->opcode >= 8) continue;  // control frames go on
        }
        return pipeline::Outcome::drop;  // (recorded as it came, tagged verdict drop)
      }
      if (!original) original = env;
      if (auto* w = std::get_if<envelope::WsMessage>(&env.message)) {
        bool text = w->opcode == 1, binary = w->opcode == 2;
        if ((!text && !binary) || (a.field == "text" && !text) || (a.field == "binary" && !binary)) continue;
        changed |= replace_in(w->payload, a);
      } else if (auto* s = std::get_if<envelope::SseMessage>(&env.message)) {
        changed |= replace_in(a.field == "data" ? s->data : a.field == "event" ? s->event : s->id, a);
      } else if (auto* g = std::get_if<envelope::GrpcStartMessage>(&env.message)) {
        if (a.kind == "answer") {
          bool web = env.protocol == envelope::Protocol::grpc_web;
          envelope::Headers h{{"content-type", web ? "application/grpc-web+proto" : "application/grpc"},
                              {"grpc-status", std::to_string(a.status)}};
          if (!a.field.empty()) h.push_back({"grpc-message", percent_encode(a.field)});
          reply = answer(env, 200, std::move(h), {}, rule.name);
          return pipeline::Outcome::respond;
        }
        auto before = g->metadata;
        remove_headers(g->metadata, a.name);
        if (a.kind == "set_metadata") g->metadata.push_back({core::to_lower(a.name), a.value});
        changed |= g->metadata != before;
      } else if (auto* d = std::get_if<envelope::GrpcDataMessage>(&env.message)) {
        if (a.kind == "replace") changed |= replace_in(d->payload, a);
      } else if (auto* e = std::get_if<envelope::GrpcEndMessage>(&env.message)) {
        if (a.kind != "set_metadata" && a.kind != "remove_metadata") continue;
        auto before = e->trailers;
        remove_headers(e->trailers, a.name);
        if (a.kind == "set_metadata") e->trailers.push_back({core::to_lower(a.name), a.value});
        changed |= e->trailers != before;
      } else if (std::holds_alternative<envelope::RawMessage>(env.message)) {
        if (replace_in(env.raw, a)) changed = raw_changed = true;
      }
    }
    if (changed) applied.push_back(rule.name);
  }
  if (applied.empty() || !original) return pipeline::Outcome::next;
  std::string why;
  if (!settle_change(*original, env, raw_changed, why)) {
    env = std::move(*original);  // (a change that cannot go out: the unit goes as it came)
    applied.clear();
  }
  return pipeline::Outcome::next;
}

}  // namespace sluice::step
