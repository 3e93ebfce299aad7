"""Headless Chromium through `sluice proxy` (regular mode, TLS intercepted): a loopback HTTPS page with a
script, an image and a stylesheet loads, the script runs, and every request is in the stream; a page
that opens a WebSocket and an EventSource gets their messages, and both appear in the stream; with step
programs (--step) the page gets the changed messages and not the dropped event.

Chromium trusts our CA by its SPKI hash (`sluice ca spki`, --ignore-certificate-errors-spki-list),
which works because the proxy sends the CA after the leaf. --proxy-bypass-list=<-loopback> makes
Chromium send loopback traffic through the proxy at all (it bypasses it by default)."""
import base64
import http.server
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
import threading
import unittest
import urllib.parse
import warnings

sys.path.insert(0, os.path.dirname(__file__))
from support import ROOT, SLUICE, TEST_ENV, Proxy, records, serve_hello  # noqa: E402

STEPS = os.path.join(ROOT, "examples", "steps")
from test_tls import Pki  # noqa: E402
from test_websocket import EchoServer  # noqa: E402

warnings.simplefilter("ignore", ResourceWarning)

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
FILES = {
    "/": ("text/html", b'<!doctype html><html><head><link rel="stylesheet" href="/style.css">'
                       b'<script src="/app.js"></script></head><body><img src="/pixel.png" id="img">'
                       b'<p id="out">waiting</p></body></html>'),
    "/app.js": ("text/javascript", b'window.addEventListener("load", () => { document.getElementById("out")'
                                   b'.textContent = "script ran, image " + document.getElementById("img")'
                                   b'.naturalWidth + "px"; });'),
    "/style.css": ("text/css", b"p { color: teal }"),
    "/pixel.png": ("image/png", PNG),
}


class Site(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        kind, body = FILES.get(self.path, ("text/plain", b"not found"))
        self.send_response(200 if self.path in FILES else 404)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


LIVE_PAGE = """<!doctype html><html><body><script>
const got = {};
function report() {
  if (got.ws && got.sse)
    fetch("/report?ws=" + encodeURIComponent(got.ws) + "&sse=" + encodeURIComponent(got.sse) +
          "&beat=" + (got.beat || "none"));
}
const ws = new WebSocket("wss://localhost:%d/live");
ws.onopen = () => ws.send("hello from chromium");
ws.onmessage = (m) => { got.ws = m.data; ws.close(); report(); };
const es = new EventSource("/events");
es.addEventListener("heartbeat", (m) => { got.beat = m.data; });
es.onmessage = (m) => { got.sse = m.data; es.close(); report(); };
</script></body></html>"""


class Live(http.server.BaseHTTPRequestHandler):
    """The page, its event stream, and /report, where the page says what its WebSocket and EventSource
    got (the test waits for that rather than for a timer)."""
    protocol_version = "HTTP/1.1"
    ws_port = 0
    report = None
    reported = threading.Event()

    def do_GET(self):
        if self.path == "/events":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"event: heartbeat\ndata: beat\n\nid: 1\ndata: first event\n\n")
            self.wfile.flush()
            time.sleep(1)
            return
        if self.path.startswith("/report?"):
            Live.report = urllib.parse.parse_qs(self.path.split("?", 1)[1])
            Live.reported.set()
        body = (LIVE_PAGE % Live.ws_port).encode() if self.path == "/" else b"ok"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


CHROMIUM = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium(d, proxy_port, spki, url):
    return subprocess.run(
        CHROMIUM + ["--user-data-dir=" + os.path.join(d, "profile"),
                    "--proxy-server=http://127.0.0.1:%d" % proxy_port, "--proxy-bypass-list=<-loopback>",
                    "--ignore-certificate-errors-spki-list=" + spki, "--virtual-time-budget=5000",
                    "--dump-dom", url],
        capture_output=True, timeout=120)


def summary(recs):
    """One line per record (what a failure report needs to say where a load stalled)."""
    lines = []
    for r in recs:
        m = r.get("message")
        m = m if isinstance(m, dict) else {"code": m}
        what = m.get("method", "") + " " + m.get("path", "") if "method" in m else m.get("status", m.get("code", ""))
        lines.append("%s %s %s %s %s" % (r.get("type"), r.get("flow_id"), r.get("protocol", r.get("kind", "")),
                                         r.get("direction", ""), what))
    return "\n".join(lines)


