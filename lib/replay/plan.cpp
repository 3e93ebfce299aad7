#include "replay/plan.hpp"

#include <algorithm>
#include <cstdio>

#include "core/ascii.hpp"
#include "layer/http1_wire.hpp"
#include "layer/mode_spec.hpp"
#include "tls/session.hpp"

namespace sluice::replay {

void Collector::add(const envelope::Record& r) {
  exchanges_.add(r);
  const auto* e = std::get_if<envelope::Envelope>(&r);
  if (e && e->protocol == envelope::Protocol::ws && e->overlay.empty()) {
    auto it = extra_.find(e->flow_id);
    if (it == extra_.end()) return;
    Extra& x = it->second;
    if (e->direction == envelope::Direction::receive) {
      if (!e->modified) ++x.ws_received;
    } else if (e->modified && e->variant_of) {
      for (auto& [seq, frame] : x.ws_frames)
        if (seq == *e->variant_of) frame.raw = e->raw;
    } else {
      x.ws_frames.emplace_back(e->seq, WsFrame{e->raw, x.ws_received});
    }
    return;
  }
  if (!e || e->protocol != envelope::Protocol::http || !e->overlay.empty()) return;
  const auto* m = std::get_if<envelope::HttpMessage>(&e->message);
  if (!m || m->kind != envelope::HttpMessage::Kind::request) return;
  if (e->modified) {
    // The last variant is what the server received: a step's or a rule's change, then the proxy's own
    // edit (origin-form, Host, credentials) of it. (An HTTP/2 variant has no bytes: made from its message.)
    if (auto it = extra_.find(e->flow_id); it != extra_.end()) {
      if (!e->raw.empty()) it->second.wire = e->raw;
      it->second.sent = *m;
    }
    return;
  }
  if (extra_.count(e->flow_id)) return;
  Extra x;
  x.wire = e->raw;
  if (e->context.tls) x.sni = e->context.tls->sni;
  x.server = e->context.server;
  x.body_complete = m->body_omitted == 0;
  for (const auto& [k, v] : e->tags)
    if (k == "incomplete") x.body_complete = false;
  extra_.emplace(e->flow_id, std::move(x));
}

std::vector<Recorded> Collector::take() {
  std::vector<Recorded> out;
  for (auto& ex : exchanges_.take()) {
    Recorded r;
    if (auto it = extra_.find(ex.flow_id); it != extra_.end()) {
      r.wire = std::move(it->second.wire);
      if (it->second.sent) r.sent = std::move(*it->second.sent);
      r.sni = std::move(it->second.sni);
      r.server = std::move(it->second.server);
      r.body_complete = it->second.body_complete;
      for (auto& [seq, frame] : it->second.ws_frames) r.ws_frames.push_back(std::move(frame));
    }
    if (r.sent.method.empty()) r.sent = ex.request;
    r.exchange = std::move(ex);
    r.exchange.url = envelope::url_of(r.sent);  // where it went (a reverse proxy's client named the proxy)
    out.push_back(std::move(r));
  }
  extra_.clear();
  return out;
}

core::Result<Target> parse_target(std::string_view url) {
  auto u = layer::parse_absolute_url(url);
  if (!u) return core::make_error(u.error().message);
  if (u->scheme != "http" && u->scheme != "https")
    return core::make_error("--target must be http:// or https://, not " + u->scheme + "://");
  // Only an origin: "http://host:port" (a trailing slash allowed).
  std::string_view rest = url.substr(url.find("://") + 3);
  if (size_t slash = rest.find_first_of("/?#"); slash != std::string_view::npos && rest.substr(slash) != "/")
    return core::make_error("--target takes scheme://host[:port] without a path: " + std::string(url));
  return Target{u->scheme, u->host, u->port};
}

namespace {

// Fields that frame or route one hop, re-made by the encoder; an upgrade keeps Connection and Upgrade.
bool framing_header(std::string_view name, bool upgrade) {
  if (upgrade && (core::iequals(name, "connection") || core::iequals(name, "upgrade"))) return false;
  for (std::string_view h : {"content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection",
                             "proxy-authorization", "te", "upgrade"})
    if (core::iequals(name, h)) return true;
  return false;
}

}  // namespace

core::Bytes encode_request(const envelope::HttpMessage& m) {
  std::string target = m.path;
  if (!target.starts_with('/') && target != "*") {
    if (auto u = layer::parse_absolute_url(target)) target = u->origin_form;
  }
  core::Bytes out;
  out.reserve(256 + m.body.size());
  out += m.method;
  out += ' ';
  out += target.empty() ? "/" : target;
  out += " HTTP/1.1\r\n";
  bool has_host = false;
  bool upgrade = layer::find_header(m.headers, "upgrade").has_value();
  for (const auto& h : m.headers) {
    if (framing_header(h.name, upgrade)) continue;
    if (core::iequals(h.name, "host")) has_host = true;
    out += h.name;
    out += ": ";
    out += h.value;
    out += "\r\n";
  }
  if (!has_host && !m.authority.empty()) out += "Host: " + std::string(m.authority) + "\r\n";
  if (!m.trailers.empty()) {
    out += "Transfer-Encoding: chunked\r\n\r\n";
    out += layer::chunked_body(m.body, m.trailers);
    return out;
  }
  if (!m.body.empty() || layer::body_expected(m.method)) out += "Content-Length: " + std::to_string(m.body.size()) + "\r\n";
  out += "\r\n";
  out += m.body;
  return out;
}

Request plan(const Recorded& r, size_t index, const PlanOptions& o) {
  Request q;
  q.index = index;
  auto url = layer::parse_absolute_url(r.exchange.url);
  if (!url) {
    q.skipped = "no absolute URL to replay to (" + url.error().message + ")";
    return q;
  }
  q.target = o.target ? *o.target : Target{url->scheme, url->host, url->port};
  // Where the proxy sent it: the URL names the proxy itself when a reverse proxy's client addressed it.
  if (!o.target)
    if (auto hp = layer::parse_host_port(r.server)) {
      q.target.host = hp->first;
      q.target.port = hp->second;
    }
  if (!o.scope.empty() &&
      std::none_of(o.scope.begin(), o.scope.end(), [&](const std::string& p) { return tls::host_matches(p, q.target.host); })) {
    q.skipped = "host " + q.target.host + " is outside --scope";
    return q;
  }
  q.sni = r.sni.empty() && !tls::is_ip_literal(q.target.host) ? q.target.host : r.sni;
  if (o.hosts.ignored(q.target.host, q.sni)) {
    q.skipped = "host " + q.target.host + " is outside the scope (" + std::string(o.hosts.flag()) + ")";
    return q;
  }
  if (o.refuse)
    if (std::string why = o.refuse(r.sent); !why.empty()) {
      q.skipped = why;
      return q;
    }
  if (r.sent.version == "HTTP/2") {
    if (!r.body_complete) {
      q.skipped = "the recorded body is incomplete (--record-body-limit)";
      return q;
    }
    q.http2 = true;  // HPACK state cannot be replayed byte for byte: always encoded again
    q.message = r.sent;
    q.message.scheme = q.target.scheme;
    return q;
  }
  if (o.as_recorded) {
    if (!r.body_complete) {
      q.skipped = "the recorded body is incomplete (--record-body-limit): cannot send it as recorded";
      return q;
    }
    q.bytes = r.wire;
  } else {
    if (!r.body_complete) {
      q.skipped = "the recorded body is incomplete (--record-body-limit)";
      return q;
    }
    q.bytes = encode_request(r.sent);
  }
  return q;
}

Report check(const std::vector<Recorded>& flows, const std::vector<Request>& requests,
             const std::vector<Outcome>& outcomes, const diff::Options& options, bool compare) {
  Report rep;
  for (size_t i = 0; i < requests.size(); ++i) {
    const Request& q = requests[i];
    CaseResult c;
    c.flow = &flows[q.index];
    if (!q.skipped.empty()) {
      c.kind = CaseResult::Kind::skipped;
      c.message = q.skipped;
    } else if (outcomes[i].not_sent) {
      c.kind = CaseResult::Kind::skipped;
      c.message = "not sent: the replay was interrupted";
      ++rep.not_sent;
    } else {
      const Outcome& o = outcomes[i];
      c.new_flow = o.new_flow;
      c.elapsed = o.elapsed;
      rep.elapsed += o.elapsed;
      if (!o.error.empty() || !o.response) {
        c.kind = CaseResult::Kind::error;
        c.message = o.error.empty() ? "no response" : o.error;
      } else if (compare) {
        const auto& before = c.flow->exchange.response;
        c.differences = diff::compare(before ? &*before : nullptr, &*o.response, options);
        if (!c.differences.empty()) c.kind = CaseResult::Kind::failed;
      }
    }
    switch (c.kind) {
      case CaseResult::Kind::passed: ++rep.passed; break;
      case CaseResult::Kind::failed: ++rep.failed; break;
      case CaseResult::Kind::error: ++rep.errors; break;
      case CaseResult::Kind::skipped: ++rep.skipped; break;
    }
    rep.cases.push_back(std::move(c));
  }
  return rep;
}

namespace {

std::string xml_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      case '\t':
      case '\n':
      case '\r': out += static_cast<char>(c); break;
      default:
        if (c < 0x20) {
          out += "?";  // not allowed in XML 1.0
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

std::string secs(std::chrono::microseconds us) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", static_cast<double>(us.count()) / 1e6);
  return buf;
}

}  // namespace

std::string junit_xml(const Report& report) {
  std::string x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  bool nothing = report.nothing_checked();
  std::string counts = "tests=\"" + std::to_string(report.cases.size() + nothing) + "\" failures=\"" +
                       std::to_string(report.failed) + "\" errors=\"" + std::to_string(report.errors + nothing) +
                       "\" skipped=\"" + std::to_string(report.skipped) + "\" time=\"" + secs(report.elapsed) + "\"";
  x += "<testsuites " + counts + ">\n";
  x += "  <testsuite name=\"sluice replay\" " + counts + ">\n";
  for (const auto& c : report.cases) {
    const diff::Exchange& e = c.flow->exchange;
    auto url = layer::parse_absolute_url(e.url);
    std::string host = url ? url->authority : std::string(e.request.authority);
    x += "    <testcase classname=\"" + xml_escape(host) + "\" name=\"" + xml_escape(e.method + " " + e.url) +
         "\" time=\"" + secs(c.elapsed) + "\">\n";
    std::string props = "recorded flow " + e.flow_id + (c.new_flow.empty() ? "" : ", replayed as " + c.new_flow);
    switch (c.kind) {
      case CaseResult::Kind::passed: break;
      case CaseResult::Kind::failed: {
        std::string body;
        for (const auto& d : c.differences) body += d.what + ": " + d.before + " -> " + d.after + "\n";
        std::string first = c.differences.front().what + ": " + c.differences.front().before + " -> " +
                            c.differences.front().after;
        x += "      <failure type=\"mismatch\" message=\"" + xml_escape(first) + "\">" + xml_escape(body) +
             "</failure>\n";
        break;
      }
      case CaseResult::Kind::error:
        x += "      <error type=\"replay\" message=\"" + xml_escape(c.message) + "\"/>\n";
        break;
      case CaseResult::Kind::skipped: x += "      <skipped message=\"" + xml_escape(c.message) + "\"/>\n"; break;
    }
    x += "      <system-out>" + xml_escape(props) + "</system-out>\n";
    x += "    </testcase>\n";
  }
  if (nothing)
    x += "    <testcase classname=\"sluice replay\" name=\"nothing to check\" time=\"0.000\">\n"
         "      <error type=\"empty\" message=\"no request was replayed: the input holds no HTTP request to send\"/>\n"
         "    </testcase>\n";
  x += "  </testsuite>\n</testsuites>\n";
  return x;
}

}  // namespace sluice::replay
