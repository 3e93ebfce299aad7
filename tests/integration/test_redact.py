"""Redaction (issue 23): a corpus of planted secrets of every kind, in every position (request and
response headers, query strings, JSON, form and text bodies, a gzip body, WebSocket messages, events,
gRPC metadata and messages), goes through real peers (curl, python websockets, grpcio) and `sluice
proxy --redact`: the peers and the origin get every byte unchanged, and no secret is left in the
recorded capture (raw bytes decoded, bodies un-gzipped, HTTP/2 header blocks HPACK-decoded), nor in
`sluice redact`'s output over a capture recorded without --redact, nor in the HAR exported from it;
harmless look-alikes stay."""
import asyncio
import base64
import gzip
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

import grpc
import hpack
import websockets

sys.path.insert(0, os.path.dirname(__file__))
from support import SLUICE, Proxy, byte_member, curl, records, run  # noqa: E402
from test_export import validate_har  # noqa: E402
from test_http2 import GrpcServer  # noqa: E402
from test_websocket import EchoServer  # noqa: E402

JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkphbmUifQ."
       "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
JWT2 = ("eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlIiwiZXhwIjoxNzAwMDAwMDAwfQ."
        "dGhpc2lzYXNpZ25hdHVyZWZvcnRoZXRlc3Q")
PEM_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"

# Each secret: (kind, what must not be left anywhere). Positions are in the traffic below.
SECRETS = {
    "visa": ("credit_card", "4111111111111111"),
    "mastercard": ("credit_card", "5500 0000 0000 0004"),
    "amex": ("credit_card", "378282246310005"),
    "discover": ("credit_card", "6011111111111117"),
    "grpc_card": ("credit_card", "4012888888881881"),
    "email_header": ("email", "alice.smith@example.org"),
    "email_json": ("email", "bob.jones@example.net"),
    "email_form": ("email", "carol.white"),  # sent as carol.white%40example.com
    "email_ws": ("email", "dave.brown@example.io"),
    "phone_json": ("phone", "+14155550123"),
    "phone_text": ("phone", "(212) 555-0147"),
    "jwt_header": ("jwt", JWT),
    "jwt_query": ("jwt", JWT2),
    "bearer_sse": ("bearer", "9f8e7d6c5b4a39281706f5e4d3c2b1a0"),
    "basic": ("authorization", "dXNlcjpjb3JyZWN0aG9yc2U="),
    "cookie": ("cookie", "s3ss10nv4lu3abc"),
    "set_cookie": ("cookie", "r3sp0ns3c00k13xyz"),
    "aws_key": ("api_key", "AKIAIOSFODNN7EXAMPLE"),
    "aws_secret": ("password", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    "gcp": ("api_key", "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"),
    "github": ("api_key", "ghp_R2d2C3poBb8Luke1Leia2Han3Solo4Yoda5X"),
    "slack": ("api_key", "xoxb-2222222222-3333333333333-AbCdEfGhIjKlMnOpQrStUvWx"),
    "stripe": ("api_key", "sk_live_51H8abcdEFGHijklMNOPqrst"),
    "sendgrid": ("api_key", "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"),
    "npm": ("api_key", "npm_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"),
    "gitlab": ("api_key", "glpat-xYz12AbC34dEf56GhI78"),
    "openai": ("api_key", "sk-proj-Q1w2E3r4T5y6U7i8O9p0AaSsDdFfGgHhJjKk"),
    "x_api_key": ("api_key", "7c4a8d09ca3762af61e59520943dc26494f8941b"),
    "pem": ("private_key", PEM_BODY),
    "password_json": ("password", "Tr0ub4dor&3"),
    "password_form": ("password", "correct-horse-battery"),
    "password_query": ("password", "qwerty12345"),
    "client_secret": ("password", "cs_9a8b7c6d5e4f"),
    "grpc_metadata": ("bearer", "grpcm3tadata70k3n5ecret"),
    "ws_token": ("api_key", "xoxp-1111111111-2222222222-ZyXwVuTsRqPo"),
    "sse_jwt": ("jwt", JWT.replace("Jane", "Anne").replace("IkphbmUifQ", "IkFubmUifQ")),
}
S = {name: secret for name, (_, secret) in SECRETS.items()}

# Harmless look-alikes: they stay.
LOOKALIKES = ["4111111111111112", "user@localhost", "2026-12-06", "550e8400-e29b-41d4-a716-446655440000",
              "the bearer of good news", "\"password_set\": true", "version 1.2.3.4"]


def q(s):
    return urllib.parse.quote(s, safe="")


class Origin(http.server.BaseHTTPRequestHandler):
    """Echoes what it received (the request line, headers and body) as JSON, with a secret cookie; /gzip
    answers gzip-coded; /events streams events."""
    protocol_version = "HTTP/1.1"
    received = []

    def do_GET(self):
        self.answer()

    def do_POST(self):
        self.answer()

    def answer(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Origin.received.append(self.requestline.encode() + b"\n" + bytes(self.headers) + body)
        if self.path == "/events":
            block = ("id: 1\ndata: token Bearer %s\n\nevent: login\ndata: {\"jwt\": \"%s\", \"note\": \"%s\"}\n\n"
                     % (S["bearer_sse"], S["sse_jwt"], LOOKALIKES[4])).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(block)))
            self.end_headers()
            self.wfile.write(block)
            return
        echo = json.dumps({"line": self.requestline, "headers": dict(self.headers), "body": body.decode()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", "sid=%s; Path=/; HttpOnly" % S["set_cookie"])
        if self.path.startswith("/gzip"):
            echo = gzip.compress(echo)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(echo)))
        self.end_headers()
        self.wfile.write(echo)

    def log_message(self, *args):
        pass


