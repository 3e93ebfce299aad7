"""mitmproxy's flow files in and out: what Debian's mitmdump 8.1 writes from real traffic (curl over
HTTP/1.1, a WebSocket, a raw TCP connection) `sluice import` reads with nothing lost that the stream
holds, compared field by field with mitmproxy's own reader; `sluice export --format mitmproxy` writes a
file `mitmdump -nr` and mitmproxy's reader take whole; flow files of older format versions (as
mitmproxy's io/compat.py describes them) and of a newer one import the same; a cut file yields every
complete flow and a clear error."""
import base64
import copy
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import unittest

from mitmproxy import io as mio
from mitmproxy.io import tnetstring
from mitmproxy.test import tflow

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
from support import SLUICE, TEST_ENV, EchoServer, Mitmdump, Proxy, byte_member, curl, serve_hello  # noqa: E402
import golden  # noqa: E402
from test_hostile import OneShotOrigin  # noqa: E402
from test_tls import PkiCase  # noqa: E402


def sluice(*args, input=None, ok=(0,)):
    p = subprocess.run([SLUICE, *args], input=input, capture_output=True, timeout=60, env=TEST_ENV)
    assert p.returncode in ok, (args, p.returncode, p.stderr)
    return p


def envelopes(out):
    return [r for r in (json.loads(line) for line in out.splitlines()) if r["type"] == "envelope"]


def body_of(rec):
    """A recorded message's body: `body`, or the end of `raw` from `body_at`."""
    m = rec["message"]
    if "body" in m:
        return byte_member(m["body"])
    return base64.b64decode(rec["raw"])[m["body_at"]:] if "body_at" in m else b""


def mitm_flows(path):
    with open(path, "rb") as f:
        return list(mio.FlowReader(f).stream())


def ws_frame(payload, opcode=1):
    """A masked client frame (payload < 126 bytes)."""
    key = os.urandom(4)
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class WsEcho(OneShotOrigin):
    """A WebSocket origin by hand: answers the handshake, echoes each text frame unmasked."""

    def answer(self, c):
        import hashlib
        key = re.search(rb"(?i)sec-websocket-key: *(\S+)", self.head).group(1)
        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        buf = b""
        while True:
            data = c.recv(4096)
            if not data:
                return
            buf += data
            while len(buf) >= 6 and len(buf) >= 6 + (buf[1] & 0x7F):
                opcode, n = buf[0] & 0x0F, buf[1] & 0x7F
                key, payload = buf[2:6], buf[6:6 + n]
                buf = buf[6 + n:]
                if opcode == 8:  # close: answered, and the connection ends
                    c.sendall(b"\x88\x00")
                    c.close()
                    return
                reply = b"echo: " + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
                c.sendall(bytes([0x81, len(reply)]) + reply)


