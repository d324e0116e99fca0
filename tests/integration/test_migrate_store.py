"""`keywarden migrate-store --to DATABASE` (issue 12, "moving house"): a site
on SQLite copied whole into PostgreSQL, nothing lost.

- A site with devices (one revoked), keys in every state, users, tokens,
  logons, associations and audit records: the copy has the same counts of
  every kind, an identical `export csv`, an audit chain that verifies, and
  serves: an agent checks in with its old secret, a user recovers a key, an
  administrator signs in.
- Refusals, each changing nothing: a target that is not empty, a source
  that does not exist, a server of the site still running.
- Killed (SIGKILL) in the middle of the copy: the target is left empty and
  the command run again completes it.

Starts a PostgreSQL server of its own (tests/with-postgres); skipped where
PostgreSQL is not installed.
"""

import importlib.machinery
import importlib.util
import os
import re
import secrets
import signal
import subprocess
import time
import unittest

import kw

HERE = os.path.dirname(os.path.abspath(__file__))


def _with_postgres():
    path = os.path.join(HERE, "..", "with-postgres")
    loader = importlib.machinery.SourceFileLoader("with_postgres", path)
    spec = importlib.util.spec_from_loader("with_postgres", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


wp = _with_postgres()

# The tables of a site and the names migrate-store prints their counts by.
KINDS = [("users", "users"), ("enrollment_tokens", "enrollment tokens"),
         ("devices", "devices"), ("volumes", "volumes"), ("recovery_keys", "keys"),
         ("logons", "logons"), ("associations", "associations"),
         ("audit", "audit records"), ("meta", "meta values")]


def printed_counts(out):
    """{kind: n} from migrate-store's "copied: …" line."""
    line = next(l for l in out.splitlines() if l.startswith("copied:"))
    return {name: int(n) for n, name in
            re.findall(r"(\d+) ([a-z ]+?)(?:,| \(|$)", line[len("copied:"):])}


@unittest.skipUnless(wp.bindir(), "PostgreSQL is not installed")
class MigrateStoreTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.pg = wp.Postgres()
        cls.addClassCleanup(cls.pg.close)

    def sqlite_site(self, name):
        """A keywarden on SQLite, whatever database the other tests use."""
        k = kw.Keywarden(name=name, init=False, start=False)
        self.addCleanup(k.close)
        k.sqlite_path = os.path.join(k.dir, "kw.db")
        k.database = "sqlite:" + k.sqlite_path
        k.settings["storage"]["database"] = k.database
        k.write_config()
        k.init()
        k.start()
        return k

    def target(self, source, db):
        """A keywarden of the copy: database db of the test server, the
        source's key file (not started)."""
        url = self.pg.url_for(db)
        t = kw.Keywarden(settings={"storage": {"database": url,
                                               "key_file": source.key_file}},
                         name="mstarget", init=False, start=False)
        self.addCleanup(t.close)
        return t, url

    def pg_value(self, db, sql):
        """The one value sql selects in database db."""
        r = subprocess.run([os.path.join(wp.bindir(), "psql"), "-X", "-At", "-v",
                            "ON_ERROR_STOP=1", "-d", self.pg.url_for(db), "-c", sql],
                           capture_output=True, text=True, timeout=60, check=True)
        return int(r.stdout.strip())

    def pg_count(self, db, table):
        return self.pg_value(db, "SELECT count(*) FROM %s" % table)

    def pg_tables(self, db):
        return self.pg_value(db, "SELECT count(*) FROM information_schema.tables "
                             "WHERE table_name = 'devices'")

    def build_site(self, k):
        """Every kind of record; returns what the checks after the copy use."""
        alice, apw = "CORP\\alice", "Pw-alice-%s" % secrets.token_urlsafe(9)
        bob, bpw = "CORP\\bob", "Pw-bob-%s" % secrets.token_urlsafe(9)
        k.add_user(alice, apw)
        k.add_user(bob, bpw, "helpdesk")
        k.enroll_token("--uses", "3")       # a token left unused
        rc, out, err = k.cli("enroll", "create")
        self.assertEqual(rc, 0, err)
        rc, _, err = k.cli("enroll", "revoke", "1")
        self.assertEqual(rc, 0, err)

        # Device 1: a key disclosed then rotated away (superseded), one
        # removed, one active; alice logs on locally.
        v1 = kw.key_id()
        (k1, p1), (k2, p2), (k3, p3) = kw.new_keys(3)
        did1, sec1, _, name1 = k.device_with(keys=[(k1, p1), (k2, p2)],
                                             logons=[(alice, "local")], vid=v1)
        b = kw.Browser(k)
        b.sign_in(alice, apw)
        self.assertEqual(b.recover(k1).status, 200)
        k4 = kw.new_keys(1)[0]
        r = k.checkin(sec1, volumes=[kw.volume([(k3, p3), k4], vid=v1)],
                      logons=[{"user": alice, "type": "local"}])
        self.assertEqual(r.status, 200, r)
        # Device 2: a key disclosed and not rotated; bob associated, a
        # remote logon.
        (k5, p5), = kw.new_keys(1)
        did2, sec2, _, _ = k.device_with(keys=[(k5, p5)], logons=[("CORP\\carol", "remote")])
        k.assoc(bob, did2)
        hb = kw.Browser(k)
        hb.sign_in(bob, bpw)
        # Device 3: revoked.
        did3, sec3, _, _ = k.device_with(keys=kw.new_keys(1))
        rc, _, err = k.cli("device", "revoke", did3)
        self.assertEqual(rc, 0, err)
        b5 = kw.Browser(k)
        b5.sign_in(alice, apw)
        self.assertIn(b5.recover(k5).status, (200, 403, 404))   # an audit record either way

        states = {r["key_id"]: r["state"] for r in k.export_rows()}
        self.assertEqual(states[k1], "superseded")
        self.assertEqual(states[k2], "removed")
        self.assertEqual(states[k3], "active")
        return {"alice": (alice, apw), "v1": v1, "did1": did1, "sec1": sec1, "k3": (k3, p3),
                "did2": did2, "sec2": sec2, "sec3": sec3}

    def sqlite_counts(self, k):
        db = k.db()
        try:
            return {name: db.execute("SELECT count(*) FROM %s" % table).fetchone()[0]
                    for table, name in KINDS}
        finally:
            db.close()

    def test_sqlite_to_postgresql(self):
        src = self.sqlite_site("mssource")
        site = self.build_site(src)
        src.stop()
        _, src_rows, src_csv = src.export()     # audited: before the counts
        audit_before = src.audit_export()
        want = self.sqlite_counts(src)

        db = "kwmig_%s" % secrets.token_hex(3)
        self.pg.create_database(db)
        t, url = self.target(src, db)
        rc, out, err = src.cli("migrate-store", "--to", url, timeout=300)
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(printed_counts(out), want, out)
        self.assertIn("audit chain of the copy intact: %d records" % want["audit records"],
                      out)
        self.assertNotIn(url, out + err)        # the URL may hold a password
        for table, name in KINDS:
            self.assertEqual(self.pg_count(db, table), want[name], table)
        self.assertEqual(self.pg_count(db, "sessions"), 0)

        # The same audit trail, and the same export, byte for byte.
        self.assertEqual(t.audit_export(), audit_before)
        _, rows, csv_text = t.export()
        self.assertEqual(csv_text, src_csv)
        self.assertEqual(len(rows), len(src_rows))
        rc, out, err = t.cli("audit", "verify")
        self.assertEqual(rc, 0, out + err)

        # The copy serves: the agent's secret, a user's recovery, the admin.
        t.start()
        r = t.checkin(site["sec1"], volumes=[kw.volume([site["k3"]], vid=site["v1"])])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(t.checkin(site["sec3"]).status, 401)   # still revoked
        b = kw.Browser(t)
        b.sign_in(*site["alice"])
        r = b.recover(site["k3"][0])
        self.assertEqual(r.status, 200, r)
        self.assertIn(site["k3"][1], r.text())
        a = kw.Browser(t)
        a.sign_in("admin", kw.ADMIN_PASSWORD)
        self.assertEqual(a.get("/helpdesk/admin/users").status, 200)
        # New records after the copy get rows of their own.
        did, _ = t.register()
        self.assertTrue(did)
        t.stop()
        rc, out, err = t.cli("audit", "verify")
        self.assertEqual(rc, 0, out + err)

        # Refused: the target is not empty; nothing changes.
        before = t.export()[2]
        rc, out, err = src.cli("migrate-store", "--to", url, timeout=300)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("not empty", err)
        self.assertEqual(t.export()[2], before)

    def test_refusals(self):
        src = self.sqlite_site("msrefuse")
        src.device_with(keys=kw.new_keys(1))
        db = "kwmigref_%s" % secrets.token_hex(3)
        self.pg.create_database(db)
        _, url = self.target(src, db)

        # The server of the site runs: the key file is locked.
        rc, out, err = src.cli("migrate-store", "--to", url, timeout=300)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("running", err)
        self.assertEqual(self.pg_tables(db), 0)     # never even opened
        src.stop()

        # No --to; the configured database itself.
        rc, out, err = src.cli("migrate-store")
        self.assertEqual(rc, 2, out + err)
        rc, out, err = src.cli("migrate-store", "--to", src.database)
        self.assertEqual(rc, 1, out + err)

        # The source does not exist: not created either.
        missing = os.path.join(src.dir, "missing.db")
        src.settings["storage"]["database"] = "sqlite:" + missing
        src.write_config()
        rc, out, err = src.cli("migrate-store", "--to", url, timeout=300)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("does not exist", err)
        self.assertFalse(os.path.exists(missing))
        self.assertEqual(self.pg_tables(db), 0)

    def test_killed_mid_copy_then_rerun(self):
        src = self.sqlite_site("mskill")
        user, pw = "CORP\\dora", "Pw-dora-%s" % secrets.token_urlsafe(9)
        src.add_user(user, pw)
        for _ in range(3):
            keys = kw.new_keys(2)
            src.device_with(keys=keys, logons=[(user, "local")])
        b = kw.Browser(src)
        b.sign_in(user, pw)
        self.assertEqual(b.recover(keys[0][0]).status, 200)    # an audit record
        rc, _, err = src.cli("enroll", "create")
        self.assertEqual(rc, 0, err)
        src.stop()
        src_csv = src.export()[2]
        want = self.sqlite_counts(src)

        db = "kwmigkill_%s" % secrets.token_hex(3)
        self.pg.create_database(db)
        t, url = self.target(src, db)
        rc, out, err = t.cli("migrate")          # the schema, no rows
        self.assertEqual(rc, 0, out + err)

        # A session holding SHARE on the audit table lets the copy count and
        # write devices, volumes and keys, and stops it at its first audit
        # record: the moment to kill it is then certain, not a race.
        locker = subprocess.Popen(
            [os.path.join(wp.bindir(), "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
             self.pg.url_for(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        self.addCleanup(lambda: locker.poll() is None and locker.kill())
        locker.stdin.write("BEGIN; LOCK TABLE audit IN SHARE MODE; SELECT 'locked';\n")
        locker.stdin.flush()
        self.assertEqual(locker.stdout.readline().strip(), "locked")

        proc = subprocess.Popen([kw.BINARY, "--config", src.conf, "migrate-store",
                                 "--to", url], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())

        def waiting_on_audit():
            return self.pg_value(db, "SELECT count(*) FROM pg_stat_activity WHERE "
                                 "wait_event_type = 'Lock' AND query LIKE "
                                 "'INSERT INTO audit%'") == 1
        kw.wait_for(waiting_on_audit, timeout=120)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        locker.stdin.write("ROLLBACK;\n\\q\n")
        locker.stdin.flush()
        locker.wait(30)

        # Nothing of the killed copy is kept (its transaction never
        # committed); the command run again completes the copy.
        def backend_gone():
            return self.pg_value(db, "SELECT count(*) FROM pg_stat_activity WHERE "
                                 "datname = '%s' AND pid <> pg_backend_pid()" % db) == 0
        kw.wait_for(backend_gone, timeout=60)
        for table, _ in KINDS:
            self.assertEqual(self.pg_count(db, table), 0, table)
        rc, out, err = src.cli("migrate-store", "--to", url, timeout=300)
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(printed_counts(out), want, out)
        self.assertEqual(t.export()[2], src_csv)
        rc, out, err = t.cli("audit", "verify")
        self.assertEqual(rc, 0, out + err)


if __name__ == "__main__":
    unittest.main()
