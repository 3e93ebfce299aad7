// Fuzz target: redaction on arbitrary text and on arbitrary HTTP/1 messages. Input: a mode byte, then
// the bytes. Properties: no crash, no sanitizer report; text keeps its length, only masks are written,
// and a second pass keeps every mask of the first (redacting never unmasks); a message that parsed
// before it was redacted, with a plain head (one CR LF per line), still parses after, to the redacted
// view's body (its framing kept or made again).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "layer/http1_parser.hpp"
#include "layer/http1_wire.hpp"
#include "step/redact.hpp"

using namespace sluice;

namespace {

const step::RedactPolicy& policy() {
  static const step::RedactPolicy p = *step::redact_policy("default");
  return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > 8192) return 0;
  std::string in(reinterpret_cast<const char*>(data + 1), size - 1);
  if ((data[0] & 1) == 0) {
    std::string text = in;
    step::Found found;
    step::redact_text(policy(), text, found);
    if (text.size() != in.size()) std::abort();
    for (size_t i = 0; i < text.size(); ++i)
      if (text[i] != in[i] && text[i] != '*') std::abort();  // only masks are written
    std::string again = text;
    step::redact_text(policy(), again, found);
    for (size_t i = 0; i < text.size(); ++i)
      if (text[i] == '*' && again[i] != '*') std::abort();
    return 0;
  }
  bool request = data[0] & 2;
  auto whole = request ? layer::parse_whole_request(in) : layer::parse_whole_response(in, "GET");
  if (!whole) return 0;
  envelope::Envelope e;
  e.stream_id = "c1";
  e.flow_id = "c1-0";
  e.protocol = envelope::Protocol::http;
  e.raw = in.substr(0, whole->size);
  envelope::HttpMessage m;
  m.kind = request ? envelope::HttpMessage::Kind::request : envelope::HttpMessage::Kind::response;
  m.method = whole->head.method;
  m.path = whole->head.target;
  m.status = whole->head.status;
  m.reason = whole->head.reason;
  m.version = "HTTP/1.1";
  m.headers = whole->head.headers;
  m.body = whole->body;
  m.trailers = whole->trailers;
  e.message = m;
  // A head whose lines are one per field, each ended by CR LF and nothing else, is masked in place;
  // another (lenient parsing: bare CR or LF, folded lines) has its bytes made again, which need not
  // read back the same: the property is checked on the first kind.
  size_t he = e.raw.find("\r\n\r\n");
  bool plain_head = he != std::string::npos;
  size_t crlf = 0;
  for (size_t i = 0; plain_head && i < he + 2; ++i) {
    if (e.raw[i] == '\r' && e.raw[i + 1] == '\n') ++crlf, ++i;
    else if (e.raw[i] == '\r' || e.raw[i] == '\n') plain_head = false;
  }
  plain_head = plain_head && crlf == m.headers.size() + 1;
  step::Redactor redactor(policy());
  if (!redactor.apply(e) || !plain_head) return 0;
  const auto& after = std::get<envelope::HttpMessage>(e.message);
  auto again = request ? layer::parse_whole_request(e.raw) : layer::parse_whole_response(e.raw, "GET");
  if (!again || again->body != after.body) std::abort();
  return 0;
}
