"""`sluice record`: rotation by size and by time, every record older than the sync interval readable
after a `kill -9`, a torn tail reported by the next reader, a read-only directory (exit 2) and a full
disk (exit 3), --tee, and directories read back in order everywhere a capture is accepted."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures"))
from support import SLUICE  # noqa: E402
import golden  # noqa: E402


def lines(records):
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def read_back(path):
    """The records of a capture (file or directory), and sluice's warnings."""
    p = subprocess.run([SLUICE, "show", "--jsonl", path], capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.decode().splitlines()], p.stderr.decode()


def key(r):
    return (r["type"], r.get("flow_id"), r.get("seq"), r.get("variant", "original"))


class Record(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = os.path.join(self.tmp.name, "captures")

    def tearDown(self):
        self.tmp.cleanup()

    def test_rotation_by_size_keeps_every_record_in_order(self):
        recs = golden.records() * 1 + golden.records()[1:] * 3
        p = subprocess.run([SLUICE, "record", "--rotate-size", "2k", "--sync", "always", self.dir + "/"],
                           input=lines(recs), capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        segments = sorted(os.listdir(self.dir))
        self.assertGreater(len(segments), 3)
        for s in segments:
            first, _ = read_back(os.path.join(self.dir, s))
            self.assertEqual(first[0]["type"], "header")  # each segment stands alone
            self.assertLess(os.path.getsize(os.path.join(self.dir, s)), 2048 + 1500)  # one record past 2k at most
        back, warnings = read_back(self.dir)
        self.assertEqual(warnings, "")
        self.assertEqual([key(r) for r in back if r["type"] != "header"], [key(r) for r in recs if r["type"] != "header"])
        # filter reads the directory too.
        p = subprocess.run([SLUICE, "filter", "--no-compress", "~c 404", self.dir], capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual({json.loads(l)["flow_id"] for l in p.stdout.decode().splitlines()
                          if json.loads(l)["type"] == "envelope"}, {"f2"})

    def test_rotation_by_time(self):
        rec = subprocess.Popen([SLUICE, "record", "--rotate-every", "1s", "--name", "t", self.dir + "/"],
                               stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        recs = golden.records()
        deadline = time.monotonic() + 2.6
        sent = 0
        while time.monotonic() < deadline:
            rec.stdin.write(lines([recs[1 + sent % (len(recs) - 1)]]))
            rec.stdin.flush()
            sent += 1
            time.sleep(0.1)
        rec.stdin.close()
        self.assertEqual(rec.wait(30), 0, rec.stderr.read())
        segments = sorted(os.listdir(self.dir))
        self.assertGreaterEqual(len(segments), 3, segments)
        self.assertEqual(segments[0], "t-0000.jsonl.zst")
        back, _ = read_back(self.dir)
        self.assertEqual(len([r for r in back if r["type"] != "header"]), sent)

    def test_kill_9_loses_nothing_older_than_the_sync_interval(self):
        rec = subprocess.Popen([SLUICE, "record", "--sync", "interval", "--sync-interval", "0.5", self.dir + "/"],
                               stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        recs = [golden.records()[0]]
        sent_at = []
        for i in range(40):
            recs.append(golden.env("s", "k%d" % i, 0, "send", "http", golden.request("GET", "http", "a.test", "/%d" % i)))
        rec.stdin.write(lines(recs[:1]))
        for i, r in enumerate(recs[1:]):
            rec.stdin.write(lines([r]))
            rec.stdin.flush()
            sent_at.append(time.monotonic())
            time.sleep(0.05)
        killed_at = time.monotonic()
        rec.send_signal(signal.SIGKILL)
        rec.wait(10)
        back, _ = read_back(self.dir)
        got = {r["flow_id"] for r in back if r["type"] == "envelope"}
        old = {"k%d" % i for i, t in enumerate(sent_at) if killed_at - t > 0.5 + 0.2}
        self.assertTrue(old)
        self.assertLessEqual(old, got)

    def test_a_torn_tail_is_reported_and_the_rest_read(self):
        path = os.path.join(self.tmp.name, "one.zst")
        recs = golden.records()
        p = subprocess.run([SLUICE, "record", "--sync", "always", path], input=lines(recs), capture_output=True,
                           timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(path, "ab") as f:  # what a kill in the middle of a write leaves: half a frame
            with open(path, "rb") as g:
                f.write(g.read()[:40])
        back, warnings = read_back(path)
        self.assertEqual([key(r) for r in back], [key(r) for r in recs])
        self.assertIn("one.zst", warnings)

    def test_unwritable_places_are_clear_errors(self):
        readonly = "/sys/kernel" if os.geteuid() == 0 else os.path.join(self.tmp.name, "ro")
        if os.geteuid() != 0:
            os.mkdir(readonly, 0o555)
        p = subprocess.run([SLUICE, "record", readonly + "/"], input=lines(golden.records()), capture_output=True,
                           timeout=60)
        self.assertEqual(p.returncode, 3)  # the job cannot be done: sluice(1)'s 3, as the man page says
        self.assertRegex(p.stderr.decode(), r"^sluice: record: cannot (write to|create) .*(denied|not permitted)")
        p = subprocess.run([SLUICE, "record", "/dev/full"], input=lines(golden.records()), capture_output=True,
                           timeout=60)
        self.assertEqual(p.returncode, 3)
        self.assertEqual(p.stderr.decode().strip(), "sluice: record: cannot write /dev/full: No space left on device")
        p = subprocess.run([SLUICE, "record", "--rotate-size", "1k", os.path.join(self.tmp.name, "file.zst")],
                           input=b"", capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 2)
        self.assertIn("rotation needs a directory", p.stderr.decode())
        # A file in a directory that does not exist: 3, naming it.
        p = subprocess.run([SLUICE, "record", os.path.join(self.tmp.name, "no", "such", "x.zst")],
                           input=lines(golden.records()), capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn("no/such/x.zst", p.stderr.decode())

    def test_a_dash_is_no_file_to_record_to(self):
        """`sluice record -` wrote a file named '-': it is refused, and nothing is created."""
        p = subprocess.run([os.path.abspath(SLUICE), "record", "-"], input=lines(golden.records()),
                           capture_output=True, timeout=60, cwd=self.tmp.name)
        self.assertEqual(p.returncode, 2)
        self.assertIn("sluice: record: PATH is where the stream is written, and '-' names no file", p.stderr.decode())
        self.assertFalse(os.path.exists(os.path.join(self.tmp.name, "-")))

    def test_compression_follows_the_file_name(self):
        """A file is compressed when its name ends in .zst (or with --compress), plain otherwise; segments
        in a directory are compressed; the output of --tee to a pipe is plain JSONL."""
        plain = os.path.join(self.tmp.name, "cap.jsonl")
        packed = os.path.join(self.tmp.name, "cap.jsonl.zst")
        forced = os.path.join(self.tmp.name, "cap.bin")
        cbor = os.path.join(self.tmp.name, "cap.cbor")
        for path, extra in ((plain, []), (packed, []), (forced, ["--compress"]), (cbor, [])):
            p = subprocess.run([SLUICE, "record", "--tee", *extra, path], input=lines(golden.records()),
                               capture_output=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertTrue(p.stdout.startswith(b'{"type":"header"'), p.stdout[:20])
        with open(plain, "rb") as f:
            self.assertTrue(f.read().startswith(b'{"type":"header"'))
        for path in (packed, forced):
            with open(path, "rb") as f:
                self.assertEqual(f.read(4), b"\x28\xb5\x2f\xfd", path)
        with open(cbor, "rb") as f:
            self.assertEqual(f.read(4), b"\xc5SLR")
        seg_dir = os.path.join(self.tmp.name, "segs") + "/"
        subprocess.run([SLUICE, "record", seg_dir], input=lines(golden.records()), check=True, timeout=60)
        names = os.listdir(seg_dir)
        self.assertEqual(len(names), 1)
        self.assertTrue(names[0].endswith(".jsonl.zst"), names)

    def test_tee_passes_the_stream_on(self):
        path = os.path.join(self.tmp.name, "cap-%Y.jsonl")
        p = subprocess.run([SLUICE, "record", "--tee", "--no-compress", path], input=lines(golden.records()),
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        written = os.path.join(self.tmp.name, time.strftime("cap-%Y.jsonl"))
        self.assertTrue(os.path.exists(written))  # strftime in the file name
        with open(written, "rb") as f:
            self.assertEqual(f.read(), p.stdout)
        self.assertEqual([key(json.loads(l)) for l in p.stdout.decode().splitlines()],
                         [key(r) for r in golden.records()])


if __name__ == "__main__":
    unittest.main(verbosity=2)
