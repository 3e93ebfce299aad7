"""`sluice export` and `sluice import`: HAR 1.2 validated by the npm package har-validator, the round trip
capture -> HAR -> capture, HAR files shaped as Chrome, Firefox and mitmproxy write them, and curl and
HTTPie commands that a loopback server receives exactly as the captured request."""
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
from support import ROOT, SLUICE, records  # noqa: E402
import golden  # noqa: E402

VALIDATOR = os.path.join(ROOT, ".tools", "node_modules", "har-validator")


def write(path, records):
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return path


def sluice(*args, input=None):
    p = subprocess.run([SLUICE, *args], input=input, capture_output=True, timeout=60)
    assert p.returncode == 0, (args, p.stderr)
    return p.stdout


def validate_har(path):
    script = ("const v = require(%s); const d = JSON.parse(require('fs').readFileSync(%s, 'utf8'));"
              "v.har(d).then(() => console.log('valid')).catch(e => { console.log(JSON.stringify(e.errors)); "
              "process.exit(1); });" % (json.dumps(VALIDATOR), json.dumps(path)))
    return subprocess.run(["node", "-e", script], capture_output=True, timeout=60)


def exchanges(stream_bytes):
    """(method, url, headers, request body, status, response body) per flow, from a stream (read through
    `sluice show --jsonl`, which writes every body out)."""
    recs = records(stream_bytes)
    out = {}
    for r in recs:
        if r["type"] != "envelope" or r["protocol"] != "http" or r.get("variant", "original") != "original":
            continue
        m = r["message"]
        x = out.setdefault(r["flow_id"], {})
        if m["kind"] == "request":
            x.update(method=m["method"], url="%s://%s%s" % (m["scheme"], m["authority"], m["path"]),
                     headers=[tuple(h) for h in m["headers"]], body=m.get("body", ""))
        elif m["status"] >= 200:
            x.update(status=m["status"], response_body=m.get("body", ""),
                     response_headers=[tuple(h) for h in m["headers"]])
    return out


