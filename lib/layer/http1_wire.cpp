#include "layer/http1_wire.hpp"

#include <algorithm>
#include <cstdio>

#include "core/ascii.hpp"

namespace sluice::layer {

namespace {
bool removed(std::string_view name, const HeadEdit& edit) {
  return std::any_of(edit.remove.begin(), edit.remove.end(), [&](const std::string& r) { return core::iequals(r, name); });
}
}  // namespace

core::Bytes edit_head(core::ByteView head, const HeadEdit& edit) {
  if (edit.empty()) return core::Bytes(head);
  core::Bytes out;
  out.reserve(head.size() + 64);
  size_t line_end = head.find("\r\n");
  if (line_end == core::ByteView::npos) return core::Bytes(head);
  core::ByteView request_line = head.substr(0, line_end);
  if (edit.target) {
    size_t sp1 = request_line.find(' ');
    size_t sp2 = request_line.rfind(' ');
    if (sp1 != core::ByteView::npos && sp2 > sp1) {
      out.append(request_line.substr(0, sp1 + 1));
      out.append(*edit.target);
      out.append(request_line.substr(sp2));
    } else {
      out.append(request_line);
    }
  } else {
    out.append(request_line);
  }
  out.append("\r\n");
  bool host_done = !edit.host;
  size_t pos = line_end + 2;
  // Field lines up to the empty line that ends the head.
  while (pos < head.size()) {
    size_t end = head.find("\r\n", pos);
    if (end == core::ByteView::npos) end = head.size();
    core::ByteView line = head.substr(pos, end - pos);
    pos = end + 2;
    if (line.empty()) break;
    size_t colon = line.find(':');
    core::ByteView name = line.substr(0, colon);
    if (removed(name, edit)) continue;
    if (!host_done && core::iequals(name, "host")) {
      size_t value = colon + 1;
      while (value < line.size() && (line[value] == ' ' || line[value] == '\t')) ++value;
      size_t value_end = line.size();
      while (value_end > value && (line[value_end - 1] == ' ' || line[value_end - 1] == '\t')) --value_end;
      out.append(line.substr(0, value));
      out.append(*edit.host);
      out.append(line.substr(value_end));
      out.append("\r\n");
      host_done = true;
      continue;
    }
    out.append(line);
    out.append("\r\n");
  }
  if (!host_done) {  // no Host field: add one right after the request line
    size_t first = out.find("\r\n") + 2;
    out.insert(first, "Host: " + *edit.host + "\r\n");
  }
  for (const auto& h : edit.add) out += h.name + ": " + h.value + "\r\n";
  out.append("\r\n");
  return out;
}

void edit_message(envelope::HttpMessage& m, const HeadEdit& edit) {
  if (edit.target) m.path = *edit.target;
  std::erase_if(m.headers, [&](const envelope::Header& h) { return removed(h.name, edit); });
  if (edit.host) {
    auto it = std::find_if(m.headers.begin(), m.headers.end(),
                           [](const envelope::Header& h) { return core::iequals(h.name, "host"); });
    if (it != m.headers.end())
      it->value = *edit.host;
    else
      m.headers.insert(m.headers.begin(), {"Host", *edit.host});
    m.authority = *edit.host;
  }
  for (const auto& h : edit.add) m.headers.push_back(h);
}

std::optional<std::string_view> find_header(const envelope::Headers& headers, std::string_view name) {
  for (const auto& h : headers)
    if (core::iequals(h.name, name)) return std::string_view(h.value);
  return std::nullopt;
}

std::string header_value(const envelope::Headers& headers, std::string_view name) {
  auto v = find_header(headers, name);
  return v ? std::string(*v) : std::string();
}

core::Bytes body_chunk(core::ByteView data) {
  core::Bytes out;
  if (data.empty()) return out;
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  out.reserve(data.size() + 24);
  out += size;
  out += data;
  out += "\r\n";
  return out;
}

core::Bytes last_chunk(const envelope::Headers& trailers) {
  core::Bytes out = "0\r\n";
  for (const auto& t : trailers) out += t.name + ": " + t.value + "\r\n";
  out += "\r\n";
  return out;
}

core::Bytes chunked_body(core::ByteView body, const envelope::Headers& trailers) {
  return body_chunk(body) + last_chunk(trailers);
}

core::Bytes request_head(std::string_view method, std::string_view target, const envelope::Headers& headers) {
  core::Bytes out = std::string(method) + " " + std::string(target) + " HTTP/1.1\r\n";
  for (const auto& h : headers) out += h.name + ": " + h.value + "\r\n";
  out += "\r\n";
  return out;
}

bool body_expected(std::string_view method) { return method == "POST" || method == "PUT" || method == "PATCH"; }

core::Bytes response_bytes(int status, std::string_view reason, const envelope::Headers& headers,
                           core::ByteView body) {
  core::Bytes out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
  for (const auto& h : headers) out += h.name + ": " + h.value + "\r\n";
  out += "\r\n";
  out.append(body);
  return out;
}

core::Bytes replace_field_values(core::ByteView bytes, std::string_view name, std::string_view value) {
  size_t head_end = bytes.find("\r\n\r\n");
  if (head_end == std::string_view::npos) return core::Bytes(bytes);
  core::Bytes out;
  out.reserve(bytes.size());
  size_t pos = 0;
  while (pos < head_end + 2) {
    size_t eol = bytes.find("\r\n", pos);
    std::string_view line = bytes.substr(pos, eol - pos);
    size_t colon = line.find(':');
    if (pos > 0 && colon != std::string_view::npos && core::iequals(line.substr(0, colon), name)) {
      out.append(line.substr(0, colon + 1));
      out += " ";
      out.append(value);
    } else {
      out.append(line);
    }
    out += "\r\n";
    pos = eol + 2;
  }
  out.append(bytes.substr(pos));
  return out;
}

core::Bytes encode_http1(const envelope::HttpMessage& m) {
  bool request = m.kind == envelope::HttpMessage::Kind::request;
  std::string version = m.version.empty() || m.version == "HTTP/2" ? std::string("HTTP/1.1") : m.version;
  core::Bytes out = request ? m.method + " " + m.path + " " + version + "\r\n"
                            : version + " " + std::to_string(m.status) + " " + m.reason + "\r\n";
  bool chunked = false;
  for (const auto& h : m.headers)
    if (core::iequals(h.name, "Transfer-Encoding") && core::to_lower(h.value).find("chunked") != std::string::npos) chunked = true;
  bool length_written = false;
  bool bodiless_status = !request && (m.status / 100 == 1 || m.status == 204 || m.status == 304);
  bool wants_length = !chunked && !bodiless_status && (!m.body.empty() || !request || body_expected(m.method));
  for (const auto& h : m.headers) {
    if (core::iequals(h.name, "Content-Length")) {
      if (!wants_length || length_written) continue;
      out += h.name + ": " + std::to_string(m.body.size()) + "\r\n";
      length_written = true;
      continue;
    }
    out += h.name + ": " + h.value + "\r\n";
  }
  if (wants_length && !length_written) out += "Content-Length: " + std::to_string(m.body.size()) + "\r\n";
  out += "\r\n";
  if (chunked)
    out += chunked_body(m.body, m.trailers);
  else
    out.append(m.body);
  return out;
}

bool is_framing_field(std::string_view name) {
  return core::iequals(name, "content-length") || core::iequals(name, "transfer-encoding");
}

core::Bytes encode_http1_head(const envelope::HttpMessage& m, const envelope::Headers& framing) {
  bool request = m.kind == envelope::HttpMessage::Kind::request;
  std::string version = m.version.empty() || m.version == "HTTP/2" ? std::string("HTTP/1.1") : m.version;
  core::Bytes out = request ? m.method + " " + m.path + " " + version + "\r\n"
                            : version + " " + std::to_string(m.status) + " " + m.reason + "\r\n";
  for (const auto& h : m.headers)
    if (!is_framing_field(h.name)) out += h.name + ": " + h.value + "\r\n";
  for (const auto& h : framing) out += h.name + ": " + h.value + "\r\n";
  out += "\r\n";
  return out;
}

envelope::Headers plain_text_headers(const std::string& text, bool close) {
  envelope::Headers h{{"Content-Type", "text/plain; charset=utf-8"}, {"Content-Length", std::to_string(text.size())}};
  if (close) h.push_back({"Connection", "close"});
  return h;
}

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 444: return "No Response";
    case 451: return "Unavailable For Legal Reasons";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 507: return "Insufficient Storage";
    case 510: return "Not Extended";
    case 511: return "Network Authentication Required";
    default: return {};
  }
}

}  // namespace sluice::layer
