"""Filter expressions mean what they mean in mitmproxy: a table of expressions evaluated by mitmproxy
8.1's own `flowfilter` (Debian's python3 package) and by `sluice filter` over the same flows (built once
as mitmproxy flow objects and once as sluice records) selects the same flows, except for the
differences `man/sluice-filter.1` lists, each of which has a test of its own here. Bodies with gzip,
deflate, br and zstd content codings are matched decoded, as mitmproxy matches them."""
import base64
import gzip
import json
import os
import subprocess
import sys
import tempfile
import unittest
import zlib

import brotli
import zstandard
from mitmproxy import flow as mflow
from mitmproxy import flowfilter, http
from mitmproxy.test import tflow

sys.path.insert(0, os.path.dirname(__file__))
from support import ROOT, SLUICE, TEST_ENV  # noqa: E402

T = "2026-12-06T10:00:%02d.000000Z"


def F(fid, method, url, status=None, req_headers=(), req_body=b"", resp_headers=(), resp_body=b"",
      client="10.0.0.5:5001", error=None):
    return dict(id=fid, method=method, url=url, status=status, req_headers=list(req_headers), req_body=req_body,
                resp_headers=list(resp_headers), resp_body=resp_body, client=client, error=error)


def coded(coding, text):
    data = text.encode()
    return {"gzip": gzip.compress, "br": brotli.compress, "zstd": zstandard.ZstdCompressor().compress,
            "deflate": zlib.compress}[coding](data)


FLOWS = [
    F("f1", "GET", "https://api.example.com/users?id=1", 200,
      [("Host", "api.example.com"), ("Accept", "application/json"), ("User-Agent", "curl/7.88.1")], b"",
      [("Content-Type", "application/json"), ("X-Request-Id", "abc123")], b'{"id": 1, "name": "Ada"}'),
    F("f2", "POST", "http://shop.test/cart", 404,
      [("Host", "shop.test"), ("Content-Type", "application/x-www-form-urlencoded"), ("Cookie", "session=s1")],
      b"item=42&qty=1", [("Content-Type", "text/html; charset=utf-8")], b"<p>Not here</p>", client="10.0.0.7:6000"),
    F("f3", "GET", "http://cdn.test/app.js", 200, [("Host", "cdn.test")], b"",
      [("Content-Type", "application/javascript"), ("Cache-Control", "max-age=60")], b"console.log(1)"),
    F("f4", "GET", "http://api.example.com/slow", None, [("Host", "api.example.com")], error="no answer in time"),
    F("f5", "GET", "https://img.test/logo.png", 200, [("Host", "img.test"), ("Accept", "image/*")], b"",
      [("Content-Type", "image/png")], b"\x89PNG\r\n\x1a\nbinary"),
    F("f6", "GET", "http://news.test/gz", 200, [("Host", "news.test"), ("Accept-Encoding", "gzip")], b"",
      [("Content-Type", "text/plain"), ("Content-Encoding", "gzip")], coded("gzip", "hello gzipped world")),
    F("f7", "GET", "http://news.test/br", 200, [("Host", "news.test"), ("Accept-Encoding", "br")], b"",
      [("Content-Type", "text/plain"), ("Content-Encoding", "br")], coded("br", "brotli squeezed words")),
    F("f8", "GET", "http://news.test/zstd", 200, [("Host", "news.test"), ("Accept-Encoding", "zstd")], b"",
      [("Content-Type", "text/plain"), ("Content-Encoding", "zstd")], coded("zstd", "zstandard packed words")),
    F("f9", "PUT", "https://api.example.com/items/7", 201,
      [("Host", "api.example.com"), ("Content-Type", "application/json"), ("X-Multi", "one"), ("X-Multi", "two")],
      b'{"name": "widget", "price": 3}', [("Location", "/items/7")], b""),
    F("f10", "DELETE", "https://api.example.com/items/7", 204, [("Host", "api.example.com")], b"", [], b""),
    F("f11", "GET", "http://Example.COM/Path/UPPER?Q=1", 500, [("Host", "Example.COM")], b"",
      [("Content-Type", "text/plain")], b"Internal ERROR"),
    F("f12", "GET", "http://apixexample.test/", 200, [("Host", "apixexample.test")], b"",
      [("Content-Type", "text/css")], b"body { color: red }"),
    F("f13", "POST", "http://news.test/upload", 200,
      [("Host", "news.test"), ("Content-Type", "text/plain"), ("Content-Encoding", "deflate")],
      coded("deflate", "deflated request text"), [("Content-Type", "font/woff2")], b"wOF2"),
    F("f14", "GET", "http://localhost:8080/health", 200, [("Host", "localhost:8080")], b"",
      [("Content-Type", "text/plain")], b"ok", client="127.0.0.1:40000"),
]
IDS = [f["id"] for f in FLOWS]


