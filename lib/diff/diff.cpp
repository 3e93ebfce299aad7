#include "diff/diff.hpp"

#include <algorithm>
#include <deque>
#include <unordered_map>

#include "core/ascii.hpp"
#include "core/json.hpp"
#include "core/utf8.hpp"

namespace sluice::diff {

namespace {

constexpr size_t kMaxDifferences = 50;  // per pair: enough to see what changed

std::string shorten(std::string s, size_t max = 200) {
  if (s.size() > max) s = s.substr(0, max) + "...";
  for (auto& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

// "$.a[0].b" -> {"a", "[0]", "b"} ; "[*]" matches any index.
std::vector<std::string> path_tokens(std::string_view p) {
  std::vector<std::string> out;
  if (p.starts_with("$")) p.remove_prefix(1);
  size_t i = 0;
  while (i < p.size()) {
    if (p[i] == '.') {
      size_t j = i + 1;
      while (j < p.size() && p[j] != '.' && p[j] != '[') ++j;
      out.emplace_back(p.substr(i + 1, j - i - 1));
      i = j;
    } else if (p[i] == '[') {
      size_t j = p.find(']', i);
      if (j == std::string_view::npos) j = p.size() - 1;
      out.emplace_back(p.substr(i, j - i + 1));
      i = j + 1;
    } else {
      ++i;
    }
  }
  return out;
}

struct JsonCompare {
  const std::vector<std::vector<std::string>>& ignored;
  std::vector<Difference>& out;
  std::vector<std::string> path;

  bool is_ignored() const {
    for (const auto& pat : ignored) {
      if (pat.size() > path.size()) continue;
      bool match = true;
      for (size_t i = 0; i < pat.size() && match; ++i)
        match = pat[i] == path[i] || (pat[i] == "[*]" && path[i].starts_with("[")) || pat[i] == "*";
      if (match) return true;
    }
    return false;
  }
  std::string text() const {
    std::string s = "$";
    for (const auto& t : path) s += t.starts_with("[") ? t : "." + t;
    return s;
  }
  void report(const core::Value* a, const core::Value* b) {
    if (out.size() >= kMaxDifferences || is_ignored()) return;
    out.push_back({"body " + text(), a ? shorten(core::json_write(*a)) : "(absent)",
                   b ? shorten(core::json_write(*b)) : "(absent)"});
  }
  void run(const core::Value& a, const core::Value& b) {
    if (is_ignored() || out.size() >= kMaxDifferences) return;
    if (a.is_object() && b.is_object()) {
      for (const auto& m : a.as_object()) {
        path.push_back(m.key);
        if (const core::Value* other = b.find(m.key))
          run(m.value, *other);
        else
          report(&m.value, nullptr);
        path.pop_back();
      }
      for (const auto& m : b.as_object()) {
        if (a.find(m.key)) continue;
        path.push_back(m.key);
        report(nullptr, &m.value);
        path.pop_back();
      }
      return;
    }
    if (a.is_array() && b.is_array()) {
      const auto& x = a.as_array();
      const auto& y = b.as_array();
      for (size_t i = 0; i < std::max(x.size(), y.size()); ++i) {
        path.push_back("[" + std::to_string(i) + "]");
        if (i < x.size() && i < y.size())
          run(x[i], y[i]);
        else
          report(i < x.size() ? &x[i] : nullptr, i < y.size() ? &y[i] : nullptr);
        path.pop_back();
      }
      return;
    }
    bool same = a == b;
    if (!same && a.is_number() && b.is_number()) same = a.as_double() == b.as_double();  // 1 and 1.0
    if (!same) report(&a, &b);
  }
};

std::vector<std::string> lines_of(std::string_view s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t nl = s.find('\n', start);
    if (nl == std::string_view::npos) {
      if (start < s.size()) out.emplace_back(s.substr(start));
      break;
    }
    out.emplace_back(s.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

void compare_bodies(const std::string& a, const std::string& b, const Options& o, std::vector<Difference>& out) {
  if (a == b) return;
  auto ja = a.empty() ? core::Result<core::Value>(core::make_error("empty")) : core::json_parse(a);
  auto jb = b.empty() ? core::Result<core::Value>(core::make_error("empty")) : core::json_parse(b);
  if (ja && jb) {
    std::vector<std::vector<std::string>> ignored;
    for (const auto& p : o.ignore_json_paths) ignored.push_back(path_tokens(p));
    JsonCompare c{ignored, out, {}};
    c.run(*ja, *jb);
    return;
  }
  if (core::is_valid_utf8(a) && core::is_valid_utf8(b)) {
    auto la = lines_of(a), lb = lines_of(b);
    size_t first = 0;
    while (first < la.size() && first < lb.size() && la[first] == lb[first]) ++first;
    size_t changed = 0;
    for (size_t i = 0; i < std::max(la.size(), lb.size()); ++i)
      if (i >= la.size() || i >= lb.size() || la[i] != lb[i]) ++changed;
    out.push_back({"body line " + std::to_string(first + 1) + " (" + std::to_string(changed) + " lines differ)",
                   first < la.size() ? shorten(la[first]) : "(end of body)",
                   first < lb.size() ? shorten(lb[first]) : "(end of body)"});
    return;
  }
  out.push_back({"body", std::to_string(a.size()) + " bytes", std::to_string(b.size()) + " bytes, different"});
}

}  // namespace

const std::vector<std::string>& volatile_headers() {
  static const std::vector<std::string> kHeaders = {"date", "age", "expires", "last-modified", "etag", "set-cookie",
                                                    "x-request-id", "server-timing"};
  return kHeaders;
}

void ExchangeCollector::add(const envelope::Record& r) {
  if (const auto* h = std::get_if<envelope::StreamHeader>(&r)) {
    for (const auto& l : h->listeners) {
      const core::Value* mode = l.find("mode");
      const core::Value* address = l.find("address");
      if (!mode || !mode->is_string() || !address || !address->is_string()) continue;
      std::string_view spec = mode->as_string();
      if (!spec.starts_with("reverse:")) continue;
      spec.remove_prefix(8);
      spec = spec.substr(0, spec.rfind('@'));
      std::string target(spec);
      if (target.find("://") == std::string::npos) target = "https://" + target;  // mitmproxy's default
      if (!target.starts_with("http://") && !target.starts_with("https://")) continue;
      while (target.ends_with('/')) target.pop_back();
      reverse_[address->as_string()] = target;
    }
    return;
  }
  const auto* e = std::get_if<envelope::Envelope>(&r);
  if (!e || e->protocol != envelope::Protocol::http || e->modified || !e->overlay.empty()) return;
  const auto* m = std::get_if<envelope::HttpMessage>(&e->message);
  if (!m) return;
  if (m->kind == envelope::HttpMessage::Kind::request) {
    if (m->method == "CONNECT" || index_.count(e->flow_id)) return;
    index_[e->flow_id] = out_.size();
    std::string url = envelope::url_of(*m);
    if (auto rev = reverse_.find(std::string(m->authority)); rev != reverse_.end() && m->path.starts_with("/"))
      url = rev->second + std::string(m->path);
    out_.push_back({e->flow_id, m->method, std::move(url), *m, std::nullopt});
  } else if (auto it = index_.find(e->flow_id); it != index_.end() && (m->status >= 200 || m->status == 101)) {
    out_[it->second].response = *m;
  }
}

std::vector<Exchange> ExchangeCollector::take() {
  index_.clear();
  return std::move(out_);
}

std::string without_pairs(std::string_view pairs, const std::vector<std::string>& names) {
  if (names.empty()) return std::string(pairs);
  std::string kept;
  size_t start = 0;
  while (start <= pairs.size()) {
    size_t amp = pairs.find('&', start);
    std::string_view part = pairs.substr(start, amp == std::string_view::npos ? std::string_view::npos : amp - start);
    std::string_view name = part.substr(0, part.find('='));
    if (!part.empty() && std::find(names.begin(), names.end(), name) == names.end())
      kept += (kept.empty() ? "" : "&") + std::string(part);
    if (amp == std::string_view::npos) break;
    start = amp + 1;
  }
  return kept;
}

std::string pairing_key(const Exchange& e, const Options& o) {
  std::string url = e.url;
  if (o.ignore_host) {
    size_t scheme = url.find("://");
    size_t path = scheme == std::string::npos ? 0 : url.find('/', scheme + 3);
    url = path == std::string::npos ? "/" : url.substr(path);
  }
  if (!o.ignore_params.empty()) {
    size_t q = url.find('?');
    if (q != std::string::npos) {
      std::string kept = without_pairs(std::string_view(url).substr(q + 1), o.ignore_params);
      url = url.substr(0, q) + (kept.empty() ? "" : "?" + kept);
    }
  }
  std::string key = e.method + " " + url;
  if (!o.ignore_body) key += "\n" + e.request.body;
  return key;
}

std::vector<Difference> compare(const envelope::HttpMessage* a, const envelope::HttpMessage* b, const Options& o) {
  std::vector<Difference> out;
  if (!a || !b) {
    if (a || b) out.push_back({"response", a ? std::to_string(a->status) : "(none)", b ? std::to_string(b->status) : "(none)"});
    return out;
  }
  if (a->status != b->status) out.push_back({"status", std::to_string(a->status), std::to_string(b->status)});
  // Headers by lower-case name, values in order.
  auto group = [&](const envelope::Headers& h) {
    std::vector<std::pair<std::string, std::vector<std::string>>> g;
    for (const auto& [k, v] : h) {
      std::string name = core::to_lower(k);
      if (std::any_of(o.ignore_headers.begin(), o.ignore_headers.end(),
                      [&](const std::string& i) { return core::iequals(i, name); }))
        continue;
      if (std::find(volatile_headers().begin(), volatile_headers().end(), name) != volatile_headers().end()) continue;
      if (name == "content-length" || name == "transfer-encoding") continue;  // the body comparison speaks for them
      auto it = std::find_if(g.begin(), g.end(), [&](const auto& p) { return p.first == name; });
      if (it == g.end()) g.push_back({name, {v}});
      else it->second.push_back(v);
    }
    return g;
  };
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  };
  // Fields (headers, or trailers such as grpc-status) by name, values in order.
  auto fields = [&](const char* what, const envelope::Headers& fa, const envelope::Headers& fb) {
    auto ha = group(fa), hb = group(fb);
    for (const auto& [name, values] : ha) {
      auto it = std::find_if(hb.begin(), hb.end(), [&](const auto& p) { return p.first == name; });
      if (it == hb.end())
        out.push_back({what + name, shorten(join(values)), "(absent)"});
      else if (it->second != values)
        out.push_back({what + name, shorten(join(values)), shorten(join(it->second))});
    }
    for (const auto& [name, values] : hb)
      if (std::find_if(ha.begin(), ha.end(), [&](const auto& p) { return p.first == name; }) == ha.end())
        out.push_back({what + name, "(absent)", shorten(join(values))});
  };
  // gRPC's status may come in the headers (a trailers-only response) or the trailers: compared as trailers.
  auto split = [](const envelope::HttpMessage& m) {
    std::pair<envelope::Headers, envelope::Headers> ht{{}, m.trailers};
    for (const auto& h : m.headers) {
      std::string name = core::to_lower(h.name);
      (name == "grpc-status" || name == "grpc-message" || name == "grpc-status-details-bin" ? ht.second : ht.first)
          .push_back(h);
    }
    return ht;
  };
  auto [head_a, trail_a] = split(*a);
  auto [head_b, trail_b] = split(*b);
  fields("header ", head_a, head_b);
  fields("trailer ", trail_a, trail_b);
  compare_bodies(a->body, b->body, o, out);
  return out;
}

std::vector<PairResult> diff(const std::vector<Exchange>& a, const std::vector<Exchange>& b, const Options& o) {
  std::unordered_map<std::string, std::deque<const Exchange*>> waiting;  // A's exchanges by key, in order
  for (const auto& e : a) waiting[pairing_key(e, o)].push_back(&e);
  std::vector<PairResult> out;
  for (const auto& e : b) {
    auto& q = waiting[pairing_key(e, o)];
    if (q.empty()) {
      out.push_back({PairResult::Kind::added, nullptr, &e, {}});
      continue;
    }
    const Exchange* before = q.front();
    q.pop_front();
    PairResult r{PairResult::Kind::same, before, &e, {}};
    r.differences = compare(before->response ? &*before->response : nullptr, e.response ? &*e.response : nullptr, o);
    if (!r.differences.empty()) r.kind = PairResult::Kind::changed;
    out.push_back(std::move(r));
  }
  for (const auto& e : a) {
    auto& q = waiting[pairing_key(e, o)];
    if (!q.empty() && q.front() == &e) {
      q.pop_front();
      out.push_back({PairResult::Kind::missing, &e, nullptr, {}});
    }
  }
  return out;
}

}  // namespace sluice::diff
