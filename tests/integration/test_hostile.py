"""Hostile clients and servers (issue 22): every state of every connection has a deadline, the proxy
never connects to itself, and running out of descriptors neither spins nor stays silent. Each test
is bounded in time and uses loopback only."""
import http.server
import os
import resource
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from support import TEST_ENV, EchoServer, Proxy, asan_build, connect, recv_all, records, serve_hello  # noqa: E402


def closed_within(sock, seconds):
    """How long the proxy took to close `sock` (reading until EOF), or None past `seconds`."""
    sock.settimeout(seconds)
    start = time.monotonic()
    try:
        while sock.recv(65536):
            pass
    except socket.timeout:
        return None
    except ConnectionResetError:
        pass
    return time.monotonic() - start


def connect_tunnel(proxy_port, target_port):
    """A client socket with a CONNECT tunnel to 127.0.0.1:target_port open through the proxy."""
    c = connect(proxy_port)
    c.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n" % target_port)
    assert c.recv(1024).startswith(b"HTTP/1.1 200")
    return c


class Deadlines(unittest.TestCase):
    def test_a_silent_client_of_a_reverse_listener_is_closed(self):
        # It never sends the first byte that would choose TLS or plain HTTP: closed after the header
        # timeout, with an error record saying why.
        origin = serve_hello()
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % origin.server_address[1], "--header-timeout", "1")
        with connect(proxy.port) as silent:
            took = closed_within(silent, 10)
        code, out = proxy.stop()
        origin.shutdown()
        origin.server_close()
        self.assertIsNotNone(took, "a silent client was never closed")
        self.assertLess(took, 5)
        errors = [r for r in records(out) if r["type"] == "error"]
        self.assertEqual([e["code"] for e in errors], ["client_timeout"])
        self.assertIn("sent nothing within 1 s", errors[0]["message"])

    def test_an_idle_connect_tunnel_is_closed(self):
        echo = EchoServer()
        proxy = Proxy("--mode", "regular@0", "--idle-timeout", "1")
        with connect_tunnel(proxy.port, echo.port) as c:
            c.sendall(b"ping")  # raw bytes through the tunnel, then nothing more
            self.assertEqual(c.recv(4), b"ping")
            took = closed_within(c, 10)
        code, out = proxy.stop()
        echo.close()
        self.assertIsNotNone(took, "an idle tunnel was never closed")
        self.assertLess(took, 5)
        ends = [r for r in records(out) if r["type"] == "end" and r["stream_id"].count(".") == 1]
        self.assertEqual([e["reason"] for e in ends], ["timeout"])

    def test_a_tunnel_whose_client_never_speaks_is_closed(self):
        echo = EchoServer()
        proxy = Proxy("--mode", "regular@0", "--idle-timeout", "1")
        with connect_tunnel(proxy.port, echo.port) as c:
            took = closed_within(c, 10)  # nothing to choose TLS, HTTP or raw from
        code, out = proxy.stop()
        echo.close()
        self.assertIsNotNone(took)
        self.assertLess(took, 5)
        self.assertEqual([r["code"] for r in records(out) if r["type"] == "error"], ["client_timeout"])

    def test_an_idle_socks5_tunnel_is_closed(self):
        echo = EchoServer()
        proxy = Proxy("--mode", "socks5@0", "--idle-timeout", "1")
        with connect(proxy.port) as c:
            c.sendall(b"\x05\x01\x00")
            self.assertEqual(c.recv(2), b"\x05\x00")
            c.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", echo.port))
            self.assertEqual(c.recv(10)[:2], b"\x05\x00")
            c.sendall(b"hello")
            self.assertEqual(c.recv(5), b"hello")
            took = closed_within(c, 10)
        proxy.stop()
        echo.close()
        self.assertIsNotNone(took, "an idle SOCKS5 tunnel was never closed")
        self.assertLess(took, 5)


