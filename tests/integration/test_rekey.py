"""`keywarden rekey` and how every command finds the master key (SPEC §6;
README "Back up the key file"; doc/behaviour.md "Operations"): no
interruption of rekey at any point, and no rerun of rekey, export or serve
after it, loses a key the database is sealed with; `export csv` works after
an interrupted rekey without the server; the previous key is kept for older
backups; rekey is an audit record.

Interruptions are real: strace kills the process (SIGKILL, as kill -9) when it
makes its N-th call of a system call (link, rename, fsync, fdatasync,
pwrite64), for every N up to the run that completes. The issue's state (the
database sealed with KEY_FILE.new's key, KEY_FILE still the old key) is also
built by hand from a finished rekey."""

import fcntl
import hashlib
import os
import pwd
import re
import shutil
import sqlite3
import subprocess
import unittest

import kw
from kw import new_keys, volume

STRACE = shutil.which("strace")
LABEL = b"keywarden master key id"
KILLED = (-9, 128 + 9)   # strace dies of the same signal as the program


def fingerprint(path):
    """The key's fingerprint as keywarden computes it (core/seal.c)."""
    with open(path) as f:
        key = bytes.fromhex(f.read().strip())
    return hashlib.blake2b(LABEL, digest_size=8, key=key).hexdigest()


def db_fingerprint(k):
    db = sqlite3.connect(k.sqlite_path)
    try:
        row = db.execute("SELECT value FROM meta WHERE name = 'master_key_id'").fetchone()
    finally:
        db.close()
    return row[0] if row else None


def me():
    return pwd.getpwuid(os.getuid()).pw_name


