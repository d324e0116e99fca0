"""A failing disk (doc/behaviour.md, "Operations"): a full disk and a failed
write make writes fail with 503 until the cause is gone, then they work
again without a restart; a failed sync to disk needs a restart. /healthz
says which, with the reason, and the log says it once. The log file stays
small on a small volume, and a restart gives back what a long one took.

Full disks are small tmpfs mounts (the tests need root for them, and skip
otherwise); failed writes and syncs come from tests/faults/libkwfaults.so,
preloaded into the server (LD_PRELOAD)."""

import errno
import os
import shutil
import subprocess
import tempfile
import unittest

import kw
from kw import key_id, new_keys, volume

FAULTS_LIB = os.path.join(os.path.dirname(os.path.dirname(kw.BINARY)), "tests", "faults",
                          "libkwfaults.so")
IS_ROOT = os.geteuid() == 0
needs_root = unittest.skipUnless(IS_ROOT, "mounting a small tmpfs needs root")
needs_shim = unittest.skipUnless(os.path.exists(FAULTS_LIB),
                                 "%s is not built" % FAULTS_LIB)
MIB = 1024 * 1024
FAILING = "writes are failing"
RECOVERED = "writes work again"
RESTART = "restart keywarden"


def hexid(kid):
    return kid.replace("-", "").upper()


class Instance(kw.Keywarden):
    """A keywarden whose database lives in DIR/data: on a tmpfs of the given
    size (mib), and/or with the fault library preloaded into the server."""

    def __init__(self, name, mib=None, shim=False):
        super().__init__(init=False, start=False, name=name)
        self.data = os.path.join(self.dir, "data")
        os.mkdir(self.data)
        self.mounted = False
        if mib:
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm,mode=0700" % mib,
                            "kwtest", self.data], check=True)
            self.mounted = True
        self.faults = os.path.join(self.dir, "faults")
        os.mkdir(self.faults)
        self.shim = shim
        self.sqlite_path = os.path.join(self.data, "kw.db")
        self.database = "sqlite:" + self.sqlite_path
        self.settings["storage"]["database"] = self.database
        self.write_config()
        self.init()
        self.start()
        self.token = self.enroll_token()
        self.acked = {}       # key ID -> password of every check-in answered 200
        self.rejected = set()  # key IDs of check-ins answered 503

    def start(self, expect_fail=False):
        saved = dict(os.environ)
        if self.shim:
            os.environ["LD_PRELOAD"] = FAULTS_LIB
            os.environ["KW_FAULTS_DIR"] = self.faults
            # The sanitizer build's runtime wants to be loaded first.
            os.environ["ASAN_OPTIONS"] = ":".join(
                o for o in (saved.get("ASAN_OPTIONS"), "verify_asan_link_order=0") if o)
        try:
            return super().start(expect_fail)
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def close(self, check=True):
        try:
            super().close(check)
        finally:
            if self.mounted:
                subprocess.run(["umount", "-l", self.data], check=False)
                self.mounted = False
            if not os.environ.get("KW_KEEP"):
                shutil.rmtree(self.dir, ignore_errors=True)

    def arm(self, what, match=""):
        with open(os.path.join(self.faults, what), "w") as f:
            f.write(match)

    def disarm(self, what):
        os.unlink(os.path.join(self.faults, what))

    def device(self):
        return self.register(token=self.token)[1]

    def checkin_keys(self, secret, vid, n=2, volumes=1):
        """A check-in of `volumes` volumes (IDs made from vid) with n new keys
        each; records the keys as acknowledged or rejected. Returns the
        status."""
        vols, keys = [], []
        for i in range(volumes):
            ks = new_keys(n)
            keys += ks
            vols.append(volume(ks, vid="%s%02X" % (vid[:-2], i)))
        r = self.checkin(secret, volumes=vols)
        if r.status == 200:
            self.acked.update(keys)
        elif r.status == 503:
            self.rejected.update(k for k, _ in keys)
        else:
            raise AssertionError("check-in: %r" % (r,))
        self.secrets.update(p for _, p in keys)
        return r.status

    def health(self):
        r = self.request("GET", "/healthz")
        return r.status, r.text().strip()

    def state_gauge(self):
        return self.metrics().get("keywarden_store_state")

    def lines(self, text):
        return [l for l in self.log().splitlines() if text in l]

    def stored(self):
        """Key hex -> state of every key in the database file."""
        db = self.db()
        try:
            return dict(db.execute("SELECT key_hex, state FROM recovery_keys"))
        finally:
            db.close()

    def assert_nothing_lost(self, test):
        """Every acknowledged key is exported with its password; no key of
        a rejected check-in is stored; the database is sound."""
        rows = {r["key_id"]: r["recovery_password"] for r in self.export()[1]}
        for kid, pw in self.acked.items():
            test.assertEqual(rows.get(kid), pw, "acknowledged key %s" % kid)
        test.assertFalse(self.rejected & set(rows), "keys of rejected check-ins stored")
        db = self.db()
        try:
            test.assertEqual(db.execute("PRAGMA integrity_check").fetchone()[0], "ok")
        finally:
            db.close()
        rc, out, err = self.cli("audit", "verify")
        test.assertEqual(rc, 0, out + err)

    def wal_size(self):
        try:
            return os.path.getsize(self.sqlite_path + "-wal")
        except FileNotFoundError:
            return 0

    def written_bytes(self):
        """Bytes the server has written (log, sockets and files)."""
        with open("/proc/%d/io" % self.proc.pid) as f:
            return int(dict(l.split(": ") for l in f.read().splitlines())["wchar"])


