"""TLS interception: CONNECT through `sluice proxy` to loopback HTTPS origins, checked with curl,
openssl and Python's ssl module. The origins' certificates come from a test CA made here."""
import base64
import hashlib
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import warnings

warnings.simplefilter("ignore", ResourceWarning)

sys.path.insert(0, os.path.dirname(__file__))
from support import recv_all, curl, records, serve_hello, Proxy, ROOT, SLUICE, TEST_ENV  # noqa: E402


def sh(*args, **kw):
    p = subprocess.run(args, capture_output=True, timeout=60, **kw)
    if p.returncode != 0:
        raise AssertionError("%s: %s" % (" ".join(args), p.stderr.decode()))
    return p.stdout


class Pki:
    """A test CA, an origin certificate for localhost/127.0.0.1/alt.test, a client certificate."""

    def __init__(self, d):
        self.dir = d
        j = lambda n: os.path.join(d, n)  # noqa: E731
        self.ca, self.ca_key = j("origin-ca.pem"), j("origin-ca.key")
        sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
           "-keyout", self.ca_key, "-out", self.ca, "-days", "2", "-subj", "/CN=sluice test origin CA")
        self.cert, self.key = self.issue("origin", "/CN=localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1,"
                                         "DNS:alt.test\nextendedKeyUsage=serverAuth")
        ccert, ckey = self.issue("client", "/CN=sluice test client", "extendedKeyUsage=clientAuth")
        self.client_bundle = j("client-bundle.pem")
        with open(self.client_bundle, "wb") as f, open(ccert, "rb") as c, open(ckey, "rb") as k:
            f.write(c.read() + k.read())

    def issue(self, name, subject, ext):
        j = lambda n: os.path.join(self.dir, n)  # noqa: E731
        sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
           j(name + ".key"), "-out", j(name + ".csr"), "-subj", subject)
        with open(j(name + ".ext"), "w") as f:
            f.write(ext + "\n")
        sh("openssl", "x509", "-req", "-in", j(name + ".csr"), "-CA", self.ca, "-CAkey", self.ca_key,
           "-CAcreateserial", "-days", "2", "-extfile", j(name + ".ext"), "-out", j(name + ".pem"))
        return j(name + ".pem"), j(name + ".key")


def origin(pki, alpn=None, client_ca=None):
    return serve_hello(pki.cert, pki.key, alpn=alpn, client_ca=client_ca)



def envelopes(recs, protocol):
    return [r for r in recs if r["type"] == "envelope" and r["protocol"] == protocol]


