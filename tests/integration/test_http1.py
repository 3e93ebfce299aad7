"""`sluice proxy` as an HTTP/1.1 proxy: regular (curl -x, HTTP_PROXY), reverse and upstream modes, the
recorded bytes against what the server and the client saw, keep-alive, smuggling, faults, auth."""
import base64
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from support import SLUICE, TEST_ENV, EchoServer, Proxy, asan_build, connect, records  # noqa: E402


class Origin(EchoServer):
    """A loopback HTTP/1.1 server that keeps the exact bytes of every request it reads.

    `respond(request_bytes)` returns the bytes to answer (default: 200 with a body naming the path); it may
    return None to stay silent, or a callable taking the socket to do something odd."""

    def __init__(self, respond=None):
        self.respond = respond or self.default
        self.requests = []     # exact bytes of each request
        self.lock = threading.Lock()
        super().__init__()  # listens and accepts; counts connections in `accepted`

    @staticmethod
    def default(request):
        path = request.split(b" ")[1]
        body = b"hello from " + path + b"\n"
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Origin: yes\r\n\r\n%s" % (len(body), body)

    def _read_request(self, conn, buf):
        while b"\r\n\r\n" not in buf:
            data = conn.recv(65536)
            if not data:
                return None, buf
            buf += data
        head_end = buf.index(b"\r\n\r\n") + 4
        head = buf[:head_end]
        m = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.I)
        need = head_end + (int(m.group(1)) if m else 0)
        if re.search(rb"\r\ntransfer-encoding:\s*chunked", head, re.I):
            # Up to the last chunk and its trailers (a test peer: chunk data never holds CRLF 0 CRLF).
            while True:
                last = buf.find(b"\r\n0\r\n", head_end - 2)
                end = buf.find(b"\r\n\r\n", last + 3) if last >= 0 else -1
                if end >= 0:
                    break
                data = conn.recv(65536)
                if not data:
                    return None, buf
                buf += data
            need = end + 4
        while len(buf) < need:
            data = conn.recv(65536)
            if not data:
                return None, buf
            buf += data
        return buf[:need], buf[need:]

    def _handle(self, conn):
        buf = b""
        with conn:
            while True:
                try:
                    request, buf = self._read_request(conn, buf)
                except OSError:
                    return
                if request is None:
                    return
                with self.lock:
                    self.requests.append(request)
                answer = self.respond(request)
                if answer is None:
                    time.sleep(30)
                    return
                if callable(answer):
                    answer(conn)
                    return
                conn.sendall(answer)
                if b"connection: close" in request.lower():
                    return



def curl(*args, env=None):
    return subprocess.run(["curl", "-sS", "--max-time", "20", *args], capture_output=True, timeout=60, env=env)


def envelopes(recs, **match):
    out = []
    for r in recs:
        if r["type"] != "envelope":
            continue
        if all(r.get(k) == v for k, v in match.items()):
            out.append(r)
    return out


def raw(r):
    return base64.b64decode(r["raw"])


def canonical(recs, direction):
    return [r for r in envelopes(recs, protocol="http", direction=direction)
            if "overlay" not in r and r.get("variant", "original") == "original"]


def as_sent(recs, original):
    """The bytes the server received for a request envelope: its variant's if the proxy changed them."""
    for r in recs:
        if (r["type"] == "envelope" and r.get("variant") == "modified" and r["stream_id"] == original["stream_id"]
                and r.get("variant_of") == original["seq"]):
            return raw(r)
    return raw(original)


