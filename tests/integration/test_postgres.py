"""keywarden on PostgreSQL: what a shared database adds (issue 12). Starts a
throw-away server of its own (tests/with-postgres), whatever database the
other tests use; skipped where PostgreSQL is not installed.

- PostgreSQL restarted under a running keywarden: requests meanwhile get
  503 and keep nothing, /healthz says 503, and afterwards everything works
  without restarting keywarden.
- Two instances on one database: a session started on one goes on on the
  other, and disclosures through both at once leave one valid audit chain
  (`keywarden audit verify`).
- `keywarden rekey` at one instance while the other escrows: no key sealed
  with the replaced key is stored; the other says so and recovers after a
  restart with the new key file.
- pg_dump of a serving site, restored into a new database, serves.
"""

import importlib.machinery
import importlib.util
import os
import secrets
import shutil
import subprocess
import threading
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


@unittest.skipUnless(wp.bindir(), "PostgreSQL is not installed")
class PostgresTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.pg = wp.Postgres()
        cls.addClassCleanup(cls.pg.close)

    def instance(self, name, db, key_from=None):
        """A keywarden on database db of the test server; with key_from, a
        second instance of that one's site (its key file, no init)."""
        k = kw.Keywarden(settings={"storage": {"database": self.pg.url_for(db)}},
                         name=name, init=False, start=False)
        self.addCleanup(k.close)
        if key_from is None:
            self.pg.create_database(db)
            k.init()
        else:
            shutil.copy(key_from.key_file, k.key_file)
            os.chmod(k.key_file, 0o600)
        k.start()
        return k

    def healthz(self, k):
        return k.request("GET", "/healthz").status

    def test_restart_under_keywarden(self):
        k = self.instance("pgrestart", "kwrestart")
        did, secret = k.register()
        before = kw.new_keys(1)
        self.assertEqual(k.checkin(secret, volumes=[kw.volume(before)]).status, 200)

        self.pg.stop()
        try:
            during = kw.new_keys(1)
            r = k.checkin(secret, volumes=[kw.volume(during)])
            self.assertEqual(r.status, 503, r)
            self.assertEqual(self.healthz(k), 503)
        finally:
            self.pg.start()

        # No restart of keywarden: /healthz recovers by itself.
        kw.wait_for(lambda: self.healthz(k) == 200, timeout=60)
        after = kw.new_keys(1)
        self.assertEqual(k.checkin(secret, volumes=[kw.volume(before + after)]).status, 200)
        ids = {r["key_id"] for r in k.export_rows(did)}
        self.assertIn(before[0][0], ids)
        self.assertIn(after[0][0], ids)
        self.assertNotIn(during[0][0], ids)     # nothing of the refused write
        self.assertEqual(k.metrics()["keywarden_store_state"], 0)

    def test_big_export_streams(self):
        """An export reads the database a row at a time: 150 000 audit
        records (~70 MB as one result) pass through a process whose peak
        memory stays far below their size."""
        k = self.instance("pgstream", "kwstream")
        k.stop()
        n = 150000
        self.pg.psql(
            "INSERT INTO audit (seq, at, source, result, actor, end_user, computer, "
            "device_id, key_id, key_type, reason, comment, client, prev_hash, hash) "
            "SELECT 1000 + i, 1700000000 + i, 'helpdesk', 'ok', 'agent' || i, "
            "'user' || i, 'PC-' || i, md5(i::text), md5((i * 7)::text), "
            "'recovery_password', 'lost', repeat('x', 300), '127.0.0.1', "
            "sha256(i::text::bytea), sha256((i + 1)::text::bytea) "
            "FROM generate_series(1, %d) i" % n, database="kwstream")
        out = os.path.join(k.dir, "audit.csv")
        peak = os.path.join(k.dir, "peak")
        # The export runs as the grandchild of a small Python: a child of
        # this process would count this process's own peak in its
        # ru_maxrss (Linux keeps the high-water mark of the memory a
        # vfork-ed child exec-ed from).
        starter = ("import os, sys\n"
                   "pid = os.fork()\n"
                   "if pid == 0:\n"
                   "    os.execv(sys.argv[2], sys.argv[2:])\n"
                   "_, st, ru = os.wait4(pid, 0)\n"
                   "open(sys.argv[1], 'w').write(str(ru.ru_maxrss))\n"
                   "sys.exit(os.waitstatus_to_exitcode(st))\n")
        with open(out, "wb") as f:
            p = subprocess.run(["/usr/bin/python3", "-c", starter, peak, kw.BINARY,
                                "--config", k.conf, "audit", "export"],
                               stdout=f, stderr=subprocess.PIPE, cwd=k.dir)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(peak) as f:
            maxrss = int(f.read())
        with open(out, "rb") as f:
            rows = sum(1 for _ in f)
        self.assertGreater(rows, n)
        self.assertGreater(os.path.getsize(out), 60 * 1024 * 1024)
        # ru_maxrss is in KiB: whole results held 140 MB here. A sanitized
        # build keeps freed memory in quarantine: its peak says nothing.
        with open(kw.BINARY, "rb") as f:
            sanitized = b"__asan_init" in f.read()
        if not sanitized:
            self.assertLess(maxrss, 40 * 1024, "peak %d KiB" % maxrss)

    def test_concurrent_checkins_batched(self):
        """Check-ins that arrive together are written as one batch (one
        statement a table for all of them) with the outcome of one at a
        time: a device twice in the batch, a wrong secret, one new key ID
        reported by two devices."""
        k = self.instance("pgbatch", "kwbatch")
        n = 24
        devs = [k.register() for _ in range(n)]
        vols = [kw.key_id() for _ in range(n)]
        latest = {}
        for burst in range(8):
            keys = kw.new_keys(n)
            shared = keys[2]
            keys[3] = shared                  # devices 2 and 3: one key ID
            jobs = [(i, devs[i][1], keys[i]) for i in range(n)]
            jobs[1] = (1, "not-the-secret-" + secrets.token_hex(8), keys[1])
            jobs.append((0, devs[0][1], keys[0]))   # device 0 twice
            status = {}
            go = threading.Barrier(len(jobs))

            def send(slot, i, secret, key):
                go.wait()
                status[slot] = (i, k.checkin(secret, volumes=[
                    kw.volume([key], vid=vols[i])]).status)

            threads = [threading.Thread(target=send, args=(slot,) + job)
                       for slot, job in enumerate(jobs)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            got = sorted(status.values())
            self.assertEqual([s for i, s in got if i == 0], [200, 200])
            self.assertEqual([s for i, s in got if i == 1], [401])
            self.assertEqual(sorted(s for i, s in got if i in (2, 3)), [200, 409])
            self.assertEqual({s for i, s in got if i > 3}, {200})
            winner = [i for i, s in got if i in (2, 3) and s == 200][0]
            for i in range(n):
                if i == 1 or i == (5 - winner):
                    continue
                latest[i] = keys[i][0]
            if k.metrics()["keywarden_store_batched_jobs_total"] > 0 and burst >= 1:
                break
        self.assertGreater(k.metrics()["keywarden_store_batched_jobs_total"], 0)
        rows = k.export_rows()
        active = {}
        for r in rows:
            if r["state"] == "active":
                active.setdefault(r["device_id"], []).append(r["key_id"])
        for i in range(n):
            if i in latest and i not in (2, 3):
                self.assertEqual(active.get(devs[i][0]), [latest[i]], i)
        # The shared key ID is escrowed once, for one device.
        ids = [r["key_id"] for r in rows]
        self.assertEqual(len(ids), len(set(ids)))
        rc, out, err = k.cli("audit", "verify")
        self.assertEqual(rc, 0, out + err)

    def test_synchronous_standby(self):
        """A primary with a synchronous standby (doc/scale-out.md): while
        the standby is down a check-in is not acknowledged (its commit's
        wait is cancelled by statement_timeout: 503, /healthz 503) and the
        agent's retry is answered once it is back; an escrow answered 200
        is on the standby (the primary killed, the standby promoted)."""
        primary = wp.Postgres()
        self.addCleanup(primary.close)
        primary.create_database("kwsync")
        standby = wp.Postgres(standby_of=primary)
        self.addCleanup(standby.close)
        primary.psql("ALTER SYSTEM SET synchronous_standby_names = '*'")
        primary.psql("SELECT pg_reload_conf()")

        def synchronous():
            out = primary.psql("SELECT 'n=' || count(*) FROM pg_stat_replication "
                               "WHERE sync_state = 'sync'")
            return "n=1" in out

        self.assertTrue(kw.wait_for(synchronous, timeout=60))
        url = primary.url_for("kwsync") + "?options=-c%20statement_timeout%3D3000"
        k = kw.Keywarden(settings={"storage": {"database": url}}, name="pgsync",
                         init=False, start=False)
        self.addCleanup(k.close)
        k.init()
        k.start()
        did, secret = k.register()
        vol = kw.key_id()
        acked = kw.new_keys(1)
        self.assertEqual(k.checkin(secret, volumes=[kw.volume(acked, vid=vol)]).status, 200)

        standby.stop()
        pending = kw.new_keys(1)
        r = k.checkin(secret, volumes=[kw.volume(acked + pending, vid=vol)])
        self.assertEqual(r.status, 503, r)
        self.assertEqual(self.healthz(k), 503)
        standby.start()
        self.assertTrue(kw.wait_for(synchronous, timeout=60))
        # The agent's retry: answered, and the key stored once.
        r = k.checkin(secret, volumes=[kw.volume(acked + pending, vid=vol)])
        self.assertEqual(r.status, 200, r)
        self.assertTrue(kw.wait_for(lambda: self.healthz(k) == 200, timeout=30))

        last = kw.new_keys(1)
        r = k.checkin(secret, volumes=[kw.volume(acked + pending + last, vid=vol)])
        self.assertEqual(r.status, 200, r)
        k.stop()
        primary.kill()
        standby.promote()
        k2 = kw.Keywarden(settings={"storage": {"database": standby.url_for("kwsync")}},
                          name="pgsync2", init=False, start=False)
        self.addCleanup(k2.close)
        shutil.copy(k.key_file, k2.key_file)
        os.chmod(k2.key_file, 0o600)
        k2.start()
        ids = [r["key_id"] for r in k2.export_rows(did)]
        for key in (acked, pending, last):
            self.assertEqual(ids.count(key[0][0]), 1, key)

    def test_two_instances(self):
        db = "kwtwo_%s" % secrets.token_hex(3)
        k1 = self.instance("pgone", db)
        k2 = self.instance("pgtwo", db, key_from=k1)
        user, pw = "alice", "Pw-alice-%s" % secrets.token_urlsafe(9)
        k1.add_user(user, pw)
        keys = kw.new_keys(1)
        k1.device_with(keys=keys, logons=[(user, "local")])
        kid = keys[0][0]

        # A session started on one instance goes on on the other.
        b = kw.Browser(k1)
        b.sign_in(user, pw)
        b.kw = k2
        r = b.get("/recover")
        self.assertEqual(r.status, 200, r)

        # Disclosures through both at once: one chain.
        results = []

        def disclose(inst):
            br = kw.Browser(inst)
            br.sign_in(user, pw)
            for _ in range(3):
                results.append(br.recover(kid).status)
        threads = [threading.Thread(target=disclose, args=(inst,))
                   for inst in (k1, k2, k1, k2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(len(results), 12)
        self.assertTrue(all(s in (200, 429) for s in results), results)
        self.assertIn(200, results)
        for inst in (k1, k2):
            rc, out, err = inst.cli("audit", "verify")
            self.assertEqual(rc, 0, out + err)

    def test_rekey_on_another_instance(self):
        """`keywarden rekey` run at one instance of a shared database while
        the other seals keys: every key stored opens with the new key, the
        other instance refuses to seal with its old one and says so in
        /healthz, and a restart with the new key file puts it right."""
        db = "kwrekey_%s" % secrets.token_hex(3)
        k1 = self.instance("pgkeyone", db)
        k2 = self.instance("pgkeytwo", db, key_from=k1)
        before = kw.new_keys(1)
        did, secret = k1.register()
        self.assertEqual(k1.checkin(secret, volumes=[kw.volume(before)]).status, 200)
        devices = [k1.register() for _ in range(4)]

        # Check-ins through k1 go on while k2's site is re-keyed.
        stored, refused, stop = [], [], threading.Event()

        def escrow(secret):
            while not stop.is_set():
                keys = kw.new_keys(1)
                r = k1.checkin(secret, volumes=[kw.volume(keys)])
                if r.status == 200:
                    stored.append(keys[0][0])
                else:
                    self.assertEqual(r.status, 503, r)
                    refused.append(r.json().get("error", ""))
        threads = [threading.Thread(target=escrow, args=(sec,)) for _, sec in devices]
        for t in threads:
            t.start()
        try:
            kw.wait_for(lambda: len(stored) >= 8, timeout=60)
            k2.stop()
            rc, out, err = k2.cli("rekey")
            self.assertEqual(rc, 0, out + err)
            kw.wait_for(lambda: len(refused) >= 4, timeout=60)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        self.assertTrue(all("rekey" in why for why in refused), refused)
        r = k1.request("GET", "/healthz")
        self.assertEqual(r.status, 503)
        self.assertIn(b"master key was replaced", r[2])
        self.assertIn("keywarden rekey ran elsewhere", k1.log())

        # Every key acknowledged, before and during the rekey, opens with the
        # new key (export decrypts each one).
        k2.start()
        exported = {row["key_id"] for row in k2.export()[1]}
        self.assertIn(before[0][0], exported)
        self.assertTrue(set(stored) <= exported, set(stored) - exported)
        rc, out, err = k2.cli("audit", "verify")
        self.assertEqual(rc, 0, out + err)

        # k1 with the new key file: well again.
        k1.stop()
        shutil.copy(k2.key_file, k1.key_file)
        k1.start()
        self.assertEqual(self.healthz(k1), 200)
        keys = kw.new_keys(1)
        self.assertEqual(k1.checkin(secret, volumes=[kw.volume(keys)]).status, 200)

    def test_pg_dump_while_serving_then_restore(self):
        """README "Backup and restore" for PostgreSQL: pg_dump of a serving
        site, pg_restore into an empty database, the key file of that time:
        the chain verifies and a user recovers a key escrowed before."""
        import subprocess
        import tempfile
        db = "kwdump_%s" % secrets.token_hex(3)
        k = self.instance("pgdump", db)
        user, pw = "CORP\\bob", "Pw-bob-%s" % secrets.token_urlsafe(9)
        k.add_user(user, pw)
        keys = kw.new_keys(1)
        k.device_with(keys=keys, logons=[(user, "local")])
        b = kw.Browser(k)
        b.sign_in(user, pw)
        self.assertEqual(b.recover(keys[0][0]).status, 200)
        dump = os.path.join(tempfile.mkdtemp(dir=k.dir), "kw.dump")
        # While it serves: a check-in goes on during the dump.
        did, secret = k.register()
        during = threading.Thread(target=k.checkin, args=(secret,),
                                  kwargs={"volumes": [kw.volume(kw.new_keys(1))]})
        during.start()
        subprocess.run([os.path.join(wp.bindir(), "pg_dump"), "--format=custom",
                        "--file=" + dump, self.pg.url_for(db)], check=True, timeout=120)
        during.join(60)

        restored = db + "_restored"
        self.pg.create_database(restored)
        subprocess.run([os.path.join(wp.bindir(), "pg_restore"), "--no-owner",
                        "--dbname=" + self.pg.url_for(restored), dump], check=True,
                       timeout=120)
        k2 = kw.Keywarden(settings={"storage": {"database": self.pg.url_for(restored)}},
                          name="pgrestored", init=False, start=False)
        self.addCleanup(k2.close)
        shutil.copy(k.key_file, k2.key_file)
        os.chmod(k2.key_file, 0o600)
        k2.start()
        rc, out, err = k2.cli("audit", "verify")
        self.assertEqual(rc, 0, out + err)
        b = kw.Browser(k2)
        b.sign_in(user, pw)
        r = b.recover(keys[0][0])
        self.assertEqual(r.status, 200, r)
        self.assertIn(keys[0][1], r.text())


if __name__ == "__main__":
    unittest.main()