def fill(path):
    """Fills the file system holding path (again); returns the filler's
    name."""
    name = os.path.join(path, "filler")
    with open(name, "ab", buffering=0) as f:
        for size in (MIB, 64 * 1024, 4096, 512, 1):
            block = b"\0" * size
            try:
                while True:
                    f.write(block)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
    return name


class FaultTestCase(unittest.TestCase):

    def instance(self, name, **kw_args):
        inst = Instance(name, **kw_args)
        self.addCleanup(inst.close)
        return inst

    def assertOnce(self, inst, text):
        """The log says text once, and says nothing else of the database
        but that the log file could not be copied (once a failure)."""
        self.assertEqual(len(inst.lines(text)), 1, "%r once in:\n%s" % (text, inst.log()))
        said = [l for l in inst.lines("database") if FAILING not in l and RECOVERED not in l
                and RESTART not in l and "the log" not in l]
        self.assertFalse(said, inst.log())

    def assertFailing(self, inst, why):
        """Check-ins get 503 and change nothing; /healthz and /metrics say
        writes fail, and why."""
        secret = inst.device_secret
        before = inst.stored()
        for _ in range(3):
            self.assertEqual(inst.checkin_keys(secret, inst.vid), 503)
        self.assertEqual(inst.stored(), before, "a rejected check-in changed the store")
        status, body = inst.health()
        self.assertEqual(status, 503, body)
        self.assertIn(FAILING, body)
        self.assertIn(why, body)
        self.assertEqual(inst.state_gauge(), 1)
        self.assertOnce(inst, FAILING)


