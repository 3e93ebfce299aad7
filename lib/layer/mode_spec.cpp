#include "layer/mode_spec.hpp"

#include <charconv>

namespace sluice::layer {
namespace {
core::Result<uint16_t> parse_port(std::string_view s, std::string_view what) {
  unsigned v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || r.ec != std::errc() || r.ptr != s.data() + s.size() || v > 65535)
    return core::make_error("invalid " + std::string(what) + " port '" + std::string(s) + "'");
  return static_cast<uint16_t>(v);
}
}  // namespace

core::Result<std::pair<std::string, uint16_t>> parse_host_port(std::string_view s) {
  std::string_view host;
  std::string_view port;
  if (s.starts_with('[')) {
    auto close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':')
      return core::make_error("expected [HOST]:PORT, got '" + std::string(s) + "'");
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string_view::npos) return core::make_error("expected HOST:PORT, got '" + std::string(s) + "'");
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  if (host.empty()) return core::make_error("missing host in '" + std::string(s) + "'");
  auto p = parse_port(port, "target");
  if (!p) return p.error();
  return std::pair<std::string, uint16_t>{std::string(host), *p};
}

core::Result<Url> parse_absolute_url(std::string_view url) {
  Url u;
  auto sep = url.find("://");
  if (sep == std::string_view::npos || sep == 0) return core::make_error("not an absolute URL: '" + std::string(url) + "'");
  for (char c : url.substr(0, sep)) u.scheme.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
  if (u.scheme != "http" && u.scheme != "https")
    return core::make_error("unsupported scheme '" + u.scheme + "' in '" + std::string(url) + "'");
  std::string_view rest = url.substr(sep + 3);
  auto path = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, path);
  if (authority.find('@') != std::string_view::npos)
    return core::make_error("user information in the URL '" + std::string(url) + "' is not allowed");
  u.authority = std::string(authority);
  uint16_t default_port = u.scheme == "https" ? 443 : 80;
  bool has_port = authority.starts_with('[') ? authority.find("]:") != std::string_view::npos
                                             : authority.find(':') != std::string_view::npos;
  if (has_port) {
    auto hp = parse_host_port(authority);
    if (!hp) return hp.error();
    u.host = hp->first;
    u.port = hp->second;
  } else {
    std::string_view host = authority;
    if (host.starts_with('[') && host.ends_with(']')) host = host.substr(1, host.size() - 2);
    u.host = std::string(host);
    u.port = default_port;
  }
  if (u.host.empty()) return core::make_error("missing host in '" + std::string(url) + "'");
  std::string_view tail = path == std::string_view::npos ? std::string_view() : rest.substr(path);
  if (auto hash = tail.find('#'); hash != std::string_view::npos) tail = tail.substr(0, hash);
  u.origin_form = tail.empty() || tail[0] != '/' ? "/" + std::string(tail) : std::string(tail);
  return u;
}

std::string named_destination(std::string_view scheme, std::string_view authority, std::string_view target) {
  auto u = target.find("://") != std::string_view::npos
               ? parse_absolute_url(target)
               : parse_absolute_url(std::string(scheme.empty() ? "http" : scheme) + "://" + std::string(authority) + "/");
  if (!u) return {};
  std::string host = u->host;
  for (auto& c : host) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  return u->scheme + "://" + format_host_port(host, u->port);
}

core::Result<ModeSpec> parse_mode_spec(std::string_view spec) {
  ModeSpec m;
  m.text = std::string(spec);
  std::string_view body = spec;
  // The listen part follows the last '@' (DATA may not contain '@' except in userinfo of an URL,
  // which a proxy target does not take).
  if (auto at = spec.rfind('@'); at != std::string_view::npos) {
    std::string_view listen = spec.substr(at + 1);
    body = spec.substr(0, at);
    if (listen.find(':') != std::string_view::npos) {
      auto hp = parse_host_port(listen);
      if (!hp) return core::make_error("mode '" + m.text + "': " + hp.error().message);
      m.listen_host = hp->first;
      m.listen_port = hp->second;
      m.listen_host_given = true;
    } else {
      auto p = parse_port(listen, "listen");
      if (!p) return core::make_error("mode '" + m.text + "': " + p.error().message);
      m.listen_port = *p;
    }
    m.listen_port_given = true;
  }
  std::string_view name = body;
  if (auto colon = body.find(':'); colon != std::string_view::npos) {
    name = body.substr(0, colon);
    m.data = std::string(body.substr(colon + 1));
  }
  // mitmproxy's spellings of a TCP forward: reverse:tcp://HOST:PORT, reverse:tls://HOST:PORT (ours
  // detects TLS from the client's first bytes either way).
  if (name == "reverse" && (m.data.starts_with("tcp://") || m.data.starts_with("tls://"))) {
    name = "tcp";
    m.data = m.data.substr(6);
  }
  if (name == "reverse" && !m.data.empty() && m.data.find("://") == std::string::npos) m.data = "https://" + m.data;
  if (name == "upstream" && !m.data.empty() && m.data.find("://") == std::string::npos) m.data = "http://" + m.data;
  if (name == "regular") {
    m.kind = ModeSpec::Kind::regular;
  } else if (name == "reverse") {
    m.kind = ModeSpec::Kind::reverse;
  } else if (name == "upstream") {
    m.kind = ModeSpec::Kind::upstream;
  } else if (name == "tcp" || name == "raw") {
    m.kind = name == "tcp" ? ModeSpec::Kind::tcp : ModeSpec::Kind::raw;
    auto hp = parse_host_port(m.data);
    if (!hp) return core::make_error("mode '" + m.text + "': " + hp.error().message);
    m.target_host = hp->first;
    m.target_port = hp->second;
  } else if (name == "socks5") {
    m.kind = ModeSpec::Kind::socks5;
    if (!m.listen_port_given) m.listen_port = 1080;  // SOCKS's own default
  } else if (name == "transparent" || name == "wireguard" || name == "local" || name == "tun" || name == "dns") {
    return core::make_error("mode '" + std::string(name) +
                            "' is mitmproxy's; sluice does not have it (it has regular, reverse, upstream, tcp, raw "
                            "and socks5)");
  } else {
    return core::make_error("unknown mode '" + std::string(name) +
                            "' (expected regular, reverse, upstream, tcp, raw or socks5)");
  }
  if (m.kind == ModeSpec::Kind::reverse || m.kind == ModeSpec::Kind::upstream) {
    if (m.data.empty())
      return core::make_error("mode '" + m.text + "' needs a server URL: " + std::string(name) + ":http://HOST:PORT");
    auto u = parse_absolute_url(m.data);
    if (!u) {
      if (auto sep = m.data.find("://"); sep != std::string::npos && m.kind == ModeSpec::Kind::reverse)
        return core::make_error("mode '" + m.text + "': sluice has no reverse mode for " + m.data.substr(0, sep) +
                                " (it has http, https, tcp and tls)");
      return core::make_error("mode '" + m.text + "': " + u.error().message);
    }
    if (u->origin_form != "/")
      return core::make_error("mode '" + m.text + "': the URL takes no path ('" + u->origin_form + "')");
    m.target_scheme = u->scheme;
    m.target_host = u->host;
    m.target_port = u->port;
  }
  return m;
}

}  // namespace sluice::layer
