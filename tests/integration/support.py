"""Helpers for integration tests: run sluice, loopback peers, read streams. Loopback only."""
import json
import os
import re
import signal
import socket
import atexit
import base64
import encodings.idna  # noqa: F401  imported now: a lazy import from two threads at once can fail
import http.server
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import time

SLUICE = os.environ.get("SLUICE", "build/sluice")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The proxy creates its CA where XDG says: keep the tests' CA out of the user's home.
DATA_HOME = tempfile.mkdtemp(prefix="sluice-test-xdg-")
atexit.register(shutil.rmtree, DATA_HOME, True)
TEST_ENV = dict(os.environ, XDG_DATA_HOME=DATA_HOME)


class HelloHandler(http.server.BaseHTTPRequestHandler):
    """Answers every GET with "hello from PATH\\n" (HTTP/1.1, keep-alive)."""
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = ("hello from %s\n" % self.path).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class TlsHttpServer(http.server.ThreadingHTTPServer):
    """HTTPS whose handshakes run in each connection's thread (on its first read), not in accept: a
    connection whose client has not sent its ClientHello yet holds up no other."""
    tls = None

    def get_request(self):
        sock, addr = self.socket.accept()
        return self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ssl.SSLError, ConnectionError)):
            super().handle_error(request, client_address)


def serve_hello(cert=None, key=None, alpn=None, client_ca=None, handler=HelloHandler):
    """A loopback HTTP origin in a thread; HTTPS with `cert`/`key` (optionally offering `alpn` and
    requiring client certificates from `client_ca`)."""
    server = (TlsHttpServer if cert else http.server.ThreadingHTTPServer)(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        if alpn:
            ctx.set_alpn_protocols(alpn)
        if client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(client_ca)
        server.tls = ctx
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class EchoServer:
    """Echoes every byte back; optionally greets first (a server-first protocol)."""

    def __init__(self, greeting=b""):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.greeting = greeting
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        with conn:
            if self.greeting:
                conn.sendall(self.greeting)
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(data)

    def close(self):
        self.sock.close()


def curl(*args):
    """curl -sS with a 10 s limit; the CompletedProcess (stdout and stderr as bytes)."""
    return subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True, timeout=30)


_held_ports = []


