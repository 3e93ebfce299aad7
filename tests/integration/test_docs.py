"""Man pages, completions, README and examples stay true to the CLI: a missing flag fails here."""
import glob
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from support import ROOT, SLUICE, TEST_ENV, run  # noqa: E402


def cli():
    """{subcommand: [flags]} from the binary itself."""
    out = {}
    for line in run("--dump-cli").stdout.decode().splitlines():
        parts = line.split()
        out.setdefault(parts[0], [])
        if len(parts) > 1 and parts[1] not in ("-h",):  # -h is CLI11's universal alias of --help
            out[parts[0]].append(parts[1])
    return out


def read(*path):
    with open(os.path.join(ROOT, *path)) as f:
        return f.read()


def roff_text(text):
    return text.replace("\\-", "-").replace("\\fR", "").replace("\\fP", "").replace("\\fB", "").replace("\\fI", "")


class Docs(unittest.TestCase):
    def test_every_subcommand_has_a_man_page_naming_every_flag(self):
        main_page = roff_text(read("man", "sluice.1"))
        for sub, flags in cli().items():
            page = roff_text(read("man", "sluice-%s.1" % sub))
            self.assertIn("sluice-%s" % sub, main_page)
            for flag in flags:
                if flag == "--help":
                    continue
                self.assertRegex(page, r"(?<![\w-])%s(?![\w-])" % re.escape(flag), "%s %s" % (sub, flag))
            # CMD.cpp exists for each subcommand, one per file
            self.assertTrue(os.path.exists(os.path.join(ROOT, "cmd", "%s.cpp" % sub)))

    def test_completions_name_every_subcommand_and_flag(self):
        files = {"bash": read("completions", "sluice.bash"), "zsh": read("completions", "_sluice"),
                 "fish": read("completions", "sluice.fish")}
        for sub, flags in cli().items():
            for shell, text in files.items():
                self.assertIn(sub, text, shell)
                for flag in flags:
                    if shell == "fish" and not flag.startswith("-"):  # a verb: `sluice ca export`
                        pattern = r"(?<![\w-])%s(?![\w-])" % re.escape(flag)
                    elif shell == "fish":
                        name = flag.lstrip("-")
                        pattern = r"-%s %s(?![\w-])" % ("l" if flag.startswith("--") else "s", re.escape(name))
                    else:
                        pattern = r"(?<![\w-])%s(?![\w-])" % re.escape(flag)
                    self.assertRegex(text, pattern, "%s: %s %s" % (shell, sub, flag))

    def test_completion_scripts_parse_and_complete(self):
        subprocess.run(["bash", "-n", os.path.join(ROOT, "completions", "sluice.bash")], check=True)
        subprocess.run(["zsh", "-n", os.path.join(ROOT, "completions", "_sluice")], check=True)
        subprocess.run(["fish", "--no-execute", os.path.join(ROOT, "completions", "sluice.fish")], check=True)
        script = ("source /usr/share/bash-completion/bash_completion; source %s; "
                  "COMP_WORDS=(sluice show --j); COMP_CWORD=2; COMP_LINE='sluice show --j'; COMP_POINT=15; "
                  "_sluice; echo ${COMPREPLY[*]}") % os.path.join(ROOT, "completions", "sluice.bash")
        out = subprocess.run(["bash", "-c", script], capture_output=True, check=True).stdout.decode()
        self.assertEqual(out.split(), ["--jsonl"])
        out = subprocess.run(["fish", "-c", "source %s; complete -C 'sluice pro'" %
                              os.path.join(ROOT, "completions", "sluice.fish")],
                             capture_output=True, check=True).stdout.decode()
        self.assertIn("proxy", out)

    def test_man_pages_render_without_warnings(self):
        for page in glob.glob(os.path.join(ROOT, "man", "*.1")):
            p = subprocess.run(["man", "--warnings", "-l", page], capture_output=True,
                               env=dict(os.environ, MANWIDTH="80", MANPAGER="cat", PAGER="cat"))
            self.assertEqual(p.returncode, 0, page)
            self.assertEqual(p.stderr.decode(), "", page)
            self.assertIn("SYNOPSIS", p.stdout.decode())

    def test_readme_names_every_subcommand_and_the_two_commands(self):
        readme = read("README.md")
        for sub in cli():
            self.assertIn("sluice %s" % sub, readme)
        self.assertIn("scripts/start", readme)
        self.assertIn("scripts/test", readme)
        self.assertIn("scripts/test", read(".ci", "run"))


