"""`keywarden export csv` is audited (SPEC §6, §9; README "Command line";
doc/behaviour.md "Operations"): every export is a record in the audit chain
(who: the operating-system account and the sudo user; when; how many keys;
where to), committed before the first recovery password is written. Without
the record nothing is written, and the count is that of the rows written."""

import os
import pwd
import re
import subprocess
import threading
import unittest

import kw
from kw import new_keys, volume


def me():
    return pwd.getpwuid(os.getuid()).pw_name


class ExportAuditTest(unittest.TestCase):

    def setUp(self):
        self.kw = kw.Keywarden(name=self.id().rsplit(".", 1)[-1])
        self.addCleanup(self.kw.close)
        self.keys = {}
        for _ in range(2):
            did, secret = self.kw.register()
            ks = new_keys(3)
            self.assertEqual(self.kw.checkin(secret, volumes=[volume(ks)]).status, 200)
            self.keys.update(ks)
        self.kw.stop()

    def exported_records(self):
        return [r for r in self.kw.audit_export() if r["result"] == "exported"]

    def assertVerifies(self):
        rc, out, err = self.kw.cli("audit", "verify")
        self.assertEqual(rc, 0, out + err)

    def assertNoPassword(self, text, what):
        for pw in self.keys.values():
            self.assertNotIn(pw, text, what)

    def test_export_to_standard_output_is_recorded(self):
        self.assertEqual(self.exported_records(), [])
        _, rows, _ = self.kw.export()
        self.assertEqual(len(rows), 6)
        recs = self.exported_records()
        self.assertEqual(len(recs), 1)
        r = recs[0]
        self.assertEqual((r["source"], r["actor"], r["key_type"], r["comment"]),
                         ("cli", me(), "recovery_password", "6 keys to standard output"))
        self.assertTrue(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", r["time"]), r)
        # audit export --result exported finds it
        rc, out, err = self.kw.cli("audit", "export", "--result", "exported")
        self.assertEqual(rc, 0, err)
        self.assertIn("6 keys to standard output", out)
        self.assertVerifies()

    def test_every_result_filters(self):
        # each result a record can hold is a --result the CLI takes
        for result in ("disclosed", "ambiguous", "not_found", "invalid", "rate_limited",
                       "denied", "exported", "rekeyed", "associated", "imported", "user_added",
                       "roles_changed", "user_disabled", "user_enabled", "password_reset",
                       "token_created", "token_revoked"):
            rc, out, err = self.kw.cli("audit", "export", "--result", result)
            self.assertEqual(rc, 0, (result, err))
        rc, out, err = self.kw.cli("audit", "export", "--result", "nonsense")
        self.assertNotEqual(rc, 0, err)
        self.assertIn("associated", err, "the message lists every result")

    def test_export_to_file_is_recorded(self):
        rc, out, err = self.kw.cli("export", "csv", "--output", "backup.csv")
        self.assertEqual(rc, 0, err)
        r = self.exported_records()[-1]
        self.assertEqual(r["comment"], "6 keys to " + os.path.join(self.kw.dir, "backup.csv"))
        # two exports, two records
        self.kw.export()
        self.assertEqual([r["comment"] for r in self.exported_records()][1:],
                         ["6 keys to standard output"])
        self.assertVerifies()

    def test_sudo_user_is_recorded(self):
        env = dict(os.environ, SUDO_USER="alice")
        p = subprocess.run([kw.BINARY, "--config", self.kw.conf, "export", "csv"],
                           capture_output=True, text=True, env=env, timeout=kw.CLI_TIMEOUT)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.exported_records()[-1]["actor"], "%s (sudo from alice)" % me())

    @kw.needs_sqlite
    def test_audit_failure_exports_nothing(self):
        path = os.path.join(self.kw.dir, "backup.csv")
        db = self.kw.db()
        try:
            db.execute("CREATE TRIGGER fail_audit BEFORE INSERT ON audit BEGIN "
                       "SELECT RAISE(ABORT, 'audit store failure'); END;")
            rc, out, err = self.kw.cli("export", "csv")
            self.assertNotEqual(rc, 0)
            self.assertEqual(out, "")
            self.assertIn("audit", err)
            self.assertNoPassword(err, "stderr")
            rc, out, err = self.kw.cli("export", "csv", "--output", path)
            self.assertNotEqual(rc, 0)
            with open(path) as f:
                self.assertNoPassword(f.read(), "the output file")
        finally:
            db.execute("DROP TRIGGER IF EXISTS fail_audit")
            db.close()
        self.assertEqual(self.exported_records(), [])
        self.assertEqual(len(self.kw.export()[1]), 6)
        self.assertEqual(len(self.exported_records()), 1)
        self.assertVerifies()

    @kw.needs_sqlite
    def test_undecryptable_key_exports_nothing(self):
        db = self.kw.db()
        try:
            rid, sealed = db.execute("SELECT id, sealed FROM recovery_keys "
                                     "ORDER BY id DESC").fetchone()
            sealed = bytearray(sealed)
            sealed[-1] ^= 1
            db.execute("UPDATE recovery_keys SET sealed = ? WHERE id = ?", (bytes(sealed), rid))
        finally:
            db.close()
        rc, out, err = self.kw.cli("export", "csv")
        self.assertNotEqual(rc, 0)
        self.assertIn("does not decrypt", err)
        self.assertNoPassword(out, "stdout")
        self.assertEqual(self.exported_records(), [])

    def test_count_is_what_was_written(self):
        # Check-ins go on while exports run: each record counts the rows
        # that export wrote.
        self.kw.start()
        stop = threading.Event()
        errors = []

        def checkins():
            try:
                did, secret = self.kw.register()
                vols = []
                while not stop.is_set():
                    vols.append(volume(new_keys(1)))
                    r = self.kw.checkin(secret, volumes=vols[-64:])
                    if r.status != 200:
                        errors.append(r)
                        return
            except Exception as e:   # reported below, not lost in the thread
                errors.append(e)

        t = threading.Thread(target=checkins)
        t.start()
        counts = []
        try:
            for _ in range(5):
                rc, out, err = self.kw.cli("export", "csv")
                self.assertEqual(rc, 0, err)
                counts.append(len(kw.parse_csv(out)[1]))
        finally:
            stop.set()
            t.join(timeout=60)
        self.assertEqual(errors, [])
        self.assertEqual(["%d keys to standard output" % n for n in counts],
                         [r["comment"] for r in self.exported_records()])
        self.kw.stop()
        self.assertVerifies()


if __name__ == "__main__":
    unittest.main()
