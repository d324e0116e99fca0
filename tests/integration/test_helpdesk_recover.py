"""Help-desk recovery (issue 10 point 2, SPEC §2, §4): POST /helpdesk/recover
by role, the end user a `helpdesk` user must name and whose computers alone
are searched, a `helpdesk_admin` who may name no one, the list of matching
keys on ambiguity, the nine reasons and the comment of `other`, the audit
record (help-desk user and end user), rotation, CSRF and failing closed."""

import html
import re
import secrets
from urllib.parse import urlencode

import kw
from kw import hex_prefix, key_id_with_prefix, page_text, recovery_password, strip_csrf

DOMAINS = {"identity": {"domains": "CORP:corp.example.com"}}
REASONS = ["os_boot_order_changed", "bios_changed", "os_files_changed", "lost_startup_key",
           "lost_pin", "tpm_reset", "lost_passphrase", "lost_smartcard", "other"]
NOT_FOUND_HD = ("No recovery key was found for this ID among the computers of this "
                "user.")
NOT_FOUND_ADMIN = "No recovery key was found for this ID."
AMBIGUOUS = ("More than one recovery key starts with these characters. Enter all 32 "
             "characters of the recovery key ID.")
NAME_END_USER = ("Enter the name of the user you are helping, as DOMAIN\\user or "
                 "user@domain.")
END_USER_FORM = "Enter the user as DOMAIN\\user or user@domain."
DESCRIBE = "Describe the reason in the comment."
ROTATE_NOTE = "The computer is told to replace this key at its next check-in"


class HelpdeskCase(kw.PortalTestCase):
    settings = DOMAINS

    def user_with(self, *roles, base="hd"):
        """A new local account CORP\\baseNNNN holding roles: (name, password)."""
        name = "CORP\\%s%s" % (base, secrets.token_hex(3))
        pw = "Pw-%s-%s" % (base, secrets.token_urlsafe(9))
        self.kw.add_user(name, pw, *roles)
        return name, pw

    def desk(self, *roles):
        """A browser signed in as a new user holding roles, on the form."""
        b = self.signed_in(self.user_with(*roles))
        b.get("/helpdesk/recover")
        return b

    def key(self, prefix=None):
        return key_id_with_prefix(prefix or hex_prefix()), recovery_password()

    def device(self, keys, *logons, name=None):
        """(device_id, secret, volume, name) of a new device holding keys."""
        return self.kw.device_with(keys, logons, name=name)

    def end_user(self):
        return "CORP\\user%s" % secrets.token_hex(3)

    def recover(self, b, key_id, end_user=None, reason="bios_changed", comment=None,
                csrf=True):
        form = {}
        for k, v in (("key_id", key_id), ("end_user", end_user), ("reason", reason),
                     ("comment", comment)):
            if v is not None:
                form[k] = v
        r = b.post("/helpdesk/recover", form, csrf=csrf)
        for pw in re.findall(r'data-key="([0-9-]+)"', r.text()):
            self.kw.secrets.add(pw)
        return r

    def records(self):
        return [r for r in self.kw.audit_export() if r["result"] != "exported"]

    def rotate(self, secret, vol):
        c = self.kw.checkin(secret, volumes=[vol])
        self.assertEqual(c.status, 200, c)
        return c.json()["rotate"]

    def assertNoKey(self, r, *keys):
        text, visible = r.text(), page_text(r.body)
        for kid, pw in keys:
            for t in (text, visible):
                self.assertNotIn(pw, t)
                self.assertNotIn(pw.replace("-", ""), t)
            self.assertNotIn(kid, text)

    def assertKeyPage(self, r, key, computer):
        self.assertKeyShown(r, key[1], computer, key[0])
        self.assertIn(ROTATE_NOTE, page_text(r.body))