class Receiver:
    """A loopback HTTP server that keeps the exact bytes of each request it gets."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.received = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(body) < length:
                    body += conn.recv(65536)
                self.received.append((head, body))
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    def close(self):
        self.sock.close()


class Export(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.capture = write(os.path.join(self.tmp.name, "golden.jsonl"), golden.records())

    def tearDown(self):
        self.tmp.cleanup()

    def test_har_is_valid_and_carries_websocket_and_extras(self):
        har = os.path.join(self.tmp.name, "out.har")
        sluice("export", "--format", "har", "-w", har, self.capture)
        p = validate_har(har)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with open(har) as f:
            doc = json.load(f)
        entries = {e["_sluice"]["flow_id"]: e for e in doc["log"]["entries"]}
        self.assertEqual(entries["f5"]["_webSocketMessages"][0]["data"], "hello ws")
        self.assertEqual(entries["f8"]["_sluice"]["anomalies"][0]["name"], "cl_te_conflict")
        self.assertEqual(entries["f2"]["request"]["postData"]["text"], "item=42&qty=1")
        self.assertEqual(entries["f4"]["response"]["status"], 0)  # no answer: as browsers write it
        self.assertEqual(entries["f4"]["response"]["_error"], "no answer within 60 s")
        self.assertEqual(entries["f1"]["time"], 1000)  # timings from the envelopes' times

    def test_binary_bodies_are_base64(self):
        recs = golden.records()[:1] + [
            golden.env("s", "b1", 0, "send", "http", golden.request("POST", "http", "b.test", "/up", body="x")),
            golden.env("s", "b1", 1, "receive", "http", golden.response(200, "OK", [("Content-Type", "image/png")],
                                                                         {"base64": "iVBORw0KGgr/AA=="}))]
        recs[1]["message"]["body"] = {"base64": "AAEC/w=="}
        cap = write(os.path.join(self.tmp.name, "bin.jsonl"), recs)
        har = os.path.join(self.tmp.name, "bin.har")
        sluice("export", "-w", har, cap)
        self.assertEqual(validate_har(har).returncode, 0)
        with open(har) as f:
            entry = json.load(f)["log"]["entries"][0]
        self.assertEqual(entry["response"]["content"], {"size": 10, "mimeType": "image/png", "text": "iVBORw0KGgr/AA==",
                                                        "encoding": "base64"})
        self.assertEqual(entry["request"]["postData"]["_encoding"], "base64")
        back = exchanges(sluice("import", "--no-compress", har))
        self.assertEqual(back["b1"]["response_body"], {"base64": "iVBORw0KGgr/AA=="})

    def test_round_trip_keeps_methods_urls_headers_bodies(self):
        har = os.path.join(self.tmp.name, "rt.har")
        sluice("export", "-w", har, self.capture)
        before = exchanges(sluice("show", "--jsonl", self.capture))
        after = exchanges(sluice("import", "--no-compress", har))
        self.assertEqual(set(after), set(before))
        for flow, x in before.items():
            self.assertEqual(after[flow], x, flow)

    def test_real_world_hars_import(self):
        chrome = {"log": {"version": "1.2", "creator": {"name": "WebInspector", "version": "537.36"}, "pages": [],
                          "entries": [{
                              "_initiator": {"type": "other"}, "_priority": "VeryHigh", "_resourceType": "document",
                              "cache": {}, "connection": "2345", "pageref": "page_1",
                              "request": {"method": "GET", "url": "https://example.com/a?b=1", "httpVersion": "http/2.0",
                                          "headers": [{"name": ":method", "value": "GET"},
                                                      {"name": "accept", "value": "text/html"}],
                                          "queryString": [{"name": "b", "value": "1"}], "cookies": [],
                                          "headersSize": -1, "bodySize": 0},
                              "response": {"status": 200, "statusText": "", "httpVersion": "http/2.0",
                                           "headers": [{"name": "content-type", "value": "text/html"}], "cookies": [],
                                           "content": {"size": 5, "mimeType": "text/html", "compression": 0,
                                                       "text": "aGVsbG8=", "encoding": "base64"},
                                           "redirectURL": "", "headersSize": -1, "bodySize": -1,
                                           "_transferSize": 120, "_error": None},
                              "serverIPAddress": "93.184.216.34", "startedDateTime": "2026-11-20T10:00:00.123Z",
                              "time": 42.5, "timings": {"blocked": 1.2, "dns": -1, "ssl": -1, "connect": -1,
                                                        "send": 0.1, "wait": 40, "receive": 1.2,
                                                        "_blocked_queueing": 0.8}}]}}
        firefox = {"log": {"version": "1.2", "creator": {"name": "Firefox", "version": "132.0"},
                           "browser": {"name": "Firefox", "version": "132.0"}, "pages": [],
                           "entries": [{
                               "pageref": "page_1", "startedDateTime": "2026-11-20T11:00:00.000+01:00",
                               "request": {"bodySize": 11, "method": "POST", "url": "http://shop.test/cart",
                                           "httpVersion": "HTTP/1.1",
                                           "headers": [{"name": "Host", "value": "shop.test"},
                                                       {"name": "Content-Type", "value": "application/json"}],
                                           "cookies": [], "queryString": [],
                                           "postData": {"mimeType": "application/json", "params": [],
                                                        "text": "{\"item\":42}"},
                                           "headersSize": 120},
                               "response": {"status": 404, "statusText": "Not Found", "httpVersion": "HTTP/1.1",
                                            "headers": [{"name": "Content-Length", "value": "0"}], "cookies": [],
                                            "content": {"mimeType": "text/plain", "size": 0},
                                            "redirectURL": "", "headersSize": 80, "bodySize": 0},
                               "cache": {}, "timings": {"blocked": -1, "dns": 0, "connect": 0, "ssl": 0, "send": 0,
                                                        "wait": 12, "receive": 0},
                               "time": 12, "_securityState": "insecure", "serverIPAddress": "127.0.0.1",
                               "connection": "80"}]}}
        mitmproxy = {"log": {"version": "1.2", "creator": {"name": "mitmproxy", "version": "11.0.0",
                                                           "comment": "mitmproxy version 11.0.0"},
                             "pages": [], "entries": [{
                                 "startedDateTime": "2026-11-20T12:00:00.000000+00:00", "time": 3.2,
                                 "request": {"method": "PUT", "url": "http://api.test/items/7", "httpVersion": "HTTP/1.1",
                                             "cookies": [], "headers": [["Host", "api.test"], ["X-Key", "k"]],
                                             "queryString": [], "headersSize": 60, "bodySize": 0},
                                 "response": {"status": 204, "statusText": "No Content", "httpVersion": "HTTP/1.1",
                                              "cookies": [], "headers": [["Server", "test"]],
                                              "content": {"size": 0, "compression": 0, "mimeType": ""},
                                              "redirectURL": "", "headersSize": 40, "bodySize": 0},
                                 "cache": {}, "timings": {"send": 0, "receive": 0, "wait": 3, "connect": -1,
                                                          "ssl": -1}, "serverIPAddress": "127.0.0.1"}]}}
        cases = [(chrome, ("GET", "https://example.com/a?b=1", 200, "hello", ("accept", "text/html"), "HTTP/2")),
                 (firefox, ("POST", "http://shop.test/cart", 404, "", ("Content-Type", "application/json"), "HTTP/1.1")),
                 (mitmproxy, ("PUT", "http://api.test/items/7", 204, "", ("X-Key", "k"), "HTTP/1.1"))]
        for har, (method, url, status, body, header, version) in cases:
            with self.subTest(creator=har["log"]["creator"]["name"]):
                path = os.path.join(self.tmp.name, "in.har")
                with open(path, "w") as f:
                    json.dump(har, f)
                out = sluice("import", "--no-compress", path)
                recs = [json.loads(l) for l in out.decode().splitlines()]
                self.assertEqual(recs[0]["type"], "header")
                x = list(exchanges(out).values())[0]
                self.assertEqual((x["method"], x["url"], x["status"], x["response_body"]), (method, url, status, body))
                self.assertIn(header, x["headers"])
                self.assertEqual(recs[1]["message"]["version"], version)
                self.assertEqual(recs[1]["tags"], {"imported": "har"})
        if har is firefox:
            self.assertEqual(x["body"], "{\"item\":42}")
        p = subprocess.run([SLUICE, "import", "-"], input=b"{\"not\": \"har\"}", capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn("not a HAR file", p.stderr.decode())
        # A HAR that starts with a UTF-8 byte order mark (some Windows tools write one) imports the same.
        bom = os.path.join(self.tmp.name, "bom.har")
        with open(bom, "w", encoding="utf-8-sig") as f:
            json.dump(firefox, f)
        with open(bom, "rb") as f:
            self.assertTrue(f.read().startswith(b"\xef\xbb\xbf"))
        x = list(exchanges(sluice("import", "--no-compress", bom)).values())[0]
        self.assertEqual((x["method"], x["url"], x["status"]), ("POST", "http://shop.test/cart", 404))

    def check_command(self, fmt, strict_order):
        server = Receiver()
        authority = "127.0.0.1:%d" % server.port
        body = "name=O'Brien&data=\\x00 \x01\x7f%20\u00e9"  # a quote, a backslash, control bytes, UTF-8
        req = golden.request("POST", "http", authority, "/submit?a=1&b=%2F",
                             [("User-Agent", "captured/1.0"), ("Accept-Encoding", "gzip"),
                              ("X-Custom", "Value With  Spaces"), ("content-type", "text/plain; charset=utf-8"),
                              ("X-Empty", ""), ("X-At", "@not-a-file"), ("Content-Length", str(len(body.encode())))],
                             body)
        req["headers"][0] = ["Host", authority]
        cap = write(os.path.join(self.tmp.name, "cmd.jsonl"),
                    [golden.records()[0], golden.env("s", "c", 0, "send", "http", req)])
        script = sluice("export", "--format", fmt, cap).decode()
        self.assertTrue(script.startswith("# c: POST http://%s/submit?a=1&b=%%2F\n" % authority), script)
        p = subprocess.run(["bash", "-c", script], capture_output=True, timeout=60)
        server.close()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.strip(), b"ok")  # the response, as curl prints it
        head, got_body = server.received[0]
        lines = head.decode().split("\r\n")
        self.assertEqual(lines[0], "POST /submit?a=1&b=%2F HTTP/1.1")
        expected = [(k, v) for k, v in req["headers"]]
        got = [tuple(l.split(":", 1)) for l in lines[1:]]
        got = [(k, v[1:] if v.startswith(" ") else v) for k, v in got]
        if strict_order:
            self.assertEqual(got, expected)
        else:
            self.assertEqual(sorted(got), sorted(expected))
        self.assertEqual(got_body, body.encode())

    def test_curl_reproduces_the_request_exactly(self):
        self.check_command("curl", True)

    def test_httpie_reproduces_the_request(self):
        self.check_command("httpie", False)

    def test_commands_list_the_exchanges_har_lists(self):
        har = json.loads(sluice("export", self.capture))
        flows = [e["_sluice"]["flow_id"] for e in har["log"]["entries"]]
        self.assertTrue(flows)
        for fmt in ("curl", "httpie"):
            out = sluice("export", "--format", fmt, self.capture).decode()
            self.assertEqual([l.split(":")[0][2:] for l in out.splitlines() if l.startswith("# ")], flows)

    def test_commands_come_out_as_a_live_stream_brings_their_requests(self):
        """`sluice proxy | sluice export --format curl`: each command comes while the input is still open,
        once per flow, and a stream's end lets its flows be forgotten without losing later ones."""
        header = golden.records()[0]
        req = lambda path: golden.request("GET", "http", "a.test", path)  # noqa: E731
        p = subprocess.Popen([SLUICE, "export", "--format", "curl"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.addCleanup(p.kill)

        def send(*recs):
            p.stdin.write("".join(json.dumps(r) + "\n" for r in recs).encode())
            p.stdin.flush()

        pending = b""

        def next_line():
            nonlocal pending
            deadline = time.monotonic() + 10
            while b"\n" not in pending:
                ready, _, _ = select.select([p.stdout], [], [], max(0, deadline - time.monotonic()))
                self.assertTrue(ready, "no command while the input stays open")
                pending += os.read(p.stdout.fileno(), 65536)
            line, _, pending = pending.partition(b"\n")
            return line.decode() + "\n"

        send(header, golden.env("s1", "s1-0", 0, "send", "http", req("/one")))
        self.assertEqual(next_line(), "# s1-0: GET http://a.test/one\n")
        self.assertIn("http://a.test/one", next_line())
        # The same flow's request again (a second copy of the record) is not a new command.
        send(golden.env("s1", "s1-0", 0, "send", "http", req("/one")),
             golden.env("s1", "s1-1", 1, "send", "http", req("/two")))
        self.assertEqual(next_line(), "# s1-1: GET http://a.test/two\n")
        next_line()
        send({"type": "end", "scope": "stream", "stream_id": "s1", "time": "2026-11-22T00:00:00Z",
              "reason": "closed", "bytes_sent": 0, "bytes_received": 0},
             golden.env("s2", "s2-0", 0, "send", "http", req("/three")))
        self.assertEqual(next_line(), "# s2-0: GET http://a.test/three\n")
        p.stdin.close()
        rest = (pending + p.stdout.read()).decode()
        self.assertEqual(p.wait(timeout=10), 0)
        self.assertEqual(rest.count("\n"), 1)  # the last command, nothing more

    def test_raw_is_the_wire_bytes(self):
        out = sluice("export", "--format", "raw", self.capture)
        self.assertTrue(out.startswith(b"GET /users?id=1 HTTP/1.1\r\n\r\nPOST /cart"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