class Http1(unittest.TestCase):
    def setUp(self):
        self.origin = Origin()
        self.url = "http://127.0.0.1:%d" % self.origin.port

    def tearDown(self):
        self.origin.close()

    def stop(self, proxy):
        time.sleep(0.2)
        code, out = proxy.stop()
        self.assertEqual(code, 0, proxy.stderr_lines)
        return records(out)

    def check_recorded_bytes(self, recs, client_got=None):
        """Requests: recorded (or variant) bytes == what the origin read; responses: what the client got."""
        requests = canonical(recs, "send")
        self.assertEqual(len(requests), len(self.origin.requests))
        for env, seen in zip(requests, self.origin.requests):
            self.assertEqual(as_sent(recs, env), seen)
        if client_got is not None:
            self.assertEqual(b"".join(raw(r) for r in canonical(recs, "receive")), client_got)

    def test_curl_x_absolute_form(self):
        proxy = Proxy("--mode", "regular@0")
        p = curl("-x", "http://127.0.0.1:%d" % proxy.port, self.url + "/a?b=c", "-H", "X-Case-Kept: Yes")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, b"hello from /a?b=c\n")
        recs = self.stop(proxy)
        self.check_recorded_bytes(recs)
        sent = self.origin.requests[0]
        self.assertTrue(sent.startswith(b"GET /a?b=c HTTP/1.1\r\n"), sent)  # origin form to the server
        self.assertIn(b"\r\nX-Case-Kept: Yes\r\n", sent)
        req = canonical(recs, "send")[0]
        self.assertTrue(raw(req).startswith(b"GET http://127.0.0.1:%d/a?b=c HTTP/1.1\r\n" % self.origin.port))
        resp = canonical(recs, "receive")[0]
        self.assertEqual(resp["message"]["status"], 200)
        self.assertEqual(resp["message"]["body"], "hello from /a?b=c\n")
        self.assertEqual(raw(resp), self.origin.default(sent))

    def test_http_proxy_environment_and_post_body(self):
        proxy = Proxy("--mode", "regular@0")
        env = dict(os.environ, HTTP_PROXY="http://127.0.0.1:%d" % proxy.port, http_proxy="http://127.0.0.1:%d" % proxy.port)
        env.pop("NO_PROXY", None)
        env.pop("no_proxy", None)
        p = curl("--data-binary", "x" * 5000, self.url + "/post", env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        recs = self.stop(proxy)
        self.check_recorded_bytes(recs)
        req = canonical(recs, "send")[0]
        self.assertEqual(req["message"]["method"], "POST")
        self.assertEqual(req["message"]["body"], "x" * 5000)
        self.assertTrue(self.origin.requests[0].endswith(b"x" * 5000))

    def test_keep_alive_reuses_one_server_connection(self):
        proxy = Proxy("--mode", "regular@0")
        p = curl("-x", "http://127.0.0.1:%d" % proxy.port, self.url + "/1", self.url + "/2", self.url + "/3")
        self.assertEqual(p.stdout, b"hello from /1\nhello from /2\nhello from /3\n")
        recs = self.stop(proxy)
        self.assertEqual(self.origin.accepted, 1)
        flows = {r["flow_id"] for r in canonical(recs, "send")}
        self.assertEqual(len(flows), 3)
        self.assertEqual(len({r["stream_id"] for r in canonical(recs, "send")}), 1)  # one client connection

    def test_reverse_mode_rewrites_host_and_records_both(self):
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % self.origin.port)
        p = curl("http://127.0.0.1:%d/rev" % proxy.port)
        self.assertEqual(p.stdout, b"hello from /rev\n")
        recs = self.stop(proxy)
        self.check_recorded_bytes(recs)
        self.assertIn(b"\r\nHost: 127.0.0.1:%d\r\n" % self.origin.port, self.origin.requests[0])
        req = canonical(recs, "send")[0]
        self.assertIn(b"\r\nHost: 127.0.0.1:%d\r\n" % proxy.port, raw(req))  # what the client sent
        variant = [r for r in recs if r.get("variant") == "modified"]
        self.assertEqual(variant[0]["modified_by"], "sluice")

    def test_pin_threads_puts_each_io_thread_on_a_cpu_of_its_own(self):
        allowed = sorted(os.sched_getaffinity(0))
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % self.origin.port, "--threads", "3", "--pin-threads")
        p = curl("http://127.0.0.1:%d/pinned" % proxy.port)
        self.assertEqual(p.stdout, b"hello from /pinned\n")
        pinned = []
        for tid in os.listdir("/proc/%d/task" % proxy.proc.pid):
            with open("/proc/%d/task/%s/comm" % (proxy.proc.pid, tid)) as f:
                if f.read().strip() != "sluice-io":
                    continue
            pinned.append(os.sched_getaffinity(int(tid)))
        self.assertEqual(len(pinned), 3)
        for cpus in pinned:
            self.assertEqual(len(cpus), 1, pinned)
            self.assertTrue(cpus <= set(allowed), pinned)
        # Round robin over the allowed CPUs: as many distinct ones as there are threads, or CPUs.
        self.assertEqual(len(set().union(*pinned)), min(3, len(allowed)))
        self.stop(proxy)
        unpinned = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % self.origin.port, "--threads", "2")
        for tid in os.listdir("/proc/%d/task" % unpinned.proc.pid):
            self.assertEqual(os.sched_getaffinity(int(tid)), set(allowed))
        self.stop(unpinned)

    def test_reverse_mode_keep_host_header(self):
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % self.origin.port, "--keep-host-header")
        curl("-H", "Host: api.example", "http://127.0.0.1:%d/k" % proxy.port)
        recs = self.stop(proxy)
        self.assertIn(b"\r\nHost: api.example\r\n", self.origin.requests[0])
        self.assertEqual([r for r in recs if r.get("variant") == "modified"], [])

    def test_exact_bytes_through_a_raw_client(self):
        """A client that pipelines two requests, one chunked with trailers: exact bytes both ways."""
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % self.origin.port, "--keep-host-header")
        req = (b"PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nx-lower: v\r\n\r\n"
               b"3\r\nabc\r\n0\r\nTrailer-A: 1\r\n\r\n"
               b"GET /second HTTP/1.1\r\nHOST: h\r\n\r\n")
        with connect(proxy.port) as c:
            c.sendall(req)
            got = b""
            deadline = time.monotonic() + 10
            while got.count(b"hello from") < 2 and time.monotonic() < deadline:
                data = c.recv(65536)
                if not data:
                    break
                got += data
        self.assertEqual(got, self.origin.default(b"PUT /c ") + self.origin.default(b"GET /second "))
        recs = self.stop(proxy)
        self.assertEqual(b"".join(self.origin.requests), req)
        self.check_recorded_bytes(recs, client_got=got)
        chunks = [raw(r) for r in recs if r.get("overlay") == "h1-chunk"]
        self.assertEqual(chunks, [b"3\r\nabc\r\n", b"0\r\nTrailer-A: 1\r\n\r\n"])

    def test_smuggling_attempt_is_refused_and_never_reaches_the_server(self):
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % self.origin.port)
        with connect(proxy.port) as c:
            c.sendall(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"0\r\n\r\nGET /admin HTTP/1.1\r\nHost: h\r\n\r\n")
            got = c.recv(65536)
        self.assertTrue(got.startswith(b"HTTP/1.1 400 Bad Request\r\n"), got)
        self.assertIn(b"Content-Length", got)
        recs = self.stop(proxy)
        self.assertEqual(self.origin.accepted, 0)
        req = canonical(recs, "send")[0]
        self.assertEqual([a["name"] for a in req["anomalies"]], ["cl_te_conflict"])

    def test_a_request_line_of_another_shape_is_refused_not_forwarded(self):
        """An origin may split `GET  /x HTTP/1.1` or read `HTTP/2.0` on an HTTP/1 connection otherwise
        than we do: such a line gets a 400 with its reason and an anomaly, and the server sees nothing."""
        for line, anomaly in ((b"GET  /x HTTP/1.1", "bad_request_line"), (b"GET /x  HTTP/1.1", "bad_request_line"),
                              (b"GET /x HTTP/2.0", "bad_version")):
            with self.subTest(line=line):
                proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % self.origin.port)
                with connect(proxy.port) as c:
                    c.sendall(line + b"\r\nHost: h\r\n\r\n")
                    got = c.recv(65536)
                self.assertTrue(got.startswith(b"HTTP/1.1 400 Bad Request\r\n"), got)
                recs = self.stop(proxy)
                self.assertEqual(self.origin.accepted, 0)
                req = canonical(recs, "send")[0]
                self.assertEqual([a["name"] for a in req["anomalies"]], [anomaly])

    def test_proxy_auth(self):
        proxy = Proxy("--mode", "regular@0", "--proxy-auth", "user:pw")
        p = curl("-w", "%{http_code}", "-o", "/dev/null", "-x", "http://127.0.0.1:%d" % proxy.port, self.url + "/a")
        self.assertEqual(p.stdout, b"407")
        p = curl("--proxy-user", "user:pw", "-x", "http://127.0.0.1:%d" % proxy.port, self.url + "/b")
        self.assertEqual(p.stdout, b"hello from /b\n")
        self.stop(proxy)
        self.assertEqual(len(self.origin.requests), 1)
        self.assertNotIn(b"proxy-authorization", self.origin.requests[0].lower())

    def test_upstream_chain_with_credentials(self):
        inner = Proxy("--mode", "regular@0", "--proxy-auth", "in:ner")
        outer = Proxy("--mode", "upstream:http://127.0.0.1:%d@0" % inner.port, "--upstream-auth", "in:ner")
        p = curl("-x", "http://127.0.0.1:%d" % outer.port, self.url + "/chained")
        self.assertEqual(p.stdout, b"hello from /chained\n", p.stderr)
        # CONNECT goes through the chain too.
        p = curl("-p", "-x", "http://127.0.0.1:%d" % outer.port, self.url + "/tunnel")
        self.assertEqual(p.stdout, b"hello from /tunnel\n", p.stderr)
        outer_recs = self.stop(outer)
        self.stop(inner)
        connects = [r for r in canonical(outer_recs, "send") if r["message"]["method"] == "CONNECT"]
        self.assertEqual(len(connects), 1)
        self.assertEqual(len(self.origin.requests), 2)


