"""What the route table declares (issue 9): the roles a route admits,
refused (403) before its handler runs; how a route answers what it does not
answer itself (JSON for the API, the portal's page elsewhere); and that a
page view does not write the session each time (activity is coalesced)."""

import secrets
import threading
import unittest
import time

import kw


class RolesTest(kw.PortalTestCase):

    def user_with(self, *roles):
        name = "CORP\\r%s" % secrets.token_hex(3)
        pw = "Pw-%s" % secrets.token_urlsafe(12)
        self.kw.add_user(name, pw, *roles)
        return name, pw

    def test_helpdesk_admits_only_its_roles(self):
        # no role: self-service only; the help desk is refused before its
        # handler, in the portal's layout
        b = self.signed_in(self.user_with())
        r = b.get("/helpdesk")
        self.assertPage(r, 403)
        self.assertIn("does not have access", kw.page_text(r.body))
        self.assertNotIn("Your roles", kw.page_text(r.body))
        self.assertIn('href="/"', r.body.decode(), "a way back to self-service")
        for role in ("helpdesk", "helpdesk_admin", "reports", "admin"):
            b = self.signed_in(self.user_with(role))
            r = b.get("/helpdesk")
            self.assertPage(r, 200, role)
            self.assertIn("Your roles", kw.page_text(r.body), role)
            self.assertEqual(r.header("Cache-Control"), "no-store", role)

    def test_widest_role_wins(self):
        # admin implies the rest: the page lists what each role gives
        b = self.signed_in(self.user_with("admin"))
        text = kw.page_text(b.get("/helpdesk").body)
        for what in ("Administrator", "Help-desk administrator", "Help desk:", "Reports"):
            self.assertIn(what, text)
        b = self.signed_in(self.user_with("reports"))
        text = kw.page_text(b.get("/helpdesk").body)
        self.assertIn("Reports", text)
        self.assertNotIn("Administrator", text)

    def test_staff_land_on_the_help_desk(self):
        # after sign-in (and the notice) staff start at /helpdesk, everyone
        # else at self-service; every portal page offers staff the way there
        for roles, home in (((), "/recover"), (("reports",), "/helpdesk"),
                            (("helpdesk",), "/helpdesk"), (("admin",), "/helpdesk")):
            b = self.browser()
            where = b.sign_in(*self.user_with(*roles))
            if where == "/notice":
                b.get("/notice")
                r = b.post("/notice", {"accept": "yes"})
                where = r.header("Location")
            self.assertEqual(where, home, roles)
            self.assertRedirect(b.get("/"), home)
            page = b.get("/recover").text()
            link = '<a href="/helpdesk">Help desk</a>' in page
            self.assertEqual(link, bool(roles), roles)

    def test_signed_out_goes_to_sign_in(self):
        r = self.browser().get("/helpdesk")
        self.assertRedirect(r, "/login")

    def test_swedish_refusal(self):
        b = self.signed_in(self.user_with(), accept_language="sv")
        r = b.get("/helpdesk")
        self.assertPage(r, 403)
        self.assertIn("Ditt konto har inte tillgång", kw.page_text(r.body))


class ReplyKindTest(kw.ServerTestCase):

    def test_api_paths_answer_json(self):
        # unrouted paths under /api/ (a declaration in the route table) and
        # a wrong method on an API route: JSON
        for method, path, status in (("GET", "/api/v1/nope", 404),
                                     ("GET", "/api/v2/checkin", 404),
                                     ("GET", "/api/v1/checkin", 405)):
            r = self.kw.request(method, path)
            self.assertEqual(r.status, status, (method, path, r))
            self.assertEqual(r.header("Content-Type"), "application/json; charset=utf-8",
                             (method, path))
            self.assertIn("error", r.json(), (method, path))

    def test_pages_answer_html(self):
        for method, path, status in (("GET", "/nope", 404), ("PUT", "/recover", 405),
                                     ("GET", "/apix", 404)):
            r = self.kw.request(method, path)
            self.assertEqual(r.status, status, (method, path, r))
            self.assertEqual(r.header("Content-Type"), "text/html; charset=utf-8",
                             (method, path))

    def test_operations_answer_text(self):
        r = self.kw.request("POST", "/healthz", body="")
        self.assertEqual(r.status, 405, r)
        self.assertEqual(r.header("Content-Type"), "text/plain; charset=utf-8")

    def test_keepalive_without_session_is_json(self):
        r = self.kw.request("POST", "/session/keepalive", body="",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(r.status, 401, r)
        self.assertEqual(r.header("Content-Type"), "application/json; charset=utf-8")


class SessionActivityTest(kw.PortalTestCase):
    # idle timeout 5 minutes: activity is written at most every 15 s
    settings = {"portal": {"session_idle_timeout": "5m", "display_notice": "false"}}

    def last_seen(self):
        with self.kw.db() as db:
            return sorted(r[0] for r in db.execute("SELECT last_seen FROM sessions"))

    def test_page_views_do_not_write_each_time(self):
        b = self.signed_in()
        before = self.last_seen()
        time.sleep(1.1)           # a new second: an uncoalesced touch would write it
        for _ in range(5):
            self.assertPage(b.get("/recover"), 200)
        self.assertEqual(self.last_seen(), before,
                         "page views within 15 s of the last write wrote the session")

    def test_keepalive_writes(self):
        b = self.signed_in()
        before = self.last_seen()
        time.sleep(1.1)
        r = b.post("/session/keepalive", {})
        self.assertEqual(r.status, 200, r)
        # "Continue" in the countdown is written at once: the full idle time again
        self.assertEqual(r.json()["remaining"], 300)
        self.assertGreater(self.last_seen(), before)


@unittest.skipIf(kw.WRAPPER, "valgrind runs one thread at a time: no pool of threads can "
                 "keep others answering; the plain and ASan runs check it")
class SignInThreadsTest(kw.PortalTestCase):
    """Sign-in runs on threads of its own: a burst of sign-ins (each a slow
    password hash, or later a slow directory) never holds the workers that
    answer /healthz and the portal. With two workers, the burst below would
    hold both for its whole length if it ran on them."""
    settings = {"server": {"worker_threads": "2"},
                "portal": {"display_notice": "false"},
                "limits": {"login_failures": "1000/15m"}}  # one account, many sign-ins
    BURST = 48

    def test_health_and_pages_answer_during_a_sign_in_burst(self):
        name, pw = self.new_user()
        page = self.signed_in()
        browsers = [self.browser() for _ in range(self.BURST)]
        for b in browsers:
            self.assertEqual(b.get("/login").status, 200)
        done = []
        lock = threading.Lock()

        def sign_in(b):
            r = b.post("/login", {"username": name, "password": pw})
            with lock:
                done.append(r.status)

        threads = [threading.Thread(target=sign_in, args=(b,)) for b in browsers]
        for t in threads:
            t.start()
        # Wait until the sign-in threads are busy, then ask what the workers
        # answer: both come back while most of the burst is still hashing.
        kw.wait_for(lambda: any(t.is_alive() for t in threads))
        r = self.kw.request("GET", "/healthz")
        self.assertEqual(r.status, 200, r)
        self.assertPage(page.get("/recover"), 200)
        with lock:
            finished = len(done)
        for t in threads:
            t.join()
        self.assertLess(finished, self.BURST // 2,
                        "/healthz and /recover waited for the sign-ins")
        self.assertEqual(done, [303] * self.BURST)
