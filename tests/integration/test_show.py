"""`sluice show` as a shell user meets it: summaries, conversion, pipes, damaged input, exit codes."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from support import ROOT, SLUICE, run  # noqa: E402

SAMPLES = os.path.join(ROOT, "formats", "samples")


def sample(name):
    with open(os.path.join(SAMPLES, name), "rb") as f:
        return f.read()


def jsonl_lines(data):
    return [json.loads(l) for l in data.decode().splitlines() if l.strip()]


def assert_superset(test, got, want):
    """Every member the writer gave (known or not) comes back unchanged; defaults may be added."""
    test.assertEqual(len(got), len(want))
    for g, w in zip(got, want):
        for k, v in w.items():
            test.assertEqual(g.get(k), v, k)


def big_capture(n):
    """A third-party JSONL writer: n HTTP exchanges written straight from the spec."""
    lines = ['{"type":"header","format":"sluice-stream","version":1,"producer":"test"}']
    for i in range(n):
        for seq, (direction, kind) in enumerate((("send", "request"), ("receive", "response"))):
            msg = ({"kind": "request", "method": "GET", "scheme": "http", "authority": "example.com",
                    "path": "/item/%d" % i, "version": "HTTP/1.1", "headers": [["Host", "example.com"]], "body": ""}
                   if kind == "request" else
                   {"kind": "response", "status": 200, "reason": "OK", "version": "HTTP/1.1",
                    "headers": [["Content-Length", "2"]], "body": "ok"})
            lines.append(json.dumps({
                "type": "envelope", "stream_id": "s%d" % i, "flow_id": "f%d" % i, "seq": seq, "direction": direction,
                "protocol": "http", "time": "2026-11-21T08:00:00.000000Z", "raw": "", "message": msg,
                "context": {"conn_id": "c", "client": "127.0.0.1:1", "server": "example.com:80",
                            "opened": "2026-11-21T08:00:00.000000Z"},
                "variant": "original", "anomalies": [], "tags": {}, "x_unknown_top": {"kept": [i]}}))
    return ("\n".join(lines) + "\n").encode()


class Show(unittest.TestCase):
    def test_summary_is_one_line_per_flow(self):
        out = run("show", os.path.join(SAMPLES, "sample.jsonl.zst")).stdout.decode().splitlines()
        http = [l for l in out if "POST http://example.com/api/items?id=1" in l]
        self.assertEqual(len(http), 1, out)
        self.assertIn("200 OK", http[0])
        self.assertTrue(any("grpc -> start /pkg.Svc/Call" in l for l in out), out)
        self.assertTrue(any("error connect_refused" in l for l in out), out)

    def test_all_four_forms_read_the_same(self):
        # --jsonl writes every body out: the form captures had before bodies were stored once.
        ref = run("show", "--jsonl", os.path.join(SAMPLES, "sample.jsonl")).stdout
        self.assertEqual(ref, sample("sample-bodies-inline.jsonl"))
        self.assertEqual(run("show", "--jsonl", os.path.join(SAMPLES, "sample-bodies-inline.jsonl")).stdout, ref)
        self.assertEqual(run("show", "--format", "jsonl", os.path.join(SAMPLES, "sample-bodies-inline.jsonl")).stdout,
                         sample("sample.jsonl"))
        for name in ("sample.jsonl.zst", "sample.cbor", "sample.cbor.zst"):
            self.assertEqual(run("show", "--jsonl", os.path.join(SAMPLES, name)).stdout, ref, name)

    def test_unknown_fields_survive_conversion(self):
        src = big_capture(3)
        want = jsonl_lines(src)
        # --format jsonl --compress, then read back through zstd itself.
        z = run("show", "--format", "jsonl", "--compress", "-", input=src).stdout
        self.assertEqual(z[:4], b"\x28\xb5\x2f\xfd")
        plain = subprocess.run(["zstd", "-dc"], input=z, capture_output=True, check=True).stdout
        assert_superset(self, jsonl_lines(plain), want)
        # CBOR and back.
        cbor = run("show", "--format", "cbor", "--no-compress", "-", input=src).stdout
        self.assertEqual(cbor[:4], b"\xc5SLR")
        back = run("show", "--jsonl", "-", input=cbor).stdout
        assert_superset(self, jsonl_lines(back), want)
        self.assertEqual(jsonl_lines(back)[1]["x_unknown_top"], {"kept": [0]})

    def test_head_closes_the_pipe_quietly(self):
        data = big_capture(20000)
        for args in (["show"], ["show", "--jsonl"], ["show", "--detail", "2"]):
            p = subprocess.run("%s %s - | head -1" % (SLUICE, " ".join(args[1:])) if False else
                               "'%s' %s - | head -1; echo \"status=${PIPESTATUS[0]}\"" % (SLUICE, " ".join(args)),
                               shell=True, executable="/bin/bash", input=data, capture_output=True, timeout=60)
            lines = p.stdout.decode().splitlines()
            self.assertEqual(len(lines), 2, (args, p.stdout[:200]))
            self.assertEqual(lines[1], "status=0", args)
            self.assertEqual(p.stderr, b"", args)

    def test_truncated_capture_warns_and_keeps_complete_records(self):
        src = big_capture(3000)
        for fmt in (["--format", "cbor"], ["--format", "cbor", "--no-compress"], ["--format", "jsonl"]):
            data = run("show", *fmt, "-", input=src).stdout
            cut = data[: len(data) * 2 // 3]
            p = run("show", "--jsonl", "-", input=cut)
            got = jsonl_lines(p.stdout)
            # Everything before the cut's zstd block (at most 128 KiB of records) comes back, in order.
            self.assertGreater(len(got), 3000, fmt)
            assert_superset(self, got, jsonl_lines(src)[: len(got)])
            self.assertIn(b"input ends inside", p.stderr, fmt)
            self.assertEqual(p.returncode, 0)
        self.assertIn(b"input ends inside", p.stderr)
        self.assertEqual(p.returncode, 0)

    def test_not_a_stream_is_exit_2(self):
        p = run("show", "-", input=b"GET / HTTP/1.1\r\n\r\n", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"not a sluice stream", p.stderr)
        p = run("show", "/nonexistent/capture.zst", check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"cannot open /nonexistent/capture.zst", p.stderr)

    def test_usage_errors_are_exit_2(self):
        for args in (["show", "--format", "xml"], ["show", "--compress"], ["show", "--jsonl", "--format", "cbor"],
                     ["show", "--detail", "9"], ["show", "--detail", "1", "--jsonl"], ["nosuchcommand"]):
            p = run(*args, input=b"", check=False)
            self.assertEqual(p.returncode, 2, args)
            self.assertTrue(p.stderr.startswith(b"sluice: "), (args, p.stderr))

    def test_detail_levels(self):
        path = os.path.join(SAMPLES, "sample.jsonl")
        d1 = run("show", "--detail", "1", path).stdout.decode()
        self.assertIn("content-TYPE: application/json", d1)  # header case preserved
        self.assertIn("! obs_fold: header line 3 is folded", d1)
        self.assertNotIn('{"a":1}', d1)
        self.assertIn("error s9 connect_refused", d1)
        d2 = run("show", "--detail", "2", path).stdout.decode()
        self.assertIn('{"a":1}', d2)
        d3 = run("show", "--detail", "3", path).stdout.decode()
        self.assertIn("50 4f 53 54", d3)  # hex of "POST"
        self.assertIn("overlay=grpc-lpm-frame", d3)

    def test_write_to_file(self):
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "x.cbor.zst")
            run("show", "--format", "cbor", "-w", out, os.path.join(SAMPLES, "sample.jsonl"))
            with open(out, "rb") as f:
                self.assertEqual(f.read(4), b"\x28\xb5\x2f\xfd")  # the name says .zst
            self.assertEqual(run("show", "--jsonl", out).stdout, sample("sample-bodies-inline.jsonl"))
            # The name alone decides: CBOR for .cbor, zstd for .zst.
            named = os.path.join(d, "y.cbor")
            run("show", "--format", "jsonl", "-w", os.path.join(d, "y.jsonl"), os.path.join(SAMPLES, "sample.jsonl"))
            run("show", "--compress", "--format", "cbor", "-w", named, os.path.join(SAMPLES, "sample.jsonl"))
            with open(os.path.join(d, "y.jsonl"), "rb") as f:
                self.assertEqual(f.read(), sample("sample.jsonl"))
            with open(named, "rb") as f:
                self.assertEqual(f.read(4), b"\x28\xb5\x2f\xfd")

    def test_records_validate_against_the_schema(self):
        import jsonschema  # Debian: python3-jsonschema
        with open(os.path.join(ROOT, "formats", "envelope.schema.json")) as f:
            schema = json.load(f)
        validator = jsonschema.Draft202012Validator(schema)
        for rec in jsonl_lines(sample("sample.jsonl")) + jsonl_lines(big_capture(2)):
            errors = list(validator.iter_errors(rec))
            self.assertEqual(errors, [], rec)
        bad = {"type": "envelope", "stream_id": "s", "seq": -1}
        self.assertTrue(list(validator.iter_errors(bad)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
