#pragma once
// Rules that change traffic without a program: mitmproxy's `modify_headers` (-H), `modify_body` (-B),
// `map_local`, `map_remote` and `block_list` options, in mitmproxy's syntax and with its meaning, as one pipeline
// step. The same step runs live in `sluice proxy` and offline in `sluice transform` (the offline driver
// of `sluice step`), so a rule gives the same records in both.
//
// Syntax (mitmproxy's parse_spec): the first character is the separator; "[SEP FILTER] SEP SUBJECT SEP
// REPLACEMENT" (block_list: "SEP FILTER SEP STATUS"). For -H and -B the subject and the replacement are
// read with Python's escape rules (`\n`, `\x41`, `\\`); a replacement starting with `@` names a file
// whose bytes are used (read at each use, as mitmproxy does). -B's subject is a regular expression
// (case-sensitive, `.` matching newlines) and its replacement a Python re.sub template (`\1`,
// `\g<1>`): on the command line that is `\\1`, since the escapes are undone first, as in mitmproxy.
//
// What each does, in mitmproxy's order on a request (block_list, map_local, map_remote, modify_body,
// modify_headers; on a response modify_body, modify_headers), each filter judged on the flow as the
// rules before it left it (a response's on its request and itself, so `~q` is false there and `~d`
// sees the request's host):
//   block_list   answers a matching request with STATUS and no body (`Server: sluice`), tagged
//                `blocklisted`; 444 closes the connection without an answer.
//   map_local    answers a request whose URL the regex finds with a local file (a directory: the URL's
//                rest after the match, or the regex's first group, as a path inside it, index.html for
//                a directory), 200 with its Content-Type; 404 when no candidate file exists.
//   map_remote   replaces every match of the regex in the request's URL (scheme://host[:port]/path, as
//                `~u` sees it) with re.sub (subject and replacement as written: no escapes undone, no
//                `@file`); a new URL that parses (http or https, a host) becomes the request's: scheme,
//                authority, Host (when it has one), path. The layers send the request where it now
//                points (another server: another connection).
//   modify_body  replaces every match in the body (its Content-Encoding undone first and applied again).
//   modify_headers removes every field of that name, then adds NAME: VALUE at the end unless VALUE is
//                empty (all matching rules remove first, then add, in their order).
// A unit a rule changed is recorded as the original and its variant, `modified_by` naming the rules
// ("modify_headers#1,modify_body#2": option and position, from 1).
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "core/value.hpp"
#include "filter/regex.hpp"
#include "pipeline/pipeline.hpp"

namespace sluice::step {

// A whole file's bytes; "cannot read PATH: REASON".
core::Result<core::Bytes> read_file(const std::string& path);
// A policy file (redaction, safety): a JSON object; "PATH: not JSON: ...", "PATH: a policy is a JSON object".
core::Result<core::Value> read_policy_file(const std::string& path);

// An HTTP/1.1 answer to `request` made by a built-in step (not the server): STATUS with its reason,
// `headers` and then content-length, `body`; tagged `synthesized` with `by`.
envelope::Envelope answer(const envelope::Envelope& request, int status, envelope::Headers headers, core::Bytes body,
                          const std::string& by);

// Python's codecs.escape_decode (mitmproxy's escaped_str_to_bytes): `\\ \' \" \a \b \f \n \r \t \v`,
// octal `\o` to `\ooo`, `\xhh`, a backslash before a newline dropped, any other escape kept as it is.
core::Result<core::Bytes> escape_decode(std::string_view s);

// A replacement template of Python's re.sub: literal bytes, `\1`..`\99` and `\g<N>` group references
// (an unmatched group is empty), `\n`-style escapes and octal; `\` before another letter is an error.
class Replacement {
 public:
  static core::Result<Replacement> parse(core::ByteView tmpl, size_t groups);
  void expand(core::ByteView text, const filter::Regex::Match& m, core::Bytes& out) const;

 private:
  struct Piece {
    core::Bytes literal;
    int group = -1;
  };
  std::vector<Piece> pieces_;
};

// A request's URL made `url` (mitmproxy's Request.url setter): scheme, authority (the default port left
// out), Host when the message has one, path (absolute-form when it was). False: not an http(s) URL.
bool set_url(envelope::HttpMessage& m, std::string_view url);

// `edit` on the body as its Content-Encoding decodes (as it came when it does not decode), coded again
// after (a coding that cannot be applied again: the body goes decoded, without it); Content-Length
// follows. False when `edit` changed nothing.
bool edit_body(envelope::HttpMessage& m, const std::function<bool(core::Bytes&)>& edit);

// %XX undone (and `+` as a space, as forms write it, with `plus_is_space`); a stray % stays as it is.
std::string url_unquote(std::string_view s, bool plus_is_space = false);

// Every field `name` (any case) removed; the first one's value ("" none).
void remove_headers(envelope::Headers& headers, std::string_view name);
std::string header_value(const envelope::Headers& headers, std::string_view name);

// A file's Content-Type by its extension (/etc/mime.types, then common ones); "" unknown.
std::string mime_type_of(const std::string& path);

// Python's re.sub(pattern, repl, text): every match, left to right, not overlapping, replaced (an
// empty match next to the previous match's end too, as Python 3.7 does). Returns how many.
size_t regex_sub(const filter::Regex& re, const Replacement& repl, core::ByteView text, core::Bytes& out);

// The options' values, as mitmproxy takes them (each list in its given order).
struct TransformOptions {
  std::vector<std::string> modify_headers, modify_body, map_local, map_remote, block_list;
  std::string rules_file;  // --rules FILE (step/rules.hpp)
  bool empty() const {
    return modify_headers.empty() && modify_body.empty() && map_local.empty() && map_remote.empty() &&
           block_list.empty() && rules_file.empty();
  }
};

class TransformStep : public pipeline::Step {
 public:
  // Every rule parsed, or the first that does not, with mitmproxy's wording: "Cannot parse
  // modify_headers option /~q/X: Invalid number of parameters (2 or 3 are expected)".
  static core::Result<std::shared_ptr<TransformStep>> create(const TransformOptions& options);

  std::string_view name() const override { return "transform"; }
  pipeline::Outcome process(envelope::Envelope& env, pipeline::Reply& reply, const pipeline::Resume& resume) override;
  void cancel(std::string_view conn_id) override;
  size_t rules() const;
  // --rules FILE read again (SIGHUP): the new rules in force, or the error and the old ones kept.
  core::Result<size_t> reload();

  struct Impl;

 private:
  explicit TransformStep(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace sluice::step
