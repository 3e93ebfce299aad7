"""Scope (mitmproxy's --ignore-hosts and --allow-hosts): an ignored host's TLS connection, after CONNECT or
SOCKS5, is tunnelled untouched (the client sees the origin's own certificate) and only summarized in the
stream (its client hello, its end), and so is a plain one; the other hosts are intercepted as ever; both flags at once are
refused. `--scope-filter EXPR`: exchanges whose request does not match are forwarded untouched (no rule
or step sees them) and nothing of them is recorded, WebSocket frames included."""
import asyncio
import http.server
import os
import subprocess
import sys
import threading
import unittest

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from support import Proxy, SLUICE, TEST_ENV, curl, records  # noqa: E402
from test_tls import PkiCase, origin  # noqa: E402
from test_websocket import EchoServer  # noqa: E402


class IgnoredHosts(PkiCase):
    def check(self, mode, proxy_url, flags):
        server = origin(self.pki)
        port = server.server_address[1]
        proxy = Proxy("--mode", mode, "--server-ca", self.pki.ca, *flags)
        via = ["-x", proxy_url % proxy.port]
        # localhost is out of scope: the origin's own certificate (sluice's CA does not verify it).
        theirs = curl(*via, "--cacert", self.pki.ca, "https://localhost:%d/ignored" % port)
        self.assertEqual(theirs.stdout, b"hello from /ignored\n", theirs.stderr)
        ours = curl(*via, "--cacert", self.sluice_ca, "https://localhost:%d/ignored-again" % port)
        self.assertNotEqual(ours.returncode, 0)  # (60: the certificate is not sluice's)
        # 127.0.0.1 is in scope: intercepted, sluice's certificate.
        seen = curl(*via, "--cacert", self.sluice_ca, "https://127.0.0.1:%d/seen" % port)
        self.assertEqual(seen.stdout, b"hello from /seen\n", seen.stderr)
        code, out = proxy.stop()
        server.shutdown()
        self.assertEqual(code, 0)
        recs = records(out)
        envs = [r for r in recs if r["type"] == "envelope"]
        hellos = [r for r in envs if r["protocol"] == "tls-handshake" and r["tags"].get("ignored") == "true"]
        self.assertEqual([h["message"]["sni"] for h in hellos], ["localhost", "localhost"])
        self.assertEqual(sorted({r["message"]["path"] for r in envs if r["protocol"] == "http"
                                 and r["message"].get("kind") == "request" and r["message"].get("method") == "GET"}),
                         ["/seen"])
        # No byte of the tunnels (a SOCKS5 client's own greeting and request are recorded as ever).
        self.assertEqual([r for r in envs if r["protocol"] == "raw" and "socks5" not in r["tags"]], [])
        self.assertNotIn(b"/ignored", out)
        # Each ignored tunnel still says how much went through it.
        ends = [r for r in recs if r["type"] == "end" and r.get("scope") == "stream" and r.get("bytes_sent")]
        self.assertTrue(ends)

    def test_ignore_hosts_over_connect(self):
        self.check("regular@0", "http://127.0.0.1:%d", ["--ignore-hosts", "^LOCALHOST$"])  # case-insensitive

    def test_allow_hosts_is_the_opposite(self):
        self.check("regular@0", "http://127.0.0.1:%d", ["--allow-hosts", r"^127\.0\.0\.1$"])

    def test_ignore_hosts_over_socks5(self):
        self.check("socks5@0", "socks5h://127.0.0.1:%d", ["--ignore-hosts", "localhost"])

    def test_a_plain_tunnel_to_an_ignored_host_is_not_intercepted(self):
        # Plain HTTP through CONNECT (curl --proxytunnel) and through SOCKS5: no record of what went
        # through, only each tunnel's end; the same request to a host in scope is intercepted.
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.server_address[1]
        for mode, via in (("regular@0", ["-p", "-x", "http://127.0.0.1:%d"]), ("socks5@0", ["-x", "socks5h://127.0.0.1:%d"])):
            with self.subTest(mode=mode):
                proxy = Proxy("--mode", mode, "--ignore-hosts", "^localhost$")
                args = [a % proxy.port if "%d" in a else a for a in via]
                got = curl(*args, "http://localhost:%d/secret-path" % port)
                self.assertEqual(got.returncode, 0, got.stderr)
                self.assertIn(b"/secret-path", got.stdout)
                seen = curl(*args, "http://127.0.0.1:%d/seen" % port)
                self.assertIn(b"/seen", seen.stdout)
                code, out = proxy.stop()
                self.assertEqual(code, 0)
                self.assertNotIn(b"secret-path", out)
                recs = records(out)
                paths = [r["message"].get("path") for r in recs if r["type"] == "envelope" and r["protocol"] == "http"
                         and r["message"].get("kind") == "request" and r["message"].get("method") != "CONNECT"]
                self.assertEqual(paths, ["/seen"])
                self.assertTrue([r for r in recs if r["type"] == "end" and r.get("bytes_sent")])
        server.shutdown()

    def test_both_at_once_and_a_bad_pattern_are_refused(self):
        for args, message in ((["--allow-hosts", "a", "--ignore-hosts", "b"], "mutually exclusive"),
                              (["--ignore-hosts", "(x"], "--ignore-hosts '(x'")):
            for command in (["proxy", "--mode", "regular@0"], ["replay", "-"]):
                p = subprocess.run([SLUICE, *command, *args], capture_output=True, input=b"", timeout=30, env=TEST_ENV)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(message.encode(), p.stderr)
                self.assertNotIn(b"listening", p.stderr)


