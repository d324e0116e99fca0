"""The command line and the start-up checks (SPEC §6, §7, §9, §10):
configuration errors, key file, schema version, rekey, sealing, accounts,
--help everywhere."""

import configparser
import os
import re
import shutil
import sqlite3
import stat
import unittest

import kw
from kw import key_id, new_keys, volume

needs_sqlite = unittest.skipUnless(kw.IS_SQLITE, "inspects the SQLite file")


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


class InstanceTestCase(unittest.TestCase):
    """A fresh initialised (not running) instance per test."""
    start = False

    def setUp(self):
        self.kw = kw.Keywarden(name=self.id().rsplit(".", 1)[-1], start=self.start)
        self.addCleanup(self.kw.close)

    def assertServeFails(self, *fragments):
        rc = self.kw.start(expect_fail=True)
        self.assertNotEqual(rc, 0)
        log = self.kw.log()
        for f in fragments:
            self.assertIn(f, log)
        return log

    def escrow(self, ndevices=2, nkeys=2):
        """Starts the server, escrows keys, stops it: {key_id: password}."""
        if not self.kw.running():
            self.kw.start()
        keys = {}
        for _ in range(ndevices):
            did, secret = self.kw.register()
            ks = new_keys(nkeys)
            r = self.kw.checkin(secret, volumes=[volume(ks)])
            self.assertEqual(r.status, 200, r)
            keys.update(ks)
        self.kw.stop()
        return keys


class ConfigTest(InstanceTestCase):

    def conf_with_line(self, section, line):
        """Rewrites the config with line added at the end of section; returns
        the line number it is on."""
        text_lines = []
        where = None
        for sec, kv in self.kw.settings.items():
            text_lines.append("[%s]" % sec)
            for k, v in kv.items():
                text_lines.append("%s = %s" % (k, v))
            if sec == section:
                text_lines.append(line)
                where = len(text_lines)
            text_lines.append("")
        if where is None:
            text_lines += ["[%s]" % section, line]
            where = len(text_lines)
        with open(self.kw.conf, "w") as f:
            f.write("\n".join(text_lines) + "\n")
        return where

    def assertFileLine(self, err, line):
        self.assertIn("%s:%d" % (self.kw.conf, line), err)

    def test_unknown_key_names_file_and_line(self):
        line = self.conf_with_line("server", "colour = blue")
        rc, out, err = self.kw.cli("config", "check")
        self.assertNotEqual(rc, 0)
        self.assertFileLine(err, line)
        self.assertIn("colour", err)
        self.assertServeFails("%s:%d" % (self.kw.conf, line), "colour")

    def test_unknown_key_in_other_section(self):
        line = self.conf_with_line("portal", "display_notices = true")
        rc, out, err = self.kw.cli("config", "check")
        self.assertNotEqual(rc, 0)
        self.assertFileLine(err, line)
        self.assertIn("display_notices", err)

    def test_unknown_section_names_file_and_line(self):
        line = self.conf_with_line("nonsense", "a = b") - 1
        rc, out, err = self.kw.cli("config", "check")
        self.assertNotEqual(rc, 0)
        self.assertFileLine(err, line)

    def test_bad_values_name_file_and_line(self):
        for section, bad in (("server", "listen = somewhere"),
                             ("portal", "display_notice = maybe"),
                             ("portal", "session_idle_timeout = forever"),
                             ("limits", "lookup_failures = lots"),
                             ("storage", "database = mysql://x")):
            line = self.conf_with_line(section, bad)
            rc, out, err = self.kw.cli("config", "check")
            self.assertNotEqual(rc, 0, bad)
            self.assertFileLine(err, line)
            rc = self.kw.start(expect_fail=True)
            self.assertNotEqual(rc, 0, bad)
            self.assertIn("%s:%d" % (self.kw.conf, line), self.kw.log(), bad)

    def test_missing_config_file(self):
        missing = os.path.join(self.kw.dir, "nope.conf")
        rc, out, err = self.kw.cli("--config", missing, "config", "check", config=False)
        self.assertNotEqual(rc, 0)
        self.assertIn(missing, err)

    def test_config_check_prints_effective_configuration(self):
        rc, out, err = self.kw.cli("config", "check")
        self.assertEqual(rc, 0, err)
        cp = configparser.ConfigParser(interpolation=None)
        cp.read_string(out)
        self.assertEqual(cp["server"]["listen"], self.kw.settings["server"]["listen"])
        self.assertEqual(cp["storage"]["database"], self.kw.database)
        self.assertEqual(cp["storage"]["key_file"], self.kw.key_file)
        self.assertEqual(cp["portal"]["display_notice"], "false")
        # defaults the file does not set are shown too
        self.assertEqual(cp["server"]["allow_plain_http"], "false")
        self.assertEqual(cp["portal"]["company_name"], "Contoso IT")
        self.assertEqual(cp["portal"]["session_idle_timeout"], "5m")
        self.assertEqual(cp["limits"]["lookup_failures"], "5/15m")
        self.assertEqual(cp["limits"]["login_failures"], "10/15m")
        # the printed configuration is itself a valid configuration
        again = os.path.join(self.kw.dir, "effective.conf")
        with open(again, "w") as f:
            f.write(out)
        rc2, out2, err2 = self.kw.cli("--config", again, "config", "check", config=False)
        self.assertEqual(rc2, 0, err2)
        self.assertEqual(out2.split("\n", 1)[1], out.split("\n", 1)[1])

    def test_plain_http_beyond_loopback_refused(self):
        port = kw.free_port()
        self.kw.settings["server"]["listen"] = "0.0.0.0:%d" % port
        self.kw.write_config()
        rc, out, err = self.kw.cli("config", "check")
        self.assertNotEqual(rc, 0)
        self.assertIn("plain HTTP", err)
        self.assertServeFails("plain HTTP")
        # allowed behind a TLS proxy
        self.kw.settings["server"]["allow_plain_http"] = "true"
        self.kw.write_config()
        rc, out, err = self.kw.cli("config", "check")
        self.assertEqual(rc, 0, err)

    def test_localhost_allowed_without_tls(self):
        self.kw.settings["server"]["listen"] = "localhost:%d" % kw.free_port()
        self.kw.write_config()
        rc, out, err = self.kw.cli("config", "check")
        self.assertEqual(rc, 0, err)

    def test_listen_port_zero(self):
        self.kw.settings["server"]["listen"] = "127.0.0.1:0"
        self.kw.write_config()
        rc, out, err = self.kw.cli("config", "check")
        self.assertEqual(rc, 0, err)
        self.kw.start()
        self.assertNotEqual(self.kw.port, 0)
        self.assertEqual(self.kw.request("GET", "/healthz").status, 200)


