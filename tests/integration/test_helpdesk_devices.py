"""The help desk's devices (issue 10 point 3, SPEC §4): who may open them;
search by computer name (prefix, case-insensitive, at most 50 listed); the
device page (facts, drives, sign-ins, associations, key history, never a
recovery password); adding a user-device association (audited in the same
transaction, fail closed, CSRF, 422/409/404) and what it entitles the user
to in self-service; the view for a lost or stolen computer."""

import re
import secrets
import urllib.parse

import kw
from kw import key_id_with_prefix, hex_prefix, page_text, recovery_password, volume

SETTINGS = {"portal": {"display_notice": "false"},
            "limits": {"lookup_failures": "1000/15m",
                       "lookup_failures_per_address": "1000/15m"}}
ALLOWED = ("helpdesk_admin", "admin")
REFUSED = ((), ("reports",), ("helpdesk",))


def q(s):
    return urllib.parse.quote(s)


class DevicesCase(kw.PortalTestCase):
    settings = SETTINGS

    def staff(self, *roles):
        """A browser signed in as a new user with roles."""
        name = "CORP\\hd%s" % secrets.token_hex(3)
        pw = "Pw-%s" % secrets.token_urlsafe(12)
        self.kw.add_user(name, pw, *roles)
        b = self.browser()
        b.sign_in(name, pw)
        b.user = name
        return b

    def key(self):
        return key_id_with_prefix(hex_prefix()), recovery_password()

    def assertNoPassword(self, r, *keys):
        text = r.text()
        for _, pw in keys:
            self.assertNotIn(pw, text)
            self.assertNotIn(pw.replace("-", ""), text)
            self.assertNotIn(pw, page_text(r.body))

    def found_names(self, r):
        """The computer names a search page lists, in order."""
        rows = re.findall(r'<a href="/helpdesk/devices/([0-9a-f-]+)">([^<]*)</a>', r.text())
        return [kw.html.unescape(n) for _, n in rows]

    def add_assoc(self, b, did, user, **kw_):
        """GET the device page (for its token), then POST the form."""
        page = b.get("/helpdesk/devices/%s" % did)
        self.assertPage(page, 200)
        return b.post("/helpdesk/devices/%s/associations" % did, {"user": user}, **kw_)

    def audit(self, result=None):
        return [r for r in self.kw.audit_export() if result is None or r["result"] == result]


class RolesTest(DevicesCase):

    def test_every_role_and_path(self):
        did, _, _, name = self.kw.device_with(keys=[self.key()])
        for roles in REFUSED + tuple((r,) for r in ALLOWED):
            b = self.staff(*roles)
            want = 200 if roles and roles[0] in ALLOWED else 403
            for path in ("/helpdesk/devices", "/helpdesk/devices?q=PC",
                         "/helpdesk/devices/%s" % did, "/helpdesk/devices/%s/lost" % did):
                r = b.get(path)
                self.assertPage(r, want, (roles, path))
                if want == 403:
                    self.assertNotIn(name, r.text(), (roles, path))
            user = "CORP\\assoc%s" % secrets.token_hex(3)
            if want == 200:
                r = self.add_assoc(b, did, user)
                self.assertRedirect(r, "/helpdesk/devices/%s?added=1" % did, what=roles)
            else:
                r = b.post("/helpdesk/devices/%s/associations" % did, {"user": user})
                self.assertPage(r, 403, roles)
            listed = user in page_text(self.staff("admin").get(
                "/helpdesk/devices/%s" % did).body)
            self.assertEqual(listed, want == 200, roles)

    def test_signed_out_goes_to_sign_in(self):
        did, _, _, _ = self.kw.device_with()
        for path in ("/helpdesk/devices", "/helpdesk/devices/%s" % did):
            self.assertRedirect(self.browser().get(path), "/login")


