"""HTTP/2 through `sluice proxy`: curl --http2 and nghttp over TLS (CONNECT, ALPN h2 on both legs) and h2c
with prior knowledge (reverse:http://) against a loopback h2 origin (python3-h2); flow control past the
windows, trailers, one slow stream beside 50 quick ones; Python grpc (python3-grpcio) unary, server
streaming, client streaming and bidirectional calls with an error status and large messages, through
reverse:http:// (h2c) and regular (TLS, the client going through CONNECT); the stream's envelopes."""
import base64
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest
import warnings
from concurrent import futures

import grpc

sys.path.insert(0, os.path.dirname(__file__))
from support import ROOT, Proxy, byte_member, records  # noqa: E402
from test_tls import PkiCase  # noqa: E402
from h2server import SSE_EVENTS, H2Server  # noqa: E402

warnings.simplefilter("ignore", ResourceWarning)


def envelopes(recs, protocol, overlay=""):
    return [r for r in recs if r["type"] == "envelope" and r["protocol"] == protocol and r.get("overlay", "") == overlay]


def body_of(m):
    return byte_member(m.get("body", ""))


def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", "20", *args], capture_output=True, timeout=60)


class Http2(PkiCase):
    def setUp(self):
        self.tls_origin = H2Server(self.pki.cert, self.pki.key)
        self.h2c_origin = H2Server()

    def tearDown(self):
        self.tls_origin.close()
        self.h2c_origin.close()

    def stop(self, proxy):
        time.sleep(0.3)
        code, out = proxy.stop()
        self.assertEqual(code, 0)
        return records(out)

    def test_curl_http2_through_connect_is_h2_on_both_legs(self):
        proxy = Proxy("--mode", "regular@0", "--server-ca", self.pki.ca)
        url = "https://localhost:%d" % self.tls_origin.port
        p = curl("--http2", "-x", "http://127.0.0.1:%d" % proxy.port, "--cacert", self.sluice_ca,
                 "-w", "\\n%{http_version}", url + "/hello?x=1")
        self.assertEqual(p.stdout, b"h2 hello from /hello?x=1\n2", p.stderr)
        big = curl("--http2", "-x", "http://127.0.0.1:%d" % proxy.port, "--cacert", self.sluice_ca, url + "/big")
        self.assertEqual(big.stdout, b"x" * (1 << 20))  # past every flow-control window
        with tempfile.NamedTemporaryFile() as f:
            f.write(os.urandom(3 << 20))
            f.flush()
            up = curl("--http2", "-x", "http://127.0.0.1:%d" % proxy.port, "--cacert", self.sluice_ca,
                      "--data-binary", "@" + f.name, url + "/upload")
        self.assertEqual(up.stdout, b"h2 hello from /upload got %d" % (3 << 20))
        recs = self.stop(proxy)
        hs = envelopes(recs, "tls-handshake")
        self.assertTrue(hs and all(h["message"]["alpn"] == "h2" for h in hs))
        http = envelopes(recs, "http")
        reqs = [r for r in http if r["direction"] == "send" and r["message"]["version"] == "HTTP/2"]
        self.assertEqual([r["message"]["path"] for r in reqs], ["/hello?x=1", "/big", "/upload"])
        self.assertEqual(reqs[0]["message"]["scheme"], "https")
        self.assertEqual(reqs[0]["message"]["authority"], "localhost:%d" % self.tls_origin.port)
        resp = [r for r in http if r["direction"] == "receive" and r["flow_id"] == reqs[1]["flow_id"]][0]
        self.assertEqual(resp["message"]["status"], 200)
        self.assertEqual(len(body_of(resp["message"])), 1 << 20)
        # The DATA frames are overlays, each exactly a frame: 9 bytes of header, then its payload.
        frames = [base64.b64decode(r["raw"]) for r in envelopes(recs, "http", "h2-frame")
                  if r["flow_id"] == reqs[1]["flow_id"] and r["direction"] == "receive"]
        self.assertEqual(sum(len(f) - 9 for f in frames), 1 << 20)
        self.assertTrue(all(f[3] == 0 and int.from_bytes(f[:3], "big") == len(f) - 9 for f in frames))
        # The request's raw bytes are its frames as the client sent them: a HEADERS frame first.
        raw = base64.b64decode(reqs[0]["raw"])
        self.assertEqual(raw[3], 1)

    def test_h2c_with_prior_knowledge_to_a_reverse_target(self):
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % self.h2c_origin.port)
        p = curl("--http2-prior-knowledge", "http://127.0.0.1:%d/plain" % proxy.port)
        self.assertEqual(p.stdout, b"h2 hello from /plain", p.stderr)
        n = subprocess.run(["nghttp", "-v", "http://127.0.0.1:%d/trailers" % proxy.port], capture_output=True,
                           timeout=30)
        self.assertIn(b"recv (stream_id=13) x-checksum: abc123", n.stdout)  # the trailer came through
        recs = self.stop(proxy)
        resp = [r for r in envelopes(recs, "http") if r["direction"] == "receive"]
        self.assertEqual([r["message"]["status"] for r in resp], [200, 200])
        self.assertEqual(resp[1]["message"]["trailers"], [["x-checksum", "abc123"]])
        self.assertEqual([path for path, _ in self.h2c_origin.requests], ["/plain", "/trailers"])

    def test_an_event_stream_over_h2_is_recorded_event_by_event(self):
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % self.h2c_origin.port)
        p = curl("--http2-prior-knowledge", "-N", "http://127.0.0.1:%d/events" % proxy.port)
        self.assertEqual(p.stdout, SSE_EVENTS, p.stderr)
        time.sleep(0.3)
        code, out = proxy.stop()
        self.assertEqual(code, 0)
        recs = records(out)
        sse = envelopes(recs, "sse")
        self.assertEqual([(r["message"]["id"], r["message"]["event"], r["message"]["data"]) for r in sse],
                         [("1", "tick", "one"), ("", "", "two\nlines")])
        self.assertEqual([base64.b64decode(r["raw"]) for r in sse],
                         [b"id: 1\nevent: tick\ndata: one\n\n", b"data: two\ndata: lines\n\n"])
        resp = [r for r in envelopes(recs, "http") if r["direction"] == "receive"]
        self.assertEqual(body_of(resp[0]["message"]), SSE_EVENTS)  # and the response whole beside them
        self.assertTrue(all(r["flow_id"] == resp[0]["flow_id"] for r in sse))
        self.assertLess(max(r["seq"] for r in sse), resp[0]["seq"])
        # With a step, each event is a unit: one dropped, one changed, the comment kept, in order.
        step = "/usr/bin/python3 %s/examples/steps/drop_sse.py tick two TWO" % ROOT
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % self.h2c_origin.port, "--step", step)
        p = curl("--http2-prior-knowledge", "-N", "http://127.0.0.1:%d/events" % proxy.port)
        self.assertEqual(p.stdout, b": keep-alive\n\ndata: TWO\ndata: lines\n\n", p.stderr)
        live = envelopes(self.stop(proxy), "sse")
        self.assertEqual([(r["message"]["data"], r["variant"], r.get("tags", {}).get("verdict")) for r in live],
                         [("one", "original", "drop"), ("two\nlines", "original", None),
                          ("TWO\nlines", "modified", None)])

    def test_a_slow_stream_holds_no_other(self):
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % self.h2c_origin.port)
        base = "http://127.0.0.1:%d" % proxy.port
        urls = [base + "/slow/1"] + [base + "/quick/%d" % i for i in range(50)]
        n = subprocess.run(["nghttp", "-n", "-s", "-m", "1", *urls], capture_output=True, timeout=60)
        self.assertEqual(n.returncode, 0, n.stderr)
        # nghttp -s: one line per stream with its responseEnd, all on one connection.
        ends = {}
        for line in n.stdout.decode().splitlines():
            m = re.match(r"\s*\d+\s+\+([\d.]+)(us|ms|s)\s+\S+\s+\S+\s+200\s+\d+\s+(\S+)$", line)
            if m:
                v = float(m.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[m.group(2)]
                ends[m.group(3)] = v
        self.assertEqual(len(ends), 51, n.stdout.decode())
        quick = [v for k, v in ends.items() if k.startswith("/quick")]
        self.assertLess(max(quick), 1.0)  # well under the slow stream's 2 s
        self.assertGreaterEqual(ends["/slow/1"], 2.0)
        recs = self.stop(proxy)
        # Each stream ends as soon as it is over on both legs, not with the connection.
        stream_of = {r["message"]["path"]: r["stream_id"] for r in envelopes(recs, "http") if r["direction"] == "send"}
        self.assertEqual(len(stream_of), 51)
        order = [r["stream_id"] for r in recs if r["type"] == "end"]
        closes = {r["stream_id"]: r for r in recs if r["type"] == "end"}
        for path, sid in stream_of.items():
            self.assertEqual(closes[sid]["reason"], "complete", path)
            self.assertGreater(closes[sid]["bytes_received"], 0, path)
        slow = order.index(stream_of["/slow/1"])
        self.assertGreater(slow, max(order.index(sid) for path, sid in stream_of.items() if path != "/slow/1"))
        self.assertEqual(order[-1], recs[-1]["stream_id"])  # and the connection's end comes last
        self.assertNotIn(".", order[-1])

    def test_a_forbidden_header_resets_that_stream_only_and_is_named(self):
        import socket
        import h2.config
        import h2.connection
        import h2.events
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % self.h2c_origin.port)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, validate_outbound_headers=False, normalize_outbound_headers=False))
        conn.initiate_connection()
        base = [(":method", "GET"), (":scheme", "http"), (":authority", "127.0.0.1"), (":path", "/bad")]
        conn.send_headers(1, base + [("Bad-Upper-Case", "1")], end_stream=True)
        conn.send_headers(3, [(k, "/good" if k == ":path" else v) for k, v in base], end_stream=True)
        reset, answered = None, b""
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
            sock.sendall(conn.data_to_send())
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not (reset and answered):
                data = sock.recv(65536)
                if not data:
                    break
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.StreamReset) and ev.stream_id == 1:
                        reset = ev.error_code
                    if isinstance(ev, h2.events.DataReceived) and ev.stream_id == 3:
                        answered += ev.data
                        conn.acknowledge_received_data(ev.flow_controlled_length, 3)
                sock.sendall(conn.data_to_send())
        self.assertEqual(reset, 1)  # PROTOCOL_ERROR, on that stream
        self.assertEqual(answered, b"h2 hello from /good")  # the connection and its other streams go on
        recs = self.stop(proxy)
        bad = [r for r in envelopes(recs, "http") if r.get("anomalies")]
        self.assertEqual([a["name"] for r in bad for a in r["anomalies"]], ["h2_bad_header"], bad)
        self.assertIn("invalid http header", bad[0]["anomalies"][0]["detail"].lower())
        closes = {r["stream_id"]: r for r in recs if r["type"] == "end"}
        good = [r for r in envelopes(recs, "http") if r["direction"] == "send" and r["message"]["path"] == "/good"]
        self.assertEqual(closes[bad[0]["stream_id"]]["reason"], "reset")
        self.assertEqual(closes[good[0]["stream_id"]]["reason"], "complete")
        self.assertEqual([path for path, _ in self.h2c_origin.requests], ["/good"])  # never forwarded


