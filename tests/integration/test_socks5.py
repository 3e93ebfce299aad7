"""`sluice proxy --mode socks5`: curl through the SOCKS5 listener (HTTP, and HTTPS intercepted), an IPv6
target, username/password, and the replies for BIND, refused servers and bad credentials."""
import base64
import os
import socket
import struct
import sys
import threading
import time
import unittest
import warnings

sys.path.insert(0, os.path.dirname(__file__))
from support import closed_port, curl, records, recv_exactly, serve_hello, Proxy  # noqa: E402
from test_tls import PkiCase, origin  # noqa: E402

warnings.simplefilter("ignore", ResourceWarning)



def socks_request(port, cmd, atyp_addr, target_port, greeting=b"\x05\x01\x00"):
    """Sends a greeting and one request; returns (method reply, request reply, socket)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(greeting)
    method = recv_exactly(s, 2)
    s.sendall(b"\x05" + bytes([cmd]) + b"\x00" + atyp_addr + struct.pack("!H", target_port))
    reply = recv_exactly(s, 10)
    return method, reply, s


class Socks5(PkiCase):
    def finish(self, proxy):
        time.sleep(0.2)
        code, out = proxy.stop()
        self.assertEqual(code, 0)
        return records(out)

    def test_curl_http_and_https_through_socks5_hostname(self):
        o = origin(self.pki)
        port = o.server_address[1]
        proxy = Proxy("--mode", "socks5@0", "--server-ca", self.pki.ca)
        p = curl("--socks5-hostname", "127.0.0.1:%d" % proxy.port, "--cacert", self.sluice_ca,
                 "https://localhost:%d/over-socks" % port)
        self.assertEqual(p.stdout, b"hello from /over-socks\n", p.stderr)
        recs = self.finish(proxy)
        o.shutdown()
        socks = [r for r in recs if r["type"] == "envelope" and r["tags"].get("socks5")]
        self.assertEqual([r["direction"] for r in socks], ["send", "receive"])
        self.assertEqual(socks[0]["tags"], {"socks5": "connect", "target": "localhost:%d" % port})
        self.assertIn(b"localhost", base64.b64decode(socks[0]["raw"]))  # the name, not an address
        # Intercepted like a CONNECT in regular mode: the handshake and the decrypted exchange.
        hs = [r for r in recs if r["type"] == "envelope" and r["protocol"] == "tls-handshake"]
        self.assertEqual({h["message"]["side"] for h in hs}, {"client", "server"})
        reqs = [r for r in recs if r["type"] == "envelope" and r["protocol"] == "http" and r["direction"] == "send"]
        self.assertEqual([(r["message"]["scheme"], r["message"]["path"]) for r in reqs], [("https", "/over-socks")])

    def test_plain_http_and_auth(self):
        o = serve_hello()
        url = "http://127.0.0.1:%d/plain" % o.server_address[1]
        proxy = Proxy("--mode", "socks5@0", "--proxy-auth", "ann:s3cret")
        p = curl("--socks5-hostname", "ann:s3cret@127.0.0.1:%d" % proxy.port, url)
        self.assertEqual(p.stdout, b"hello from /plain\n", p.stderr)
        p = curl("--socks5-hostname", "ann:wrong@127.0.0.1:%d" % proxy.port, url)
        self.assertNotEqual(p.returncode, 0)
        p = curl("--socks5-hostname", "127.0.0.1:%d" % proxy.port, url)  # offers no username/password
        self.assertNotEqual(p.returncode, 0)
        recs = self.finish(proxy)
        o.shutdown()
        self.assertEqual([r["code"] for r in recs if r["type"] == "error"], ["socks_auth_failed", "socks_auth_required"])
        reqs = [r for r in recs if r["type"] == "envelope" and r["protocol"] == "http" and r["direction"] == "send"]
        self.assertEqual([r["message"]["path"] for r in reqs], ["/plain"])

    def test_ipv6_target_and_replies(self):
        echo6 = socket.socket(socket.AF_INET6)
        echo6.bind(("::1", 0))
        echo6.listen(4)

        def serve():
            conn, _ = echo6.accept()
            with conn:
                while True:
                    data = conn.recv(65536)
                    if not data:
                        return
                    conn.sendall(data)
        threading.Thread(target=serve, daemon=True).start()
        proxy = Proxy("--mode", "socks5@0")
        method, reply, s = socks_request(proxy.port, 1, b"\x04" + socket.inet_pton(socket.AF_INET6, "::1"),
                                         echo6.getsockname()[1])
        self.assertEqual(method, b"\x05\x00")
        self.assertEqual(reply[:2], b"\x05\x00")  # succeeded
        s.sendall(b"over ipv6")
        self.assertEqual(recv_exactly(s, 9), b"over ipv6")
        s.close()
        # BIND and UDP ASSOCIATE: command not supported (7).
        for cmd in (2, 3):
            _, reply, s = socks_request(proxy.port, cmd, b"\x01" + socket.inet_aton("127.0.0.1"), 9)
            self.assertEqual(reply[:2], b"\x05\x07")
            s.close()
        # A refused server: connection refused (5).
        _, reply, s = socks_request(proxy.port, 1, b"\x01" + socket.inet_aton("127.0.0.1"), closed_port())
        self.assertEqual(reply[:2], b"\x05\x05")
        s.close()
        # An unknown address type: 8.
        s = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        s.sendall(b"\x05\x01\x00")
        recv_exactly(s, 2)
        s.sendall(b"\x05\x01\x00\x09\x00\x00")
        self.assertEqual(recv_exactly(s, 2), b"\x05\x08")
        s.close()
        recs = self.finish(proxy)
        echo_port = echo6.getsockname()[1]
        echo6.close()
        codes = [r["code"] for r in recs if r["type"] == "error"]
        self.assertEqual(sorted(codes), sorted(["socks_command_not_supported", "socks_command_not_supported",
                                                "connect_refused", "socks_bad_request"]))
        raw = [r for r in recs if r["type"] == "envelope" and r["protocol"] == "raw" and "socks5" not in r["tags"]]
        self.assertEqual([(r["direction"], base64.b64decode(r["raw"])) for r in raw],
                         [("send", b"over ipv6"), ("receive", b"over ipv6")])
        socks = [r for r in recs if r["type"] == "envelope" and r["tags"].get("socks5") == "connect"]
        self.assertEqual(socks[0]["tags"]["target"], "::1:%d" % echo_port)


if __name__ == "__main__":
    unittest.main(verbosity=2)