class KeyFileTest(InstanceTestCase):

    def test_init_creates_key_file_0600(self):
        self.assertTrue(os.path.isfile(self.kw.key_file))
        self.assertEqual(mode(self.kw.key_file), 0o600)
        with open(self.kw.key_file) as f:
            self.assertRegex(f.read().strip(), r"^[0-9a-fA-F]{64}$")

    def test_init_output(self):
        # with --password-stdin the password is not echoed
        k = kw.Keywarden(name="initout", init=False, start=False)
        self.addCleanup(k.close)
        out = k.init(admin="root1", password="Typed-Password-4567")
        self.assertNotIn("Typed-Password-4567", out)
        self.assertIn("root1", out)
        # without it a one-time password is printed once
        k2 = kw.Keywarden(name="initotp", init=False, start=False)
        self.addCleanup(k2.close)
        rc, out, err = k2.cli("init")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"one-time password: \S{12,}")

    def test_init_creates_missing_folders(self):
        k = kw.Keywarden(name="folders", init=False, start=False)
        self.addCleanup(k.close)
        k.key_file = os.path.join(k.dir, "keys", "master.key")
        k.settings["storage"]["key_file"] = k.key_file
        if k.sqlite_path:
            k.sqlite_path = os.path.join(k.dir, "data", "kw.db")
            k.settings["storage"]["database"] = "sqlite:" + k.sqlite_path
        k.write_config()
        k.init()
        self.assertEqual(mode(k.key_file), 0o600)
        self.assertEqual(mode(os.path.dirname(k.key_file)) & 0o077, 0)
        k.start()
        self.assertEqual(k.request("GET", "/healthz").status, 200)

    def test_second_init_keeps_key_file(self):
        keys = self.escrow(1, 2)
        with open(self.kw.key_file) as f:
            key = f.read()
        rc, out, err = self.kw.cli("init", "--password-stdin",
                                   input="Another-Password-123\n")
        with open(self.kw.key_file) as f:
            self.assertEqual(f.read(), key, "init replaced an existing key file")
        self.assertEqual({r["key_id"]: r["recovery_password"]
                          for r in self.kw.export_rows()}, keys)
        if rc != 0:
            self.assertTrue(err.strip())

    def test_key_file_readable_by_others_refused(self):
        for m in (0o644, 0o640, 0o604):
            os.chmod(self.kw.key_file, m)
            log = self.assertServeFails(self.kw.key_file)
            self.assertIn("key file", log.lower())
        os.chmod(self.kw.key_file, 0o600)
        self.kw.start()

    def test_key_file_missing_refused(self):
        os.rename(self.kw.key_file, self.kw.key_file + ".away")
        log = self.assertServeFails(self.kw.key_file)
        self.assertIn("key file", log.lower())
        self.assertNotIn("Segmentation", log)

    def test_key_file_garbage_refused(self):
        with open(self.kw.key_file, "w") as f:
            f.write("not a key\n")
        log = self.assertServeFails(self.kw.key_file)
        self.assertIn("key", log.lower())

    def test_export_refuses_open_key_file_too(self):
        os.chmod(self.kw.key_file, 0o644)
        rc, out, err = self.kw.cli("export", "csv")
        self.assertNotEqual(rc, 0)
        self.assertIn(self.kw.key_file, err)

    def test_key_file_of_another_instance_refused(self):
        keys = self.escrow(1, 1)
        other = kw.Keywarden(name="other", start=False)
        self.addCleanup(other.close)
        shutil.copyfile(other.key_file, self.kw.key_file)
        log = self.assertServeFails(self.kw.key_file)
        rc, out, err = self.kw.cli("export", "csv")
        self.assertNotEqual(rc, 0)
        for pw in keys.values():
            self.assertNotIn(pw, out)


