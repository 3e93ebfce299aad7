#include "step/process_step.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "core/json.hpp"
#include "core/time.hpp"
#include "codec/grpc.hpp"
#include "codec/sse.hpp"
#include "core/ascii.hpp"
#include "core/base64.hpp"
#include "codec/ws.hpp"
#include "envelope/record_codec.hpp"
#include "filter/expr.hpp"
#include "layer/http1_wire.hpp"

namespace sluice::step {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kFirstBackoff{100};
constexpr std::chrono::milliseconds kMaxBackoff{5000};
constexpr size_t kMaxLine = 64u << 20;  // an answer longer than this is not an answer

void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

// The line a unit goes to the child as: its record with bodies inline and "ask" added.
std::string unit_line(const envelope::Envelope& e, uint64_t ask, core::Value& sent) {
  core::Value v = envelope::to_value(e, envelope::Target::json, {.inline_bodies = true});
  v.add("ask", core::Value(static_cast<int64_t>(ask)));
  std::string line = core::json_write(v);
  line += '\n';
  sent = std::move(v);
  return line;
}

const core::Value* member(const core::Value& v, std::string_view key) { return v.is_object() ? v.find(key) : nullptr; }

}  // namespace

bool is_head_unit(const envelope::Envelope& e) {
  return e.overlay == "head" && !e.modified && std::holds_alternative<envelope::HttpMessage>(e.message);
}

std::optional<envelope::Envelope> head_unit_of(const envelope::Envelope& e, bool over_h2) {
  const auto* m = std::get_if<envelope::HttpMessage>(&e.message);
  if (!m || !e.overlay.empty() || e.modified || e.protocol != envelope::Protocol::http || m->method == "CONNECT")
    return std::nullopt;
  auto type = layer::find_header(m->headers, "content-type");
  bool events = type && core::iequals(type->substr(0, std::min<size_t>(type->size(), 17)), "text/event-stream");
  bool grpc = type && core::iequals(type->substr(0, std::min<size_t>(type->size(), 16)), "application/grpc");
  bool judged;
  if (over_h2 || m->version == "HTTP/2") {  // a message held whole that went past the limit
    judged = m->body_omitted > 0 && !events && !grpc;
  } else {
    bool streamed = false;
    for (const auto& [k, v] : e.tags) streamed |= k == "streamed" && v == "true";
    auto expect = layer::find_header(m->headers, "expect");
    bool request = m->kind == envelope::HttpMessage::Kind::request;
    // (An HTTP/1.1 client's request to an HTTP/2-only server is not tagged `streamed`: past the limit
    // it streamed all the same.)
    judged = m->body_omitted > 0 ||
             (streamed && ((!request && events) || (request && expect && core::iequals(*expect, "100-continue"))));
  }
  if (!judged) return std::nullopt;
  envelope::Envelope head = e;
  head.overlay = "head";
  auto& hm = std::get<envelope::HttpMessage>(head.message);
  hm.body.clear();
  hm.trailers.clear();
  hm.body_omitted = 0;
  if (over_h2 || m->version == "HTTP/2")
    head.raw.clear();
  else if (size_t end = head.raw.find("\r\n\r\n"); end != core::Bytes::npos)
    head.raw.resize(end + 4);
  std::erase_if(head.tags, [](const auto& t) { return t.first == "incomplete" || t.first == "streamed"; });
  return head;
}

void apply_head(envelope::Envelope& message, const envelope::Envelope& variant) {
  auto* m = std::get_if<envelope::HttpMessage>(&message.message);
  const auto* v = std::get_if<envelope::HttpMessage>(&variant.message);
  if (!m || !v) return;
  bool h2 = variant.raw.empty();  // a head over HTTP/2 has no bytes of its own
  envelope::Headers fields;
  for (const auto& h : v->headers)
    if (!layer::is_framing_field(h.name)) fields.push_back(h2 ? envelope::Header{core::to_lower(h.name), h.value} : h);
  for (const auto& h : m->headers)
    if (layer::is_framing_field(h.name)) fields.push_back(h2 ? envelope::Header{core::to_lower(h.name), h.value} : h);
  if (!h2) {
    size_t end = message.raw.find("\r\n\r\n");
    message.raw = variant.raw + (end == core::Bytes::npos ? core::Bytes() : message.raw.substr(end + 4));
  }
  m->method = v->method;
  m->path = v->path;
  if (h2) {
    m->scheme = v->scheme;
    m->authority = v->authority;
  }
  m->status = v->status;
  if (!h2) m->reason = v->reason;
  if (!h2 && m->kind == envelope::HttpMessage::Kind::request)
    if (auto host = layer::find_header(fields, "host")) m->authority = std::string(*host);
  m->headers = std::move(fields);
  message.tags.emplace_back("head_modified_by", variant.modified_by);
}

