#include "replay/serve.hpp"

#include <algorithm>
#include <cctype>
#include <ctime>

#include "core/ascii.hpp"
#include "diff/diff.hpp"
#include "layer/http1_wire.hpp"
#include "layer/mode_spec.hpp"

namespace sluice::replay {

namespace {

constexpr char kSep = '\0';  // between the parts of a key (the body, last, may hold anything)

std::vector<std::string_view> split(std::string_view s, char c) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(c, start);
    if (end == std::string_view::npos) end = s.size();
    out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool form_encoded(const envelope::HttpMessage& m) {
  auto ct = layer::find_header(m.headers, "content-type");
  return ct && core::to_lower(ct->substr(0, 33)) == "application/x-www-form-urlencoded";
}

// A response recorded from HTTP/2 as HTTP/1.1 bytes (what a step answers with; the HTTP/2 layer turns
// it back into a stream's response): its fields without the framing ones, then its body, chunked
// when there are trailers.
core::Bytes http1_from_message(const envelope::HttpMessage& m) {
  envelope::Headers headers;
  for (const auto& h : m.headers)
    if (!core::iequals(h.name, "content-length") && !core::iequals(h.name, "transfer-encoding")) headers.push_back(h);
  if (m.trailers.empty()) {
    headers.push_back({"content-length", std::to_string(m.body.size())});
    return layer::response_bytes(m.status, m.reason, headers, m.body);
  }
  headers.push_back({"transfer-encoding", "chunked"});
  return layer::response_bytes(m.status, m.reason, headers, layer::chunked_body(m.body, m.trailers));
}

}  // namespace

core::Result<void> parse_match_parts(std::string_view list, MatchOptions& o) {
  MatchOptions parts = o;
  parts.method = parts.scheme = parts.host = parts.port = parts.path = parts.query = parts.body = false;
  for (auto p : split(list, ',')) {
    if (p == "method") parts.method = true;
    else if (p == "scheme") parts.scheme = true;
    else if (p == "host") parts.host = true;
    else if (p == "port") parts.port = true;
    else if (p == "path") parts.path = true;
    else if (p == "query") parts.query = true;
    else if (p == "body") parts.body = true;
    else
      return core::make_error("unknown match part '" + std::string(p) +
                              "' (method, scheme, host, port, path, query, body)");
  }
  o = parts;
  return {};
}

core::Result<OnMiss> parse_on_miss(std::string_view s) {
  if (s == "forward") return OnMiss::forward;
  if (s == "404") return OnMiss::not_found;
  if (s == "502") return OnMiss::bad_gateway;
  if (s == "kill") return OnMiss::kill;
  return core::make_error("--on-miss takes forward, 404, 502 or kill, not '" + std::string(s) + "'");
}

std::string match_key(const envelope::Envelope& request, const MatchOptions& o) {
  const auto& m = std::get<envelope::HttpMessage>(request.message);
  std::string target = m.path;
  std::string host;
  uint16_t port = 0;
  if (!target.starts_with('/') && target != "*") {
    if (auto u = layer::parse_absolute_url(target)) {
      target = u->origin_form;
      host = u->host;
      port = u->port;
    }
  }
  if (auto hp = layer::parse_host_port(request.context.server)) {  // where it went
    host = hp->first;
    port = hp->second;
  } else if (host.empty()) {
    if (auto hp2 = layer::parse_host_port(m.authority)) {
      host = hp2->first;
      port = hp2->second;
    } else {
      host = m.authority;
    }
  }
  std::string_view t = target;
  size_t q = t.find('?');
  std::string key;
  key.reserve(128 + (o.body ? m.body.size() : 0));
  if (o.method) key += m.method;
  key += kSep;
  if (o.scheme) key += m.scheme.empty() ? std::string("http") : std::string(m.scheme);
  key += kSep;
  if (o.host) key += core::to_lower(host);
  key += kSep;
  if (o.port) key += std::to_string(port);
  key += kSep;
  if (o.path) key += t.substr(0, q);
  key += kSep;
  if (o.query && q != std::string_view::npos) key += diff::without_pairs(t.substr(q + 1), o.ignore_params);
  key += kSep;
  for (const auto& name : o.headers) {
    for (const auto& h : m.headers)
      if (core::iequals(h.name, name)) key += h.value + "\n";
    key += kSep;
  }
  if (o.body) key += !o.ignore_form_fields.empty() && form_encoded(m) ? diff::without_pairs(m.body, o.ignore_form_fields) : std::string(m.body);
  return key;
}

std::optional<int64_t> parse_http_date(std::string_view s) {
  static const char* kMonths[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"};
  int day = -1, year = -1, month = -1, hh = -1, mm = -1, ss = -1;
  std::string norm(s);
  for (auto& c : norm)
    if (c == '-' || c == ',') c = ' ';
  for (auto tok : split(norm, ' ')) {
    if (tok.empty()) continue;
    if (tok.find(':') != std::string_view::npos) {
      if (tok.size() != 8 || std::sscanf(std::string(tok).c_str(), "%2d:%2d:%2d", &hh, &mm, &ss) != 3) return std::nullopt;
    } else if (std::isdigit(static_cast<unsigned char>(tok[0]))) {
      if (!std::all_of(tok.begin(), tok.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }) ||
          tok.size() > 4)
        return std::nullopt;
      int v = std::stoi(std::string(tok));
      if (day < 0 && tok.size() <= 2)
        day = v;
      else if (year < 0)
        year = tok.size() <= 2 ? (v < 70 ? 2000 + v : 1900 + v) : v;
      else
        return std::nullopt;
    } else if (tok.size() == 3) {
      std::string lower = core::to_lower(tok);
      for (int i = 0; i < 12; ++i)
        if (lower == kMonths[i]) month = i;
    }
  }
  if (day < 1 || day > 31 || month < 0 || year < 1900 || hh < 0 || hh > 23 || mm < 0 || mm > 59 || ss < 0 || ss > 60)
    return std::nullopt;
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month;
  tm.tm_mday = day;
  tm.tm_hour = hh;
  tm.tm_min = mm;
  tm.tm_sec = ss;
  return static_cast<int64_t>(timegm(&tm));
}

std::string format_http_date(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

core::Bytes shift_dates(core::ByteView raw, int64_t shift) {
  size_t head_end = raw.find("\r\n\r\n");
  if (head_end == core::ByteView::npos) return core::Bytes(raw);
  core::Bytes out;
  out.reserve(raw.size() + 64);
  size_t pos = 0;
  bool first = true;
  while (pos < head_end + 2) {
    size_t eol = raw.find("\r\n", pos);
    core::ByteView line = raw.substr(pos, eol - pos);
    pos = eol + 2;
    size_t colon = line.find(':');
    if (first || colon == core::ByteView::npos) {
      first = false;
      out += line;
      out += "\r\n";
      continue;
    }
    std::string name = core::to_lower(line.substr(0, colon));
    size_t vstart = colon + 1;
    while (vstart < line.size() && (line[vstart] == ' ' || line[vstart] == '\t')) ++vstart;
    core::ByteView value = line.substr(vstart);
    std::string replaced;
    if (name == "date" || name == "expires" || name == "last-modified") {
      if (auto t = parse_http_date(value)) replaced = format_http_date(*t + shift);
    } else if (name == "set-cookie") {
      std::string lower = core::to_lower(value);
      size_t at = lower.find("expires=");
      if (at != std::string::npos) {
        size_t vs = at + 8;
        size_t ve = lower.find(';', vs);
        if (ve == std::string::npos) ve = lower.size();
        if (auto t = parse_http_date(value.substr(vs, ve - vs)))
          replaced = std::string(value.substr(0, vs)) + format_http_date(*t + shift) + std::string(value.substr(ve));
      }
    }
    if (replaced.empty()) {
      out += line;
    } else {
      out += line.substr(0, vstart);
      out += replaced;
    }
    out += "\r\n";
  }
  out += "\r\n";
  out += raw.substr(head_end + 4);
  return out;
}

ServeFrom::ServeFrom(ServeOptions options) : options_(std::move(options)) {}

void ServeFrom::add(const envelope::Record& r) {
  const auto* e = std::get_if<envelope::Envelope>(&r);
  if (!e || e->protocol != envelope::Protocol::http) return;
  const auto* m = std::get_if<envelope::HttpMessage>(&e->message);
  if (!m) return;
  if (m->kind == envelope::HttpMessage::Kind::request) {
    if (e->modified || !e->overlay.empty() || m->method == "CONNECT" || loading_index_.count(e->flow_id)) return;
    loading_index_[e->flow_id] = loading_.size();
    loading_.push_back({e->flow_id, Loading{match_key(*e, options_.match), std::nullopt, true}});
    return;
  }
  auto it = loading_index_.find(e->flow_id);
  if (it == loading_index_.end()) return;
  Loading& l = loading_[it->second].second;
  if (e->overlay == "h1-body") {  // the rest of a body recorded without a limit
    if (l.response) l.response->raw += e->raw;
    return;
  }
  if (!e->overlay.empty() || m->status < 200) return;
  if (l.response && !e->modified) return;  // a second response in one flow: keep the first
  Served s;
  s.raw = m->version == "HTTP/2" ? http1_from_message(*m) : e->raw;
  s.flow_id = e->flow_id;
  auto date = layer::find_header(m->headers, "date");
  auto parsed = date ? parse_http_date(*date) : std::nullopt;
  s.recorded_at = parsed ? *parsed : e->time.ns / 1'000'000'000;
  l.response = std::move(s);  // a variant (what the client got) replaces the original
  l.complete = m->body_omitted == 0 &&
               std::none_of(e->tags.begin(), e->tags.end(), [](const auto& t) { return t.first == "incomplete"; });
}

void ServeFrom::finish_loading() {
  for (auto& [flow, l] : loading_) {
    if (!l.response) continue;
    if (!l.complete) {
      ++unusable_;
      continue;
    }
    index_[l.key].responses.push_back(std::move(*l.response));
    ++responses_;
  }
  loading_.clear();
  loading_index_.clear();
}

pipeline::Outcome ServeFrom::process(envelope::Envelope& env, pipeline::Reply& reply, const pipeline::Resume&) {
  const auto* m = std::get_if<envelope::HttpMessage>(&env.message);
  if (env.protocol != envelope::Protocol::http || !m || m->kind != envelope::HttpMessage::Kind::request ||
      m->method == "CONNECT" || !env.overlay.empty())
    return pipeline::Outcome::next;
  std::string key = match_key(env, options_.match);
  std::optional<Served> hit;
  size_t used_up = 0;  // recorded answers to this request, every one given already
  {
    std::lock_guard lock(mu_);
    auto it = index_.find(key);
    if (it != index_.end() && !it->second.responses.empty()) {
      Entry& entry = it->second;
      if (options_.reuse)
        hit = entry.responses.back();
      else if (entry.next < entry.responses.size())
        hit = entry.responses[entry.next++];
      else
        used_up = entry.responses.size();
    }
  }
  if (hit) {
    envelope::Envelope r;
    int64_t now = core::now_wall().ns / 1'000'000'000;
    r.raw = options_.refresh_dates ? shift_dates(hit->raw, now - hit->recorded_at) : std::move(hit->raw);
    r.tags.emplace_back("served_from", hit->flow_id);
    reply = std::move(r);
    return pipeline::Outcome::respond;
  }
  switch (options_.on_miss) {
    case OnMiss::forward: return pipeline::Outcome::next;
    case OnMiss::kill: return pipeline::Outcome::kill;
    case OnMiss::not_found:
    case OnMiss::bad_gateway: break;
  }
  bool not_found = options_.on_miss == OnMiss::not_found;
  std::string request = std::string(m->method) + " " + envelope::url_of(*m);
  std::string text =
      used_up ? "sluice: " + request + " was answered already: its " + std::to_string(used_up) +
                    " recorded response" + (used_up == 1 ? " was" : "s were") +
                    " each served once (--serve-from; --reuse serves the last one again)\n"
              : "sluice: no recorded response matches " + request + " (--serve-from)\n";
  envelope::Envelope r;
  r.raw = layer::response_bytes(not_found ? 404 : 502, not_found ? "Not Found" : "Bad Gateway",
                                layer::plain_text_headers(text, false), text);
  r.tags.emplace_back("synthesized", "sluice");
  r.tags.emplace_back("serve_from", "miss");
  reply = std::move(r);
  return pipeline::Outcome::respond;
}

}  // namespace sluice::replay