class SelfLoops(unittest.TestCase):
    def test_a_request_to_the_proxys_own_listener_is_refused(self):
        proxy = Proxy("--mode", "regular@0")
        for host in ("127.0.0.1", "localhost", "0.0.0.0"):  # by address, by a name that resolves to it
            with self.subTest(host=host):
                p = subprocess.run(["curl", "-sS", "-m", "10", "-x", "http://127.0.0.1:%d" % proxy.port,
                                    "http://%s:%d/loop" % (host, proxy.port)], capture_output=True, timeout=30)
                self.assertIn(b"own listener", p.stdout)
        code, out = proxy.stop()
        recs = records(out)
        # One connection per request: the proxy never connected to itself.
        self.assertEqual(len({r["stream_id"].split(".")[0] for r in recs if r["type"] == "envelope"}), 3)
        self.assertEqual([r["code"] for r in recs if r["type"] == "error"], ["self_loop"] * 3)

    def test_a_socks5_client_cannot_chain_the_proxy_to_itself(self):
        proxy = Proxy("--mode", "socks5@0")
        with connect(proxy.port) as c:
            c.sendall(b"\x05\x01\x00")
            self.assertEqual(c.recv(2), b"\x05\x00")
            c.sendall(b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", proxy.port))
            reply = c.recv(10)
        self.assertEqual(reply[:2], b"\x05\x02")  # connection not allowed
        code, out = proxy.stop()
        self.assertEqual([r["code"] for r in records(out) if r["type"] == "error"], ["self_loop"])


def cpu_seconds(pid):
    """User and system CPU time a process has used so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def low_descriptor_limit():
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


class Descriptors(unittest.TestCase):
    def test_out_of_descriptors_the_proxy_waits_without_spinning_says_so_and_recovers(self):
        origin = serve_hello()
        if asan_build():
            # UBSan's vptr check needs descriptors of its own (a pipe, to probe memory, on each miss of
            # its type cache): with none left it reports a false "invalid vptr" and aborts, whatever
            # the suppressions (the object's type cannot be read to match them). A limit of the
            # sanitizer, not of this code: the normal build runs this test, in CI too.
            self.skipTest("UBSan cannot run with no free descriptor; the normal build runs this test")
        proxy = Proxy("--mode", "regular@0", "--max-connections", "0", "--threads", "1", preexec_fn=low_descriptor_limit)
        idle = [connect(proxy.port) for _ in range(80)]  # more than 64 descriptors: some wait in the backlog
        before = cpu_seconds(proxy.proc.pid)
        time.sleep(1.0)  # a measuring window, not a wait for readiness
        used = cpu_seconds(proxy.proc.pid) - before
        self.assertLess(used, 0.5, "the accept loop spins while out of descriptors")
        for s in idle:
            s.close()
        # Recovered by itself: a request goes through once the idle clients left.
        deadline = time.monotonic() + 20
        while True:
            p = subprocess.run(["curl", "-sS", "-m", "5", "-x", "http://127.0.0.1:%d" % proxy.port,
                                "http://127.0.0.1:%d/after" % origin.server_address[1]], capture_output=True, timeout=30)
            if p.returncode == 0 or time.monotonic() > deadline:
                break
        self.assertEqual(p.returncode, 0, p.stderr)
        code, out = proxy.stop()
        origin.shutdown()
        origin.server_close()
        err = "".join(proxy.stderr_lines)
        # Said once per episode: once, or again if the backlog refilled the table as the idle clients
        # left (never once per failed accept).
        self.assertIn(err.count("out of file descriptors"), (1, 2, 3), err)
        self.assertIn("accepting connections again", err)
        self.assertIn("descriptors_exhausted", [r["code"] for r in records(out) if r["type"] == "error"])

    def test_over_max_connections_a_client_is_refused_at_once_with_503(self):
        origin = serve_hello()
        proxy = Proxy("--mode", "regular@0", "--max-connections", "3")
        idle = [connect(proxy.port) for _ in range(3)]
        # Each idle client was accepted (it is answered 408 after the header timeout, not now): one more
        # is over the limit.
        with connect(proxy.port) as extra:
            answer = recv_all(extra)
        self.assertTrue(answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n"), answer)
        self.assertIn(b"too many connections", answer)
        for s in idle:
            s.close()
        deadline = time.monotonic() + 20
        while True:  # the idle ones are closed by the proxy as it notices: then there is room
            p = subprocess.run(["curl", "-sS", "-m", "5", "-x", "http://127.0.0.1:%d" % proxy.port,
                                "http://127.0.0.1:%d/after" % origin.server_address[1]], capture_output=True, timeout=30)
            if b"Hello" in p.stdout or b"hello" in p.stdout or time.monotonic() > deadline:
                break
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn(b"too many connections", p.stdout)
        code, out = proxy.stop()
        origin.shutdown()
        origin.server_close()
        self.assertIn("too_many_connections", [r["code"] for r in records(out) if r["type"] == "error"])


class OneShotOrigin:
    """An HTTP/1.1 origin for one request: it reads the request head (kept in `head`), then
    `answer(conn)` answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        conn, _ = self.sock.accept()
        with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += conn.recv(4096)
            self.head = buf
            self.answer(conn)

    def close(self):
        self.sock.close()


class TrickleOrigin(OneShotOrigin):
    """A response without framing (no length, not chunked): a line every 100 ms for `seconds`, then
    the origin closes."""

    def __init__(self, seconds=5):
        self.seconds = seconds
        super().__init__()

    def answer(self, conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        end = time.monotonic() + self.seconds
        try:
            while time.monotonic() < end:
                conn.sendall(b"tick\n")
                time.sleep(0.1)  # the trickle itself, not a wait
        except OSError:
            pass


class SlowResponses(unittest.TestCase):
    def test_a_response_without_framing_reaches_the_client_as_it_comes(self):
        origin = TrickleOrigin(seconds=3)
        proxy = Proxy("--mode", "regular@0")
        with connect(proxy.port) as c:
            c.sendall(b"GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (origin.port, origin.port))
            start = time.monotonic()
            c.settimeout(3)
            got = b""
            while got.count(b"tick") < 2:
                got += c.recv(4096)
            took = time.monotonic() - start
            self.assertTrue(got.startswith(b"HTTP/1.1 200 OK\r\n"))
            self.assertLess(took, 1.5, "the client waited for the whole response")  # the server takes 3 s
            got += recv_all(c)
        code, out = proxy.stop()
        origin.close()
        # Recorded all the same: the whole body, as the client got it.
        resp = [r for r in records(out) if r["type"] == "envelope" and r["direction"] == "receive"]
        self.assertEqual(len(resp), 1)
        self.assertEqual(resp[0]["message"]["body"].count("tick"), got.count(b"tick"))


class BigBody(http.server.BaseHTTPRequestHandler):
    """Answers every GET with 8 MiB."""
    protocol_version = "HTTP/1.1"
    body = b"y" * (8 << 20)

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        try:
            self.wfile.write(self.body)
        except OSError:
            pass

    def log_message(self, *args):
        pass


def peak_rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024


class Memory(unittest.TestCase):
    def test_a_hundred_clients_that_do_not_read_large_answers_stay_far_below_200_mib(self):
        origin = http.server.ThreadingHTTPServer(("127.0.0.1", 0), BigBody)
        origin.daemon_threads = True
        threading.Thread(target=origin.serve_forever, daemon=True).start()
        # Under ASan freed blocks wait in a quarantine (256 MiB by default): keep it small so that RSS
        # shows the proxy's own holding.
        env = dict(TEST_ENV, ASAN_OPTIONS=os.environ.get("ASAN_OPTIONS", "") +
                   ":quarantine_size_mb=8:thread_local_quarantine_size_kb=64")
        # A smaller budget than the default 64 MiB: a smaller stream to parse here.
        proxy = Proxy("--mode", "regular@0", "--record-memory", "16MiB", env=env)
        clients = []
        for i in range(100):
            c = connect(proxy.port)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and it never reads
            c.sendall(b"GET http://127.0.0.1:%d/%d HTTP/1.1\r\nHost: x\r\n\r\n" % (origin.server_address[1], i))
            clients.append(c)
        time.sleep(3)  # a measuring window: the servers send as fast as the proxy takes
        peak = peak_rss_mib(proxy.proc.pid)
        for c in clients:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset: gone at once
            c.close()
        code, out = proxy.stop()
        origin.shutdown()
        origin.server_close()
        # The bound is the normal build's (the build before this change: 479 MiB); under ASan, whose
        # shadow memory and allocator caches RSS counts too, a runaway check.
        self.assertLess(peak, 400 if asan_build() else 150, "peak RSS %.0f MiB" % peak)
        # What could not be kept is counted, never silently lost.
        resp = [r for r in records(out) if r["type"] == "envelope" and r["direction"] == "receive"]
        self.assertTrue(resp)
        self.assertTrue(all(len(r["message"].get("body", "")) + r["message"].get("body_omitted", 0) > 0
                            for r in resp))


class EndlessOrigin(OneShotOrigin):
    """An endless chunked body, 64 KiB at a time, until its peer is gone (or 256 MiB, or 20 s); `sent`
    counts the body bytes, `gone` is set when a send failed."""

    def __init__(self):
        self.sent = 0
        self.gone = threading.Event()
        super().__init__()

    def answer(self, conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
        deadline = time.monotonic() + 20
        try:
            while self.sent < 256 << 20 and time.monotonic() < deadline:
                conn.sendall(chunk)
                self.sent += 0x10000
        except OSError:
            self.gone.set()


class ClientGone(unittest.TestCase):
    def test_a_client_that_leaves_mid_response_closes_the_server_leg(self):
        origin = EndlessOrigin()
        proxy = Proxy("--mode", "regular@0", "--record-body-limit", "64KiB")
        c = connect(proxy.port)
        c.sendall(b"GET http://127.0.0.1:%d/big HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (origin.port, origin.port))
        c.shutdown(socket.SHUT_WR)  # its request is all it says (as a client that pipes a request in)
        got = 0
        while got < 1 << 20:
            got += len(c.recv(65536))
        c.close()  # gone, with the response still coming
        left_at = origin.sent
        self.assertTrue(origin.gone.wait(10), "the proxy kept downloading for a client that left (%d MB sent)"
                        % (origin.sent >> 20))
        self.assertLess(origin.sent - left_at, 32 << 20)  # what the socket buffers held, not the whole answer
        proxy.proc.send_signal(signal.SIGINT)
        proxy.proc.wait(3)  # nothing left for the grace period (5 s) to wait for
        code, out = proxy.wait()
        origin.close()
        ends = [r for r in records(out) if r["type"] == "end" and r.get("scope") == "flow"]
        self.assertEqual([e["reason"] for e in ends], ["aborted"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
