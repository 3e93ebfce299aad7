"""Rule files (`--rules FILE`, formats/rules.schema.json): each rule kind on its protocol with a real
peer (curl and an origin that echoes what it received, nghttp, python websockets, grpcio, a raw TCP
client; Chromium's EventSource in test_chromium.py), live and offline (`sluice transform --rules`, then
`sluice replay` sends the change); a bad file refused at start with one line naming the file, the rule
and why; SIGHUP reloads the file, and a bad new file keeps the rules in force."""
import asyncio
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from concurrent import futures

import grpc
import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from support import SLUICE, TEST_ENV, EchoServer as TcpEcho, Proxy, connect, curl, records, recv_exactly  # noqa: E402
from test_safety import Received  # noqa: E402
from test_transform import Echo, EchoB, serve_echo  # noqa: E402
from test_websocket import EchoServer  # noqa: E402

SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "formats", "rules.schema.json")


def write_rules(d, rules, name="rules.json"):
    path = os.path.join(d, name)
    with open(path, "w") as f:
        json.dump({"rules": rules}, f)
    return path


def schema_errors(doc):
    import jsonschema  # Debian: python3-jsonschema
    with open(SCHEMA) as f:
        return [e.message for e in jsonschema.Draft202012Validator(json.load(f)).iter_errors(doc)]


def body_of(got):
    """The echo's JSON from an Echo answer ("hello {...}" or "bye {...}")."""
    return json.loads(got[got.index(b"{"):])


