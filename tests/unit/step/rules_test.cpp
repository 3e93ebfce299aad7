// Rule files (step/rules.hpp): parse errors name the rule and why; each HTTP action on a message, its
// bytes made again; JSON Pointer edits, query and form pairs; WebSocket and raw units.
#include <gtest/gtest.h>

#include "core/json.hpp"
#include "layer/http1_wire.hpp"
#include "step/rules.hpp"

using namespace sluice;
using step::RuleFile;

namespace {

std::shared_ptr<const RuleFile> parse(const std::string& json) {
  auto doc = core::json_parse(json);
  EXPECT_TRUE(doc) << json;
  auto file = RuleFile::parse(*doc, "r.json");
  EXPECT_TRUE(file) << (file ? "" : file.error().message);
  return file ? *file : nullptr;
}

std::string error_of(const std::string& json) {
  auto doc = core::json_parse(json);
  if (!doc) return "not JSON";
  auto file = RuleFile::parse(*doc, "r.json");
  return file ? std::string() : file.error().message;
}

envelope::Envelope request(std::string path, envelope::Headers headers, std::string body) {
  envelope::Envelope e;
  e.protocol = envelope::Protocol::http;
  e.direction = envelope::Direction::send;
  envelope::HttpMessage m;
  m.kind = envelope::HttpMessage::Kind::request;
  m.method = "POST";
  m.scheme = "http";
  m.authority = "a.test";
  m.path = std::move(path);
  m.version = "HTTP/1.1";
  m.headers = std::move(headers);
  m.body = std::move(body);
  e.raw = layer::encode_http1(m);
  e.message = std::move(m);
  return e;
}

const envelope::HttpMessage& http(const envelope::Envelope& e) { return std::get<envelope::HttpMessage>(e.message); }

}  // namespace

TEST(Rules, ErrorsNameTheFileTheRuleAndWhy) {
  EXPECT_EQ(error_of(R"js({"rules": 1})js"), "r.json: a rule file is a JSON object with a \"rules\" array");
  EXPECT_EQ(error_of(R"js({"rules": [{"name": "x", "actions": [{"action": "set_header", "name": "A"}]}]})js"),
            "r.json: rule 1 (x): action 1 (set_header): needs \"value\"");
  EXPECT_EQ(error_of(R"js({"rules": [{"actions": [{"action": "drop"}]}]})js"),
            "r.json: rule 1: action 1 unknown action \"drop\" for http (one of: set_header, add_header, remove_header, "
            "replace_body, json_set, json_delete, set_query, remove_query, set_form, remove_form, set_method, set_url, "
            "set_status, map_remote, map_local, block)");
  EXPECT_EQ(error_of(R"js({"rules": [{"actions": [{"action": "remove_header", "name": "A", "value": "b"}]}]})js"),
            "r.json: rule 1: action 1 (remove_header): unknown member \"value\"");
  EXPECT_EQ(error_of(R"js({"rules": [{"actions": [{"action": "set_header", "name": "A B", "value": "b"}]}]})js"),
            "r.json: rule 1: action 1 (set_header): a field needs a name without spaces or colons and a value on one line");
  EXPECT_EQ(error_of(R"js({"rules": [{"protocol": "raw", "actions": [{"action": "replace", "pattern": "a", "replacement": "\\2"}]}]})js"),
            "r.json: rule 1: action 1 (replace): invalid replacement \\2 (invalid group reference 2)");
}

