#include "layer/http1_parser.hpp"

#include <llhttp.h>

#include "core/ascii.hpp"

namespace sluice::layer {

namespace {
// RFC 9110 §5.6.2 tchar.
bool is_tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

enum class Pause : uint8_t { none, head, chunk, message };
}  // namespace

struct Http1Parser::Llhttp {
  llhttp_t parser;
  llhttp_settings_t settings;
  Http1Parser* owner = nullptr;
  bool in_field = false;
  bool in_trailers = false;
  Pause paused = Pause::none;
};

struct Http1Callbacks {
  using L = Http1Parser::Llhttp;
  static L& st(llhttp_t* p) { return *static_cast<L*>(p->data); }
  static Http1Parser& self(llhttp_t* p) { return *st(p).owner; }
  static envelope::Headers& fields(llhttp_t* p) {
    return st(p).in_trailers ? self(p).trailers_ : self(p).head_.headers;
  }
  static int on_method(llhttp_t* p, const char* at, size_t n) {
    self(p).head_.method.append(at, n);
    return 0;
  }
  static int on_url(llhttp_t* p, const char* at, size_t n) {
    self(p).head_.target.append(at, n);
    return 0;
  }
  static int on_status(llhttp_t* p, const char* at, size_t n) {
    self(p).head_.reason.append(at, n);
    return 0;
  }
  static int on_field(llhttp_t* p, const char* at, size_t n) {
    if (!st(p).in_field) {
      fields(p).emplace_back();
      st(p).in_field = true;
    }
    fields(p).back().name.append(at, n);
    return 0;
  }
  static int on_field_complete(llhttp_t* p) {
    st(p).in_field = false;
    return 0;
  }
  static int on_value(llhttp_t* p, const char* at, size_t n) {
    fields(p).back().value.append(at, n);
    return 0;
  }
  static int on_headers_complete(llhttp_t* p) {
    auto& s = self(p);
    st(p).in_trailers = true;
    st(p).paused = Pause::head;
    if (s.type_ == Http1Parser::Type::response) {
      // A response to HEAD, a 1xx (but 101), 204 or 304 has no body whatever its headers say (RFC 9112
      // §6.3); llhttp would read one after a 304 with Content-Length. A 2xx to CONNECT starts a tunnel.
      int code = p->status_code;
      if (s.request_method_ == "HEAD" || (code / 100 == 1 && code != 101) || code == 204 || code == 304) return 1;
      if (s.request_method_ == "CONNECT" && code / 100 == 2) return 2;
    }
    return HPE_PAUSED;
  }
  static int on_body(llhttp_t* p, const char* at, size_t n) {
    self(p).body_.append(at, n);
    return 0;
  }
  static int on_chunk_complete(llhttp_t* p) {
    st(p).paused = Pause::chunk;
    return HPE_PAUSED;
  }
  static int on_message_complete(llhttp_t* p) {
    st(p).paused = Pause::message;
    return HPE_PAUSED;
  }
};

Http1Parser::Http1Parser(Type type) : p_(std::make_unique<Llhttp>()), type_(type) {
  llhttp_settings_init(&p_->settings);
  auto& s = p_->settings;
  s.on_method = Http1Callbacks::on_method;
  s.on_url = Http1Callbacks::on_url;
  s.on_status = Http1Callbacks::on_status;
  s.on_header_field = Http1Callbacks::on_field;
  s.on_header_field_complete = Http1Callbacks::on_field_complete;
  s.on_header_value = Http1Callbacks::on_value;
  s.on_headers_complete = Http1Callbacks::on_headers_complete;
  s.on_body = Http1Callbacks::on_body;
  s.on_chunk_complete = Http1Callbacks::on_chunk_complete;
  s.on_message_complete = Http1Callbacks::on_message_complete;
  llhttp_init(&p_->parser, type == Type::request ? HTTP_REQUEST : HTTP_RESPONSE, &p_->settings);
  p_->parser.data = p_.get();
  p_->owner = this;
  head_.is_request = type == Type::request;
}

Http1Parser::~Http1Parser() = default;

void Http1Parser::set_request_method(std::string_view method) { request_method_ = std::string(method); }

Http1Head Http1Parser::take_head() {
  Http1Head h = std::move(head_);
  // What feed() still reads until the message ends: the framing flags, copied back.
  head_.is_request = h.is_request;
  head_.chunked = h.chunked;
  head_.upgrade = h.upgrade;
  return h;
}

core::Bytes Http1Parser::take_body() {
  core::Bytes b;
  b.swap(body_);
  return b;
}

std::vector<core::Bytes> Http1Parser::take_chunks() {
  std::vector<core::Bytes> c;
  c.swap(chunks_);
  return c;
}

Http1Parser::Status Http1Parser::fail(std::string name, std::string reason) {
  phase_ = Phase::failed;
  error_name_ = std::move(name);
  error_ = std::move(reason);
  return Status::error;
}

void Http1Parser::start_message() {
  head_ = Http1Head{};
  head_.is_request = type_ == Type::request;
  body_.clear();
  chunks_.clear();
  chunk_raw_.clear();
  trailers_.clear();
  p_->in_trailers = false;
  p_->in_field = false;
  phase_ = Phase::head;
}

Http1Parser::Status Http1Parser::check_head() {
  llhttp_t& p = p_->parser;
  head_.version = "HTTP/" + std::to_string(p.http_major) + "." + std::to_string(p.http_minor);
  if (type_ == Type::response) head_.status = p.status_code;
  head_.chunked = (p.flags & F_CHUNKED) != 0;
  if (p.flags & F_CONTENT_LENGTH) head_.content_length = p.content_length;
  head_.keep_alive = llhttp_should_keep_alive(&p) != 0;
  head_.upgrade = p.upgrade != 0 || head_.method == "CONNECT";
  if (type_ == Type::request) {
    // The request line must be exactly METHOD SP TARGET SP VERSION, in a version HTTP/1 speaks: llhttp
    // tolerates runs of spaces, and an origin may split such a line differently from us.
    if (head_.version != "HTTP/1.1" && head_.version != "HTTP/1.0")
      return fail("bad_version", head_.version + " is not a version of HTTP/1 (HTTP/1.0 or HTTP/1.1)");
    std::string_view raw(head_.raw);
    while (raw.starts_with("\r\n")) raw.remove_prefix(2);  // empty lines before a request are ignored
    std::string_view line = raw.substr(0, raw.find("\r\n"));
    std::string expected = head_.method + " " + head_.target + " " + head_.version;
    if (line != expected)
      return fail("bad_request_line", "the request line is not METHOD SP TARGET SP VERSION (other whitespace)");
  }
  // llhttp 8.1 joins obs-fold lines (RFC 9112 §5.2) into the value: a line starting with whitespace.
  size_t fold = std::min(head_.raw.find("\n "), head_.raw.find("\n\t"));
  if (fold != std::string::npos)
    return fail("obs_fold", "a header line starts with whitespace (obs-fold) at byte " + std::to_string(fold + 1));
  int hosts = 0;
  for (const auto& h : head_.headers) {
    for (unsigned char c : h.name) {
      if (is_tchar(c)) continue;
      if (c == ' ' || c == '\t')
        return fail("space_before_colon",
                    "whitespace between header name '" + h.name.substr(0, h.name.find_first_of(" \t")) + "' and the colon");
      return fail("invalid_header_name", "invalid character in a header name");
    }
    if (core::iequals(h.name, "host")) ++hosts;
  }
  if (type_ == Type::request && hosts > 1) return fail("duplicate_host", "more than one Host header");
  if (type_ == Type::request && hosts == 0 && head_.version == "HTTP/1.1" && head_.method != "CONNECT")
    return fail("missing_host", "HTTP/1.1 request without a Host header");
  return Status::head;
}

Http1Parser::Status Http1Parser::map_error(int errno_value, core::ByteView data) {
  auto err = static_cast<llhttp_errno_t>(errno_value);
  const char* reason = llhttp_get_error_reason(&p_->parser);
  std::string why = reason && *reason ? reason : llhttp_errno_name(err);
  // The byte llhttp stopped at: a NUL or a bare CR there names the smuggling attempt precisely.
  const char* at = llhttp_get_error_pos(&p_->parser);
  char bad = at && at >= data.data() && at < data.data() + data.size() ? *at : 'x';
  char before = at && at > data.data() && at <= data.data() + data.size() ? at[-1] : last_byte_;
  bool in_body = phase_ == Phase::body;
  switch (err) {
    case HPE_UNEXPECTED_CONTENT_LENGTH:
      return fail(why.find("Duplicate") != std::string::npos ? "duplicate_content_length" : "cl_te_conflict", why);
    case HPE_INVALID_TRANSFER_ENCODING: return fail("bad_transfer_encoding", why);
    case HPE_INVALID_CHUNK_SIZE: return fail("bad_chunked", why);
    case HPE_INVALID_CONTENT_LENGTH: return fail("bad_content_length", why);
    case HPE_LF_EXPECTED:
    case HPE_CR_EXPECTED:
    case HPE_STRICT:
      if (in_body) return fail("bad_chunked", why);
      return fail(bad == '\0' ? "nul_in_header" : "bare_cr", why);
    case HPE_INVALID_HEADER_TOKEN:
      if (bad == '\0') return fail("nul_in_header", why);
      if (bad == ' ' || bad == '\t' || before == ' ' || before == '\t')
        return fail("space_before_colon", why);
      if (bad == '\n') return fail("bare_lf", why);
      if (bad == '\r') return fail("bare_cr", why);
      return fail("invalid_header", why);
    case HPE_UNEXPECTED_SPACE: return fail("unexpected_whitespace", why);
    case HPE_INVALID_METHOD: return fail("bad_method", why);
    case HPE_INVALID_URL: return fail("bad_target", why);
    case HPE_INVALID_VERSION:
    case HPE_INVALID_CONSTANT: return fail("bad_version", why);  // "Expected HTTP/"
    case HPE_INVALID_STATUS: return fail("bad_status", why);
    default: return fail(in_body ? "bad_body" : "malformed_message", why);
  }
}

Http1Parser::Status Http1Parser::feed(core::ByteView data, size_t& consumed) {
  consumed = 0;
  if (phase_ == Phase::failed) return Status::error;
  if (phase_ == Phase::upgraded) return Status::upgrade;
  if (phase_ == Phase::done) start_message();
  p_->owner = this;
  size_t pos = 0;
  while (true) {
    p_->paused = Pause::none;
    core::ByteView rest = data.substr(pos);
    llhttp_errno_t err = llhttp_execute(&p_->parser, rest.data(), rest.size());
    size_t used = rest.size();
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE)
      used = static_cast<size_t>(llhttp_get_error_pos(&p_->parser) - rest.data());
    if (err == HPE_PAUSED) llhttp_resume(&p_->parser);
    if (err != HPE_OK && err != HPE_PAUSED && err != HPE_PAUSED_UPGRADE) {
      consumed = pos;
      return map_error(err, rest);
    }
    core::ByteView took = rest.substr(0, used);
    if (!took.empty()) last_byte_ = took.back();
    pos += used;
    consumed = pos;
    if (phase_ == Phase::head) {
      head_.raw.append(took);
      if (head_.raw.size() > kMaxHeadBytes)
        return fail("header_too_large", "message head is larger than " + std::to_string(kMaxHeadBytes / 1024) + " KiB");
    } else if (head_.chunked) {
      chunk_raw_.append(took);
    }
    switch (p_->paused) {
      case Pause::none:
        if (err == HPE_PAUSED_UPGRADE) {  // the message ended earlier; what follows is not HTTP
          phase_ = Phase::upgraded;
          return Status::upgrade;
        }
        return Status::need_more;
      case Pause::head: {
        phase_ = Phase::body;
        return check_head();
      }
      case Pause::chunk:
        // llhttp 8.1 takes any two bytes after chunk data as its CRLF: a smuggling vector.
        if (!chunk_raw_.ends_with("\r\n"))
          return fail("bad_chunked", "chunk data is not followed by CRLF");
        chunks_.push_back(std::move(chunk_raw_));
        chunk_raw_.clear();
        continue;
      case Pause::message: {
        if (phase_ == Phase::head) {  // no head pause: a response to HEAD or a tunnel-starting 2xx to CONNECT
          phase_ = Phase::body;
          if (check_head() == Status::error) return Status::error;
        }
        if (head_.chunked && !chunk_raw_.empty()) chunks_.push_back(std::move(chunk_raw_));
        chunk_raw_.clear();
        phase_ = head_.upgrade ? Phase::upgraded : Phase::done;
        return Status::complete;
      }
    }
  }
}

