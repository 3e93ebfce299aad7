#include "step/safety.hpp"

#include <sys/stat.h>

#include <algorithm>

#include "codec/content.hpp"
#include "core/ascii.hpp"
#include "core/base64.hpp"
#include "core/time.hpp"
#include "layer/http1_wire.hpp"
#include "step/process_step.hpp"
#include "step/transform.hpp"

namespace sluice::step {

namespace {

constexpr size_t kMaxDecoded = size_t{64} << 20;  // a body decoded to be judged (a bomb stops there)
constexpr size_t kMinBase64 = 8;  // base64 runs shorter than this are not decoded

struct Builtin {
  const char* preset;
  const char* name;
  const char* regex;
  bool without_where;
};

// Patterns on the normalized text: lower case, SQL comments and runs of white space one space.
constexpr Builtin kBuiltins[] = {
    {"destructive-sql", "sql_drop", R"re(\bdrop (table|database|schema|index|view|user|procedure|function|trigger|sequence)\b)re", false},
    {"destructive-sql", "sql_truncate", R"re(\btruncate table\b|\btruncate [\w.`"\[\]]+ ?(;|$|--|"|\}))re", false},
    {"destructive-sql", "sql_alter", R"re(\balter (table|database|schema|user)\b)re", false},
    {"destructive-sql", "sql_delete_without_where", R"re(\bdelete from [\w.`"\[\]]+ ?(;|$|--|\)|'|"|\}))re", true},
    {"destructive-sql", "sql_update_without_where", R"re(\bupdate [\w.`"\[\]]+ set [\w.`"\[\]]+ ?=)re", true},
    {"destructive-sql", "sql_xp_cmdshell", R"re(\bxp_cmdshell\b)re", false},
    {"destructive-sql", "sql_shutdown", R"re((^|;) ?shutdown( with nowait)? ?(;|$))re", false},
    {"destructive-os-command", "rm_recursive_force",
     R"re(\brm (-\w+ )*-\w*(rf|fr)\w*\b|\brm -r -f\b|\brm -f -r\b|\brm (--recursive|--force|-r|-f) (--recursive|--force)\b|\brm (-\w+ )*-\w*r\w* /(\*|[ ;&|"'`)}]|$))re",
     false},
    {"destructive-os-command", "mkfs", R"re(\bmkfs(\.\w+)? (-\w+ )*/dev/)re", false},
    {"destructive-os-command", "dd_to_device", R"re(\bdd [^;|&]*\bof=/dev/)re", false},
    {"destructive-os-command", "write_to_device", R"re(> ?/dev/(sd|hd|nvme|xvd|vd|mmcblk|disk))re", false},
    {"destructive-os-command", "shutdown",
     R"re((^|[;&|`(="']|\$\() ?(sudo )?(shutdown|reboot|halt|poweroff)( ?($|[;&|`)"'}])| now\b| \+\d+)|\b(shutdown|reboot|halt|poweroff) -\w+|\bshutdown (now|\+\d+)\b|\bsudo (shutdown|reboot|halt|poweroff)\b)re",
     false},
    {"destructive-os-command", "init_runlevel", R"re(\b(init|telinit) [06]\b)re", false},
    {"destructive-os-command", "fork_bomb", R"re(: ?\( ?\) ?\{ ?: ?\| ?: ?& ?\} ?; ?:)re", false},
    {"destructive-os-command", "chmod_chown_root", R"re(\bchmod (-\w+ )*[0-7]*777 /([ ;&|"'`)}]|$)|\bchown (-\w+ )*-r [^ ]+ /([ ;&|"'`)}]|$))re", false},
    {"destructive-os-command", "wipe_device", R"re(\bwipefs\b|\bshred [^;|&]*/dev/)re", false},
    {"destructive-os-command", "windows_wipe", R"re(\bformat [a-z]:|\bdel (/\w )*/[sq]\b|\b(rd|rmdir) (/\w )*/s\b)re", false},
    {"destructive-os-command", "kill_all", R"re(\bkill -9 -1\b)re", false},
    {"destructive-os-command", "crontab_remove", R"re(\bcrontab -r\b)re", false},
    {"destructive-os-command", "mv_to_null", R"re(\bmv [^ ;|&]+ /dev/null\b)re", false},
};

bool space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }

// Lower case, SQL comments (/* ... */) as one space, runs of white space as one space.
std::string normalize(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '/' && i + 1 < text.size() && text[i + 1] == '*') {
      size_t end = text.find("*/", i + 2);
      i = end == std::string_view::npos ? text.size() : end + 1;
      c = ' ';
    }
    if (space(c)) {
      if (!out.empty() && out.back() != ' ') out += ' ';
      continue;
    }
    out += c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
  }
  return out;
}

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = static_cast<char>(c | 0x20);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

std::optional<std::string> url_decoded(std::string_view t) {
  if (t.find('%') == std::string_view::npos && t.find('+') == std::string_view::npos) return std::nullopt;
  return url_unquote(t, true);
}

std::optional<std::string> json_unescaped(std::string_view t) {
  if (t.find('\\') == std::string_view::npos) return std::nullopt;
  std::string out;
  out.reserve(t.size());
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] != '\\' || i + 1 >= t.size()) {
      out += t[i];
      continue;
    }
    char c = t[++i];
    switch (c) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'u': {
        int v = 0;
        bool ok = i + 4 < t.size();
        for (size_t k = 1; ok && k <= 4; ++k) ok = hex(t[i + k]) >= 0 && ((v = v * 16 + hex(t[i + k])), true);
        if (ok && v < 0x80) {
          out += static_cast<char>(v);
          i += 4;
        } else {
          out += "\\u";
        }
        break;
      }
      default: out += c;  // \" \\ \/ and anything else: the character
    }
  }
  return out;
}

bool b64char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' ||
         c == '-' || c == '_';
}

// Each run of base64 (standard or URL-safe) that decodes to mostly printable text.
std::vector<std::string> base64_texts(std::string_view t) {
  std::vector<std::string> out;
  for (size_t i = 0; i < t.size();) {
    if (!b64char(t[i])) {
      ++i;
      continue;
    }
    size_t s = i;
    while (i < t.size() && b64char(t[i])) ++i;
    if (i - s < kMinBase64) continue;
    std::string run(t.substr(s, i - s));
    for (auto& c : run) c = c == '-' ? '+' : c == '_' ? '/' : c;
    run.resize(run.size() / 4 * 4 + (run.size() % 4 ? 4 : 0), '=');
    if (run.size() % 4 == 0 && run.ends_with("===")) continue;
    auto decoded = core::base64_decode(run);
    if (!decoded || decoded->size() < 6) continue;
    size_t printable = std::count_if(decoded->begin(), decoded->end(), [](char c) {
      return (c >= 0x20 && c < 0x7f) || space(c);
    });
    if (printable * 10 >= decoded->size() * 9) out.push_back(std::move(*decoded));
  }
  return out;
}

std::optional<SafetyHit> match(const SafetyPolicy& policy, std::string_view text) {
  std::string n = normalize(text);
  for (const auto& rule : policy.rules)
    for (size_t from = 0; from <= n.size();) {
      auto m = rule.regex.find(n, from);
      if (!m) break;
      if (rule.without_where) {
        size_t end = n.find(';', m->end());
        std::string_view statement(n.data() + m->begin(), (end == std::string::npos ? n.size() : end) - m->begin());
        bool where = false;
        for (size_t p = 0; (p = statement.find("where", p)) != std::string_view::npos; p += 5)
          where = where || ((p == 0 || !std::isalnum(static_cast<unsigned char>(statement[p - 1]))) &&
                            (p + 5 >= statement.size() || !std::isalnum(static_cast<unsigned char>(statement[p + 5]))));
        if (where) {
          from = std::max(m->end(), m->begin() + 1);
          continue;
        }
      }
      SafetyHit hit;
      hit.rule = rule.name;
      hit.excerpt = n.substr(m->begin(), std::min<size_t>(80, m->end() - m->begin()));
      return hit;
    }
  return std::nullopt;
}

std::optional<SafetyHit> judge_layers(const SafetyPolicy& policy, std::string_view text, const std::string& encoding,
                                      int depth) {
  if (auto hit = match(policy, text)) {
    hit->encoding = encoding;
    return hit;
  }
  if (depth == 0) return std::nullopt;
  auto label = [&](const char* what) { return encoding.empty() ? std::string(what) : encoding + ", " + what; };
  if (auto u = url_decoded(text))
    if (auto hit = judge_layers(policy, *u, label("url-encoded"), depth - 1)) return hit;
  if (auto j = json_unescaped(text))
    if (auto hit = judge_layers(policy, *j, label("JSON-encoded"), depth - 1)) return hit;
  for (const auto& b : base64_texts(text))
    if (auto hit = judge_layers(policy, b, label("base64"), depth - 1)) return hit;
  return std::nullopt;
}

std::optional<SafetyHit> judge_fields(const SafetyPolicy& policy, const envelope::Headers& fields, const char* what) {
  for (const auto& h : fields)
    if (auto hit = safety_judge_text(policy, h.value, std::string(what) + " " + h.name)) return hit;
  return std::nullopt;
}

core::Result<void> add_presets(SafetyPolicy& policy, std::string_view list, const std::string& where) {
  for (size_t p = 0; p <= list.size();) {
    size_t c = std::min(list.find(',', p), list.size());
    std::string name(core::trim_ows(list.substr(p, c - p)));
    p = c + 1;
    if (name != "default" && name != "destructive-sql" && name != "destructive-os-command")
      return core::make_error(where + "no preset named '" + name + "' (known: default, destructive-sql, destructive-os-command)");
    for (const auto& b : kBuiltins) {
      if (name != "default" && name != b.preset) continue;
      if (std::any_of(policy.rules.begin(), policy.rules.end(), [&](const auto& r) { return r.name == b.name; })) continue;
      auto re = filter::Regex::compile(b.regex, true);
      if (!re) return core::make_error(std::string("built-in rule ") + b.name + ": " + re.error().message);
      policy.rules.push_back({b.name, std::move(*re), b.without_where});
    }
  }
  return {};
}

core::Result<SafetyPolicy> policy_file(const std::string& path) {
  auto doc = read_policy_file(path);
  if (!doc) return doc.error();
  SafetyPolicy policy;
  for (const auto& m : doc->as_object()) {
    if (m.key == "$schema") continue;
    if (m.key != "presets" && m.key != "patterns")
      return core::make_error(path + ": unknown member '" + m.key + "' (presets, patterns)");
    if (!m.value.is_array()) return core::make_error(path + ": " + m.key + ": an array is expected");
    const auto& items = m.value.as_array();
    for (size_t i = 0; i < items.size(); ++i) {
      std::string where = path + ": " + m.key + "[" + std::to_string(i) + "]";
      const auto& item = items[i];
      if (m.key == "presets") {
        if (!item.is_string()) return core::make_error(where + ": a preset name is expected");
        if (auto r = add_presets(policy, item.as_string(), where + ": "); !r) return r.error();
        continue;
      }
      const core::Value* name = item.find("name");
      const core::Value* regex = item.find("regex");
      const core::Value* ww = item.find("without_where");
      if (!item.is_object() || !name || !regex || !name->is_string() || name->as_string().empty() ||
          !regex->is_string() || (ww && !ww->is_bool()))
        return core::make_error(where + ": {\"name\": STRING, \"regex\": STRING, \"without_where\": BOOL} is expected");
      for (const auto& mm : item.as_object())
        if (mm.key != "name" && mm.key != "regex" && mm.key != "without_where")
          return core::make_error(where + ": unknown member '" + mm.key + "'");
      auto re = filter::Regex::compile(normalize(regex->as_string()), true);
      if (!re) return core::make_error(where + ".regex: " + re.error().message);
      policy.rules.push_back({name->as_string(), std::move(*re), ww && ww->as_bool()});
    }
  }
  if (policy.rules.empty()) return core::make_error(path + ": no rule (give presets or patterns)");
  return policy;
}

}  // namespace

std::string SafetyHit::describe() const {
  return "rule " + rule + " matched in " + where + (encoding.empty() ? "" : " (" + encoding + ")") + ": " + excerpt;
}

core::Result<SafetyPolicy> safety_policy(const std::string& spec) {
  struct stat st {};
  bool file = ::stat(spec.c_str(), &st) == 0 && S_ISREG(st.st_mode);
  if (file || spec.find('/') != std::string::npos || spec.ends_with(".json")) return policy_file(spec);
  SafetyPolicy policy;
  if (auto r = add_presets(policy, spec.empty() ? "default" : spec, ""); !r) return r.error();
  return policy;
}

std::optional<SafetyHit> safety_judge_text(const SafetyPolicy& policy, std::string_view text, std::string_view where) {
  if (text.empty()) return std::nullopt;
  auto hit = judge_layers(policy, text, "", 2);
  if (hit) hit->where = where;
  return hit;
}

std::optional<SafetyHit> safety_judge_request(const SafetyPolicy& policy, const envelope::HttpMessage& m) {
  if (auto hit = safety_judge_text(policy, m.path, "the URL")) return hit;
  if (auto hit = judge_fields(policy, m.headers, "header")) return hit;
  std::string codings = core::to_lower(core::trim_ows(layer::header_value(m.headers, "content-encoding")));
  if (!codings.empty() && codings != "identity")
    if (auto decoded = codec::decode_content(m.body, codings, kMaxDecoded))
      return safety_judge_text(policy, *decoded, "the body");
  if (auto hit = safety_judge_text(policy, m.body, "the body")) return hit;
  return judge_fields(policy, m.trailers, "trailer");
}

std::optional<SafetyHit> safety_judge(const SafetyPolicy& policy, const envelope::Envelope& e) {
  if (e.direction != envelope::Direction::send) return std::nullopt;
  if (const auto* m = std::get_if<envelope::HttpMessage>(&e.message))
    return m->kind == envelope::HttpMessage::Kind::request ? safety_judge_request(policy, *m) : std::nullopt;
  if (const auto* w = std::get_if<envelope::WsMessage>(&e.message))
    return safety_judge_text(policy, w->payload, "a WebSocket message");
  if (const auto* s = std::get_if<envelope::GrpcStartMessage>(&e.message))
    return judge_fields(policy, s->metadata, "gRPC metadata");
  if (const auto* g = std::get_if<envelope::GrpcDataMessage>(&e.message))
    return safety_judge_text(policy, g->payload, "a gRPC message");
  return std::nullopt;
}

pipeline::Outcome SafetyStep::process(envelope::Envelope& env, pipeline::Reply& reply, const pipeline::Resume&) {
  auto hit = safety_judge(policy_, env);
  if (!hit) {
    // A request that would stream is held whole to be judged whole (up to --record-body-limit).
    bool request_head = is_head_unit(env) && env.direction == envelope::Direction::send;
    return request_head ? pipeline::Outcome::whole : pipeline::Outcome::next;
  }
  std::string why = hit->describe();
  env.tags.emplace_back("safety", hit->rule);
  if (on_record_) {
    envelope::ErrorRecord err;
    err.stream_id = env.stream_id;
    err.flow_id = env.flow_id;
    err.time = core::now_wall();
    err.code = "safety";
    err.message = "refused by the safety filter: " + why;
    on_record_(envelope::Record{std::move(err)});
  }
  if (const auto* m = std::get_if<envelope::HttpMessage>(&env.message); m && !is_head_unit(env)) {
    std::string text = "sluice: refused by the safety filter: " + why + "\n";
    reply = answer(env, 403, {{"Server", "sluice"}, {"Content-Type", "text/plain; charset=utf-8"}}, text, "safety");
    return pipeline::Outcome::respond;
  }
  if (std::holds_alternative<envelope::GrpcDataMessage>(env.message)) return pipeline::Outcome::kill;
  return pipeline::Outcome::drop;  // a head: 403; a WebSocket message left out; a gRPC start: status 7
}

}  // namespace sluice::step