def serve_origin():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def http_traffic(proxy_port, origin_port):
    """Requests through a forward proxy; returns what curl got back."""
    base = "http://127.0.0.1:%d" % origin_port
    x = ["-x", "http://127.0.0.1:%d" % proxy_port]
    got = []
    json_body = json.dumps({"card": S["visa"], "email": S["email_json"], "phone": S["phone_json"],
                            "aws": S["aws_key"], "password": S["password_json"], "client_secret": S["client_secret"],
                            "key": "-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----" % S["pem"],
                            "order": LOOKALIKES[0], "password_set": True, "host": LOOKALIKES[1]})
    got.append(curl(*x, "-s", base + "/api?card=%s&id_token=%s&passwd=%s&gl=%s" % (S["discover"], S["jwt_query"],
                                                                                 S["password_query"], S["gitlab"]),
                    "-H", "Authorization: Bearer " + S["jwt_header"], "-H", "X-Contact: " + S["email_header"],
                    "-H", "Cookie: session=%s; theme=dark" % S["cookie"], "-H", "X-Api-Key: " + S["x_api_key"],
                    "-H", "X-GitHub: " + S["github"], "-H", "Content-Type: application/json", "--data-binary", json_body))
    form = "user=ann&password=%s&email=%s%%40example.com&amex=%s&sg=%s&on=%s" % (
        S["password_form"], S["email_form"], S["amex"], S["sendgrid"], LOOKALIKES[2])
    got.append(curl(*x, "-s", base + "/form", "-u", "user:correcthorse", "--data-binary", form))
    text = ("Call %s, card %s. aws_secret_access_key=%s gcp %s npm %s openai %s uuid %s, %s\n"
            % (S["phone_text"], S["mastercard"], S["aws_secret"], S["gcp"], S["npm"], S["openai"], LOOKALIKES[3],
               LOOKALIKES[6]))
    got.append(curl(*x, "-s", "--compressed", base + "/gzip", "-H", "Content-Type: text/plain", "-H", "Authorization: Basic " + S["basic"],
                    "--data-binary", text))
    got.append(curl(*x, "-s", base + "/text", "-H", "Content-Type: text/plain", "--data-binary", "slack " + S["slack"]))
    got.append(curl(*x, "-s", base + "/events"))
    return [g.stdout for g in got]


def ws_traffic(proxy_port):
    async def talk():
        async with websockets.connect("ws://127.0.0.1:%d/chat" % proxy_port, compression=None) as ws:
            await ws.send(json.dumps({"to": S["email_ws"], "token": S["ws_token"], "order": LOOKALIKES[0]}))
            first = await ws.recv()
            await ws.send(("card " + S["visa"]).encode())
            second = await ws.recv()
            return [first, second]
    return asyncio.run(talk())


def grpc_traffic(proxy_port):
    with grpc.insecure_channel("127.0.0.1:%d" % proxy_port) as ch:
        call = ch.unary_unary("/test.Echo/Unary")
        return call(b"\x0a\x10" + S["grpc_card"].encode() + b"\x12" + bytes([len(S["stripe"])]) + S["stripe"].encode(),
                    metadata=[("authorization", "Bearer " + S["grpc_metadata"])], timeout=10)