HttpOrigin http_origin(const envelope::Envelope& original) {
  HttpOrigin o;
  const auto* m = std::get_if<envelope::HttpMessage>(&original.message);
  if (!m) return o;
  o.h2 = m->version == "HTTP/2";
  o.head = is_head_unit(original);
  o.had_raw = !original.raw.empty();
  if (o.head)
    for (const auto& h : m->headers)
      if (layer::is_framing_field(h.name)) o.framing.push_back(h);
  return o;
}

void settle_http(const HttpOrigin& o, envelope::Envelope& e) {
  const auto* m = std::get_if<envelope::HttpMessage>(&e.message);
  if (!m) return;
  if (o.h2)
    e.raw.clear();  // HTTP/2 frames are made by the session that sends them: the variant keeps no bytes
  else if (o.head)
    e.raw = o.had_raw ? layer::encode_http1_head(*m, o.framing) : core::Bytes();  // the body's framing as it came
  else
    e.raw = layer::encode_http1(*m);  // its bytes are made from the message
}

bool settle_change(const envelope::Envelope& original, envelope::Envelope& e, bool raw_changed, std::string& why) {
  const auto* h2 = std::get_if<envelope::HttpMessage>(&original.message);
  if (h2 && h2->version == "HTTP/2") {
    if (raw_changed || !std::holds_alternative<envelope::HttpMessage>(e.message)) {
      why = "changed the raw bytes of an HTTP/2 message (change its message instead)";
      return false;
    }
    settle_http(http_origin(original), e);
  } else if (is_head_unit(original)) {
    if (raw_changed || !std::holds_alternative<envelope::HttpMessage>(e.message)) {
      why = "changed the raw bytes of a head (change its message instead)";
      return false;
    }
    settle_http(http_origin(original), e);
  } else if (raw_changed) {
    // the step edited the bytes: they are sent as it left them
  } else if (std::holds_alternative<envelope::HttpMessage>(e.message)) {
    settle_http(http_origin(original), e);  // the step edited the message: its bytes are made from it
  } else if (auto* w = std::get_if<envelope::WsMessage>(&e.message)) {
    // One frame, masked as the original was, compressed again when the original was.
    const auto* before = std::get_if<envelope::WsMessage>(&original.message);
    w->masked = before && before->masked;
    e.raw = codec::ws_encode(*w, w->masked, codec::ws_window_bits(e));
    std::erase_if(e.tags, [](const auto& t) { return t.first == "message_frames"; });
  } else if (auto* ev = std::get_if<envelope::SseMessage>(&e.message)) {
    e.raw = codec::sse_encode(*ev);  // one block, LF line ends
  } else if (auto* g = std::get_if<envelope::GrpcDataMessage>(&e.message)) {
    g->compressed = false;  // sent as it reads: uncompressed, whatever grpc-encoding was agreed
    e.raw = codec::grpc_frame(g->payload);
  } else if (std::holds_alternative<envelope::GrpcStartMessage>(e.message) ||
             std::holds_alternative<envelope::GrpcEndMessage>(e.message)) {
    // A call's start and end are fields (the layer writes them): nothing to encode.
  } else if (std::holds_alternative<envelope::RawMessage>(e.message)) {
    // A raw chunk's message has nothing to edit but its members; the bytes stay.
  } else {
    why = "changed the message of a unit it can only change the raw bytes of";
    return false;
  }
  return true;
}