class PkiCase(unittest.TestCase):
    """A test PKI for origins, and sluice's CA exported for clients (`sluice_ca`)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.pki = Pki(cls.tmp.name)
        cls.sluice_ca = os.path.join(cls.tmp.name, "sluice-ca.pem")
        subprocess.run([SLUICE, "ca", "export", "-o", cls.sluice_ca], check=True, env=TEST_ENV, capture_output=True)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()


class Tls(PkiCase):
    def proxy(self, *args, env=None):
        return Proxy("--mode", "regular@0", *args, env=env)

    def finish(self, proxy):
        time.sleep(0.2)
        code, out = proxy.stop()
        self.assertEqual(code, 0, proxy.stderr_lines)
        return records(out)

    def test_curl_through_connect_is_decrypted_and_recorded(self):
        o = origin(self.pki, alpn=["http/1.1"])
        port = o.server_address[1]
        proxy = self.proxy("--server-ca", self.pki.ca)
        p = curl("-v", "-x", "http://127.0.0.1:%d" % proxy.port, "--cacert", self.sluice_ca,
                 "https://localhost:%d/secret?q=1" % port)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, b"hello from /secret?q=1\n")
        self.assertIn(b"ALPN: server accepted http/1.1", p.stderr)  # the origin's choice reached curl
        recs = self.finish(proxy)
        o.shutdown()
        http = [r for r in envelopes(recs, "http") if r["message"].get("path") == "/secret?q=1"]
        self.assertEqual(len(http), 1)
        req = http[0]
        self.assertEqual(req["message"]["scheme"], "https")
        self.assertEqual(req["message"]["authority"], "localhost:%d" % port)
        self.assertEqual(req["context"]["tls"]["sni"], "localhost")
        self.assertEqual(req["context"]["tls"]["alpn"], "http/1.1")
        self.assertTrue(base64.b64decode(req["raw"]).startswith(b"GET /secret?q=1 HTTP/1.1\r\n"))
        resp = [r for r in envelopes(recs, "http") if r["flow_id"] == req["flow_id"] and r["direction"] == "receive"]
        self.assertEqual(resp[0]["message"]["status"], 200)
        self.assertEqual(base64.b64decode(resp[0]["message"]["body"]) if "body_encoding" in resp[0]["message"]
                         else resp[0]["message"]["body"].encode(), b"hello from /secret?q=1\n")
        hs = envelopes(recs, "tls-handshake")
        client = [h for h in hs if h["message"]["side"] == "client"][0]["message"]
        server = [h for h in hs if h["message"]["side"] == "server"][0]["message"]
        self.assertEqual(client["sni"], "localhost")
        self.assertIn("http/1.1", client["alpn_offered"])
        self.assertEqual(client["alpn"], "http/1.1")
        self.assertRegex(client["ja4"], r"^t1[23]d\d{4}(h2|h1)_[0-9a-f]{12}_[0-9a-f]{12}$")
        self.assertEqual(client["ja3_hash"], hashlib.md5(client["ja3"].encode()).hexdigest())
        self.assertEqual(server["sni"], "localhost")
        self.assertEqual(server["alpn"], "http/1.1")
        self.assertIn("TLS", server["version"])
        cert = server["certificate"]
        self.assertEqual(cert["subject"], "CN=localhost")
        self.assertEqual(cert["issuer"], "CN=sluice test origin CA")
        self.assertEqual(sorted(cert["sans"]), ["127.0.0.1", "alt.test", "localhost"])
        fp = sh("openssl", "x509", "-in", self.pki.cert, "-noout", "-fingerprint", "-sha256").decode()
        self.assertEqual(cert["sha256"], fp.split("=")[1].strip().replace(":", "").lower())
        # Every record of the run, handshakes included, follows the stream's schema.
        import jsonschema  # Debian: python3-jsonschema
        with open(os.path.join(ROOT, "formats", "envelope.schema.json")) as f:
            validator = jsonschema.Draft202012Validator(json.load(f))
        for r in recs:
            validator.validate(r)

    def test_tunnel_idle_before_its_client_hello_is_still_intercepted(self):
        # A browser's preconnected tunnel: CONNECT, then silence well past --detect-timeout, then TLS.
        o = origin(self.pki)
        port = o.server_address[1]
        proxy = self.proxy("--server-ca", self.pki.ca, "--detect-timeout", "0.1")
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as c:
            c.sendall(b"CONNECT localhost:%d HTTP/1.1\r\nHost: localhost:%d\r\n\r\n" % (port, port))
            self.assertTrue(c.recv(1000).startswith(b"HTTP/1.1 200"))
            time.sleep(0.5)
            ctx = ssl.create_default_context(cafile=self.sluice_ca)
            with ctx.wrap_socket(c, server_hostname="localhost") as t:
                t.sendall(b"GET /late HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                self.assertTrue(recv_all(t).endswith(b"hello from /late\n"))
        recs = self.finish(proxy)
        o.shutdown()
        self.assertEqual([r["message"]["path"] for r in envelopes(recs, "http") if r["direction"] == "send"
                          and r["message"]["method"] == "GET"], ["/late"])
        self.assertEqual(envelopes(recs, "raw"), [])

    def test_leaf_certificate_names_and_issuer(self):
        """openssl s_client through the proxy: the leaf carries the SNI and the origin certificate's other
        names, is issued by the sluice CA, and verifies against it."""
        o = origin(self.pki)
        proxy = self.proxy("--server-ca", self.pki.ca)
        p = subprocess.run(["openssl", "s_client", "-proxy", "127.0.0.1:%d" % proxy.port, "-connect",
                            "localhost:%d" % o.server_address[1], "-servername", "localhost", "-showcerts"],
                           input=b"", capture_output=True, timeout=30)
        self.finish(proxy)
        o.shutdown()
        pems = re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n", p.stdout, re.S)
        self.assertGreaterEqual(len(pems), 1, p.stdout + p.stderr)
        leaf = os.path.join(self.tmp.name, "leaf.pem")
        with open(leaf, "wb") as f:
            f.write(pems[0])
        text = sh("openssl", "x509", "-in", leaf, "-noout", "-issuer", "-ext", "subjectAltName").decode()
        ca_subject = sh("openssl", "x509", "-in", self.sluice_ca, "-noout", "-subject").decode()
        self.assertIn(ca_subject.split("=", 1)[1].strip(), text)
        self.assertIn("DNS:localhost", text)
        self.assertIn("DNS:alt.test", text)
        self.assertIn("IP Address:127.0.0.1", text)
        self.assertIn(b": OK", sh("openssl", "verify", "-CAfile", self.sluice_ca, leaf))
        # The CA goes out after the leaf (so clients that pin it by key, like Chromium, find it).
        self.assertEqual(len(pems), 2)

    def test_bad_server_certificate_gives_502_and_anomaly(self):
        o = origin(self.pki)
        proxy = self.proxy()  # the origin's CA is not trusted
        p = curl("-x", "http://127.0.0.1:%d" % proxy.port, "--cacert", self.sluice_ca,
                 "https://localhost:%d/x" % o.server_address[1], "-w", "%{http_code}")
        self.assertIn(b"failed verification", p.stdout)
        self.assertTrue(p.stdout.endswith(b"502"), p.stdout)
        recs = self.finish(proxy)
        o.shutdown()
        server = [h for h in envelopes(recs, "tls-handshake") if h["message"]["side"] == "server"]
        self.assertEqual(server[0]["anomalies"][0]["name"], "tls_verify_failed")
        self.assertIn("unable to get local issuer certificate", server[0]["anomalies"][0]["detail"])
        self.assertEqual([r["code"] for r in recs if r["type"] == "error"], ["tls_verify_failed"])
        # No request reached the origin's side of the stream beyond the synthesized 502.
        resp = [r for r in envelopes(recs, "http") if r["direction"] == "receive" and r["message"]["status"] == 502]
        self.assertEqual(len(resp), 1)

    def test_insecure_skips_verification_but_records_it(self):
        o = origin(self.pki)
        proxy = self.proxy("--insecure")
        p = curl("-x", "http://127.0.0.1:%d" % proxy.port, "--cacert", self.sluice_ca,
                 "https://localhost:%d/x" % o.server_address[1])
        self.assertEqual(p.stdout, b"hello from /x\n", p.stderr)
        recs = self.finish(proxy)
        o.shutdown()
        server = [h for h in envelopes(recs, "tls-handshake") if h["message"]["side"] == "server"]
        self.assertEqual(server[0]["tags"]["verify_skipped"], "unable to get local issuer certificate")

    def test_client_rejecting_our_certificate_is_recorded(self):
        o = origin(self.pki)
        proxy = self.proxy("--server-ca", self.pki.ca)
        p = curl("-x", "http://127.0.0.1:%d" % proxy.port, "https://localhost:%d/x" % o.server_address[1])
        self.assertEqual(p.returncode, 60, p.stderr)  # curl: peer certificate cannot be authenticated
        recs = self.finish(proxy)
        o.shutdown()
        client = [h for h in envelopes(recs, "tls-handshake") if h["message"]["side"] == "client"]
        self.assertEqual(client[0]["anomalies"][0]["name"], "tls_client_rejected")
        errors = [r for r in recs if r["type"] == "error"]
        self.assertEqual(errors[0]["code"], "tls_client_rejected")
        self.assertIn("alert unknown_ca", errors[0]["message"])

    def test_reverse_https_serves_tls_and_plain_clients(self):
        o = origin(self.pki)
        proxy = Proxy("--mode", "reverse:https://localhost:%d@0" % o.server_address[1], "--server-ca", self.pki.ca)
        p = curl("--cacert", self.sluice_ca, "https://localhost:%d/over-tls" % proxy.port)
        self.assertEqual(p.stdout, b"hello from /over-tls\n", p.stderr)
        p = curl("http://127.0.0.1:%d/plain" % proxy.port)
        self.assertEqual(p.stdout, b"hello from /plain\n", p.stderr)
        recs = self.finish(proxy)
        o.shutdown()
        reqs = [r for r in envelopes(recs, "http") if r["direction"] == "send" and r.get("variant", "original") == "original"]
        self.assertEqual({r["message"]["path"] for r in reqs}, {"/over-tls", "/plain"})
        self.assertTrue(all(r["message"]["scheme"] == "https" for r in reqs))

    def test_a_client_gets_one_session_ticket_and_resumes_with_it(self):
        o = origin(self.pki)
        proxy = Proxy("--mode", "reverse:https://localhost:%d@0" % o.server_address[1], "--server-ca", self.pki.ca)
        session = os.path.join(self.tmp.name, "client.session")
        outputs = []
        for keep in (["-sess_out", session], ["-sess_in", session]):
            p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % proxy.port, "-servername",
                                "localhost", "-CAfile", self.sluice_ca, "-tls1_3", "-ign_eof", *keep],
                               input=b"GET /t HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                               capture_output=True, timeout=30)
            self.assertIn(b"hello from /t", p.stdout, p.stderr)
            outputs.append(p.stdout)
        # One ticket per handshake (OpenSSL's default is two).
        self.assertEqual(outputs[0].count(b"New Session Ticket arrived"), 1, outputs[0])
        self.assertIn(b"Reused, TLSv1.3", outputs[1])
        recs = self.finish(proxy)
        o.shutdown()
        client = [h for h in envelopes(recs, "tls-handshake") if h["message"]["side"] == "client"]
        self.assertEqual([h["tags"].get("resumed") for h in client], [None, "true"])

    def test_absolute_form_https_request(self):
        o = origin(self.pki)
        proxy = self.proxy("--server-ca", self.pki.ca)
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            s.sendall(b"GET https://localhost:%d/abs HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                      % o.server_address[1])
            data = recv_all(s)
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), data)
        self.assertTrue(data.endswith(b"hello from /abs\n"), data)
        self.finish(proxy)
        o.shutdown()

    def test_repeat_host_mints_one_certificate(self):
        """200 connections to the same host: one key generation, 199 certificates from the cache."""
        o = origin(self.pki)
        port = o.server_address[1]
        proxy = self.proxy("--server-ca", self.pki.ca)
        ctx = ssl.create_default_context(cafile=self.sluice_ca)
        for i in range(200):
            with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as raw:
                raw.sendall(b"CONNECT localhost:%d HTTP/1.1\r\nHost: localhost:%d\r\n\r\n" % (port, port))
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    head += raw.recv(1)
                self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
                with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    s.sendall(b"GET /n%d HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % i)
                    data = recv_all(s)
                    self.assertTrue(data.endswith(b"hello from /n%d\n" % i), data)
        recs = self.finish(proxy)
        o.shutdown()
        leaves = [h["tags"]["leaf"] for h in envelopes(recs, "tls-handshake") if h["message"]["side"] == "client"]
        self.assertEqual(len(leaves), 200)
        self.assertEqual(leaves.count("minted"), 1)
        self.assertEqual(leaves.count("cached"), 199)

    def test_a_server_that_waits_for_our_close_notify_before_closing(self):
        """An HTTP/1.0 answer ended by the server's close_notify, the server closing TCP only once ours
        came (as `openssl s_server -www` does): the body's end is the close_notify."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.pki.cert, self.pki.key)
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        unwrapped = []

        def serve():
            for _ in range(2):
                raw, _ = listener.accept()
                with ctx.wrap_socket(raw, server_side=True) as conn:
                    conn.settimeout(10)
                    head = b""
                    while b"\r\n\r\n" not in head:
                        head += conn.recv(4096)
                    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"z" * 3000)
                    try:
                        conn.unwrap()  # close_notify, then wait for the peer's
                        unwrapped.append(True)
                    except (OSError, ssl.SSLError):
                        unwrapped.append(False)

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        proxy = self.proxy("--server-ca", self.pki.ca)
        for i in range(2):
            p = curl("-m", "10", "-x", "http://127.0.0.1:%d" % proxy.port, "--cacert", self.sluice_ca,
                     "https://localhost:%d/z%d" % (port, i))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout, b"z" * 3000)
        t.join(10)
        listener.close()
        self.assertEqual(unwrapped, [True, True])  # each answered with our close_notify
        recs = self.finish(proxy)
        resp = [r for r in envelopes(recs, "http") if r["direction"] == "receive" and r["message"].get("status") == 200
                and r["message"].get("reason") == "OK"]
        self.assertEqual(len(resp), 2)

    def server_handshakes(self, proxy_args, n):
        """n curls through a proxy started with proxy_args, each a new CONNECT to one origin: the
        server-side handshake envelopes."""
        o = origin(self.pki)
        proxy = self.proxy(*proxy_args)
        for i in range(n):
            p = curl("-x", "http://127.0.0.1:%d" % proxy.port, "--cacert", self.sluice_ca,
                     "https://localhost:%d/r%d" % (o.server_address[1], i))
            self.assertEqual(p.stdout, b"hello from /r%d\n" % i, p.stderr)
        recs = self.finish(proxy)
        o.shutdown()
        return [h for h in envelopes(recs, "tls-handshake") if h["message"]["side"] == "server"]

    def test_a_servers_session_is_resumed_on_the_next_connection(self):
        server = self.server_handshakes(["--server-ca", self.pki.ca], 3)
        self.assertEqual(len(server), 3)
        self.assertNotIn("resumed", server[0].get("tags", {}))
        for h in server[1:]:
            self.assertEqual(h.get("tags", {}).get("resumed"), "true", h)
            self.assertEqual(h["anomalies"], [])
            # The certificate the session was verified with is still recorded.
            self.assertEqual(h["message"]["certificate"], server[0]["message"]["certificate"])
        fp = sh("openssl", "x509", "-in", self.pki.cert, "-noout", "-fingerprint", "-sha256").decode()
        self.assertEqual(server[2]["message"]["certificate"]["sha256"],
                         fp.split("=")[1].strip().replace(":", "").lower())

    def test_no_tls_resume_makes_every_server_handshake_full(self):
        server = self.server_handshakes(["--server-ca", self.pki.ca, "--no-tls-resume"], 3)
        self.assertEqual(len(server), 3)
        self.assertEqual([h.get("tags", {}).get("resumed") for h in server], [None] * 3)

    def test_a_session_whose_certificate_failed_verification_is_not_resumed(self):
        server = self.server_handshakes(["--insecure"], 3)  # the origin's CA is not trusted
        self.assertEqual(len(server), 3)
        for h in server:
            self.assertEqual(h["tags"]["verify_skipped"], "unable to get local issuer certificate")
            self.assertNotIn("resumed", h["tags"])

    def test_client_certificate_for_mtls_origin(self):
        o = origin(self.pki, client_ca=self.pki.ca)
        port = o.server_address[1]
        url = "https://localhost:%d/mtls" % port
        proxy = self.proxy("--server-ca", self.pki.ca, "--client-cert", self.pki.client_bundle + ":localhost")
        p = curl("-x", "http://127.0.0.1:%d" % proxy.port, "--cacert", self.sluice_ca, url)
        self.assertEqual(p.stdout, b"hello from /mtls\n", p.stderr)
        self.finish(proxy)
        # A pattern that does not match: no certificate, and the origin refuses.
        proxy = self.proxy("--server-ca", self.pki.ca, "--client-cert", self.pki.client_bundle + ":*.example.com")
        p = curl("-x", "http://127.0.0.1:%d" % proxy.port, "--cacert", self.sluice_ca, url, "-w", "%{http_code}")
        self.assertTrue(p.stdout.endswith(b"502"), p.stdout + p.stderr)
        self.finish(proxy)
        o.shutdown()

    def test_sslkeylogfile_covers_both_legs(self):
        o = origin(self.pki)
        keylog = os.path.join(self.tmp.name, "keys.log")
        proxy = self.proxy("--server-ca", self.pki.ca, env=dict(TEST_ENV, SSLKEYLOGFILE=keylog))
        p = curl("-x", "http://127.0.0.1:%d" % proxy.port, "--cacert", self.sluice_ca,
                 "https://localhost:%d/k" % o.server_address[1])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.finish(proxy)
        o.shutdown()
        with open(keylog) as f:
            lines = f.read().splitlines()
        self.assertEqual(oct(os.stat(keylog).st_mode & 0o777), "0o600")
        randoms = {line.split()[1] for line in lines if line.startswith("CLIENT_TRAFFIC_SECRET_0 ")}
        self.assertEqual(len(randoms), 2, lines)  # the client's session and ours to the origin

    def test_ip_target_without_sni_gets_a_leaf_for_the_address(self):
        o = origin(self.pki)
        proxy = self.proxy("--server-ca", self.pki.ca)
        p = curl("-x", "http://127.0.0.1:%d" % proxy.port, "--cacert", self.sluice_ca,
                 "https://127.0.0.1:%d/by-ip" % o.server_address[1])
        self.assertEqual(p.stdout, b"hello from /by-ip\n", p.stderr)
        recs = self.finish(proxy)
        o.shutdown()
        client = [h for h in envelopes(recs, "tls-handshake") if h["message"]["side"] == "client"][0]
        self.assertEqual(client["message"]["sni"], "")
        self.assertTrue(client["message"]["ja4"].startswith("t13i"))

    def test_imported_and_ephemeral_cas(self):
        o = origin(self.pki)
        url = "https://localhost:%d/ca" % o.server_address[1]
        # --ca-cert/--ca-key: leaves signed by the given CA (here the origin's test CA), which curl trusts.
        proxy = self.proxy("--server-ca", self.pki.ca, "--ca-cert", self.pki.ca, "--ca-key", self.pki.ca_key)
        p = curl("-x", "http://127.0.0.1:%d" % proxy.port, "--cacert", self.pki.ca, url)
        self.assertEqual(p.stdout, b"hello from /ca\n", p.stderr)
        self.finish(proxy)
        # --ca-ephemeral: neither the stored CA nor any other that curl knows signed the leaf.
        proxy = self.proxy("--server-ca", self.pki.ca, "--ca-ephemeral")
        p = curl("-x", "http://127.0.0.1:%d" % proxy.port, "--cacert", self.sluice_ca, url)
        self.assertEqual(p.returncode, 60, p.stderr)
        p = curl("-x", "http://127.0.0.1:%d" % proxy.port, "-k", url)
        self.assertEqual(p.stdout, b"hello from /ca\n", p.stderr)
        self.finish(proxy)
        o.shutdown()

    def test_unknown_mode_flags_are_usage_errors(self):
        p = subprocess.run([SLUICE, "proxy", "--ca-cert", "x.pem"], capture_output=True, timeout=30, env=TEST_ENV)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"--ca-cert and --ca-key go together", p.stderr)
        p = subprocess.run([SLUICE, "proxy", "--server-ca", "/nonexistent.pem"], capture_output=True, timeout=30,
                           env=TEST_ENV)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"--server-ca: cannot load /nonexistent.pem", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
