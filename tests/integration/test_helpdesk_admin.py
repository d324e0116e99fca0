"""The help desk's administration (issue 10 point 6): local accounts and
enrollment tokens under /helpdesk/admin, for the admin role only; every
change goes through core with its audit record (source helpdesk, actor the
administrator), needs the session's CSRF token, and refuses bad input with
422 and no change; a generated password or a new token is shown once, on a
page that is not stored, and never reaches the log."""

import datetime
import html
import re
import secrets
import urllib.parse

import kw

SECRET_RE = re.compile(r'<p class="adm-secret mono" id="secret">([^<]+)</p>')
USERS = "/helpdesk/admin/users"
TOKENS = "/helpdesk/admin/enrollment"


def post(b, path, form, csrf=True):
    """Browser.post with the roles (a list) ticked as the form's checkboxes,
    one field a role."""
    pairs = []
    for k, v in form.items():
        if k == "roles":
            pairs += [("role_" + one, "1") for one in (v if isinstance(v, list) else [v])]
        else:
            pairs.append((k, v))
    if csrf is True and b.csrf is not None:
        pairs.append(("csrf_token", b.csrf))
    elif csrf and csrf is not True:
        pairs.append(("csrf_token", csrf))
    return b.request("POST", path, form=pairs)


class AdminCase(kw.PortalTestCase):

    def user_with(self, *roles, base="u"):
        name = "CORP\\%s%s" % (base, secrets.token_hex(3))
        pw = "Pw-%s" % secrets.token_urlsafe(12)
        self.kw.add_user(name, pw, *roles)
        return name, pw

    def admin(self):
        """A browser signed in as a new administrator, on the users page."""
        b = self.signed_in(self.user_with("admin", base="adm"))
        r = b.get(USERS)
        self.assertPage(r, 200)
        return b

    def state(self):
        """What a refused request must leave as it was: accounts, tokens and
        the audit trail."""
        rc, users, err = self.kw.cli("user", "list")
        self.assertEqual(rc, 0, err)
        rc, tokens, err = self.kw.cli("enroll", "list")
        self.assertEqual(rc, 0, err)
        return users, tokens, len(self.kw.audit_export())

    def last_audit(self):
        return self.kw.audit_export()[-1]

    def assertAudited(self, result, actor, end_user="", comment=None):
        a = self.last_audit()
        self.assertEqual((a["result"], a["source"], a["actor"], a["end_user"]),
                         (result, "helpdesk", actor, end_user), a)
        self.assertEqual(a["client"], "127.0.0.1", a)
        if comment is not None:
            self.assertEqual(a["comment"], comment, a)
        return a

    def assertSignedOut(self, b):
        r = b.get("/helpdesk")
        self.assertEqual(r.status, 303, r)
        self.assertNotEqual(r.header("Location"), "/helpdesk")

    def secret_of(self, r):
        """The password or token shown once: the page is not stored."""
        self.assertPage(r, 200)
        self.assertEqual(r.header("Cache-Control"), "no-store")
        m = SECRET_RE.search(r.text())
        self.assertTrue(m, r.text())
        s = html.unescape(m.group(1))
        self.kw.secrets.add(s)
        return s

    def text(self, r):
        return kw.page_text(r.body)


class RolesTest(AdminCase):

    def test_only_admin_gets_in(self):
        for roles in ((), ("reports",), ("helpdesk",), ("helpdesk_admin",)):
            b = self.signed_in(self.user_with(*roles))
            before = self.state()
            for path in (USERS, TOKENS):
                self.assertPage(b.get(path), 403, (roles, path))
            form = {"action": "add", "name": "intruder" + secrets.token_hex(2),
                    "roles": "admin", "password": "Intruder-Pass-1"}
            self.assertPage(post(b, USERS, form), 403, roles)
            self.assertPage(post(b, TOKENS, {"action": "create", "expires": "1d"}), 403,
                            roles)
            self.assertEqual(self.state(), before, roles)
        b = self.signed_in(self.user_with("admin"))
        for path in (USERS, TOKENS):
            r = b.get(path)
            self.assertPage(r, 200, path)
            self.assertIn('aria-current="page"', r.text())

    def test_swedish(self):
        b = self.signed_in(self.user_with("admin"), accept_language="sv")
        text = self.text(b.get(USERS))
        self.assertIn("Lägg till en användare", text)
        self.assertIn("Administratör", text)
        self.assertIn("Skapa en token", self.text(b.get(TOKENS)))

    def test_signed_out_goes_to_sign_in(self):
        for path in (USERS, TOKENS):
            r = self.browser().get(path)
            self.assertEqual(r.status, 303, r)