class RolesTest(HelpdeskCase):
    """Who reaches /helpdesk/recover (issue 10 point 1 for key paths)."""

    def test_every_role_on_get_and_post(self):
        for roles, status in (((), 403), (("reports",), 403), (("helpdesk",), 200),
                              (("helpdesk_admin",), 200), (("admin",), 200),
                              (("reports", "helpdesk"), 200)):
            b = self.signed_in(self.user_with(*roles))
            r = b.get("/helpdesk/recover")
            self.assertPage(r, status, roles)
            if status == 403:
                self.assertIn("does not have access", page_text(r.body), roles)
                self.assertNotIn('name="key_id"', r.text(), roles)
            else:
                self.assertIn('action="/helpdesk/recover"', r.text(), roles)
            user = self.end_user()
            k = self.key()
            did, secret, vol, name = self.device([k], (user, "local"))
            before = len(self.records())
            r = self.recover(b, k[0][:8], user)
            if status == 403:
                self.assertPage(r, 403, roles)
                self.assertNoKey(r, k)
                self.assertNotIn(name, r.text())
                self.assertEqual(len(self.records()), before, roles)
                self.assertEqual(self.rotate(secret, vol), [], roles)
            else:
                self.assertKeyPage(r, k, name)
                self.assertEqual(self.rotate(secret, vol), [k[0]], roles)

    def test_signed_out_goes_to_sign_in(self):
        b = self.browser()
        self.assertRedirect(b.get("/helpdesk/recover"), "/login")
        k = self.key()
        self.device([k], (self.end_user(), "local"))
        r = b.post("/helpdesk/recover", {"key_id": k[0], "reason": "bios_changed"})
        self.assertRedirect(r, "/login")
        self.assertNoKey(r, k)

    def test_reports_never_reaches_a_key_path(self):
        # every path that shows a key, a key ID or key history is refused to
        # a reports user; devices (key history) also to a plain helpdesk user
        k = self.key()
        did, _, _, _ = self.device([k], (self.end_user(), "local"))
        paths = [("GET", "/helpdesk/recover"), ("POST", "/helpdesk/recover"),
                 ("GET", "/helpdesk/devices?q=PC"), ("GET", "/helpdesk/devices/" + did),
                 ("GET", "/helpdesk/devices/%s/lost" % did),
                 ("POST", "/helpdesk/devices/%s/associations" % did)]
        for roles, refused in ((("reports",), paths), (("helpdesk",), paths[2:])):
            b = self.signed_in(self.user_with(*roles))
            b.get("/helpdesk")
            for method, path in refused:
                r = b.post(path, {"key_id": k[0], "reason": "bios_changed",
                                  "user": "CORP\\x"}) if method == "POST" else b.get(path)
                self.assertPage(r, 403, (roles, method, path))
                self.assertNoKey(r, k)


class FormTest(HelpdeskCase):

    def test_form_for_helpdesk(self):
        b = self.signed_in(self.user_with("helpdesk"))
        r = b.get("/helpdesk/recover")
        self.assertPage(r, 200)
        body, text = r.text(), page_text(r.body)
        self.assertEqual(re.findall(r'name="reason" value="([^"]+)"', body), REASONS)
        for label in ("Recovery key ID", "User", "Reason", "Comment", "Get key",
                      "Operating system boot order changed", "BIOS changed",
                      "Operating system files changed", "Lost startup key", "Lost PIN",
                      "TPM reset", "Lost passphrase", "Lost smart card", "Other"):
            self.assertIn(label, text)
        self.assertRegex(body, r'<input id="end_user" name="end_user"[^>]* required>')
        self.assertNotIn("(optional)", text)
        self.assertIn('<textarea id="comment" name="comment"', body)
        self.assertIn('aria-current="page">Recover a key</a>', body)

    def test_form_for_helpdesk_admin(self):
        b = self.signed_in(self.user_with("helpdesk_admin"))
        r = b.get("/helpdesk/recover")
        self.assertPage(r, 200)
        self.assertIn("(optional)", page_text(r.body))
        self.assertNotRegex(r.text(), r'<input id="end_user"[^>]* required>')

    def test_link_fills_the_form_and_looks_nothing_up(self):
        b = self.signed_in(self.user_with("helpdesk"))
        user = self.end_user()
        k = self.key()
        _, secret, vol, name = self.device([k], (user, "local"))
        before = len(self.records())
        r = b.get("/helpdesk/recover?" + urlencode({"key_id": k[0], "end_user": user}))
        self.assertPage(r, 200)
        body = r.text()
        self.assertRegex(body, r'<input id="key_id" name="key_id"[^>]* value="%s"' % k[0])
        self.assertRegex(body, r'<input id="end_user" name="end_user"[^>]* value="%s"'
                         % re.escape(html.escape(user)))
        self.assertNoKey(r, (k[0] + "-not-shown", k[1]))
        self.assertNotIn(name, body)
        self.assertEqual(len(self.records()), before)
        self.assertEqual(self.rotate(secret, vol), [])
        # text that is not clean is not shown again
        r = b.get("/helpdesk/recover?key_id=%01abc&end_user=")
        self.assertPage(r, 200)
        self.assertRegex(r.text(), r'<input id="key_id" name="key_id"[^>]* value=""')

    def test_swedish(self):
        b = self.signed_in(self.user_with("helpdesk"), accept_language="sv")
        r = b.get("/helpdesk/recover")
        self.assertPage(r, 200)
        text = page_text(r.body)
        for label in ("Återställ en BitLocker-nyckel", "Förlorad startnyckel",
                      "Förlorat smartkort", "Annat", "Kommentar"):
            self.assertIn(label, text)