class FromMitmdump(PkiCase):
    def test_what_mitmdump_writes_imports_field_by_field(self):
        from h2server import H2Server
        tmp = tempfile.TemporaryDirectory()
        path = os.path.join(tmp.name, "real.mitm")
        origin = serve_hello()
        ws = WsEcho()
        tcp = EchoServer()
        h2o = H2Server(self.pki.cert, self.pki.key)  # HTTPS, ALPN h2
        md = Mitmdump("-w", path, "--tcp-hosts", "^127\\.0\\.0\\.1$",  # (matched against the host of a CONNECT)
                      "--set", "ssl_verify_upstream_trusted_ca=" + self.pki.ca)
        proxy = ["-x", "http://127.0.0.1:%d" % md.port]
        base = "http://127.0.0.1:%d" % origin.server_address[1]
        self.assertEqual(curl(*proxy, base + "/one?x=1").returncode, 0)
        self.assertEqual(curl(*proxy, "-H", "X-Case: Kept", "-d", "a=1&b=2", base + "/form").returncode, 0)
        # HTTPS with HTTP/2 both ways (mitmdump's CA is not the client's: -k).
        h2 = curl(*proxy, "-k", "--http2", "-d", "xyz", "https://localhost:%d/tls-h2" % h2o.port)
        self.assertEqual(h2.stdout, b"h2 hello from /tls-h2 got 3", h2.stderr)
        # A WebSocket through the proxy (absolute-form upgrade), one message each way.
        s = socket.create_connection(("127.0.0.1", md.port), timeout=10)
        s.sendall(b"GET http://127.0.0.1:%d/chat HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  b"Sec-WebSocket-Version: 13\r\n\r\n" % (ws.port, ws.port))
        got = b""
        while b"\r\n\r\n" not in got:  # the 101
            data = s.recv(4096)
            self.assertTrue(data)
            got += data
        self.assertIn(b" 101 ", got)
        s.sendall(ws_frame(b"hi there"))
        got = b""
        while b"echo: hi there" not in got:
            data = s.recv(4096)
            self.assertTrue(data)
            got += data
        s.sendall(bytes([0x88, 0x80]) + os.urandom(4))
        s.close()
        # Raw TCP through CONNECT (--tcp-hosts: not HTTP).
        t = socket.create_connection(("127.0.0.1", md.port), timeout=10)
        t.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (tcp.port, tcp.port))
        self.assertIn(b" 200 ", t.recv(4096))
        t.sendall(b"PING\r\n")
        self.assertEqual(t.recv(4096), b"PING\r\n")
        t.close()
        for _ in range(100):  # bounded: mitmdump writes each flow as it ends
            if len(mitm_flows(path)) >= 5:
                break
            time.sleep(0.1)
        md.stop()
        origin.shutdown()
        origin.server_close()
        ws.sock.close()
        tcp.close()
        flows = mitm_flows(path)
        h2o.close()
        self.assertEqual([f.type for f in flows], ["http", "http", "http", "http", "tcp"])
        tls = [f for f in flows if f.type == "http" and f.request.scheme == "https"][0]
        self.assertEqual(tls.request.http_version, "HTTP/2.0")
        out = sluice("import", "--no-compress", path).stdout
        recs = envelopes(out)
        by_flow = {}
        for r in recs:
            by_flow.setdefault(r["flow_id"], []).append(r)
        for f in flows:
            got = by_flow[f.id]
            self.assertTrue(all(r["tags"]["imported"] == "mitmproxy" for r in got))
            if f.type == "tcp":
                self.assertEqual([(r["direction"], base64.b64decode(r["raw"])) for r in got],
                                 [("send" if m.from_client else "receive", m.content) for m in f.messages])
                continue
            req, resp = got[0]["message"], got[1]["message"]
            req_body, resp_body = body_of(got[0]), body_of(got[1])
            self.assertEqual((req["method"], req["scheme"], req["path"]), (f.request.method, f.request.scheme, f.request.path))
            self.assertEqual(req["authority"], "%s:%d" % (f.request.host, f.request.port))
            self.assertEqual(req["version"], "HTTP/2" if f.request.http_version == "HTTP/2.0" else f.request.http_version)
            if f.client_conn.tls_established:
                tls_info = got[0]["context"]["tls"]
                self.assertEqual((tls_info["version"], tls_info["sni"], tls_info["alpn"]),
                                 (f.client_conn.tls_version, f.client_conn.sni, f.client_conn.alpn.decode()))
            self.assertEqual([tuple(h) for h in req["headers"]], list(f.request.headers.items(multi=True)))
            self.assertEqual(req_body, f.request.raw_content)
            self.assertEqual(resp["status"], f.response.status_code)
            self.assertEqual(resp["reason"], f.response.reason)
            self.assertEqual([tuple(h) for h in resp["headers"]], list(f.response.headers.items(multi=True)))
            self.assertEqual(resp_body, f.response.raw_content)
            self.assertEqual(got[0]["context"]["client"], "%s:%d" % f.client_conn.peername)
            self.assertEqual(got[0]["time"][:19].replace("T", " "),
                             __import__("datetime").datetime.utcfromtimestamp(f.request.timestamp_start)
                             .strftime("%Y-%m-%d %H:%M:%S"))
            if f.websocket:
                frames = [r for r in got if r["protocol"] == "ws"]
                self.assertEqual([(r["direction"], byte_member(r["message"]["payload"])) for r in frames],
                                 [("send" if m.from_client else "receive", m.content) for m in f.websocket.messages])
                self.assertEqual(byte_member(frames[1]["message"]["payload"]), b"echo: hi there")
        # The other readers take the import as any capture.
        self.assertEqual(sluice("filter", "~bs 'echo: hi'", "-", input=out).returncode, 0)
        tmp.cleanup()


