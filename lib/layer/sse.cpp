#include "layer/sse.hpp"

namespace sluice::layer {

void SseParser::reset() {
  current_ = SseEvent{};
  has_field_ = has_data_ = false;
}

void SseParser::feed(core::ByteView body, const std::function<void(SseEvent&&)>& emit) {
  size_t start = 0;
  for (size_t i = 0; i < body.size(); ++i) {
    char c = body[i];
    if (after_cr_) {
      after_cr_ = false;
      if (c == '\n') {  // the LF of a CRLF whose CR ended the line already
        current_.raw.push_back('\n');
        start = i + 1;
        continue;
      }
    }
    if (c != '\n' && c != '\r') continue;
    partial_.append(body.substr(start, i - start));
    current_.raw += partial_;
    current_.raw.push_back(c);
    after_cr_ = c == '\r';
    core::Bytes text;
    text.swap(partial_);
    line(text, emit);
    start = i + 1;
  }
  partial_.append(body.substr(start));
}

void SseParser::line(core::ByteView text, const std::function<void(SseEvent&&)>& emit) {
  if (text.empty()) {  // dispatch
    // Dispatched at once, even after a CR (the LF of a CRLF then starts the next block's bytes):
    // an event must not wait for the byte after it.
    if (has_field_) emit(std::move(current_));
    reset();
    return;
  }
  if (text[0] == ':') return;  // comment
  core::ByteView name = text, value;
  if (auto colon = text.find(':'); colon != core::ByteView::npos) {
    name = text.substr(0, colon);
    value = text.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
  }
  if (name == "data") {
    if (has_data_) current_.data.push_back('\n');
    current_.data.append(value);
    has_data_ = true;
  } else if (name == "event") {
    current_.event = core::Bytes(value);
  } else if (name == "id") {
    if (value.find('\0') == core::ByteView::npos) current_.id = core::Bytes(value);
  } else if (name == "retry") {
    if (value.empty() || value.find_first_not_of("0123456789") != core::ByteView::npos || value.size() > 18) return;
    current_.retry = std::stoll(std::string(value));
  } else {
    return;  // unknown fields are ignored
  }
  has_field_ = true;
}

}  // namespace sluice::layer