def closed_port():
    """A loopback port with no listener: bound and never listened on, so a connection to it is refused,
    and held for the life of the test process, so that no parallel test's listener can take it (a port
    bound and closed again could be handed out to the next listener on port 0)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _held_ports.append(s)
    return s.getsockname()[1]


class Proxy:
    """`sluice proxy` with its stdout as a pipe; the listening address is read from stderr. The pipe is
    read as the proxy writes (a thread keeps what comes), as any reader of a pipe does: a proxy whose
    stream nobody reads waits for its reader once 16 MiB are queued. `drain=False` leaves proc.stdout
    to the test."""

    def __init__(self, *args, stdout=subprocess.PIPE, env=None, drain=True, preexec_fn=None):
        self.proc = subprocess.Popen([SLUICE, "proxy", *args], stdout=stdout, stderr=subprocess.PIPE,
                                     env=TEST_ENV if env is None else env, preexec_fn=preexec_fn)
        self._out, self._err = [], []
        self._drains = []
        if drain and stdout == subprocess.PIPE:
            self._drains.append(threading.Thread(target=lambda: self._out.append(self.proc.stdout.read()),
                                                 daemon=True))
            self._drains[-1].start()
        self.addresses = []
        self.stderr_lines = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline().decode()
            if not line:
                break
            self.stderr_lines.append(line)
            m = re.match(r"sluice: listening on (\S+):(\d+) ", line)
            if m:
                self.addresses.append((m.group(1).strip("[]"), int(m.group(2))))
                break
        if not self.addresses:
            self.proc.kill()
            raise AssertionError("proxy did not report a listening address: %r" % self.stderr_lines)
        self.port = self.addresses[0][1]
        if self._drains:
            self._drains.append(threading.Thread(target=lambda: self._err.append(self.proc.stderr.read()),
                                                 daemon=True))
            self._drains[-1].start()

    def __del__(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, sig=signal.SIGINT, timeout=15):
        """Stops the proxy; returns its exit code and stdout. A proxy that stopped cleanly closed every
        connection, so its capture must keep the stream-end rule (checked here, for every test)."""
        self.proc.send_signal(sig)
        return self.wait(timeout)

    def wait(self, timeout=15):
        """Waits for a proxy that was told to stop; returns its exit code and stdout, as stop() does."""
        if self._drains:
            self.proc.wait(timeout=timeout)
            for t in self._drains:
                t.join(timeout)
            self.proc.stdout.close()
            self.proc.stderr.close()
            out, err = b"".join(self._out), b"".join(self._err)
        else:
            out, err = self.proc.communicate(timeout=timeout)
        self.stderr_lines.append(err.decode())
        if self.proc.returncode == 0 and out:
            stream_ends(records(out))
        return self.proc.returncode, out


def asan_build():
    """Whether SLUICE is the sanitizer build (its build directory is named for it: build-asan)."""
    return "asan" in os.path.basename(os.path.dirname(os.path.abspath(SLUICE)))


def run(*args, input=None, check=True, timeout=60):
    p = subprocess.run([SLUICE, *args], input=input, capture_output=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("sluice %s exited %d: %s" % (" ".join(args), p.returncode, p.stderr.decode()))
    return p


def byte_member(value):
    """A byte member of a JSONL record (body, payload, ...) as bytes: a string when the bytes were
    UTF-8, else {"base64": ...} (formats/STREAM.md §4)."""
    if isinstance(value, dict):
        return base64.b64decode(value["base64"])
    return value.encode()


def records(stream_bytes):
    """Decodes any stream form through `sluice show --jsonl` and parses every record."""
    out = run("show", "--jsonl", "-", input=stream_bytes).stdout.decode()
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def stream_ends(recs):
    """Checks the stream-end rule of formats/STREAM.md (section 2.3) over a whole capture and returns
    the connections' own ends, in order: every connection's stream ends with an `end` of scope
    stream; a stream's end also ends the streams nested in it ("<id>.<k>"); nothing of a stream comes
    after its end or an enclosing stream's. Raises AssertionError naming the first breach."""
    ended = {}
    conns = set()
    for i, r in enumerate(recs):
        sid = r.get("stream_id")
        if not sid:  # a header, or an error of no connection (a step's)
            continue
        for e in ended:
            if sid == e or sid.startswith(e + "."):
                raise AssertionError("record %d (%s of stream %s) after the end of stream %s" % (i, r["type"], sid, e))
        conns.add(r["context"]["conn_id"] if r.get("context") else sid.split(".")[0])
        if r["type"] == "end" and r["scope"] == "stream":
            ended[sid] = r
    missing = sorted(c for c in conns if c not in ended)
    if missing:
        raise AssertionError("connections without an end: %s" % ", ".join(missing))
    return [e for sid, e in ended.items() if "." not in sid]


def connect(port, host="127.0.0.1"):
    return socket.create_connection((host, port), timeout=10)


def recv_all(sock):
    """Everything the peer sends until it closes."""
    buf = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return buf
        buf += chunk


def recv_exactly(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


def run_on_terminal(argv, stdout=True, stderr=True, env=None, timeout=60):
    """Runs argv with its stdout and/or stderr on a pseudo-terminal (the other one a pipe); returns the
    exit code, what the terminal showed, and the piped output (b"" when both went to the terminal)."""
    import pty
    master, slave = pty.openpty()
    piped = subprocess.PIPE
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave if stdout else piped,
                            stderr=slave if stderr else piped, env=TEST_ENV if env is None else env)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: every holder of the terminal's other side closed it
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, shown, (out or b"") + (err or b"")


class Mitmdump:
    """Debian's mitmdump on a free loopback port (`port`), its output read as it writes (flow lines
    off); `args` are mitmdump's own."""

    def __init__(self, *args):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(["mitmdump", "--listen-host", "127.0.0.1", "-p", "0",
                                      "--set", "flow_detail=0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        for _ in range(200):  # bounded: mitmdump says where it listens first
            line = self.proc.stdout.readline().decode()
            m = re.search(r"listening at 127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                self.log = []
                self.drain = threading.Thread(target=lambda: self.log.append(self.proc.stdout.read()), daemon=True)
                self.drain.start()
                return
            if not line:
                break
        self.proc.kill()
        raise RuntimeError("mitmdump did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.drain.join(10)
        self.proc.stdout.close()
