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

    def test_readme_start_command_starts_the_proxy(self):
        proc = subprocess.Popen([os.path.join(ROOT, "scripts", "start"), "--mode", "regular@0"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
        try:
            deadline = time.monotonic() + 300
            line = b""
            while b"listening on" not in line and time.monotonic() < deadline:
                line = proc.stderr.readline()
                if not line:
                    break
            self.assertIn(b"listening on 127.0.0.1:", line)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=30)
        self.assertEqual(proc.returncode, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