# ---- gRPC ---------------------------------------------------------------------------------------------

BIG = b"m" * (3 << 20)  # over the default flow-control windows


def unary(request, context):
    if request == b"fail":
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no such thing")
    return b"echo:" + request


def server_stream(request, context):
    for i in range(3):
        yield b"%s-%d" % (request, i)


def client_stream(requests, context):
    return b"+".join(requests)


def bidi(requests, context):
    for r in requests:
        yield r.upper()


class GrpcServer:
    def __init__(self, credentials=None):
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                                  options=[("grpc.max_receive_message_length", 16 << 20),
                                           ("grpc.max_send_message_length", 16 << 20)])
        handlers = {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
        }
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))
        addr = "127.0.0.1:0"
        self.port = self.server.add_secure_port(addr, credentials) if credentials else self.server.add_insecure_port(addr)
        self.server.start()

    def close(self):
        self.server.stop(0)


def exercise(test, channel):
    call = lambda kind, name: getattr(channel, kind)("/test.Echo/" + name)  # noqa: E731
    test.assertEqual(call("unary_unary", "Unary")(b"hi", timeout=10), b"echo:hi")
    test.assertEqual(call("unary_unary", "Unary")(BIG, timeout=20), b"echo:" + BIG)
    with test.assertRaises(grpc.RpcError) as err:
        call("unary_unary", "Unary")(b"fail", timeout=10)
    test.assertEqual(err.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
    test.assertEqual(err.exception.details(), "no such thing")
    test.assertEqual(list(call("unary_stream", "ServerStream")(b"s", timeout=10)), [b"s-0", b"s-1", b"s-2"])
    test.assertEqual(call("stream_unary", "ClientStream")(iter([b"a", b"b", b"c"]), timeout=10), b"a+b+c")
    test.assertEqual(list(call("stream_stream", "Bidi")(iter([b"x", b"y"]), timeout=10)), [b"X", b"Y"])


def check_grpc_stream(test, recs):
    g = envelopes(recs, "grpc")
    starts = [r["message"] for r in g if r["message"]["kind"] == "start"]
    test.assertEqual([(s["service"], s["method"]) for s in starts],
                     [("test.Echo", m) for m in ("Unary", "Unary", "Unary", "ServerStream", "ClientStream", "Bidi")])
    ends = [r["message"] for r in g if r["message"]["kind"] == "end"]
    test.assertEqual([e["status"] for e in ends], [0, 0, 3, 0, 0, 0])
    test.assertEqual(ends[2]["message"], "no such thing")
    data = [r for r in g if r["message"]["kind"] == "data"]
    sizes = sorted(len(byte_member(r["message"]["payload"])) for r in data)
    test.assertEqual(sizes[-2:], [len(BIG), len(BIG) + 5])  # the big request and its echo, whole
    by_flow = {}
    for r in data:
        by_flow.setdefault(r["flow_id"], []).append((r["direction"], r["message"]["payload"]))
    test.assertIn([("send", "a"), ("send", "b"), ("send", "c"), ("receive", "a+b+c")], by_flow.values())


def record_grpc_session(test, server):
    """(exit code, stream) of a proxy in reverse:http:// (h2c) mode in front of `server` while
    exercise() runs through it."""
    proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % server.port)
    with grpc.insecure_channel("127.0.0.1:%d" % proxy.port,
                               options=[("grpc.max_receive_message_length", 16 << 20)]) as ch:
        exercise(test, ch)
    time.sleep(0.3)
    return proxy.stop()


