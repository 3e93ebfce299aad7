"""Server-Sent Events through `sluice proxy`: each event reaches the client before the server sends the
next (measured), and the stream holds one `sse` envelope per event."""
import http.server
import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from support import Proxy, records  # noqa: E402

EVENTS = 4


class Events(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sent_at = {}  # event number -> time.monotonic() just before it was written

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(EVENTS):
            if i:
                time.sleep(0.2)
            block = ("id: %d\r\nevent: tick\r\ndata: event %d\r\ndata: second line\r\n\r\n" % (i, i)).encode()
            Events.sent_at[i] = time.monotonic()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args):
        pass


class Sse(unittest.TestCase):
    def test_events_are_forwarded_as_they_come_and_recorded_one_by_one(self):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Events)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.server_address[1]
        proxy = Proxy("--mode", "regular@0")
        received_at = {}
        got = b""
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            s.sendall(b"GET http://127.0.0.1:%d/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                      b"Accept: text/event-stream\r\n\r\n" % (port, port))
            deadline = time.monotonic() + 10
            while len(received_at) < EVENTS and time.monotonic() < deadline:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
                for i in range(EVENTS):
                    if i not in received_at and b"data: event %d\r\n" % i in got:
                        received_at[i] = time.monotonic()
        self.assertEqual(sorted(received_at), list(range(EVENTS)), got)
        for i in range(EVENTS - 1):
            # Event i was at the client before the server even wrote event i+1 (200 ms later).
            self.assertLess(received_at[i], Events.sent_at[i + 1], i)
        time.sleep(0.2)
        code, out = proxy.stop()
        server.shutdown()
        recs = records(out)
        sse = [r for r in recs if r["type"] == "envelope" and r["protocol"] == "sse"]
        self.assertEqual([(e["message"]["id"], e["message"]["event"], e["message"]["data"]) for e in sse],
                         [(str(i), "tick", "event %d\nsecond line" % i) for i in range(EVENTS)])
        resp = [r for r in recs if r["type"] == "envelope" and r["protocol"] == "http" and r["direction"] == "receive"]
        self.assertEqual({e["flow_id"] for e in sse}, {resp[0]["flow_id"]})
        self.assertEqual(resp[0]["tags"].get("streamed"), "true")


if __name__ == "__main__":
    unittest.main(verbosity=2)
