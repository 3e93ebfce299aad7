"""Rules that change traffic without a program (mitmproxy's -H, -B, -M, --map-local, --block-list, --set):
the same command line through Debian's mitmdump 8.1 and through `sluice proxy`, against an origin that
echoes what it received, gives the same answers to curl and the same requests at the origin; the rules
change HTTP/2 messages too; `sluice transform` gives over a capture what the proxy records live, and
`sluice replay` then sends the changed requests; bad rules are refused at start with one clear error."""
import gzip
import http.server
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from support import Mitmdump, Proxy, curl, records, run, SLUICE, TEST_ENV  # noqa: E402


class Echo(http.server.BaseHTTPRequestHandler):
    """Answers with what it received, as JSON ("hello" before it; gzip-encoded when the path has "gz"),
    with X-Origin and Set-Cookie fields; keeps each request in `seen`."""
    protocol_version = "HTTP/1.1"
    seen = []
    name = "echo"

    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        got = {"method": self.command, "path": self.path, "headers": [[k, v] for k, v in self.headers.items()],
               "body": body.decode("latin-1")}
        Echo.seen.append(got)
        out = b"hello " + json.dumps(got).encode()
        fields = [("X-Origin", self.name), ("Set-Cookie", "a=1"), ("Content-Type", "application/json")]
        if "gz" in self.path:
            out = gzip.compress(out)
            fields.append(("Content-Encoding", "gzip"))
        self.send_response(200)
        for k, v in fields:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = answer

    def log_message(self, *args):
        pass


class EchoB(Echo):
    """The other origin map_remote sends to (X-Origin: echo-b; what it receives joins Echo.seen)."""
    name = "echo-b"


def serve_echo(handler=Echo):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def exchange(port, origin, path, *args):
    """curl through the proxy on `port`: (exit code, status, fields but Date and Server, body), and what
    the origin received for it (its fields, but Proxy-Connection, and body) or None."""
    Echo.seen.clear()
    p = curl("-x", "http://127.0.0.1:%d" % port, "-D", "-", "-H", "Accept-Encoding: identity", *args,
             "http://127.0.0.1:%d%s" % (origin, path))
    head, _, body = p.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ")[1] if lines[0] else None
    fields = [tuple(l.split(": ", 1)) for l in lines[1:] if l and not re.match(r"(?i)(date|server):", l)]
    if "gz" in path and body:
        body = gzip.decompress(body)
    body = body.replace(b"%d" % origin, b"ORIGIN")
    seen = [([h for h in s["headers"] if h[0].lower() != "proxy-connection"], s["body"]) for s in Echo.seen]
    return {"exit": p.returncode, "status": status, "fields": fields, "body": body, "origin": seen}


