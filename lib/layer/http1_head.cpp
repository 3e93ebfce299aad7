#include "layer/http1_head.hpp"

#include <llhttp.h>

namespace sluice::layer {

struct RequestHeadParser::Llhttp {
  llhttp_t parser;
  llhttp_settings_t settings;
  RequestHeadParser* owner = nullptr;
  bool in_field = false;  // inside a header name split over several callbacks
};

struct HeadCallbacks {
  static RequestHeadParser& self(llhttp_t* p) { return *static_cast<RequestHeadParser::Llhttp*>(p->data)->owner; }
  static int on_method(llhttp_t* p, const char* at, size_t n) {
    self(p).head_.method.append(at, n);
    return 0;
  }
  static int on_url(llhttp_t* p, const char* at, size_t n) {
    self(p).head_.target.append(at, n);
    return 0;
  }
  static int on_field(llhttp_t* p, const char* at, size_t n) {
    auto* st = static_cast<RequestHeadParser::Llhttp*>(p->data);
    auto& h = self(p).head_.headers;
    if (!st->in_field) {
      h.emplace_back();
      st->in_field = true;
    }
    h.back().name.append(at, n);
    return 0;
  }
  static int on_field_complete(llhttp_t* p) {
    static_cast<RequestHeadParser::Llhttp*>(p->data)->in_field = false;
    return 0;
  }
  static int on_value(llhttp_t* p, const char* at, size_t n) {
    self(p).head_.headers.back().value.append(at, n);
    return 0;
  }
  static int on_headers_complete(llhttp_t*) { return HPE_PAUSED; }
};

namespace {
// RFC 9110 §5.6.2 tchar.
bool is_tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}
}  // namespace

RequestHeadParser::RequestHeadParser() : p_(std::make_unique<Llhttp>()) {
  llhttp_settings_init(&p_->settings);
  p_->settings.on_method = HeadCallbacks::on_method;
  p_->settings.on_url = HeadCallbacks::on_url;
  p_->settings.on_header_field = HeadCallbacks::on_field;
  p_->settings.on_header_field_complete = HeadCallbacks::on_field_complete;
  p_->settings.on_header_value = HeadCallbacks::on_value;
  p_->settings.on_headers_complete = HeadCallbacks::on_headers_complete;
  llhttp_init(&p_->parser, HTTP_REQUEST, &p_->settings);
  p_->parser.data = p_.get();
  p_->owner = this;
}

RequestHeadParser::~RequestHeadParser() = default;

RequestHeadParser::Status RequestHeadParser::feed(core::ByteView data, size_t& consumed) {
  consumed = 0;
  if (done_) return Status::done;
  if (!error_.empty()) return Status::error;
  p_->owner = this;
  llhttp_errno_t err = llhttp_execute(&p_->parser, data.data(), data.size());
  if (err == HPE_OK) {
    head_.raw.append(data);
    if (head_.raw.size() > kMaxHeadBytes) {
      error_name_ = "header_too_large";
      error_ = "request head is larger than " + std::to_string(kMaxHeadBytes / 1024) + " KiB";
      return Status::error;
    }
    return Status::need_more;
  }
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
    consumed = static_cast<size_t>(llhttp_get_error_pos(&p_->parser) - data.data());
    head_.raw.append(data.substr(0, consumed));
    if (head_.raw.size() > kMaxHeadBytes) {
      error_name_ = "header_too_large";
      error_ = "request head is larger than " + std::to_string(kMaxHeadBytes / 1024) + " KiB";
      return Status::error;
    }
    head_.version = "HTTP/" + std::to_string(p_->parser.http_major) + "." + std::to_string(p_->parser.http_minor);
    // llhttp lets whitespace before the colon through; a proxy that forwards it invites smuggling.
    // llhttp also joins obs-fold lines (RFC 9112 §5.2) into the value; a line that starts with
    // whitespace is exactly that.
    if (auto at = head_.raw.find("\n "), tab = head_.raw.find("\n\t"); at != std::string::npos || tab != std::string::npos) {
      error_name_ = "obs_fold";
      error_ = "a header line starts with whitespace (obs-fold) at byte " + std::to_string(std::min(at, tab) + 1);
      return Status::error;
    }
    for (const auto& h : head_.headers) {
      for (unsigned char c : h.name) {
        if (is_tchar(c)) continue;
        bool space = c == ' ' || c == '\t';
        error_name_ = space ? "space_before_colon" : "invalid_header_name";
        error_ = space ? "whitespace between header name '" + h.name.substr(0, h.name.find_first_of(" \t")) + "' and the colon"
                       : "invalid character in header name";
        return Status::error;
      }
    }
    done_ = true;
    return Status::done;
  }
  error_name_ = "malformed_request";
  error_ = llhttp_get_error_reason(&p_->parser) ? llhttp_get_error_reason(&p_->parser) : llhttp_errno_name(err);
  return Status::error;
}

}  // namespace sluice::layer