@needs_sqlite
class SchemaTest(InstanceTestCase):

    def test_newer_schema_refused(self):
        db = sqlite3.connect(self.kw.sqlite_path)
        db.execute("PRAGMA user_version = 99")
        db.commit()
        db.close()
        log = self.assertServeFails()
        self.assertIn("newer", log)
        self.assertIn("99", log)
        rc, out, err = self.kw.cli("migrate")
        self.assertNotEqual(rc, 0)
        self.assertIn("newer", err)
        # and nothing was changed
        db = sqlite3.connect(self.kw.sqlite_path)
        self.assertEqual(db.execute("PRAGMA user_version").fetchone()[0], 99)
        db.close()

    def test_schema_applied_at_start(self):
        os.remove(self.kw.sqlite_path)
        self.kw.start()
        self.assertEqual(self.kw.request("GET", "/healthz").status, 200)
        self.kw.stop()
        db = sqlite3.connect(self.kw.sqlite_path)
        self.assertGreaterEqual(db.execute("PRAGMA user_version").fetchone()[0], 1)
        self.assertEqual(db.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        db.close()

    def test_migrate_up_to_date(self):
        rc, out, err = self.kw.cli("migrate")
        self.assertEqual(rc, 0, err)
        self.assertIn("up to date", out)


class RekeyTest(InstanceTestCase):

    def test_rekey(self):
        keys = self.escrow()
        _, _, before = self.kw.export()
        old_copy = os.path.join(self.kw.dir, "old.key")
        shutil.copy2(self.kw.key_file, old_copy)
        with open(self.kw.key_file) as f:
            old_text = f.read()
        rc, out, err = self.kw.cli("rekey")
        self.assertEqual(rc, 0, err)
        with open(self.kw.key_file) as f:
            new_text = f.read()
        self.assertNotEqual(new_text.strip(), old_text.strip())
        self.assertEqual(mode(self.kw.key_file), 0o600)
        self.assertFalse(os.path.exists(self.kw.key_file + ".new"))
        # same keys, same export
        self.assertEqual(self.kw.export()[2], before)
        # the server starts with the new key and accepts check-ins
        self.kw.start()
        did, secret = self.kw.register()
        r = self.kw.checkin(secret, volumes=[volume(new_keys(1))])
        self.assertEqual(r.status, 200, r)
        self.kw.stop()
        _, _, after = self.kw.export()
        # the old key file no longer opens this database
        shutil.copy2(old_copy, self.kw.key_file)
        os.chmod(self.kw.key_file, 0o600)
        log = self.assertServeFails(self.kw.key_file)
        self.assertRegex(log, r"does not match|wrong|other|not the key")
        rc, out, err = self.kw.cli("export", "csv")
        self.assertNotEqual(rc, 0)
        self.assertTrue(err.strip())
        for pw in keys.values():
            self.assertNotIn(pw, out)
        # the new key file brings it back
        with open(self.kw.key_file, "w") as f:
            f.write(new_text)
        self.assertEqual(self.kw.export()[2], after)

    def test_rekey_while_serving(self):
        self.kw.start()
        did, secret = self.kw.register()
        k1, k2 = new_keys(2)
        self.assertEqual(self.kw.checkin(secret, volumes=[volume([k1])]).status, 200)
        rc, out, err = self.kw.cli("rekey")
        # The running server holds the key: rekey must refuse, not split
        # the keys between two master keys.
        self.assertNotEqual(rc, 0)
        self.assertIn("stop it before rekey", err)
        r = self.kw.checkin(secret, volumes=[volume([k2])])
        self.assertEqual(r.status, 200, r)
        self.kw.stop()
        rc, out, err = self.kw.cli("export", "csv")
        self.assertEqual(rc, 0, err)
        got = {r["key_id"]: r["recovery_password"] for r in kw.parse_csv(out)[1]}
        self.assertEqual(got, dict([k1, k2]))
        # With the server stopped, rekey works and keeps every key.
        rc, _, err = self.kw.cli("rekey")
        self.assertEqual(rc, 0, err)
        rc, out2, err = self.kw.cli("export", "csv")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out2, out)

    def test_rekey_twice(self):
        keys = self.escrow(1, 3)
        _, _, before = self.kw.export()
        for _ in range(2):
            rc, out, err = self.kw.cli("rekey")
            self.assertEqual(rc, 0, err)
        self.assertEqual(self.kw.export()[2], before)


