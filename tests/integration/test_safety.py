"""The safety filter (issue 23): the corpus of destructive payloads (tests/fixtures/safety_corpus.json)
is refused by `sluice proxy --safety` in every position and encoding (the URL, a header as it is and
base64, a form, a JSON body with \\u escapes, a plain body, base64 inside JSON, a gzip-coded body, a
WebSocket message whole or in fragments, a gRPC message and gRPC metadata) and never reaches the
origin, each refusal with an `error` record naming the rule and where; the harmless look-alikes pass
everywhere. A request a rule changed is judged as changed, and `sluice replay --safety` never sends
what it refuses."""
import asyncio
import base64
import gzip
import http.client
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
from concurrent import futures

import grpc
import websockets

sys.path.insert(0, os.path.dirname(__file__))
from support import SLUICE, Proxy, records, run  # noqa: E402
from test_websocket import EchoServer  # noqa: E402

with open(os.path.join(os.path.dirname(__file__), "..", "fixtures", "safety_corpus.json")) as f:
    CORPUS = json.load(f)
DESTRUCTIVE, HARMLESS = CORPUS["destructive"], CORPUS["harmless"]


class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    received = []

    def do_GET(self):
        self.answer()

    def do_POST(self):
        self.answer()

    def answer(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Origin.received.append((self.path, dict(self.headers), body))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def serve_origin():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def json_escaped(p):
    return json.dumps({"q": p}).replace(" ", "\\u0020").replace("/", "\\u002f")


def b64(p):
    return base64.b64encode(p.encode()).decode()


def positions(p):
    """(name, method, path, headers, body) of each position and encoding the payload goes in."""
    q = urllib.parse.quote(p, safe="")
    return [
        ("url", "GET", "/search?q=" + q, {}, b""),
        ("header", "GET", "/h", {"X-Query": p}, b""),
        ("header base64", "GET", "/h", {"X-Query": b64(p)}, b""),
        ("form", "POST", "/f", {"Content-Type": "application/x-www-form-urlencoded"}, ("q=" + q).encode()),
        ("json escaped", "POST", "/j", {"Content-Type": "application/json"}, json_escaped(p).encode()),
        ("text", "POST", "/t", {"Content-Type": "text/plain"}, p.encode()),
        ("json base64", "POST", "/b", {"Content-Type": "application/json"}, json.dumps({"b": b64(p)}).encode()),
        ("gzip", "POST", "/g", {"Content-Type": "text/plain", "Content-Encoding": "gzip"}, gzip.compress(p.encode())),
    ]


def send(proxy_port, origin_port, method, path, headers, body):
    conn = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=10)
    try:
        conn.request(method, "http://127.0.0.1:%d%s" % (origin_port, path), body=body or None, headers=headers)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


class Received(grpc.GenericRpcHandler):
    """A gRPC server that keeps what each call brought (metadata and message)."""

    def __init__(self):
        self.calls = []

    def service(self, details):
        def unary(request, context):
            self.calls.append((dict(details.invocation_metadata), request))
            return b"ok"
        return grpc.unary_unary_rpc_method_handler(unary)


