"""The self-service portal as a browser sees it (SPEC §3, §7): sign-in, CSRF
and Origin checks, session cookies, sign-out, server-side timeouts, the
notice, response headers, languages. Recovery itself: test_recover.py."""

import html
import os
import re
import time
import unittest

import kw
from kw import page_text, strip_csrf

GENERIC = "Sign-in failed. Check your user name and password"
DOMAINS = {"identity": {"domains": "CORP:corp.example.com"}}


def settings(*parts):
    out = {}
    for p in parts:
        for section, kv in p.items():
            out.setdefault(section, {}).update(kv)
    return out


class SignInTest(kw.PortalTestCase):
    settings = settings(DOMAINS, {"limits": {"login_failures": "3/15m"}})

    # -- the sign-in form and its CSRF cookie --

    def test_login_form_sets_csrf_cookie(self):
        b = self.browser()
        r = b.get("/login")
        self.assertPage(r, 200)
        cookies = {c.name: c for c in r.cookies}
        self.assertIn("keywarden_login", cookies, r.headers)
        c = cookies["keywarden_login"]
        self.assertTrue(c.value)
        self.assertEqual(b.csrf, c.value, "the form's csrf_token is the cookie's value")
        self.assertIs(c.attrs.get("httponly"), True, c)
        self.assertEqual(c.attrs.get("samesite"), "Strict", c)
        self.assertEqual(c.attrs.get("path"), "/", c)
        self.assertNotIn("secure", c.attrs, c)
        # a new form, a new token
        b2 = self.browser()
        b2.get("/login")
        self.assertNotEqual(b2.csrf, b.csrf)

    def test_login_without_or_with_wrong_csrf_refused(self):
        name, pw = self.new_user()
        form = {"username": name, "password": pw}
        other = self.browser()
        other.get("/login")
        for what, token in (("no token", None), ("wrong token", "x" * 43),
                            ("token of another form", other.csrf)):
            b = self.browser()
            b.get("/login")
            r = b.post("/login", form, csrf=token)
            self.assertPage(r, 403, what)
            self.assertIsNone(b.session, what)
        # the right token but no cookie (the cookie is what the token is checked against)
        b = self.browser()
        b.get("/login")
        token = b.csrf
        b.cookies.clear()
        r = b.post("/login", form, csrf=token)
        self.assertEqual(r.status, 403, r)
        self.assertIsNone(b.session)

    def test_login_from_another_site_refused(self):
        name, pw = self.new_user()
        for what, hdrs in (
                ("Origin of another site", {"Origin": "http://evil.example"}),
                ("Origin of another port", {"Origin": "http://127.0.0.1:1"}),
                ("Sec-Fetch-Site: cross-site", {"Sec-Fetch-Site": "cross-site"}),
                ("Sec-Fetch-Site: same-site", {"Sec-Fetch-Site": "same-site"}),
                ("Origin: null, cross-site", {"Origin": "null",
                                              "Sec-Fetch-Site": "cross-site"})):
            b = self.browser()
            r = b.login(name, pw, headers=hdrs)
            self.assertPage(r, 403, what)
            self.assertIsNone(b.session, what)
        # the account is not locked by refused forms
        self.browser().sign_in(name, pw)

    def test_origin_null_from_same_origin_accepted(self):
        # Referrer-Policy: no-referrer makes browsers send "Origin: null"
        name, pw = self.new_user()
        b = self.browser()
        r = b.login(name, pw, headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"})
        self.assertEqual(r.status, 303, r)
        self.assertTrue(b.session)
        # and a browser that sends no Origin at all relies on the token
        b = self.browser()
        r = b.login(name, pw, headers={"Origin": None, "Sec-Fetch-Site": None})
        self.assertEqual(r.status, 303, r)

    # -- a successful sign-in --

    def test_good_credentials_set_session_cookie(self):
        name, pw = self.new_user()
        b = self.browser()
        r = b.login(name, pw)
        self.assertRedirect(r, "/recover")
        cookies = {c.name: c for c in r.cookies}
        self.assertIn("keywarden", cookies, r.headers.get_all("Set-Cookie"))
        self.assertNotIn("__Host-keywarden", cookies)
        c = cookies["keywarden"]
        self.assertGreaterEqual(len(c.value), 43, "256 bits")
        self.assertIs(c.attrs.get("httponly"), True, c)
        self.assertEqual(c.attrs.get("samesite"), "Strict", c)
        self.assertEqual(c.attrs.get("path"), "/", c)
        self.assertNotIn("secure", c.attrs, c)
        self.assertNotIn("domain", c.attrs, c)
        # the pre-session cookie is dropped
        self.assertNotIn("keywarden_login", b.cookies)
        r = b.get("/recover")
        self.assertPage(r, 200)
        self.assertIn(name, page_text(r.body))
        self.assertEqual(r.header("Cache-Control"), "no-store")
        # signed in, /login goes on to the portal
        self.assertRedirect(b.get("/login"), "/recover")

    def test_new_session_id_at_every_sign_in(self):
        name, pw = self.new_user()
        b1, b2 = self.browser(), self.browser()
        b1.sign_in(name, pw)
        b2.sign_in(name, pw)
        self.assertNotEqual(b1.session, b2.session)
        # signing in again in the same browser replaces its session
        old = b1.session
        saved = dict(b1.cookies)
        b1.cookies.pop("keywarden")
        b1.get("/login")                   # a fresh form
        b1.cookies["keywarden"] = old      # the old session is still sent
        r = b1.post("/login", {"username": name, "password": pw})
        self.assertEqual(r.status, 303, r)
        self.assertTrue(b1.session)
        self.assertNotEqual(b1.session, old)
        stale = self.browser()
        stale.cookies = {"keywarden": saved["keywarden"]}
        self.assertRedirect(stale.get("/recover"), "/login")
        self.assertPage(b1.get("/recover"), 200)
        self.assertPage(b2.get("/recover"), 200)

    def test_session_fixation_cookie_not_adopted(self):
        name, pw = self.new_user()
        b = self.browser()
        planted = "planted-by-an-attacker-0123456789abcdefghijk"
        b.cookies["keywarden"] = planted
        r = b.login(name, pw)
        self.assertEqual(r.status, 303, r)
        self.assertNotEqual(b.session, planted)
        attacker = self.browser()
        attacker.cookies["keywarden"] = planted
        self.assertRedirect(attacker.get("/recover"), "/login")

    @kw.needs_sqlite
    def test_session_id_stored_hashed(self):
        db = self.kw.db()
        try:
            before = db.execute("SELECT count(*) FROM sessions").fetchone()[0]
            b = self.signed_in()
            rows = db.execute("SELECT id_hash, csrf FROM sessions").fetchall()
        finally:
            db.close()
        self.assertEqual(len(rows), before + 1)
        cookie = b.session.encode()
        for id_hash, _ in rows:
            self.assertIsInstance(id_hash, bytes)
            self.assertEqual(len(id_hash), 32)
            self.assertNotEqual(id_hash, cookie)
            self.assertNotIn(id_hash.hex().encode(), (cookie, cookie.lower()))
        for path in (self.kw.sqlite_path, self.kw.sqlite_path + "-wal"):
            if os.path.exists(path):
                with open(path, "rb") as f:
                    self.assertNotIn(cookie, f.read(), path)

    # -- failures --

    def failure_page(self, username, password):
        b = self.browser()
        r = b.login(username, password)
        self.assertIsNone(b.session, (username, r))
        text = strip_csrf(r.text())
        for form in (username, html.escape(username)):
            text = text.replace(form, "USERNAME")
        return r.status, text

    def test_failures_are_indistinguishable(self):
        known, _ = self.new_user("known")
        disabled, dpw = self.new_user("disabled")
        rc, out, err = self.kw.cli("user", "disable", disabled)
        self.assertEqual(rc, 0, err)
        wrong = self.failure_page(known, "Not-The-Password-1")
        unknown = self.failure_page("CORP\\nobody" + known[-6:], "Not-The-Password-1")
        off = self.failure_page(disabled, dpw)
        self.assertEqual(wrong[0], 401)
        self.assertIn(GENERIC, page_text(wrong[1]))
        self.assertEqual(unknown, wrong, "unknown user and wrong password differ")
        self.assertEqual(off, wrong, "disabled user and wrong password differ")

    def test_empty_fields_422(self):
        b = self.browser()
        b.get("/login")
        r = b.post("/login", {"username": "", "password": ""})
        self.assertPage(r, 422)
        self.assertIsNone(b.session)

    def test_login_failures_lock_the_account(self):
        name, pw = self.new_user("locked")
        other, opw = self.new_user("other")
        wrong = [self.failure_page(name, "Wrong-Password-%d" % i) for i in range(3)]
        self.assertEqual({w[0] for w in wrong}, {401})
        # the 4th attempt, with the right password, gets the same answer
        self.assertEqual(self.failure_page(name, pw), wrong[0])
        self.assertEqual(self.failure_page(name.upper(), pw)[0], wrong[0][0])
        # other accounts are not affected
        self.browser().sign_in(other, opw)
        self.assertIn("too many failures", self.kw.log())

    def test_lock_is_per_account_whatever_the_spelling(self):
        name, pw = self.new_user("carol")
        bare = name.split("\\", 1)[1]
        self.browser().sign_in(bare, pw)          # the bare name is this account
        for i in range(3):
            self.assertEqual(self.failure_page(bare, "Wrong-Password-%d" % i)[0], 401)
        b = self.browser()
        r = b.login(name, pw)
        self.assertEqual(r.status, 401, "the locked account signed in as %s" % name)
        self.assertIsNone(b.session)

    # -- signing out, signed-out requests --

    def test_logout_ends_session_server_side(self):
        b = self.signed_in()
        old = b.session
        r = b.post("/logout")
        self.assertRedirect(r, "/login")
        cleared = [c for c in r.cookies if c.name == "keywarden"]
        self.assertTrue(cleared and cleared[0].attrs.get("max-age") == "0", r.cookies)
        self.assertIsNone(b.session)
        replay = self.browser()
        replay.cookies["keywarden"] = old
        self.assertRedirect(replay.get("/recover"), "/login")
        self.assertRedirect(replay.get("/notice"), "/login")
        self.assertRedirect(replay.post("/recover", {"key_id": "12345678",
                                                     "reason": "lost_pin"},
                                        csrf=b.csrf), "/login")

    def test_logout_needs_csrf(self):
        b = self.signed_in()
        r = b.post("/logout", csrf=None)
        self.assertPage(r, 403)
        r = b.post("/logout", csrf="wrong")
        self.assertPage(r, 403)
        r = b.post("/logout", headers={"Origin": "http://evil.example"})
        self.assertPage(r, 403)
        self.assertPage(b.get("/recover"), 200)

    def test_signed_out_requests_go_to_login(self):
        for cookies in ({}, {"keywarden": "no-such-session"}):
            b = self.browser()
            b.cookies = dict(cookies)
            for path in ("/recover", "/notice"):
                self.assertRedirect(b.get(path), "/login", what=(path, cookies))
            self.assertRedirect(b.post("/recover", {"key_id": "12345678"}, csrf="x"),
                                "/login")
            self.assertRedirect(b.post("/notice", {"accept": "yes"}, csrf="x"), "/login")
            self.assertRedirect(b.post("/logout", csrf="x"), "/login")

    def test_root_and_old_bookmark_redirect(self):
        b = self.browser()
        self.assertRedirect(b.get("/"), "/login")
        for path in ("/SelfService", "/SelfService/"):
            self.assertRedirect(b.get(path), "/", status=301, what=path)
        b = self.signed_in()
        self.assertRedirect(b.get("/"), "/recover")

    def test_without_notice_straight_to_recover(self):
        # display_notice = false (the harness's default)
        name, pw = self.new_user()
        b = self.browser()
        self.assertEqual(b.sign_in(name, pw), "/recover")
        self.assertRedirect(b.get("/notice"), "/recover")
        r = b.get("/recover")
        self.assertPage(r, 200)
        self.assertIn("Get key", page_text(r.body))




@kw.needs_openssl
class TlsSignInTest(kw.PortalTestCase):

    @classmethod
    def setUpClass(cls):
        cls.kw = kw.tls_instance("portal-tls")
        cls.addClassCleanup(cls.kw.close)

    def test_host_prefixed_secure_cookies(self):
        self.assertEqual(self.kw.scheme, "https")
        name, pw = self.new_user()
        b = self.browser()
        r = b.get("/login")
        login = {c.name: c for c in r.cookies}
        self.assertIn("__Host-keywarden_login", login, r.cookies)
        self.assertIs(login["__Host-keywarden_login"].attrs.get("secure"), True)
        r = b.post("/login", {"username": name, "password": pw})
        self.assertRedirect(r, "/recover")
        cookies = {c.name: c for c in r.cookies}
        self.assertIn("__Host-keywarden", cookies, r.cookies)
        self.assertNotIn("keywarden", cookies)
        c = cookies["__Host-keywarden"]
        self.assertIs(c.attrs.get("secure"), True, c)
        self.assertIs(c.attrs.get("httponly"), True, c)
        self.assertEqual(c.attrs.get("samesite"), "Strict", c)
        self.assertEqual(c.attrs.get("path"), "/", c)
        self.assertNotIn("domain", c.attrs, c)
        r = b.get("/recover")
        self.assertPage(r, 200)
        self.assertTrue(r.header("Strict-Transport-Security"))
        # the plain-HTTP name is not a session over TLS
        other = self.browser()
        other.cookies = {"keywarden": b.session}
        self.assertRedirect(other.get("/recover"), "/login")
        r = b.post("/logout")
        self.assertRedirect(r, "/login")
        self.assertIsNone(b.session)


IDLE = {"portal": {"session_idle_timeout": "3s", "session_warning": "1s",
                   "session_max_lifetime": "1h"}}


class IdleExpiry:
    """The checks of an idle timeout of 3 s."""

    def check_idle_expiry(self):
        b = self.signed_in()
        k = self.signed_in()
        old = b.session
        time.sleep(4.2)
        r = b.get("/recover")
        self.assertRedirect(r, "/session/expired")
        self.assertIsNone(b.session, "the expired cookie is cleared")
        r = b.follow(r)
        self.assertPage(r, 200)
        self.assertIn("Your session has expired", page_text(r.body))
        self.assertNotIn("data-remaining", r.text())
        # the session is gone on the server: the old cookie is now nobody's
        replay = self.browser()
        replay.cookies["keywarden"] = old
        self.assertRedirect(replay.get("/recover"), "/login")
        # the keepalive of an expired session
        r = k.post("/session/keepalive")
        self.assertEqual(r.status, 401, r)
        self.assertRegex(r.header("Content-Type"), r"^application/json")
        self.assertRedirect(k.get("/recover"), "/login")


class SessionIdleTimeoutTest(IdleExpiry, kw.PortalTestCase):
    settings = IDLE

    def test_idle_session_expires(self):
        self.check_idle_expiry()

    def test_activity_and_keepalive_keep_session_alive(self):
        active = self.signed_in()
        kept = self.signed_in()
        r = active.get("/recover")
        self.assertIn('data-remaining="3"', r.text())
        self.assertIn('data-warning="1"', r.text())
        kept.get("/recover")
        start = time.monotonic()
        while time.monotonic() - start < 6.0:
            time.sleep(1.5)
            r = active.get("/recover")
            self.assertPage(r, 200, "activity at %.1fs" % (time.monotonic() - start))
            r = kept.post("/session/keepalive")
            self.assertEqual(r.status, 200, r)
            self.assertRegex(r.header("Content-Type"), r"^application/json")
            remaining = r.json()["remaining"]
            self.assertIsInstance(remaining, int)
            self.assertTrue(2 <= remaining <= 3, remaining)
        self.assertPage(active.get("/recover"), 200)
        self.assertPage(kept.get("/recover"), 200)

    def test_keepalive_needs_csrf(self):
        b = self.signed_in()
        self.assertEqual(b.post("/session/keepalive", csrf=None).status, 403)
        self.assertEqual(b.post("/session/keepalive", csrf="not-the-token").status, 403)
        r = b.post("/session/keepalive", headers={"Sec-Fetch-Site": "cross-site"})
        self.assertEqual(r.status, 403)
        self.assertEqual(b.post("/session/keepalive").status, 200)

    def test_expired_page_signed_out(self):
        r = self.browser().get("/session/expired")
        self.assertPage(r, 200)
        self.assertIn("Your session has expired", page_text(r.body))


class SessionIdleOnlyTest(IdleExpiry, kw.PortalTestCase):
    """The idle timeout without a maximum lifetime (session_max_lifetime = 0)."""
    settings = {"portal": dict(IDLE["portal"], session_max_lifetime="0")}

    def test_idle_session_expires_without_max_lifetime(self):
        self.check_idle_expiry()


class SessionMaxLifetimeTest(kw.PortalTestCase):
    # The server lets a session live through its last whole second.
    # A second of slack beyond the checks: under valgrind a request can take
    # a good part of one.
    settings = {"portal": {"session_idle_timeout": "6s", "session_warning": "1s",
                           "session_max_lifetime": "4s"}}

    def test_max_lifetime_ends_active_session(self):
        b = self.browser()
        name, pw = self.new_user()
        self.assertEqual(b.login(name, pw).status, 303)
        start = time.monotonic()           # the session was made just before
        for at in (0.2, 1.2, 2.2, 2.6):
            time.sleep(max(0, start + at - time.monotonic()))
            self.assertPage(b.get("/recover"), 200, "at %.1fs" % at)
        r = b.post("/session/keepalive")
        self.assertEqual(r.status, 200, r)
        self.assertLessEqual(r.json()["remaining"], 2, "the lifetime is nearer than idle")
        time.sleep(max(0, start + 5.5 - time.monotonic()))
        # idle for under 3 s only (the idle limit is 6 s): the lifetime ended it
        r = b.get("/recover")
        self.assertRedirect(r, "/session/expired")
        self.assertRedirect(b.get("/recover"), "/login")
        # signing in again gives a fresh lifetime
        b.sign_in(name, pw)
        self.assertPage(b.get("/recover"), 200)


NOTICE = {"portal": {"display_notice": "true"}}


class NoticeTest(kw.PortalTestCase):
    settings = NOTICE

    def setUp(self):
        super().setUp()
        self.base = self.kw.notice_file
        self.sv_se = self.base[:-4] + ".sv-SE.txt"
        self.sv = self.base[:-4] + ".sv.txt"
        self.write(self.base, "Default notice text.\n")
        self.addCleanup(self.write, self.base, "Authorised use only.\n")
        for p in (self.sv_se, self.sv):
            self.addCleanup(lambda p=p: os.path.exists(p) and os.remove(p))

    @staticmethod
    def write(path, text):
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)

    def test_every_page_redirects_until_accepted(self):
        name, pw = self.new_user()
        b = self.browser()
        self.assertEqual(b.sign_in(name, pw), "/notice")
        self.assertRedirect(b.get("/"), "/notice")
        self.assertRedirect(b.get("/recover"), "/notice")
        r = b.get("/notice")
        self.assertPage(r, 200)
        self.assertIn("Default notice text.", page_text(r.body))
        self.assertEqual(r.header("Cache-Control"), "no-store")
        self.assertRedirect(b.post("/recover", {"key_id": "12345678",
                                                "reason": "lost_pin"}), "/notice")
        # without accept=yes: the notice again
        for form in ({}, {"accept": "no"}, {"accept": "YES "}):
            r = b.post("/notice", form)
            self.assertPage(r, 422, form)
            self.assertIn("Accept the notice to continue.", page_text(r.body))
        self.assertRedirect(b.get("/recover"), "/notice")
        # accept=yes needs the token too
        self.assertPage(b.post("/notice", {"accept": "yes"}, csrf=None), 403)
        self.assertRedirect(b.get("/recover"), "/notice")
        self.assertRedirect(b.post("/notice", {"accept": "yes"}), "/recover")
        self.assertPage(b.get("/recover"), 200)
        self.assertRedirect(b.get("/"), "/recover")
        # a new session sees the notice again
        b2 = self.browser()
        self.assertEqual(b2.sign_in(name, pw), "/notice")

    def test_notice_language_files(self):
        self.write(self.sv_se, "Svensk text for Sverige.\n")
        self.write(self.sv, "Svensk text.\n")
        sv = self.signed_in(accept_language="sv-SE,sv;q=0.9")
        en = self.signed_in(accept_language="en-GB,en;q=0.9")
        self.assertIn("Svensk text for Sverige.", page_text(sv.get("/notice").body))
        self.assertIn("Default notice text.", page_text(en.get("/notice").body))
        os.remove(self.sv_se)
        text = page_text(sv.get("/notice").body)
        self.assertIn("Svensk text.", text)
        self.assertNotIn("Sverige", text)
        os.remove(self.sv)
        text = page_text(sv.get("/notice").body)
        self.assertIn("Default notice text.", text)
        self.assertNotIn("Svensk text", text)

    def test_notice_text_is_escaped(self):
        self.write(self.base, "First <b>paragraph</b> & <script>alert(1)</script>\n\n"
                   "Second paragraph.\n")
        r = self.signed_in().get("/notice")
        self.assertPage(r, 200)
        self.assertNotIn("<script>alert", r.text())
        self.assertIn("&lt;script&gt;", r.text())
        self.assertIn("<p>Second paragraph.</p>", r.text())

    def test_missing_notice_file(self):
        b = self.signed_in()
        os.remove(self.base)
        r = b.get("/notice")
        self.assertPage(r, 200)
        self.assertIn("The notice cannot be shown right now", page_text(r.body))
        self.assertNotIn(self.base, r.text(), "the path is for the administrator")
        self.assertTrue(kw.wait_for(lambda: "notice file is missing" in self.kw.log()),
                        self.kw.log()[-2000:])
        self.assertTrue(self.kw.running())
        # and it can still be accepted
        self.assertRedirect(b.post("/notice", {"accept": "yes"}), "/recover")
        self.assertPage(b.get("/recover"), 200)