class UsersTest(AdminCase):

    def test_list_shows_accounts(self):
        name, _ = self.user_with("helpdesk", "reports")
        b = self.admin()
        text = self.text(b.get(USERS))
        self.assertIn(name, text)
        row = re.search(re.escape(html.escape(name, quote=False)) + r"</a></th><td>([^<]*)</td>",
                        b.last.text())
        self.assertEqual(row.group(1), "Help desk, Reports")
        r = b.get(USERS + "?name=" + urllib.parse.quote(name))
        self.assertPage(r, 200)
        self.assertIn("Change the roles", self.text(r))
        self.assertPage(b.get(USERS + "?name=nobody-at-all"), 404)

    def test_add_with_typed_password_signs_in(self):
        b = self.admin()
        name = "CORP\\new" + secrets.token_hex(3)
        pw = "Typed-Password-" + secrets.token_hex(4)
        self.kw.secrets.add(pw)
        r = post(b, USERS, {"action": "add", "name": name, "roles": ["helpdesk", "reports"],
                           "password": pw})
        self.assertPage(r, 200)
        self.assertIn("The user %s was added." % name, self.text(r))
        self.assertNotIn(pw, r.text())
        self.assertAudited("user_added", b.user, name, "roles: helpdesk,reports")
        nb = self.signed_in((name, pw))
        self.assertPage(nb.get("/helpdesk"), 200)
        self.assertPage(nb.get(USERS), 403)

    def test_add_with_generated_password(self):
        b = self.admin()
        name = "gen" + secrets.token_hex(3)
        r = post(b, USERS, {"action": "add", "name": name, "password": ""})
        pw = self.secret_of(r)
        self.assertEqual(len(pw), 20)
        self.assertAudited("user_added", b.user, name, "roles: none")
        self.assertNotIn(pw, str(self.kw.audit_export()))
        self.signed_in((name, pw))
        # shown once: the users page does not hold it
        self.assertNotIn(pw, b.get(USERS).text())

    def test_add_refuses_bad_input(self):
        b = self.admin()
        taken, _ = self.user_with()
        cases = [
            ({"name": "has space", "password": "Good-Password-1"}, "without spaces"),
            ({"name": "", "password": "Good-Password-1"}, "Enter a user name"),
            ({"name": "ok" + secrets.token_hex(2), "roles": "root",
              "password": "Good-Password-1"}, "Choose roles"),
            ({"name": "ok" + secrets.token_hex(2), "password": "short"},
             "at least 8"),
            ({"name": taken.upper(), "password": "Good-Password-1"}, "already an account"),
        ]
        for form, says in cases:
            before = self.state()
            form["action"] = "add"
            r = post(b, USERS, form)
            self.assertPage(r, 422, form)
            self.assertIn(says, self.text(r), form)
            self.assertIn('class="error"', r.text(), form)
            self.assertEqual(self.state(), before, form)
        # the form keeps what was typed, never the password
        r = post(b, USERS, {"action": "add", "name": "has space", "password": "Kept-Secret-9"})
        self.assertIn('value="has space"', r.text())
        self.assertNotIn("Kept-Secret-9", r.text())
        for form in ({"action": "rename", "name": taken}, {"action": "roles"},
                     {"name": taken}):
            before = self.state()
            self.assertPage(post(b, USERS, form), 422, form)
            self.assertEqual(self.state(), before, form)
        before = self.state()
        self.assertPage(post(b, USERS, {"action": "roles", "name": taken, "roles": "god"}),
                        422)
        self.assertPage(post(b, USERS, {"action": "password", "name": taken,
                                       "password": "1234567"}), 422)
        self.assertPage(post(b, USERS, {"action": "disable", "name": "nobody-at-all"}), 404)
        self.assertEqual(self.state(), before)

    def test_every_action_needs_csrf(self):
        b = self.admin()
        name, _ = self.user_with("helpdesk")
        forms = [{"action": "add", "name": "x" + secrets.token_hex(3),
                  "password": "Good-Password-1"},
                 {"action": "roles", "name": name, "roles": "admin"},
                 {"action": "disable", "name": name},
                 {"action": "enable", "name": name},
                 {"action": "password", "name": name, "password": "Good-Password-1"}]
        for form in forms:
            for token in (None, "0" * 43):
                before = self.state()
                self.assertPage(post(b, USERS, form, csrf=token), 403, form)
                self.assertEqual(self.state(), before, form)
        for form in ({"action": "create", "expires": "1d"}, {"action": "revoke", "id": "1"}):
            before = self.state()
            self.assertPage(post(b, TOKENS, form, csrf=None), 403, form)
            self.assertEqual(self.state(), before, form)

    def test_roles_change_ends_sessions(self):
        b = self.admin()
        user = self.user_with("reports")
        ub = self.signed_in(user)
        self.assertPage(ub.get("/helpdesk"), 200)
        self.assertPage(ub.get(USERS), 403)
        r = post(b, USERS, {"action": "roles", "name": user[0],
                           "roles": ["helpdesk_admin", "admin"]})
        self.assertPage(r, 200)
        self.assertIn("The roles were saved", self.text(r))
        self.assertIn("Help-desk administrator, Administrator", self.text(r))
        self.assertAudited("roles_changed", b.user, user[0],
                           "roles: helpdesk_admin,admin (were: reports)")
        self.assertSignedOut(ub)
        ub = self.signed_in(user)
        self.assertPage(ub.get(USERS), 200)
        # the same roles again: no change, no record
        n = len(self.kw.audit_export())
        r = post(b, USERS, {"action": "roles", "name": user[0],
                           "roles": ["helpdesk_admin", "admin"]})
        self.assertPage(r, 200)
        self.assertIn("nothing changed", self.text(r))
        self.assertNotIn("The roles were saved", self.text(r))
        self.assertEqual(len(self.kw.audit_export()), n)
        self.assertPage(ub.get(USERS), 200)

    def test_disable_ends_sessions_and_enable(self):
        b = self.admin()
        user = self.user_with("helpdesk")
        ub = self.signed_in(user)
        r = post(b, USERS, {"action": "disable", "name": user[0]})
        self.assertPage(r, 200)
        self.assertIn("disabled", self.text(r))
        self.assertAudited("user_disabled", b.user, user[0])
        self.assertSignedOut(ub)
        self.assertNotEqual(self.browser().login(*user).status, 303)
        row = re.search(re.escape(html.escape(user[0], quote=False)) +
                        r"</a></th><td>[^<]*</td><td>(.*?)</td>", b.get(USERS).text())
        self.assertIn("Disabled", row.group(1))
        r = post(b, USERS, {"action": "enable", "name": user[0]})
        self.assertPage(r, 200)
        self.assertAudited("user_enabled", b.user, user[0])
        self.signed_in(user)

    def test_password_reset(self):
        b = self.admin()
        user = self.user_with("helpdesk")
        ub = self.signed_in(user)
        pw = "Reset-Typed-" + secrets.token_hex(4)
        self.kw.secrets.add(pw)
        r = post(b, USERS, {"action": "password", "name": user[0], "password": pw})
        self.assertPage(r, 200)
        self.assertNotIn(pw, r.text())
        self.assertAudited("password_reset", b.user, user[0], "")
        self.assertSignedOut(ub)
        self.assertNotEqual(self.browser().login(*user).status, 303)
        ub = self.signed_in((user[0], pw))
        # generated: shown once, and it is the one that works
        r = post(b, USERS, {"action": "password", "name": user[0]})
        gen = self.secret_of(r)
        self.assertAudited("password_reset", b.user, user[0], "")
        self.assertSignedOut(ub)
        self.assertNotEqual(self.browser().login(user[0], pw).status, 303)
        self.signed_in((user[0], gen))
        self.assertNotIn(gen, str(self.kw.audit_export()))
        self.assertEqual(self.kw.leaked([gen, pw]), [])