class Http(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.a, self.b = serve_echo(), serve_echo(EchoB)
        self.pa, self.pb = self.a.server_address[1], self.b.server_address[1]
        self.local = os.path.join(self.tmp.name, "local.json")
        with open(self.local, "w") as f:
            f.write('{"from": "a file"}')
        Echo.seen.clear()

    def tearDown(self):
        for s in (self.a, self.b):
            s.shutdown()
            s.server_close()
        self.tmp.cleanup()

    def rules(self):
        def act(kind, **kw):
            return dict(action=kind, **kw)
        return [
            {"name": "hdrs", "filter": "~u /h\\?", "direction": "request", "actions": [
                act("set_header", name="X-Env", value="staging"), act("add_header", name="X-Add", value="1"),
                act("remove_header", name="User-Agent"), act("set_query", name="q", value="a b"),
                act("remove_query", name="drop"), act("set_method", value="PUT")]},
            {"name": "json", "filter": "~u /json", "direction": "request", "actions": [
                act("json_set", path="/user/role", value="admin"), act("json_set", path="/items/-", value=3),
                act("json_delete", path="/secret")]},
            {"name": "form", "filter": "~u /form", "direction": "request", "actions": [
                act("set_form", name="token", value="new value"), act("remove_form", name="debug")]},
            {"name": "body", "filter": "~u /body", "direction": "request", "actions": [
                act("replace_body", pattern="foo(\\d)", replacement="bar\\1")]},
            {"name": "url", "filter": "~u /url", "actions": [
                act("set_url", value="http://127.0.0.1:%d/elsewhere" % self.pb)]},
            {"name": "remote", "filter": "~u /remote/", "actions": [
                act("map_remote", pattern="/remote/", replacement="/moved/")]},
            {"name": "local", "filter": "~u /local", "actions": [act("map_local", path=self.local)]},
            {"name": "blocked", "filter": "~u /blocked", "actions": [act("block", status=451)]},
            {"name": "kill", "filter": "~u /kill", "actions": [act("block", status=444)]},
            {"name": "resp", "filter": "~d 127.0.0.1 & ~u /h\\?", "direction": "response", "actions": [
                act("set_header", name="X-Resp", value="r"), act("set_status", status=201),
                act("remove_header", name="Set-Cookie"), act("replace_body", pattern="^hello", replacement="bye")]},
            {"name": "gz", "filter": "~u /gz", "direction": "response", "actions": [
                act("replace_body", pattern="^hello", replacement="bye")]},
        ]

    def test_every_http_kind_against_curl_and_an_echo(self):
        path = write_rules(self.tmp.name, self.rules())
        self.assertEqual(schema_errors(json.load(open(path))), [])
        proxy = Proxy("--mode", "regular@0", "--rules", path)
        via = ["-x", "http://127.0.0.1:%d" % proxy.port, "-H", "Accept-Encoding: identity"]
        base = "http://127.0.0.1:%d" % self.pa

        def get(p, *args):
            Echo.seen.clear()
            r = curl(*via, "-D", "-", *args, base + p)
            head, _, body = r.stdout.partition(b"\r\n\r\n")
            return r, head.decode("latin-1"), body, list(Echo.seen)
        r, head, body, seen = get("/h?keep=1&drop=2")
        self.assertEqual((seen[0]["method"], seen[0]["path"]), ("PUT", "/h?keep=1&q=a%20b"))
        fields = dict((k, v) for k, v in seen[0]["headers"])
        self.assertEqual((fields.get("X-Env"), fields.get("X-Add"), "User-Agent" in fields), ("staging", "1", False))
        self.assertTrue(head.startswith("HTTP/1.1 201 Created"), head)
        self.assertIn("X-Resp: r", head)
        self.assertNotIn("Set-Cookie", head)
        self.assertTrue(body.startswith(b"bye {"), body)
        self.assertIn("Content-Length: %d" % len(body), head)

        _, _, _, seen = get("/json", "-H", "Content-Type: application/json",
                            "-d", '{"user": {"name": "x"}, "items": [1, 2], "secret": "s"}')
        self.assertEqual(json.loads(seen[0]["body"]), {"user": {"name": "x", "role": "admin"}, "items": [1, 2, 3]})
        _, _, _, seen = get("/form", "-d", "token=old&debug=1&keep=1")
        self.assertEqual(seen[0]["body"], "token=new%20value&keep=1")
        _, _, _, seen = get("/body", "-d", "foo1 foo2")
        self.assertEqual(seen[0]["body"], "bar1 bar2")
        _, head, body, seen = get("/url")
        self.assertIn("X-Origin: echo-b", head)
        self.assertEqual(seen[0]["path"], "/elsewhere")
        self.assertIn(["Host", "127.0.0.1:%d" % self.pb], seen[0]["headers"])
        _, _, _, seen = get("/remote/x")
        self.assertEqual(seen[0]["path"], "/moved/x")
        _, head, body, seen = get("/local")
        self.assertEqual((body, seen), (b'{"from": "a file"}', []))
        self.assertIn("Content-Type: application/json", head)
        _, head, _, seen = get("/blocked")
        self.assertTrue(head.startswith("HTTP/1.1 451"), head)
        self.assertEqual(seen, [])
        r, _, _, seen = get("/kill")
        self.assertEqual((r.returncode, seen), (52, []))  # no answer at all
        Echo.seen.clear()
        gz = curl("-x", "http://127.0.0.1:%d" % proxy.port, "--compressed", base + "/gz")
        self.assertTrue(gz.stdout.startswith(b"bye {"), gz.stdout)
        code, out = proxy.stop()
        self.assertEqual(code, 0)
        named = [r.get("modified_by") for r in records(out) if r["type"] == "envelope" and r.get("variant") == "modified"
                 and r.get("modified_by") != "sluice"]
        for name in ("hdrs", "resp", "json", "form", "body", "url", "remote", "gz"):
            self.assertIn(name, named)

    def test_http2_messages(self):
        from h2server import H2Server
        h2o = H2Server()
        path = write_rules(self.tmp.name, [
            {"direction": "request", "actions": [{"action": "set_header", "name": "x-rule", "value": "yes"},
                                                 {"action": "set_query", "name": "v", "value": "2"}]},
            {"direction": "response", "actions": [{"action": "set_header", "name": "x-resp", "value": "ok"}]}])
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % h2o.port, "--rules", path)
        p = subprocess.run(["nghttp", "-v", "http://127.0.0.1:%d/p?v=1" % proxy.port], capture_output=True, timeout=30)
        code, _ = proxy.stop()
        h2o.close()
        self.assertEqual(code, 0)
        self.assertIn(b"x-resp: ok", p.stdout)
        self.assertEqual(h2o.requests[0][0], "/p?v=2")
        self.assertEqual(h2o.requests[0][1].get("x-rule"), "yes")

    def test_offline_transform_then_replay_sends_the_change(self):
        path = write_rules(self.tmp.name, self.rules())
        cap = os.path.join(self.tmp.name, "plain.zst")
        proxy = Proxy("--mode", "regular@0", "-w", cap)
        curl("-x", "http://127.0.0.1:%d" % proxy.port, "http://127.0.0.1:%d/h?drop=1" % self.pa)
        self.assertEqual(proxy.stop()[0], 0)
        Echo.seen.clear()
        t = subprocess.run([SLUICE, "transform", "--rules", path, cap], capture_output=True, timeout=60)
        self.assertEqual(t.returncode, 0, t.stderr)
        self.assertIn("hdrs", [r.get("modified_by") for r in records(t.stdout)])
        r = subprocess.run([SLUICE, "replay", "-"], input=t.stdout, capture_output=True, timeout=60, env=TEST_ENV)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([(s["method"], s["path"]) for s in Echo.seen], [("PUT", "/h?q=a%20b")])
        self.assertIn(["X-Env", "staging"], Echo.seen[0]["headers"])


