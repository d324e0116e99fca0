"""Issue 10 point 1: every help-desk path against every role (SPEC §2).

The table below is the contract written out by hand, not read from the
server: which effective roles each path admits. Every user here holds one
role, two roles, or none; the widest wins (admin implies the rest,
helpdesk_admin implies helpdesk and reports). A refused request is a 403
page that shows nothing of the device or its keys; an admitted one is
answered by its handler. A `reports` user reaches no key-bearing path and
no report holds a recovery password. The help desk's navigation offers only
what the role admits."""

import re
import secrets

import kw

HD, HDA, REP, ADM = "helpdesk", "helpdesk_admin", "reports", "admin"

# What each single role grants, widest included (SPEC §2).
IMPLIES = {
    HD: {HD},
    HDA: {HD, HDA, REP},
    REP: {REP},
    ADM: {HD, HDA, REP, ADM},
}

# path -> the roles (any of) that admit it
KEY_PATHS = ("/helpdesk/recover", "/helpdesk/devices", "/helpdesk/devices/{id}",
             "/helpdesk/devices/{id}/lost")
GET_PATHS = {
    "/helpdesk": {HD, HDA, REP, ADM},
    "/helpdesk/recover": {HD},
    "/helpdesk/devices": {HDA},
    "/helpdesk/devices?q=PC-": {HDA},
    "/helpdesk/devices/{id}": {HDA},
    "/helpdesk/devices/{id}/lost": {HDA},
    "/helpdesk/reports/audit": {REP},
    "/helpdesk/reports/audit?format=csv": {REP},
    "/helpdesk/reports/unrotated": {REP},
    "/helpdesk/reports/unrotated?format=csv": {REP},
    "/helpdesk/reports/compliance": {REP},
    "/helpdesk/reports/compliance?format=csv": {REP},
    "/helpdesk/admin/users": {ADM},
    "/helpdesk/admin/enrollment": {ADM},
}
POST_PATHS = {
    "/helpdesk/recover": {HD},
    "/helpdesk/devices/{id}/associations": {HDA},
    "/helpdesk/admin/users": {ADM},
    "/helpdesk/admin/enrollment": {ADM},
}

ROLE_SETS = ((), (HD,), (HDA,), (REP,), (ADM,), (HD, REP), (REP, HDA))


def grants(roles):
    out = set()
    for r in roles:
        out |= IMPLIES[r]
    return out


class HelpdeskRoleMatrixTest(kw.PortalTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.kid, cls.pw = kw.key_id(), kw.recovery_password()
        cls.user = "CORP\\owner%s" % secrets.token_hex(3)
        cls.did, _, _, cls.name = cls.kw.device_with(
            keys=[(cls.kid, cls.pw)], logons=[(cls.user, "local")])
        cls.browsers = {}

    def browser_for(self, roles):
        if roles not in self.browsers:
            name = "CORP\\m%s" % secrets.token_hex(3)
            pw = "Pw-%s" % secrets.token_urlsafe(12)
            self.kw.add_user(name, pw, *roles)
            b = self.browser()
            b.sign_in(name, pw)
            self.browsers[roles] = b
        return self.browsers[roles]

    def path(self, p):
        return p.replace("{id}", self.did)

    def assertRefused(self, r, what):
        self.assertPage(r, 403, what)
        body = r.body.decode()
        self.assertNotIn(self.name, body, what)
        self.assertNotIn(self.kid, body.upper(), what)
        self.assertNotIn(self.pw, body, what)

    def test_get_matrix(self):
        for roles in ROLE_SETS:
            b = self.browser_for(roles)
            have = grants(roles)
            for p, admits in GET_PATHS.items():
                what = "%s GET %s" % (roles or "no role", p)
                r = b.get(self.path(p))
                if have & admits:
                    self.assertEqual(r.status, 200, "%s: %r" % (what, r))
                else:
                    self.assertRefused(r, what)
                self.assertNotIn(self.pw, r.body.decode(errors="replace"), what)

    def test_post_matrix(self):
        for roles in ROLE_SETS:
            b = self.browser_for(roles)
            have = grants(roles)
            for p, admits in POST_PATHS.items():
                what = "%s POST %s" % (roles or "no role", p)
                b.get("/helpdesk" if roles else "/recover")
                before = self.kw.audit_export()
                # an empty form: refused (403) with nothing recorded, or
                # answered by the handler, which finds nothing to do (never
                # a 5xx; at most the record of an invalid request)
                r = b.post(self.path(p), {})
                after = self.kw.audit_export()
                if have & admits:
                    self.assertNotEqual(r.status, 403, what)
                    self.assertLess(r.status, 500, "%s: %r" % (what, r))
                    self.assertEqual(after[:len(before)], before, what)
                    self.assertTrue(all(a["result"] == "invalid" for a in after[len(before):]),
                                    what)
                else:
                    self.assertRefused(r, what)
                    self.assertEqual(after, before, what)

    def test_reports_never_reach_a_key(self):
        b = self.browser_for((REP,))
        for p in KEY_PATHS:
            self.assertRefused(b.get(self.path(p)), p)
        b.get("/helpdesk/reports/audit")
        r = b.post("/helpdesk/recover", {"key_id": self.kid[:8], "end_user": self.user,
                                          "reason": "lost_pin"})
        self.assertRefused(r, "reports POST /helpdesk/recover")
        # nothing was disclosed: the key is not flagged for rotation
        self.assertNotIn("disclosed", self.kw.device_show(self.did)[1])

    def test_signed_out(self):
        b = self.browser()
        for p in GET_PATHS:
            r = b.get(self.path(p))
            self.assertRedirect(r, "/login")
        b.get("/login")
        for p in POST_PATHS:
            r = b.post(self.path(p), {})
            self.assertIn(r.status, (303, 403), p)
            self.assertNotEqual(r.header("Location") or "/login", "/helpdesk", p)

    def test_navigation_offers_only_what_the_role_admits(self):
        for roles in ROLE_SETS[1:]:
            b = self.browser_for(roles)
            have = grants(roles)
            body = b.get("/helpdesk").text()
            nav = re.search(r'<nav class="[^"]*hdnav[^"]*".*?</nav>', body, re.S)
            self.assertIsNotNone(nav, roles)
            links = set(re.findall(r'href="([^"]+)"', nav.group(0)))
            for link in links:
                self.assertTrue(have & GET_PATHS[link], "%s is offered %s" % (roles, link))
            for p, admits in GET_PATHS.items():
                if "?" in p or "{" in p or p == "/helpdesk":
                    continue
                if have & admits:
                    self.assertIn(p, links, "%s is not offered %s" % (roles, p))