class HelpdeskUserTest(HelpdeskCase):
    """A `helpdesk` user names the end user; only that user's keys."""

    def test_end_user_required(self):
        b = self.desk("helpdesk")
        user = self.end_user()
        k = self.key()
        did, secret, vol, name = self.device([k], (user, "local"))
        for end_user in (None, "", "   "):
            r = self.recover(b, k[0][:8], end_user)
            self.assertPage(r, 422, end_user)
            self.assertIn(NAME_END_USER, page_text(r.body))
            self.assertRegex(r.text(), r'id="end_user"[^>]*aria-invalid="true"')
            self.assertNoKey(r, k)
        rec = self.records()[-1]
        self.assertEqual((rec["source"], rec["result"], rec["actor"]),
                         ("helpdesk", "invalid", b.user))
        self.assertEqual(self.rotate(secret, vol), [])

    def test_end_user_as_domain_user_or_upn(self):
        b = self.desk("helpdesk")
        user = self.end_user()
        k = self.key()
        did, secret, vol, name = self.device([k], (user, "local"))
        bare = user.split("\\")[1]
        for typed in (bare, "CORP\\", "\\" + bare, "@corp.example.com", bare + "@"):
            r = self.recover(b, k[0][:8], typed)
            self.assertPage(r, 422, typed)
            self.assertIn(END_USER_FORM, page_text(r.body), typed)
            self.assertNoKey(r, k)
        self.assertEqual(self.rotate(secret, vol), [])
        # the UPN of a CORP\ logon finds it through [identity] domains, and
        # white space around the name is ignored
        r = self.recover(b, k[0][:8], "  %s@CORP.example.com " % bare)
        self.assertKeyPage(r, k, name)

    def test_not_entitled_is_not_found_and_discloses_nothing(self):
        b = self.desk("helpdesk")
        alice, bob = self.end_user(), self.end_user()
        k = self.key()
        did, secret, vol, name = self.device([k], (bob, "local"), (alice, "remote"))
        before = len(self.records())
        r = self.recover(b, k[0][:8], alice)
        self.assertPage(r, 404)
        self.assertIn(NOT_FOUND_HD, page_text(r.body))
        self.assertNoKey(r, k)
        self.assertNotIn(name, r.text())
        # the same page as for a key that exists nowhere
        missing = hex_prefix()
        r2 = self.recover(b, missing, alice)
        self.assertPage(r2, 404)
        self.assertEqual(strip_csrf(r.text()).replace(k[0][:8], "X"),
                         strip_csrf(r2.text()).replace(missing, "X"))
        rows = self.records()[before:]
        self.assertEqual([(x["source"], x["result"], x["actor"], x["end_user"])
                          for x in rows],
                         [("helpdesk", "not_found", b.user, alice)] * 2)
        self.assertEqual(rows[0]["key_id"], k[0][:8])
        self.assertEqual(rows[0]["computer"], "")
        self.assertEqual(self.rotate(secret, vol), [])

    def test_entitled_key_disclosed_audited_and_rotated(self):
        b = self.desk("helpdesk")
        user = self.end_user()
        k, keep = self.key(), self.key()
        did, secret, vol, name = self.device([k, keep], (user, "local"))
        self.assertEqual(self.rotate(secret, vol), [])
        r = self.recover(b, k[0][:8].lower(), user, reason="tpm_reset")
        self.assertKeyPage(r, k, name)
        body = r.text()
        # Copy and Save (shown by the script), with what Save writes
        self.assertRegex(body, r'<button type="button" class="secondary" id="copy" '
                         r'data-key="%s" hidden>Copy key</button>' % k[1])
        self.assertIn('id="save" data-file="BitLocker Recovery Key %s.txt" hidden>'
                      'Save as text file</button>' % k[0], body)
        self.assertIn("<dd data-save>%s</dd>" % name, body)
        self.assertIn('<dd class="mono keyid" data-save>%s</dd>' % k[0], body)
        self.assertNotIn(keep[1], body)
        rec = self.records()[-1]
        self.assertEqual((rec["source"], rec["result"], rec["actor"], rec["end_user"],
                          rec["computer"], rec["device_id"], rec["key_id"], rec["reason"]),
                         ("helpdesk", "disclosed", b.user, user, name, did, k[0],
                          "tpm_reset"))
        self.assertEqual(rec["client"], "127.0.0.1")
        self.assertEqual(self.rotate(secret, vol), [k[0]])
        rc, out, err = self.kw.cli("audit", "verify")
        self.assertEqual(rc, 0, err)

    def test_association_entitles(self):
        b = self.desk("helpdesk")
        user = self.end_user()
        k = self.key()
        did, secret, vol, name = self.device([k], (self.end_user(), "local"))
        self.assertPage(self.recover(b, k[0][:8], user), 404)
        self.kw.assoc(user, did)
        self.assertKeyPage(self.recover(b, k[0][:8], user), k, name)

    def test_ambiguity_among_the_end_users_keys_only(self):
        b = self.desk("helpdesk")
        alice, bob = self.end_user(), self.end_user()
        p = hex_prefix()
        a1, a2, bk = self.key(p), self.key(p), self.key(p)
        _, _, _, pc1 = self.device([a1], (alice, "local"))
        _, _, _, pc2 = self.device([a2], (alice, "local"))
        _, bsecret, bvol, bpc = self.device([bk], (bob, "local"))
        # bob's key shares the prefix but is never counted or shown for alice
        r = self.recover(b, p, alice)
        self.assertPage(r, 409)
        text = page_text(r.body)
        self.assertIn(AMBIGUOUS, text)
        for kid, pc in ((a1[0], pc1), (a2[0], pc2)):
            self.assertIn(kid, text)
            self.assertIn(pc, text)
        for kid, pw in (a1, a2, bk):
            self.assertNotIn(pw, r.text())
        self.assertNotIn(bk[0], r.text())
        self.assertNotIn(bpc, text)
        self.assertEqual(r.text().count('name="key_id" value="'), 2)
        self.assertEqual(self.records()[-1]["result"], "ambiguous")
        # for bob the same prefix is his one key
        self.assertKeyPage(self.recover(b, p, bob), bk, bpc)
        self.assertEqual(self.rotate(bsecret, bvol), [bk[0]])


