"""`sluice ca`: the CA is created once, where XDG says, with a 0600 key; every export and hash agrees
with what openssl computes from the same files."""
import base64
import os
import stat
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from support import SLUICE  # noqa: E402


def openssl(*args, input=None):
    p = subprocess.run(["openssl", *args], input=input, capture_output=True, timeout=30)
    if p.returncode != 0:
        raise AssertionError("openssl %s: %s" % (" ".join(args), p.stderr.decode()))
    return p.stdout


class Ca(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.env = dict(os.environ, XDG_DATA_HOME=os.path.join(self.tmp.name, "xdg"),
                        HOME=os.path.join(self.tmp.name, "home"))
        self.dir = os.path.join(self.tmp.name, "xdg", "sluice", "ca")

    def tearDown(self):
        self.tmp.cleanup()

    def ca(self, *args, check=True):
        p = subprocess.run([SLUICE, "ca", *args], capture_output=True, timeout=30, env=self.env)
        if check and p.returncode != 0:
            raise AssertionError("sluice ca %s exited %d: %s" % (" ".join(args), p.returncode, p.stderr.decode()))
        return p

    def test_init_creates_once_with_a_private_key(self):
        first = self.ca("init").stdout.decode()
        self.assertTrue(first.startswith("created %s/ca.pem\n" % self.dir), first)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.dir, "ca-key.pem")).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(self.dir).st_mode), 0o700)
        second = self.ca("init").stdout.decode()
        self.assertTrue(second.startswith("exists "), second)
        self.assertEqual(first.splitlines()[1], second.splitlines()[1])  # same fingerprint: not regenerated
        fingerprint = openssl("x509", "-in", os.path.join(self.dir, "ca.pem"), "-noout", "-fingerprint", "-sha256")
        self.assertEqual(first.splitlines()[1], "sha256 " + fingerprint.decode().split("=")[1].strip()
                         .replace(":", "").lower())

    def test_the_certificate_is_a_p256_ca_for_ten_years(self):
        self.ca("init")
        text = openssl("x509", "-in", os.path.join(self.dir, "ca.pem"), "-noout", "-text").decode()
        self.assertIn("CA:TRUE", text)
        self.assertIn("Certificate Sign, CRL Sign", text)
        self.assertIn("prime256v1", text)
        self.assertIn("ecdsa-with-SHA256", text)
        # Valid for 10 years: not expiring within 9.9 years, expired within 10.1.
        year = 365 * 24 * 3600
        checkend = lambda seconds: subprocess.run(  # noqa: E731
            ["openssl", "x509", "-in", os.path.join(self.dir, "ca.pem"), "-noout", "-checkend", str(int(seconds))],
            capture_output=True).returncode
        self.assertEqual(checkend(9.9 * year), 0)
        self.assertEqual(checkend(10.1 * year), 1)
        # The key is the certificate's.
        key_pub = openssl("pkey", "-in", os.path.join(self.dir, "ca-key.pem"), "-pubout")
        cert_pub = openssl("x509", "-in", os.path.join(self.dir, "ca.pem"), "-noout", "-pubkey")
        self.assertEqual(key_pub, cert_pub)

    def test_default_dir_falls_back_to_home(self):
        env = dict(self.env)
        del env["XDG_DATA_HOME"]
        p = subprocess.run([SLUICE, "ca", "path"], capture_output=True, env=env, timeout=30)
        self.assertEqual(p.stdout.decode().strip(), os.path.join(self.tmp.name, "home", ".local/share/sluice/ca"))
        other = os.path.join(self.tmp.name, "elsewhere")
        self.assertEqual(self.ca("--ca-dir", other, "path").stdout.decode().strip(), other)
        self.ca("--ca-dir", other, "init")
        self.assertTrue(os.path.exists(os.path.join(other, "ca.pem")))

    def test_exports_agree_with_openssl(self):
        pem = self.ca("export").stdout
        with open(os.path.join(self.dir, "ca.pem"), "rb") as f:
            self.assertEqual(pem, f.read())
        der = self.ca("export", "--format", "der").stdout
        self.assertEqual(openssl("x509", "-inform", "der", "-outform", "pem", input=der), pem)
        out = os.path.join(self.tmp.name, "ca.p12")
        self.ca("export", "--format", "p12", "--password", "s3cret", "-o", out)
        from_p12 = openssl("pkcs12", "-in", out, "-nokeys", "-passin", "pass:s3cret")
        self.assertIn(pem.strip(), from_p12)

    def test_spki_matches_the_chromium_recipe(self):
        spki = self.ca("spki").stdout.decode().strip()
        pub = openssl("x509", "-in", os.path.join(self.dir, "ca.pem"), "-pubkey", "-noout")
        der = openssl("pkey", "-pubin", "-outform", "der", input=pub)
        digest = openssl("dgst", "-sha256", "-binary", input=der)
        self.assertEqual(spki, base64.b64encode(digest).decode())

    def test_trust_hint_names_the_files_and_the_hash(self):
        text = self.ca("trust-hint").stdout.decode()
        pem = os.path.join(self.dir, "ca.pem")
        for expected in ("update-ca-certificates", "certutil", "--cacert " + pem, "REQUESTS_CA_BUNDLE=" + pem,
                         "NODE_EXTRA_CA_CERTS=" + pem,
                         "--ignore-certificate-errors-spki-list=" + self.ca("spki").stdout.decode().strip()):
            self.assertIn(expected, text)

    def test_errors_are_clear(self):
        p = self.ca(check=False)
        self.assertEqual(p.returncode, 2)
        self.ca("init")
        os.unlink(os.path.join(self.dir, "ca-key.pem"))
        p = self.ca("spki", check=False)
        self.assertEqual(p.returncode, 3)
        self.assertIn("ca-key.pem", p.stderr.decode())
        self.assertEqual(p.stderr.decode().count("\n"), 1)
        # A key that is not the certificate's.
        openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", os.path.join(self.dir, "ca-key.pem"))
        p = self.ca("spki", check=False)
        self.assertEqual(p.returncode, 3)
        self.assertIn("is not the key of the certificate", p.stderr.decode())
        p = self.ca("export", "--format", "jpeg", check=False)
        self.assertEqual(p.returncode, 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