def session(redact):
    """Captures of the whole corpus (forward proxy, WebSocket and gRPC reverse proxies), with or without
    --redact; checks that every peer got its bytes unchanged."""
    flag = ["--redact"] if redact else []
    origin, ws, grpc_server = serve_origin(), EchoServer(compression=None), GrpcServer()
    Origin.received = []
    ws.got = []
    captures = []
    try:
        proxy = Proxy("--mode", "regular@0", *flag)
        answers = http_traffic(proxy.port, origin.server_address[1])
        captures.append(proxy.stop())
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % ws.port, *flag)
        ws_answers = ws_traffic(proxy.port)
        captures.append(proxy.stop())
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % grpc_server.port, *flag)
        grpc_answer = grpc_traffic(proxy.port)
        time.sleep(0.2)
        captures.append(proxy.stop())
    finally:
        origin.shutdown()
        ws.close()
        grpc_server.close()
    for code, _ in captures:
        assert code == 0
    # The wire: the origin got the secrets, and every answer came back whole.
    wire = b"".join(Origin.received).decode() + "".join(a.decode() for a in answers)
    wire = urllib.parse.unquote(wire.replace("%40", "@"))
    for name in ["visa", "email_header", "jwt_header", "cookie", "password_form", "gcp", "slack", "discover"]:
        assert S[name] in wire, name
    assert S["bearer_sse"] in answers[4].decode() and S["sse_jwt"] in answers[4].decode()
    assert S["email_ws"] in ws_answers[0] and S["visa"].encode() in ws_answers[1], ws_answers
    assert S["grpc_card"].encode() in grpc_answer and S["stripe"].encode() in grpc_answer
    return [out for _, out in captures]


def haystack(recs):
    """Every readable form of everything recorded: the records' JSON, raw bytes decoded from base64,
    byte members decoded, gzip bodies inflated, HTTP/2 header blocks of redacted envelopes HPACK-decoded."""
    parts = []
    for r in recs:
        parts.append(json.dumps(r))
        if r.get("type") != "envelope":
            continue
        raw = base64.b64decode(r.get("raw", "")) if isinstance(r.get("raw"), str) else b""
        parts.append(raw.decode("latin-1"))
        m = r.get("message", {})
        for key in ("body", "payload", "data"):
            if key in m:
                b = byte_member(m[key])
                parts.append(b.decode("latin-1"))
                if b[:2] == b"\x1f\x8b":
                    parts.append(gzip.decompress(b).decode("latin-1"))
        if m.get("version") == "HTTP/2" and raw and any(t == "redacted" for t in r.get("tags", {})):
            decoder, i = hpack.Decoder(), 0
            while i + 9 <= len(raw):
                n, kind = int.from_bytes(raw[i:i + 3], "big"), raw[i + 3]
                if kind in (1, 9):
                    parts.append(repr(decoder.decode(raw[i + 9:i + 9 + n])))
                i += 9 + n
    return "\n".join(parts)


def left(text):
    """The secrets found in `text`, also url-decoded."""
    forms = text + urllib.parse.unquote(text)
    return [name for name, secret in S.items() if secret in forms or secret.replace(" ", "") in forms]


