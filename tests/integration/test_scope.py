"""Scope (mitmproxy's --ignore-hosts and --allow-hosts): an ignored host's TLS connection, after CONNECT or
SOCKS5, is tunnelled untouched (the client sees the origin's own certificate) and only summarized in the
stream (its client hello, its end); the other hosts are intercepted as ever; both flags at once are
refused."""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from support import Proxy, SLUICE, TEST_ENV, curl, records  # noqa: E402
from test_tls import PkiCase, origin  # noqa: E402


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

    def test_both_at_once_and_a_bad_pattern_are_refused(self):
        for args, message in ((["--allow-hosts", "a", "--ignore-hosts", "b"], "mutually exclusive"),
                              (["--ignore-hosts", "(x"], "--ignore-hosts '(x'")):
            for command in (["proxy", "--mode", "regular@0"], ["replay", "-"]):
                p = subprocess.run([SLUICE, *command, *args], capture_output=True, input=b"", timeout=30, env=TEST_ENV)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(message.encode(), p.stderr)
                self.assertNotIn(b"listening", p.stderr)


if __name__ == "__main__":
    unittest.main()