class AsMitmproxy(unittest.TestCase):
    """One command line, two proxies: what curl gets and what the origin receives are the same."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.origin = serve_echo()
        self.file = os.path.join(self.tmp.name, "value.txt")
        with open(self.file, "w") as f:
            f.write("from-a-file")
        self.dir = os.path.join(self.tmp.name, "site")
        os.makedirs(os.path.join(self.dir, "a"))
        with open(os.path.join(self.dir, "index.html"), "w") as f:
            f.write("<p>index</p>")
        with open(os.path.join(self.dir, "a", "b.json"), "w") as f:
            f.write('{"local": true}')

    def tearDown(self):
        self.origin.shutdown()
        self.origin.server_close()
        self.tmp.cleanup()

    maxDiff = None

    def compare(self, args, cases, same=lambda result: result):
        port = self.origin.server_address[1]
        results = {}
        for name, start, stop in (("mitmdump", lambda: Mitmdump(*args), lambda p: p.stop()),
                                  ("sluice", lambda: Proxy("--mode", "regular@0", *args), lambda p: p.stop())):
            proxy = start()
            try:
                results[name] = [exchange(proxy.port, port, path, *extra) for path, *extra in cases]
            finally:
                stop(proxy)
        for case, theirs, ours in zip(cases, results["mitmdump"], results["sluice"]):
            self.assertEqual(same(ours), same(theirs), case)
        return results["sluice"]

    def test_every_flag_form_as_mitmdump(self):
        args = [
            "-H", "|X-All|1",                                     # no filter: requests and responses
            "-H", "/~q & ~u add/X-Added/one",                     # a field added to requests
            "-H", ":~q & ~u rm:User-Agent:",                      # removed (empty value), another separator
            "-H", "/~q & ~u repl/Accept/text\\x2fplain",           # replaced, with an escape
            "-H", "/~s & ~u resp/Set-Cookie/",                    # removed from responses
            "-H", "/~s & ~u resp/X-Resp/@" + self.file,           # a value from a file
            "-B", "/~q & ~u bodyq/foo/bar",                       # request bodies
            "-B", "/~s & ~u bodys/hello/bye",                     # response bodies, gzip ones too
            "-B", "/~u swap/(\\\\d+)-(\\\\d+)/\\\\2-\\\\1",        # groups (escapes undone first)
            # (mitmproxy has no flag for block_list: --set; sluice's --block-list is the same option)
            "--set", "block_list=/~u blocked/403",
            "--set", "block_list=!~u kill!444",                    # no answer at all
            "--map-local", "|~u maplocal|/static|" + self.dir,
        ]
        out = self.compare(args, [
            ("/plain",),
            ("/add",),
            ("/rm",),
            ("/repl",),
            ("/resp",),
            ("/bodyq", "-d", "foo and foo"),
            ("/bodys",),
            ("/bodys-gz",),
            ("/swap", "-d", "12-34"),
            ("/blocked",),
            ("/killme",),
            ("/maplocal/static/a/b.json",),
            ("/maplocal/static/",),
            ("/maplocal/static/missing.txt",),
        ])
        by = dict(zip(["plain", "add", "rm", "repl", "resp", "bodyq", "bodys", "gz", "swap", "blocked", "kill",
                       "local", "index", "missing"], out))
        # What the rules did, said plainly (both proxies agree on it, above).
        self.assertIn(["X-Added", "one"], by["add"]["origin"][0][0])
        self.assertNotIn("User-Agent", [h[0] for h in by["rm"]["origin"][0][0]])
        self.assertIn(["Accept", "text/plain"], by["repl"]["origin"][0][0])
        self.assertNotIn("Set-Cookie", [f[0] for f in by["resp"]["fields"]])
        self.assertIn(("X-Resp", "from-a-file"), by["resp"]["fields"])
        self.assertIn(("X-All", "1"), by["plain"]["fields"])
        self.assertEqual(by["bodyq"]["origin"][0][1], "bar and bar")
        self.assertTrue(by["bodys"]["body"].startswith(b"bye "), by["bodys"])
        self.assertTrue(by["gz"]["body"].startswith(b"bye "), by["gz"])
        self.assertEqual(by["swap"]["origin"][0][1], "34-12")
        self.assertEqual((by["blocked"]["status"], by["blocked"]["origin"]), ("403", []))
        self.assertEqual((by["kill"]["exit"], by["kill"]["origin"]), (52, []))  # an empty reply
        self.assertEqual((by["local"]["status"], by["local"]["body"]), ("200", b'{"local": true}'))
        self.assertEqual(by["index"]["body"], b"<p>index</p>")
        self.assertEqual((by["missing"]["status"], by["missing"]["origin"]), ("404", []))

    def test_set_takes_the_options_mitmproxy_names(self):
        self.compare(["--set", "modify_headers=/~q/X-Set/1", "--set", "modify_headers=/~s/X-Origin/",
                      "--set", "block_list=/~u nope/418", "--set", "modify_body=/~s/hello/HELLO"],
                     [("/one",), ("/nope",)])

    @staticmethod
    def without_host(result):
        """A result without the Host field the origin got (in its echo too, and so Content-Length):
        mitmproxy 8.1 sets Host to the new host without its port (mitmproxy issue #5907, a bug its
        maintainers confirmed and later releases fixed); sluice writes host:port, asserted apart."""
        result = dict(result)
        result["origin"] = [([h for h in fields if h[0].lower() != "host"], body) for fields, body in result["origin"]]
        result["fields"] = [f for f in result["fields"] if f[0] != "Content-Length"]
        if result["body"].startswith(b"hello {"):
            echoed = json.loads(result["body"][len(b"hello "):])
            echoed["headers"] = [h for h in echoed["headers"] if h[0].lower() != "host"]
            result["body"] = json.dumps(echoed).encode()
        return result

    def test_map_remote_as_mitmdump(self):
        a = self.origin.server_address[1]
        other = serve_echo(EchoB)
        b = other.server_address[1]
        try:
            out = self.compare([
                "-M", "|//127.0.0.1:%d/remote/|//127.0.0.1:%d/moved/" % (a, b),  # another server and path
                "-M", "/~u same/same/renamed",                                   # the path only
                "-M", r":~q & ~u grp:/grp/(\w+)$:/g/\1/\1",                    # groups, another separator
                "-M", "|~u nomatch|.*|http://127.0.0.1:1/",                         # a filter that matches nothing
                "-H", "/~q & ~u moved/X-After/map",                               # later rules see the new URL
            ], [
                ("/remote/x?q=1",),
                ("/same/a",),
                ("/grp/abc",),
                ("/other",),
            ], same=self.without_host)
            # mitmproxy's own option name, through --set.
            viaset, = self.compare(["--set", "map_remote=|~u remap|/remap|/renamed"], [("/remap",)],
                                   same=self.without_host)
            self.assertIn(b'"path": "/renamed"', viaset["body"])
        finally:
            other.shutdown()
            other.server_close()
        remote, same, grp, other = out
        self.assertIn(("X-Origin", "echo-b"), remote["fields"])
        got = remote["origin"][0][0]
        self.assertIn(["Host", "127.0.0.1:%d" % b], got)
        self.assertIn(["X-After", "map"], got)  # ~u judged the new URL
        self.assertIn(b'"path": "/moved/x?q=1"', remote["body"])
        self.assertIn(("X-Origin", "echo"), same["fields"])
        self.assertIn(b'"path": "/renamed/a"', same["body"])
        self.assertIn(b'"path": "/g/abc/abc"', grp["body"])
        self.assertIn(b'"path": "/other"', other["body"])


class Live(unittest.TestCase):
    def test_variants_are_named_after_their_rules(self):
        origin = serve_echo()
        port = origin.server_address[1]
        proxy = Proxy("--mode", "regular@0", "-H", "/~q/X-Added/one", "-B", "/~s/hello/bye",
                      "--block-list", "/~u blocked/404")
        base = "http://127.0.0.1:%d" % port
        self.assertTrue(curl("-x", "http://127.0.0.1:%d" % proxy.port, base + "/a").stdout.startswith(b"bye "))
        self.assertEqual(curl("-x", "http://127.0.0.1:%d" % proxy.port, "-o", "/dev/null", "-w", "%{http_code}",
                              base + "/blocked").stdout, b"404")
        code, out = proxy.stop()
        origin.shutdown()
        self.assertEqual(code, 0)
        envs = [r for r in records(out) if r["type"] == "envelope" and r["protocol"] == "http"]
        named = [(r["direction"], r["variant"], r.get("modified_by")) for r in envs if r.get("modified_by") != "sluice"]
        self.assertEqual(named, [("send", "original", None), ("send", "modified", "modify_headers#1"),
                                 ("receive", "original", None), ("receive", "modified", "modify_body#1"),
                                 ("send", "original", None), ("receive", "original", None)])
        self.assertEqual(envs[-2]["tags"].get("verdict"), "respond")
        self.assertEqual(envs[-1]["tags"].get("blocklisted"), "block_list#1")
        changed = [r for r in envs if r.get("modified_by") == "modify_body#1"][0]
        self.assertTrue(changed["message"]["body"].startswith("bye "))
        raw = base64_of(changed["raw"])
        self.assertIn(b"\r\n\r\nbye ", raw)  # the bytes and the view changed together
        self.assertIn(b"Content-Length: %d\r\n" % len(changed["message"]["body"]), raw)

    def test_http2_messages_both_ways(self):
        from h2server import H2Server
        h2o = H2Server()
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % h2o.port, "-H", "/~q/X-Added/one",
                      "-B", "/~q/abc/abcdef", "-H", "/~s/X-Resp/two")
        p = curl("--http2-prior-knowledge", "-D", "-", "-d", "abc", "http://127.0.0.1:%d/post" % proxy.port)
        self.assertIn(b"h2 hello from /post got 6", p.stdout, p.stderr)  # the body changed, its length too
        self.assertIn(b"x-resp: two\r\n", p.stdout)
        code, out = proxy.stop()
        h2o.close()
        self.assertEqual(h2o.requests[0][1].get("x-added"), "one")
        self.assertEqual(h2o.requests[0][1].get("content-length"), "6")
        mods = [r.get("modified_by") for r in records(out) if r["type"] == "envelope" and r.get("modified_by")]
        self.assertEqual(mods, ["modify_body#1,modify_headers#1", "modify_headers#2"])


class MapRemote(unittest.TestCase):
    """-M sends a request elsewhere whatever way it comes: whole, streamed, over HTTP/2; recorded as a
    variant named after its rule; a server that is not there is a 502 naming it."""

    def setUp(self):
        self.a, self.b = serve_echo(), serve_echo(EchoB)
        self.pa, self.pb = self.a.server_address[1], self.b.server_address[1]
        Echo.seen.clear()

    def tearDown(self):
        for s in (self.a, self.b):
            s.shutdown()
            s.server_close()

    def test_http1_whole_and_streamed_requests_and_a_dead_server(self):
        proxy = Proxy("--mode", "regular@0", "-M", "|127.0.0.1:%d/b/|127.0.0.1:%d/" % (self.pa, self.pb),
                      "-M", "|^.*/dead/|http://127.0.0.1:1/")
        via = ("-x", "http://127.0.0.1:%d" % proxy.port)
        got = curl(*via, "http://127.0.0.1:%d/b/one" % self.pa).stdout
        self.assertTrue(got.startswith(b"hello "), got)
        self.assertIn(b'"path": "/one"', got)
        self.assertIn(b'"Host", "127.0.0.1:%d"' % self.pb, got)
        # Streamed: a client that waits for 100 Continue has its head judged before its body goes.
        got = curl(*via, "-H", "Expect: 100-continue", "--data-binary", "x" * 5000,
                   "http://127.0.0.1:%d/b/up" % self.pa).stdout
        self.assertIn(b'"path": "/up"', got)
        self.assertEqual(len(json.loads(got[len(b"hello "):])["body"]), 5000)
        # The same connection's next request goes where its own URL points (the first origin).
        got = curl(*via, "http://127.0.0.1:%d/stay" % self.pa, "http://127.0.0.1:%d/b/two" % self.pa).stdout
        self.assertEqual([s["path"] for s in Echo.seen], ["/one", "/up", "/stay", "/two"])
        dead = curl(*via, "-w", "%{http_code}", "http://127.0.0.1:%d/dead/x" % self.pa)
        self.assertTrue(dead.stdout.endswith(b"502"), dead.stdout)
        self.assertIn(b"127.0.0.1:1", dead.stdout)
        code, out = proxy.stop()
        self.assertEqual(code, 0)
        recs = records(out)
        mapped = [r for r in recs if r["type"] == "envelope" and r.get("modified_by") == "map_remote#1"]
        self.assertEqual(len(mapped), 3)  # whole, streamed (its head), and the second connection's
        self.assertEqual(mapped[0]["message"]["path"], "http://127.0.0.1:%d/one" % self.pb)
        answers = [r for r in recs if r["type"] == "envelope" and r["direction"] == "receive"
                   and r["message"].get("status") == 200]
        self.assertIn("127.0.0.1:%d" % self.pb, {r["context"]["server"] for r in answers})
        self.assertTrue(any(r["type"] == "error" and "127.0.0.1:1" in r.get("message", "") for r in recs))

    def test_http2_stream_to_another_server(self):
        from h2server import H2Server
        h2o = H2Server()
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % h2o.port,
                      "-M", "|^http://[^/]+/b/|http://127.0.0.1:%d/" % self.pb)
        base = "http://127.0.0.1:%d" % proxy.port
        # Two streams of one connection (nghttp: prior knowledge), the first sent elsewhere.
        p = subprocess.run(["nghttp", base + "/b/x", base + "/h2"], capture_output=True, timeout=30)
        self.assertIn(b'hello {"method": "GET", "path": "/x"', p.stdout, p.stderr)  # the HTTP/1.1 echo
        self.assertIn(b"h2 hello from /h2", p.stdout)  # the next stream stays with the HTTP/2 origin
        code, out = proxy.stop()
        h2o.close()
        self.assertEqual(code, 0)
        self.assertEqual([s["path"] for s in Echo.seen], ["/x"])
        self.assertIn(["host", "127.0.0.1:%d" % self.pb], Echo.seen[0]["headers"])
        self.assertEqual([r[0] for r in h2o.requests], ["/h2"])


def base64_of(value):
    import base64
    return base64.b64decode(value)


class Offline(unittest.TestCase):
    def test_transform_gives_the_live_records_and_replay_sends_the_change(self):
        origin = serve_echo()
        port = origin.server_address[1]
        rules = ["-H", "/~q/Authorization/Bearer NEW", "-B", "/~s/hello/bye"]
        tmp = tempfile.TemporaryDirectory()
        plain = os.path.join(tmp.name, "plain.zst")
        live = Proxy("--mode", "regular@0", *rules, "-w", os.path.join(tmp.name, "live.zst"))
        proxy = Proxy("--mode", "regular@0", "-w", plain)
        for p in (live, proxy):
            got = curl("-x", "http://127.0.0.1:%d" % p.port, "-H", "Authorization: Bearer OLD", "-d", "x=1",
                       "http://127.0.0.1:%d/api" % port)
            self.assertEqual(got.returncode, 0, got.stderr)
            self.assertEqual(p.stop()[0], 0)

        def shape(path):
            return [(r["direction"], r["variant"], r.get("modified_by"),
                     r["message"].get("body") if r["direction"] == "send" else r["message"]["body"][:4],
                     [h for h in r["message"]["headers"] if h[0] == "Authorization"])
                    for r in records(open(path, "rb").read()) if r["type"] == "envelope" and r["protocol"] == "http"
                    and r.get("modified_by") != "sluice"]
        offline = run("transform", *rules, plain, "-w", os.path.join(tmp.name, "offline.zst"))
        self.assertEqual(offline.returncode, 0)
        self.assertEqual(shape(os.path.join(tmp.name, "offline.zst")), shape(os.path.join(tmp.name, "live.zst")))
        # Over a capture that has variants already (the live one), a rule on responses only leaves every
        # recorded request variant as it was, the proxy's own ones too.
        again = run("transform", "-H", "/~s/X-Again/1", os.path.join(tmp.name, "live.zst")).stdout

        def variants(data, by):
            return [(r["flow_id"], r["seq"]) for r in records(data)
                    if r.get("modified_by") == by and r["direction"] == "send"]
        live_bytes = open(os.path.join(tmp.name, "live.zst"), "rb").read()
        for by in ("sluice", "modify_headers#1"):
            self.assertEqual(variants(again, by), variants(live_bytes, by), by)
        self.assertEqual(len(variants(live_bytes, "sluice")), 1)
        # transform | replay: the server receives the changed request (the last variant).
        Echo.seen.clear()
        t = subprocess.run([SLUICE, "transform", *rules, plain], capture_output=True, timeout=60)
        r = subprocess.run([SLUICE, "replay", "-"], input=t.stdout, capture_output=True, timeout=60, env=TEST_ENV)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([h for s in Echo.seen for h in s["headers"] if h[0] == "Authorization"],
                         [["Authorization", "Bearer NEW"]])
        origin.shutdown()
        tmp.cleanup()


class BadRules(unittest.TestCase):
    def test_each_bad_rule_is_refused_at_start_with_one_clear_error(self):
        tmp = tempfile.TemporaryDirectory()
        cases = [
            (["-H", "/X"], "Cannot parse modify_headers option /X: Invalid number of parameters"),
            (["-H", "/~nope x/X/1"], "Cannot parse modify_headers option /~nope x/X/1: Invalid filter pattern"),
            (["-H", "|X|@/no/such/file"], "Invalid file path: /no/such/file"),
            (["-B", "/(ab/x"], "Invalid regular expression (ab"),
            (["-B", "/a/\\\\9"], "invalid group reference 9"),
            (["-B", "/a/\\x4"], "invalid \\x escape"),
            (["--block-list", "/~q/999"], "Invalid HTTP status code: 999"),
            (["--block-list", "/~q/404/x"], "Invalid number of parameters (2 are expected)"),
            (["--map-local", "/x/" + os.path.join(tmp.name, "none")], "Invalid file path"),
            (["--set", "anticache=true"], "unknown option 'anticache'"),
            (["-M", "/(ab/x"], "Cannot parse map_remote option /(ab/x: Invalid regular expression (ab"),
            (["-M", "/a/\\2"], "invalid group reference 2"),
        ]
        for args, message in cases:
            for command in (["proxy", "--mode", "regular@0"], ["transform"]):
                p = subprocess.run([SLUICE, *command, *args], capture_output=True, timeout=30, input=b"",
                                   env=TEST_ENV)
                err = p.stderr.decode()
                self.assertEqual(p.returncode, 2, (args, err))
                self.assertIn(message, err, args)
                self.assertEqual(len(err.strip().splitlines()), 1, err)  # one line, nothing half-started
                self.assertNotIn("listening", err)
        tmp.cleanup()


if __name__ == "__main__":
    unittest.main()