def mitmweb_flows(path, expect):
    """The flows mitmweb shows for a flow file, from its web API (GET /flows), once it shows `expect`."""
    import urllib.request
    for _ in range(3):  # a port picked free may be taken meanwhile: bounded retries
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        web = subprocess.Popen(["mitmweb", "--no-web-open-browser", "--web-host", "127.0.0.1", "--web-port", str(port),
                                "--listen-host", "127.0.0.1", "-p", "0", "-r", path],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        try:
            for _ in range(50):  # bounded: it says when the web server listens, then reads the file
                line = web.stdout.readline()
                if not line or b"Web server listening" in line:
                    break
            if not line:
                continue
            for _ in range(100):
                with urllib.request.urlopen("http://127.0.0.1:%d/flows" % port, timeout=10) as r:
                    listed = json.loads(r.read())
                if len(listed) >= expect:
                    return listed
                time.sleep(0.1)
        finally:
            web.terminate()
            web.wait(timeout=30)
            web.stdout.close()
    raise AssertionError("mitmweb did not show the flows")


class ToMitmproxy(unittest.TestCase):
    def test_an_export_is_read_back_by_mitmdump_with_every_flow_intact(self):
        tmp = tempfile.TemporaryDirectory()
        capture = os.path.join(tmp.name, "golden.jsonl")
        with open(capture, "w") as f:
            for r in golden.records():
                f.write(json.dumps(r) + "\n")
        path = os.path.join(tmp.name, "out.mitm")
        sluice("export", "--format", "mitmproxy", "-w", path, capture)
        p = subprocess.run(["mitmdump", "-nr", path], capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"GET https://api.example.com/users?id=1", p.stdout)
        flows = mitm_flows(path)
        har = json.loads(sluice("export", capture).stdout)["log"]["entries"]
        self.assertEqual(len(flows), len(har))
        for f, e in zip(flows, har):  # field by field, against what the HAR export of the same capture says
            self.assertEqual([(h["name"], h["value"]) for h in e["request"]["headers"]],
                             list(f.request.headers.items(multi=True)))
            self.assertEqual(e["request"].get("postData", {}).get("text", "").encode(), f.request.raw_content)
            if f.response:
                self.assertEqual([(h["name"], h["value"]) for h in e["response"]["headers"]],
                                 list(f.response.headers.items(multi=True)))
                content = e["response"]["content"]
                text = content.get("text", "")
                self.assertEqual(base64.b64decode(text) if content.get("encoding") == "base64" else text.encode(),
                                 f.response.raw_content)
        ws = [f for f in flows if f.websocket][0]
        self.assertEqual([(m.from_client, m.content) for m in ws.websocket.messages],
                         [(True, b"hello ws"), (False, b"hello back")])
        self.assertEqual([f.error.msg for f in flows if f.error], ["no answer within 60 s"])
        # mitmweb shows them all: its own API lists each flow with its request, status and messages.
        listed = mitmweb_flows(path, len(flows))
        self.assertEqual([(f["request"]["method"], f["request"]["host"], f["request"]["path"],
                           (f.get("response") or {}).get("status_code")) for f in listed],
                         [(f.request.method, f.request.host, f.request.path, f.response and f.response.status_code)
                          for f in flows])
        self.assertEqual([f["websocket"]["messages_meta"]["count"] for f in listed if f.get("websocket")], [2])
        # A flow file serves offline as any capture does.
        proxy = Proxy("--mode", "regular@0", "--serve-from", path)
        got = curl("-x", "http://127.0.0.1:%d" % proxy.port, "http://cdn.test/app.js")
        proxy.stop()
        self.assertEqual(got.stdout, b"console.log(1)", got.stderr)
        # And back: import gives the same requests and responses.
        back = envelopes(sluice("import", "--no-compress", path).stdout)
        self.assertEqual(len([r for r in back if r["protocol"] == "http" and r["direction"] == "send"]), len(flows))
        tmp.cleanup()


def downgrade_to_4(state):
    """A version-17 flow as mitmproxy wrote it in format version 4 (mitmproxy 4.0), undoing
    compat.py's convert_4_5 through convert_16_17 (the names and shapes each step changed)."""
    s = copy.deepcopy(state)
    s["version"] = 4
    s.pop("timestamp_created", None)            # 15 -> 16 added it
    s["mode"] = "regular"                        # 16 -> 17 removed it
    s.pop("comment", None)                       # 13 -> 14
    s["marked"] = bool(s["marked"])              # 12 -> 13
    s.pop("websocket", None)                     # 11 -> 12
    s["request"]["first_line_format"] = "relative"  # 8 -> 9 removed it, added authority
    s["request"].pop("authority", None)
    s["request"]["is_replay"] = False
    s.pop("is_replay", None)
    s["request"].pop("trailers", None)           # 7 -> 8
    if s.get("response"):
        s["response"].pop("trailers", None)
        s["response"]["is_replay"] = False
    for key in ("client_conn", "server_conn"):
        c = s[key]
        c.pop("id", None)                        # 4 -> 5
        c["ssl_established"] = c.pop("tls_established")  # 5 -> 6
        c["timestamp_ssl_setup"] = c.pop("timestamp_tls_setup")
        c["alpn_proto_negotiated"] = c.pop("alpn")  # 10 -> 11
        c["sni"] = c["sni"].encode() if isinstance(c.get("sni"), str) else c.get("sni")
        for k in ("state", "error", "tls", "alpn_offers", "cipher_list", "certificate_list"):  # 9 -> 10
            c.pop(k, None)
    c = s["client_conn"]
    c.pop("tls_extensions", None)                # 6 -> 7
    c.pop("sockname", None)
    c["clientcert"] = None
    srv = s["server_conn"]
    srv.pop("via2", None)
    srv["cert"] = None
    return s


def downgrade_to_0_17(state):
    """The same flow as mitmproxy 0.17 wrote it (undoing convert_017_018 through convert_300_4): byte
    keys, addresses as dicts, peer_address, no marks."""
    s = downgrade_to_4(state)
    s["version"] = (3, 0, 0)
    s["client_conn"].pop("mitmcert", None)           # 2.0 -> 3.0
    s["server_conn"].pop("tls_version", None)
    s["version"] = (2, 0, 0)
    for conn, keys in (("client_conn", ("address",)), ("server_conn", ("address", "source_address", "ip_address"))):
        for k in keys:                                  # 1.0 -> 2.0: addresses were dicts
            v = s[conn].get(k)
            s[conn][k] = {"address": v, "use_ipv6": False} if v is not None else None
    s["version"] = (0, 19)
    s["request"]["stickyauth"] = False                 # 0.18 -> 0.19
    s["request"]["stickycookie"] = False
    for k in ("sni", "alpn_proto_negotiated", "cipher_name", "tls_version"):
        s["client_conn"].pop(k, None)
    s["server_conn"].pop("alpn_proto_negotiated", None)
    s.pop("mode", None)
    s.pop("metadata", None)
    s["version"] = (0, 17)                             # 0.17 -> 0.18: bytes keys, peer_address
    s["server_conn"]["peer_address"] = s["server_conn"].pop("ip_address")
    s.pop("marked", None)
    def to_bytes(o):
        if isinstance(o, dict):
            return {(k.encode() if isinstance(k, str) else k): to_bytes(v) for k, v in o.items()}
        return o
    s = to_bytes(s)
    for k in (b"type", b"id"):
        if isinstance(s.get(k), str): s[k] = s[k].encode()
    return s


class Versions(unittest.TestCase):
    def write(self, path, states):
        with open(path, "wb") as f:
            for st in states:
                tnetstring.dump(st, f)

    def test_an_older_and_a_newer_format_version_import_as_mitmproxy_reads_them(self):
        tmp = tempfile.TemporaryDirectory()
        flow = tflow.tflow(resp=True)
        flow.request.headers["X-Old"] = "yes"
        state = flow.get_state()
        for name, old_state in (("v4", downgrade_to_4(state)), ("v0.17", downgrade_to_0_17(state))):
            with self.subTest(version=name):
                old = os.path.join(tmp.name, name + ".mitm")
                self.write(old, [old_state])
                migrated = mitm_flows(old)[0]  # mitmproxy's own migration chain reads it
                self.assertEqual(migrated.request.headers["X-Old"], "yes")
                got = envelopes(sluice("import", "--no-compress", old).stdout)
                q, r = got[0]["message"], got[1]["message"]
                self.assertEqual((q["method"], q["path"]), (migrated.request.method, migrated.request.path))
                self.assertEqual([tuple(h) for h in q["headers"]], list(migrated.request.headers.items(multi=True)))
                self.assertEqual((r["status"], body_of(got[1])),
                                 (migrated.response.status_code, migrated.response.raw_content))
                self.assertEqual(got[0]["context"]["client"], "%s:%d" % migrated.client_conn.peername)
                self.assertEqual(got[0]["context"]["server"], "%s:%d" % migrated.server_conn.address)
                if name == "v4":
                    self.assertEqual(got[0]["context"]["tls"]["alpn"], "http/1.1")  # alpn_proto_negotiated, before 11
        # A newer version (21): members mitmproxy added since are not needed, and nothing breaks.
        newer = copy.deepcopy(state)
        newer["version"] = 21
        newer["client_conn"]["proxy_mode"] = "regular"
        newer["request"]["new_member"] = [1, 2]
        path = os.path.join(tmp.name, "v21.mitm")
        self.write(path, [newer])
        got = envelopes(sluice("import", "--no-compress", path).stdout)
        self.assertEqual(got[0]["message"]["method"], "GET")
        tmp.cleanup()

    def test_udp_messages_import_as_chunks_and_dns_flows_are_named_as_left_out(self):
        tmp = tempfile.TemporaryDirectory()
        udp = tflow.ttcpflow().get_state()  # mitmproxy writes UDP flows (9 and later) as TCP ones, typed "udp"
        udp["type"] = "udp"
        udp["version"] = 21
        path = os.path.join(tmp.name, "udp-dns.mitm")
        self.write(path, [udp, tflow.tdnsflow().get_state(), tflow.tflow(resp=True).get_state()])
        p = sluice("import", "--no-compress", path)
        got = envelopes(p.stdout)
        chunks = [r for r in got if r["protocol"] == "raw"]
        self.assertEqual([(r["direction"], base64.b64decode(r["raw"])) for r in chunks],
                         [("send", b"hello"), ("receive", b"it's me")])
        self.assertTrue(all(r["tags"]["transport"] == "udp" for r in chunks))
        self.assertEqual(len([r for r in got if r["protocol"] == "http"]), 2)  # the HTTP flow after the DNS one
        self.assertIn(b"1 DNS flows left out (the stream has no DNS message)", p.stderr)
        tmp.cleanup()

    def test_a_cut_file_yields_every_complete_flow_and_a_clear_error(self):
        tmp = tempfile.TemporaryDirectory()
        path = os.path.join(tmp.name, "cut.mitm")
        with open(path, "wb") as f:
            w = mio.FlowWriter(f)
            for i in range(3):
                fl = tflow.tflow(resp=True)
                fl.request.path = "/n%d" % i
                w.add(fl)
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[:-50])
        p = sluice("import", "--no-compress", path, ok=(2,))
        self.assertEqual([r["message"]["path"] for r in envelopes(p.stdout) if r["direction"] == "send"], ["/n0", "/n1"])
        self.assertIn(b"damaged or cut short", p.stderr)
        self.assertIn(b"flow 3", p.stderr)
        tmp.cleanup()


if __name__ == "__main__":
    unittest.main()