class PortalHeadersTest(kw.PortalTestCase):

    def test_every_page_carries_headers(self):
        signed_out = self.browser()
        pages = [("GET /login", signed_out.get("/login"), 200),
                 ("POST /login bad", signed_out.post("/login", {"username": "x",
                                                                "password": "y"}), 401),
                 ("POST /login no csrf", signed_out.post("/login", {}, csrf=None), 403),
                 ("GET /session/expired", self.browser().get("/session/expired"), 200)]
        b = self.signed_in()
        pages += [("GET /recover", b.get("/recover"), 200),
                  ("POST /recover 404", b.recover("ABCDEF0123"), 404),
                  ("POST /recover 422", b.recover("123"), 422),
                  ("POST /recover 403", b.recover("12345678", csrf=None), 403)]
        for what, r, status in pages:
            self.assertPage(r, status, what)
            self.assertIn(b'<html lang="en">', r.body, what)
        for what, r, _ in pages[4:]:
            self.assertEqual(r.header("Cache-Control"), "no-store", what)
        # redirects carry the security headers too
        for r in (signed_out.get("/"), b.get("/"), b.get("/notice"),
                  self.browser().get("/recover")):
            self.assertEqual(r.status, 303, r)
            self.assertEqual(r.header("Content-Security-Policy"), kw.CSP)
            self.assertEqual(r.header("X-Content-Type-Options"), "nosniff")
            self.assertEqual(r.header("Referrer-Policy"), "no-referrer")

    def test_static_assets(self):
        for path, ctype in (("/static/portal.css", "text/css; charset=utf-8"),
                            ("/static/portal.js", "text/javascript; charset=utf-8")):
            r = self.kw.request("GET", path)
            self.assertEqual(r.status, 200, (path, r))
            self.assertEqual(r.header("Content-Type"), ctype, path)
            self.assertEqual(r.header("X-Content-Type-Options"), "nosniff", path)
            self.assertEqual(r.header("Content-Security-Policy"), kw.CSP, path)
            self.assertTrue(r.body, path)
            with open(os.path.join(kw.REPO, "static", path.rsplit("/", 1)[1]), "rb") as f:
                self.assertEqual(r.body, f.read(), path)
        self.assertEqual(self.kw.request("GET", "/static/nope.css").status, 404)
        self.assertEqual(self.kw.request("GET", "/static/../kw.db").status, 404)

    def test_log_check_sees_the_log(self):
        # the end-of-class check (PortalTestCase.tearDownClass) can fail
        self.assertEqual(self.kw.leaked(extra=["keywarden listening on"]),
                         ["keywarden listening on"])

    def test_pages_have_no_inline_script(self):
        b = self.signed_in()
        for r in (self.browser().get("/login"), b.get("/recover")):
            for tag in re.findall(r"<script[^>]*>", r.text()):
                self.assertIn('src="/static/', tag)
            self.assertNotIn(" onclick=", r.text())