@needs_root
class FullDiskTest(FaultTestCase):

    def test_writes_work_again_once_space_is_freed(self):
        inst = self.instance("full", mib=8)
        inst.device_secret, inst.vid = inst.device(), key_id()
        for _ in range(3):
            self.assertEqual(inst.checkin_keys(inst.device_secret, inst.vid), 200)
        self.assertEqual(inst.health(), (200, "ok"))
        self.assertEqual(inst.state_gauge(), 0)

        filler = fill(inst.data)
        # Until the log needs more room than the last page it had.
        for _ in range(50):
            if inst.checkin_keys(inst.device_secret, inst.vid) == 503:
                break
        # The failure emptied the log file to make room: use that up too.
        fill(inst.data)
        self.assertFailing(inst, "the disk is full")

        # With space again /healthz notices by itself (it writes a little),
        # and the next check-in works, without a restart.
        os.unlink(filler)
        kw.wait_for(lambda: inst.health()[0] == 200, timeout=30)
        self.assertEqual(inst.health(), (200, "ok"))
        self.assertEqual(inst.checkin_keys(inst.device_secret, inst.vid), 200)
        self.assertEqual(inst.checkin_keys(inst.device(), key_id()), 200)
        self.assertEqual(inst.state_gauge(), 0)
        self.assertOnce(inst, FAILING)
        self.assertOnce(inst, RECOVERED)
        inst.assert_nothing_lost(self)
        inst.restart()
        inst.assert_nothing_lost(self)

    def test_log_stays_small_on_a_small_volume(self):
        """Sustained check-ins write the log many times the volume's size
        over; it never takes more than half the volume, and none fails."""
        mib = 32
        inst = self.instance("small", mib=mib)
        secret, vid = inst.device(), key_id()
        start, largest = inst.written_bytes(), 0
        while inst.written_bytes() - start < 3 * mib * MIB:
            self.assertEqual(inst.checkin_keys(secret, vid, n=16, volumes=24), 200,
                             inst.log()[-3000:])
            largest = max(largest, inst.wal_size())
        self.assertLess(largest, mib * MIB // 2)
        self.assertEqual(inst.health(), (200, "ok"))
        inst.assert_nothing_lost(self)

    def test_restart_gives_back_a_long_log(self):
        """A log left long by a crash, on a volume that has since filled up,
        is emptied when keywarden starts again."""
        inst = self.instance("crash", mib=32)
        secret, vid = inst.device(), key_id()
        while inst.wal_size() < 4 * MIB:
            self.assertEqual(inst.checkin_keys(secret, vid, n=16, volumes=8), 200)
        inst.kill()
        long_log = inst.wal_size()
        filler = fill(inst.data)
        os.truncate(filler, os.path.getsize(filler) - MIB)
        inst.start()
        self.assertLess(inst.wal_size(), long_log // 2)
        self.assertEqual(inst.checkin_keys(secret, vid), 200)
        self.assertEqual(inst.health(), (200, "ok"))
        os.unlink(filler)
        inst.assert_nothing_lost(self)


@needs_shim
class FailedWriteTest(FaultTestCase):

    def test_writes_work_again_after_a_failed_write(self):
        inst = self.instance("eio", shim=True)
        inst.device_secret, inst.vid = inst.device(), key_id()
        self.assertEqual(inst.checkin_keys(inst.device_secret, inst.vid), 200)

        inst.arm("write", "kw.db")
        self.assertFailing(inst, "Input/output error")

        inst.disarm("write")
        self.assertEqual(inst.checkin_keys(inst.device_secret, inst.vid), 200)
        self.assertEqual(inst.health(), (200, "ok"))
        self.assertEqual(inst.state_gauge(), 0)
        self.assertOnce(inst, RECOVERED)
        inst.assert_nothing_lost(self)


@needs_shim
class FailedSyncTest(FaultTestCase):

    def test_a_failed_sync_needs_a_restart(self):
        inst = self.instance("fsync", shim=True)
        secret, vid = inst.device(), key_id()
        self.assertEqual(inst.checkin_keys(secret, vid), 200)

        inst.arm("sync")
        self.assertEqual(inst.checkin_keys(secret, vid), 503)
        inst.disarm("sync")
        # Sticky: the disk works again, but what reached it is not known.
        for _ in range(3):
            self.assertEqual(inst.checkin_keys(secret, vid), 503)
            status, body = inst.health()
            self.assertEqual(status, 503, body)
            self.assertIn(RESTART, body)
        self.assertEqual(inst.state_gauge(), 2)
        # The device is told why, too (its agent's log reaches the operator).
        r = inst.checkin(secret, volumes=[volume(new_keys(1), vid=vid)])
        self.assertEqual(r.status, 503, r)
        self.assertIn(RESTART, r.json()["error"])
        self.assertOnce(inst, RESTART)
        self.assertFalse(inst.lines(FAILING), inst.log())

        inst.restart()
        self.assertEqual(inst.health(), (200, "ok"))
        self.assertEqual(inst.checkin_keys(secret, vid), 200)
        # The check-in whose sync failed may or may not be stored: it was
        # not acknowledged, and the device sends its keys again.
        inst.rejected.clear()
        inst.assert_nothing_lost(self)

    def test_a_failed_sync_of_a_new_log_needs_a_restart(self):
        """The first commit to a new log file is synced by SQLite itself
        (its header and directory entry), not by the deferred sync."""
        inst = self.instance("fsync-new", shim=True)
        secret, vid = inst.device(), key_id()
        inst.restart()   # a clean stop empties the log file
        self.assertEqual(inst.wal_size(), 0)

        inst.arm("sync", "kw.db")
        self.assertEqual(inst.checkin_keys(secret, vid), 503)
        inst.disarm("sync")
        self.assertEqual(inst.checkin_keys(secret, vid), 503)
        status, body = inst.health()
        self.assertEqual(status, 503, body)
        self.assertIn(RESTART, body)
        self.assertOnce(inst, RESTART)

        inst.restart()
        self.assertEqual(inst.checkin_keys(secret, vid), 200)
        inst.rejected.clear()
        inst.assert_nothing_lost(self)


if __name__ == "__main__":
    unittest.main()
