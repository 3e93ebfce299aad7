"""`sluice proxy --serve-from`: a curl session recorded once is answered from the capture with the real
server stopped (HTTP, HTTPS through CONNECT, reverse mode); misses get the --on-miss answer; ignored
parameters and form fields match; repeated requests come back in recorded order (or the last, with
--reuse); --refresh-dates moves dates to now."""
import email.utils
import http.server
import os
import subprocess
import sys
import threading
import time
import unittest
import warnings

sys.path.insert(0, os.path.dirname(__file__))
from support import SLUICE, TEST_ENV, Proxy, curl, records, serve_hello  # noqa: E402
from test_tls import PkiCase, origin  # noqa: E402

warnings.simplefilter("ignore", ResourceWarning)


class Counter(http.server.BaseHTTPRequestHandler):
    """Counts the requests it answers ("n=1", "n=2", ...); /dated sends old dates and a cookie."""
    protocol_version = "HTTP/1.1"
    count = 0
    lock = threading.Lock()

    def do_GET(self):
        with Counter.lock:
            Counter.count += 1
            n = Counter.count
        body = ("n=%d %s\n" % (n, self.path)).encode()
        self.send_response(200)
        if self.path == "/dated":
            self.send_header("Expires", "Sun, 06 Nov 1994 09:49:37 GMT")
            self.send_header("Last-Modified", "Sat, 05 Nov 1994 08:49:37 GMT")
            self.send_header("Set-Cookie", "sid=1; Path=/; Expires=Sun, 06-Nov-1994 10:49:37 GMT; HttpOnly")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        out = b"posted " + body + b"\n"
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def date_time_string(self, timestamp=None):
        return "Sun, 06 Nov 1994 08:49:37 GMT" if self.path == "/dated" else super().date_time_string(timestamp)

    def log_message(self, *args):
        pass


def record(urls, *proxy_args, curl_args=()):
    """A capture of curl fetching `urls` (a URL, or a tuple of curl arguments ending in one)."""
    proxy = Proxy("--mode", "regular@0", *proxy_args)
    for u in urls:
        args = (u,) if isinstance(u, str) else u
        p = curl("-x", "http://127.0.0.1:%d" % proxy.port, *curl_args, *args)
        assert p.returncode == 0, p.stderr
    time.sleep(0.2)
    code, out = proxy.stop()
    assert code == 0
    return out