class OldKeysTest(HelpdeskCase):
    """Keys no longer on their volume stay readable to the help desk (SPEC §5:
    backups need them), not to self-service."""

    def state(self, kid):
        return {r["key_id"]: r["state"] for r in self.kw.export()[1]}[kid]

    def test_removed_key_disclosed_and_rotated_if_it_comes_back(self):
        b = self.desk("helpdesk")
        user = self.end_user()
        old, new = self.key(), self.key()
        did, secret, vol, name = self.device([old], (user, "local"))
        moved = dict(vol, recovery_keys=[{"key_id": new[0], "recovery_password": new[1]}])
        self.kw.secrets.add(new[1])
        self.assertEqual(self.rotate(secret, moved), [])
        self.assertEqual(self.state(old[0]), "removed")
        r = self.recover(b, old[0][:8], user)
        self.assertKeyShown(r, old[1], name, old[0])
        text = page_text(r.body)
        self.assertIn("This key was no longer on the computer at its last check-in. If it "
                      "comes back, the computer is told to replace it.", text)
        self.assertNotIn(ROTATE_NOTE, text)
        rec = self.records()[-1]
        self.assertEqual((rec["source"], rec["result"], rec["key_id"]),
                         ("helpdesk", "disclosed", old[0]))
        # disclosed now: back on its volume, the device is told to replace it
        self.assertEqual(self.state(old[0]), "disclosed")
        back = dict(vol, recovery_keys=vol["recovery_keys"] + moved["recovery_keys"])
        self.assertEqual(self.rotate(secret, back), [old[0]])

    def test_superseded_key_for_a_backup(self):
        b = self.desk("helpdesk_admin")
        old, new = self.key(), self.key()
        did, secret, vol, name = self.device([old], (self.end_user(), "local"))
        self.assertKeyPage(self.recover(b, old[0]), old, name)
        rotated = dict(vol, recovery_keys=[{"key_id": new[0], "recovery_password": new[1]}])
        self.kw.secrets.add(new[1])
        self.assertEqual(self.rotate(secret, rotated), [])
        self.assertEqual(self.state(old[0]), "superseded")
        r = self.recover(b, old[0][:8], reason="other", comment="Restore of a backup")
        self.assertKeyShown(r, old[1], name, old[0])
        text = page_text(r.body)
        self.assertIn("The computer has already replaced this key: it opens only an older "
                      "copy of the drive, such as a backup.", text)
        self.assertNotIn(ROTATE_NOTE, text)
        self.assertEqual(self.records()[-1]["result"], "disclosed")
        self.assertEqual(self.state(old[0]), "superseded")
        self.assertEqual(self.rotate(secret, rotated), [])

    def test_choices_say_which_keys_are_old(self):
        b = self.desk("helpdesk_admin")
        p = hex_prefix()
        live, gone = self.key(p), self.key(p)
        _, _, _, pc1 = self.device([live], (self.end_user(), "local"))
        _, secret, vol, pc2 = self.device([gone], (self.end_user(), "local"))
        self.assertEqual(self.rotate(secret, dict(vol, recovery_keys=[])), [])
        r = self.recover(b, p)
        self.assertPage(r, 409)
        self.assertIn("%sNo longer on the computer" % pc2, page_text(r.body))
        self.assertNotIn("%sNo longer" % pc1, page_text(r.body))

    def test_self_service_still_only_keys_on_their_volume(self):
        user = self.new_user()
        old, new = self.key(), self.key()
        _, secret, vol, name = self.device([old], (user[0], "local"))
        self.kw.secrets.add(new[1])
        self.rotate(secret, dict(vol, recovery_keys=[
            {"key_id": new[0], "recovery_password": new[1]}]))
        self.assertPage(self.signed_in(user).recover(old[0][:8]), 404)
        r = self.recover(self.desk("helpdesk"), old[0][:8], user[0])
        self.assertKeyShown(r, old[1], name, old[0])


