"""The audit report's search file (SQLite's DATABASE-find, README "Backup
and restore"): derived data that never stops keywarden. A file that is not
a database is deleted and made again; one that cannot be made leaves the
server and every command working without it (logged once, counted in
/metrics, with its lag), and is made once it can be."""

import os
import shutil
import sqlite3
import tempfile
import unittest

import kw

# Generous: the thread tries again after 0.5 s, doubling to 30 s; a slow
# run (valgrind) must not fail on it.
PATIENCE = 300


def search_file_ready(path):
    """The search file is an SQLite database with its table."""
    try:
        db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=5)
        try:
            return db.execute("SELECT count(*) FROM sqlite_schema WHERE "
                              "name = 'audit_find'").fetchone()[0] == 1
        finally:
            db.close()
    except sqlite3.Error:
        return False


class SearchFileTest(unittest.TestCase):

    def setUp(self):
        self.kw = kw.Keywarden(name=self.id().rsplit(".", 1)[-1], start=False)
        self.addCleanup(self.kw.close)
        if not self.kw.sqlite_path:
            raise unittest.SkipTest("the search file is SQLite's")
        self.find = self.kw.sqlite_path + "-find"
        self.out = tempfile.mkdtemp(prefix="kwtest-find-out-")
        self.addCleanup(shutil.rmtree, self.out, True)

    def commands_work(self):
        self.assertEqual(self.kw.request("GET", "/healthz").status, 200)
        rc, out, err = self.kw.cli("audit", "verify")
        self.assertEqual(rc, 0, err)
        path = os.path.join(self.out, "copy%d.db" % len(os.listdir(self.out)))
        rc, out, err = self.kw.cli("backup", path)
        self.assertEqual(rc, 0, err)

    def test_garbage_file_is_made_again(self):
        for ext in ("-shm",):   # made by init
            if os.path.exists(self.find + ext):
                os.unlink(self.find + ext)
        for name in (self.find, self.find + "-wal"):
            with open(name, "wb") as f:
                f.write(b"this is not a database, " * 400)
        self.kw.start()
        self.commands_work()
        self.assertTrue(kw.wait_for(lambda: search_file_ready(self.find),
                                    timeout=PATIENCE), self.kw.log())
        self.assertIn("deleted and made again", self.kw.log())
        self.assertEqual(self.kw.metrics().get("keywarden_audit_search_lag_records"), 0)

    def test_runs_without_a_file_that_cannot_be_made(self):
        for ext in ("", "-wal", "-shm"):   # made by init
            if os.path.exists(self.find + ext):
                os.unlink(self.find + ext)
        os.mkdir(self.find)   # in its place: it can neither be opened nor deleted
        self.kw.start()
        self.commands_work()
        m = kw.wait_for(lambda: (lambda m: m if m.get("keywarden_store_errors_total", 0) >= 3
                                 else None)(self.kw.metrics()), timeout=PATIENCE)
        self.assertTrue(m, self.kw.log())
        self.assertIn("keywarden_audit_search_lag_records", m)
        # logged once however often it is tried again
        self.assertEqual(self.kw.log().count("search file cannot be made"), 1, self.kw.log())
        self.assertEqual(self.kw.log().count("deleted and made again"), 1, self.kw.log())
        self.commands_work()
        os.rmdir(self.find)
        self.assertTrue(kw.wait_for(lambda: search_file_ready(self.find),
                                    timeout=PATIENCE), self.kw.log())
        self.assertTrue(kw.wait_for(lambda: "works again" in self.kw.log(),
                                    timeout=PATIENCE), self.kw.log())


if __name__ == "__main__":
    unittest.main()