@kw.needs_sqlite
class RekeyCase(unittest.TestCase):
    """One instance with escrowed keys, made once; each test works on copies."""

    @classmethod
    def setUpClass(cls):
        if not STRACE:
            raise AssertionError("these tests need strace (apt-get install strace)")
        cls.base = kw.Keywarden(name="rekeybase")
        keys = {}
        for _ in range(3):
            did, secret = cls.base.register()
            ks = new_keys(2)
            r = cls.base.checkin(secret, volumes=[volume(ks)])
            assert r.status == 200, r
            keys.update(ks)
        cls.base.stop()
        cls.keys = keys
        cls.old_fp = fingerprint(cls.base.key_file)

    @classmethod
    def tearDownClass(cls):
        cls.base.close()

    def clone(self, src=None, name="copy"):
        """A new instance holding a copy of src's database and key files."""
        src = src or self.base
        k = kw.Keywarden(name=name, init=False, start=False)
        self.addCleanup(k.close)
        k.expected = dict(getattr(src, "expected", self.keys))   # {key ID: password}
        for f in os.listdir(src.dir):
            if f.startswith("kw.db") or f.startswith("master.key"):
                shutil.copy2(os.path.join(src.dir, f), os.path.join(k.dir, f))
        return k

    def killed_at(self, k, syscall, n, *args, path=None):
        """Runs the CLI under strace, killed at its n-th call of syscall
        (only calls whose first path is path, when given: strace -P).
        (rc, stdout, stderr)."""
        cmd = [STRACE, "-f", "-qq", "-o", "/dev/null"]
        if path:
            cmd += ["-P", path]
        cmd += ["-e", "trace=" + syscall,
                "-e", "inject=%s:signal=KILL:when=%d" % (syscall, n),
                kw.BINARY, "--config", k.conf] + list(args)
        # LeakSanitizer cannot run under ptrace; the runs without strace
        # still check for leaks.
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"),
                                                     "detect_leaks=0"]))
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=kw.CLI_TIMEOUT,
                           cwd=k.dir, env=env)
        return p.returncode, p.stdout, p.stderr

    def files(self, k):
        return sorted(f for f in os.listdir(k.dir) if f.startswith("master.key"))

    def assertKeysSafe(self, k, what):
        """The database's key is in KEY_FILE or KEY_FILE.new, and the old key
        is KEY_FILE or kept as KEY_FILE.old.FP."""
        have = db_fingerprint(k)
        where = [f for f in ("master.key", "master.key.new")
                 if os.path.exists(os.path.join(k.dir, f)) and
                 fingerprint(os.path.join(k.dir, f)) == have]
        self.assertTrue(where, "%s: no file holds the database's key %s (files %s)" %
                        (what, have, self.files(k)))
        kept = os.path.join(k.dir, "master.key.old." + self.old_fp)
        self.assertTrue(fingerprint(k.key_file) == self.old_fp or
                        (os.path.exists(kept) and fingerprint(kept) == self.old_fp),
                        "%s: the old key is gone (files %s)" % (what, self.files(k)))
        return have, where

    def assertExportSame(self, k, what=""):
        """export csv gives every password k holds; the audit chain is sound."""
        want = k.expected
        rc, out, err = k.cli("export", "csv")
        self.assertEqual(rc, 0, "%s: export failed: %s" % (what, err))
        got = {r["key_id"]: r["recovery_password"] for r in kw.parse_csv(out)[1]}
        self.assertEqual(got, want, what)
        rc, out, err = k.cli("audit", "verify")
        self.assertEqual(rc, 0, "%s: %s%s" % (what, out, err))

    def assertRekeyWorks(self, k, what):
        """rekey run twice (the first may only finish an interrupted one)
        ends on a key no earlier state had, with every password."""
        for i in range(2):
            rc, out, err = k.cli("rekey")
            self.assertEqual(rc, 0, "%s: rekey %d: %s%s" % (what, i + 1, out, err))
            self.assertExportSame(k, what="%s, after rekey %d" % (what, i + 1))
        self.assertEqual(db_fingerprint(k), fingerprint(k.key_file), what)
        self.assertFalse(os.path.exists(k.key_file + ".new"), what)

    def assertServeWorks(self, k, what):
        k.start()
        self.assertEqual(k.request("GET", "/healthz").status, 200, what)
        self.assertExportSame(k, what=what + ", export while serving")
        did, secret = k.register()
        extra = dict(new_keys(1))
        r = k.checkin(secret, volumes=[volume(list(extra.items()))])
        self.assertEqual(r.status, 200, r)
        k.stop()
        k.expected.update(extra)
        self.assertExportSame(k, what=what + ", after serving")

    def interrupted(self):
        """The issue's state, built from a real rekey: the database sealed
        with the new key, KEY_FILE the old key, KEY_FILE.new the new one, and
        no old key kept aside (as an older rekey left it)."""
        k = self.clone(name="interrupted")
        old = open(k.key_file).read()
        rc, out, err = k.cli("rekey")
        self.assertEqual(rc, 0, err)
        os.rename(k.key_file, k.key_file + ".new")
        with open(k.key_file, "w") as f:
            f.write(old)
        os.chmod(k.key_file, 0o600)
        kept = os.path.join(k.dir, "master.key.old." + self.old_fp)
        if os.path.exists(kept):
            os.remove(kept)
        self.new_fp = fingerprint(k.key_file + ".new")
        self.assertEqual(db_fingerprint(k), self.new_fp)
        return k