bool is_unit(const envelope::Envelope& e) {
  if (!e.overlay.empty() || e.modified) return false;
  if (e.protocol == envelope::Protocol::raw) return true;
  if (const auto* w = std::get_if<envelope::WsMessage>(&e.message))  // a whole data message
    return e.protocol == envelope::Protocol::ws && w->fin && (w->opcode == 1 || w->opcode == 2);
  if (e.protocol == envelope::Protocol::sse) return std::holds_alternative<envelope::SseMessage>(e.message);
  if (e.protocol == envelope::Protocol::grpc || e.protocol == envelope::Protocol::grpc_web)
    // a call's start, each message, its end
    return std::holds_alternative<envelope::GrpcStartMessage>(e.message) ||
           std::holds_alternative<envelope::GrpcDataMessage>(e.message) ||
           std::holds_alternative<envelope::GrpcEndMessage>(e.message);
  if (e.protocol != envelope::Protocol::http) return false;
  const auto* m = std::get_if<envelope::HttpMessage>(&e.message);
  if (!m) return false;
  // What went on without waiting whole: a body past the limit, an event stream (its events are the
  // units), and over HTTP/2 the streams by nature (extended CONNECT, gRPC calls).
  if (m->body_omitted > 0) return false;
  auto type_is = [&](std::string_view prefix) {
    for (const auto& h : m->headers)
      if (core::iequals(h.name, "content-type") && core::iequals(std::string_view(h.value).substr(0, prefix.size()), prefix))
        return true;
    return false;
  };
  if (type_is("text/event-stream")) return false;
  if (m->version != "HTTP/2") return true;
  return m->method != "CONNECT" && !type_is("application/grpc");
}

// What a step declared it wants (formats/STEP.md, "Interest"); a unit outside it is not sent to it.
struct Interest {
  std::optional<filter::Filter> filter;
  std::vector<envelope::Protocol> protocols;  // empty: every protocol
  std::vector<envelope::Direction> directions;  // empty: both
  bool cancel = false;  // the step wants {"type": "cancel", "ask": N} when a unit it has is cancelled
  bool heads = true, wholes = true;  // "phase": the heads of streamed messages, whole units

  bool wants(const envelope::Envelope& e) const {
    if (!(is_head_unit(e) ? heads : wholes)) return false;
    if (!protocols.empty() && std::find(protocols.begin(), protocols.end(), e.protocol) == protocols.end())
      return false;
    if (!directions.empty() && std::find(directions.begin(), directions.end(), e.direction) == directions.end())
      return false;
    return !filter || filter->matches(filter::FlowView{{&e}, {}});
  }
};

struct ProcessStep::Impl {
  ProcessStepOptions options;
  std::string name;
  std::shared_ptr<const Interest> interest;  // under mu; null: everything

  struct InFlight {
    envelope::Envelope original;
    core::Value sent;
    pipeline::Resume resume;
    Clock::time_point deadline;
  };

  std::mutex mu;
  std::map<uint64_t, InFlight> in_flight;
  std::map<uint64_t, Clock::time_point> cancelled;  // asks cancelled while the step had them, until when a late answer is ignored
  std::string to_child;  // queued bytes for the child's stdin
  uint64_t next_ask = 1;
  bool up = false;        // a child is running and takes units
  bool stopping = false;
  int wake[2] = {-1, -1};

  // Owned by the thread.
  pid_t pid = -1;
  int in = -1, out = -1, err = -1;
  std::string out_buf, err_buf;
  std::chrono::milliseconds backoff = kFirstBackoff;
  Clock::time_point restart_at = Clock::now();
  std::thread thread;

  explicit Impl(ProcessStepOptions o) : options(std::move(o)) {
    name = options.name.empty() ? "step:" + options.command : options.name;
    if (::pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) wake[0] = wake[1] = -1;
    // Started here, so that the first unit finds it running.
    if (!spawn()) error_record("step_failed", "cannot start '" + options.command + "': " + std::strerror(errno));
    thread = std::thread([this] { run(); });
  }

  void poke() {
    char c = 1;
    [[maybe_unused]] auto n = ::write(wake[1], &c, 1);
  }

  void say(const std::string& line) { std::fprintf(stderr, "sluice: %s: %s\n", name.c_str(), line.c_str()); }

  void error_record(const std::string& code, const std::string& message) {
    say(message);
    if (!options.on_record) return;
    envelope::ErrorRecord r;
    r.time = core::now_wall();
    r.code = code;
    r.message = name + ": " + message;
    r.extra.push_back({"step", core::Value(name)});
    options.on_record(envelope::Record{std::move(r)});
  }

  pipeline::Outcome policy_outcome() const {
    return options.on_error == OnError::kill ? pipeline::Outcome::kill : pipeline::Outcome::next;
  }
  pipeline::Decision policy(const envelope::Envelope& original) const {
    return pipeline::Decision{policy_outcome(), original, std::nullopt};
  }

