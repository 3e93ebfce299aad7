"""The install rules and the Debian package: built from the tree with CPack, installed into a scratch
root with dpkg, `man sluice` and bash completion working from what it installed, removed cleanly."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from support import SLUICE  # noqa: E402

BUILD = os.path.dirname(os.path.abspath(SLUICE))


class Package(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="sluice-package-")
        p = subprocess.run(["cpack", "-G", "DEB", "-B", os.path.join(cls.work, "out"),
                            "--config", os.path.join(BUILD, "CPackConfig.cmake")],
                           capture_output=True, timeout=300)
        assert p.returncode == 0, p.stdout.decode() + p.stderr.decode()
        debs = [f for f in os.listdir(os.path.join(cls.work, "out")) if f.endswith(".deb")]
        assert len(debs) == 1, debs
        cls.deb = os.path.join(cls.work, "out", debs[0])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.work, ignore_errors=True)

    def test_package_says_what_it_needs(self):
        info = subprocess.run(["dpkg-deb", "-f", self.deb, "Package", "Depends"], capture_output=True,
                              check=True).stdout.decode()
        self.assertIn("Package: sluice", info)
        for lib in ("libssl3", "libnghttp2-14", "libzstd1"):  # found from the binary, not listed by hand
            self.assertIn(lib, info)

    def test_installs_man_page_and_completion_work_and_it_removes_cleanly(self):
        root = os.path.join(self.work, "root")
        admin = os.path.join(root, "var", "lib", "dpkg")
        os.makedirs(os.path.join(admin, "info"))
        os.makedirs(os.path.join(admin, "updates"))
        open(os.path.join(admin, "status"), "w").close()
        dpkg = ["dpkg", "--root=" + root, "--admindir=" + admin, "--force-depends", "--force-script-chrootless",
                "--log=/dev/null"]
        p = subprocess.run(dpkg + ["-i", self.deb], capture_output=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        usr = os.path.join(root, "usr")

        # The binary runs.
        p = subprocess.run([os.path.join(usr, "bin", "sluice"), "--version"], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertIn(b"sluice", p.stdout)

        # `man sluice` and `man sluice-proxy` find the installed pages (MANPATH as the root's /usr would be).
        env = dict(os.environ, MANPATH=os.path.join(usr, "share", "man"), MANPAGER="cat", PAGER="cat",
                   MANWIDTH="80")
        for page, text in (("sluice", "sluice-proxy"), ("sluice-proxy", "--listen-host")):
            p = subprocess.run(["man", page], capture_output=True, env=env, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr.decode())
            self.assertIn(text, p.stdout.decode().replace("\u2010", "-").replace("\u2212", "-"))
            where = subprocess.run(["man", "-w", page], capture_output=True, env=env, timeout=30).stdout.decode()
            self.assertTrue(where.startswith(usr), where)

        # Bash completion as bash-completion loads it: by command name, from the installed directory.
        script = ("source /usr/share/bash-completion/bash_completion; "
                  "BASH_COMPLETION_USER_DIR=%s; PATH=%s:$PATH; "
                  "_completion_loader sluice; "
                  "COMP_WORDS=(sluice proxy --listen-h); COMP_CWORD=2; COMP_LINE='sluice proxy --listen-h'; "
                  "COMP_POINT=${#COMP_LINE}; $(complete -p sluice | sed -E 's/.*-F ([^ ]+).*/\\1/') sluice; "
                  "echo ${COMPREPLY[*]}") % (os.path.join(usr, "share", "bash-completion"),
                                             os.path.join(usr, "bin"))
        p = subprocess.run(["bash", "-c", script], capture_output=True, timeout=30)
        self.assertEqual(p.stdout.decode().split(), ["--listen-host"], p.stderr.decode())

        # Removed: every file it installed is gone.
        p = subprocess.run(dpkg + ["-r", "sluice"], capture_output=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        left = [os.path.join(d, f) for d, _, files in os.walk(usr) for f in files]
        self.assertEqual(left, [])
        status = subprocess.run(["dpkg-query", "--admindir=" + admin, "-W", "-f=${Status}", "sluice"],
                                capture_output=True).stdout.decode()
        self.assertNotIn("installed", status.replace("not-installed", ""))


if __name__ == "__main__":
    unittest.main(verbosity=2)
