"""`sluice proxy` in regular mode with curl: CONNECT tunnels recorded as raw chunks, clear errors.

Absolute-form HTTP/1 proxying is tested in test_http1.py."""
import base64
import os
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from support import closed_port, curl, records, serve_hello, Proxy  # noqa: E402


def serve(tls_dir=None):
    if tls_dir:
        return serve_hello(os.path.join(tls_dir, "cert.pem"), os.path.join(tls_dir, "key.pem"))
    return serve_hello()



class Regular(unittest.TestCase):
    def test_connect_tunnel_to_http(self):
        origin = serve()
        proxy = Proxy("--mode", "regular@0")
        url = "http://127.0.0.1:%d/tunnelled" % origin.server_address[1]
        p = curl("-p", "-x", "http://127.0.0.1:%d" % proxy.port, url)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, b"hello from /tunnelled\n")
        time.sleep(0.2)
        code, out = proxy.stop()
        self.assertEqual(code, 0)
        recs = records(out)
        http = [r for r in recs if r["type"] == "envelope" and r["protocol"] == "http"]
        self.assertEqual(http[0]["message"]["method"], "CONNECT")
        self.assertEqual(http[0]["message"]["authority"], "127.0.0.1:%d" % origin.server_address[1])
        self.assertEqual(http[1]["message"]["status"], 200)
        # Plain HTTP/1 inside the tunnel is detected and recorded as HTTP, in a sub-stream.
        inner = [r for r in http if r["stream_id"] != http[0]["stream_id"]]
        self.assertEqual(inner[0]["message"]["path"], "/tunnelled")
        self.assertTrue(inner[0]["stream_id"].startswith(http[0]["stream_id"] + "."))
        self.assertTrue(base64.b64decode(inner[0]["raw"]).startswith(b"GET /tunnelled HTTP/1.1\r\n"))
        self.assertEqual(inner[1]["message"]["status"], 200)
        self.assertEqual(inner[1]["message"]["body"], "hello from /tunnelled\n")
        self.assertFalse([r for r in recs if r["type"] == "envelope" and r["protocol"] == "raw"])
        origin.shutdown()

    def test_passthrough_host_is_tunnelled_undecrypted(self):
        with tempfile.TemporaryDirectory() as d:
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                            "-nodes", "-keyout", os.path.join(d, "key.pem"), "-out", os.path.join(d, "cert.pem"),
                            "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                           check=True, capture_output=True)
            origin = serve(d)
            proxy = Proxy("--mode", "regular@0", "--tls-passthrough", "127.0.0.1")
            # The origin's own certificate reaches curl: nothing was intercepted.
            p = curl("--cacert", os.path.join(d, "cert.pem"), "-x", "http://127.0.0.1:%d" % proxy.port,
                     "https://127.0.0.1:%d/secret" % origin.server_address[1])
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout, b"hello from /secret\n")
            time.sleep(0.2)
            code, out = proxy.stop()
            origin.shutdown()
        recs = records(out)
        raw = [r for r in recs if r["type"] == "envelope" and r["protocol"] == "raw"]
        first = base64.b64decode(raw[0]["raw"])
        self.assertEqual(first[:2], b"\x16\x03")  # a TLS ClientHello, passed through untouched
        self.assertNotIn(b"/secret", b"".join(base64.b64decode(r["raw"]) for r in raw))
        self.assertFalse([r for r in recs if r["type"] == "envelope" and r["protocol"] == "http"
                          and r["message"].get("path") == "/secret"])
        hello = [r for r in recs if r["type"] == "envelope" and r["protocol"] == "tls-handshake"]
        self.assertEqual(len(hello), 1)
        self.assertEqual(hello[0]["message"]["side"], "client")
        self.assertEqual(hello[0]["tags"].get("passthrough"), "true")
        self.assertTrue(hello[0]["message"]["ja4"].startswith("t13i"), hello[0]["message"]["ja4"])  # no SNI for an IP

    def test_refused_server_is_502_naming_the_cause(self):
        port = closed_port()
        proxy = Proxy("--mode", "regular@0")
        p = curl("-p", "-x", "http://127.0.0.1:%d" % proxy.port, "http://127.0.0.1:%d/" % port)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"502", p.stderr)
        time.sleep(0.2)
        code, out = proxy.stop()
        recs = records(out)
        resp = [r for r in recs if r["type"] == "envelope" and r["direction"] == "receive"][0]
        self.assertEqual(resp["message"]["status"], 502)
        self.assertIn("connection refused by 127.0.0.1:%d" % port, resp["message"]["body"])
        self.assertEqual([r["code"] for r in recs if r["type"] == "error"], ["connect_refused"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