Http1Parser::Status Http1Parser::finish() {
  if (phase_ == Phase::failed) return Status::error;
  if (phase_ == Phase::done || phase_ == Phase::upgraded) return Status::need_more;
  if (phase_ == Phase::head && head_.raw.empty()) return Status::need_more;
  p_->paused = Pause::none;
  llhttp_errno_t err = llhttp_finish(&p_->parser);
  if ((err == HPE_OK || err == HPE_PAUSED) && p_->paused == Pause::message) {
    phase_ = Phase::done;
    return Status::complete;
  }
  return fail("truncated_message", phase_ == Phase::head ? "the connection closed inside a message head"
                                                         : "the connection closed inside a message body");
}

namespace {

core::Result<WholeResponse> parse_whole(Http1Parser& parser, core::ByteView raw) {
  size_t pos = 0;
  Http1Parser::Status s;
  do {
    size_t used = 0;
    s = parser.feed(raw.substr(pos), used);
    pos += used;
  } while (s == Http1Parser::Status::head);
  if (s == Http1Parser::Status::need_more) s = parser.finish();
  if (s != Http1Parser::Status::complete || (parser.head().status > 0 && parser.head().status < 200))
    return core::make_error(parser.error().empty() ? "incomplete, or an interim response" : parser.error());
  WholeResponse r;
  r.trailers = parser.trailers();
  r.head = parser.take_head();
  r.body = parser.take_body();
  r.chunks = parser.take_chunks();
  r.size = pos;
  return r;
}

}  // namespace

core::Result<WholeResponse> parse_whole_response(core::ByteView raw, std::string_view request_method) {
  Http1Parser parser(Http1Parser::Type::response);
  parser.set_request_method(request_method);
  return parse_whole(parser, raw);
}

core::Result<WholeRequest> parse_whole_request(core::ByteView raw) {
  Http1Parser parser(Http1Parser::Type::request);
  return parse_whole(parser, raw);
}

}  // namespace sluice::layer