class LastAdminTest(AdminCase):
    """One instance whose only administrator is init's."""

    def test_last_admin_keeps_the_role(self):
        b = self.signed_in(("admin", kw.ADMIN_PASSWORD))
        before = self.state()
        r = post(b, USERS, {"action": "roles", "name": "admin", "roles": "helpdesk"})
        self.assertPage(r, 409)
        self.assertIn("only enabled account with the Administrator role", self.text(r))
        self.assertEqual(self.state(), before)
        r = post(b, USERS, {"action": "disable", "name": "admin"})
        self.assertPage(r, 409)
        self.assertIn("cannot be disabled", self.text(r))
        self.assertEqual(self.state(), before)
        self.assertPage(b.get(USERS), 200, "still signed in, still admin")
        # with a second administrator, the first may go
        other = self.user_with("admin", base="second")
        ob = self.signed_in(other)
        ob.get(USERS)
        r = post(ob, USERS, {"action": "disable", "name": "admin"})
        self.assertPage(r, 200)
        self.assertSignedOut(b)
        r = post(ob, USERS, {"action": "roles", "name": other[0], "roles": "reports"})
        self.assertPage(r, 409)
        self.assertPage(ob.get(USERS), 200)
        r = post(ob, USERS, {"action": "enable", "name": "admin"})
        self.assertPage(r, 200)


