"""`sluice replay` against loopback servers: a capture made through `sluice proxy` is sent again; the new
exchanges are recorded and tagged; --check/--junit report mismatches; concurrency, rate, scope,
retries, timeouts and --as-recorded do what they say, measured by the servers."""
import http.server
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import warnings
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(__file__))
from support import SLUICE, TEST_ENV, Proxy, connect, curl, records, recv_all, run_on_terminal, serve_hello  # noqa: E402
from test_tls import PkiCase, origin  # noqa: E402

warnings.simplefilter("ignore", ResourceWarning)


class App(http.server.BaseHTTPRequestHandler):
    """A JSON service that logs what it is asked (time, path, concurrency) and can be "changed"."""
    protocol_version = "HTTP/1.1"
    log = []
    lock = threading.Lock()
    active = 0
    max_active = 0
    delay = 0.0
    changed = False

    @classmethod
    def reset(cls, delay=0.0, changed=False):
        with cls.lock:
            cls.log, cls.active, cls.max_active, cls.delay, cls.changed = [], 0, 0, delay, changed

    def answer(self, body_in=b""):
        with App.lock:
            App.active += 1
            App.max_active = max(App.max_active, App.active)
            App.log.append((time.monotonic(), self.command, self.path, self.headers.get("Host")))
        time.sleep(App.delay)
        with App.lock:
            App.active -= 1  # before answering: the client may start its next request at once
        user = "bob" if App.changed and self.path.startswith("/user") else "alice"
        body = ('{"path": "%s", "user": "%s", "got": %d}' % (self.path, user, len(body_in))).encode()
        self.send_response(500 if App.changed and self.path == "/fail" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.answer()

    def do_POST(self):
        self.answer(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

    def log_message(self, *args):
        pass


def capture(urls, proxy_args=(), curl_args=()):
    """The stream `sluice proxy` writes while curl fetches each URL (a list, or (url, extra args))."""
    proxy = Proxy("--mode", "regular@0", *proxy_args)
    for u in urls:
        url, extra = (u, ()) if isinstance(u, str) else u
        p = curl("-x", "http://127.0.0.1:%d" % proxy.port, *curl_args, *extra, url)
        assert p.returncode == 0, p.stderr
    time.sleep(0.2)
    code, out = proxy.stop()
    assert code == 0
    return out


def replay(capture_bytes, *args, timeout=60):
    with tempfile.NamedTemporaryFile(suffix=".sluice") as f:
        f.write(capture_bytes)
        f.flush()
        p = subprocess.run([SLUICE, "replay", *args, f.name], capture_output=True, env=TEST_ENV, timeout=timeout)
    return p


def envelopes(recs, direction=None):
    return [r for r in recs if r["type"] == "envelope" and r["protocol"] == "http"
            and (direction is None or r["direction"] == direction)]


class Replay(unittest.TestCase):
    def setUp(self):
        App.reset()
        self.app = serve_hello(handler=App)
        self.base = "http://127.0.0.1:%d" % self.app.server_address[1]

    def tearDown(self):
        self.app.shutdown()

    def test_check_passes_on_the_same_server_and_tags_the_new_flows(self):
        cap = capture([self.base + "/user/1", self.base + "/items?page=2",
                       (self.base + "/orders", ("-d", '{"n": 3}', "-H", "Content-Type: application/json"))])
        App.reset()
        with tempfile.TemporaryDirectory() as d:
            junit = os.path.join(d, "report.xml")
            p = replay(cap, "--check", "--junit", junit)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn(b"3 flows: 3 passed, 0 failed, 0 errors, 0 skipped", p.stderr)
            suite = ET.parse(junit).getroot().find("testsuite")
            cases = suite.findall("testcase")
        self.assertEqual(suite.get("tests"), "3")
        self.assertEqual(suite.get("failures"), "0")
        self.assertEqual([c.get("name") for c in cases],
                         ["GET %s/user/1" % self.base, "GET %s/items?page=2" % self.base, "POST %s/orders" % self.base])
        self.assertEqual([(m, path) for _, m, path, _ in App.log], [("GET", "/user/1"), ("GET", "/items?page=2"),
                                                                    ("POST", "/orders")])
        old = {r["flow_id"] for r in envelopes(records(cap), "send")}
        new = envelopes(records(p.stdout))
        self.assertEqual(len(new), 6)
        self.assertTrue(all(dict(r["tags"]).get("replay_of") in old for r in new))
        post = [r for r in new if r["direction"] == "send" and r["message"]["method"] == "POST"][0]
        self.assertEqual(post["message"]["body"], '{"n": 3}')
        # `sluice filter ~replay` finds them.
        f = subprocess.run([SLUICE, "filter", "~replay", "--envelopes", "-"], input=p.stdout, capture_output=True,
                           env=TEST_ENV, timeout=30)
        self.assertEqual(len(envelopes(records(f.stdout))), 6)

    def test_check_fails_with_a_readable_report_on_a_changed_server(self):
        cap = capture([self.base + "/user/1", self.base + "/fail", self.base + "/same"])
        App.reset(changed=True)
        with tempfile.TemporaryDirectory() as d:
            junit = os.path.join(d, "report.xml")
            p = replay(cap, "--check", "--junit", junit)
            self.assertEqual(p.returncode, 1, p.stderr)
            err = p.stderr.decode()
            self.assertIn("FAIL  GET %s/user/1" % self.base, err)
            self.assertIn('body $.user: "alice" -> "bob"', err)
            self.assertIn("FAIL  GET %s/fail" % self.base, err)
            self.assertIn("status: 200 -> 500", err)
            self.assertIn("3 flows: 1 passed, 2 failed, 0 errors, 0 skipped", err)
            root = ET.parse(junit).getroot()
        cases = root.find("testsuite").findall("testcase")
        self.assertEqual(len(cases), 3)
        self.assertEqual([c.find("failure") is not None for c in cases], [True, True, False])
        self.assertIn("status: 200 -> 500", cases[1].find("failure").get("message"))
        # The same comparison with the body path ignored: only the status differs.
        p = replay(cap, "--check", "--ignore-json-path", "$.user")
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"3 flows: 2 passed, 1 failed", p.stderr)

    def test_concurrency_is_respected(self):
        cap = capture([self.base + "/c/%d" % i for i in range(9)])
        App.reset(delay=0.3)
        started = time.monotonic()
        p = replay(cap, "--concurrency", "3", "-q")
        elapsed = time.monotonic() - started
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(App.log), 9)
        self.assertEqual(App.max_active, 3)
        self.assertLess(elapsed, 9 * 0.3)  # not one at a time
        App.reset(delay=0.1)
        p = replay(cap, "-q")  # the default: one at a time, in order
        self.assertEqual(App.max_active, 1)
        self.assertEqual([path for _, _, path, _ in App.log], ["/c/%d" % i for i in range(9)])

    def test_rate_is_respected(self):
        cap = capture([self.base + "/r/%d" % i for i in range(6)])
        App.reset()
        p = replay(cap, "--rate", "5", "--concurrency", "6", "-q")
        self.assertEqual(p.returncode, 0, p.stderr)
        times = sorted(t for t, _, _, _ in App.log)
        self.assertEqual(len(times), 6)
        gaps = [b - a for a, b in zip(times, times[1:])]
        self.assertGreater(min(gaps), 0.15, gaps)  # 5 per second: 0.2 s apart
        self.assertGreater(times[-1] - times[0], 0.9)

    def test_scope_refuses_out_of_scope_hosts_and_says_so(self):
        port = self.app.server_address[1]
        cap = capture(["http://127.0.0.1:%d/in" % port, "http://localhost:%d/out" % port])
        App.reset()
        with tempfile.TemporaryDirectory() as d:
            junit = os.path.join(d, "report.xml")
            p = replay(cap, "--scope", "127.0.0.1", "--check", "--junit", junit)
            root = ET.parse(junit).getroot()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual([path for _, _, path, _ in App.log], ["/in"])
        self.assertIn(b"skipped GET http://localhost:%d/out" % port, p.stderr)
        self.assertIn(b"host localhost is outside --scope", p.stderr)
        self.assertEqual(root.find("testsuite").get("skipped"), "1")

    def test_ignore_and_allow_hosts_refuse_hosts_outside_the_scope_without_contacting_them(self):
        port = self.app.server_address[1]
        cap = capture(["http://127.0.0.1:%d/in" % port, "http://localhost:%d/out" % port])
        for flags in (["--ignore-hosts", "^LOCALHOST$"], ["--allow-hosts", r"^127\.0\.0\.1$"]):
            App.reset()
            p = replay(cap, *flags, "--check")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual([path for _, _, path, _ in App.log], ["/in"])  # localhost never contacted
            self.assertIn(b"skipped GET http://localhost:%d/out" % port, p.stderr)
            self.assertIn(b"host localhost is outside the scope (%s)" % flags[0].encode(), p.stderr)

    def test_target_sends_everything_elsewhere_keeping_the_host_header(self):
        cap = capture([self.base + "/t"])
        App.reset()
        other_log = []

        class Other(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                other_log.append((self.path, self.headers.get("Host")))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        other = serve_hello(handler=Other)
        try:
            p = replay(cap, "--target", "http://127.0.0.1:%d" % other.server_address[1], "--check")
        finally:
            other.shutdown()
        self.assertEqual(other_log, [("/t", "127.0.0.1:%d" % self.app.server_address[1])])
        self.assertEqual(App.log, [])
        self.assertEqual(p.returncode, 1)  # 204 where 200 was recorded
        self.assertIn(b"status: 200 -> 204", p.stderr)
        self.assertEqual(replay(cap, "--target", "http://h/path").returncode, 2)

    def test_retries_and_a_dead_server_give_errors_naming_the_cause(self):
        cap = capture([self.base + "/gone"])
        self.app.shutdown()
        self.app.server_close()
        p = replay(cap, "--retries", "2", "--check")
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"ERROR GET %s/gone" % self.base.encode(), p.stderr)
        self.assertIn(b"refused", p.stderr)
        errors = [r for r in records(p.stdout) if r["type"] == "error"]
        self.assertEqual(len(errors), 3)  # the first try and two more
        self.app = serve_hello(handler=App)  # for tearDown

    def test_timeout_ends_a_stalled_exchange(self):
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        port = silent.getsockname()[1]
        cap = capture([self.base + "/x"])
        started = time.monotonic()
        p = replay(cap, "--target", "http://127.0.0.1:%d" % port, "--timeout", "0.5")
        silent.close()
        self.assertLess(time.monotonic() - started, 10)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"no complete response within 0.5 s", p.stderr)

    def test_as_recorded_puts_the_original_bytes_on_the_wire(self):
        received = []
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        port = srv.getsockname()[1]

        def serve(n):
            for _ in range(n):
                c, _ = srv.accept()
                data = b""
                while b"\r\n\r\nbody!" not in data:
                    chunk = c.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                received.append(data)
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                c.close()

        t = threading.Thread(target=serve, args=(3,), daemon=True)
        t.start()
        odd = (b"POST http://127.0.0.1:%d/odd?q=%%41 HTTP/1.1\r\nhost: 127.0.0.1:%d\r\nX-Odd:   three spaces\r\n"
               b"x-CASE: MiXeD\r\nContent-Length: 5\r\n\r\nbody!" % (port, port))
        proxy = Proxy("--mode", "regular@0")
        with connect(proxy.port) as c:
            c.sendall(odd)
            c.shutdown(socket.SHUT_WR)
            self.assertTrue(recv_all(c).startswith(b"HTTP/1.1 200 OK"))
        time.sleep(0.2)
        cap = proxy.stop()[1]
        p = replay(cap, "--as-recorded")
        self.assertEqual(p.returncode, 0, p.stderr)
        p = replay(cap)  # re-encoded: same meaning, our own framing
        self.assertEqual(p.returncode, 0, p.stderr)
        t.join(10)
        srv.close()
        self.assertEqual(len(received), 3)
        self.assertEqual(received[1], received[0])  # byte for byte what the server got the first time
        self.assertIn(b"X-Odd:   three spaces\r\n", received[1])
        self.assertTrue(received[2].startswith(b"POST /odd?q=%41 HTTP/1.1\r\nhost: 127.0.0.1:"))
        self.assertIn(b"X-Odd: three spaces\r\nx-CASE: MiXeD\r\n", received[2])

    def test_progress_on_a_terminal(self):
        cap = capture([self.base + "/p/%d" % i for i in range(3)])
        with tempfile.NamedTemporaryFile(suffix=".sluice") as f:
            f.write(cap)
            f.flush()
            code, shown, _ = run_on_terminal([SLUICE, "replay", "-w", os.devnull, f.name], stdout=False)
        self.assertEqual(code, 0)
        self.assertIn(b"\r\x1b[Ksluice: replay: 3/3 flows\r\n", shown)
        # Not on a pipe.
        self.assertNotIn(b"3/3 flows", replay(cap, "-w", os.devnull).stderr)

    def test_a_check_with_nothing_to_check_fails(self):
        """A HAR, plain JSON, an empty file or a capture without HTTP requests is no green check."""
        with tempfile.TemporaryDirectory() as d:
            har = os.path.join(d, "x.har")
            with open(har, "w") as f:
                f.write('{"log": {"version": "1.2", "entries": []}}\n')
            p = subprocess.run([SLUICE, "replay", "--check", har], capture_output=True, env=TEST_ENV, timeout=60)
            self.assertEqual(p.returncode, 2)
            self.assertEqual(p.stderr.decode(), "sluice: replay: %s is a HAR file, not a sluice stream (convert it: "
                                                "sluice import %s)\n" % (har, har))
            junk = os.path.join(d, "x.json")
            with open(junk, "w") as f:
                f.write('{"name": "not a capture"}\n')
            empty = os.path.join(d, "empty")
            open(empty, "w").close()
            for path in (junk, empty):
                p = subprocess.run([SLUICE, "replay", "--check", path], capture_output=True, env=TEST_ENV, timeout=60)
                self.assertEqual(p.returncode, 2, path)
                self.assertNotIn(b"passed", p.stderr)
            # A real capture of raw TCP only: nothing to send, so nothing checked, which fails.
            raw = subprocess.run([SLUICE, "show", "--jsonl", os.path.join(os.path.dirname(__file__), "..", "..",
                                                                         "formats", "samples", "sample.jsonl")],
                                 capture_output=True, check=True).stdout
            only_raw = b"".join(l + b"\n" for l in raw.splitlines() if b'"protocol":"http"' not in l)
            junit = os.path.join(d, "report.xml")
            p = subprocess.run([SLUICE, "replay", "--check", "--junit", junit, "-"], input=only_raw,
                               capture_output=True, env=TEST_ENV, timeout=60)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn(b"sluice: replay: nothing to check: the input holds no HTTP request", p.stderr)
            suite = ET.parse(junit).getroot().find("testsuite")
            self.assertEqual((suite.get("tests"), suite.get("errors")), ("1", "1"))
            self.assertEqual(suite.find("testcase").get("name"), "nothing to check")
            # Empty standard input, the same; every request out of --scope, the same.
            p = subprocess.run([SLUICE, "replay", "--check", "-"], input=b"", capture_output=True, env=TEST_ENV,
                               timeout=60)
            self.assertEqual(p.returncode, 1)
            cap = capture([self.base + "/a"])
            p = replay(cap, "--check", "--scope", "elsewhere.test")
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn(b"nothing to check: every request was skipped", p.stderr)

    def test_an_interrupted_replay_reports_what_it_did(self):
        """Ctrl-C: no new request starts, the one in flight finishes, the summary so far is printed and
        the JUnit report written; exit 130."""
        App.reset(delay=1.5)
        cap = capture([self.base + "/slow/%d" % i for i in range(4)])
        App.reset(delay=1.5)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "cap.zst")
            with open(path, "wb") as f:
                f.write(cap)
            junit = os.path.join(d, "report.xml")
            proc = subprocess.Popen([SLUICE, "replay", "--check", "--junit", junit, "-w", os.devnull, path],
                                    stderr=subprocess.PIPE, env=TEST_ENV)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and len(App.log) < 2:  # the second request is in flight
                time.sleep(0.02)
            proc.send_signal(signal.SIGINT)
            err = proc.communicate(timeout=30)[1].decode()
            self.assertEqual(proc.returncode, 130, err)
            self.assertIn("sluice: replay: interrupted: sending no more requests", err)
            self.assertIn("sluice: replay: 4 flows: 2 passed, 0 failed, 0 errors, 2 skipped (2 not sent: interrupted)",
                          err)
            self.assertEqual(len(App.log), 2)
            suite = ET.parse(junit).getroot().find("testsuite")
            self.assertEqual((suite.get("tests"), suite.get("skipped")), ("4", "2"))

    def test_progress_never_runs_into_flow_lines(self):
        """On a terminal, stdout's flow lines and stderr's progress share the screen: the progress line
        is cleared before a flow line is printed."""
        App.reset(delay=0.2)
        cap = capture([self.base + "/p/%d" % i for i in range(5)])
        with tempfile.NamedTemporaryFile(suffix=".zst") as f:
            f.write(cap)
            f.flush()
            code, shown, _ = run_on_terminal([SLUICE, "replay", "--check", f.name])
        self.assertEqual(code, 0, shown)
        # Each flow line starts on a line of its own: after a newline, or after the progress line was
        # erased (CR, ESC [K); never right after "N/M flows".
        starts = [m.start() for m in re.finditer(rb"\d\d:\d\d:\d\d\.\d{3} \S+ GET http://127\.0\.0\.1:", shown)]
        self.assertEqual(len(starts), 5, shown)
        for at in starts:
            self.assertTrue(shown[:at].endswith(b"\n") or shown[:at].endswith(b"\r\x1b[K"), shown[max(0, at - 60):at + 20])
        self.assertIn(b"sluice: replay: 5 flows: 5 passed", shown)

    def test_usage_errors(self):
        p = subprocess.run([SLUICE, "replay", "/nonexistent/capture"], capture_output=True, env=TEST_ENV, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertTrue(p.stderr.startswith(b"sluice: replay: "), p.stderr)


class ReplayWebSocket(unittest.TestCase):
    def test_websocket_conversations_replay_with_and_without_compression(self):
        import asyncio
        import websockets  # Debian: python3-websockets
        from test_websocket import EchoServer, payload

        async def talk(uri, compression):
            async with websockets.connect(uri, compression=compression) as ws:
                for m in ("hello", b"\x00binary\xff", "third " * 100):
                    await ws.send(m)
                    assert await ws.recv() == m
                await ws.close(code=1000, reason="done")

        for compression in (None, "deflate"):
            with self.subTest(compression=compression):
                server = EchoServer(compression)
                try:
                    proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % server.port)
                    asyncio.run(talk("ws://127.0.0.1:%d/echo" % proxy.port, compression))
                    time.sleep(0.3)
                    cap = proxy.stop()[1]
                    p = replay(cap, "--check")
                finally:
                    server.close()
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertIn(b"1 flows: 1 passed", p.stderr)
                recs = records(p.stdout)
                frames = [r for r in recs if r["type"] == "envelope" and r["protocol"] == "ws"]
                self.assertTrue(frames)
                self.assertTrue(all(dict(r["tags"]).get("replay_of") for r in frames))
                for direction in ("send", "receive"):
                    texts = [payload(f) for f in frames if f["direction"] == direction and f["message"]["opcode"] in (1, 2)]
                    self.assertEqual(texts, [b"hello", b"\x00binary\xff", b"third " * 100],
                                     (direction, [(f["direction"], f["message"]) for f in frames]))
                    if compression:
                        self.assertTrue(all(f["message"]["compressed"] for f in frames
                                            if f["direction"] == direction and f["message"]["opcode"] == 1))
                closes = [f["message"]["close_code"] for f in frames if f["message"]["opcode"] == 8]
                self.assertEqual(closes, [1000, 1000])