class SearchTest(DevicesCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tag = secrets.token_hex(3).upper()
        cls.ids = {}
        for n in ("LAB%s-alpha", "lab%s-ALPHA2", "LAB%s-beta", "XLAB%s"):
            name = n % cls.tag
            cls.ids[name] = cls.kw.register(name=name, domain="CORP",
                                            os_name="Windows 11 Enterprise")[0]

    def test_empty_query_shows_the_form(self):
        b = self.staff("helpdesk_admin")
        for path in ("/helpdesk/devices", "/helpdesk/devices?q=", "/helpdesk/devices?q=+"):
            r = b.get(path)
            self.assertPage(r, 200, path)
            self.assertIn('<input id="q" name="q"', r.text())
            self.assertEqual(self.found_names(r), [], path)

    def test_prefix_any_case(self):
        b = self.staff("helpdesk_admin")
        for typed in ("lab%s-al", "LAB%s-AL", "Lab%s-Al"):
            r = b.get("/helpdesk/devices?q=" + q(typed % self.tag))
            self.assertPage(r, 200, typed)
            self.assertEqual(sorted(self.found_names(r)),
                             sorted(["LAB%s-alpha" % self.tag, "lab%s-ALPHA2" % self.tag]), typed)
            self.assertIn("2 devices whose name starts with", page_text(r.body))
        # a prefix, not a substring: XLAB… is not found by LAB…
        r = b.get("/helpdesk/devices?q=" + q("lab" + self.tag))
        self.assertEqual(len(self.found_names(r)), 3)
        self.assertNotIn("XLAB" + self.tag, self.found_names(r))

    def test_row_shows_domain_os_checkin_and_links(self):
        b = self.staff("admin")
        name = "LAB%s-beta" % self.tag
        r = b.get("/helpdesk/devices?q=" + q(name))
        self.assertEqual(self.found_names(r), [name])
        text = page_text(r.body)
        self.assertIn("1 device whose name starts with", text)
        for what in ("CORP", "Windows 11 Enterprise", "Never"):
            self.assertIn(what, text)
        self.assertIn('href="/helpdesk/devices/%s"' % self.ids[name], r.text())
        self.assertIn('<th scope="col" role="columnheader">Computer name</th>', r.text())
        self.assertIn('<td role="cell" data-label="Domain">CORP</td>', r.text())

    def test_none_found(self):
        b = self.staff("helpdesk_admin")
        r = b.get("/helpdesk/devices?q=NOPE" + self.tag)
        self.assertPage(r, 200)
        self.assertIn("No device's name starts with", page_text(r.body))

    def test_non_ascii_names_fold(self):
        name = "PC-ÅSA-%s" % self.tag
        did = self.kw.register(name=name)[0]
        b = self.staff("helpdesk_admin")
        r = b.get("/helpdesk/devices?q=" + q("pc-åsa-" + self.tag.lower()))
        self.assertEqual(self.found_names(r), [name])
        self.assertIn(did, r.text())

    def test_html_in_query_is_escaped(self):
        b = self.staff("helpdesk_admin")
        r = b.get("/helpdesk/devices?q=" + q("<b>x"))
        self.assertPage(r, 200)
        self.assertNotIn("<b>x", r.text())
        self.assertIn("&lt;b&gt;x", r.text())

    def test_bad_query_422(self):
        b = self.staff("helpdesk_admin")
        # too long counts what was typed, spaces around it aside: a copy
        # cut short would search a shorter prefix
        for bad in ("a\x01b", "A" * 256, " " * 10 + "A" * 260, "A" * 254 + "é"):
            r = b.get("/helpdesk/devices?q=" + q(bad))
            self.assertPage(r, 422, bad[:5])
            self.assertIn('aria-invalid="true"', r.text())
        # spaces around a name are not part of it
        r = b.get("/helpdesk/devices?q=" + q("  PC-  "))
        self.assertPage(r, 200)

    def test_at_most_50_said_when_cut(self):
        tag = secrets.token_hex(3).upper()
        token = self.kw.enroll_token("--uses", "60")
        for i in range(51):
            self.kw.register(name="MANY%s-%02d" % (tag, i), token=token)
        b = self.staff("helpdesk_admin")
        r = b.get("/helpdesk/devices?q=many" + tag)
        names = self.found_names(r)
        self.assertEqual(names, ["MANY%s-%02d" % (tag, i) for i in range(50)])
        self.assertIn("The first 50 devices whose name starts with", page_text(r.body))
        # 50 exactly are not cut
        r = b.get("/helpdesk/devices?q=" + q("many%s-0" % tag))
        self.assertEqual(len(self.found_names(r)), 10)
        self.assertNotIn("The first 50", page_text(r.body))


class DevicePageTest(DevicesCase):

    def test_every_section_and_never_a_password(self):
        end_user, pw = self.new_user()
        active, gone, disclosed, data = self.key(), self.key(), self.key(), self.key()
        name = "DESK-%s" % secrets.token_hex(3).upper()
        did, secret = self.kw.register(name=name, domain="EXAMPLE", os_name="Windows 10 Pro")
        c_vol = volume([active, gone, disclosed], mount="C:")
        d_vol = volume([data], mount="D:", vtype="fixed", protection="off", encryption="none",
                       percent=0)
        for k in (active, gone, disclosed, data):
            self.kw.secrets.add(k[1])
        r = self.kw.checkin(secret, volumes=[c_vol, d_vol], os_name="Windows 10 Pro",
                            logons=[{"user": end_user, "type": "local"},
                                    {"user": "CORP\\rdpuser", "type": "remote"}])
        self.assertEqual(r.status, 200, r)
        # one key given out through self-service, one no longer on the drive
        u = self.signed_in((end_user, pw))
        self.assertKeyShown(u.recover(disclosed[0][:8]), disclosed[1], name, disclosed[0])
        c_vol2 = volume([active, disclosed], vid=c_vol["id"], mount="C:")
        self.assertEqual(self.kw.checkin(secret, volumes=[c_vol2, d_vol],
                                         os_name="Windows 10 Pro").status, 200)
        b = self.staff("helpdesk_admin")
        self.assertRedirect(self.add_assoc(b, did, "CORP\\newowner"),
                            "/helpdesk/devices/%s?added=1" % did)

        r = b.get("/helpdesk/devices/%s" % did)
        self.assertPage(r, 200)
        self.assertEqual(r.header("Cache-Control"), "no-store")
        text = page_text(r.body)
        self.assertNoPassword(r, active, gone, disclosed, data)
        # facts
        for what in (name, "EXAMPLE", "Windows 10 Pro", did, "Registered", "Last check-in"):
            self.assertIn(what, text)
        self.assertNotIn("Revoked", text)
        # drives
        for what in ("C:", "D:", "Operating system drive", "Fixed data drive", "XTS-AES 256",
                     "100 %", "0 %", c_vol["id"].upper()):
            self.assertIn(what, text)
        self.assertRegex(text, r"D:\S*Fixed data driveOffNone0 %")
        # sign-ins and associations
        users = text[text.index("Sign-ins the computer reported"):]
        self.assertRegex(users, re.escape(end_user) + r"\s*Local")
        self.assertRegex(users, re.escape("CORP\\rdpuser") + r"\s*Remote")
        assocs = text[text.index("Associations added by the help desk"):]
        self.assertRegex(assocs, re.escape("CORP\\newowner") + r"\s*" + re.escape(b.user))
        # key history: every state
        for k, state in ((active, "Active"), (gone, "Removed"), (disclosed, "Disclosed"),
                         (data, "Active")):
            self.assertRegex(text, re.escape(k[0]) + r"\s*[CD]:\s*" + state, k[0])
        # the disclosure time is shown for the disclosed key only
        row = re.search(re.escape(disclosed[0]) + r".*?</tr>", r.text(), re.S).group(0)
        self.assertEqual(len(re.findall(r"<time ", row)), 3)
        row = re.search(re.escape(active[0]) + r".*?</tr>", r.text(), re.S).group(0)
        self.assertEqual(len(re.findall(r"<time ", row)), 2)
        # the form and the link to the lost-device view
        self.assertIn('action="/helpdesk/devices/%s/associations"' % did, r.text())
        self.assertIn('name="csrf_token"', r.text())
        self.assertIn('href="/helpdesk/devices/%s/lost"' % did, r.text())
        # each key ID opens the recovery form with it filled in; nothing is
        # disclosed or recorded until the form is sent
        n = len(self.kw.audit_export())
        link = "/helpdesk/recover?key_id=%s" % active[0]
        self.assertIn('href="%s"' % link, r.text())
        form = b.get(link)
        self.assertPage(form, 200)
        self.assertIn('value="%s"' % active[0], form.text())
        self.assertNotIn(active[1], form.text())
        self.assertEqual(len(self.kw.audit_export()), n)

    def test_superseded_key(self):
        k, new = self.key(), self.key()
        end_user, pw = self.new_user()
        did, secret, vol, name = self.kw.device_with([k], [(end_user, "local")])
        self.signed_in((end_user, pw)).recover(k[0][:8])
        self.kw.secrets.add(new[1])
        self.kw.checkin(secret, volumes=[volume([new], vid=vol["id"])])
        r = self.staff("admin").get("/helpdesk/devices/%s" % did)
        self.assertRegex(page_text(r.body), re.escape(k[0]) + r"\s*C:\s*Superseded")
        self.assertRegex(page_text(r.body), re.escape(new[0]) + r"\s*C:\s*Active")
        self.assertNoPassword(r, k, new)

    def test_revoked_device(self):
        did, _, _, _ = self.kw.device_with()
        rc, out, err = self.kw.cli("device", "revoke", did)
        self.assertEqual(rc, 0, err)
        text = page_text(self.staff("helpdesk_admin").get("/helpdesk/devices/%s" % did).body)
        self.assertIn("This device is revoked", text)

    def test_unknown_device_404(self):
        b = self.staff("helpdesk_admin")
        for did in ("00000000-0000-4000-8000-000000000000", "nonsense"):
            for path in ("/helpdesk/devices/%s", "/helpdesk/devices/%s/lost"):
                r = b.get(path % did)
                self.assertPage(r, 404, path % did)
                self.assertIn("There is no device with this ID", page_text(r.body))
        # a path parameter too long for an ID is no route at all
        self.assertPage(b.get("/helpdesk/devices/" + "x" * 300), 404)

    def test_swedish(self):
        did, _, _, _ = self.kw.device_with(keys=[self.key()])
        b = self.staff("helpdesk_admin")
        b.accept_language = "sv"
        text = page_text(b.get("/helpdesk/devices/%s" % did).body)
        for what in ("Senaste incheckning", "Återställningsnycklarnas historik", "Aktiv",
                     "Koppla en användare till datorn"):
            self.assertIn(what, text)
        text = page_text(b.get("/helpdesk/devices/%s/lost" % did).body)
        self.assertIn("Varje enhet var skyddad", text)

    def test_device_name_escaped(self):
        name = "PC-<i>%s" % secrets.token_hex(2)
        did = self.kw.register(name=name)[0]
        r = self.staff("helpdesk_admin").get("/helpdesk/devices/%s" % did)
        self.assertPage(r, 200)
        self.assertNotIn("<i>", r.text())
        self.assertIn(name, page_text(r.body))


class AssociationTest(DevicesCase):

    def test_added_audited_and_entitles(self):
        end_user, pw = self.new_user()
        k = self.key()
        did, _, _, name = self.kw.device_with([k])
        u = self.signed_in((end_user, pw))
        r = u.recover(k[0][:8])
        self.assertPage(r, 404)          # not entitled yet
        b = self.staff("helpdesk_admin")
        r = self.add_assoc(b, did, "  %s " % end_user.upper())
        self.assertRedirect(r, "/helpdesk/devices/%s?added=1" % did)
        page = b.follow(r)
        self.assertPage(page, 200)
        text = page_text(page.body)
        self.assertIn("The association was added and recorded", text)
        self.assertIn(end_user.upper(), text)
        recs = [a for a in self.audit("associated") if a["device_id"] == did]
        self.assertEqual(len(recs), 1, recs)
        a = recs[0]
        self.assertEqual((a["source"], a["actor"], a["end_user"], a["computer"]),
                         ("helpdesk", b.user, end_user.upper(), name))
        self.assertEqual(a["client"] if "client" in a else a.get("client_address"),
                         "127.0.0.1")
        rc, out, err = self.kw.cli("audit", "verify")
        self.assertEqual(rc, 0, err)
        # the user may now recover the device's key through self-service
        self.assertKeyShown(u.recover(k[0][:8]), k[1], name, k[0])

    def test_twice_409(self):
        did, _, _, _ = self.kw.device_with()
        b = self.staff("admin")
        self.assertEqual(self.add_assoc(b, did, "CORP\\twice").status, 303)
        r = self.add_assoc(b, did, "corp\\TWICE")
        self.assertPage(r, 409)
        self.assertIn("associated with this computer already", page_text(r.body))
        self.assertEqual(len([a for a in self.audit("associated") if a["device_id"] == did]), 1)

    def test_bad_name_422(self):
        did, _, _, _ = self.kw.device_with()
        b = self.staff("helpdesk_admin")
        for bad in ("", "   ", "CORP\\a\x07b", "x" * 256):
            r = self.add_assoc(b, did, bad)
            self.assertPage(r, 422, repr(bad[:8]))
            self.assertIn('aria-invalid="true"', r.text())
            self.assertIn('id="user-error"', r.text())
        r = self.add_assoc(b, did, "x" * 256)
        self.assertIn("not a user name", page_text(r.body))
        self.assertEqual([a for a in self.audit("associated") if a["device_id"] == did], [])
        self.assertIn("No association.", page_text(b.get("/helpdesk/devices/%s" % did).body))

    def test_needs_csrf(self):
        did, _, _, _ = self.kw.device_with()
        b = self.staff("helpdesk_admin")
        for csrf, hdrs in ((None, {}), ("wrong-token", {}),
                           (True, {"Origin": "http://evil.example"}),
                           (True, {"Sec-Fetch-Site": "cross-site"})):
            r = self.add_assoc(b, did, "CORP\\csrf", csrf=csrf, headers=hdrs)
            self.assertPage(r, 403, (csrf, hdrs))
        self.assertEqual([a for a in self.audit("associated") if a["device_id"] == did], [])
        self.assertNotIn("CORP\\csrf", page_text(b.get("/helpdesk/devices/%s" % did).body))

    def test_unknown_device_404(self):
        b = self.staff("helpdesk_admin")
        b.get("/helpdesk/devices")
        for did in ("00000000-0000-4000-8000-000000000000", "nonsense"):
            r = b.post("/helpdesk/devices/%s/associations" % did, {"user": "CORP\\x"})
            self.assertPage(r, 404, did)
        self.assertEqual([a for a in self.audit("associated")
                          if a["end_user"] == "CORP\\x"], [])

    @kw.needs_sqlite
    def test_fails_closed_without_audit(self):
        end_user, pw = self.new_user()
        k = self.key()
        did, _, _, name = self.kw.device_with([k])
        b = self.staff("helpdesk_admin")
        b.get("/helpdesk/devices/%s" % did)
        db = self.kw.db()
        try:
            db.execute("CREATE TRIGGER fail_audit BEFORE INSERT ON audit BEGIN "
                       "SELECT RAISE(ABORT, 'audit store failure'); END;")
            r = b.post("/helpdesk/devices/%s/associations" % did, {"user": end_user})
            self.assertPage(r, 503)
            self.assertIn("could not be recorded", page_text(r.body))
            rows = db.execute("SELECT count(*) FROM associations a JOIN devices d "
                              "ON d.id = a.device WHERE d.uid = ?", (did,)).fetchone()
        finally:
            db.execute("DROP TRIGGER IF EXISTS fail_audit")
            db.close()
        self.assertEqual(rows, (0,))
        self.assertIn("No association.", page_text(b.get("/helpdesk/devices/%s" % did).body))
        self.assertPage(self.signed_in((end_user, pw)).recover(k[0][:8]), 404)
        self.assertIn("nothing added", self.kw.log())
        # it works once the audit can be written
        r = b.post("/helpdesk/devices/%s/associations" % did, {"user": end_user})
        self.assertEqual(r.status, 303, r)


class LostTest(DevicesCase):

    def test_protected_and_not(self):
        name = "LOST-%s" % secrets.token_hex(3).upper()
        did, secret = self.kw.register(name=name)
        k = self.key()
        self.kw.secrets.add(k[1])
        vols = [volume([k], mount="C:"),
                volume([], mount="E:", vtype="removable", protection="suspended",
                       encryption="aes_128", percent=100),
                volume([], mount="D:", vtype="fixed", protection="on", percent=40)]
        self.assertEqual(self.kw.checkin(secret, volumes=vols).status, 200)
        b = self.staff("helpdesk_admin")
        r = b.get("/helpdesk/devices/%s/lost" % did)
        self.assertPage(r, 200)
        self.assertNoPassword(r, k)
        text = page_text(r.body)
        self.assertIn("Lost or stolen: " + name, text)
        self.assertIn("Not every drive was protected", text)
        self.assertIn("Some drives have no active recovery key escrowed", text)
        self.assertIn("less than an hour ago", text)
        rows = {m: re.search(re.escape(m) + r".*?</tr>", r.text(), re.S).group(0)
                for m in ("C:", "D:", "E:")}
        self.assertIn(">Protected<", rows["C:"])
        self.assertIn(">Yes<", rows["C:"])
        self.assertIn("Partly encrypted", rows["D:"])
        self.assertIn("40 %", rows["D:"])
        self.assertIn("protection suspended", rows["E:"])
        self.assertIn("AES-CBC 128", rows["E:"])
        for m in ("C:", "D:", "E:"):
            self.assertIn("<time ", rows[m], m)

    def test_all_protected(self):
        k = self.key()
        did, _, _, name = self.kw.device_with([k])
        text = page_text(self.staff("admin").get("/helpdesk/devices/%s/lost" % did).body)
        self.assertIn("Every drive was protected", text)
        self.assertIn("An active recovery key is escrowed for every drive", text)

    def test_nothing_reported(self):
        did = self.kw.register()[0]
        text = page_text(self.staff("admin").get("/helpdesk/devices/%s/lost" % did).body)
        self.assertIn("has not reported any drive", text)
        self.assertIn("Never", text)


if __name__ == "__main__":
    import unittest
    unittest.main()