class AuditFailureTest(AdminCase):
    """No record, no change: while audit records cannot be written, every
    action fails with 503 and changes nothing, and no password or token is
    shown."""

    def test_no_record_no_change(self):
        b = self.admin()
        user, _ = self.user_with("helpdesk")
        b.get(TOKENS)
        r = post(b, TOKENS, {"action": "create", "expires": "1d"})
        self.secret_of(r)
        tid = int(re.search(r"Token (\d+) created", self.text(r)).group(1))
        b.get(USERS)
        before = self.state()
        db = self.kw.db()
        try:
            db.execute("CREATE TRIGGER fail_audit BEFORE INSERT ON audit BEGIN "
                       "SELECT RAISE(ABORT, 'audit store failure'); END;")
            for path, form in ((USERS, {"action": "add", "name": "nx" + secrets.token_hex(3)}),
                               (USERS, {"action": "add", "name": "nx" + secrets.token_hex(3),
                                        "password": "Good-Password-1"}),
                               (USERS, {"action": "roles", "name": user, "roles": "admin"}),
                               (USERS, {"action": "disable", "name": user}),
                               (USERS, {"action": "password", "name": user}),
                               (USERS, {"action": "password", "name": user,
                                        "password": "Good-Password-1"}),
                               (TOKENS, {"action": "create", "expires": "1d"}),
                               (TOKENS, {"action": "revoke", "id": str(tid)})):
                r = post(b, path, form)
                self.assertPage(r, 503, form)
                self.assertIn("was not made", self.text(r), form)
                self.assertIsNone(SECRET_RE.search(r.text()), form)
        finally:
            db.execute("DROP TRIGGER IF EXISTS fail_audit")
            db.close()
        self.assertEqual(self.state(), before)
        self.assertIn("could not add the user", self.kw.log())
        r = post(b, USERS, {"action": "disable", "name": user})
        self.assertPage(r, 200)