class Echo(http.server.BaseHTTPRequestHandler):
    """Answers with the request's line and headers as it got them."""
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.answer()

    def do_POST(self):
        self.answer()

    def answer(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = (self.requestline + "\n" + str(self.headers)).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class ScopeFilter(unittest.TestCase):
    def test_exchanges_outside_are_forwarded_untouched_and_not_recorded(self):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = "http://127.0.0.1:%d" % server.server_address[1]
        proxy = Proxy("--mode", "regular@0", "--scope-filter", "~u /in", "-H", "/~q/X-Rule/on")
        via = ["-x", "http://127.0.0.1:%d" % proxy.port]
        inside = curl(*via, base + "/in/a").stdout
        outside = curl(*via, base + "/out/b", "--data-binary", "secret=1").stdout
        inside2 = curl(*via, base + "/in/c").stdout
        code, out = proxy.stop()
        server.shutdown()
        self.assertEqual(code, 0)
        self.assertIn(b"X-Rule: on", inside)  # the rule saw it
        self.assertIn(b"X-Rule: on", inside2)
        self.assertIn(b"POST /out/b", outside)
        self.assertNotIn(b"X-Rule", outside)  # forwarded untouched: no step saw it
        recs = records(out)
        envs = [r for r in recs if r["type"] == "envelope"]
        paths = sorted({r["message"]["path"] for r in envs if r["message"].get("kind") == "request"})
        self.assertEqual(paths, sorted([base + "/in/a", base + "/in/c", "/in/a", "/in/c"]))  # as sent, and as received
        self.assertNotIn(b"/out/b", out)
        self.assertNotIn(b"secret=1", out)
        flows = {r["flow_id"] for r in envs}
        self.assertEqual(len(flows), 2)
        self.assertEqual(len([r for r in envs if r["message"].get("kind") == "response"]), 2)
        self.assertIn("1 exchange outside --scope-filter forwarded and not recorded", "".join(proxy.stderr_lines))

    def test_a_websocket_outside_is_not_recorded_frame_by_frame(self):
        ws = EchoServer(compression=None)
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % ws.port, "--scope-filter", "!~u /private")

        async def talk(path):
            async with websockets.connect("ws://127.0.0.1:%d%s" % (proxy.port, path), compression=None) as c:
                await c.send("hello " + path)
                assert await c.recv() == "hello " + path
        asyncio.run(talk("/public"))
        asyncio.run(talk("/private"))
        code, out = proxy.stop()
        ws.close()
        self.assertEqual(code, 0)
        self.assertIn(b"hello /public", out)
        self.assertNotIn(b"hello /private", out)
        self.assertNotIn(b"/private", out)

    def test_a_bad_expression_is_refused(self):
        p = subprocess.run([SLUICE, "proxy", "--scope-filter", "~x nope"], capture_output=True, env=TEST_ENV, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertTrue(p.stderr.decode().startswith("sluice: proxy: --scope-filter: "), p.stderr)


if __name__ == "__main__":
    unittest.main()