class Grpc(PkiCase):
    def test_h2c_through_reverse_mode(self):
        server = GrpcServer()
        try:
            code, out = record_grpc_session(self, server)
        finally:
            server.close()
        self.assertEqual(code, 0)
        check_grpc_stream(self, records(out))

    def test_gzip_messages_are_inflated_for_the_view(self):
        server = GrpcServer()
        try:
            proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % server.port)
            with grpc.insecure_channel("127.0.0.1:%d" % proxy.port) as ch:
                text = b"zip me " * 200
                self.assertEqual(ch.unary_unary("/test.Echo/Unary")(text, timeout=10, compression=grpc.Compression.Gzip),
                                 b"echo:" + text)
            time.sleep(0.3)
            code, out = proxy.stop()
        finally:
            server.close()
        self.assertEqual(code, 0)
        sent = [r for r in envelopes(records(out), "grpc") if r["message"]["kind"] == "data" and r["direction"] == "send"]
        self.assertEqual(len(sent), 1)
        self.assertTrue(sent[0]["message"]["compressed"])
        self.assertEqual(sent[0]["message"]["payload"], (b"zip me " * 200).decode())  # inflated
        self.assertLess(len(base64.b64decode(sent[0]["raw"])), 200)  # the wire kept it compressed
        self.assertFalse(sent[0].get("anomalies"))

    def test_tls_through_connect(self):
        with open(self.pki.cert, "rb") as c, open(self.pki.key, "rb") as k:
            creds = grpc.ssl_server_credentials([(k.read(), c.read())])
        server = GrpcServer(creds)
        try:
            proxy = Proxy("--mode", "regular@0", "--server-ca", self.pki.ca)
            with open(self.sluice_ca, "rb") as f:
                client_creds = grpc.ssl_channel_credentials(f.read())
            with grpc.secure_channel("localhost:%d" % server.port, client_creds,
                                     options=[("grpc.http_proxy", "http://127.0.0.1:%d" % proxy.port),
                                              ("grpc.max_receive_message_length", 16 << 20)]) as ch:
                exercise(self, ch)
            time.sleep(0.3)
            code, out = proxy.stop()
        finally:
            server.close()
        self.assertEqual(code, 0)
        recs = records(out)
        self.assertTrue(any(r["message"]["method"] == "CONNECT" for r in envelopes(recs, "http")
                            if r["direction"] == "send"))
        check_grpc_stream(self, recs)