class ReplayHttp2(PkiCase):
    def test_grpc_calls_replay_and_check(self):
        from test_http2 import GrpcServer, record_grpc_session
        server = GrpcServer()
        try:
            cap = record_grpc_session(self, server)[1]
            p = replay(cap, "--check")  # to the gRPC server the proxy reached, as HTTP/2 (h2c)
        finally:
            server.close()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"6 flows: 6 passed", p.stderr)
        recs = records(p.stdout)
        g = [r for r in recs if r["type"] == "envelope" and r["protocol"] == "grpc"]
        self.assertEqual([r["message"]["method"] for r in g if r["message"]["kind"] == "start"],
                         ["Unary", "Unary", "Unary", "ServerStream", "ClientStream", "Bidi"])
        self.assertEqual([r["message"]["status"] for r in g if r["message"]["kind"] == "end"], [0, 0, 3, 0, 0, 0])
        self.assertTrue(all(dict(r["tags"]).get("replay_of") for r in g))
        http = [r for r in recs if r["type"] == "envelope" and r["protocol"] == "http" and not r.get("overlay")]
        self.assertTrue(http and all(r["message"]["version"] == "HTTP/2" for r in http))

    def test_grpc_status_change_is_a_mismatch(self):
        import grpc
        from test_http2 import GrpcServer, record_grpc_session
        server = GrpcServer()
        cap = record_grpc_session(self, server)[1]
        server.close()
        changed = grpc.server(__import__("concurrent.futures").futures.ThreadPoolExecutor(max_workers=4))
        changed.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", {
            "Unary": grpc.unary_unary_rpc_method_handler(lambda req, ctx: b"echo:" + req)}),))
        port = changed.add_insecure_port("127.0.0.1:0")
        changed.start()
        try:
            p = replay(cap, "--check", "--target", "http://127.0.0.1:%d" % port)
        finally:
            changed.stop(0)
        self.assertEqual(p.returncode, 1)
        err = p.stderr.decode()
        self.assertIn("trailer grpc-status: 3 -> 0", err)  # "fail" is no longer refused
        self.assertIn("trailer grpc-status: 0 -> 12", err)  # the streaming methods are gone (UNIMPLEMENTED)

    def test_http2_over_tls_replays_as_http2(self):
        from h2server import H2Server
        origin = H2Server(self.pki.cert, self.pki.key)
        try:
            proxy = Proxy("--mode", "regular@0", "--server-ca", self.pki.ca)
            url = "https://localhost:%d/h2/page" % origin.port
            c = subprocess.run(["curl", "-sS", "--http2", "-x", "http://127.0.0.1:%d" % proxy.port, "--cacert",
                                self.sluice_ca, url], capture_output=True, timeout=30)
            self.assertEqual(c.stdout, b"h2 hello from /h2/page", c.stderr)
            time.sleep(0.3)
            cap = proxy.stop()[1]
            p = replay(cap, "--check", "--server-ca", self.pki.ca)
        finally:
            origin.close()
        self.assertEqual(p.returncode, 0, p.stderr)
        recs = records(p.stdout)
        hs = [r for r in recs if r["type"] == "envelope" and r["protocol"] == "tls-handshake"]
        self.assertEqual([(h["message"]["sni"], h["message"]["alpn"]) for h in hs], [("localhost", "h2")])
        resp = [r for r in recs if r["type"] == "envelope" and r["protocol"] == "http" and r["direction"] == "receive"
                and not r.get("overlay")]
        self.assertEqual([(r["message"]["version"], r["message"]["status"]) for r in resp], [("HTTP/2", 200)])
        self.assertEqual([path for path, _ in origin.requests], ["/h2/page", "/h2/page"])


