"""HTTP/2 clients in front of HTTP/1.1-only servers, and reverse proxying to HTTP/2 servers: curl
--http2-prior-knowledge (h2c) and curl --http2 (TLS, ALPN h2) through reverse mode to a Python
http.server origin (HTTP/1.1 only, cleartext and TLS), a python3-h2 client sending a body without
content-length, trailers and split cookie fields on concurrent streams, and reverse:https:// to an h2-only
origin. Checks what the origin received, what the client got, and the stream's request, translated
variant and response envelopes."""
import base64
import http.server
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import warnings

import h2.config
import h2.connection
import h2.events

sys.path.insert(0, os.path.dirname(__file__))
from support import Proxy, byte_member, records, serve_hello  # noqa: E402
from test_tls import PkiCase  # noqa: E402
from h2server import H2Server  # noqa: E402

warnings.simplefilter("ignore", ResourceWarning)


def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", "20", *args], capture_output=True, timeout=60)


def body_of(m):
    return byte_member(m.get("body", ""))


class H1Origin(http.server.BaseHTTPRequestHandler):
    """HTTP/1.1 only: answers with what it got (method, path, Host, Cookie, body length, trailers);
    decodes chunked bodies itself (http.server does not). Every request is kept in `server.seen`."""
    protocol_version = "HTTP/1.1"

    def send_error(self, code, message=None, explain=None):
        # Requests it refuses (our h2c preface: "PRI * HTTP/2.0", 505) are kept in `server.refused`.
        self.server.refused.append(self.raw_requestline)
        super().send_error(code, message, explain)

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body, trailers = b"", []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
            while True:
                line = self.rfile.readline()
                if line in (b"\r\n", b""):
                    break
                trailers.append(line.strip().decode())
            return body, trailers
        return self.rfile.read(int(self.headers.get("Content-Length", "0"))), []

    def answer(self):
        body, trailers = self.read_body()
        self.server.seen.append({"method": self.command, "path": self.path, "version": self.request_version,
                                 "headers": self.headers.items(), "body": body, "trailers": trailers})
        text = ("%s %s host=%s cookie=%s got=%d trailers=%s" % (
            self.command, self.path, self.headers.get("Host"), self.headers.get("Cookie"), len(body),
            ",".join(trailers))).encode()
        if self.path == "/big":
            text = b"y" * (1 << 20)
        if self.path == "/events":  # an event stream, chunked, one event per chunk
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for block in (b"data: first\n\n", b"event: second\ndata: 2\n\n"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(text)))
        self.send_header("Connection", "keep-alive, X-Hop")
        self.send_header("X-Hop", "dropped")
        self.send_header("X-Kept", "yes")
        self.end_headers()
        self.wfile.write(text)

    do_GET = do_POST = do_PUT = answer

    def log_message(self, *args):
        pass


def h1_origin(pki=None):
    server = serve_hello(pki.cert if pki else None, pki.key if pki else None,
                         ["http/1.1"] if pki else None, handler=H1Origin)
    server.seen = []
    server.refused = []
    return server