SWEDISH = {"portal": {"company_name": "Exempel IT",
                      "helpdesk_text": "Call the service desk on 1234",
                      "helpdesk_text.sv": "Ring servicedesken på 1234",
                      "helpdesk_url": "https://help.example.com/en",
                      "helpdesk_url.sv": "https://help.example.com/sv"}}


class SwedishTest(kw.PortalTestCase):
    settings = SWEDISH

    def test_accept_language_swedish(self):
        b = self.browser("sv-SE,sv;q=0.9")
        r = b.get("/login")
        self.assertPage(r, 200)
        self.assertIn('<html lang="sv">', r.text())
        text = page_text(r.body)
        self.assertIn("Logga in", text)
        self.assertIn("Exempel IT", text)               # no .sv variant: the default
        self.assertIn("Ring servicedesken på 1234", text)
        self.assertIn('href="https://help.example.com/sv"', r.text())
        self.assertNotIn("Call the service desk", text)
        self.assertNotIn("help.example.com/en", r.text())

    def test_english_by_default(self):
        for lang in (None, "en-US,en;q=0.9", "de-DE,fr;q=0.8", "sv;q=0.1,en;q=0.9"):
            r = self.browser(lang).get("/login")
            self.assertIn('<html lang="en">', r.text(), lang)
            text = page_text(r.body)
            self.assertIn("Sign in", text, lang)
            self.assertIn("Call the service desk on 1234", text, lang)
            self.assertIn('href="https://help.example.com/en"', r.text(), lang)

    def test_switcher_cookie_wins_over_accept_language(self):
        b = self.browser("sv-SE,sv;q=0.9")
        r = b.get("/login?lang=en")
        self.assertIn('<html lang="en">', r.text())
        c = [c for c in r.cookies if c.name == "keywarden_lang"]
        self.assertTrue(c and c[0].value == "en", r.cookies)
        self.assertEqual(c[0].attrs.get("path"), "/")
        r = b.get("/login")
        self.assertIn('<html lang="en">', r.text())
        self.assertIn("Sign in", page_text(r.body))
        # and back
        r = b.get("/login?lang=sv")
        self.assertIn('<html lang="sv">', r.text())
        self.assertEqual(b.cookies.get("keywarden_lang"), "sv")
        b.accept_language = "en"
        self.assertIn('<html lang="sv">', b.get("/login").text())

    def test_signed_in_pages_in_swedish(self):
        b = self.signed_in(accept_language="sv-SE,sv;q=0.9")
        r = b.get("/recover")
        self.assertPage(r, 200)
        self.assertIn('<html lang="sv">', r.text())
        self.assertNotIn("Get key", page_text(r.body))
        r = b.recover("ABCDEF01", reason=None)
        self.assertPage(r, 422)
        self.assertIn('<html lang="sv">', r.text())


if __name__ == "__main__":
    unittest.main()