def mitm_flow(spec):
    req = http.Request.make(spec["method"], spec["url"], b"", {})
    req.headers = http.Headers([(k.encode(), v.encode()) for k, v in spec["req_headers"]])
    req.raw_content = spec["req_body"]
    resp = None
    if spec["status"] is not None:
        resp = http.Response.make(spec["status"], b"", {})
        resp.headers = http.Headers([(k.encode(), v.encode()) for k, v in spec["resp_headers"]])
        resp.raw_content = spec["resp_body"]
    f = tflow.tflow(req=req, resp=resp or False, err=False)
    host, port = spec["client"].rsplit(":", 1)
    f.client_conn.peername = (host, int(port))
    f.server_conn.address = (req.host, req.port)
    if spec["error"]:
        f.error = mflow.Error(spec["error"])
    return f


def body(b):
    try:
        return b.decode()
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(b).decode()}


def sluice_records(specs):
    out = [{"type": "header", "format": "sluice-stream", "version": 1, "producer": "sluice/test", "time": T % 0,
            "listeners": [{"mode": "regular@8080", "address": "127.0.0.1:8080"}]}]
    for n, spec in enumerate(specs):
        scheme, rest = spec["url"].split("://", 1)
        authority, path = (rest.split("/", 1) + [""])[:2]
        host = authority.rsplit(":", 1)[0] if ":" in authority else authority
        port = int(authority.rsplit(":", 1)[1]) if ":" in authority else (443 if scheme == "https" else 80)
        ctx = {"conn_id": "c%d" % n, "client": spec["client"], "server": "%s:%d" % (host, port), "opened": T % 0}
        common = {"type": "envelope", "stream_id": "c%d" % n, "flow_id": spec["id"], "protocol": "http",
                  "time": T % 1, "context": ctx}
        req = {"kind": "request", "method": spec["method"], "scheme": scheme, "authority": authority,
               "path": "/" + path, "version": "HTTP/1.1", "headers": [list(h) for h in spec["req_headers"]],
               "body": body(spec["req_body"])}
        out.append(dict(common, seq=0, direction="send", raw="", message=req))
        if spec["status"] is not None:
            resp = {"kind": "response", "status": spec["status"], "reason": "", "version": "HTTP/1.1",
                    "headers": [list(h) for h in spec["resp_headers"]], "body": body(spec["resp_body"])}
            out.append(dict(common, seq=1, direction="receive", raw="", message=resp))
        if spec["error"]:
            out.append({"type": "error", "stream_id": "c%d" % n, "flow_id": spec["id"], "time": T % 2,
                        "code": "first_byte_timeout", "message": spec["error"]})
    return "".join(json.dumps(r) + "\n" for r in out).encode()