class OtherProtocols(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def test_websocket_replace_both_ways_and_drop(self):
        server = EchoServer(compression=None)
        path = write_rules(self.tmp.name, [
            {"name": "up", "protocol": "websocket", "direction": "request",
             "actions": [{"action": "replace", "pattern": "secret", "replacement": "public", "opcode": "text"}]},
            {"name": "bin", "protocol": "websocket", "direction": "request",
             "actions": [{"action": "replace", "pattern": "old", "replacement": "new", "opcode": "binary"}]},
            {"name": "spam", "protocol": "websocket", "filter": "~b ^spam", "actions": [{"action": "drop"}]},
            {"name": "down", "protocol": "websocket", "direction": "response",
             "actions": [{"action": "replace", "pattern": "public", "replacement": "PUBLIC"}]}])
        self.assertEqual(schema_errors(json.load(open(path))), [])
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % server.port, "--rules", path)

        async def talk():
            async with websockets.connect("ws://127.0.0.1:%d/" % proxy.port, compression=None) as ws:
                await ws.send("a secret")
                self.assertEqual(await asyncio.wait_for(ws.recv(), 10), "a PUBLIC")
                await ws.send(b"bin-old")
                self.assertEqual(await asyncio.wait_for(ws.recv(), 10), b"bin-new")
                await ws.send("spam 1")
                await ws.send("marker")
                self.assertEqual(await asyncio.wait_for(ws.recv(), 10), "marker")  # the spam was left out
        try:
            asyncio.run(talk())
        finally:
            code, out = proxy.stop()
            server.close()
        self.assertEqual(server.got, ["a public", b"bin-new", "marker"])
        ws = [(r["direction"], r.get("modified_by"), r.get("tags", {}).get("verdict"))
              for r in records(out) if r["type"] == "envelope" and r["protocol"] == "ws" and r["message"]["opcode"] < 8]
        self.assertIn(("send", "up", None), ws)
        self.assertIn(("receive", "down", None), ws)
        self.assertIn(("send", None, "drop"), ws)

    def test_sse_replace_and_drop(self):
        from test_sse import Events, EVENTS
        import http.server
        import threading
        origin = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Events)
        threading.Thread(target=origin.serve_forever, daemon=True).start()
        path = write_rules(self.tmp.name, [
            {"name": "drop2", "protocol": "sse", "filter": '~b "event 2"', "actions": [{"action": "drop"}]},
            {"name": "loud", "protocol": "sse", "actions": [
                {"action": "replace", "field": "data", "pattern": "event (\\d)", "replacement": "EVENT \\1"},
                {"action": "replace", "field": "event", "pattern": "tick", "replacement": "tock"}]}])
        self.assertEqual(schema_errors(json.load(open(path))), [])
        proxy = Proxy("--mode", "regular@0", "--rules", path)
        got = curl("-N", "-x", "http://127.0.0.1:%d" % proxy.port, "http://127.0.0.1:%d/events" % origin.server_address[1])
        code, out = proxy.stop()
        origin.shutdown()
        datas = [l for l in got.stdout.decode().splitlines() if l.startswith("data: EVENT")]
        self.assertEqual(datas, ["data: EVENT %d" % i for i in range(EVENTS) if i != 2])
        self.assertNotIn("event: tick", got.stdout.decode())
        self.assertEqual(got.stdout.decode().count("event: tock"), EVENTS - 1)

    def test_grpc_metadata_messages_and_an_answer(self):
        handler = Received()
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        path = write_rules(self.tmp.name, [
            {"name": "deny", "protocol": "grpc", "filter": "~grpc Denied",
             "actions": [{"action": "answer", "status": 7, "message": "not here"}]},
            {"name": "md", "protocol": "grpc", "direction": "request", "actions": [
                {"action": "set_metadata", "name": "x-env", "value": "staging"},
                {"action": "remove_metadata", "name": "x-drop"}]},
            {"name": "msg", "protocol": "grpc", "direction": "request",
             "actions": [{"action": "replace", "pattern": "old", "replacement": "new"}]}])
        self.assertEqual(schema_errors(json.load(open(path))), [])
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % port, "--rules", path)
        try:
            with grpc.insecure_channel("127.0.0.1:%d" % proxy.port) as ch:
                self.assertEqual(ch.unary_unary("/test.Echo/Unary")(b"an old value", timeout=10,
                                                                    metadata=[("x-drop", "1"), ("x-keep", "2")]), b"ok")
                with self.assertRaises(grpc.RpcError) as err:
                    ch.unary_unary("/test.Denied/Unary")(b"x", timeout=10)
                self.assertEqual(err.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
                self.assertEqual(err.exception.details(), "not here")
        finally:
            code, out = proxy.stop()
            server.stop(0)
        self.assertEqual(len(handler.calls), 1)  # the denied call never reached the server
        metadata, message = handler.calls[0]
        self.assertEqual(message, b"an new value")
        self.assertEqual((metadata.get("x-env"), "x-drop" in metadata, metadata.get("x-keep")), ("staging", False, "2"))

    def test_raw_bytes(self):
        echo = TcpEcho()
        path = write_rules(self.tmp.name, [
            {"name": "ping", "protocol": "raw", "direction": "request",
             "actions": [{"action": "replace", "pattern": "ping", "replacement": "pong!"}]}])
        self.assertEqual(schema_errors(json.load(open(path))), [])
        proxy = Proxy("--mode", "tcp:127.0.0.1:%d@0" % echo.port, "--rules", path)
        with connect(proxy.port) as c:
            c.sendall(b"ping 1\n")
            self.assertEqual(recv_exactly(c, 8), b"pong! 1\n")
        code, out = proxy.stop()
        self.assertEqual(code, 0)
        self.assertIn("ping", [r.get("modified_by") for r in records(out)])


class BadFiles(unittest.TestCase):
    def test_each_bad_file_is_refused_with_one_line(self):
        tmp = tempfile.TemporaryDirectory()
        # The CA exists already (its creation is said once, on a proxy's first start).
        subprocess.run([SLUICE, "ca", "spki"], capture_output=True, check=True, env=TEST_ENV, timeout=30)
        cases = [
            ("{", "not JSON"),
            ('{"rule": []}', "a rule file is a JSON object with a \"rules\" array"),
            ('{"rules": [], "extra": 1}', "unknown member \"extra\""),
            ('{"rules": [{"actions": []}]}', "rule 1: needs a non-empty \"actions\" array"),
            ('{"rules": [{"name": "n", "fitler": "~q", "actions": [{"action": "drop"}]}]}', "rule 1 (n): unknown member \"fitler\""),
            ('{"rules": [{"protocol": "ftp", "actions": [{"action": "drop"}]}]}', "\"protocol\" is one of"),
            ('{"rules": [{"direction": "up", "actions": [{"action": "drop"}]}]}', "\"direction\" is one of"),
            ('{"rules": [{"filter": "~nope", "actions": [{"action": "drop"}]}]}', "rule 1: bad filter"),
            ('{"rules": [{"actions": [{"action": "drop"}]}]}', "unknown action \"drop\" for http (one of: set_header"),
            ('{"rules": [{"protocol": "websocket", "actions": [{"action": "set_header"}]}]}',
             "unknown action \"set_header\" for websocket (one of: replace, drop)"),
            ('{"rules": [{"actions": [{"action": "set_header", "name": "X"}]}]}', "action 1 (set_header): needs \"value\""),
            ('{"rules": [{"actions": [{"action": "set_header", "name": "X", "value": 1}]}]}', "\"value\" must be a string"),
            ('{"rules": [{"actions": [{"action": "replace_body", "pattern": "(a", "replacement": ""}]}]}',
             "invalid regular expression (a"),
            ('{"rules": [{"actions": [{"action": "replace_body", "pattern": "a", "replacement": "\\\\2"}]}]}',
             "invalid group reference 2"),
            ('{"rules": [{"actions": [{"action": "block", "status": 99}]}]}', "\"status\" must be an integer from 100 to 599"),
            ('{"rules": [{"direction": "request", "actions": [{"action": "set_status", "status": 200}]}]}',
             "(set_status): acts on responses only"),
            ('{"rules": [{"direction": "response", "actions": [{"action": "block", "status": 403}]}]}',
             "(block): acts on requests only"),
            ('{"rules": [{"actions": [{"action": "map_local", "path": "/no/such/file"}]}]}', "cannot read /no/such/file"),
            ('{"rules": [{"actions": [{"action": "set_url", "value": "ftp://x/"}]}]}', "unsupported scheme"),
            ('{"rules": [{"actions": [{"action": "json_set", "path": "a", "value": 1}]}]}', "is a JSON Pointer"),
            ('{"rules": [{"protocol": "sse", "actions": [{"action": "replace", "field": "x", "pattern": "a", '
             '"replacement": "b"}]}]}', "\"field\" is one of data, event, id"),
            ('{"rules": [{"protocol": "grpc", "actions": [{"action": "answer", "status": 20}]}]}', "from 0 to 16"),
        ]
        path = os.path.join(tmp.name, "bad.json")
        for text, message in cases:
            with open(path, "w") as f:
                f.write(text)
            for command in (["proxy", "--mode", "regular@0"], ["transform"]):
                p = subprocess.run([SLUICE, *command, "--rules", path], capture_output=True, timeout=30, input=b"",
                                   env=TEST_ENV)
                err = p.stderr.decode()
                self.assertEqual(p.returncode, 2, (text, err))
                self.assertIn(message, err, text)
                self.assertIn(path, err)
                self.assertEqual(len(err.strip().splitlines()), 1, err)  # one line, nothing half-started
                self.assertNotIn("listening", err)
            # The schema refuses it too, but what only compiling tells (a regex, a template, a filter, a
            # file) or a direction an action has no use in.
            semantic = ("(a", "\\\\2", "~nope", "/no/such/file", "acts on")
            if text != "{" and not any(x in text or x in message for x in semantic):
                self.assertNotEqual(schema_errors(json.loads(text)), [], text)
        p = subprocess.run([SLUICE, "transform", "--rules", os.path.join(tmp.name, "none.json")], capture_output=True,
                           timeout=30, input=b"", env=TEST_ENV)
        self.assertEqual(p.returncode, 2)
        self.assertIn("cannot read", p.stderr.decode())
        tmp.cleanup()


class Reload(unittest.TestCase):
    def test_sighup_reloads_and_a_bad_file_keeps_the_rules_in_force(self):
        tmp = tempfile.TemporaryDirectory()
        origin = serve_echo()
        base = "http://127.0.0.1:%d/r" % origin.server_address[1]

        def rules(value):
            return [{"direction": "request", "actions": [{"action": "set_header", "name": "X-V", "value": value}]}]
        path = write_rules(tmp.name, rules("1"))
        cap = os.path.join(tmp.name, "cap.jsonl")
        proxy = Proxy("--mode", "regular@0", "--rules", path, "-w", cap, "--no-compress", drain=False)
        via = ("-x", "http://127.0.0.1:%d" % proxy.port)

        def seen_value():
            Echo.seen.clear()
            self.assertEqual(curl(*via, base).returncode, 0)
            return dict(Echo.seen[0]["headers"]).get("X-V")

        err = {"buffer": b""}
        fd = proxy.proc.stderr.fileno()

        def next_rules_line():
            """The proxy's next "sluice: rules:" line on stderr (read unbuffered, waiting at most 20 s)."""
            deadline = time.monotonic() + 20
            while True:
                lines = err["buffer"].split(b"\n")
                for i, line in enumerate(lines[:-1]):
                    if line.startswith(b"sluice: rules:"):
                        err["buffer"] = b"\n".join(lines[i + 1:])
                        return line.decode()
                err["buffer"] = lines[-1]
                left = deadline - time.monotonic()
                ready, _, _ = select.select([fd], [], [], max(left, 0))
                if not ready:
                    self.fail("no rules line on stderr")
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.fail("stderr closed")
                err["buffer"] += chunk
        self.assertEqual(seen_value(), "1")
        write_rules(tmp.name, rules("2"))
        proxy.proc.send_signal(signal.SIGHUP)
        self.assertIn("reloaded %s (1 rule)" % path, next_rules_line())
        self.assertEqual(seen_value(), "2")
        with open(path, "w") as f:
            f.write('{"rules": [{"actions": [{"action": "set_header", "name": "X-V"}]}]}')
        proxy.proc.send_signal(signal.SIGHUP)
        line = next_rules_line()
        self.assertIn("not reloaded, the rules in force stay: %s: rule 1: action 1 (set_header): needs \"value\"" % path,
                      line)
        self.assertEqual(seen_value(), "2")  # the rules in force stay
        write_rules(tmp.name, rules("3"))
        proxy.proc.send_signal(signal.SIGHUP)
        self.assertIn("reloaded", next_rules_line())
        self.assertEqual(seen_value(), "3")
        code, _ = proxy.stop()
        self.assertEqual(code, 0)
        with open(cap, "rb") as f:
            recs = records(f.read())
        # Nothing lost across the reloads: four exchanges, each request and its answer recorded.
        sent = [r for r in recs if r["type"] == "envelope" and r["direction"] == "send" and r.get("variant") == "original"]
        got = [r for r in recs if r["type"] == "envelope" and r["direction"] == "receive"]
        self.assertEqual((len(sent), len(got)), (4, 4))
        origin.shutdown()
        tmp.cleanup()


if __name__ == "__main__":
    unittest.main()
