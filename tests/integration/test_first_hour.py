"""A new user's first hour (issue 20): what sluice says to input that is not a stream, to a mistyped
command line, to a terminal, to Ctrl-C; mitmproxy's spellings; a proxy environment variable curl reads;
two reverse captures on @0 ports compared. Terminals are pseudo-terminals."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from support import (ROOT, SLUICE, TEST_ENV, EchoServer, Proxy, connect, curl, records,  # noqa: E402
                     recv_exactly, run, run_on_terminal, serve_hello)
from test_tls import Pki  # noqa: E402

SAMPLE = os.path.join(ROOT, "formats", "samples", "sample.jsonl")


def sluice(*args, input=None, env=None, timeout=60):
    return subprocess.run([SLUICE, *args], input=input, capture_output=True, timeout=timeout,
                          env=TEST_ENV if env is None else env)


class NotAStream(unittest.TestCase):
    """Every reader names what it was given when it is not a stream, with the command that reads it,
    and exits 2: never an empty capture with exit 0."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="sluice-first-hour-")
        j = lambda n: os.path.join(cls.dir, n)  # noqa: E731
        cls.har = j("x.har")
        with open(cls.har, "wb") as f:
            f.write(run("export", "--format", "har", SAMPLE).stdout)
        cls.json = j("settings.json")
        with open(cls.json, "w") as f:
            json.dump({"name": "not a stream", "items": [1, 2]}, f, indent=2)
        cls.mitm = j("flows.mitm")  # written by mitmproxy's own code
        subprocess.run(["/usr/bin/python3", "-c",
                        "import sys\nfrom mitmproxy import io\nfrom mitmproxy.test import tflow\n"
                        "with open(sys.argv[1], 'wb') as f: io.FlowWriter(f).add(tflow.tflow(resp=True))", cls.mitm],
                       check=True, capture_output=True, timeout=60)
        cls.empty = j("empty.jsonl")
        open(cls.empty, "w").close()
        cls.empty_dir = j("captures")
        os.mkdir(cls.empty_dir)
        cls.kinds = {
            cls.har: r"is a HAR file, not a sluice stream \(convert it: sluice import %s\)" % re.escape(cls.har),
            cls.json: r"is a JSON document, not a sluice stream",
            cls.empty: r"is empty, not a sluice stream",
            cls.empty_dir: r"is a directory without captures",
        }

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def assertRefused(self, p, path, what):
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 2, err)
        self.assertEqual(len(err.splitlines()), 1, err)  # one line
        self.assertRegex(err, r"^sluice: \w[\w-]*: %s %s" % (re.escape(path), self.kinds[path]))
        self.assertEqual(p.stdout, b"", what)  # nothing echoed, no empty report

    def test_every_reader_names_what_it_was_given(self):
        for path in self.kinds:
            for args in (["show"], ["filter", "~c 200"], ["export", "--format", "har"], ["export", "--format", "curl"],
                         ["replay", "--check"], ["replay", "--check", "--junit", os.path.join(self.dir, "r.xml")],
                         ["diff", SAMPLE]):
                with self.subTest(args=args, given=os.path.basename(path)):
                    self.assertRefused(sluice(*args, path), path, args)
            with self.subTest(args="diff, first", given=os.path.basename(path)):
                self.assertRefused(sluice("diff", path, SAMPLE), path, "diff")

    def test_standard_input_is_named_too(self):
        with open(self.har, "rb") as f:
            p = sluice("filter", "~c 200", input=f.read())
        self.assertEqual(p.returncode, 2)
        self.assertEqual(p.stderr, b"sluice: filter: <stdin> is a HAR file, not a sluice stream "
                                   b"(convert it: sluice import -)\n")

    def test_serve_from_refuses_before_listening(self):
        for path in self.kinds:
            with self.subTest(given=os.path.basename(path)):
                p = sluice("proxy", "--mode", "regular@0", "--serve-from", path, timeout=20)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertRegex(p.stderr.decode(), r"sluice: proxy: %s %s" % (re.escape(path), self.kinds[path]))
                self.assertNotIn(b"listening on", p.stderr)

    def test_a_stream_is_still_read(self):
        self.assertEqual(sluice("show", SAMPLE).returncode, 0)
        # A mitmproxy flow file is read directly (known by its first bytes), as sluice import reads it.
        for args in (["show"], ["filter", "~c 200"], ["export", "--format", "har"], ["diff", self.mitm]):
            with self.subTest(args=args):
                p = sluice(*args, self.mitm)
                self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"GET http://address:22/path 200", sluice("show", self.mitm).stdout)
        converted = sluice("import", self.har)
        self.assertEqual(converted.returncode, 0, converted.stderr)
        self.assertEqual(sluice("show", "-", input=converted.stdout).returncode, 0)