# Expressions both must agree on (mitmproxy's own documentation's examples among them).
AGREE = [
    "~all", "~http", "~tcp", "~websocket", "~q", "~s", "~e", "~a", "!~a", "~c 200", "~c 404", "~c 500", "~c 201",
    "~c 999", "~m GET", "~m post", "~m '^DEL'", "~d api.example.com", "~d '^news'", "~d example", "~d localhost",
    "~u /users", "~u 'id=1$'", "~u '^https://'", "~u items", "cart", "health", "~u ':8080/'",
    "~h Accept", "~hq Cookie", "~hs Location", "~hq 'X-Multi: two'", "~h 'User-Agent: curl'", "~hs 'Content-Type: text'",
    "~h '^Cache-Control: max-age'", "~hq '^Host: news'", "~hs 'max-age=[0-9]+'",
    "~t json", "~tq form", "~ts html", "~ts '^text/plain$'", "~t image", "~ts css",
    "~b Ada", "~bq item=42", "~bs Not", "~b widget", "~bs binary", "~bs 'hello gzipped'", "~bs 'brotli squeezed'",
    "~bs zstandard", "~bq deflated", "~b '\"price\": 3'", "~bs '^console'",
    "~src 10.0.0.7", "~src '^127\\.'", "~dst ':443$'", "~dst news.test", "~dst '^localhost:8080$'",
    "~c 200 & ~d news", "~c 200 | ~c 404", "!~c 200", "!(~c 200 | ~c 204)", "~d api & !~m GET",
    "~m GET ~c 200", "~d news ~bs words", "~d api ~c 500 | ~c 201", "~c 404 | ~c 500 ~d shop",
    "!~q ~d api", "~a | ~e ~q", "(~c 200 | ~c 201) & ~d api", "~c 200 ~d news | ~d cdn ~a",
    "~ts text | ~ts json & ~c 200", "!~s", "~e | ~c 204",
]

# Where sluice deliberately differs from mitmproxy 8.1 (man/sluice-filter.1, "DIFFERENCES FROM
# MITMPROXY"): each expression with what mitmproxy 8.1 selects and what sluice selects.
DIFFER = {
    # Case-insensitive matching (mitmproxy's later versions do so too).
    "~b ada": (set(), {"f1"}),
    "~u /path/upper": (set(), {"f11"}),
    "~hq 'user-agent: CURL'": (set(), {"f1"}),
    # An empty body is a body: ^$ matches it.
    "~bs '^$'": (set(), {"f9", "f10"}),
    # Backslashes inside quotes stay (mitmproxy drops them, so "\." means any character).
    '~d "api\\.example"': ({"f1", "f4", "f9", "f10", "f12"}, {"f1", "f4", "f9", "f10"}),
    # $ matches at the end of a header line, before its CR LF (in mitmproxy 8.1 it never does).
    "~hs 'json$'": (set(), {"f1"}),
}


