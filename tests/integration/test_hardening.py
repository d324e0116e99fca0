"""Issue 8's portal findings: limits that a burst cannot race, one folding
of user names, no recovery password kept in the audit trail, the CSRF and
form edge cases, sign-in by UPN, and 503 for every store failure."""

import threading
import unittest

import kw
from kw import PortalTestCase, key_id_with_prefix, hex_prefix, page_text, recovery_password

DOMAINS = {"identity": {"domains": "CORP:corp.example.com"}}


def burst(n, fn):
    """Runs fn(i) in n threads released together; returns their results."""
    gate = threading.Barrier(n)
    out = [None] * n

    def run(i):
        try:
            gate.wait(timeout=60)
            out[i] = fn(i)
        except Exception as e:  # reported by the caller's assertions
            out[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return out


def checked_failures(kwi, name):
    """Sign-in attempts for account name whose password was checked and
    failed, as the server logged them."""
    return sum(1 for line in kwi.log().splitlines()
               if "sign-in failed" in line and line.rstrip().endswith(" for " + name))


class LoginBurstTest(PortalTestCase):
    """A burst of concurrent wrong passwords gets no more than
    login_failures checks, and the right password within the burst is then
    refused too (7)."""
    settings = dict(DOMAINS, limits={"login_failures": "10/15m"})

    def test_burst_of_guesses(self):
        name, pw = self.new_user("burst")
        browsers = [self.browser() for _ in range(40)]
        for b in browsers:
            self.assertEqual(b.get("/login").status, 200)

        def attempt(i):
            return browsers[i].post("/login", {"username": name, "password": "wrong-%d" % i})

        results = burst(len(browsers), attempt)
        for r in results:
            self.assertNotIsInstance(r, Exception)
            self.assertPage(r, 401)
        self.assertEqual(checked_failures(self.kw, name), 10)
        # The right password is refused now: the account is locked.
        r = self.browser().login(name, pw)
        self.assertPage(r, 401)
        self.assertIsNone(self.browser().session)


class SpellingsTest(PortalTestCase):
    """Every spelling of a non-ASCII name counts against one lock (8)."""
    settings = dict(DOMAINS, limits={"login_failures": "10/15m"})

    def test_non_ascii_spellings_share_one_lock(self):
        name, pw = "CORP\\\u00c5sa\u00f6\u00e9", "Pw-\u00e5sa-Right-1"
        self.kw.add_user(name, pw)
        spellings = ["CORP\\\u00c5sa\u00f6\u00e9", "corp\\\u00e5sa\u00f6\u00e9",
                     "CORP\\\u00c5SA\u00d6\u00c9", "\u00c5sa\u00f6\u00e9",
                     "\u00e5SA\u00f6\u00c9", "\u00c5sa\u00d6\u00e9@corp.example.com",
                     "corp\\\u00c5sA\u00d6\u00e9"]
        # Each spelling names the account.
        b = self.browser()
        self.assertEqual(b.login(spellings[4], pw).status, 303)
        for i in range(14):
            r = self.browser().login(spellings[i % len(spellings)], "wrong-%d" % i)
            self.assertPage(r, 401)
        self.assertLessEqual(checked_failures(self.kw, name), 10)
        for s in spellings:
            r = self.browser().login(s, pw)
            self.assertPage(r, 401, s)


class LookupBurstTest(PortalTestCase):
    """A burst of concurrent lookups that find nothing gets no more than
    lookup_failures 404s (7)."""
    settings = {"limits": {"lookup_failures": "5/15m",
                           "lookup_failures_per_address": "50/15m"}}

    def test_burst_of_lookups(self):
        b = self.signed_in()
        b.get("/recover")
        prefixes = [hex_prefix() for _ in range(30)]

        def lookup(i):
            c = kw.Browser(self.kw)
            c.cookies = dict(b.cookies)
            c.csrf = b.csrf
            return c.recover(prefixes[i])

        results = burst(30, lookup)
        statuses = [r.status if not isinstance(r, Exception) else r for r in results]
        self.assertLessEqual(statuses.count(404), 5, statuses)
        self.assertEqual(statuses.count(404) + statuses.count(429), 30, statuses)
        rows = [r for r in self.kw.audit_export() if r["end_user"] == b.user]
        self.assertLessEqual(sum(1 for r in rows if r["result"] == "not_found"), 5)

    def test_found_keys_do_not_count(self):
        """Lookups that find a key give back the place they took under the
        limit: only 404s count, also when they run at once."""
        b = self.signed_in()
        keys = [(key_id_with_prefix(hex_prefix()), recovery_password())
                for _ in range(10)]
        self.kw.device_with(keys, logons=[(b.user, "local")])
        b.get("/recover")
        for _ in range(4):
            self.assertPage(b.recover(hex_prefix()), 404)

        def lookup(i):
            c = kw.Browser(self.kw)
            c.cookies = dict(b.cookies)
            c.csrf = b.csrf
            return c.recover(keys[i][0][:8])

        # At most one more place is free: concurrent lookups may have to
        # wait (429), but each one that ran found its key and counts nothing.
        results = burst(4, lookup)
        self.assertIn(200, [r.status for r in results])
        self.assertLessEqual(set(r.status for r in results), {200, 429})
        for k in keys[4:]:
            self.assertPage(b.recover(k[0][:8]), 200)
        self.assertPage(b.recover(hex_prefix()), 404)
        self.assertPage(b.recover(hex_prefix()), 429)


class AuditTextTest(PortalTestCase):
    """A recovery password typed into the Key ID field is never kept in the
    audit trail (12)."""

    def last_key_text(self, user):
        rows = [r for r in self.kw.audit_export() if r["end_user"] == user]
        return rows[-1]["result"], rows[-1]["key_id"]

    def test_passwords_in_the_key_id_field(self):
        b = self.signed_in()
        pw = recovery_password()
        groups = pw.split("-")
        typed = [pw,                                  # the whole password: 422
                 pw.replace("-", ""),                 # without hyphens: 422
                 " ".join(groups),                    # with spaces: 422
                 "-".join(groups[:5]),                # 30 digits: a valid prefix, 404
                 "-".join(groups[:2]),                # 12 digits: a valid prefix, 404
                 groups[0] + " x",                    # one group and junk: 422
                 "1234567890123456789",               # a long digit string: 422
                 "\u2013".join(groups),              # en dashes (word processors): 422
                 "\u00a0".join(groups[:3]),          # no-break spaces: 422
                 ".".join(groups),                    # dots: 422
                 "x".join(groups),                    # letters between groups: 422
                 pw + "x"]
        for t in typed:
            r = b.recover(t)
            self.assertIn(r.status, (404, 422), t)
            result, text = self.last_key_text(b.user)
            self.assertIn("not recorded", text, t)
            for g in groups:
                self.assertNotIn(g, text, t)
        _, _, out = self.kw.export()
        rc, trail, err = self.kw.cli("audit", "export")
        self.assertEqual(rc, 0, err)
        for g in groups:
            self.assertNotIn(g, trail)

    def test_password_is_told_and_not_shown_again(self):
        b = self.signed_in()
        pw = recovery_password()
        r = b.recover(pw)
        self.assertPage(r, 422)
        self.assertIn("This is a recovery password, not a recovery key ID", page_text(r.body))
        self.assertNotIn(pw.split("-")[0], r.text())

    def test_ordinary_input_is_kept(self):
        b = self.signed_in()
        self.assertPage(b.recover("XYZ-not-a-key"), 422)
        self.assertEqual(self.last_key_text(b.user), ("invalid", "XYZ-not-a-key"))
        p = hex_prefix()
        self.assertPage(b.recover(p.lower()), 404)
        self.assertEqual(self.last_key_text(b.user), ("not_found", p))
        # A key ID's format never looks like a password.
        kid = key_id_with_prefix("12345678")
        self.assertPage(b.recover(kid), 404)
        self.assertEqual(self.last_key_text(b.user)[1], kid.replace("-", ""))


class FormEdgeTest(PortalTestCase):
    """CSRF and form edge cases (13)."""
    settings = DOMAINS

    def test_empty_login_token_and_cookie(self):
        name, pw = self.new_user("empty")
        b = self.browser()
        body = kw.urllib.parse.urlencode({"username": name, "password": pw,
                                          "csrf_token": ""})
        for cookie in ("keywarden_login=", "keywarden_login=; other=1", None):
            r = b.request("POST", "/login", body=body, headers={"Cookie": cookie})
            self.assertPage(r, 403, cookie)
            self.assertIsNone(b.session)

    def test_nul_in_a_field(self):
        name, pw = self.new_user("nul")
        b = self.browser()
        b.get("/login")
        body = "username=%s&password=%s%%00garbage&csrf_token=%s" % (
            kw.urllib.parse.quote(name), kw.urllib.parse.quote(pw), b.csrf)
        r = b.request("POST", "/login", body=body)
        self.assertPage(r, 400)
        self.assertIsNone(b.session)
        self.assertEqual(b.login(name, pw).status, 303)

    def test_expired_page_by_get_ends_nothing(self):
        b = self.signed_in()
        cookie = b.session
        r = b.get("/session/expired", headers={"Sec-Fetch-Site": "cross-site"})
        self.assertPage(r, 200)
        self.assertEqual(b.session, cookie, "the cookie stays")
        self.assertPage(b.get("/recover"), 200)
        # Signed out by POST /logout (what the page's script does at the end
        # of the countdown), the page then clears the stale cookie.
        self.assertEqual(b.post("/logout").status, 303)
        b.cookies[b.session_cookie_name()] = cookie
        r = b.get("/session/expired")
        self.assertPage(r, 200)
        self.assertIsNone(b.session)

    def test_origin_scheme(self):
        name, pw = self.new_user("origin")
        for origin, status in (("https://127.0.0.1:%d" % self.kw.port, 403),
                               ("ftp://127.0.0.1:%d" % self.kw.port, 403),
                               ("http://127.0.0.1:%d" % self.kw.port, 303)):
            b = self.browser()
            b.get("/login")
            r = b.post("/login", {"username": name, "password": pw},
                       headers={"Origin": origin, "Sec-Fetch-Site": None})
            self.assertEqual(r.status, status, origin)


class UpnSignInTest(PortalTestCase):
    """Every documented form of a name signs in (17)."""
    settings = DOMAINS

    def test_forms_of_a_name(self):
        tag = kw.secrets.token_hex(3)
        pw = "Pw-upn-" + tag
        self.kw.add_user("CORP\\alice" + tag, pw)
        self.kw.add_user("bob%s@corp.example.com" % tag, pw)
        for typed in ("alice%s@corp.example.com" % tag, "ALICE%s@Corp.Example.Com" % tag,
                      "corp\\alice" + tag, "alice" + tag,
                      "bob%s@corp.example.com" % tag, "CORP\\bob" + tag, "bob" + tag):
            b = self.browser()
            self.assertEqual(b.login(typed, pw).status, 303, typed)
        self.assertPage(self.browser().login("alice%s@other.example.com" % tag, pw), 401)


class StoreFailureTest(PortalTestCase):
    """A failing store is 503 on every route, never 500 (6)."""
    settings = {"limits": {"lookup_failures": "1/15m"}}

    def db_exec(self, *sql):
        db = self.kw.db()
        try:
            for s in sql:
                db.execute(s)
        finally:
            db.close()

    def test_login_when_sessions_cannot_be_written(self):
        name, pw = self.new_user("nosess")
        self.db_exec("CREATE TRIGGER no_sessions BEFORE INSERT ON sessions BEGIN "
                     "SELECT RAISE(ABORT, 'store failure'); END;")
        try:
            r = self.browser().login(name, pw)
            self.assertPage(r, 503)
        finally:
            self.db_exec("DROP TRIGGER no_sessions")
        self.assertEqual(self.browser().login(name, pw).status, 303)

    def test_reads_failing(self):
        name, pw = self.new_user("noread")
        b = self.signed_in()
        self.db_exec("ALTER TABLE users RENAME TO users_gone",
                     "ALTER TABLE sessions RENAME TO sessions_gone")
        try:
            self.assertPage(self.browser().login(name, pw), 503)
            self.assertPage(b.get("/recover"), 503)
            self.assertPage(b.recover(hex_prefix()), 503)
        finally:
            self.db_exec("ALTER TABLE users_gone RENAME TO users",
                         "ALTER TABLE sessions_gone RENAME TO sessions")
        self.assertPage(b.get("/recover"), 200)

    def test_rate_limited_when_audit_fails(self):
        b = self.signed_in()
        self.assertPage(b.recover(hex_prefix()), 404)
        self.assertPage(b.recover(hex_prefix()), 429)
        self.db_exec("CREATE TRIGGER no_audit BEFORE INSERT ON audit BEGIN "
                     "SELECT RAISE(ABORT, 'audit failure'); END;")
        try:
            self.assertPage(b.recover(hex_prefix()), 503)
            self.assertPage(b.recover("not a key"), 503)
        finally:
            self.db_exec("DROP TRIGGER no_audit")
        self.assertNotIn(" 500 ", "\n".join(self.kw.access_lines()))


if __name__ == "__main__":
    unittest.main()
