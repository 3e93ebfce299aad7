"""Secrets (issue 22): captures and exports are readable by their owner alone, the proxy's own
credentials are not kept in what it records, a CA key others can read is refused as ssh refuses such a
private key."""
import base64
import os
import stat
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from support import SLUICE, TEST_ENV, Proxy, curl, records, serve_hello  # noqa: E402


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


class Secrets(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.old_umask = os.umask(0o022)  # what most users have: files 0644 unless the program says otherwise

    def tearDown(self):
        os.umask(self.old_umask)
        self.dir.cleanup()

    def path(self, name):
        return os.path.join(self.dir.name, name)

    def test_captures_and_exports_are_private_to_their_owner(self):
        origin = serve_hello()
        cap = self.path("cap.zst")
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % origin.server_address[1], "-w", cap)
        self.assertEqual(curl("http://127.0.0.1:%d/x" % proxy.port).returncode, 0)
        self.assertEqual(proxy.stop()[0], 0)
        origin.shutdown()
        self.assertEqual(mode(cap), 0o600)
        for args, out in ((["show", "--format", "cbor", "-w"], "cap.cbor"), (["filter", "~a", "-w"], "f.jsonl"),
                          (["export", "--format", "har", "-w"], "x.har")):
            p = subprocess.run([SLUICE, *args, self.path(out), cap], capture_output=True, env=TEST_ENV, timeout=60)
            self.assertIn(p.returncode, (0, 1), p.stderr)
            self.assertEqual(mode(self.path(out)), 0o600, out)
        with open(cap, "rb") as f:
            data = f.read()
        p = subprocess.run([SLUICE, "record", "--rotate-size", "1MiB", self.path("segments") + "/"], input=data,
                           capture_output=True, env=TEST_ENV, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(mode(self.path("segments")), 0o700)
        segments = os.listdir(self.path("segments"))
        self.assertTrue(segments)
        for s in segments:
            self.assertEqual(mode(os.path.join(self.path("segments"), s)), 0o600, s)

    def test_the_proxys_own_credentials_are_not_recorded(self):
        origin = serve_hello()
        proxy = Proxy("--mode", "regular@0", "--proxy-auth", "alice:s3cret-pw")
        url = "http://127.0.0.1:%d/private" % origin.server_address[1]
        p = curl("-x", "http://127.0.0.1:%d" % proxy.port, "-U", "alice:s3cret-pw", url)
        self.assertEqual(p.stdout, b"hello from /private\n")
        code, out = proxy.stop()
        origin.shutdown()
        text = subprocess.run([SLUICE, "show", "--jsonl", "-"], input=out, capture_output=True,
                              timeout=60).stdout
        secret = base64.b64encode(b"alice:s3cret-pw")
        self.assertNotIn(secret, text)
        recs = [r for r in records(out) if r["type"] == "envelope" and r["message"].get("kind") == "request"]
        self.assertTrue(recs)
        for r in recs:
            raw = base64.b64decode(r["raw"])
            self.assertNotIn(secret, raw)
            self.assertNotIn(b"s3cret", raw)
        first = recs[0]
        self.assertIn(["Proxy-Authorization", "[masked by sluice]"], first["message"]["headers"])
        self.assertIn(b"\r\nProxy-Authorization: [masked by sluice]\r\n", base64.b64decode(first["raw"]))
        self.assertEqual(first["tags"].get("masked"), "proxy-authorization")

    def test_a_ca_key_others_can_read_is_refused(self):
        ca = self.path("ca")
        p = subprocess.run([SLUICE, "ca", "export", "--ca-dir", ca], capture_output=True, env=TEST_ENV, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        key = os.path.join(ca, "ca-key.pem")
        self.assertEqual(mode(key), 0o600)
        os.chmod(key, 0o644)
        p = subprocess.run([SLUICE, "proxy", "--mode", "regular@0", "--ca-dir", ca], capture_output=True,
                           env=TEST_ENV, timeout=30)
        self.assertEqual(p.returncode, 3)
        self.assertIn(("%s can be read by others (mode 0644): a CA key must be private to its owner (chmod 600 %s)"
                       % (key, key)).encode(), p.stderr)
        self.assertNotIn(b"listening on", p.stderr)
        os.chmod(key, 0o600)
        self.assertEqual(subprocess.run([SLUICE, "ca", "export", "--ca-dir", ca], capture_output=True,
                                        env=TEST_ENV, timeout=60).returncode, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