  bool spawn() {
    int pin[2], pout[2], perr[2];
    if (::pipe2(pin, O_CLOEXEC) != 0) return false;
    if (::pipe2(pout, O_CLOEXEC) != 0) {
      ::close(pin[0]), ::close(pin[1]);
      return false;
    }
    if (::pipe2(perr, O_CLOEXEC) != 0) {
      ::close(pin[0]), ::close(pin[1]), ::close(pout[0]), ::close(pout[1]);
      return false;
    }
    pid_t child = ::fork();
    if (child == 0) {
      ::setpgid(0, 0);  // its own group: a shell's children are stopped with it
      ::dup2(pin[0], 0);
      ::dup2(pout[1], 1);
      ::dup2(perr[1], 2);
      // Nothing else of the proxy's (listening sockets, client connections, the capture): a step that
      // outlived us must not hold our port. close_range is one system call; the loop is for old kernels.
      if (::close_range(3, ~0U, 0) != 0)
        for (int fd = 3; fd < 65536; ++fd) ::close(fd);
      ::signal(SIGPIPE, SIG_DFL);
      ::execl("/bin/sh", "sh", "-c", options.command.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(pin[0]), ::close(pout[1]), ::close(perr[1]);
    if (child < 0) {
      ::close(pin[1]), ::close(pout[0]), ::close(perr[0]);
      return false;
    }
    pid = child;
    in = pin[1], out = pout[0], err = perr[0];
    set_nonblocking(in), set_nonblocking(out), set_nonblocking(err);
    out_buf.clear();
    err_buf.clear();
    {
      std::lock_guard lock(mu);
      interest.reset();  // a new child declares its own
    }
    std::string header = core::json_write(envelope::to_value(envelope::Record{options.header}, envelope::Target::json));
    header += '\n';
    std::lock_guard lock(mu);
    to_child = header;  // anything queued for an earlier child was answered with the policy
    up = true;
    return true;
  }

  // The child is gone or useless: every unit in flight gets the policy; a restart after the backoff.
  void fail(const std::string& code, const std::string& why) {
    if (pid > 0) {
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      pid = -1;
    }
    for (int* fd : {&in, &out, &err})
      if (*fd >= 0) ::close(*fd), *fd = -1;
    std::map<uint64_t, InFlight> failed;
    {
      std::lock_guard lock(mu);
      failed.swap(in_flight);
      to_child.clear();
      up = false;
    }
    error_record(code, why + (failed.empty() ? "" : "; " + std::to_string(failed.size()) + " unit(s) in flight " +
                                                        (options.on_error == OnError::kill ? "killed" : "passed on")) +
                           "; restarting in " + std::to_string(backoff.count()) + " ms");
    for (auto& [ask, f] : failed) f.resume(policy(f.original));
    restart_at = Clock::now() + backoff;
    backoff = std::min(backoff * 2, kMaxBackoff);
  }

  // Why the child's output ended: its exit, if it comes within half a second.
  std::string exit_status() {
    int status = 0;
    for (int i = 0; i < 50; ++i) {
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
        if (WIFSIGNALED(status)) return std::string("was killed by signal ") + ::strsignal(WTERMSIG(status));
        return "exited";
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return "closed its standard output";
  }

  // One answer line; false when it is not a valid answer (the step is then failed by the caller).
  bool answer(std::string_view line, std::string& why) {
    auto parsed = core::json_parse(line);
    if (!parsed) {
      why = "wrote something that is not JSON: " + parsed.error().message;
      return false;
    }
    core::Value v = std::move(*parsed);
    if (const core::Value* t = member(v, "type"); t && t->is_string() && t->as_string() == "interest")
      return declare(v, why);
    const core::Value* ask_v = member(v, "ask");
    if (!ask_v || !ask_v->is_int()) {
      why = "wrote a line without an \"ask\" number";
      return false;
    }
    uint64_t ask = static_cast<uint64_t>(ask_v->as_int());
    InFlight f;
    {
      std::lock_guard lock(mu);
      if (cancelled.erase(ask)) return true;  // the unit was cancelled: a late answer is ignored
      auto it = in_flight.find(ask);
      if (it == in_flight.end()) {
        why = "answered ask " + std::to_string(ask) + ", which is not waiting for an answer";
        return false;
      }
      f = std::move(it->second);
      in_flight.erase(it);
    }
    auto decision = decide(v, f, why);
    if (!decision) {
      f.resume(policy(f.original));
      return false;
    }
    backoff = kFirstBackoff;  // a working child
    f.resume(std::move(*decision));
    return true;
  }

  // {"type": "interest", "filter": EXPR, "protocols": [...], "directions": [...]}: every member optional.
  bool declare(const core::Value& v, std::string& why) {
    auto in = std::make_shared<Interest>();
    if (const core::Value* f = member(v, "filter"); f && !f->is_null()) {
      if (!f->is_string()) {
        why = "declared an interest whose \"filter\" is not a string";
        return false;
      }
      auto parsed = filter::Filter::parse(f->as_string());
      if (!parsed) {
        why = "declared an interest with a bad filter: " + parsed.error().message;
        return false;
      }
      in->filter = std::move(*parsed);
    }
    auto names = [&](const char* key, auto parse, auto& into) {
      const core::Value* list = member(v, key);
      if (!list) return true;
      if (!list->is_array()) {
        why = std::string("declared an interest whose \"") + key + "\" is not a list";
        return false;
      }
      for (const auto& item : list->as_array()) {
        auto value = item.is_string() ? parse(item.as_string()) : std::nullopt;
        if (!value) {
          why = std::string("declared an interest with an unknown member of \"") + key + "\"";
          return false;
        }
        into.push_back(*value);
      }
      return true;
    };
    auto protocol = [](const std::string& s) -> std::optional<envelope::Protocol> {
      for (auto p : {envelope::Protocol::http, envelope::Protocol::ws, envelope::Protocol::grpc,
                     envelope::Protocol::grpc_web, envelope::Protocol::sse, envelope::Protocol::raw})
        if (envelope::to_string(p) == s) return p;
      return std::nullopt;
    };
    if (!names("protocols", protocol, in->protocols)) return false;
    if (!names("directions", envelope::parse_direction, in->directions)) return false;
    if (const core::Value* phase = member(v, "phase"); phase && !phase->is_null()) {
      std::vector<std::string> phases;
      auto name = [](const std::string& s) { return s == "head" || s == "whole" ? std::optional(s) : std::nullopt; };
      if (phase->is_string()) {
        auto p = name(phase->as_string());
        if (p) phases.push_back(*p);
      } else if (!names("phase", name, phases)) {
        return false;
      }
      if (phases.empty()) {
        why = "declared an interest whose \"phase\" is not \"head\", \"whole\" or a list of them";
        return false;
      }
      in->heads = std::find(phases.begin(), phases.end(), "head") != phases.end();
      in->wholes = std::find(phases.begin(), phases.end(), "whole") != phases.end();
    }
    if (const core::Value* c = member(v, "cancel"); c && !c->is_null()) {
      if (!c->is_bool()) {
        why = "declared an interest whose \"cancel\" is not true or false";
        return false;
      }
      in->cancel = c->as_bool();
    }
    std::lock_guard lock(mu);
    interest = std::move(in);
    return true;
  }

  std::optional<pipeline::Decision> decide(core::Value& v, const InFlight& f, std::string& why) {
    const core::Value* type = member(v, "type");
    std::string t = type && type->is_string() ? type->as_string() : "";
    if (t == "verdict") {
      const core::Value* o = member(v, "outcome");
      std::string outcome = o && o->is_string() ? o->as_string() : "";
      if (outcome == "next") return pipeline::Decision{pipeline::Outcome::next, f.original, std::nullopt};
      if (outcome == "whole")  // of a head: bring the whole message (elsewhere: next)
        return pipeline::Decision{is_head_unit(f.original) ? pipeline::Outcome::whole : pipeline::Outcome::next,
                                  f.original, std::nullopt};
      if (outcome == "drop") return pipeline::Decision{pipeline::Outcome::drop, f.original, std::nullopt};
      if (outcome == "kill") return pipeline::Decision{pipeline::Outcome::kill, f.original, std::nullopt};
      if (outcome == "respond") {
        auto reply = make_reply(member(v, "reply"), f.original, why);
        if (!reply) return std::nullopt;
        return pipeline::Decision{pipeline::Outcome::respond, f.original, std::move(reply)};
      }
      why = "answered with an unknown outcome '" + outcome + "' (next, drop, kill, respond or whole)";
      return std::nullopt;
    }
    if (t != "envelope") {
      why = "answered with a record of type '" + t + "' (an envelope or a verdict)";
      return std::nullopt;
    }
    // Unchanged: what came back is what was sent (the member order aside, "ask" included).
    const core::Value* raw = member(v, "raw");
    const core::Value* msg = member(v, "message");
    bool raw_same = raw && member(f.sent, "raw") && *raw == *member(f.sent, "raw");
    bool msg_same = msg && member(f.sent, "message") && *msg == *member(f.sent, "message");
    if (raw_same && msg_same) return pipeline::Decision{pipeline::Outcome::next, f.original, std::nullopt};
    auto& obj = v.as_object();
    obj.erase(std::remove_if(obj.begin(), obj.end(), [](const core::Member& m) { return m.key == "ask"; }), obj.end());
    auto rec = envelope::from_value(std::move(v));
    if (!rec || !std::holds_alternative<envelope::Envelope>(*rec)) {
      why = "answered with an envelope that does not parse: " + (rec ? std::string("not an envelope") : rec.error().message);
      return std::nullopt;
    }
    auto& changed = std::get<envelope::Envelope>(*rec);
    // The same message written otherwise (members in another order, a body as base64) is no change.
    if (!raw_same && changed.raw == f.original.raw) raw_same = true;
    if (raw_same && changed.message == f.original.message)
      return pipeline::Decision{pipeline::Outcome::next, f.original, std::nullopt};
    // Only what a step may change is taken: the bytes and the message. Identity and context stay.
    envelope::Envelope e = f.original;
    e.message = std::move(changed.message);
    if (!raw_same) e.raw = std::move(changed.raw);
    if (!settle_change(f.original, e, !raw_same, why)) return std::nullopt;
    return pipeline::Decision{pipeline::Outcome::next, std::move(e), std::nullopt};
  }

  // A step's answer to a gRPC call (formats/STEP.md): its messages, then grpc-status and grpc-message
  // as trailers (gRPC-Web: in its trailer frame); `metadata` as response fields.
  static bool grpc_reply(const core::Value& r, envelope::HttpMessage& m, bool web, std::string& why) {
    if (web)
      m.headers = {{"content-type", "application/grpc-web+proto"}};
    else
      m.headers = {{"content-type", "application/grpc"}, {"transfer-encoding", "chunked"}};
    if (const auto* md = r.find("metadata"); md && md->is_array()) {
      for (const auto& pair : md->as_array()) {
        if (!pair.is_array() || pair.as_array().size() != 2 || !pair.as_array()[0].is_string() ||
            !pair.as_array()[1].is_string()) {
          why = "answered a gRPC call with metadata that is not [NAME, VALUE]";
          return false;
        }
        m.headers.push_back({pair.as_array()[0].as_string(), pair.as_array()[1].as_string()});
      }
    }
    if (const auto* msgs = r.find("messages"); msgs && msgs->is_array()) {
      for (const auto& msg : msgs->as_array()) {
        std::optional<core::Bytes> bytes;
        if (msg.is_string()) {
          bytes = msg.as_string();
        } else if (const auto* b = msg.is_object() ? msg.find("base64") : nullptr; b && b->is_string()) {
          bytes = core::base64_decode(b->as_string());
        }
        if (!bytes) {
          why = "answered a gRPC call with a message that is neither a string nor {\"base64\": ...}";
          return false;
        }
        m.body += codec::grpc_frame(*bytes);
      }
    }
    int64_t status = 0;
    if (const auto* st = r.find("grpc_status"); st && st->is_int()) status = st->as_int();
    m.trailers.push_back({"grpc-status", std::to_string(status)});
    if (const auto* msg = r.find("grpc_message"); msg && msg->is_string() && !msg->as_string().empty())
      m.trailers.push_back({"grpc-message", msg->as_string()});
    if (web) m.body += codec::grpc_web_trailer_frame(std::exchange(m.trailers, {}));
    return true;
  }

  pipeline::Reply make_reply(const core::Value* r, const envelope::Envelope& request, std::string& why) {
    if (!r || !r->is_object()) {
      why = "answered respond without a \"reply\" object";
      return std::nullopt;
    }
    envelope::Envelope reply = envelope::reply_to(request, core::now_wall());
    reply.protocol = request.protocol;
    reply.tags.emplace_back("synthesized", name);
    envelope::HttpMessage m;
    m.kind = envelope::HttpMessage::Kind::response;
    m.version = "HTTP/1.1";
    m.status = 200;
    m.reason = "OK";
    if (std::holds_alternative<envelope::GrpcStartMessage>(request.message)) {
      if (!grpc_reply(*r, m, request.protocol == envelope::Protocol::grpc_web, why)) return std::nullopt;
      reply.protocol = envelope::Protocol::http;
      reply.raw = layer::encode_http1(m);
      reply.message = std::move(m);
      return reply;
    }
    if (const auto* s = r->find("status"); s && s->is_int()) m.status = static_cast<int>(s->as_int());
    if (const auto* s = r->find("reason"); s && s->is_string()) m.reason = s->as_string();
    if (const auto* h = r->find("headers"); h && h->is_array()) {
      for (const auto& pair : h->as_array()) {
        if (!pair.is_array() || pair.as_array().size() != 2 || !pair.as_array()[0].is_string() ||
            !pair.as_array()[1].is_string()) {
          why = "answered respond with a header that is not [NAME, VALUE]";
          return std::nullopt;
        }
        m.headers.push_back({pair.as_array()[0].as_string(), pair.as_array()[1].as_string()});
      }
    }
    if (const auto* b = r->find("body"); b && b->is_string()) m.body = b->as_string();
    reply.raw = layer::encode_http1(m);
    reply.message = std::move(m);
    return reply;
  }

  // Reads what is there on fd into buf; false at the end of the file (or an error).
  static bool drain(int fd, std::string& buf) {
    char chunk[65536];
    while (true) {
      ssize_t n = ::read(fd, chunk, sizeof chunk);
      if (n > 0) {
        buf.append(chunk, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
      if (n < 0 && errno == EINTR) continue;
      return false;
    }
  }

  void run() {
    while (true) {
      {
        std::lock_guard lock(mu);
        if (stopping) break;
      }
      auto now = Clock::now();
      if (pid < 0 && now >= restart_at && !spawn()) {
        error_record("step_failed", "cannot start '" + options.command + "': " + std::strerror(errno));
        restart_at = now + backoff;
        backoff = std::min(backoff * 2, kMaxBackoff);
      }
      // Write what is queued, as far as the pipe takes it.
      bool want_write = false;
      if (in >= 0) {
        std::lock_guard lock(mu);
        while (!to_child.empty()) {
          ssize_t n = ::write(in, to_child.data(), to_child.size());
          if (n > 0) {
            to_child.erase(0, static_cast<size_t>(n));
            continue;
          }
          if (n < 0 && errno == EINTR) continue;
          break;  // EAGAIN: the child reads slower than we write; EPIPE: its exit is seen below
        }
        want_write = !to_child.empty();
      }
      // The nearest deadline of a unit in flight, or the restart.
      Clock::time_point wake_at = now + std::chrono::seconds(1);
      std::optional<uint64_t> late;
      {
        std::lock_guard lock(mu);
        for (const auto& [ask, f] : in_flight) {
          if (f.deadline <= now) late = ask;
          wake_at = std::min(wake_at, f.deadline);
        }
        std::erase_if(cancelled, [&](const auto& c) { return c.second <= now; });  // too late even to be late
      }
      if (late) {
        fail("step_timeout", "did not answer ask " + std::to_string(*late) + " within " +
                                 std::to_string(options.timeout.count()) + " ms");
        continue;
      }
      if (pid < 0) wake_at = std::min(wake_at, restart_at);
      pollfd fds[4];
      nfds_t n = 0;
      fds[n++] = {wake[0], POLLIN, 0};
      int out_i = -1, err_i = -1;
      if (out >= 0) out_i = static_cast<int>(n), fds[n++] = {out, POLLIN, 0};
      if (err >= 0) err_i = static_cast<int>(n), fds[n++] = {err, POLLIN, 0};
      if (in >= 0 && want_write) fds[n++] = {in, POLLOUT, 0};  // wakes the loop to write more
      auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(wake_at - now).count();
      ::poll(fds, n, static_cast<int>(std::clamp<int64_t>(wait, 0, 1000)));
      if (fds[0].revents) {
        char sink[256];
        while (::read(wake[0], sink, sizeof sink) > 0) {
        }
      }
      if (err_i >= 0 && fds[err_i].revents) {
        bool open = drain(err, err_buf);
        size_t nl;
        while ((nl = err_buf.find('\n')) != std::string::npos) {
          say(err_buf.substr(0, nl));
          err_buf.erase(0, nl + 1);
        }
        if (!open) {
          if (!err_buf.empty()) say(err_buf);
          err_buf.clear();
          ::close(err);
          err = -1;
        }
      }
      if (out_i >= 0 && fds[out_i].revents) {
        bool open = drain(out, out_buf);
        size_t nl, start = 0;
        std::string why;
        while ((nl = out_buf.find('\n', start)) != std::string::npos) {
          std::string_view line(out_buf.data() + start, nl - start);
          start = nl + 1;
          if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
          if (!answer(line, why)) break;
        }
        if (!why.empty()) {
          fail("step_failed", why);
          continue;
        }
        out_buf.erase(0, start);
        if (out_buf.size() > kMaxLine) {
          fail("step_failed", "wrote a line longer than 64 MiB");
          continue;
        }
        if (!open) {
          fail("step_exited", exit_status());
          continue;
        }
      }
    }
    // Stopping: the child's stdin closes (its end of input), it has a second to exit.
    if (in >= 0) ::close(in), in = -1;
    if (pid > 0) {
      for (int i = 0; i < 100; ++i) {
        if (::waitpid(pid, nullptr, WNOHANG) == pid) {
          pid = -1;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      if (pid > 0) {
        ::kill(-pid, SIGKILL);
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        pid = -1;
      }
    }
    if (out >= 0) {
      drain(out, out_buf);
      ::close(out), out = -1;
    }
    if (err >= 0) {
      drain(err, err_buf);
      for (size_t nl; (nl = err_buf.find('\n')) != std::string::npos; err_buf.erase(0, nl + 1))
        say(err_buf.substr(0, nl));
      ::close(err), err = -1;
    }
  }

  pipeline::Outcome process(envelope::Envelope& env, const pipeline::Resume& resume) {
    if (!is_unit(env) && !is_head_unit(env)) return pipeline::Outcome::next;
    std::lock_guard lock(mu);
    if (interest && !interest->wants(env)) return pipeline::Outcome::next;  // not sent: the fast path
    if (stopping || !up) return policy_outcome();  // the child is down: the policy at once
    uint64_t ask = next_ask++;
    InFlight f;
    to_child += unit_line(env, ask, f.sent);
    f.original = env;
    f.resume = resume;
    f.deadline = Clock::now() + options.timeout;
    in_flight.emplace(ask, std::move(f));
    poke();
    return pipeline::Outcome::held;
  }

  // The units of a client connection that is gone: resumed now (as they came: nothing acts on the
  // verdict), the step told when it asked to be, a late answer ignored.
  template <typename Pred>
  void cancel_if(Pred gone_with) {
    std::vector<InFlight> gone;
    {
      std::lock_guard lock(mu);
      for (auto it = in_flight.begin(); it != in_flight.end();) {
        if (!gone_with(it->second.original)) {
          ++it;
          continue;
        }
        cancelled[it->first] = Clock::now() + options.timeout;
        if (interest && interest->cancel && up)
          to_child += "{\"type\":\"cancel\",\"ask\":" + std::to_string(it->first) + "}\n";
        gone.push_back(std::move(it->second));
        it = in_flight.erase(it);
      }
      if (!gone.empty()) poke();
    }
    for (auto& f : gone) f.resume(pipeline::Decision{pipeline::Outcome::next, f.original, std::nullopt});
  }

  void stop() {
    {
      std::lock_guard lock(mu);
      if (stopping) return;
      stopping = true;
    }
    poke();
    if (thread.joinable()) thread.join();
    std::lock_guard lock(mu);
    in_flight.clear();
    for (int& fd : wake)
      if (fd >= 0) ::close(fd), fd = -1;
  }
};

ProcessStep::ProcessStep(ProcessStepOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
ProcessStep::~ProcessStep() { stop(); }

std::string_view ProcessStep::name() const { return impl_->name; }

pipeline::Outcome ProcessStep::process(envelope::Envelope& env, pipeline::Reply&, const pipeline::Resume& resume) {
  return impl_->process(env, resume);
}

void ProcessStep::stop() { impl_->stop(); }

void ProcessStep::cancel(std::string_view conn_id) {
  impl_->cancel_if([conn_id](const envelope::Envelope& e) { return e.context.conn_id == conn_id; });
}

void ProcessStep::cancel_stream(std::string_view stream_id) {
  impl_->cancel_if([stream_id](const envelope::Envelope& e) { return e.stream_id == stream_id; });
}

}  // namespace sluice::step