def h2_exchange(port, requests, timeout=20):
    """A python3-h2 client on one h2c connection: each request (headers, body chunks, trailers) on a
    stream of its own, all sent before any answer is read. Returns {stream_id: (headers, body)}."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    ids = []
    for headers, chunks, trailers in requests:
        sid = conn.get_next_available_stream_id()
        ids.append(sid)
        conn.send_headers(sid, headers, end_stream=not chunks and not trailers)
        for i, c in enumerate(chunks):
            conn.send_data(sid, c, end_stream=(i == len(chunks) - 1 and not trailers))
        if trailers:
            conn.send_headers(sid, trailers, end_stream=True)
    sock.sendall(conn.data_to_send())
    answers = {sid: [None, b""] for sid in ids}
    done = set()
    deadline = time.time() + timeout
    while len(done) < len(ids) and time.time() < deadline:
        data = sock.recv(65536)
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                answers[ev.stream_id][0] = dict(ev.headers)
            elif isinstance(ev, h2.events.DataReceived):
                answers[ev.stream_id][1] += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                done.add(ev.stream_id)
        sock.sendall(conn.data_to_send())
    sock.close()
    return answers


class Translation(PkiCase):
    def proxy(self, *args):
        # The stream goes to a file: records of megabyte bodies would fill a pipe nobody reads yet (and
        # the proxy waits rather than lose them).
        self.capture = tempfile.NamedTemporaryFile(suffix=".jsonl.zst")
        return Proxy(*args, stdout=self.capture)

    def stop(self, proxy):
        time.sleep(0.3)
        code, _ = proxy.stop()
        self.assertEqual(code, 0, proxy.stderr_lines)
        with open(self.capture.name, "rb") as f:
            return records(f.read())

    def http(self, recs):
        return [r for r in recs if r["type"] == "envelope" and r["protocol"] == "http" and not r.get("overlay")]

    def test_only_the_first_connection_probes_an_http1_server_with_the_h2c_preface(self):
        origin = h1_origin()
        port = origin.server_address[1]
        proxy = self.proxy("--mode", "reverse:http://127.0.0.1:%d@0" % port)
        for i in range(3):  # three client connections, one after the other
            p = curl("--http2-prior-knowledge", "http://127.0.0.1:%d/n%d" % (proxy.port, i))
            self.assertEqual(p.stdout, b"GET /n%d host=127.0.0.1:%d cookie=None got=0 trailers=" % (i, port), p.stderr)
        recs = self.stop(proxy)
        origin.shutdown()
        self.assertEqual(origin.refused, [b"PRI * HTTP/2.0\r\n"])
        self.assertEqual([s["path"] for s in origin.seen], ["/n0", "/n1", "/n2"])
        resps = [r for r in self.http(recs) if r["direction"] == "receive"]
        self.assertEqual([r["message"]["status"] for r in resps], [200] * 3)

    def test_h2c_client_to_an_http1_only_reverse_target(self):
        origin = h1_origin()
        port = origin.server_address[1]
        proxy = self.proxy("--mode", "reverse:http://127.0.0.1:%d@0" % port)
        p = curl("--http2-prior-knowledge", "-w", "\\n%{http_version}", "http://127.0.0.1:%d/a?x=1" % proxy.port)
        self.assertEqual(p.stdout, b"GET /a?x=1 host=127.0.0.1:%d cookie=None got=0 trailers=\n2" % port, p.stderr)
        big = curl("--http2-prior-knowledge", "http://127.0.0.1:%d/big" % proxy.port)
        self.assertEqual(big.stdout, b"y" * (1 << 20))  # past the client's flow-control window
        with tempfile.NamedTemporaryFile() as f:
            f.write(os.urandom(3 << 20))
            f.flush()
            up = curl("--http2-prior-knowledge", "--data-binary", "@" + f.name,
                      "http://127.0.0.1:%d/upload" % proxy.port)
        self.assertIn(b"POST /upload host=127.0.0.1:%d cookie=None got=%d" % (port, 3 << 20), up.stdout)
        # Bodies without content-length go chunked, with their trailers; split cookies are joined; the
        # streams of one connection each get a server connection and all finish.
        base = [(":method", "POST"), (":scheme", "http"), (":authority", "127.0.0.1:%d" % proxy.port)]
        answers = h2_exchange(proxy.port, [
            (base + [(":path", "/chunked/%d" % i), ("cookie", "a=1"), ("cookie", "b=%d" % i)],
             [b"part-one;", b"part-two"], [("x-checksum", "c%d" % i)]) for i in range(4)])
        for i, sid in enumerate(sorted(answers)):
            headers, body = answers[sid]
            self.assertEqual(headers[b":status"], b"200")
            self.assertEqual(body, b"POST /chunked/%d host=127.0.0.1:%d cookie=a=1; b=%d got=17 trailers=x-checksum: c%d"
                             % (i, port, i, i))
            self.assertEqual(headers[b"x-kept"], b"yes")
            self.assertNotIn(b"x-hop", headers)  # named by Connection: not forwarded
            self.assertNotIn(b"connection", headers)
        recs = self.stop(proxy)
        origin.shutdown()
        self.assertTrue(all(s["version"] == "HTTP/1.1" for s in origin.seen))
        chunked = [s for s in origin.seen if s["path"].startswith("/chunked/")]
        self.assertEqual(len(chunked), 4)
        self.assertTrue(all(dict(s["headers"]).get("transfer-encoding") == "chunked" for s in chunked))
        # The stream: the client's request (HTTP/2), a variant with the HTTP/1.1 bytes sent, the
        # server's response (HTTP/1.1) as it came.
        http = self.http(recs)
        flows = {}
        for r in http:
            flows.setdefault(r["flow_id"], []).append(r)
        self.assertEqual(len(flows), 7)
        for flow in flows.values():
            req = [r for r in flow if r["direction"] == "send" and r.get("variant") != "modified"][0]
            var = [r for r in flow if r["direction"] == "send" and r.get("variant") == "modified"][0]
            resp = [r for r in flow if r["direction"] == "receive"][0]
            self.assertEqual(req["message"]["version"], "HTTP/2")
            self.assertEqual(var["message"]["version"], "HTTP/1.1")
            self.assertEqual(var["variant_of"], req["seq"])
            self.assertEqual(var["seq"], req["seq"])
            self.assertEqual(var["modified_by"], "sluice")
            self.assertEqual(var["tags"]["translated"], "HTTP/2 to HTTP/1.1")
            raw = base64.b64decode(var["raw"])
            self.assertTrue(raw.startswith(b"%s %s HTTP/1.1\r\n" % (req["message"]["method"].encode(),
                                                                   req["message"]["path"].encode())), raw[:80])
            self.assertEqual(resp["message"]["version"], "HTTP/1.1")
            self.assertEqual(resp["message"]["status"], 200)
            self.assertTrue(base64.b64decode(resp["raw"]).startswith(b"HTTP/1.1 200 OK\r\n"))
        chunked_var = [r for r in http if r.get("variant") == "modified" and r["message"]["path"] == "/chunked/0"][0]
        self.assertTrue(base64.b64decode(chunked_var["raw"]).endswith(b"0\r\nx-checksum: c0\r\n\r\n"))
        self.assertEqual(body_of(chunked_var["message"]), b"part-one;part-two")

    def test_an_event_stream_from_an_http1_server_to_an_h2_client_is_recorded_event_by_event(self):
        origin = h1_origin()
        proxy = self.proxy("--mode", "reverse:http://127.0.0.1:%d@0" % origin.server_address[1])
        p = curl("--http2-prior-knowledge", "-N", "http://127.0.0.1:%d/events" % proxy.port)
        self.assertEqual(p.stdout, b"data: first\n\nevent: second\ndata: 2\n\n", p.stderr)
        recs = self.stop(proxy)
        origin.shutdown()
        sse = [r for r in recs if r["type"] == "envelope" and r["protocol"] == "sse"]
        self.assertEqual([(r["message"]["event"], r["message"]["data"]) for r in sse], [("", "first"), ("second", "2")])

    def test_h2_over_tls_client_to_an_http1_only_target(self):
        # reverse:http:// answering TLS clients (ALPN h2) and reverse:https:// to an HTTPS origin that
        # offers only http/1.1: the client gets HTTP/2 either way.
        plain = h1_origin()
        tls = h1_origin(self.pki)
        for target, origin in (("http://127.0.0.1:%d" % plain.server_address[1], plain),
                               ("https://localhost:%d" % tls.server_address[1], tls)):
            proxy = self.proxy("--mode", "reverse:%s@0" % target, "--server-ca", self.pki.ca)
            p = curl("--http2", "--cacert", self.sluice_ca, "-w", "\\n%{http_version}",
                     "https://localhost:%d/tls" % proxy.port)
            self.assertTrue(p.stdout.startswith(b"GET /tls host="), p.stderr)
            self.assertTrue(p.stdout.endswith(b"\n2"), p.stdout)
            recs = self.stop(proxy)
            self.assertEqual([s["version"] for s in origin.seen], ["HTTP/1.1"])
            http = self.http(recs)
            self.assertEqual(sorted(r["message"]["version"] for r in http), ["HTTP/1.1", "HTTP/1.1", "HTTP/2"])
            origin.shutdown()

    def test_reverse_https_to_an_h2_origin_is_h2_on_both_legs(self):
        origin = H2Server(self.pki.cert, self.pki.key)
        try:
            proxy = self.proxy("--mode", "reverse:https://localhost:%d@0" % origin.port, "--server-ca", self.pki.ca)
            p = curl("--http2", "--cacert", self.sluice_ca, "-w", "\\n%{http_version}",
                     "https://localhost:%d/over-h2" % proxy.port)
            self.assertEqual(p.stdout, b"h2 hello from /over-h2\n2", p.stderr)
            recs = self.stop(proxy)
            self.assertEqual([path for path, _ in origin.requests], ["/over-h2"])
            http = self.http(recs)
            self.assertEqual([r["message"]["version"] for r in http], ["HTTP/2", "HTTP/2"])
            self.assertFalse(any(r.get("variant") == "modified" for r in http))
            hs = [r for r in recs if r["type"] == "envelope" and r["protocol"] == "tls-handshake"]
            self.assertTrue(hs and all(h["message"]["alpn"] == "h2" for h in hs))
        finally:
            origin.close()

    def test_an_h1_server_that_goes_away_gives_502(self):
        from support import closed_port
        proxy = self.proxy("--mode", "reverse:http://127.0.0.1:%d@0" % closed_port())
        p = curl("--http2-prior-knowledge", "-w", "\\n%{http_code}", "http://127.0.0.1:%d/x" % proxy.port)
        self.assertTrue(p.stdout.endswith(b"\n502"), p.stdout)
        self.assertIn(b"refused", p.stdout.lower())
        self.stop(proxy)




class Http1ClientToHttp2Server(PkiCase):
    """curl --http1.1 through CONNECT to a server that speaks only HTTP/2 and refuses http/1.1 (alert
    no_application_protocol): the proxy tries once more offering h2 and translates each request."""

    def test_curl_http1_through_connect_to_an_h2_only_server(self):
        origin = H2Server(self.pki.cert, self.pki.key, strict_alpn=True)
        capture = tempfile.NamedTemporaryFile(suffix=".jsonl.zst")
        try:
            proxy = Proxy("--mode", "regular@0", "--server-ca", self.pki.ca, stdout=capture)
            url = "https://localhost:%d" % origin.port
            base = ["--http1.1", "-x", "http://127.0.0.1:%d" % proxy.port, "--cacert", self.sluice_ca]
            p = curl(*base, "-w", "\\n%{http_version}", url + "/one", url + "/two?x=1")
            self.assertEqual(p.stdout, b"h2 hello from /one\n1.1h2 hello from /two?x=1\n1.1", (p.stdout, p.stderr))
            with tempfile.NamedTemporaryFile() as f:
                f.write(os.urandom(3 << 20))  # past the server's flow-control windows
                f.flush()
                up = curl(*base, "--data-binary", "@" + f.name, url + "/upload")
            self.assertEqual(up.stdout, b"h2 hello from /upload got %d" % (3 << 20), up.stderr)
            big = curl(*base, url + "/big")
            self.assertEqual(big.stdout, b"x" * (1 << 20))
            trailers = curl(*base, "-i", url + "/trailers")
            self.assertIn(b"transfer-encoding: chunked", trailers.stdout.lower())
            # curl -i shows the trailer after the body: it came in the last chunk.
            self.assertTrue(trailers.stdout.endswith(b"h2 hello from /trailersx-checksum: abc123\r\n"),
                            trailers.stdout[-80:])
            time.sleep(0.3)
            code, _ = proxy.stop()
            self.assertEqual(code, 0, proxy.stderr_lines)
        finally:
            origin.close()
        with open(capture.name, "rb") as f:
            recs = records(f.read())
        self.assertEqual([path for path, _ in origin.requests], ["/one", "/two?x=1", "/upload", "/big", "/trailers"])
        self.assertEqual(origin.requests[0][1][":authority"], "localhost:%d" % origin.port)
        http = [r for r in recs if r["type"] == "envelope" and r["protocol"] == "http" and not r.get("overlay")]
        http = [r for r in http if r["message"].get("method") != "CONNECT" and "synthesized" not in r.get("tags", {})]
        reqs = [r for r in http if r["direction"] == "send" and r.get("variant") != "modified"]
        self.assertEqual([r["message"]["version"] for r in reqs], ["HTTP/1.1"] * 5)
        self.assertTrue(base64.b64decode(reqs[0]["raw"]).startswith(b"GET /one HTTP/1.1\r\n"))
        variants = [r for r in http if r.get("variant") == "modified"]
        self.assertEqual(len(variants), 5)
        self.assertTrue(all(v["message"]["version"] == "HTTP/2" and v["tags"]["translated"] == "HTTP/1.1 to HTTP/2"
                            for v in variants))
        resps = [r for r in http if r["direction"] == "receive"]
        self.assertEqual([r["message"]["version"] for r in resps], ["HTTP/2"] * 5)
        upload = [r for r in reqs if r["message"]["path"] == "/upload"][0]
        self.assertEqual(len(body_of(upload["message"])), 3 << 20)
        # The refused handshake and the one that worked are both recorded.
        hs = [r for r in recs if r["type"] == "envelope" and r["protocol"] == "tls-handshake"
              and r["direction"] == "receive"]
        self.assertTrue(any(a["name"] == "tls_handshake_failed" for h in hs for a in h.get("anomalies", [])))
        self.assertTrue(any(h["message"].get("alpn") == "h2" for h in hs))


if __name__ == "__main__":
    unittest.main()