class CommandLine(unittest.TestCase):
    def usage(self, p, message, help_of):
        err = p.stderr.decode()
        self.assertEqual(p.returncode, 2, err)
        self.assertEqual(err.splitlines()[0], message)
        self.assertIn("Run 'sluice %s--help'" % (help_of + " " if help_of else ""), err)

    def test_unknown_commands_are_named_with_the_nearest(self):
        self.usage(sluice("shwo"), "sluice: 'shwo' is not a sluice command; did you mean 'show'?", "")
        self.usage(sluice("replya", "x"), "sluice: 'replya' is not a sluice command; did you mean 'replay'?", "")
        self.usage(sluice("ca", "exprot"), "sluice: 'exprot' is not a command of sluice ca; did you mean 'export'?",
                   "ca")

    def test_usage_errors_point_at_the_commands_own_help(self):
        p = sluice("filter", "--bogus", "~a", SAMPLE)
        self.usage(p, "sluice: filter: The following argument was not expected: --bogus", "filter")
        self.usage(sluice("diff", SAMPLE), "sluice: diff: needs two captures to compare: sluice diff BEFORE AFTER",
                   "diff")
        self.usage(sluice("filter"), "sluice: filter: needs a filter expression: sluice filter EXPR [CAPTURE...]",
                   "filter")
        p = sluice("record")
        self.usage(p, "sluice: record: needs the file or directory to write: sluice record PATH [CAPTURE...]", "record")

    def test_ca_options_after_the_verb(self):
        with tempfile.TemporaryDirectory() as d:
            ca_dir = os.path.join(d, "ca")
            a = sluice("ca", "--ca-dir", ca_dir, "export")
            b = sluice("ca", "export", "--ca-dir", ca_dir)
            self.assertEqual(a.returncode, 0, a.stderr)
            self.assertEqual(b.returncode, 0, b.stderr)
            self.assertIn(b"BEGIN CERTIFICATE", b.stdout)
            self.assertEqual(a.stdout, b.stdout)  # the same CA: the option was honoured in both places

    def test_trust_hint_prefixes_sudo_only_for_others_than_root(self):
        p = sluice("ca", "trust-hint")
        self.assertEqual(p.returncode, 0, p.stderr)
        commands = [l for l in p.stdout.decode().splitlines() if l.startswith(("cp ", "sudo ", "update-ca"))]
        self.assertTrue(commands, p.stdout)
        if os.geteuid() == 0:
            self.assertFalse([l for l in commands if l.startswith("sudo ")], commands)
        else:
            self.assertTrue([l for l in commands if l.startswith("sudo ")], commands)

    def test_cannot_write_the_stream_is_exit_3(self):
        p = sluice("proxy", "--mode", "regular@0", "-w", "/no/such/dir/x.zst", timeout=20)
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn(b"cannot open /no/such/dir/x.zst for writing: No such file or directory", p.stderr)

    def test_a_forward_without_a_port_is_an_error_not_8080(self):
        for mode in ("tcp:127.0.0.1:9", "raw:127.0.0.1:9"):
            p = sluice("proxy", "--mode", mode, timeout=10)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn(("mode '%s' needs a port to listen on" % mode).encode(), p.stderr)
            self.assertNotIn(b"listening on", p.stderr)

    def test_mitmproxy_spellings(self):
        echo = EchoServer()
        # -p and --listen-host, as mitmproxy spells them.
        proxy = Proxy("-p", "0", "--listen-host", "::1")
        self.assertEqual(proxy.addresses[0][0], "::1")
        proxy.stop()
        # --mode reverse:tcp://HOST:PORT is a TCP forward; -p gives its port.
        proxy = Proxy("--mode", "reverse:tcp://127.0.0.1:%d" % echo.port, "-p", "0")
        with connect(proxy.port) as c:
            c.sendall(b"ping")
            self.assertEqual(recv_exactly(c, 4), b"ping")
        code, out = proxy.stop()
        self.assertEqual(code, 0)
        raw = [r for r in records(out) if r["type"] == "envelope"]
        self.assertTrue(raw and all(r["protocol"] == "raw" for r in raw), raw)
        echo.close()
        # Modes only mitmproxy has are named as such.
        p = sluice("proxy", "--mode", "transparent", timeout=10)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"mode 'transparent' is mitmproxy's; sluice does not have it", p.stderr)

    def test_the_proxy_variable_curl_reads(self):
        """The README says http_proxy (curl ignores HTTP_PROXY for http:// URLs): both are checked."""
        origin = serve_hello()
        url = "http://127.0.0.1:%d/via-env" % origin.server_address[1]
        proxy = Proxy("--mode", "regular@0")
        env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "no_proxy", "all_proxy")}
        address = "http://127.0.0.1:%d" % proxy.port
        for name in ("http_proxy", "HTTP_PROXY"):
            p = subprocess.run(["curl", "-sS", "--max-time", "10", url + "?" + name], capture_output=True,
                               env=dict(env, **{name: address}), timeout=30)
            self.assertEqual(p.stdout, ("hello from /via-env?%s\n" % name).encode())
        code, out = proxy.stop()
        paths = {r["message"]["path"] for r in records(out)
                 if r["type"] == "envelope" and r["protocol"] == "http" and r["message"]["kind"] == "request"}
        # Only the lower-case one went through sluice (as the client sent it, and as the server got it).
        self.assertEqual(paths, {url + "?http_proxy", "/via-env?http_proxy"})
        with open(os.path.join(ROOT, "README.md")) as f:
            readme = f.read()
        self.assertIn("export http_proxy=http://127.0.0.1:8080", readme)
        self.assertNotRegex(readme, r"\(or HTTP_PROXY=")
        origin.shutdown()


