"""What a person sees: `sluice proxy` on a terminal prints one line per flow, and the README's start
command starts the proxy."""
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from support import ROOT, SLUICE, EchoServer, connect, recv_exactly  # noqa: E402


def read_until(fd, pattern, timeout=20):
    buf = b""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, buf):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no %r in %r" % (pattern, buf))
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
    return buf


class Terminal(unittest.TestCase):
    def test_proxy_on_a_terminal_prints_summaries_not_bytes(self):
        echo = EchoServer()
        master, slave = pty.openpty()
        proc = subprocess.Popen([SLUICE, "proxy", "--mode", "tcp:127.0.0.1:%d@0" % echo.port],
                                stdin=slave, stdout=slave, stderr=subprocess.PIPE)
        os.close(slave)
        try:
            line = proc.stderr.readline().decode()
            port = int(re.search(r":(\d+) ", line).group(1))
            with connect(port) as c:
                c.sendall(b"hello")
                self.assertEqual(recv_exactly(c, 5), b"hello")
            out = read_until(master, rb"raw -> 127\.0\.0\.1:%d sent 5 B \(1\) received 5 B \(1\)" % echo.port)
            self.assertNotIn(b"\x28\xb5\x2f\xfd", out)  # no zstd on a terminal
            self.assertNotIn(b'"type"', out)
        finally:
            proc.send_signal(signal.SIGINT)
            self.assertEqual(proc.wait(timeout=15), 0)
            os.close(master)
            echo.close()

    def test_readme_start_command_builds_with_progress_and_starts_a_recording_proxy(self):
        """scripts/start shows what it builds (on stderr: its stdout may be a stream), builds the binary
        only, and on a terminal records to a file it names, with how to read it."""
        master, slave = pty.openpty()
        proc = subprocess.Popen([os.path.join(ROOT, "scripts", "start"), "--mode", "regular@0"],
                                stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.PIPE, cwd=ROOT)
        os.close(slave)
        lines = []
        try:
            deadline = time.monotonic() + 300
            while not any(b"recording to" in l for l in lines) and time.monotonic() < deadline:
                line = proc.stderr.readline()
                if not line:
                    break
                lines.append(line)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=30)
            os.close(master)
        text = b"".join(lines).decode()
        self.assertEqual(proc.returncode, 0, text)
        self.assertIn("start: building build/sluice\n", text)
        self.assertRegex(text, r"ninja: no work to do|\[\d+/\d+\] ")  # the build's own progress
        self.assertIn("sluice: listening on 127.0.0.1:", text)
        m = re.search(r"sluice: recording to (captures/start-\d{8}-\d{6}\.zst) \(read it with: sluice show \1\)",
                      text)
        self.assertTrue(m, text)
        path = os.path.join(ROOT, m.group(1))
        try:
            p = subprocess.run([SLUICE, "show", path], capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)  # a readable (empty) capture
        finally:
            os.unlink(path)


if __name__ == "__main__":
    unittest.main(verbosity=2)
