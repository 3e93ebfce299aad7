#include "replay/h2_request.hpp"

#include <nghttp2/nghttp2.h>

#include <cstring>

#include "core/ascii.hpp"
#include "layer/http1_wire.hpp"
#include "layer/nghttp2_fields.hpp"

namespace sluice::replay {

namespace {

bool forbidden_in_h2(std::string_view name) { return layer::is_connection_specific(name) || core::iequals(name, "host"); }

}  // namespace

struct H2Request::Session {
  H2Request& owner;
  nghttp2_session* session = nullptr;
  envelope::Headers fields;  // pseudo-headers first, then the others, lower case
  envelope::Headers trailers;
  core::Bytes body;
  size_t body_pos = 0;

  explicit Session(H2Request& o) : owner(o) {}
  ~Session() {
    if (session) nghttp2_session_del(session);
  }

  static Session& self(void* ud) { return *static_cast<Session*>(ud); }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                       const uint8_t* value, size_t valuelen, uint8_t, void* ud) {
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_RESPONSE &&
        std::string_view(reinterpret_cast<const char*>(name), namelen) == ":status")
      self(ud).owner.status_ = std::atoi(std::string(reinterpret_cast<const char*>(value), valuelen).c_str());
    return 0;
  }

  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
    if (frame->hd.stream_id == 1 && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
        (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA))
      self(ud).owner.done_ = true;
    return 0;
  }

  static int on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* ud) {
    H2Request& o = self(ud).owner;
    if (stream_id != 1) return 0;
    if (error_code && o.error_.empty()) o.error_ = std::string("the server reset the stream: ") + nghttp2_http2_strerror(error_code);
    o.done_ = true;
    return 0;
  }

  static ssize_t read_body(nghttp2_session* s, int32_t id, uint8_t* buf, size_t length, uint32_t* flags,
                           nghttp2_data_source*, void* ud) {
    Session& me = self(ud);
    size_t n = std::min(length, me.body.size() - me.body_pos);
    std::memcpy(buf, me.body.data() + me.body_pos, n);
    me.body_pos += n;
    if (me.body_pos == me.body.size()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!me.trailers.empty()) {
        auto nv = layer::to_nv(me.trailers);
        if (nghttp2_submit_trailer(s, id, nv.data(), nv.size()) == 0) *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      }
    }
    return static_cast<ssize_t>(n);
  }
};

H2Request::H2Request(const envelope::HttpMessage& m) : s_(std::make_unique<Session>(*this)) {
  Session& s = *s_;
  s.fields.push_back({":method", std::string(m.method)});
  s.fields.push_back({":scheme", m.scheme.empty() ? std::string("http") : std::string(m.scheme)});
  std::string authority = m.authority;
  for (const auto& h : m.headers)
    if (authority.empty() && core::iequals(h.name, "host")) authority = h.value;
  s.fields.push_back({":authority", authority});
  s.fields.push_back({":path", m.path.empty() ? std::string("/") : std::string(m.path)});
  for (const auto& h : m.headers) {
    if (forbidden_in_h2(h.name) || (core::iequals(h.name, "te") && !core::iequals(h.value, "trailers"))) continue;
    s.fields.push_back({core::to_lower(h.name), h.value});
  }
  for (const auto& t : m.trailers) s.trailers.push_back({core::to_lower(t.name), t.value});
  s.body = m.body;

  nghttp2_session_callbacks* cbs;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_header_callback(cbs, Session::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, Session::on_frame_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, Session::on_stream_close);
  nghttp2_session_client_new(&s.session, cbs, &s);
  nghttp2_session_callbacks_del(cbs);
  nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
  nghttp2_submit_settings(s.session, NGHTTP2_FLAG_NONE, iv, 1);
  auto nv = layer::to_nv(s.fields);
  nghttp2_data_provider prd;
  prd.source.ptr = nullptr;
  prd.read_callback = Session::read_body;
  bool has_body = !s.body.empty() || !s.trailers.empty();
  int32_t id = nghttp2_submit_request(s.session, nullptr, nv.data(), nv.size(), has_body ? &prd : nullptr, nullptr);
  if (id < 0) {
    error_ = std::string("cannot encode the request for HTTP/2: ") + nghttp2_strerror(id);
    done_ = true;
  }
}

H2Request::~H2Request() = default;

core::Bytes H2Request::output() {
  core::Bytes out;
  for (;;) {
    const uint8_t* data;
    ssize_t n = nghttp2_session_mem_send(s_->session, &data);
    if (n <= 0) break;
    out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
  return out;
}

void H2Request::input(core::ByteView data) {
  ssize_t n = nghttp2_session_mem_recv(s_->session, reinterpret_cast<const uint8_t*>(data.data()), data.size());
  if (n < 0 && !done_) {
    error_ = std::string("the server broke HTTP/2: ") + nghttp2_strerror(static_cast<int>(n));
    done_ = true;
  }
}

}  // namespace sluice::replay