class ServeFrom(unittest.TestCase):
    def setUp(self):
        Counter.count = 0
        self.origin = serve_hello(handler=Counter)
        self.port = self.origin.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.tmp = os.path.join(os.environ.get("TMPDIR", "/tmp"), "sluice-serve-%d-%d.zst" % (os.getpid(), id(self)))

    def tearDown(self):
        self.origin.shutdown()
        self.origin.server_close()
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)

    def capture(self, urls, **kw):
        with open(self.tmp, "wb") as f:
            f.write(record(urls, **kw))
        return self.tmp

    def stop_origin(self):
        self.origin.shutdown()
        self.origin.server_close()

    def serve(self, *args):
        return Proxy("--mode", "regular@0", "--serve-from", self.tmp, *args)

    def get(self, proxy, path, *args):
        return curl("-x", "http://127.0.0.1:%d" % proxy.port, *args, self.url + path)

    def test_recorded_session_replays_with_the_server_stopped(self):
        self.capture([self.url + "/a", self.url + "/b?q=1"])
        self.stop_origin()
        proxy = self.serve()
        self.assertIn("sluice: serving 2 recorded responses (--serve-from)\n", proxy.stderr_lines)
        self.assertEqual(self.get(proxy, "/b?q=1").stdout, b"n=2 /b?q=1\n")
        self.assertEqual(self.get(proxy, "/a").stdout, b"n=1 /a\n")
        miss = self.get(proxy, "/c", "-i")
        self.assertTrue(miss.stdout.startswith(b"HTTP/1.1 502 Bad Gateway\r\n"), miss.stdout)
        self.assertIn(b"sluice: no recorded response matches GET %s/c (--serve-from)" % self.url.encode(), miss.stdout)
        time.sleep(0.2)
        code, out = proxy.stop()
        self.assertEqual(code, 0)
        answers = [r for r in records(out) if r["type"] == "envelope" and r["direction"] == "receive"]
        self.assertEqual([dict(r["tags"]).get("served_from") is not None for r in answers], [True, True, False])
        self.assertEqual(dict(answers[2]["tags"]).get("serve_from"), "miss")
        self.assertEqual([r for r in records(out) if r["type"] == "error"], [])  # nothing was dialled

    def test_on_miss_answers(self):
        self.capture([self.url + "/a"])
        for mode, expect in (("404", b"HTTP/1.1 404 Not Found\r\n"), ("forward", b"HTTP/1.1 200 OK\r\n")):
            proxy = self.serve("--on-miss", mode)
            p = self.get(proxy, "/other", "-i")
            self.assertTrue(p.stdout.startswith(expect), (mode, p.stdout))
            proxy.stop()
        self.assertEqual(Counter.count, 2)  # the recording, and the forwarded miss
        proxy = self.serve("--on-miss", "kill")
        p = self.get(proxy, "/other")
        self.assertEqual(p.returncode, 52, p.stderr)  # curl: empty reply from server
        proxy.stop()

    def test_ignored_parameters_and_form_fields_match(self):
        self.capture([self.url + "/s?q=kettle&ts=1", ("-d", "item=cup&csrf=abc", self.url + "/form")])
        self.stop_origin()
        proxy = self.serve("--ignore-param", "ts", "--ignore-form-field", "csrf")
        self.assertEqual(self.get(proxy, "/s?q=kettle&ts=99").stdout, b"n=1 /s?q=kettle&ts=1\n")
        self.assertEqual(self.get(proxy, "/form", "-d", "item=cup&csrf=zzz").stdout, b"posted item=cup&csrf=abc\n")
        self.assertIn(b"502", self.get(proxy, "/form", "-i", "-d", "item=pot&csrf=abc").stdout)
        proxy.stop()
        proxy = self.serve("--ignore-body")
        self.assertEqual(self.get(proxy, "/form", "-d", "anything").stdout, b"posted item=cup&csrf=abc\n")
        proxy.stop()
        proxy = self.serve("--match", "method,path")  # any host, port, query
        p = curl("-x", "http://127.0.0.1:%d" % proxy.port, "http://elsewhere.test:1/s?other=1")
        self.assertEqual(p.stdout, b"n=1 /s?q=kettle&ts=1\n")
        proxy.stop()
        bad = subprocess.run([SLUICE, "proxy", "--mode", "regular@0", "--serve-from", self.tmp, "--match", "colour"],
                             capture_output=True, env=TEST_ENV, timeout=30)
        self.assertEqual(bad.returncode, 2)
        self.assertIn(b"unknown match part 'colour'", bad.stderr)

    def test_repeated_requests_in_recorded_order_or_the_last_with_reuse(self):
        self.capture([self.url + "/poll", self.url + "/poll", self.url + "/poll"])
        self.stop_origin()
        proxy = self.serve()
        got = [self.get(proxy, "/poll").stdout for _ in range(4)]
        proxy.stop()
        self.assertEqual(got[:3], [b"n=1 /poll\n", b"n=2 /poll\n", b"n=3 /poll\n"])
        self.assertIn(b"GET %s/poll was answered already: its 3 recorded responses were each served once "
                      b"(--serve-from; --reuse serves the last one again)" % self.url.encode(), got[3])
        proxy = self.serve("--reuse")
        got = [self.get(proxy, "/poll").stdout for _ in range(4)]
        proxy.stop()
        self.assertEqual(got, [b"n=3 /poll\n"] * 4)

    def test_match_header_takes_part(self):
        self.capture([("-H", "Accept: text/plain", self.url + "/h"), ("-H", "Accept: text/html", self.url + "/h")])
        self.stop_origin()
        proxy = self.serve("--match-header", "accept")
        self.assertEqual(self.get(proxy, "/h", "-H", "Accept: text/html").stdout, b"n=2 /h\n")
        self.assertEqual(self.get(proxy, "/h", "-H", "Accept: text/plain").stdout, b"n=1 /h\n")
        proxy.stop()

    def test_refresh_dates(self):
        self.capture([self.url + "/dated"])
        self.stop_origin()
        for args, fresh in (((), False), (("--refresh-dates",), True)):
            proxy = self.serve(*args)
            head = self.get(proxy, "/dated", "-i").stdout.split(b"\r\n\r\n")[0].decode()
            proxy.stop()
            fields = dict(line.split(": ", 1) for line in head.split("\r\n")[1:])
            date = email.utils.parsedate_to_datetime(fields["Date"]).timestamp()
            expires = email.utils.parsedate_to_datetime(fields["Expires"]).timestamp()
            modified = email.utils.parsedate_to_datetime(fields["Last-Modified"]).timestamp()
            if fresh:
                self.assertLess(abs(date - time.time()), 120)
                self.assertEqual(expires - date, 3600)  # the same distance as recorded
                self.assertEqual(date - modified, 86400)
                self.assertRegex(fields["Set-Cookie"], r"^sid=1; Path=/; Expires=\w\w\w, \d\d \w\w\w \d{4} "
                                                       r"\d\d:\d\d:\d\d GMT; HttpOnly$")
                self.assertNotIn("1994", fields["Set-Cookie"])
            else:
                self.assertEqual(fields["Date"], "Sun, 06 Nov 1994 08:49:37 GMT")

    def test_reverse_mode_matches_on_the_target_not_the_listener(self):
        proxy = Proxy("--mode", "reverse:%s@0" % self.url)
        p = curl("http://127.0.0.1:%d/rev" % proxy.port)
        self.assertEqual(p.stdout, b"n=1 /rev\n")
        time.sleep(0.2)
        with open(self.tmp, "wb") as f:
            f.write(proxy.stop()[1])
        self.stop_origin()
        proxy = Proxy("--mode", "reverse:%s@0" % self.url, "--serve-from", self.tmp)  # another port
        self.assertEqual(curl("http://127.0.0.1:%d/rev" % proxy.port).stdout, b"n=1 /rev\n")
        proxy.stop()