def example(name):
    """Runs examples/NAME as a user would: by its path, so it must be executable."""
    return subprocess.run([os.path.join(ROOT, "examples", name)], capture_output=True, timeout=120, cwd=ROOT,
                          env=dict(TEST_ENV, SLUICE=os.path.abspath(SLUICE)))


class Examples(unittest.TestCase):
    def test_every_example_runs(self):
        scripts = sorted(glob.glob(os.path.join(ROOT, "examples", "*.sh")))
        self.assertTrue(scripts)
        for script in scripts:
            with self.subTest(example=os.path.basename(script)):
                self.assertTrue(os.access(script, os.X_OK), "not executable")
                # What an example starts it stops by process id: a pattern of a command line can stop
                # another user's process, or another run of the same example.
                with open(script) as f:
                    self.assertNotRegex(f.read(), r"\b(pkill|killall)\b")
                p = example(os.path.basename(script))
                self.assertEqual(p.returncode, 0, p.stderr.decode())
                self.assertTrue(p.stdout.strip())
        out = example("record-tcp.sh").stdout
        self.assertIn(b"hello\nworld\n", out)
        self.assertEqual(out.count(b"raw -> 127.0.0.1:"), 2)
        out = example("record-http.sh").stdout
        self.assertIn(b"hello over HTTP/1.1\n", out)
        self.assertRegex(out, rb"GET http://127.0.0.1:\d+/hello.txt 200 OK")
        self.assertRegex(out, rb"/missing 404 ")
        self.assertEqual(out.count(b"GET /hello.txt HTTP/1.1\r\n"), 2)  # as sent, and as received
        out = example("cron-capture.sh").stdout
        self.assertRegex(out, rb"== segments\ncapture-\d{8}-\d\d-0000.jsonl.zst\n")
        self.assertEqual(len(re.findall(rb"/health\?check=\d 200 OK", out)), 3)
        out = example("triage.sh").stdout
        self.assertEqual(len(re.findall(rb"GET http://127.0.0.1:\d+/orders/[135] 503 Service Unavailable", out)), 3)
        self.assertEqual(len(re.findall(rb"\n503 http://\S+/orders/[135] {\"error\": \"database unavailable\"}", out)), 3)
        self.assertEqual(out.count(b"curl -sS --http1.1"), 3)
        out = example("rule-file.sh").stdout
        self.assertIn(b'"net": 1.0, "total": 1.2} (202)\n', out)
        self.assertIn(b"rules: reloaded rules.json (2 rules)\n", out)
        self.assertIn(b'"net": 2.0, "total": 2.4} (202)\n', out)
        out = example("redact.sh").stdout
        self.assertIn(b'"card": "**** **** **** ****", "email": "***@***********"', out)
        self.assertIn(b"tagged redacted: authorization,email,credit_card\n", out)
        self.assertIn(b"bug-report.har: 1 entry, POST http://", out)
        p = example("ci-replay.sh")
        self.assertIn(b'== good build\n<testsuite name="sluice replay" tests="4" failures="0" errors="0"', p.stdout)
        self.assertIn(b'tests="4" failures="3" errors="0"', p.stdout)
        self.assertIn(b"4 flows: 4 passed, 0 failed", p.stderr)
        self.assertIn(b"body $.total: 48.0 -> 40.0", p.stderr)
        p = example("offline-tests.sh")
        self.assertIn(b"sluice: serving 4 recorded responses (--serve-from)\n", p.stdout)
        self.assertIn(b"Ran 4 tests", p.stderr)
        self.assertIn(b"\nOK\n", p.stderr)
        self.assertRegex(p.stdout, rb"GET http://127.0.0.1:\d+/orders/1 200 OK")
        self.assertRegex(p.stdout, rb"GET http://127.0.0.1:\d+/orders/3 502 Bad Gateway")


if __name__ == "__main__":
    unittest.main(verbosity=2)