class AdminTest(HelpdeskCase):
    """A `helpdesk_admin` (or `admin`) may name no one: any key."""

    def test_without_end_user(self):
        for role in ("helpdesk_admin", "admin"):
            b = self.desk(role)
            k = self.key()
            did, secret, vol, name = self.device([k], (self.end_user(), "local"))
            r = self.recover(b, k[0][:8], "", reason="lost_pin")
            self.assertKeyPage(r, k, name)
            rec = self.records()[-1]
            self.assertEqual((rec["source"], rec["result"], rec["actor"], rec["end_user"]),
                             ("helpdesk", "disclosed", b.user, ""), role)
            self.assertEqual(self.rotate(secret, vol), [k[0]], role)

    def test_named_end_user_is_recorded_not_enforced(self):
        b = self.desk("helpdesk_admin")
        k = self.key()
        did, secret, vol, name = self.device([k], (self.end_user(), "local"))
        stranger = self.end_user()
        r = self.recover(b, k[0][:8], stranger)
        self.assertKeyPage(r, k, name)
        self.assertIn(stranger, page_text(r.body))
        self.assertEqual(self.records()[-1]["end_user"], stranger)
        r = self.recover(b, hex_prefix(), stranger)
        self.assertPage(r, 404)
        self.assertIn(NOT_FOUND_ADMIN, page_text(r.body))
        self.assertNotIn("among the computers", page_text(r.body))

    def test_ambiguity_lists_keys_to_choose_from(self):
        b = self.desk("helpdesk_admin")
        p = hex_prefix()
        k1, k2 = self.key(p), self.key(p)
        _, s1, v1, pc1 = self.device([k1], (self.end_user(), "local"))
        _, s2, v2, pc2 = self.device([k2], (self.end_user(), "local"))
        user = self.end_user()
        r = self.recover(b, p.lower(), user, reason="other", comment="ticket 4711")
        self.assertPage(r, 409)
        text, body = page_text(r.body), r.text()
        self.assertIn("Keys that match", text)
        for kid, pc in ((k1[0], pc1), (k2[0], pc2)):
            self.assertIn(kid, text)
            self.assertIn(pc, text)
        for pw in (k1[1], k2[1]):
            self.assertNotIn(pw, body)
        self.assertNotIn("More keys match", text)
        # each choice is a form posting the full key ID with the same request
        forms = re.findall(r'<form method="post" action="/helpdesk/recover">(.*?)</form>',
                           body, re.S)
        self.assertEqual(len(forms), 2)
        chosen = sorted([k1, k2])[1]
        fields = dict(re.findall(r'name="([a-z_]+)" value="([^"]*)"', forms[1]))
        self.assertEqual(fields["key_id"], chosen[0])
        self.assertEqual((fields["end_user"], fields["reason"], fields["comment"]),
                         (user, "other", "ticket 4711"))
        self.assertEqual(self.records()[-1]["result"], "ambiguous")
        del fields["csrf_token"]
        r = b.post("/helpdesk/recover", fields)
        self.kw.secrets.add(chosen[1])
        self.assertKeyPage(r, chosen, pc2 if chosen is k2 else pc1)
        rec = self.records()[-1]
        self.assertEqual((rec["result"], rec["key_id"], rec["end_user"], rec["comment"]),
                         ("disclosed", chosen[0], user, "ticket 4711"))
        self.assertEqual(self.rotate(s1, v1) + self.rotate(s2, v2), [chosen[0]])

    def test_many_matches_are_listed_up_to_twenty(self):
        b = self.desk("admin")
        p = hex_prefix()
        keys = [self.key(p) for _ in range(21)]
        user = self.end_user()
        for i in range(0, 21, 7):   # at most 16 keys a volume
            self.device(keys[i:i + 7], (user, "local"))
        r = self.recover(b, p, "")
        self.assertPage(r, 409)
        listed = re.findall(r'name="key_id" value="([0-9A-F-]{36})"', r.text())
        self.assertEqual(listed, sorted(k[0] for k in keys)[:20])
        self.assertIn("More keys match than are listed here", page_text(r.body))


