"""The command table (issue 9, point 10): every command and sub-verb has the
same preamble — --help, a wrong option, a wrong number of arguments, the
checks of its arguments before any configuration is read — and the policies
the CLI reaches through core (a new password or a disabled account ends the
account's web sessions)."""

import os
import unittest

import kw

# Every command and sub-verb with arguments it accepts, and one too many.
ENTRIES = {
    ("init",): ([], ["x"]),
    ("serve",): ([], ["x"]),
    ("demo",): ([], ["x"]),
    ("migrate",): ([], ["x"]),
    ("user", "add"): (["NAME"], ["NAME", "x"]),
    ("user", "passwd"): (["NAME"], ["NAME", "x"]),
    ("user", "list"): ([], ["x"]),
    ("user", "disable"): (["NAME"], ["NAME", "x"]),
    ("user", "enable"): (["NAME"], ["NAME", "x"]),
    ("enroll", "create"): ([], ["x"]),
    ("enroll", "list"): ([], ["x"]),
    ("enroll", "revoke"): (["1"], ["1", "2"]),
    ("device", "list"): (["PC"], ["PC", "x"]),
    ("device", "show"): (["ID"], ["ID", "x"]),
    ("device", "revoke"): (["ID"], ["ID", "x"]),
    ("assoc", "add"): (["USER", "ID"], ["USER", "ID", "x"]),
    ("export", "csv"): ([], ["x"]),
    ("audit", "verify"): ([], ["x"]),
    ("audit", "export"): ([], ["x"]),
    ("rekey",): ([], ["x"]),
    ("config", "check"): ([], ["x"]),
}
# Entries that take positional arguments, without them.
MISSING = [("user", "add"), ("user", "passwd"), ("user", "disable"), ("user", "enable"),
           ("enroll", "revoke"), ("device", "show"), ("device", "revoke"), ("assoc", "add")]
GROUPS = ["user", "enroll", "device", "assoc", "export", "audit", "config"]


class CommandTableTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.kw = kw.Keywarden(name="commands", start=False)
        cls.addClassCleanup(cls.kw.close)

    def assertUsageError(self, args, config=True):
        rc, out, err = self.kw.cli(*args, config=config, timeout=20)
        self.assertEqual(rc, 2, (args, err))
        self.assertEqual(out, "", args)
        self.assertIn("usage: keywarden", err, args)
        return err

    def test_help_on_stdout_for_every_entry(self):
        for entry, (ok, _) in ENTRIES.items():
            for flag in ("--help", "-h"):
                # wherever it stands among the arguments
                for args in (list(entry) + [flag] + ok, list(entry) + ok + [flag]):
                    rc, out, err = self.kw.cli(*args, timeout=20)
                    self.assertEqual((rc, err), (0, ""), args)
                    self.assertTrue(out.startswith("usage: keywarden"), args)
        for group in GROUPS:
            rc, out, err = self.kw.cli(group, "--help")
            self.assertEqual((rc, err), (0, ""), group)
            self.assertTrue(out.startswith("usage: keywarden %s" % group), group)

    def test_unknown_option_is_a_usage_error(self):
        for entry, (ok, _) in ENTRIES.items():
            err = self.assertUsageError(list(entry) + ok + ["--frobnicate"])
            # getopt names the command and the option
            self.assertIn("keywarden %s: unrecognized option '--frobnicate'"
                          % " ".join(entry), err)

    def test_options_of_another_verb_are_refused(self):
        for args in (["enroll", "list", "--uses", "3"],
                     ["enroll", "revoke", "1", "--expires", "1d"],
                     ["user", "list", "--role", "admin"],
                     ["user", "disable", "x", "--password-stdin"],
                     ["user", "passwd", "x", "--role", "admin"],
                     ["audit", "verify", "--from", "2020-01-01"],
                     ["device", "show", "ID", "--output", "f"]):
            self.assertUsageError(args)

    def test_wrong_argument_count_is_a_usage_error(self):
        for entry, (_, too_many) in ENTRIES.items():
            self.assertUsageError(list(entry) + too_many)
        for entry in MISSING:
            self.assertUsageError(list(entry))
        for group in GROUPS:
            self.assertUsageError([group])

    def test_unknown_verb(self):
        for group in GROUPS:
            rc, out, err = self.kw.cli(group, "frobnicate")
            self.assertEqual(rc, 2, group)
            self.assertEqual(out, "", group)
            self.assertIn("unknown %s command 'frobnicate'; see keywarden %s --help"
                          % (group, group), err)

    def test_arguments_checked_before_the_configuration(self):
        missing = os.path.join(self.kw.dir, "missing.conf")
        for args, says in ((["user", "add", "x1", "--role", "root"], "unknown role 'root'"),
                           (["user", "add", "two words"], "not a valid user name"),
                           (["user", "disable", "a\tb"], "not a valid user name"),
                           (["enroll", "revoke", "abc"], "'abc' is not a token ID"),
                           (["enroll", "create", "--uses", "0"], "--uses 0"),
                           (["assoc", "add", "a\x01", "ID"], "not a valid user name"),
                           (["audit", "export", "--from", "2030-01-01", "--to",
                             "2020-01-01"], "--from is after --to"),
                           (["init", "--admin", "two words"], "not a valid user name")):
            rc, out, err = self.kw.cli("--config", missing, *args, config=False)
            self.assertEqual(rc, 1, args)
            self.assertIn(says, err, args)
            self.assertNotIn(missing, err, args)
        # and what needs the configuration says it is missing
        rc, out, err = self.kw.cli("--config", missing, "device", "list", config=False)
        self.assertEqual(rc, 1)
        self.assertIn(missing, err)

    def test_bad_init_admin_name_makes_nothing(self):
        k = kw.Keywarden(name="badadmin", init=False, start=False)
        self.addCleanup(k.close)
        rc, out, err = k.cli("init", "--admin", "bad name", "--password-stdin",
                             input=kw.ADMIN_PASSWORD + "\n")
        self.assertEqual(rc, 1, err)
        self.assertFalse(os.path.exists(k.key_file))
        if k.sqlite_path:
            self.assertFalse(os.path.exists(k.sqlite_path))


class AccountSessionsTest(kw.PortalTestCase):
    """The CLI's account changes reach signed-in browsers at once."""

    def assertSignedIn(self, b, signed_in):
        r = b.get("/recover")
        if signed_in:
            self.assertEqual(r.status, 200, r)
        else:
            self.assertIn(r.status, (302, 303), r)
            self.assertTrue(r.header("Location").startswith("/login"), r)

    def test_disable_ends_sessions(self):
        name, pw = self.new_user()
        other = self.signed_in()
        b = self.signed_in((name, pw))
        self.assertSignedIn(b, True)
        rc, out, err = self.kw.cli("user", "disable", name)
        self.assertEqual(rc, 0, err)
        self.assertSignedIn(b, False)
        self.assertSignedIn(other, True)
        self.assertNotEqual(self.browser().login(name, pw).status, 303)
        # enabled again, the password works again
        rc, out, err = self.kw.cli("user", "enable", name)
        self.assertEqual(rc, 0, err)
        self.signed_in((name, pw))

    def test_new_password_ends_sessions(self):
        name, pw = self.new_user()
        b = self.signed_in((name, pw))
        new = "New-Password-%s" % name[-6:]
        self.kw.secrets.add(new)
        rc, out, err = self.kw.cli("user", "passwd", name, "--password-stdin",
                                   input=new + "\n")
        self.assertEqual(rc, 0, err)
        self.assertNotIn(new, out + err)
        self.assertSignedIn(b, False)
        self.assertNotEqual(self.browser().login(name, pw).status, 303)
        self.signed_in((name, new))


if __name__ == "__main__":
    unittest.main()