class Chromium(unittest.TestCase):
    def live_page(self, *proxy_args):
        """Loads the live page through the proxy; returns what the page reported and the records."""
        Live.report = None
        Live.reported.clear()
        with tempfile.TemporaryDirectory() as d:
            pki = Pki(d)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(pki.cert, pki.key)
            ws_server = EchoServer("deflate", ctx)
            Live.ws_port = ws_server.port
            site = serve_hello(pki.cert, pki.key, handler=Live)
            spki = subprocess.run([SLUICE, "ca", "spki"], capture_output=True, check=True, env=TEST_ENV,
                                  timeout=30).stdout.decode().strip()
            proxy = Proxy("--mode", "regular@0", "--server-ca", pki.ca, *proxy_args)
            browser = subprocess.Popen(
                CHROMIUM + ["--user-data-dir=" + os.path.join(d, "profile"),
                            "--proxy-server=http://127.0.0.1:%d" % proxy.port, "--proxy-bypass-list=<-loopback>",
                            "--ignore-certificate-errors-spki-list=" + spki,
                            "https://localhost:%d/" % site.server_address[1]],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            reported = Live.reported.wait(60)
            browser.terminate()
            _, browser_err = browser.communicate(timeout=30)
            time.sleep(0.3)
            code, out = proxy.stop()
            site.shutdown()
            ws_server.close()
        self.assertEqual(code, 0)
        recs = records(out)
        if not reported:
            self.fail(browser_err.decode(errors="replace")[-2000:] + "\n" + summary(recs))
        return Live.report, recs

    def test_websocket_and_event_source_through_the_proxy(self):
        report, recs = self.live_page()
        self.assertEqual(report, {"ws": ["hello from chromium"], "sse": ["first event"], "beat": ["beat"]})
        ws = [r for r in recs if r["type"] == "envelope" and r["protocol"] == "ws"]
        texts = [(r["direction"], r["message"]["payload"]) for r in ws if r["message"]["opcode"] == 1]
        self.assertEqual(texts, [("send", "hello from chromium"), ("receive", "hello from chromium")])
        self.assertTrue(all(r["message"]["compressed"] for r in ws if r["message"]["opcode"] == 1))
        sse = [r for r in recs if r["type"] == "envelope" and r["protocol"] == "sse"]
        self.assertEqual([r["message"]["data"] for r in sse], ["beat", "first event"])

    def test_steps_change_what_the_page_s_websocket_and_event_source_get(self):
        # Through CONNECT and TLS: an event of one type dropped and a word changed in the other's data;
        # a word rewritten in the WebSocket message the page sends (the server echoes the change).
        report, recs = self.live_page(
            "--step", "/usr/bin/python3 %s/drop_sse.py heartbeat first changed" % STEPS,
            "--step", "/usr/bin/python3 %s/rewrite_ws.py hello howdy" % STEPS)
        self.assertEqual(report, {"ws": ["howdy from chromium"], "sse": ["changed event"], "beat": ["none"]})
        sse = [(r["message"]["data"], r.get("variant"), r.get("tags", {}).get("verdict"))
               for r in recs if r["type"] == "envelope" and r["protocol"] == "sse"]
        self.assertEqual(sse, [("beat", "original", "drop"), ("first event", "original", None),
                               ("changed event", "modified", None)])

    def test_a_rule_file_changes_what_the_page_s_websocket_and_event_source_get(self):
        # The same changes as the step programs' above, from a rule file (--rules): the heartbeat event
        # dropped, a word of the other's data and of the page's WebSocket message rewritten.
        with tempfile.TemporaryDirectory() as d:
            rules = os.path.join(d, "rules.json")
            with open(rules, "w") as f:
                json.dump({"rules": [
                    {"protocol": "sse", "filter": "~b beat", "actions": [{"action": "drop"}]},
                    {"name": "sse-word", "protocol": "sse",
                     "actions": [{"action": "replace", "field": "data", "pattern": "first", "replacement": "changed"}]},
                    {"name": "ws-word", "protocol": "websocket", "direction": "request",
                     "actions": [{"action": "replace", "pattern": "hello", "replacement": "howdy", "opcode": "text"}]},
                ]}, f)
            report, recs = self.live_page("--rules", rules)
        self.assertEqual(report, {"ws": ["howdy from chromium"], "sse": ["changed event"], "beat": ["none"]})
        sse = [(r["message"]["data"], r.get("modified_by"), r.get("tags", {}).get("verdict"))
               for r in recs if r["type"] == "envelope" and r["protocol"] == "sse"]
        self.assertEqual(sse, [("beat", None, "drop"), ("first event", None, None), ("changed event", "sse-word", None)])

    def test_a_step_changes_what_an_event_source_gets_over_http2(self):
        # An HTTP/2 origin (ALPN h2 on both legs through CONNECT): the event of one type dropped, the
        # other's data changed; the page reports what its EventSource got as a request of its own.
        from h2server import H2Server
        with tempfile.TemporaryDirectory() as d:
            pki = Pki(d)
            origin = H2Server(pki.cert, pki.key)
            spki = subprocess.run([SLUICE, "ca", "spki"], capture_output=True, check=True, env=TEST_ENV,
                                  timeout=30).stdout.decode().strip()
            proxy = Proxy("--mode", "regular@0", "--server-ca", pki.ca,
                          "--step", "/usr/bin/python3 %s/drop_sse.py tick two TWO" % STEPS)
            browser = subprocess.Popen(
                CHROMIUM + ["--user-data-dir=" + os.path.join(d, "profile"),
                            "--proxy-server=http://127.0.0.1:%d" % proxy.port, "--proxy-bypass-list=<-loopback>",
                            "--ignore-certificate-errors-spki-list=" + spki,
                            "https://localhost:%d/sse-page" % origin.port],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not [p for p, _ in origin.requests if p.startswith("/report")]:
                time.sleep(0.1)
            browser.terminate()
            _, browser_err = browser.communicate(timeout=30)
            code, out = proxy.stop()
            origin.close()
        self.assertEqual(code, 0)
        recs = records(out)
        reports = [p for p, _ in origin.requests if p.startswith("/report")]
        self.assertEqual(reports, ["/report?sse=TWO%0Alines"], browser_err.decode(errors="replace")[-2000:] +
                         "\n" + summary(recs))
        events = [r for r in recs if r["type"] == "envelope" and r["protocol"] == "http" and r["direction"] == "send"
                  and r["message"].get("path") == "/events"]
        self.assertEqual(events[0]["message"]["version"], "HTTP/2")
        sse = [(r["message"]["data"], r["variant"], r.get("tags", {}).get("verdict"))
               for r in recs if r["type"] == "envelope" and r["protocol"] == "sse"]
        self.assertEqual(sse, [("one", "original", "drop"), ("two\nlines", "original", None),
                               ("TWO\nlines", "modified", None)])

    def test_page_with_subresources_loads_through_the_proxy(self):
        with tempfile.TemporaryDirectory() as d:
            pki = Pki(d)
            site = serve_hello(pki.cert, pki.key, handler=Site)
            spki = subprocess.run([SLUICE, "ca", "spki"], capture_output=True, check=True, env=TEST_ENV,
                                  timeout=30).stdout.decode().strip()
            proxy = Proxy("--mode", "regular@0", "--server-ca", pki.ca)
            url = "https://localhost:%d/" % site.server_address[1]
            p = chromium(d, proxy.port, spki, url)
            time.sleep(0.3)
            code, out = proxy.stop()
            site.shutdown()
        self.assertEqual(code, 0)
        self.assertIn(b"script ran, image 1px", p.stdout, p.stderr.decode(errors="replace")[-2000:])
        recs = records(out)
        paths = {r["message"]["path"] for r in recs if r["type"] == "envelope" and r["protocol"] == "http"
                 and r["direction"] == "send" and r["message"].get("scheme") == "https"}
        self.assertTrue({"/", "/app.js", "/style.css", "/pixel.png"} <= paths, paths)
        # Every request to the origin was answered by it (Chromium's own background requests to Google's
        # hosts, which cannot be resolved here, get 502s and are not the page's).
        https_flows = {r["flow_id"]: r["message"]["path"] for r in recs if r["type"] == "envelope"
                       and r["protocol"] == "http" and r["direction"] == "send"
                       and r["message"].get("scheme") == "https"}
        answers = {https_flows[r["flow_id"]]: r["message"]["status"] for r in recs if r["type"] == "envelope"
                   and r["protocol"] == "http" and r["direction"] == "receive" and r["flow_id"] in https_flows}
        self.assertEqual({p: answers.get(p) for p in FILES}, {p: 200 for p in FILES})
        client_hellos = [r for r in recs if r["type"] == "envelope" and r["protocol"] == "tls-handshake"
                         and r["message"]["side"] == "client"]
        self.assertTrue(client_hellos)
        self.assertTrue(all(h["message"]["ja4"].startswith("t13d") for h in client_hellos))
        self.assertTrue(all("h2" in h["message"]["alpn_offered"] for h in client_hellos))
        self.assertTrue(all(h["message"]["alpn"] == "" for h in client_hellos))  # the origin chose none


if __name__ == "__main__":
    unittest.main(verbosity=2)