class OnATerminal(unittest.TestCase):
    def test_compressed_or_binary_streams_never_go_to_a_terminal(self):
        for argv, hint in (
                (["proxy", "--mode", "regular@0", "-w", "-", "--compress"], b"refusing to write compressed data"),
                (["replay", "-w", "-", "--compress", SAMPLE], b"refusing to write compressed data"),
                (["record", "--tee", "--format", "cbor", os.path.join(tempfile.gettempdir(), "never.cbor")],
                 b"refusing to write binary CBOR to a terminal (pipe the --tee copy on, or drop --tee)"),
                (["show", "--format", "cbor", SAMPLE], b"refusing to write binary CBOR")):
            with self.subTest(argv=argv[:3]):
                code, shown, err = run_on_terminal([SLUICE, *argv], stderr=False, timeout=30)
                self.assertEqual(code, 2, err)
                self.assertIn(hint, err)
                self.assertEqual(shown, b"")

    def test_streams_to_a_terminal_are_plain_jsonl(self):
        """`record --tee` and `-w -` on a terminal show what a pipe gets: JSONL, never zstd bytes."""
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(ROOT, "formats", "samples", "sample.jsonl.zst"), "rb") as f:
                compressed = f.read()
            import pty
            master, slave = pty.openpty()
            p = subprocess.Popen([SLUICE, "record", "--tee", os.path.join(d, "copy.zst")], stdin=subprocess.PIPE,
                                 stdout=slave, stderr=subprocess.PIPE, env=TEST_ENV)
            os.close(slave)
            threading.Thread(target=lambda: (p.stdin.write(compressed), p.stdin.close()), daemon=True).start()
            shown = b""
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                shown += chunk
            os.close(master)
            self.assertEqual(p.wait(timeout=30), 0, p.stderr.read())
            self.assertTrue(shown.startswith(b'{"type":"header"'), shown[:80])
            self.assertNotIn(b"\x28\xb5\x2f\xfd", shown)
            with open(os.path.join(d, "copy.zst"), "rb") as f:
                self.assertTrue(f.read(4) == b"\x28\xb5\x2f\xfd")  # the file is compressed, as named

    def test_proxy_says_whether_it_records(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "cap.zst")
            proxy = Proxy("--mode", "regular@0", "-w", path)
            self.assertEqual(proxy.stop()[0], 0)
            self.assertIn("sluice: recording to %s (read it with: sluice show %s)\n" % (path, path),
                          "".join(proxy.stderr_lines))

    def _terminal_proxy(self, env):
        """A proxy on a terminal; its stderr is read (bounded) up to the line that says it is not recording."""
        import pty
        import select
        master, slave = pty.openpty()
        proc = subprocess.Popen([SLUICE, "proxy", "--mode", "regular@0", "--insecure"], stdin=subprocess.DEVNULL,
                                stdout=slave, stderr=subprocess.PIPE, env=env)
        os.close(slave)
        err = b""
        deadline = time.monotonic() + 10
        while b"not recording" not in err and time.monotonic() < deadline:
            if select.select([proc.stderr], [], [], 0.1)[0]:
                chunk = os.read(proc.stderr.fileno(), 4096)
                if not chunk:
                    break
                err += chunk
        m = re.search(rb"listening on 127\.0\.0\.1:(\d+)", err)
        if not m:
            proc.kill()
            raise AssertionError(err)
        return proc, master, int(m.group(1)), err.decode()

    def _read_terminal(self, master, pattern, timeout=20):
        import select
        buf = b""
        deadline = time.monotonic() + timeout
        while not re.search(pattern, buf) and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    buf += os.read(master, 4096)
                except OSError:
                    break
        return buf

    def test_one_line_per_https_request_with_versions_size_duration_and_colour(self):
        with tempfile.TemporaryDirectory() as d:
            pki = Pki(d)
            origin = serve_hello(pki.cert, pki.key)
            url = "https://127.0.0.1:%d/one" % origin.server_address[1]
            for env, coloured in ((TEST_ENV, True), (dict(TEST_ENV, NO_COLOR="1"), False)):
                with self.subTest(coloured=coloured):
                    proc, master, port, err = self._terminal_proxy(env)
                    self.assertIn("not recording (standard output is a terminal", err)
                    try:
                        p = curl("-k", "-x", "http://127.0.0.1:%d" % port, url)
                        self.assertEqual(p.stdout, b"hello from /one\n")
                        proc.send_signal(signal.SIGINT)
                        self.assertEqual(proc.wait(timeout=20), 0)
                        shown = self._read_terminal(master, rb"\r\n$", timeout=2)
                    finally:
                        if proc.poll() is None:
                            proc.kill()
                            proc.wait()
                        proc.stderr.close()
                        os.close(master)
                    text = shown.decode()
                    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
                    flows = [l for l in plain.splitlines() if l.strip()]
                    self.assertEqual(len(flows), 1, text)  # not CONNECT, two handshakes and the GET
                    self.assertRegex(flows[0], r"^\d\d:\d\d:\d\d\.\d{3} 127\.0\.0\.1:\d+ GET %s 200 OK HTTP/1\.1 "
                                               r"TLSv1\.3 16 B \d+(\.\d+)? (ms|s|us)$" % re.escape(url))
                    self.assertEqual("\x1b[" in text, coloured, text)
            origin.shutdown()

    def test_no_colour_in_a_pipe(self):
        p = sluice("show", SAMPLE)
        self.assertEqual(p.returncode, 0)
        self.assertTrue(p.stdout)
        self.assertNotIn(b"\x1b[", p.stdout)

    def test_ctrl_c_says_what_it_waits_for_and_a_second_one_forces(self):
        release = threading.Event()

        class Slow(EchoServer):
            def _handle(self, conn):
                with conn:
                    conn.recv(65536)
                    release.wait(30)

        origin = Slow()
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % origin.port, "--grace", "30", drain=False)
        client = connect(proxy.port)
        client.sendall(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
        deadline = time.monotonic() + 10
        while origin.accepted == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        started = time.monotonic()
        proxy.proc.send_signal(signal.SIGINT)
        line = ""
        while "stopping:" not in line and time.monotonic() < deadline + 10:
            line = proxy.proc.stderr.readline().decode()
        self.assertRegex(line, r"^sluice: stopping: waiting up to \d+\.\d s for 1 open connection to finish "
                               r"\(Ctrl-C again closes them now\)$")
        proxy.proc.send_signal(signal.SIGINT)
        self.assertEqual(proxy.proc.stderr.readline().decode(), "sluice: closing 1 open connection now\n")
        code, _ = proxy.wait(timeout=20)
        self.assertEqual(code, 0)
        self.assertLess(time.monotonic() - started, 15)  # not the 30 s grace
        release.set()
        client.close()
        origin.close()


class Diff(unittest.TestCase):
    def test_two_reverse_captures_on_free_ports_pair_their_flows(self):
        origin = serve_hello()
        captures = []
        for _ in range(2):
            proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % origin.server_address[1])
            for path in ("/a", "/b?x=1"):
                self.assertEqual(curl("http://127.0.0.1:%d%s" % (proxy.port, path)).returncode, 0)
            code, out = proxy.stop()
            captures.append(out)
        self.assertNotEqual(*[re.search(rb'"address":"([^"]+)"', c).group(1) for c in captures])
        with tempfile.TemporaryDirectory() as d:
            paths = []
            for i, c in enumerate(captures):
                paths.append(os.path.join(d, "%d.jsonl" % i))
                with open(paths[-1], "wb") as f:
                    f.write(c)
            p = sluice("diff", *paths)
        self.assertEqual(p.returncode, 0, p.stdout.decode() + p.stderr.decode())
        self.assertNotRegex(p.stdout.decode(), r"(?m)^[+-] ")
        origin.shutdown()


class Completion(unittest.TestCase):
    def complete(self, line):
        script = ("source /usr/share/bash-completion/bash_completion; source %s; "
                  "COMP_LINE=%s; COMP_WORDS=($COMP_LINE); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); "
                  "COMP_POINT=${#COMP_LINE}; _sluice; printf '%%s\\n' \"${COMPREPLY[@]}\"") % (
                      os.path.join(ROOT, "completions", "sluice.bash"), "'" + line + "'")
        return subprocess.run(["bash", "-c", script], capture_output=True, timeout=30).stdout.decode().split()

    def test_filter_expressions_complete_operators_not_user_names(self):
        self.assertEqual(self.complete(r"sluice filter \~re"), ["~replay"])
        self.assertEqual(self.complete(r"sluice filter \~ro"), [])  # ~root would be a user name
        self.assertIn("~websocket", self.complete(r"sluice filter \~"))
        self.assertFalse([w for w in self.complete(r"sluice filter \~") if not w.startswith("~")])


if __name__ == "__main__":
    unittest.main(verbosity=2)