@needs_sqlite
class SealTest(InstanceTestCase):

    def test_moved_ciphertext_does_not_decrypt(self):
        keys = self.escrow(2, 1)
        self.assertEqual(len(self.kw.export_rows()), 2)
        db = sqlite3.connect(self.kw.sqlite_path)
        (a, sa), (b, sb) = db.execute(
            "SELECT id, sealed FROM recovery_keys ORDER BY id").fetchall()
        db.execute("UPDATE recovery_keys SET sealed = ? WHERE id = ?", (sb, a))
        db.execute("UPDATE recovery_keys SET sealed = ? WHERE id = ?", (sa, b))
        db.commit()
        db.close()
        rc, out, err = self.kw.cli("export", "csv")
        self.assertNotEqual(rc, 0, out)
        self.assertTrue(err.strip())
        for row in kw.parse_csv(out)[1]:
            self.assertEqual(row["recovery_password"], keys[row["key_id"]],
                             "a swapped ciphertext was exported under the wrong key")

    def test_moved_ciphertext_within_a_device(self):
        # same device, two keys: the key ID is authenticated too
        self.kw.start()
        did, secret = self.kw.register()
        ks = new_keys(2)
        self.assertEqual(self.kw.checkin(secret, volumes=[volume(ks)]).status, 200)
        self.kw.stop()
        db = sqlite3.connect(self.kw.sqlite_path)
        (a, sa), (b, sb) = db.execute(
            "SELECT id, sealed FROM recovery_keys ORDER BY id").fetchall()
        db.execute("UPDATE recovery_keys SET sealed = ? WHERE id = ?", (sb, a))
        db.execute("UPDATE recovery_keys SET sealed = ? WHERE id = ?", (sa, b))
        db.commit()
        db.close()
        rc, out, err = self.kw.cli("export", "csv")
        self.assertNotEqual(rc, 0, out)
        keys = dict(ks)
        for row in kw.parse_csv(out)[1]:
            self.assertEqual(row["recovery_password"], keys[row["key_id"]])

    def test_tampered_ciphertext_does_not_decrypt(self):
        self.escrow(1, 1)
        db = sqlite3.connect(self.kw.sqlite_path)
        rid, sealed = db.execute("SELECT id, sealed FROM recovery_keys").fetchone()
        sealed = bytearray(sealed)
        sealed[-1] ^= 1
        db.execute("UPDATE recovery_keys SET sealed = ? WHERE id = ?", (bytes(sealed), rid))
        db.commit()
        db.close()
        rc, out, err = self.kw.cli("export", "csv")
        self.assertNotEqual(rc, 0)