class ServeFromTls(PkiCase):
    def test_https_through_connect_without_the_server_or_a_network(self):
        o = origin(self.pki)
        port = o.server_address[1]
        path = os.path.join(self.tmp.name, "https-capture.zst")
        with open(path, "wb") as f:
            f.write(record(["https://localhost:%d/secret" % port], "--server-ca", self.pki.ca,
                           curl_args=("--cacert", self.sluice_ca)))
        o.shutdown()
        o.server_close()
        # Nothing listens there now: an answer can only come from the capture.
        proxy = Proxy("--mode", "regular@0", "--serve-from", path)
        p = curl("-x", "http://127.0.0.1:%d" % proxy.port, "--cacert", self.sluice_ca,
                 "https://localhost:%d/secret" % port)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, b"hello from /secret\n")
        # A name that does not resolve works the same (no DNS, no connection) when it was recorded;
        # when it was not, the miss is named rather than a DNS error.
        p = curl("-x", "http://127.0.0.1:%d" % proxy.port, "--cacert", self.sluice_ca, "-i",
                 "https://nowhere.invalid/x")
        self.assertRegex(p.stdout, rb"HTTP/(1.1|2) 502")  # curl speaks h2 to us, we answer without a server
        self.assertIn(b"no recorded response matches GET https://nowhere.invalid/x", p.stdout)
        time.sleep(0.2)
        code, out = proxy.stop()
        self.assertEqual(code, 0)
        self.assertEqual([r for r in records(out) if r["type"] == "error"], [])

    def test_http2_clients_are_served_too_whatever_was_recorded(self):
        from h2server import H2Server
        h2 = H2Server(self.pki.cert, self.pki.key)
        h1 = origin(self.pki)
        try:
            urls = {"h2": "https://localhost:%d/from-h2" % h2.port, "h1": "https://localhost:%d/from-h1" % h1.server_address[1]}
            path = os.path.join(self.tmp.name, "mixed.zst")
            with open(path, "wb") as f:
                f.write(record([("--http2", urls["h2"]), ("--http1.1", urls["h1"])], "--server-ca", self.pki.ca,
                               curl_args=("--cacert", self.sluice_ca)))
        finally:
            h2.close()
            h1.shutdown()
            h1.server_close()
        proxy = Proxy("--mode", "regular@0", "--serve-from", path, "--reuse")
        via = ("-x", "http://127.0.0.1:%d" % proxy.port, "--cacert", self.sluice_ca, "-w", "|%{http_version}")
        # Each answer reaches an HTTP/2 client and an HTTP/1.1 client alike, with no server.
        for version in ("--http2", "--http1.1"):
            got = curl(version, *via, urls["h2"])
            self.assertEqual(got.stdout, b"h2 hello from /from-h2|" + (b"2" if version == "--http2" else b"1.1"), got.stderr)
            got = curl(version, *via, urls["h1"])
            self.assertEqual(got.stdout, b"hello from /from-h1\n|" + (b"2" if version == "--http2" else b"1.1"), got.stderr)
        miss = curl("--http2", *via, "https://localhost:%d/nothing" % h2.port)
        self.assertIn(b"no recorded response matches GET https://localhost", miss.stdout)
        time.sleep(0.2)
        code, out = proxy.stop()
        self.assertEqual(code, 0)
        served = [r for r in records(out) if r["type"] == "envelope" and r["protocol"] == "http"
                  and r["direction"] == "receive" and not r.get("overlay")]
        self.assertEqual(sum(1 for r in served if dict(r["tags"]).get("served_from")), 4)
        self.assertEqual({r["message"]["version"] for r in served}, {"HTTP/2", "HTTP/1.1"})
        self.assertEqual([r for r in records(out) if r["type"] == "error"], [])

    def test_h2c_to_a_reverse_target(self):
        from h2server import H2Server
        h2 = H2Server()
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % h2.port)
        p = curl("--http2-prior-knowledge", "http://127.0.0.1:%d/c" % proxy.port)
        self.assertEqual(p.stdout, b"h2 hello from /c")
        time.sleep(0.2)
        path = os.path.join(self.tmp.name, "h2c.zst")
        with open(path, "wb") as f:
            f.write(proxy.stop()[1])
        h2.close()
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % h2.port, "--serve-from", path)
        self.assertEqual(curl("--http2-prior-knowledge", "http://127.0.0.1:%d/c" % proxy.port).stdout, b"h2 hello from /c")
        self.assertIn(b"502", curl("--http2-prior-knowledge", "-i", "http://127.0.0.1:%d/d" % proxy.port).stdout)
        proxy.stop()

    def test_an_h2_request_body_past_the_stream_window_is_forwarded_on_a_miss(self):
        # The request waits whole for the lookup: the client's window must open as its body comes, or a
        # body over 64 KiB stalls (it did, before session 14).
        from h2server import H2Server
        h2 = H2Server()
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % h2.port)
        path = os.path.join(self.tmp.name, "empty.jsonl")
        with open(path, "wb") as f:
            f.write(proxy.stop()[1])
        proxy = Proxy("--mode", "reverse:http://127.0.0.1:%d@0" % h2.port, "--serve-from", path, "--on-miss", "forward")
        body = os.path.join(self.tmp.name, "body")
        with open(body, "wb") as f:
            f.write(b"z" * (200 << 10))
        p = curl("--http2-prior-knowledge", "--data-binary", "@" + body, "http://127.0.0.1:%d/post" % proxy.port)
        self.assertEqual(p.stdout, b"h2 hello from /post got %d" % (200 << 10), p.stderr)
        proxy.stop()
        h2.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
