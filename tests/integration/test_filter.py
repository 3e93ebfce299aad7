"""`sluice filter`: every operator on the golden capture (tests/fixtures/golden.py) with the flow ids it
must select, whole flows in stream order, parse errors with columns, --max-pending, encodings, exit
codes, and a catastrophic-backtracking pattern over a 100 MiB body."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
from support import SLUICE, asan_build  # noqa: E402
import golden  # noqa: E402

ALL = {"f1", "f2", "f3", "f4", "f5", "c6", "f7", "f8", "f9", "f10", "f11", "c1.1-tls"}
HTTP = {"f1", "f2", "f3", "f4", "f5", "f8", "f9", "f10", "f11"}

CASES = [
    ("~all", ALL),
    ("~c 200", {"f1", "f3", "f10", "f11"}),
    ("~c 404", {"f2"}),
    ("~d api.example.com", {"f1", "f4", "f9"}),
    ("~d ^shop", {"f2", "f8"}),
    ("~u /users", {"f1", "f9"}),
    ("cart", {"f2"}),  # a bare regex is ~u
    ("~m POST", {"f2", "f8"}),
    ("~h accept", {"f1"}),
    ("~hq 'transfer-encoding: chunked'", {"f8"}),
    ("~hs text/event-stream", {"f11"}),
    ("~t json", {"f1", "f9"}),
    ("~tq form-urlencoded", {"f2"}),
    ("~ts html", {"f2"}),
    ("~b Ada", {"f1"}),
    ("~bq item=42", {"f2"}),
    ("~bs boom", {"f9"}),
    ("~b 'hello ws'", {"f5"}),  # WebSocket payloads count as bodies
    ("~bs price", {"f11"}),
    ("~a", {"f3"}),
    ("~e", {"f4"}),
    ("~q", {"f4"}),
    ("~s", HTTP - {"f4"}),
    ("~http", HTTP),
    ("~tcp", {"c6"}),
    ("~websocket", {"f5"}),
    ("~replay", {"f9"}),
    ("~src ^10\\.", {"f2"}),
    ("~dst :6379$", {"c6"}),
    ("~proto grpc", {"f7"}),
    ("~proto sse", {"f11"}),
    ("~proto tls-handshake", {"c1.1-tls"}),
    ("~grpc Greeter/SayHello", {"f7"}),
    ("~anomaly cl_te", {"f8"}),
    ("~tag synthesized", {"f8"}),
    ("~tag replay_of=f1", {"f9"}),
    ("~tag replay_of=f2", set()),
    ("~variant modified", {"f10"}),
    ("!~http", {"c6", "f7", "c1.1-tls"}),
    ("~d api & ~c 200", {"f1"}),
    ("~d api ~c 500", {"f9"}),  # juxtaposition is AND
    ("~c 404 | ~c 500", {"f2", "f9"}),
    ("~d api & (~c 500 | ~q)", {"f4", "f9"}),
    ("!(~c 200 | ~c 404) & ~http", {"f4", "f5", "f8", "f9"}),
    ("~u \"users\\?id=1\"", {"f1", "f9"}),
    ("~D API.EXAMPLE", None),  # operators are lower case: an error
]


def golden_file(d, name="golden.jsonl"):
    path = os.path.join(d, name)
    with open(path, "w") as f:
        for r in golden.records():
            f.write(json.dumps(r) + "\n")
    return path


def run_filter(*args, input=None):
    return subprocess.run([SLUICE, "filter", *args], input=input, capture_output=True, timeout=120)


def flows_of(stdout):
    return [json.loads(line) for line in stdout.decode().splitlines() if line]


class Filter(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.capture = golden_file(cls.tmp.name)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_every_operator_selects_its_flows(self):
        for expr, expected in CASES:
            with self.subTest(expr=expr):
                p = run_filter("--no-compress", expr, self.capture)
                if expected is None:
                    self.assertEqual(p.returncode, 2, p.stderr)
                    continue
                self.assertEqual(p.returncode, 0 if expected else 1, p.stderr)
                recs = flows_of(p.stdout)
                got = {r["flow_id"] for r in recs if r["type"] == "envelope"}
                self.assertEqual(got, expected)

    def test_whole_flows_in_stream_order(self):
        p = run_filter("--no-compress", "~c 200 | ~tcp", self.capture)
        recs = flows_of(p.stdout)
        self.assertEqual(recs[0]["type"], "header")
        key = lambda r: (r["type"], r.get("stream_id"), r.get("flow_id"), r.get("seq"), r.get("variant", "original"))  # noqa: E731
        chosen = {"f1", "f3", "f10", "f11", "c6"}
        # Every record of the chosen flows, none of the others, in the order they came.
        expected = [key(r) for r in golden.records() if r.get("flow_id") in chosen or r["type"] == "header"
                    or (r["type"] == "end" and r["stream_id"] == "c6")]
        self.assertEqual([key(r) for r in recs], expected)
        # The variant of f10 came along with its flow.
        self.assertEqual(sum(1 for r in recs if r.get("variant") == "modified"), 1)

    def test_envelopes_mode_judges_each_envelope(self):
        p = run_filter("--no-compress", "--envelopes", "~c 404", self.capture)
        recs = [r for r in flows_of(p.stdout) if r["type"] == "envelope"]
        self.assertEqual([(r["flow_id"], r["direction"]) for r in recs], [("f2", "receive")])

    def test_parse_errors_point_at_the_column(self):
        for expr, message in [
            ("~d api & ~x 1", "sluice: filter: unknown operator '~x' at column 10"),
            ("~c abc", "sluice: filter: '~c' needs a status code at column 4, got 'abc'"),
            ("(~c 200", "sluice: filter: unbalanced '(' at column 1"),
            ("~c 200)", "sluice: filter: unexpected ')' at column 7"),
            ("~d", "sluice: filter: '~d' needs a value at column 3"),
            ("~u 'unterminated", "sluice: filter: unterminated quote at column 4"),
            ("~u (a", "sluice: filter: '~u' needs a value at column 4"),
            ("~u 'a(b'", "sluice: filter: bad regular expression for '~u' at column 4: missing ')' at 1"),
            ("~proto smtp", "sluice: filter: unknown protocol 'smtp' at column 8 (http, ws, grpc, grpc-web, sse, raw, "
                            "tls-handshake)"),
        ]:
            with self.subTest(expr=expr):
                p = run_filter(expr, self.capture)
                self.assertEqual(p.returncode, 2)
                self.assertEqual(p.stderr.decode().strip(), message)

    def test_max_pending_decides_the_oldest_early(self):
        # 50 requests that never get an answer, each its own flow, then their answers: with room for
        # 10 undecided flows, the first 40 are decided before their responses arrive.
        recs = [golden.records()[0]]
        for i in range(50):
            recs.append(golden.env("s", "q%d" % i, 0, "send", "http", golden.request("GET", "http", "a.test", "/%d" % i)))
        for i in range(50):
            recs.append(golden.env("s", "q%d" % i, 1, "receive", "http", golden.response(200, "OK")))
        data = "".join(json.dumps(r) + "\n" for r in recs).encode()
        p = run_filter("--no-compress", "--max-pending", "10", "~c 200", "-", input=data)
        got = [r["flow_id"] for r in flows_of(p.stdout) if r["type"] == "envelope"]
        self.assertEqual(sorted(set(got)), sorted("q%d" % i for i in range(40, 50)))
        self.assertIn("40 flows were decided before they ended", p.stderr.decode())
        p = run_filter("--no-compress", "~c 200", "-", input=data)  # the default holds them all
        self.assertEqual(len({r["flow_id"] for r in flows_of(p.stdout) if r["type"] == "envelope"}), 50)

    def test_output_follows_its_destination(self):
        """A pipe gets plain JSONL whatever the input was (so `| jq` works); a file is compressed when
        its name says .zst, CBOR when it says .cbor."""
        cbor = os.path.join(self.tmp.name, "golden.cbor.zst")
        subprocess.run([SLUICE, "show", "--format", "cbor", "-w", cbor, self.capture], check=True, timeout=60)
        p = run_filter("~c 404", cbor)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.startswith(b'{"type":"header"'), p.stdout[:16])
        jq = subprocess.run(["jq", "-c", "select(.type == \"envelope\") | .flow_id"], input=p.stdout,
                            capture_output=True, timeout=60)
        self.assertEqual(jq.returncode, 0, jq.stderr)
        self.assertIn(b'"f2"', jq.stdout)
        out = os.path.join(self.tmp.name, "out.jsonl.zst")
        p = run_filter("-w", out, "~c 404", cbor)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(out, "rb") as f:
            self.assertEqual(f.read(4), b"\x28\xb5\x2f\xfd")  # zstd: the name says so
        p = run_filter("-w", os.path.join(self.tmp.name, "out.cbor"), "~c 404", self.capture)
        with open(os.path.join(self.tmp.name, "out.cbor"), "rb") as f:
            self.assertEqual(f.read(4), b"\xc5SLR")
        shown = subprocess.run([SLUICE, "show", "--jsonl", out], capture_output=True, check=True, timeout=60).stdout
        self.assertEqual({r.get("flow_id") for r in flows_of(shown) if r["type"] == "envelope"}, {"f2"})
        # Stdin, and unknown fields pass through.
        with open(self.capture, "rb") as f:
            data = f.read().replace(b'"producer": "sluice/golden"', b'"producer": "sluice/golden", "x_new": [1]')
        p = run_filter("~c 404", input=data)
        self.assertEqual(flows_of(p.stdout)[0]["x_new"], [1])

    def test_catastrophic_pattern_on_a_100_mib_body(self):
        # The sanitizer build scans ~15x slower: 8 MiB there shows the same (exponential would never end).
        size = (8 if asan_build() else 100) << 20
        big = os.path.join(self.tmp.name, "big.jsonl")
        with open(big, "w") as f:
            f.write(json.dumps(golden.records()[0]) + "\n")
            f.write(json.dumps(golden.env("s", "big", 0, "send", "http",
                                          golden.request("GET", "http", "a.test", "/big"))) + "\n")
            f.write(json.dumps(golden.env("s", "big", 1, "receive", "http",
                                          golden.response(200, "OK", body="a" * size))) + "\n")
        # (a+)+b over 100 MiB of 'a' is exponential for a backtracking engine; here it is one pass.
        p = run_filter("--no-compress", "~bs '(a+)+b'", big)
        self.assertEqual(p.returncode, 1, p.stderr)
        p = run_filter("--no-compress", "~bs '(a+)+$'", big)
        self.assertEqual(p.returncode, 0, p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