class Faults(unittest.TestCase):
    def run_against(self, respond, *proxy_args, request=None):
        origin = Origin(respond)
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % origin.port, *proxy_args)
        started = time.monotonic()
        with connect(proxy.port) as c:
            c.settimeout(15)
            c.sendall(request or b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            got = b""
            while True:
                try:
                    data = c.recv(65536)
                except ConnectionResetError:
                    break
                if not data:
                    break
                got += data
        elapsed = time.monotonic() - started
        time.sleep(0.2)
        code, out = proxy.stop()
        origin.close()
        self.assertEqual(code, 0)
        return got, records(out), elapsed

    def test_server_resets_mid_body(self):
        def reset(conn):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\npartial")  # over 256 KiB: streams
            time.sleep(0.2)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        got, recs, _ = self.run_against(lambda req: reset)
        # The answer goes on as it comes (nothing needs it whole): the client has its head and what
        # came of the body, then the connection closes short of Content-Length, as from the server.
        self.assertEqual(got, b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\npartial")
        self.assertEqual([r["code"] for r in recs if r["type"] == "error"], ["server_reset"])
        resp = [r for r in canonical(recs, "receive") if "synthesized" not in r.get("tags", {})][0]
        self.assertEqual(resp["message"]["status"], 200)
        self.assertEqual([a["name"] for a in resp["anomalies"]], ["truncated_message"])

    def test_server_never_answers(self):
        got, recs, elapsed = self.run_against(lambda req: None, "--first-byte-timeout", "1")
        self.assertTrue(got.startswith(b"HTTP/1.1 504 Gateway Timeout\r\n"), got)
        self.assertIn(b"no response within 1 s", got)
        self.assertLess(elapsed, 10)
        self.assertEqual([r["code"] for r in recs if r["type"] == "error"], ["first_byte_timeout"])

    def test_slow_headers_are_cut_off(self):
        origin = Origin()
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % origin.port, "--header-timeout", "1")
        got = b""
        with connect(proxy.port) as c:
            c.settimeout(10)
            for part in [b"GET / HTTP/1.1\r\n", b"Host: h\r\n", b"X-Slow: 1\r\n", b"X-Slow: 2\r\n"]:
                try:
                    c.sendall(part)
                except OSError:
                    break
                time.sleep(0.4)
            while True:
                try:
                    data = c.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                got += data
        self.assertTrue(got.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), got)
        code, out = proxy.stop()
        origin.close()
        self.assertEqual(origin.accepted, 0)
        req = canonical(records(out), "send")[0]
        self.assertEqual(req["anomalies"][0]["name"], "header_timeout")

    def test_client_aborts_mid_body(self):
        origin = Origin()
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % origin.port)
        with connect(proxy.port) as c:
            c.sendall(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\nonly this much")
            time.sleep(0.3)
        time.sleep(0.3)
        code, out = proxy.stop()
        origin.close()
        recs = records(out)
        ends = [r for r in recs if r["type"] == "end" and r["scope"] == "flow"]
        self.assertEqual([e["reason"] for e in ends], ["aborted"])
        self.assertEqual(canonical(recs, "send")[0]["message"]["body"], "only this much")
        self.assertEqual(origin.requests, [])

    def test_server_refuses(self):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % port)
        p = curl("-sS", "http://127.0.0.1:%d/" % proxy.port)
        self.assertIn(b"connection refused by 127.0.0.1:%d" % port, p.stdout)
        code, out = proxy.stop()
        self.assertEqual([r["code"] for r in records(out) if r["type"] == "error"], ["connect_refused"])

    def test_oversized_head_is_431(self):
        got, recs, _ = self.run_against(None, request=b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"a" * 70000 + b"\r\n\r\n")
        self.assertTrue(got.startswith(b"HTTP/1.1 431 "), got[:100])


