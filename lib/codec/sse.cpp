#include "codec/sse.hpp"

namespace sluice::codec {

core::Bytes SseParser::finish() {
  core::Bytes rest = std::move(current_.raw);
  rest += partial_;
  partial_.clear();
  after_cr_ = false;
  reset();
  return rest;
}

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
      if (c == '\n') {  // the LF of a CRLF whose CR, the last byte of a piece, ended the line already
        current_.raw.push_back('\n');
        start = i + 1;
        continue;
      }
    }
    if (c != '\n' && c != '\r') continue;
    partial_.append(body.substr(start, i - start));
    current_.raw += partial_;
    current_.raw.push_back(c);
    if (c == '\r' && i + 1 < body.size() && body[i + 1] == '\n') {
      current_.raw.push_back('\n');  // a CRLF within this piece: the block's bytes keep both
      ++i;
    } else {
      after_cr_ = c == '\r';
    }
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
    current_.dispatched = has_field_;
    emit(std::move(current_));
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

core::Bytes sse_encode(const envelope::SseMessage& m) {
  auto one_line = [](core::ByteView v) { return v.substr(0, v.find_first_of("\r\n")); };
  core::Bytes out;
  if (!m.id.empty()) (out += "id: ") += one_line(m.id), out += '\n';
  if (!m.event.empty()) (out += "event: ") += one_line(m.event), out += '\n';
  if (m.retry) (out += "retry: ") += std::to_string(*m.retry), out += '\n';
  if (!m.data.empty() || out.empty()) {
    // Data lines split where a reader splits them: at CRLF, LF or CR.
    core::ByteView d = m.data;
    while (true) {
      size_t end = d.find_first_of("\r\n");
      (out += "data: ") += d.substr(0, end), out += '\n';
      if (end == core::ByteView::npos) break;
      d.remove_prefix(end + (d[end] == '\r' && end + 1 < d.size() && d[end + 1] == '\n' ? 2 : 1));
    }
  }
  out += '\n';
  return out;
}

}  // namespace sluice::codec
