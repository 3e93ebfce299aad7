"""`sluice diff A B`: an added flow, a missing one, a changed status and a changed JSON field are
reported (human and --json), repeated identical requests pair in order, every ignore option works, and
the exit status says whether the captures differ."""
import copy
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
from support import SLUICE  # noqa: E402
import golden  # noqa: E402


def write(path, records):
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    return path


def response_of(records, flow):
    return [r for r in records if r.get("flow_id") == flow and r["type"] == "envelope"
            and r["message"].get("kind") == "response"][0]["message"]


def run_diff(*args):
    return subprocess.run([SLUICE, "diff", *args], capture_output=True, timeout=60)


class Diff(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.before = golden.records()
        self.a = write(os.path.join(self.tmp.name, "a.jsonl"), self.before)

    def tearDown(self):
        self.tmp.cleanup()

    def after(self, change):
        recs = copy.deepcopy(self.before)
        change(recs)
        return write(os.path.join(self.tmp.name, "b.jsonl"), recs)

    def test_identical_captures(self):
        p = run_diff(self.a, self.a)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout.decode().splitlines()[-1], "9 flows: 0 changed, 0 added, 0 missing, 9 the same")

    def test_added_missing_status_and_json_field(self):
        def change(recs):
            response_of(recs, "f1")["body"] = '{"id": 1, "name": "Bob"}'
            response_of(recs, "f3")["status"] = 500
            recs[:] = [r for r in recs if r.get("flow_id") != "f2"]
            recs.append(golden.env("z", "new", 0, "send", "http", golden.request("GET", "http", "new.test", "/x")))
        b = self.after(change)
        p = run_diff(self.a, b)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(p.stdout.decode().splitlines(), [
            "~ GET https://api.example.com/users?id=1  (f1 -> f1)",
            '    body $.name: "Ada" -> "Bob"',
            "~ GET http://cdn.test/app.js  (f3 -> f3)",
            "    status: 200 -> 500",
            "+ GET http://new.test/x  (only in B: new)",
            "- POST http://shop.test/cart  (only in A: f2)",
            "10 flows: 2 changed, 1 added, 1 missing, 6 the same",
        ])
        report = json.loads(run_diff("--json", self.a, b).stdout)
        self.assertTrue(report["differ"])
        self.assertEqual(report["summary"], {"same": 6, "changed": 2, "added": 1, "missing": 1})
        kinds = {(f["kind"], f["a"], f["b"]) for f in report["flows"]}
        self.assertEqual(kinds, {("changed", "f1", "f1"), ("changed", "f3", "f3"), ("added", None, "new"),
                                 ("missing", "f2", None)})
        # Ignoring the changed field leaves the status change.
        report = json.loads(run_diff("--json", "--ignore-json-path", "$.name", self.a, b).stdout)
        self.assertEqual(report["summary"]["changed"], 1)

    def test_repeated_requests_pair_in_order(self):
        # f1 and f9 are the same request (200, then 500); swapping the answers changes both.
        def change(recs):
            response_of(recs, "f1")["status"], response_of(recs, "f9")["status"] = 500, 200
        report = json.loads(run_diff("--json", self.a, self.after(change)).stdout)
        pairs = [(f["a"], f["b"], f["differences"][0]["what"]) for f in report["flows"]]
        self.assertIn(("f1", "f1", "status"), pairs)
        self.assertIn(("f9", "f9", "status"), pairs)

    def test_ignore_options(self):
        def change(recs):
            for r in recs:
                if r.get("flow_id") == "f3" and r["message"].get("kind") == "request":
                    r["message"]["path"] = "/app.js?cache=123"
                    r["message"]["authority"] = "cdn2.test"
                if r.get("flow_id") == "f1" and r["message"].get("kind") == "response":
                    r["message"]["headers"] += [["X-Trace", "abc"], ["Date", "Sun, 22 Nov 2026 10:00:00 GMT"]]
                if r.get("flow_id") == "f2" and r["message"].get("kind") == "request":
                    r["message"]["body"] = "item=42&qty=2"
        b = self.after(change)
        report = json.loads(run_diff("--json", self.a, b).stdout)
        self.assertEqual(report["summary"], {"same": 6, "changed": 1, "added": 2, "missing": 2})
        changed = [f for f in report["flows"] if f["kind"] == "changed"][0]
        self.assertEqual(changed["differences"], [{"what": "header x-trace", "before": "(absent)", "after": "abc"}])
        report = json.loads(run_diff("--json", "--ignore-param", "cache", "--ignore-host", "--ignore-body",
                                     "--ignore-header", "X-Trace", self.a, b).stdout)
        self.assertEqual(report["summary"], {"same": 9, "changed": 0, "added": 0, "missing": 0})
        self.assertEqual(run_diff("--ignore-param", "cache", "--ignore-host", "--ignore-body", "--ignore-header",
                                  "x-trace", self.a, b).returncode, 0)

    def test_text_bodies_and_errors(self):
        def change(recs):
            response_of(recs, "f2")["body"] = "<p>not here</p>\n<p>gone</p>"
        p = run_diff(self.a, self.after(change))
        self.assertIn("    body line 2 (1 lines differ): (end of body) -> <p>gone</p>", p.stdout.decode())
        p = run_diff(self.a, os.path.join(self.tmp.name, "nope.jsonl"))
        self.assertEqual(p.returncode, 2)
        self.assertIn("sluice: diff: ", p.stderr.decode())


if __name__ == "__main__":
    unittest.main(verbosity=2)
