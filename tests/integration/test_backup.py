"""`keywarden backup FILE` (SPEC §9; README "Backup and restore"): a
consistent copy of the database while the server runs and writes, which
keywarden opens as it is (every key acknowledged before it, a chain that
verifies) and which a restore serves; an existing FILE is never replaced,
a failure or an interruption leaves nothing behind."""

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import unittest

import kw
from kw import key_id, new_keys, page_text, recovery_password, volume

SETTINGS = {"identity": {"domains": "CORP:corp.example.com"},
            "limits": {"lookup_failures": "100000/15m",
                       "lookup_failures_per_address": "100000/15m"}}


def listing(d):
    return sorted(os.listdir(d))


class BackupTest(unittest.TestCase):

    def setUp(self):
        self.kw = kw.Keywarden(settings=SETTINGS, name=self.id().rsplit(".", 1)[-1])
        self.addCleanup(self.kw.close)
        if not self.kw.sqlite_path:
            raise unittest.SkipTest("keywarden backup copies SQLite databases")
        self.out = tempfile.mkdtemp(prefix="kwtest-backup-out-")
        self.addCleanup(shutil.rmtree, self.out, True)

    def backup(self, path, **kw_args):
        return self.kw.cli("backup", path, **kw_args)

    def copy_instance(self, path):
        """A configuration of the same key file on the copy: for commands."""
        conf = os.path.join(self.out, "copy.conf")
        settings = {s: dict(kv) for s, kv in self.kw.settings.items()}
        settings["storage"]["database"] = "sqlite:" + path
        lines = []
        for section, kv in settings.items():
            lines.append("[%s]" % section)
            lines += ["%s = %s" % (k, v) for k, v in kv.items()]
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")

        def cli(*args):
            p = subprocess.run([kw.BINARY, "--config", conf] + list(args),
                               capture_output=True, text=True, timeout=kw.CLI_TIMEOUT)
            return p.returncode, p.stdout, p.stderr
        return cli

    def test_backup_while_serving_then_restore(self):
        user, pw = "CORP\\alice", "Pw-alice-backup-1"
        self.kw.add_user(user, pw)
        k0 = (key_id(), recovery_password())
        _, _, _, name = self.kw.device_with([k0], [(user, "local")])
        _, secret = self.kw.register()

        # Check-ins, each a new key, and disclosures, while the backup runs.
        acked, lock, stop, errors = {}, threading.Lock(), threading.Event(), []
        disclosed = [0]

        def checkins():
            try:
                while not stop.is_set():
                    ks = new_keys(1)
                    if self.kw.checkin(secret, volumes=[volume(ks)]).status == 200:
                        with lock:
                            acked.update(ks)
            except Exception as e:   # noqa: BLE001 - reported below
                errors.append(e)

        def disclosures():
            try:
                b = kw.Browser(self.kw)
                b.sign_in(user, pw)
                while not stop.is_set():
                    if b.recover(k0[0][:8]).status != 200:
                        errors.append("a disclosure failed")
                    disclosed[0] += 1
            except Exception as e:   # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=checkins), threading.Thread(target=disclosures)]
        for t in threads:
            t.start()
        try:
            kw.wait_for(lambda: len(acked) >= 5 and disclosed[0] >= 3)
            with lock:
                before = dict(acked)
            copy = os.path.join(self.out, "kw-backup.db")
            rc, out, err = self.backup(copy)
            self.assertEqual(rc, 0, err)
            self.assertIn("copied to %s" % copy, out)
            self.assertIn("key file", out)
            n = disclosed[0]
            kw.wait_for(lambda: len(acked) >= len(before) + 5 and disclosed[0] > n)
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(errors, [])
        self.assertEqual(listing(self.out), ["kw-backup.db"])
        self.assertEqual(os.stat(copy).st_mode & 0o777, 0o600)

        # The copy: a keywarden database with every key acknowledged before
        # the backup began, and an audit chain that verifies.
        cli = self.copy_instance(copy)
        rc, out, err = cli("audit", "verify")
        self.assertEqual(rc, 0, out + err)
        rc, out, err = cli("export", "csv")
        self.assertEqual(rc, 0, err)
        _, rows = kw.parse_csv(out)
        stored = {r["key_id"]: r["recovery_password"] for r in rows}
        for kid, password in list(before.items()) + [k0]:
            self.assertEqual(stored.get(kid), password, kid)
        self.assertLess(len(stored), len(acked) + 1, "keys after the backup are not in it")

        # A key escrowed after the backup: not in what is restored.
        later = (key_id(), recovery_password())
        self.kw.device_with([later], [(user, "local")])

        # Restore: stop, the copy in the database's place with its key file,
        # start; the key escrowed before the backup is recovered.
        self.kw.stop()
        for suffix in ("-wal", "-shm"):
            if os.path.exists(self.kw.sqlite_path + suffix):
                os.unlink(self.kw.sqlite_path + suffix)
        shutil.copyfile(copy, self.kw.sqlite_path)
        self.kw.start()
        b = kw.Browser(self.kw)
        b.sign_in(user, pw)
        r = b.recover(k0[0][:8])
        self.assertEqual(r.status, 200, r)
        text = page_text(r.body)
        self.assertIn(k0[1], text)
        self.assertIn(name, text)
        self.assertEqual(b.recover(later[0][:8]).status, 404)
        rc, out, err = self.kw.cli("audit", "verify")
        self.assertEqual(rc, 0, out + err)

    def test_existing_file_is_refused_and_untouched(self):
        path = os.path.join(self.out, "taken.db")
        with open(path, "wb") as f:
            f.write(b"not a backup\n")
        os.utime(path, (1_000_000_000, 1_000_000_000))
        rc, out, err = self.backup(path)
        self.assertEqual(rc, 1)
        self.assertEqual(out, "")
        self.assertIn("%s exists" % path, err)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"not a backup\n")
        self.assertEqual(os.stat(path).st_mtime, 1_000_000_000)
        self.assertEqual(listing(self.out), ["taken.db"])
        # a symbolic link, even a dangling one, is a file there
        link = os.path.join(self.out, "link.db")
        os.symlink(os.path.join(self.out, "nowhere.db"), link)
        rc, _, err = self.backup(link)
        self.assertEqual(rc, 1)
        self.assertIn("exists", err)
        self.assertEqual(listing(self.out), ["link.db", "taken.db"])

    def test_missing_directory(self):
        where = os.path.join(self.out, "no", "such")
        rc, out, err = self.backup(os.path.join(where, "kw.db"))
        self.assertEqual(rc, 1)
        self.assertIn("cannot create a file in %s: No such file or directory" % where, err)
        self.assertEqual(listing(self.out), [])

    def test_read_only_directory(self):
        ro = os.path.join(self.out, "ro")
        os.mkdir(ro)
        if os.geteuid() == 0:
            # root writes through a mode: a read-only mount instead
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "kwtest", ro],
                               capture_output=True)
            if r.returncode != 0:
                self.skipTest("cannot mount a read-only tmpfs: %s" % r.stderr)
            self.addCleanup(subprocess.run, ["umount", ro], check=True)
            why = "Read-only file system"
        else:
            os.chmod(ro, 0o555)
            self.addCleanup(os.chmod, ro, 0o755)
            why = "Permission denied"
        rc, out, err = self.backup(os.path.join(ro, "kw.db"))
        self.assertEqual(rc, 1)
        self.assertIn("cannot create a file in %s: %s" % (ro, why), err)
        self.assertEqual(listing(ro), [])

    def test_interrupted_leaves_nothing(self):
        # SIGTERM pending when the copy starts (blocked and raised before
        # exec, which keeps it pending): the copy stops at its first step,
        # cleans up and the signal ends the process. Deterministic: no race
        # with a copy that is quick.
        def pending_term():
            signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
            os.kill(os.getpid(), signal.SIGTERM)

        path = os.path.join(self.out, "kw.db")
        p = subprocess.run([kw.BINARY, "--config", self.kw.conf, "backup", path],
                           preexec_fn=pending_term, capture_output=True, text=True,
                           timeout=kw.CLI_TIMEOUT)
        self.assertEqual(p.returncode, -signal.SIGTERM, p.stderr)
        self.assertIn("backup interrupted: nothing was written", p.stderr)
        self.assertEqual(listing(self.out), [])
        # and the server goes on
        self.assertEqual(self.kw.request("GET", "/healthz").status, 200)

    def test_signal_at_any_time(self):
        # SIGTERM at times spread over a whole backup: the copy is
        # either made, said so and exit 0 (a signal after the copy's last
        # look is taken, not left to kill the process after its success),
        # or not made at all (no FILE, no FILE.XXXXXX) and the signal ends
        # it. Which of the two depends on timing; that one of them holds,
        # never does.
        import time
        path = os.path.join(self.out, "timed.db")
        t0 = time.monotonic()
        rc, out, err = self.backup(path)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, err)
        os.unlink(path)
        made = 0
        for i in range(24):
            path = os.path.join(self.out, "kw%d.db" % i)
            p = subprocess.Popen([kw.BINARY, "--config", self.kw.conf, "backup", path],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(took * (0.4 + i * 0.05))
            p.send_signal(signal.SIGTERM)
            out, err = p.communicate(timeout=kw.CLI_TIMEOUT)
            if "database copied to" in out:
                self.assertEqual(p.returncode, 0, (i, out, err))
                self.assertEqual(listing(self.out), ["kw%d.db" % i])
                os.unlink(path)
                made += 1
            else:
                self.assertEqual(p.returncode, -signal.SIGTERM, (i, out, err))
                self.assertEqual(listing(self.out), [], (i, out, err))
        self.assertEqual(self.kw.request("GET", "/healthz").status, 200)

    def test_help(self):
        rc, out, err = self.kw.cli("backup", "--help")
        self.assertEqual(rc, 0, err)
        self.assertTrue(out.startswith("usage: keywarden backup FILE\n"), out)
        self.assertIn("key file", out)
        self.assertIn("pg_dump", out)
        rc, out, err = self.kw.cli("backup")
        self.assertEqual(rc, 2)
        self.assertIn("usage: keywarden backup FILE", err)
        rc, out, err = self.kw.cli("--help")
        self.assertIn("backup", out)


if __name__ == "__main__":
    unittest.main()