class Both(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.capture = os.path.join(cls.dir.name, "flows.jsonl")
        with open(cls.capture, "wb") as f:
            f.write(sluice_records(FLOWS))
        cls.mflows = [mitm_flow(s) for s in FLOWS]

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    def mitmproxy(self, expr):
        flt = flowfilter.parse(expr)
        return {s["id"] for s, f in zip(FLOWS, self.mflows) if flt(f)}

    def sluice(self, expr, capture=None):
        p = subprocess.run([SLUICE, "filter", expr, capture or self.capture], capture_output=True, timeout=30,
                           env=TEST_ENV)
        self.assertIn(p.returncode, (0, 1), (expr, p.stderr))  # (1: nothing matched)
        return {json.loads(line).get("flow_id") for line in p.stdout.splitlines()} - {None}

    def test_the_table_agrees_with_mitmproxys_own_filter(self):
        self.assertGreaterEqual(len(AGREE) + len(DIFFER), 60)
        wrong = []
        for expr in AGREE:
            theirs, ours = self.mitmproxy(expr), self.sluice(expr)
            if theirs != ours:
                wrong.append((expr, sorted(theirs), sorted(ours)))
        self.assertEqual(wrong, [])
        # Every expression selects something in one engine or the other somewhere in the table, and
        # the table is not trivially all or nothing.
        sizes = {len(self.mitmproxy(e)) for e in AGREE}
        self.assertTrue(0 in sizes and len(IDS) in sizes and len(sizes) > 5)

    def test_each_listed_difference_is_what_the_man_page_says(self):
        with open(os.path.join(ROOT, "man", "sluice-filter.1")) as f:
            man = f.read()
        self.assertIn("DIFFERENCES FROM MITMPROXY", man)
        listed = man.split("DIFFERENCES FROM MITMPROXY", 1)[1].split(".SH", 1)[0]
        for what in ("case-insensitive", "empty body", "backslash", "CR LF", "parentheses"):
            self.assertIn(what, listed)
        for expr, (theirs, ours) in DIFFER.items():
            with self.subTest(expr=expr):
                self.assertEqual(self.mitmproxy(expr), theirs)
                self.assertEqual(self.sluice(expr), ours)

    def test_side_by_side_binds_more_loosely_than_or(self):
        # mitmproxy: "~d api ~c 500 | ~c 201" is "~d api & (~c 500 | ~c 201)".
        self.assertEqual(self.sluice("~d api ~c 500 | ~c 201"), {"f9"})
        self.assertEqual(self.sluice("~d api & ~c 500 | ~c 201"), {"f9"})  # & binds tighter than |...
        self.assertEqual(self.sluice("~c 201 | ~d api & ~c 500"), {"f9"})
        self.assertEqual(self.sluice("~c 404 | ~d api ~c 201"), {"f9"})  # ...side by side looser: (404|api) & 201
        # Inside parentheses sluice takes side by side too (mitmproxy refuses it there).
        self.assertEqual(self.sluice("(~d api ~c 201)"), {"f9"})
        with self.assertRaises(ValueError):
            flowfilter.parse("(~d api ~c 201)")

    def test_header_regexes_anchor_at_each_line_and_dot_stays_in_one(self):
        self.assertEqual(self.sluice("~hq '^X-Multi: two'"), {"f9"})
        self.assertEqual(self.mitmproxy("~hq '^X-Multi: two'"), {"f9"})
        self.assertEqual(self.sluice("~hq 'Host: api.*X-Multi'"), set())  # . does not cross a line
        self.assertEqual(self.mitmproxy("~hq 'Host: api.*X-Multi'"), set())
        self.assertEqual(self.sluice("~b 'widget.*price'"), {"f9"})  # bodies: . crosses lines (DOTALL)

    def test_encoded_bodies_are_matched_decoded_and_recorded_as_they_came(self):
        for expr, fid in (("~bs gzipped", "f6"), ("~bs squeezed", "f7"), ("~bs packed", "f8"),
                          ("~bq 'deflated request'", "f13")):
            self.assertEqual(self.sluice(expr), {fid}, expr)
        p = subprocess.run([SLUICE, "filter", "~bs squeezed", self.capture], capture_output=True, timeout=30,
                           env=TEST_ENV)
        resp = [json.loads(line) for line in p.stdout.splitlines() if b'"receive"' in line][0]
        self.assertEqual(base64.b64decode(resp["message"]["body"]["base64"]), coded("br", "brotli squeezed words"))
        # A body that does not decode is matched as it was recorded.
        broken = [dict(FLOWS[5], id="bad", resp_body=b"not gzip at all")]
        path = os.path.join(self.dir.name, "broken.jsonl")
        with open(path, "wb") as f:
            f.write(sluice_records(broken))
        self.assertEqual(self.sluice("~bs 'not gzip'", path), {"bad"})
        self.assertEqual(self.mitmproxy_of(broken[0], "~bs 'not gzip'"), True)

    def mitmproxy_of(self, spec, expr):
        return bool(flowfilter.parse(expr)(mitm_flow(spec)))


if __name__ == "__main__":
    unittest.main()