TEST(Rules, JsonPointerQueryAndFormEdits) {
  auto file = parse(R"js({"rules": [
    {"name": "j", "filter": "~u /j", "actions": [
      {"action": "json_set", "path": "/a~1b/0", "value": {"x": [1]}},
      {"action": "json_set", "path": "/list/-", "value": null},
      {"action": "json_delete", "path": "/gone"},
      {"action": "json_delete", "path": "/missing/deeper"}]},
    {"name": "q", "filter": "~u /q", "actions": [
      {"action": "set_query", "name": "a b", "value": "c&d"}, {"action": "remove_query", "name": "x"}]},
    {"name": "f", "filter": "~u /f", "actions": [
      {"action": "set_form", "name": "k", "value": "v w"}, {"action": "remove_form", "name": "drop me"}]}]})js");
  ASSERT_TRUE(file);
  EXPECT_EQ(file->size(), 3u);
  filter::FlowView flow;
  pipeline::Reply reply;
  std::vector<std::string_view> applied;

  auto j = request("/j", {{"Content-Type", "application/json"}, {"Content-Length", "41"}},
                   R"js({"a/b": [0, 1], "list": [], "gone": true})js");
  flow.envelopes = {&j};
  EXPECT_EQ(file->apply_http(j, false, flow, reply, applied), pipeline::Outcome::next);
  EXPECT_EQ(http(j).body, R"js({"a/b":[{"x":[1]},1],"list":[null]})js");
  EXPECT_EQ(http(j).headers[1].value, std::to_string(http(j).body.size()));  // Content-Length follows
  EXPECT_EQ(applied, std::vector<std::string_view>{"j"});

  applied.clear();
  auto q = request("http://a.test/q?x=1&a%20b=old&y=2&a+b=again", {}, "");
  flow.envelopes = {&q};
  file->apply_http(q, false, flow, reply, applied);
  EXPECT_EQ(http(q).path, "http://a.test/q?a%20b=c%26d&y=2&a+b=again");  // (in a query, + is not a space)

  applied.clear();
  auto f = request("/f", {{"Content-Type", "application/x-www-form-urlencoded"}}, "drop+me=1&k=old&k=twice&z=3");
  flow.envelopes = {&f};
  file->apply_http(f, false, flow, reply, applied);
  EXPECT_EQ(http(f).body, "k=v%20w&z=3");
  // A head (a streamed message) gets no body action.
  applied.clear();
  auto h = request("/f", {{"Content-Type", "application/x-www-form-urlencoded"}}, "");
  file->apply_http(h, true, flow, reply, applied);
  EXPECT_TRUE(applied.empty());
}

TEST(Rules, BlockStatusAndUnits) {
  auto file = parse(R"js({"rules": [
    {"filter": "~u /block", "direction": "request", "actions": [{"action": "block", "status": 403}]},
    {"direction": "response", "actions": [{"action": "set_status", "status": 404}]},
    {"name": "w", "protocol": "websocket", "actions": [{"action": "replace", "pattern": "a(\\d)", "replacement": "b\\1", "opcode": "text"}]},
    {"name": "r", "protocol": "raw", "actions": [{"action": "replace", "pattern": "\\x00", "replacement": "Z"}]}]})js");
  ASSERT_TRUE(file);
  filter::FlowView flow;
  pipeline::Reply reply;
  std::vector<std::string_view> applied;
  auto b = request("/block", {}, "");
  flow.envelopes = {&b};
  EXPECT_EQ(file->apply_http(b, false, flow, reply, applied), pipeline::Outcome::respond);
  ASSERT_TRUE(reply);
  EXPECT_TRUE(reply->raw.starts_with("HTTP/1.1 403 Forbidden\r\n"));

  envelope::Envelope resp;
  resp.protocol = envelope::Protocol::http;
  resp.direction = envelope::Direction::receive;
  envelope::HttpMessage m;
  m.kind = envelope::HttpMessage::Kind::response;
  m.status = 200;
  m.reason = "OK";
  resp.message = m;
  flow.envelopes = {&resp};
  file->apply_http(resp, false, flow, reply, applied);
  EXPECT_EQ((http(resp).status), 404);
  EXPECT_EQ(http(resp).reason, "Not Found");

  envelope::Envelope ws;
  ws.protocol = envelope::Protocol::ws;
  envelope::WsMessage w;
  w.opcode = 1;
  w.payload = "a1 a2";
  ws.message = w;
  applied.clear();
  EXPECT_EQ(file->apply_unit(ws, reply, applied), pipeline::Outcome::next);
  EXPECT_EQ(std::get<envelope::WsMessage>(ws.message).payload, "b1 b2");
  EXPECT_EQ(ws.raw, std::string("\x81\x05" "b1 b2", 7));  // one frame, made again
  EXPECT_EQ(applied, std::vector<std::string_view>{"w"});

  envelope::Envelope raw;
  raw.protocol = envelope::Protocol::raw;
  raw.raw = std::string("a\0b", 3);
  applied.clear();
  file->apply_unit(raw, reply, applied);
  EXPECT_EQ(raw.raw, "aZb");
}