class ReplayTls(PkiCase):
    def test_https_capture_replays_with_the_recorded_sni(self):
        o = origin(self.pki)
        port = o.server_address[1]
        try:
            cap = capture(["https://localhost:%d/secure" % port], ("--server-ca", self.pki.ca),
                          ("--cacert", self.sluice_ca))
            p = replay(cap, "--check", "--server-ca", self.pki.ca)
            self.assertEqual(p.returncode, 0, p.stderr)
            hs = [r for r in records(p.stdout) if r["type"] == "envelope" and r["protocol"] == "tls-handshake"]
            self.assertEqual([h["message"]["sni"] for h in hs], ["localhost"])
            self.assertEqual(hs[0]["message"]["certificate"]["subject"], "CN=localhost")
            # To the address, the recorded name is still what is presented and verified.
            p = replay(cap, "--check", "--server-ca", self.pki.ca, "--target", "https://127.0.0.1:%d" % port)
            self.assertEqual(p.returncode, 0, p.stderr)
            # Without trust in the origin's CA, verification fails and says why.
            p = replay(cap, "--check")
            self.assertEqual(p.returncode, 1)
            self.assertIn(b"certificate", p.stderr)
        finally:
            o.shutdown()


if __name__ == "__main__":
    unittest.main(verbosity=2)