class Shutdown(unittest.TestCase):
    def test_sigint_closes_idle_keep_alive_at_once_and_finishes_exchanges_in_flight(self):
        def slow(request):
            if b"/slow" in request:
                def answer(conn):
                    time.sleep(1.0)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate")
                    time.sleep(0.5)
                return answer
            return Origin.default(request)
        origin = Origin(slow)
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % origin.port, "--grace", "30")
        idle = connect(proxy.port)
        idle.sendall(b"GET /first HTTP/1.1\r\nHost: h\r\n\r\n")
        self.assertTrue(idle.recv(65536).endswith(b"hello from /first\n"))
        busy = connect(proxy.port)
        busy.sendall(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
        time.sleep(0.3)
        started = time.monotonic()
        proxy.proc.send_signal(signal.SIGINT)
        got = b""
        busy.settimeout(10)
        while True:
            data = busy.recv(65536)
            if not data:
                break
            got += data
        self.assertTrue(got.endswith(b"\r\n\r\nlate"), got)
        self.assertEqual(idle.recv(10), b"")  # closed by the proxy
        code, out = proxy.wait(timeout=20)
        elapsed = time.monotonic() - started
        self.assertEqual(code, 0)
        self.assertLess(elapsed, 5)  # not the 30 s grace: nothing was left to wait for
        ends = [r["reason"] for r in records(out) if r["type"] == "end" and r["scope"] == "stream"]
        self.assertEqual(sorted(ends), ["shutdown", "shutdown"])
        idle.close()
        busy.close()
        origin.close()


class Streaming(unittest.TestCase):
    def download(self, *proxy_args):
        """1 GiB through reverse mode; returns (peak RSS in MiB, the records)."""
        total = 1 << 30
        blob = os.urandom(1 << 20)

        def big(conn):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
            for _ in range(total // len(blob)):
                conn.sendall(blob)

        origin = Origin(lambda req: big)
        env = dict(TEST_ENV, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") +
                   ":quarantine_size_mb=8:thread_local_quarantine_size_kb=64")
        out_path = "/tmp/sluice-1gib-%d.zst" % os.getpid()
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % origin.port, "-w", out_path, *proxy_args, env=env)
        try:
            p = subprocess.run(["curl", "-sS", "--max-time", "300", "-o", "/dev/null", "-w", "%{size_download}",
                                "http://127.0.0.1:%d/big" % proxy.port], capture_output=True, timeout=400)
            self.assertEqual(p.stdout, b"%d" % total, p.stderr)
            time.sleep(0.5)  # the record of the response is encoded after its last byte went out
            with open("/proc/%d/status" % proxy.proc.pid) as f:
                peak_kib = int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1))
            code, _ = proxy.stop()
            self.assertEqual(code, 0)
            with open(out_path, "rb") as f:
                recs = records(f.read())
        finally:
            origin.close()
            if os.path.exists(out_path):
                os.unlink(out_path)
        resp = canonical(recs, "receive")[0]
        self.assertEqual(resp["tags"]["streamed"], "true")
        return peak_kib / 1024, resp, total

    def test_one_gib_download_streams_with_bounded_memory(self):
        """Streaming itself: 1 GiB with a 1 MiB record limit stays under 64 MiB RSS."""
        peak, resp, total = self.download("--record-body-limit", "1MiB")
        print("peak RSS streaming 1 GiB (1 MiB recorded): %.1f MiB" % peak, file=sys.stderr)
        # The bound is the normal build's; under ASan (allocator caches, 129 MiB seen once) a runaway check.
        self.assertLess(peak, 200 if asan_build() else 64)
        self.assertEqual(resp["message"]["body_omitted"], total - (1 << 20))

    def test_one_gib_download_with_the_default_record_limit(self):
        """The default 16 MiB record limit: the first 16 MiB are recorded (written out in pieces), the
        rest streams; the proxy stays under 64 MiB RSS all the same."""
        peak, resp, total = self.download()
        print("peak RSS streaming 1 GiB (16 MiB recorded): %.1f MiB" % peak, file=sys.stderr)
        # Under ASan, RSS measures its shadow memory and quarantine (freed blocks kept for a while), not
        # the proxy: that bound only catches runaway growth. The 64 MiB criterion is the normal build's.
        self.assertLess(peak, 200 if asan_build() else 64)
        self.assertEqual(resp["message"]["body_omitted"], total - (16 << 20))


if __name__ == "__main__":
    unittest.main(verbosity=2)