class ExportTest(InstanceTestCase):

    def test_export_to_file_is_0600(self):
        keys = self.escrow(1, 2)
        path = os.path.join(self.kw.dir, "backup.csv")
        rc, out, err = self.kw.cli("export", "csv", "--output", path)
        self.assertEqual(rc, 0, err)
        self.assertEqual(mode(path), 0o600)
        with open(path, newline="") as f:
            header, rows = kw.parse_csv(f.read())
        self.assertEqual(header, kw.EXPORT_HEADER)
        self.assertEqual({r["key_id"]: r["recovery_password"] for r in rows}, keys)
        self.assertNotIn(list(keys.values())[0], out)

    def test_export_empty(self):
        rc, out, err = self.kw.cli("export", "csv")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.strip(), kw.EXPORT_HEADER)


class UserTest(InstanceTestCase):

    def users(self):
        rc, out, err = self.kw.cli("user", "list")
        self.assertEqual(rc, 0, err)
        d = {}
        for line in out.splitlines()[1:]:
            parts = line.split()
            if parts:
                d[parts[0]] = line
        return d

    def test_user_add_list_disable_enable(self):
        pw = "Helpdesk-Password-99"
        rc, out, err = self.kw.cli("user", "add", "hd1", "--role", "helpdesk",
                                   "--password-stdin", input=pw + "\n")
        self.assertEqual(rc, 0, err)
        self.assertNotIn(pw, out + err)
        users = self.users()
        self.assertIn("hd1", users)
        self.assertIn("helpdesk", users["hd1"])
        self.assertNotIn("helpdesk_admin", users["hd1"])
        self.assertIn("active", users["hd1"])
        self.assertIn("admin", users)          # made by init
        self.assertIn("admin", users["admin"].split()[1])
        rc, out, err = self.kw.cli("user", "disable", "hd1")
        self.assertEqual(rc, 0, err)
        self.assertIn("disabled", self.users()["hd1"])
        rc, out, err = self.kw.cli("user", "enable", "hd1")
        self.assertEqual(rc, 0, err)
        self.assertIn("active", self.users()["hd1"])
        self.assertNotIn("disabled", self.users()["hd1"])

    def test_user_several_roles(self):
        rc, out, err = self.kw.cli("user", "add", "boss", "--role", "reports", "--role",
                                   "helpdesk_admin", "--password-stdin",
                                   input="Boss-Password-1234\n")
        self.assertEqual(rc, 0, err)
        line = self.users()["boss"]
        self.assertIn("reports", line)
        self.assertIn("helpdesk_admin", line)

    def test_user_add_duplicate_fails(self):
        for name in ("dup", "DUP"):
            rc, out, err = self.kw.cli("user", "add", name, "--password-stdin",
                                       input="Some-Password-1234\n")
            if name == "dup":
                self.assertEqual(rc, 0, err)
            else:
                self.assertNotEqual(rc, 0, "user names compare case-insensitively")
                self.assertTrue(err.strip())

    def test_user_add_bad_role_fails(self):
        rc, out, err = self.kw.cli("user", "add", "x1", "--role", "root",
                                   "--password-stdin", input="Some-Password-1234\n")
        self.assertNotEqual(rc, 0)
        self.assertIn("root", err)
        self.assertNotIn("x1", self.users())

    def test_user_add_generates_password(self):
        rc, out, err = self.kw.cli("user", "add", "gen1")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"password: \S{12,}")

    def test_user_add_refuses_short_password(self):
        rc, out, err = self.kw.cli("user", "add", "weak", "--password-stdin", input="a\n")
        self.assertNotEqual(rc, 0)
        self.assertNotIn("weak", self.users())

    def test_disable_unknown_user_fails(self):
        rc, out, err = self.kw.cli("user", "disable", "ghost")
        self.assertNotEqual(rc, 0)
        self.assertIn("ghost", err)

    @needs_sqlite
    def test_password_hash_is_argon2id(self):
        self.kw.cli("user", "add", "h1", "--password-stdin", input="Hash-Password-1234\n")
        db = sqlite3.connect(self.kw.sqlite_path)
        hashes = [h for (h,) in db.execute("SELECT password_hash FROM users")]
        db.close()
        self.assertEqual(len(hashes), 2)
        for h in hashes:
            m = re.match(r"^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=\d+\$", h)
            self.assertTrue(m, h)
            self.assertGreaterEqual(int(m.group(1)), 19 * 1024)
            self.assertGreaterEqual(int(m.group(2)), 2)
            self.assertNotIn("Hash-Password-1234", h)


