"""Hostile clients and servers (issue 22): every state of every connection has a deadline, the proxy
never connects to itself, and running out of descriptors neither spins nor stays silent. Each test
is bounded in time and uses loopback only."""
import os
import resource
import socket
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from support import EchoServer, Proxy, connect, recv_all, records, serve_hello  # noqa: E402


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
        proxy = Proxy("--idle-timeout", "1")
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
        proxy = Proxy("--idle-timeout", "1")
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
        proxy = Proxy()
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
        proxy = Proxy("--max-connections", "0", "--threads", "1", preexec_fn=low_descriptor_limit)
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
        self.assertEqual(err.count("out of file descriptors"), 1, err)
        self.assertIn("accepting connections again", err)
        self.assertIn("descriptors_exhausted", [r["code"] for r in records(out) if r["type"] == "error"])

    def test_over_max_connections_a_client_is_refused_at_once_with_503(self):
        origin = serve_hello()
        proxy = Proxy("--max-connections", "3")
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


if __name__ == "__main__":
    unittest.main(verbosity=2)