class InterruptedRekeyTest(RekeyCase):

    def test_issue_sequence(self):
        # Killed after its commit, before its rename; then rekey again
        # before the server ever starts.
        k = self.clone()
        rc, out, err = self.killed_at(k, "rename,renameat,renameat2", 1, "rekey",
                                      path=k.key_file + ".new")
        self.assertIn(rc, KILLED, out + err)
        new_fp = fingerprint(k.key_file + ".new")
        self.assertEqual(db_fingerprint(k), new_fp)
        self.assertEqual(fingerprint(k.key_file), self.old_fp)
        rc, out, err = k.cli("rekey")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("finished an interrupted rekey", err)
        self.assertEqual(fingerprint(k.key_file), new_fp)
        self.assertEqual(db_fingerprint(k), new_fp)
        self.assertExportSame(k, what="after the second rekey")
        self.assertServeWorks(k, "after the second rekey")
        self.assertRekeyWorks(k, "later")

    def test_export_after_interruption_without_server(self):
        k = self.interrupted()
        rc, out, err = k.cli("export", "csv")
        self.assertEqual(rc, 0, err)
        self.assertEqual({r["key_id"]: r["recovery_password"]
                          for r in kw.parse_csv(out)[1]}, k.expected)
        # export could take the lock alone: it finished the rename, and
        # kept the old key.
        self.assertIn("finished an interrupted rekey", err)
        self.assertEqual(fingerprint(k.key_file), self.new_fp)
        self.assertFalse(os.path.exists(k.key_file + ".new"))
        kept = os.path.join(k.dir, "master.key.old." + self.old_fp)
        self.assertEqual(fingerprint(kept), self.old_fp)
        self.assertEqual(os.stat(kept).st_mode & 0o777, 0o600)
        self.assertServeWorks(k, "after export finished it")

    def test_serve_after_interruption(self):
        k = self.interrupted()
        k.start()
        self.assertIn("finished an interrupted rekey", k.log())
        self.assertEqual(fingerprint(k.key_file), self.new_fp)
        k.stop()
        self.assertServeWorks(k, "after serve finished it")
        self.assertRekeyWorks(k, "after serve finished it")

    def test_rekey_after_interruption(self):
        k = self.interrupted()
        rc, out, err = k.cli("rekey")
        self.assertEqual(rc, 0, err)
        self.assertIn("finished an interrupted rekey", err)
        self.assertIn("run rekey again", out)
        self.assertEqual(fingerprint(k.key_file), self.new_fp)
        self.assertExportSame(k)
        self.assertRekeyWorks(k, "after rekey finished it")

    def test_not_finished_while_shared(self):
        # Another process holds the key file (shared): the rename waits,
        # and every command uses KEY_FILE.new's key meanwhile.
        k = self.interrupted()
        fd = os.open(k.key_file, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            rc, out, err = k.cli("export", "csv")
            self.assertEqual(rc, 0, err)
            self.assertIn("interrupted rekey", err)
            self.assertEqual({r["key_id"]: r["recovery_password"]
                              for r in kw.parse_csv(out)[1]}, k.expected)
            self.assertEqual(fingerprint(k.key_file), self.old_fp)
            self.assertEqual(fingerprint(k.key_file + ".new"), self.new_fp)
            k.start()
            self.assertIn("interrupted rekey", k.log())
            did, secret = k.register()
            extra = dict(new_keys(1))
            self.assertEqual(k.checkin(secret, volumes=[volume(list(extra.items()))]).status,
                             200)
            # rekey must not run beside the server, interrupted or not, also
            # once the other holder is gone (the server's failed attempt to
            # take the lock alone must not have cost it its shared lock)
            os.close(fd)
            fd = None
            rc, out, err = k.cli("rekey")
            self.assertNotEqual(rc, 0)
            self.assertIn("stop it before rekey", err)
            k.stop()
        finally:
            if fd is not None:
                os.close(fd)
        k.expected.update(extra)
        self.assertEqual(fingerprint(k.key_file + ".new"), self.new_fp)
        self.assertExportSame(k, what="after the lock was released")
        self.assertEqual(fingerprint(k.key_file), self.new_fp)
        self.assertFalse(os.path.exists(k.key_file + ".new"))

    def test_finishing_interrupted(self):
        # The command finishing the rename is killed too, at each step.
        for syscall in ("link", "rename", "fsync"):
            n = 1
            while True:
                k = self.interrupted()
                rc, out, err = self.killed_at(k, syscall, n, "export", "csv")
                what = "export killed at %s #%d" % (syscall, n)
                if rc not in KILLED:
                    self.assertEqual(rc, 0, what + ": " + err)
                    break
                self.assertNotIn(list(self.keys.values())[0], out,
                                 what + ": a password before its audit record")
                self.assertKeysSafe(k, what)
                self.assertExportSame(k, what=what + ", export again")
                self.assertEqual(fingerprint(k.key_file), self.new_fp, what)
                n += 1
                self.assertLess(n, 20, "strace never let %s run to the end" % syscall)


class KillRekeyTest(RekeyCase):

    def test_kill_at_every_step(self):
        # Kill rekey at every call of each system call that changes a file
        # or makes it durable; from every state, export first, rekey first
        # and serve first must each find every password.
        seen = set()
        runs = 0
        for syscall in ("link", "rename", "fsync", "fdatasync", "pwrite64"):
            n = 1
            while True:
                k = self.clone(name="kill")
                rc, out, err = self.killed_at(k, syscall, n, "rekey")
                what = "rekey killed at %s #%d" % (syscall, n)
                runs += 1
                if rc not in KILLED:
                    self.assertEqual(rc, 0, what + ": " + out + err)
                    self.assertEqual(fingerprint(k.key_file), db_fingerprint(k))
                    self.assertExportSame(k, what="%s completed" % syscall)
                    break
                have, where = self.assertKeysSafe(k, what)
                sig = (have == self.old_fp, tuple(where), tuple(self.files(k)))
                if sig not in seen:
                    seen.add(sig)
                    self.assertRekeyWorks(self.clone(k, "rerun"), what + ", rekey first")
                    self.assertServeWorks(self.clone(k, "rerun"), what + ", serve first")
                self.assertExportSame(k, what=what + ", export first")
                self.assertKeysSafe(k, what + ", after export")
                n += 1
                self.assertLess(n, 80, "strace never let %s run to the end" % syscall)
        # The kills reached states on both sides of the commit.
        self.assertTrue(any(s[0] for s in seen), seen)
        self.assertTrue(any(not s[0] for s in seen), seen)
        self.assertGreater(runs, 10)


class RekeyFilesTest(RekeyCase):

    def test_old_key_kept_for_backups(self):
        k = self.clone()
        backup = self.clone(k, "backup")        # a database backup before the rekey
        rc, out, err = k.cli("rekey")
        self.assertEqual(rc, 0, err)
        kept = os.path.join(k.dir, "master.key.old." + self.old_fp)
        self.assertIn(kept, out)
        self.assertEqual(fingerprint(kept), self.old_fp)
        self.assertEqual(os.stat(kept).st_mode & 0o777, 0o600)
        self.assertNotEqual(fingerprint(k.key_file), self.old_fp)
        # The backup, with the new key file, is refused with a pointer to
        # the kept key.
        os.remove(backup.key_file)
        shutil.copy2(k.key_file, backup.key_file)
        shutil.copy2(kept, os.path.join(backup.dir, os.path.basename(kept)))
        rc, out, err = backup.cli("export", "csv")
        self.assertNotEqual(rc, 0)
        self.assertIn("does not match", err)
        self.assertIn("master.key.old." + self.old_fp, err)
        self.assertEqual(out, "")
        # With the kept key it is readable.
        shutil.copy2(kept, backup.key_file)
        self.assertExportSame(backup, what="the backup with the kept key")
        # A second rekey keeps the first new key too: each retired key has
        # its own name.
        mid = fingerprint(k.key_file)
        rc, out, err = k.cli("rekey")
        self.assertEqual(rc, 0, err)
        self.assertEqual(fingerprint(kept), self.old_fp)
        self.assertEqual(fingerprint(os.path.join(k.dir, "master.key.old." + mid)), mid)
        self.assertExportSame(k)

    def test_leftover_new_key_is_used(self):
        # A KEY_FILE.new beside a key file that matches the database was made
        # by a rekey that never committed: rekey takes it up, never replaces it.
        k = self.clone()
        other = kw.Keywarden(name="other", start=False)
        self.addCleanup(other.close)
        shutil.copy2(other.key_file, k.key_file + ".new")
        left = fingerprint(k.key_file + ".new")
        self.assertServeWorks(k, "with a leftover KEY_FILE.new")
        self.assertEqual(fingerprint(k.key_file + ".new"), left)
        rc, out, err = k.cli("rekey")
        self.assertEqual(rc, 0, err)
        self.assertIn("earlier rekey", out)
        self.assertEqual(fingerprint(k.key_file), left)
        self.assertEqual(db_fingerprint(k), left)
        self.assertExportSame(k)

    def test_unusable_new_file_refused_and_kept(self):
        k = self.clone()
        for text, mode in (("not a key\n", 0o600), (open(k.key_file).read(), 0o600),
                           (open(k.key_file).read(), 0o644)):
            with open(k.key_file + ".new", "w") as f:
                f.write(text)
            os.chmod(k.key_file + ".new", mode)
            rc, out, err = k.cli("rekey")
            self.assertNotEqual(rc, 0, out)
            self.assertIn("master.key.new", err)
            with open(k.key_file + ".new") as f:
                self.assertEqual(f.read(), text, "rekey changed KEY_FILE.new")
            self.assertEqual(fingerprint(k.key_file), self.old_fp)
            self.assertEqual(db_fingerprint(k), self.old_fp)
            self.assertExportSame(k, what="after rekey refused")
        self.assertServeWorks(k, "beside an unusable KEY_FILE.new")

    def test_failed_transaction_keeps_new_key(self):
        # The transaction fails (its audit record cannot be written):
        # nothing changes, KEY_FILE.new stays, and the next rekey uses it.
        k = self.clone()
        db = k.db()
        db.execute("CREATE TRIGGER fail_audit BEFORE INSERT ON audit BEGIN "
                   "SELECT RAISE(ABORT, 'audit store failure'); END;")
        try:
            rc, out, err = k.cli("rekey")
            self.assertNotEqual(rc, 0, out)
            self.assertIn("nothing changed", err)
            self.assertIn("master.key.new", err)
            self.assertEqual(db_fingerprint(k), self.old_fp)
            self.assertEqual(fingerprint(k.key_file), self.old_fp)
            left = fingerprint(k.key_file + ".new")
        finally:
            db.execute("DROP TRIGGER IF EXISTS fail_audit")
            db.close()
        self.assertExportSame(k, what="after the failed rekey")
        rc, out, err = k.cli("rekey")
        self.assertEqual(rc, 0, err)
        self.assertEqual(fingerprint(k.key_file), left)
        self.assertExportSame(k)

    def test_rekey_is_audited(self):
        k = self.clone()
        before = len(k.audit_export())
        rc, out, err = k.cli("rekey", )
        self.assertEqual(rc, 0, err)
        rows = k.audit_export()
        self.assertEqual(len(rows), before + 1)
        r = rows[-1]
        self.assertEqual((r["source"], r["result"], r["actor"]), ("cli", "rekeyed", me()))
        self.assertRegex(r["comment"], r"^%d keys re-encrypted; master key %s replaced by "
                         r"%s$" % (len(k.expected), self.old_fp, fingerprint(k.key_file)))
        self.assertTrue(re.match(r"\d{4}-\d\d-\d\dT", r["time"]), r)
        rc, out, err = k.cli("audit", "verify")
        self.assertEqual(rc, 0, out + err)
        rc, out, err = k.cli("audit", "export", "--result", "rekeyed")
        self.assertEqual(rc, 0, err)
        self.assertEqual(len(out.strip().splitlines()), 2, out)   # header, the rekey


if __name__ == "__main__":
    unittest.main()