class Safety(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.origin = serve_origin()
        cls.origin_port = cls.origin.server_address[1]

    @classmethod
    def tearDownClass(cls):
        cls.origin.shutdown()

    def test_http_corpus_refused_in_every_position_look_alikes_pass(self):
        self.assertGreaterEqual(len(DESTRUCTIVE), 40)
        self.assertGreaterEqual(len(HARMLESS), 40)
        proxy = Proxy("--mode", "regular@0", "--safety", "default")
        Origin.received = []
        refused = 0
        for p in DESTRUCTIVE:
            for name, method, path, headers, body in positions(p):
                status, text = send(proxy.port, self.origin_port, method, path, headers, body)
                self.assertEqual(status, 403, (p, name, text))
                self.assertIn(b"sluice: refused by the safety filter: rule ", text, (p, name))
                refused += 1
        self.assertEqual(Origin.received, [])  # never sent
        for p in HARMLESS:
            for name, method, path, headers, body in positions(p):
                status, text = send(proxy.port, self.origin_port, method, path, headers, body)
                self.assertEqual((status, text), (200, b"ok"), (p, name))
        self.assertEqual(len(Origin.received), len(HARMLESS) * len(positions("x")))
        code, out = proxy.stop()
        self.assertEqual(code, 0)
        recs = records(out)
        errors = [r for r in recs if r["type"] == "error" and r["code"] == "safety"]
        self.assertEqual(len(errors), refused)
        self.assertIn("refused by the safety filter: rule sql_drop matched in the URL (url-encoded): drop table",
                      errors[0]["message"])
        wheres = {e["message"].split(" matched in ")[1].split(":")[0] for e in errors}
        self.assertTrue({"the URL (url-encoded)", "header X-Query", "header X-Query (base64)", "the body (url-encoded)",
                         "the body (JSON-encoded)", "the body", "the body (base64)"} <= wheres, wheres)
        tagged = [r for r in recs if r["type"] == "envelope" and "safety" in r.get("tags", {})]
        self.assertEqual(len(tagged), refused)

    def test_a_request_a_rule_changed_is_judged_as_changed(self):
        proxy = Proxy("--mode", "regular@0", "--safety", "destructive-sql", "-B", "/~q/harmless-marker/DROP TABLE users")
        Origin.received = []
        status, text = send(proxy.port, self.origin_port, "POST", "/t", {}, b"say harmless-marker")
        self.assertEqual(status, 403, text)
        self.assertIn(b"rule sql_drop matched in the body", text)
        status, _ = send(proxy.port, self.origin_port, "POST", "/t", {}, b"say hello")
        self.assertEqual(status, 200)
        self.assertEqual([b for _, _, b in Origin.received], [b"say hello"])
        proxy.stop()

    def test_websocket_messages_whole_or_fragmented(self):
        server = EchoServer(compression=None)
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % server.port, "--safety", "default")

        async def talk():
            async with websockets.connect("ws://127.0.0.1:%d/" % proxy.port, compression=None) as ws:
                for i, p in enumerate(DESTRUCTIVE):
                    half = len(p) // 2
                    for message in (p, [p[:half], p[half:]], b64(p).encode()):
                        await ws.send(message)
                        marker = "marker %d" % i
                        await ws.send(marker)
                        # The refused message is left out: the next echo is the marker's.
                        self.assertEqual(await asyncio.wait_for(ws.recv(), 10), marker)
                for p in HARMLESS:
                    await ws.send(p)
                    self.assertEqual(await asyncio.wait_for(ws.recv(), 10), p)
        try:
            asyncio.run(talk())
        finally:
            code, out = proxy.stop()
            server.close()
        got = [m for m in server.got if not str(m).startswith("marker")]
        self.assertEqual(got, HARMLESS)
        errors = [r for r in records(out) if r["type"] == "error" and r["code"] == "safety"]
        self.assertEqual(len(errors), 3 * len(DESTRUCTIVE))
        self.assertTrue(all("matched in a WebSocket message" in e["message"] for e in errors))

    def test_grpc_messages_and_metadata(self):
        handler = Received()
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        server.add_generic_rpc_handlers((handler,))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % port, "--safety", "default")
        try:
            with grpc.insecure_channel("127.0.0.1:%d" % proxy.port) as ch:
                call = ch.unary_unary("/test.Echo/Unary")
                for p in DESTRUCTIVE:
                    with self.assertRaises(grpc.RpcError, msg=p):
                        call(b"\x0a" + bytes([len(p.encode())]) + p.encode(), timeout=10)
                    with self.assertRaises(grpc.RpcError, msg=p) as err:
                        call(b"x", metadata=[("x-query", p.replace("\\", "/"))], timeout=10)
                    self.assertEqual(err.exception.code(), grpc.StatusCode.PERMISSION_DENIED, p)
                for p in HARMLESS[:10]:
                    self.assertEqual(call(p.encode(), metadata=[("x-query", p)], timeout=10), b"ok")
        finally:
            code, out = proxy.stop()
            server.stop(0)
        self.assertEqual([m for _, m in handler.calls], [p.encode() for p in HARMLESS[:10]])
        errors = [r["message"] for r in records(out) if r["type"] == "error" and r["code"] == "safety"]
        self.assertGreaterEqual(len(errors), 2 * len(DESTRUCTIVE))

    def test_replay_never_sends_what_it_refuses(self):
        proxy = Proxy("--mode", "regular@0")
        for p in DESTRUCTIVE[:5] + HARMLESS[:5]:
            send(proxy.port, self.origin_port, "POST", "/t", {"Content-Type": "text/plain"}, p.encode())
        code, cap = proxy.stop()
        Origin.received = []
        p = subprocess.run([SLUICE, "replay", "--safety", "default", "-"], input=cap, capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual([b.decode() for _, _, b in Origin.received], HARMLESS[:5])
        self.assertEqual(p.stderr.count(b"refused by the safety filter: rule "), 5, p.stderr)

    def test_policy_files_and_their_schema(self):
        import jsonschema  # Debian: python3-jsonschema
        with open(os.path.join(os.path.dirname(__file__), "..", "..", "formats", "safety.schema.json")) as f:
            validator = jsonschema.Draft202012Validator(json.load(f))
        good = {"presets": ["destructive-sql"], "patterns": [{"name": "purge", "regex": "purge\\s+all"},
                                                             {"name": "wipe_rows", "regex": "wipe from \\w+", "without_where": True}]}
        self.assertEqual(list(validator.iter_errors(good)), [])
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            json.dump(good, f)
            f.flush()
            proxy = Proxy("--mode", "regular@0", "--safety", f.name)
            Origin.received = []
            for body, status in [(b"PURGE   ALL", 403), (b"wipe from t", 403), (b"wipe from t where id=1", 200),
                                 (b"drop table x", 403), (b"rm -rf /", 200)]:
                self.assertEqual(send(proxy.port, self.origin_port, "POST", "/t", {}, body)[0], status, body)
            proxy.stop()
            self.assertEqual([b for _, _, b in Origin.received], [b"wipe from t where id=1", b"rm -rf /"])
            for bad in [{}, {"preset": []}, {"presets": ["sql"]}, {"patterns": [{"regex": "a"}]}]:
                self.assertNotEqual(list(validator.iter_errors(bad)), [], bad)
                f.seek(0)
                f.truncate()
                json.dump(bad, f)
                f.flush()
                p = subprocess.run([SLUICE, "replay", "--safety", f.name, "-"], capture_output=True, input=b"", timeout=30)
                self.assertEqual(p.returncode, 2, (bad, p.stderr))

    def test_bad_policies_stop_before_anything_listens(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            f.write('{"patterns": [{"name": "x", "regex": "(a"}]}')
            f.flush()
            for args, message in [(["proxy", "--safety", "nosuch"], "sluice: proxy: --safety: no preset named 'nosuch'"),
                                  (["replay", "--safety", f.name, "-"], "sluice: replay: --safety: %s: patterns[0].regex" % f.name)]:
                p = subprocess.run([SLUICE, *args], capture_output=True, timeout=30, input=b"")
                self.assertEqual(p.returncode, 2, p.stderr)
                lines = p.stderr.decode().strip().splitlines()
                self.assertEqual(len(lines), 1, lines)
                self.assertTrue(lines[0].startswith(message), lines)


if __name__ == "__main__":
    unittest.main()