def ws_frame(opcode, payload, mask=b"\x01\x02\x03\x04", fin=True):
    n = len(payload)
    length = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
    return bytes([(0x80 if fin else 0) | opcode]) + length + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class WebSocketOverHttp2(unittest.TestCase):
    """RFC 8441: an extended CONNECT (:protocol websocket) on an HTTP/2 connection, through reverse:http://
    (h2c both ways) to an origin that allows it; frames both ways recorded one `ws` envelope each."""

    def session(self, *proxy_args):
        """An extended CONNECT through the proxy: text "hello", 400 binary bytes, a fragmented text
        message, then a close. Returns (status, bytes echoed back, records)."""
        import socket
        import h2.connection
        import h2.config
        import h2.events
        import h2.settings
        origin = H2Server()
        try:
            proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % origin.port, *proxy_args)
            sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
            conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
            conn.initiate_connection()
            sock.sendall(conn.data_to_send())
            # The proxy allows extended CONNECT once the origin has said it does (a later SETTINGS).
            deadline = time.time() + 10
            while not conn.remote_settings.enable_connect_protocol and time.time() < deadline:
                conn.receive_data(sock.recv(65536))
                sock.sendall(conn.data_to_send())
            self.assertEqual(conn.remote_settings.enable_connect_protocol, 1)
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                                    (":path", "/chat"), (":authority", "127.0.0.1:%d" % proxy.port),
                                    ("sec-websocket-version", "13")])
            conn.send_data(sid, ws_frame(1, b"hello") + ws_frame(2, b"\x00\x01" * 200) +
                           ws_frame(1, b"frag", fin=False) + ws_frame(0, b"mented"))
            sock.sendall(conn.data_to_send())
            status, echoed = None, b""
            want = 7 + 4 + 400 + 6 + 8
            while len(echoed) < want and time.time() < deadline:
                for ev in conn.receive_data(sock.recv(65536)):
                    if isinstance(ev, h2.events.ResponseReceived):
                        status = dict(ev.headers)[b":status"]
                    elif isinstance(ev, h2.events.DataReceived):
                        echoed += ev.data
                        conn.acknowledge_received_data(ev.flow_controlled_length, sid)
                sock.sendall(conn.data_to_send())
            conn.send_data(sid, ws_frame(8, b"\x03\xe8bye"), end_stream=True)
            sock.sendall(conn.data_to_send())
            time.sleep(0.5)
            sock.close()
            time.sleep(0.3)
            code, out = proxy.stop()
            self.assertEqual(code, 0)
            return status, echoed, records(out)
        finally:
            origin.close()

    def test_a_step_rewrites_a_message_over_extended_connect(self):
        step = "/usr/bin/python3 %s/examples/steps/rewrite_ws.py hello howdy" % ROOT
        status, echoed, recs = self.session("--step", step)
        self.assertEqual(status, b"200")
        # The client's message was changed on its way (masked again); the origin echoed the change.
        self.assertEqual(echoed[:7], b"\x81\x05howdy")
        self.assertEqual(echoed[7:11 + 400], b"\x82\x7e\x01\x90" + b"\x00\x01" * 200)
        ws = [r for r in envelopes(recs, "ws") if r.get("modified_by") == "step:rewrite_ws.py"]
        self.assertEqual([(r["direction"], body_of_ws(r["message"])) for r in ws], [("send", b"howdy")])
        self.assertTrue(ws[0]["message"]["masked"])

    def test_extended_connect_is_forwarded_and_its_frames_recorded(self):
        status, echoed, recs = self.session()
        self.assertEqual(status, b"200")
        self.assertEqual(echoed[:7], b"\x81\x05hello")
        http = envelopes(recs, "http")
        self.assertEqual(http[0]["message"]["method"], "CONNECT")
        flow = http[0]["flow_id"]
        ws = [r for r in envelopes(recs, "ws") if r["flow_id"] == flow]
        sent = [r["message"] for r in ws if r["direction"] == "send"]
        got = [r["message"] for r in ws if r["direction"] == "receive"]
        self.assertEqual([m["opcode"] for m in sent], [1, 2, 1, 0, 8])
        self.assertEqual(body_of_ws(sent[0]), b"hello")
        self.assertTrue(all(m["masked"] for m in sent))
        self.assertEqual(body_of_ws(sent[3]), b"fragmented")  # the message, reassembled for the view
        self.assertEqual(sent[4]["close_code"], 1000)
        self.assertEqual([m["opcode"] for m in got[:4]], [1, 2, 1, 0])
        self.assertFalse(any(m["masked"] for m in got))
        # The frames come after the CONNECT's request and response, in the flow's order.
        seqs = [r["seq"] for r in recs if r.get("flow_id") == flow and r["type"] == "envelope"]
        self.assertEqual(seqs, sorted(seqs))
        self.assertEqual([r["protocol"] for r in recs if r.get("flow_id") == flow][:2], ["http", "http"])


def body_of_ws(m):
    return byte_member(m.get("payload", ""))


if __name__ == "__main__":
    unittest.main(verbosity=2)