class DeviceCliTest(InstanceTestCase):

    def test_device_show_unknown_fails(self):
        rc, out, err = self.kw.cli("device", "show", "no-such-device")
        self.assertNotEqual(rc, 0)
        self.assertIn("no-such-device", err)

    def test_device_revoke_unknown_fails(self):
        rc, out, err = self.kw.cli("device", "revoke", "no-such-device")
        self.assertNotEqual(rc, 0)

    def test_assoc_add(self):
        self.kw.start()
        did, _ = self.kw.register()
        rc, out, err = self.kw.cli("assoc", "add", "CORP\\erin", did)
        self.assertEqual(rc, 0, err)
        self.assertIn("CORP\\erin", self.kw.device_show(did))
        rc, out, err = self.kw.cli("assoc", "add", "CORP\\erin", "no-such-device")
        self.assertNotEqual(rc, 0)


COMMANDS = {
    "init": [], "serve": [], "demo": [], "migrate": [],
    "user": [["add", "NAME"], ["passwd", "NAME"], ["list"], ["disable", "NAME"],
             ["enable", "NAME"]],
    "enroll": [["create"], ["list"], ["revoke", "1"]],
    "device": [["list"], ["show", "ID"], ["revoke", "ID"]],
    "assoc": [["add", "USER", "ID"]],
    "export": [["csv"]],
    "audit": [["verify"], ["export"]],
    "rekey": [],
    "config": [["check"]],
}


class HelpTest(InstanceTestCase):

    def assertHelp(self, *args):
        for flag in ("--help", "-h"):
            rc, out, err = self.kw.cli(*args, flag, timeout=20)
            self.assertEqual(rc, 0, (args, flag, err))
            self.assertIn("usage:", out, (args, flag))
            self.assertIn("keywarden", out, (args, flag))

    def test_top_level_help(self):
        for flag in ("--help", "-h"):
            rc, out, err = self.kw.cli(flag, config=False)
            self.assertEqual(rc, 0, err)
            self.assertIn("usage:", out)
            for c in COMMANDS:
                self.assertRegex(out, r"\b%s\b" % c)
        rc, out, err = self.kw.cli("--version", config=False)
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"keywarden \S+")

    def test_every_command_and_subcommand_help(self):
        for cmd, subs in COMMANDS.items():
            self.assertHelp(cmd)
            for sub in subs:
                self.assertHelp(cmd, *sub)

    def test_help_has_no_side_effects(self):
        with open(self.kw.key_file) as f:
            key = f.read()
        rc, out, err = self.kw.cli("enroll", "list")
        tokens = out
        for args in (["enroll", "create", "--help"], ["user", "add", "helpme", "--help"],
                     ["rekey", "--help"], ["device", "revoke", "x", "--help"],
                     ["user", "disable", "admin", "--help"]):
            self.kw.cli(*args, timeout=20)
        self.assertEqual(self.kw.cli("enroll", "list")[1], tokens)
        rc, out, err = self.kw.cli("user", "list")
        self.assertNotIn("helpme", out)
        self.assertNotIn("disabled", out)
        with open(self.kw.key_file) as f:
            self.assertEqual(f.read(), key)

    def test_help_needs_no_configuration(self):
        missing = os.path.join(self.kw.dir, "missing.conf")
        for cmd in COMMANDS:
            rc, out, err = self.kw.cli("--config", missing, cmd, "--help", config=False,
                                       timeout=20)
            self.assertEqual(rc, 0, (cmd, err))
            self.assertIn("usage:", out)

    def test_errors_go_to_stderr(self):
        for args in (["frobnicate"], ["user"], ["enroll", "destroy"], ["device", "list",
                     "a", "b"], ["export", "xml"], ["config"]):
            rc, out, err = self.kw.cli(*args)
            self.assertNotEqual(rc, 0, args)
            self.assertEqual(out, "", args)
            self.assertTrue(err.strip(), args)

    def test_spec_command_import_exists(self):
        self.assertHelp("import")
        for sub in (["csv", "FILE"], ["ldap"]):
            self.assertHelp("import", *sub)


if __name__ == "__main__":
    unittest.main()