class Redact(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.redacted = session(True)
        cls.plain = session(False)
        cls.tmp = tempfile.mkdtemp()
        cls.files = []
        for i, out in enumerate(cls.plain):
            path = os.path.join(cls.tmp, "plain%d.jsonl" % i)
            with open(path, "wb") as f:
                f.write(out)
            cls.files.append(path)

    def test_the_corpus_is_large_and_of_every_kind(self):
        self.assertGreaterEqual(len(SECRETS), 30)
        self.assertEqual({k for k, _ in SECRETS.values()},
                         {"credit_card", "email", "phone", "jwt", "bearer", "authorization", "cookie", "api_key",
                          "private_key", "password"})
        # Without --redact every secret is in the capture: the check below can fail.
        plain = "".join(haystack(records(out)) for out in self.plain)
        self.assertEqual(sorted(set(S) - set(left(plain))), [])

    def test_live_capture_keeps_no_secret_and_the_look_alikes(self):
        recs = [r for out in self.redacted for r in records(out)]
        text = haystack(recs)
        self.assertEqual(left(text), [])
        for lookalike in LOOKALIKES:
            self.assertIn(lookalike, text.replace('\\"', '"'))
        tags = {t for r in recs if r.get("type") == "envelope"
                for t in r.get("tags", {}).get("redacted", "").split(",") if t}
        self.assertTrue({"credit_card", "email", "phone", "jwt", "bearer", "authorization", "cookie", "api_key",
                         "private_key", "password"} <= tags, tags)
        # Still well framed: each redacted HTTP/1 message's bytes end with its body, as long as its
        # Content-Length says; each WebSocket frame's length is its payload's.
        framed = 0
        for r in recs:
            if r.get("type") != "envelope" or "redacted" not in r.get("tags", {}) or r.get("overlay"):
                continue
            raw, m = base64.b64decode(r["raw"]), r["message"]
            if r["protocol"] == "http" and m["version"] == "HTTP/1.1":
                head, _, rest = raw.partition(b"\r\n\r\n")
                length = [int(v) for k, v in m["headers"] if k.lower() == "content-length"]
                self.assertEqual(rest, byte_member(m.get("body", "")))
                self.assertEqual(length, [len(rest)] if length else [])
                framed += 1
            elif r["protocol"] == "ws":
                n = raw[1] & 0x7f
                self.assertEqual(n, len(raw) - 2 - (4 if raw[1] & 0x80 else 0))
                self.assertEqual(len(byte_member(m["payload"])), n)
                framed += 1
        self.assertGreaterEqual(framed, 8)
        kinds = [(r["protocol"], r["message"].get("kind")) for r in recs if r.get("type") == "envelope"]
        self.assertGreaterEqual(kinds.count(("ws", "frame")), 4)
        self.assertIn(("grpc", "start"), kinds)

    def test_redact_command_and_its_har_keep_no_secret(self):
        out = run("redact", *self.files).stdout
        recs = records(out)
        self.assertEqual(len(recs), sum(len(records(o)) for o in self.plain))  # nothing lost
        self.assertEqual(left(haystack(recs)), [])
        har = os.path.join(self.tmp, "safe.har")
        run("export", "--format", "har", "-w", har, "-", input=out)
        with open(har) as f:
            doc = f.read()
        texts = [doc]
        for entry in json.loads(doc)["log"]["entries"]:
            content = entry["response"]["content"]
            if content.get("encoding") == "base64":
                texts.append(base64.b64decode(content["text"]).decode("latin-1"))
        self.assertEqual(left("\n".join(texts)), [])
        self.assertIn(LOOKALIKES[0], doc)
        v = validate_har(har)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        # One implementation: `sluice redact` finds nothing more in what `proxy --redact` recorded.
        for live in self.redacted:
            self.assertEqual(records(run("redact", "-", input=live).stdout), records(live))

    def test_policies_and_bad_ones(self):
        out = run("redact", "--policy", "email", self.files[0]).stdout
        text = haystack(records(out))
        self.assertNotIn(S["email_json"], text)
        self.assertIn(S["visa"], text)
        policy = os.path.join(self.tmp, "policy.json")
        with open(policy, "w") as f:
            json.dump({"kinds": [], "patterns": [{"name": "theme", "regex": "theme=(dark)"}]}, f)
        text = haystack(records(run("redact", "-p", policy, self.files[0]).stdout))
        self.assertNotIn("theme=dark", text)
        self.assertIn(S["email_json"], text)
        # The schema in formats/ takes what sluice takes and refuses what it refuses.
        import jsonschema  # Debian: python3-jsonschema
        with open(os.path.join(os.path.dirname(__file__), "..", "..", "formats", "redact.schema.json")) as f:
            validator = jsonschema.Draft202012Validator(json.load(f))
        good = {"kinds": ["credentials", "email,phone"], "patterns": [{"name": "id", "regex": "EMP-[0-9]+", "ignore_case": True}],
                "headers": ["X-Internal"], "fields": ["ssn"]}
        self.assertEqual(list(validator.iter_errors(good)), [])
        with open(policy, "w") as f:
            json.dump(good, f)
        run("redact", "-p", policy, self.files[0])
        for bad in [{"kind": []}, {"kinds": ["emails"]}, {"patterns": [{"name": "x"}]}, {"headers": "x"}]:
            self.assertNotEqual(list(validator.iter_errors(bad)), [], bad)
            with open(policy, "w") as f:
                json.dump(bad, f)
            self.assertEqual(subprocess.run([SLUICE, "redact", "-p", policy, self.files[0]], capture_output=True).returncode, 2)
        for args, message in [(["redact", "-p", "nosuch", self.files[0]], "sluice: redact: --policy: no preset or kind named 'nosuch'"),
                              (["proxy", "--redact", "emails"], "sluice: proxy: --redact: no preset or kind named 'emails'"),
                              (["redact", "-p", "/nonexistent.json", self.files[0]],
                               "sluice: redact: --policy: cannot read /nonexistent.json")]:
            p = subprocess.run([SLUICE, *args], capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 2, p.stderr)
            lines = p.stderr.decode().strip().splitlines()
            self.assertEqual(len(lines), 1, lines)
            self.assertTrue(lines[0].startswith(message), lines)
        with open(policy, "w") as f:
            f.write('{"patterns": [{"name": "x", "regex": "(a"}]}')
        p = subprocess.run([SLUICE, "proxy", "--redact", policy], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn("patterns[0].regex", p.stderr.decode())


if __name__ == "__main__":
    unittest.main()