class InputTest(HelpdeskCase):

    def test_reasons(self):
        b = self.desk("helpdesk")
        user = self.end_user()
        k = self.key()
        did, secret, vol, name = self.device([k], (user, "local"))
        # missing, or a self-service reason
        for reason in (None, "", "bios_tpm_changed", "nonsense"):
            r = self.recover(b, k[0][:8], user, reason=reason)
            self.assertPage(r, 422, reason)
            self.assertIn("Choose the reason for this request.", page_text(r.body))
            self.assertNoKey(r, k)
        # other needs a comment: words, not white space
        for comment in (None, "", "   ", " \r\n\t "):
            r = self.recover(b, k[0][:8], user, reason="other", comment=comment)
            self.assertPage(r, 422)
            self.assertIn(DESCRIBE, page_text(r.body))
            self.assertRegex(r.text(), r'value="other" checked>')
            self.assertNoKey(r, k)
        r = self.recover(b, k[0][:8], user, reason="other", comment="x" * 501)
        self.assertPage(r, 422)
        self.assertIn("The comment is too long", page_text(r.body))
        self.assertEqual(self.records()[-1]["result"], "invalid")
        self.assertEqual(self.rotate(secret, vol), [])
        # control characters do not reach the audit trail
        r = self.recover(b, k[0][:8], user, reason="other", comment="ok \x1b[2J\r\n")
        self.assertPage(r, 422)
        self.assertIn("Write the comment as plain text", page_text(r.body))
        self.assertNoKey(r, k)
        self.assertEqual(self.rotate(secret, vol), [])
        # the cap counts characters, not bytes: 500 letters å are fine
        r = self.recover(b, k[0][:8], user, reason="other", comment="å" * 500)
        self.assertKeyPage(r, k, name)
        self.assertEqual(self.records()[-1]["comment"], "å" * 500)
        r = self.recover(b, k[0][:8], user, reason="other",
                         comment="Docking station replaced")
        self.assertKeyPage(r, k, name)
        rec = self.records()[-1]
        self.assertEqual((rec["reason"], rec["comment"]), ("other", "Docking station replaced"))

    def test_every_reason_is_accepted(self):
        b = self.desk("helpdesk")
        user = self.end_user()
        for reason in REASONS:
            k = self.key()
            _, _, _, name = self.device([k], (user, "local"))
            r = self.recover(b, k[0], user, reason=reason,
                             comment="why" if reason == "other" else None)
            self.assertKeyPage(r, k, name)
            self.assertEqual(self.records()[-1]["reason"], reason)

    def test_key_id_errors(self):
        b = self.desk("helpdesk")
        user = self.end_user()
        for typed, msg in (("", "Enter the recovery key ID."),
                           ("1234567", "Enter at least the first 8 characters of the "
                            "recovery key ID (you entered 7)."),
                           ("1234567X", "'X' at position 8 is not allowed")):
            r = self.recover(b, typed, user)
            self.assertPage(r, 422, typed)
            self.assertIn(msg, page_text(r.body), typed)
            self.assertRegex(r.text(), r'id="key_id"[^>]*aria-invalid="true"')
        # a recovery password typed as the key ID is said for what it is and
        # never shown again or recorded
        pw = recovery_password()
        self.kw.secrets.add(pw)
        r = self.recover(b, pw, user)
        self.assertPage(r, 422)
        self.assertIn("This is a recovery password, not a recovery key ID.",
                      page_text(r.body))
        self.assertNotIn(pw, r.text())
        self.assertNotIn(pw, self.records()[-1]["key_id"])

    def test_csrf_needed(self):
        b = self.desk("helpdesk")
        user = self.end_user()
        k = self.key()
        did, secret, vol, name = self.device([k], (user, "local"))
        before = len(self.records())
        for csrf in (None, "wrong-token"):
            r = self.recover(b, k[0][:8], user, csrf=csrf)
            self.assertPage(r, 403, csrf)
            self.assertNoKey(r, k)
        self.assertEqual(len(self.records()), before)
        self.assertEqual(self.rotate(secret, vol), [])