class TokensTest(AdminCase):

    def token_row(self, b, tid):
        m = re.search(r'<tr><th scope="row">%d</th>(.*?)</tr>' % tid, b.get(TOKENS).text(),
                      re.S)
        self.assertTrue(m, tid)
        return kw.page_text(m.group(1))

    def test_create_register_revoke(self):
        b = self.admin()
        b.get(TOKENS)
        r = post(b, TOKENS, {"action": "create", "expires": "30d", "uses": "2"})
        token = self.secret_of(r)
        tid = int(re.search(r"Token (\d+) created", self.text(r)).group(1))
        a = self.assertAudited("token_created", b.user, "")
        self.assertRegex(a["comment"], r"^token %d, expires \d{4}-\d\d-\d\dT.*Z, 2 uses$" %
                         tid)
        self.assertNotIn(token, str(self.kw.audit_export()))
        row = self.token_row(b, tid)
        self.assertIn("Valid", row)
        self.assertNotIn(token, b.last.text())
        did, secret = self.kw.register(token=token)
        self.kw.secrets.add(secret)
        self.assertIn("Valid", self.token_row(b, tid))
        r = post(b, TOKENS, {"action": "revoke", "id": str(tid)})
        self.assertPage(r, 200)
        self.assertIn("Token %d was revoked" % tid, self.text(r))
        self.assertAudited("token_revoked", b.user, "", "token %d" % tid)
        self.assertIn("Revoked", self.token_row(b, tid))
        r = self.kw.request("POST", "/api/v1/register",
                            json={"enrollment_token": token, "name": "PC-AFTER",
                                  "domain": "CORP", "os": "Windows 11"})
        self.assertEqual(r.status, 401, r)
        self.assertEqual(self.kw.leaked([token]), [])

    def test_create_never_unlimited_and_by_date(self):
        b = self.admin()
        b.get(TOKENS)
        r = post(b, TOKENS, {"action": "create", "expires": "0", "uses": ""})
        self.secret_of(r)
        self.assertIn("No limit", self.text(r))
        self.assertRegex(self.last_audit()["comment"], r"expires never, unlimited uses$")
        b.get(TOKENS)
        r = post(b, TOKENS, {"action": "create", "expires": "2099-01-01"})
        self.assertPage(r, 422, "more than 10 years ahead")
        day = (datetime.date.today() + datetime.timedelta(days=10)).isoformat()
        r = post(b, TOKENS, {"action": "create", "expires": day, "uses": "1"})
        self.secret_of(r)
        # valid through that whole day
        after = (datetime.date.today() + datetime.timedelta(days=11)).isoformat()
        self.assertIn("expires %sT00:00:00Z, 1 use" % after, self.last_audit()["comment"])

    def test_create_refuses_bad_input(self):
        b = self.admin()
        b.get(TOKENS)
        for form, says in (({"expires": "soon"}, "such as 30d"),
                           ({"expires": ""}, "such as 30d"),
                           ({"expires": "2000-01-01"}, "a date after today"),
                           ({"expires": "30d", "uses": "0"}, "whole number"),
                           ({"expires": "30d", "uses": "many"}, "whole number"),
                           ({"expires": "30d", "uses": "-1"}, "whole number")):
            before = self.state()
            form["action"] = "create"
            r = post(b, TOKENS, form)
            self.assertPage(r, 422, form)
            self.assertIn(says, self.text(r), form)
            self.assertIsNone(SECRET_RE.search(r.text()))
            self.assertEqual(self.state(), before, form)
        for form, status in (({"action": "revoke", "id": "x"}, 422),
                             ({"action": "revoke"}, 422),
                             ({"action": "revoke", "id": "999999"}, 404),
                             ({"action": "delete", "id": "1"}, 422)):
            before = self.state()
            self.assertPage(post(b, TOKENS, form), status, form)
            self.assertEqual(self.state(), before, form)
