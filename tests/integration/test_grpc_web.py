"""gRPC-Web through `sluice proxy` (reverse mode, HTTP/1.1): binary application/grpc-web+proto and base64
application/grpc-web-text requests and responses are decoded into grpc-web start/data/end envelopes;
malformed base64 and framing are named as anomalies, and the bytes still pass untouched."""
import base64
import http.server
import os
import struct
import sys
import time
import unittest
import urllib.request
import warnings

sys.path.insert(0, os.path.dirname(__file__))
from support import Proxy, records, serve_hello  # noqa: E402

warnings.simplefilter("ignore", ResourceWarning)


def lpm(payload, flag=0):
    return struct.pack(">BI", flag, len(payload)) + payload


class GrpcWebEcho(http.server.BaseHTTPRequestHandler):
    """What an Envoy-fronted gRPC-Web service answers: the request's messages echoed, then a trailer frame."""
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        kind = self.headers["Content-Type"]
        text = kind.startswith("application/grpc-web-text")
        try:
            raw = base64.b64decode(body) if text else body
        except ValueError:
            self.send_response(400)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        out = b""
        pos = 0
        while pos + 5 <= len(raw):
            n = struct.unpack(">I", raw[pos + 1:pos + 5])[0]
            out += lpm(b"echo:" + raw[pos + 5:pos + 5 + n])
            pos += 5 + n
        out += lpm(b"grpc-status: 0\r\ngrpc-message: fine\r\n", 0x80)
        if text:  # sent in two base64 chunks, as a streaming server flushes them
            half = len(out) // 2
            out = base64.b64encode(out[:half]) + base64.b64encode(out[half:])
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


class GrpcWeb(unittest.TestCase):
    def setUp(self):
        self.origin = serve_hello(handler=GrpcWebEcho)
        self.proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % self.origin.server_address[1])

    def tearDown(self):
        self.origin.shutdown()

    def post(self, body, kind):
        req = urllib.request.Request("http://127.0.0.1:%d/test.Echo/Say" % self.proxy.port, data=body,
                                     headers={"Content-Type": kind, "X-Grpc-Web": "1", "grpc-timeout": "5S"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read()

    def grpc_web(self):
        time.sleep(0.2)
        code, out = self.proxy.stop()
        self.assertEqual(code, 0)
        return [r for r in records(out) if r["type"] == "envelope" and r["protocol"] == "grpc-web"]

    def test_binary_and_text_forms_are_decoded(self):
        got = self.post(lpm(b"one") + lpm(b"two"), "application/grpc-web+proto")
        self.assertTrue(got.startswith(lpm(b"echo:one")))  # passed through untouched
        got = self.post(base64.b64encode(lpm(b"three")), "application/grpc-web-text+proto")
        self.assertTrue(got.endswith(b"="))  # base64 as the origin sent it (two padded chunks)
        env = self.grpc_web()
        # Two connections: their records may interleave in the stream, each flow's keep their order.
        flows = {}
        for r in env:
            flows.setdefault(r["flow_id"], []).append(r)
        env = sorted(flows.values(), key=len, reverse=True)
        env = env[0] + env[1]
        kinds = [(r["direction"], r["message"]["kind"]) for r in env]
        self.assertEqual(kinds, [("send", "start"), ("send", "data"), ("send", "data"),
                                 ("receive", "data"), ("receive", "data"), ("receive", "end"),
                                 ("send", "start"), ("send", "data"), ("receive", "data"), ("receive", "end")])
        start = env[0]["message"]
        self.assertEqual((start["service"], start["method"], start["timeout"]), ("test.Echo", "Say", "5S"))
        payloads = [r["message"]["payload"] for r in env if r["message"]["kind"] == "data"]
        self.assertEqual(payloads, ["one", "two", "echo:one", "echo:two", "three", "echo:three"])
        ends = [r["message"] for r in env if r["message"]["kind"] == "end"]
        self.assertEqual([(e["status"], e["message"]) for e in ends], [(0, "fine"), (0, "fine")])
        self.assertFalse([r for r in env if r.get("anomalies")])

    def test_malformed_messages_are_named(self):
        bad_text = b"!!!not base64!!!"
        req = urllib.request.Request("http://127.0.0.1:%d/test.Echo/Say" % self.proxy.port, data=lpm(b"x")[:3],
                                     headers={"Content-Type": "application/grpc-web+proto"})
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()
        req = urllib.request.Request("http://127.0.0.1:%d/test.Echo/Say" % self.proxy.port, data=bad_text,
                                     headers={"Content-Type": "application/grpc-web-text"})
        try:
            urllib.request.urlopen(req, timeout=10).read()
        except Exception:  # the origin cannot decode it either; what matters is the record
            pass
        env = self.grpc_web()
        names = [a["name"] for r in env for a in r.get("anomalies", [])]
        self.assertIn("malformed_grpc_web_lpm", names)
        self.assertIn("malformed_grpc_web_base64", names)


if __name__ == "__main__":
    unittest.main(verbosity=2)