class LimitsTest(HelpdeskCase):
    """Help-desk lookups do not count against the self-service failure
    limits (doc/behaviour.md)."""
    settings = {"identity": DOMAINS["identity"],
                "limits": {"lookup_failures": "2/15m", "lookup_failures_per_address": "3/15m"}}

    def test_no_self_service_limits(self):
        b = self.desk("helpdesk")
        user = self.end_user()
        for _ in range(6):
            self.assertPage(self.recover(b, hex_prefix(), user), 404)
        k = self.key()
        _, _, _, name = self.device([k], (user, "local"))
        self.assertKeyPage(self.recover(b, k[0][:8], user), k, name)
        # nor were self-service users at this address held back by them
        person = self.user_with(base="person")
        s = self.signed_in(person)
        mine = self.key()
        _, _, _, pc = self.device([mine], (person[0], "local"))
        self.assertKeyShown(s.recover(mine[0][:8]), mine[1], pc, mine[0])


@kw.needs_sqlite
class FailClosedTest(HelpdeskCase):

    def test_audit_failure_discloses_nothing(self):
        b = self.desk("helpdesk")
        user = self.end_user()
        k = self.key()
        did, secret, vol, name = self.device([k], (user, "local"))
        before = len(self.records())
        db = self.kw.db()
        try:
            db.execute("CREATE TRIGGER fail_audit BEFORE INSERT ON audit BEGIN "
                       "SELECT RAISE(ABORT, 'audit store failure'); END;")
            r = self.recover(b, k[0][:8], user)
            self.assertPage(r, 503)
            self.assertIn("could not be recorded", page_text(r.body))
            self.assertNoKey(r, k)
            self.assertNotIn(name, r.text())
            row = db.execute("SELECT state, disclosed_at FROM recovery_keys "
                             "WHERE key_hex = ?", (k[0].replace("-", ""),)).fetchone()
            self.assertEqual(row, (0, 0))   # active, never disclosed
            self.assertEqual(self.rotate(secret, vol), [])
            # admins too
            a = self.desk("helpdesk_admin")
            r = self.recover(a, k[0][:8], "")
            self.assertPage(r, 503)
            self.assertNoKey(r, k)
            self.assertEqual(self.rotate(secret, vol), [])
        finally:
            db.execute("DROP TRIGGER IF EXISTS fail_audit")
            db.close()
        self.assertIn("help-desk recovery by %s failed, nothing disclosed" % b.user,
                      self.kw.log())
        self.assertEqual(len(self.records()), before)
        self.assertKeyPage(self.recover(b, k[0][:8], user), k, name)
        self.assertEqual(self.rotate(secret, vol), [k[0]])
