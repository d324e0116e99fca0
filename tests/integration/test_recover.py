"""Self-service recovery through the portal (SPEC §3.3-§3.6, §6, §7): the
outcomes of POST /recover, entitlement, rate limits, the audit trail and its
chain, failing closed, rotation after a disclosure, metrics."""

import datetime
import re
import unittest

import kw
from kw import (hex_prefix, key_id_with_prefix, page_text, recovery_password,
                strip_csrf, volume)

AMBIGUOUS = ("More than one recovery key starts with these characters. Enter all 32 "
             "characters of the recovery key ID.")
NOT_FOUND = ("No recovery key was found for this ID among the computers you have "
             "signed in to.")
HELPDESK = "Contact Helpdesk or IT Department"
WAIT = "Too many unsuccessful attempts. Try again in"
DOMAINS = {"identity": {"domains": "CORP:corp.example.com"}}
NO_LIMITS = {"lookup_failures": "1000/15m", "lookup_failures_per_address": "1000/15m"}


def disclosures(metrics, result):
    return metrics.get('keywarden_disclosures_total{source="self_service",result="%s"}'
                       % result, 0)


class RecoverCase(kw.PortalTestCase):
    """Helpers: keys with a chosen prefix on devices with logons."""

    def key(self, prefix=None):
        """(key_id, recovery password) with the prefix (a new one if None)."""
        return key_id_with_prefix(prefix or hex_prefix()), recovery_password()

    def device(self, keys, *logons, name=None):
        """A device holding keys, with logons (user, type) pairs; returns
        (device_id, secret, volume, name)."""
        return self.kw.device_with(keys, logons, name=name)

    def assertNoKey(self, r, *keys):
        text = r.text()
        visible = page_text(r.body)
        for kid, pw in keys:
            for t in (text, visible):
                self.assertNotIn(pw, t)
                self.assertNotIn(pw.replace("-", ""), t)
            self.assertNotIn(kid, text)

    def state(self, kid):
        rows = [r for r in self.kw.export_rows() if r["key_id"] == kid]
        self.assertEqual(len(rows), 1, kid)
        return rows[0]


class RecoverTest(RecoverCase):
    settings = {"identity": DOMAINS["identity"], "limits": NO_LIMITS}

    def test_form(self):
        b = self.signed_in()
        r = b.get("/recover")
        self.assertPage(r, 200)
        text = page_text(r.body)
        self.assertIn("Recovery key ID", text)
        self.assertIn("The first 8 characters of the ID shown on the BitLocker recovery "
                      "screen", text)
        self.assertIn("Reason", text)
        self.assertEqual(re.findall(r'name="reason" value="([^"]+)"', r.text()),
                         ["bios_tpm_changed", "os_files_changed", "lost_pin"])
        for label in ("BIOS/TPM changed", "Operating system files changed",
                      "Lost PIN/passphrase", "Get key"):
            self.assertIn(label, text)
        self.assertIn('name="key_id"', r.text())

    def test_one_entitled_key(self):
        b = self.signed_in()
        kid, pw = self.key()
        did, _, _, name = self.device([(kid, pw)], (b.user, "local"))
        r = b.recover(kid[:8])
        self.assertKeyShown(r, pw, name, kid)
        self.assertIn(pw, r.text())
        self.assertIn('class="key mono"', r.text())
        self.assertEqual(re.sub(r"<[^>]*>", "", re.search(
            r'<p class="key mono" id="key">(.*?)</p>', r.text()).group(1)), pw)

    def test_prefix_forms(self):
        b = self.signed_in()
        kid, pw = self.key()
        _, _, _, name = self.device([(kid, pw)], (b.user, "local"))
        for typed in (kid[:8].lower(), "{%s}" % kid.lower(), "{%s" % kid[:8],
                      kid[:13], kid[:4] + "-" + kid[4:8], kid[:4] + " " + kid[4:8],
                      "  %s  " % kid[:8], kid.replace("-", " "), kid.replace("-", ""),
                      "\t%s\n" % kid[:10]):
            r = b.recover(typed)
            self.assertEqual(r.status, 200, (typed, r))
            self.assertKeyShown(r, pw, name, kid)

    def test_other_users_keys_neither_counted_nor_shown(self):
        alice, bob = self.signed_in(), self.signed_in()
        p = hex_prefix()
        mine, theirs = self.key(p), self.key(p)
        _, _, _, mine_pc = self.device([mine], (alice.user, "local"))
        _, _, _, their_pc = self.device([theirs], (bob.user, "local"))
        r = alice.recover(p)
        self.assertKeyShown(r, mine[1], mine_pc, mine[0])
        self.assertNoKey(r, theirs)
        self.assertNotIn(their_pc, r.text())
        r = bob.recover(p.lower())
        self.assertKeyShown(r, theirs[1], their_pc, theirs[0])
        self.assertNoKey(r, mine)

    def test_two_keys_share_prefix(self):
        b = self.signed_in()
        p = hex_prefix()
        k1, k2 = self.key(p), self.key(p)
        _, _, _, name = self.device([k1, k2], (b.user, "local"))
        r = b.recover(p, reason="lost_pin")
        self.assertPage(r, 409)
        self.assertIn(AMBIGUOUS, page_text(r.body))
        self.assertNoKey(r, k1, k2)
        self.assertIn('value="%s"' % p, r.text(), "the form keeps what was typed")
        self.assertRegex(r.text(), r'value="lost_pin" checked')
        self.assertEqual(self.state(k1[0])["state"], "active")
        # 12 digits still shared: still ambiguous; all 32: the key
        self.assertEqual(b.recover(k1[0][:8] + k1[0][9:13]).status,
                         200 if k1[0][9:13] != k2[0][9:13] else 409)
        for kid, pw in (k1, k2):
            r = b.recover(kid)
            self.assertKeyShown(r, pw, name, kid)
            self.assertNoKey(r, k2 if kid == k1[0] else k1)

    def test_not_entitled_and_not_found_are_indistinguishable(self):
        alice = self.signed_in()
        bob = self.new_user("bob")
        p = hex_prefix()
        r_none = alice.recover(p)                  # no key has this prefix yet
        theirs = self.key(p)
        _, _, _, their_pc = self.device([theirs], (bob[0], "local"))
        r_theirs = alice.recover(p)                # now one does, on bob's computer
        for r in (r_none, r_theirs):
            self.assertPage(r, 404)
            self.assertIn(NOT_FOUND, page_text(r.body))
            self.assertIn(HELPDESK, page_text(r.body))
            self.assertEqual(r.header("Cache-Control"), "no-store")
        self.assertNoKey(r_theirs, theirs)
        self.assertNotIn(their_pc, r_theirs.text())
        self.assertEqual(strip_csrf(r_theirs.text()), strip_csrf(r_none.text()))
        self.assertEqual(r_theirs.body, r_none.body, "byte-identical")
        # the full ID of bob's key and another unknown ID, the typed text aside
        a = alice.recover(theirs[0])
        other = key_id_with_prefix(hex_prefix())
        c = alice.recover(other)
        self.assertEqual((a.status, c.status), (404, 404))
        self.assertEqual(strip_csrf(a.text()).replace(theirs[0], "ID"),
                         strip_csrf(c.text()).replace(other, "ID"))
        self.assertEqual(self.state(theirs[0])["state"], "active")

    def test_remote_logon_does_not_entitle(self):
        b = self.signed_in()
        k = self.key()
        self.device([k], (b.user, "remote"))
        r = b.recover(k[0][:8])
        self.assertPage(r, 404)
        self.assertNoKey(r, k)
        r = b.recover(k[0])
        self.assertPage(r, 404)

    def test_local_and_remote_logons_on_one_device(self):
        b = self.signed_in()
        k = self.key()
        _, _, _, name = self.device([k], (b.user, "remote"), (b.user, "local"))
        self.assertKeyShown(b.recover(k[0][:8]), k[1], name, k[0])

    def test_association_entitles(self):
        b = self.signed_in()
        bob = self.new_user("bob")
        k = self.key()
        did, _, _, name = self.device([k], (bob[0], "local"), (b.user, "remote"))
        self.assertEqual(b.recover(k[0][:8]).status, 404)
        self.kw.assoc(b.user, did)
        self.assertKeyShown(b.recover(k[0][:8]), k[1], name, k[0])

    def test_association_in_other_case_entitles(self):
        b = self.signed_in()
        k = self.key()
        did, _, _, name = self.device([k])
        self.kw.assoc(b.user.upper(), did)
        self.assertKeyShown(b.recover(k[0][:8]), k[1], name, k[0])

    def test_user_names_compare_case_insensitively(self):
        b = self.signed_in(self.new_user("alice"))          # CORP\aliceXXXXXX
        k = self.key()
        _, _, _, name = self.device([k], ("corp\\" + b.user.split("\\")[1].upper(),
                                          "local"))
        self.assertKeyShown(b.recover(k[0][:8]), k[1], name, k[0])

    def test_upn_logon_entitles_domain_account(self):
        b = self.signed_in(self.new_user("alice"))
        sam = b.user.split("\\")[1]
        k = self.key()
        _, _, _, name = self.device([k], ("%s@Corp.Example.COM" % sam.upper(), "local"))
        self.assertKeyShown(b.recover(k[0][:8]), k[1], name, k[0])

    def test_upn_account_entitled_by_domain_logon(self):
        sam = "dave%s" % hex_prefix().lower()
        upn = "%s@corp.example.com" % sam
        pw = "Pw-dave-%s" % hex_prefix()
        self.kw.add_user(upn, pw)
        b = self.signed_in((upn, pw))
        k = self.key()
        _, _, _, name = self.device([k], ("CORP\\%s" % sam, "local"))
        self.assertKeyShown(b.recover(k[0][:8]), k[1], name, k[0])

    def test_other_domain_does_not_entitle(self):
        b = self.signed_in(self.new_user("alice"))
        sam = b.user.split("\\")[1]
        k = self.key()
        self.device([k], ("OTHER\\%s" % sam, "local"), ("%s@other.example.com" % sam, "local"),
                    (sam + "x", "local"))
        self.assertEqual(b.recover(k[0][:8]).status, 404)

    def test_invalid_key_id_422(self):
        b = self.signed_in()
        k = self.key()
        self.device([k], (b.user, "local"))
        for typed in ("1234567", k[0][:7], k[0][:7] + "G", "G" + k[0][:8],
                      k[0].replace("-", "") + "0", "", "12345678;", "1234\u00e96789"):
            r = b.recover(typed)
            self.assertPage(r, 422, typed)
            self.assertIn('id="key_id-error"', r.text(), typed)
            self.assertIn('aria-invalid="true"', r.text(), typed)
            self.assertNoKey(r, k)
        self.assertIn("at least the first 8 characters", page_text(b.recover("1234567").body))
        self.assertEqual(self.state(k[0])["state"], "active")

    def test_reason_missing_or_unknown_422(self):
        b = self.signed_in()
        k = self.key()
        self.device([k], (b.user, "local"))
        for reason in (None, "", "other", "LOST_PIN", "lost_pin ", "tpm_reset"):
            r = b.recover(k[0][:8], reason=reason)
            self.assertPage(r, 422, reason)
            self.assertIn('id="reason-error"', r.text(), reason)
            self.assertIn("Choose the reason for this request.", page_text(r.body))
            self.assertNotIn('id="key_id-error"', r.text())
            self.assertNoKey(r, k)
        self.assertEqual(self.state(k[0])["state"], "active")

    def test_recover_needs_csrf(self):
        b = self.signed_in()
        k = self.key()
        self.device([k], (b.user, "local"))
        for csrf, hdrs in ((None, {}), ("wrong-token", {}),
                           (True, {"Origin": "http://evil.example"}),
                           (True, {"Sec-Fetch-Site": "cross-site"})):
            r = b.recover(k[0][:8], csrf=csrf, headers=hdrs)
            self.assertPage(r, 403, (csrf, hdrs))
            self.assertNoKey(r, k)
        # another session's token is not this session's
        other = self.signed_in()
        r = b.recover(k[0][:8], csrf=other.csrf)
        self.assertPage(r, 403)
        self.assertEqual(self.state(k[0])["state"], "active")

    def test_disabled_account_session_gets_no_key(self):
        b = self.signed_in()
        k = self.key()
        self.device([k], (b.user, "local"))
        rc, out, err = self.kw.cli("user", "disable", b.user)
        self.assertEqual(rc, 0, err)
        r = b.recover(k[0][:8])
        self.assertNoKey(r, k)
        self.assertNotEqual(r.status, 200, r)
        self.assertEqual(self.state(k[0])["state"], "active")

    def test_metrics_count_outcomes(self):
        b = self.signed_in()
        p = hex_prefix()
        k1, k2 = self.key(p), self.key(p)
        self.device([k1, k2], (b.user, "local"))
        before = self.kw.metrics()
        self.assertEqual(b.recover(k1[0]).status, 200)
        self.assertEqual(b.recover(p).status, 409)
        self.assertEqual(b.recover(hex_prefix()).status, 404)
        self.assertEqual(b.recover(hex_prefix()).status, 404)
        self.assertEqual(b.recover("123").status, 422)
        after = self.kw.metrics()
        for result, n in (("disclosed", 1), ("ambiguous", 1), ("not_found", 2),
                          ("invalid", 1), ("rate_limited", 0)):
            self.assertEqual(disclosures(after, result) - disclosures(before, result), n,
                             result)


class LookupLimitTest(RecoverCase):
    settings = {"limits": {"lookup_failures": "3/15m",
                           "lookup_failures_per_address": "1000/15m"}}

    def test_lookup_failures_per_user(self):
        alice = self.new_user("alice")
        b = self.signed_in(alice)
        p = hex_prefix()
        k1, k2 = self.key(p), self.key(p)
        good = self.key()
        _, _, _, name = self.device([k1, k2, good], (b.user, "local"))
        before = self.kw.metrics()
        # 409 and 422 do not count
        for _ in range(3):
            self.assertEqual(b.recover(p).status, 409)
            self.assertEqual(b.recover("1234567").status, 422)
            self.assertEqual(b.recover(good[0][:8], reason=None).status, 422)
        for _ in range(2):
            self.assertEqual(b.recover(hex_prefix()).status, 404)
        self.assertKeyShown(b.recover(good[0][:8]), good[1], name, good[0])
        self.assertEqual(b.recover(hex_prefix()).status, 404)          # the third
        # the next lookup, even of a valid key, waits
        r = b.recover(good[0][:8])
        self.assertPage(r, 429)
        retry = r.header("Retry-After")
        self.assertRegex(retry or "", r"^\d+$")
        self.assertTrue(1 <= int(retry) <= 900, retry)
        text = page_text(r.body)
        self.assertIn(WAIT, text)
        self.assertIn(HELPDESK, text)
        self.assertNoKey(r, good)
        self.assertEqual(r.header("Cache-Control"), "no-store")
        self.assertEqual(b.recover(k1[0]).status, 429)
        self.assertEqual(b.recover(hex_prefix()).status, 429)
        # the lock is the user's, whatever the session
        self.assertEqual(self.signed_in(alice).recover(good[0]).status, 429)
        # other users are not affected
        other = self.signed_in()
        ok = self.key()
        _, _, _, pc = self.device([ok], (other.user, "local"))
        self.assertKeyShown(other.recover(ok[0][:8]), ok[1], pc, ok[0])
        after = self.kw.metrics()
        self.assertEqual(disclosures(after, "rate_limited") -
                         disclosures(before, "rate_limited"), 4)
        self.assertEqual(disclosures(after, "not_found") - disclosures(before, "not_found"), 3)


class AddressLimitTest(RecoverCase):
    settings = {"limits": {"lookup_failures": "3/15m",
                           "lookup_failures_per_address": "4/15m"}}

    def test_lookup_failures_per_address(self):
        users = [self.signed_in() for _ in range(3)]
        k = self.key()
        _, _, _, name = self.device([k], (users[2].user, "local"))
        for b in users[:2]:
            for _ in range(2):
                self.assertEqual(b.recover(hex_prefix()).status, 404, b.user)
        # 4 failures from 127.0.0.1, none of the users over their own limit
        r = users[2].recover(k[0][:8])
        self.assertPage(r, 429)
        self.assertRegex(r.header("Retry-After") or "", r"^[1-9]\d*$")
        self.assertIn(WAIT, page_text(r.body))
        self.assertNoKey(r, k)
        self.assertEqual(users[0].recover(hex_prefix()).status, 429)


class AuditTest(RecoverCase):
    """One record per outcome of POST /recover; the chain (SPEC §3.5, §6)."""
    settings = {"limits": {"lookup_failures": "1/15m",
                           "lookup_failures_per_address": "1000/15m"}}
    series = None

    def run_series(self):
        """The outcomes, in order, once per class: a list of dicts saying what
        each audit record must hold."""
        cls = type(self)
        if cls.series is not None:
            return cls.series
        b = self.signed_in()
        p = hex_prefix()
        k, a1, a2 = self.key(), self.key(p), self.key(p)
        did, _, _, pc = self.device([k, a1, a2], (b.user, "local"))
        unknown = hex_prefix()
        steps = [  # typed, reason, status, result, recorded key_id
            (k[0][:8].lower(), "bios_tpm_changed", 200, "disclosed", k[0]),
            (p.lower(), "os_files_changed", 409, "ambiguous", p),
            ("12345", "lost_pin", 422, "invalid", "12345"),
            (k[0][:8], None, 422, "invalid", k[0][:8]),
            (unknown, "lost_pin", 404, "not_found", unknown),
            (k[0][:8], "bios_tpm_changed", 429, "rate_limited", k[0][:8]),
        ]
        out = []
        b.get("/recover")                       # no record for a GET
        for typed, reason, status, result, recorded in steps:
            r = b.recover(typed, reason=reason)
            self.assertEqual(r.status, status, (typed, reason, r))
            out.append({"result": result, "key_id": recorded, "reason": reason or "",
                        "user": b.user,
                        "computer": pc if result == "disclosed" else "",
                        "device_id": did if result == "disclosed" else ""})
        cls.series = out
        return out

    def test_export_lists_one_record_per_outcome(self):
        want = self.run_series()
        rows = self.kw.audit_export()
        self.assertEqual(len(rows), len(want), rows)
        now = datetime.datetime.now(datetime.timezone.utc)
        for i, (row, w) in enumerate(zip(rows, want), 1):
            what = (i, row)
            self.assertEqual(row["seq"], str(i), what)
            self.assertEqual(row["source"], "self_service", what)
            self.assertEqual(row["result"], w["result"], what)
            self.assertEqual(row["actor"], w["user"], what)
            self.assertEqual(row["end_user"], w["user"], what)
            self.assertEqual(row["computer"], w["computer"], what)
            self.assertEqual(row["device_id"], w["device_id"], what)
            if w["result"] in ("disclosed", "invalid"):
                self.assertEqual(row["key_id"], w["key_id"], what)
            else:   # the prefix entered, as hex digits
                self.assertEqual(row["key_id"].replace("-", "").upper(), w["key_id"], what)
            self.assertEqual(row["reason"], w["reason"], what)
            self.assertEqual(row["client"], "127.0.0.1", what)
            self.assertEqual(row["key_type"], "recovery_password", what)
            self.assertRegex(row["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", what)
            at = datetime.datetime.strptime(row["time"], "%Y-%m-%dT%H:%M:%SZ").replace(
                tzinfo=datetime.timezone.utc)
            self.assertLess(abs((now - at).total_seconds()), 300, (what, now))
            self.assertRegex(row["hash"], r"^[0-9a-f]{64}$", what)
        self.assertEqual(len({r["hash"] for r in rows}), len(rows))
        # the export shows no recovery password
        rc, out, err = self.kw.cli("audit", "export")
        for s in self.kw.secrets:
            if re.fullmatch(r"\d{6}(-\d{6}){7}", s):
                self.assertNotIn(s, out)

    def test_verify(self):
        self.run_series()
        rc, out, err = self.kw.cli("audit", "verify")
        self.assertEqual(rc, 0, err)
        self.assertIn("%d records" % len(self.series), out)

    @kw.needs_sqlite
    def test_verify_detects_altered_record(self):
        self.run_series()
        db = self.kw.db()
        try:
            (orig,) = db.execute("SELECT reason FROM audit WHERE seq = 2").fetchone()
            db.execute("UPDATE audit SET reason = 'x' WHERE seq = 2")
            rc, out, err = self.kw.cli("audit", "verify")
            self.assertNotEqual(rc, 0, out)
            self.assertRegex(err, r"\brecord 2\b", err)
            self.assertNotRegex(err, r"\brecord [13456]\b", err)
            db.execute("UPDATE audit SET reason = ? WHERE seq = 2", (orig,))
        finally:
            db.close()
        rc, out, err = self.kw.cli("audit", "verify")
        self.assertEqual(rc, 0, err)

    @kw.needs_sqlite
    def test_verify_detects_deleted_newest_record(self):
        self.run_series()
        db = self.kw.db()
        try:
            cur = db.execute("SELECT * FROM audit ORDER BY seq DESC LIMIT 1")
            cols = [d[0] for d in cur.description]
            row = cur.fetchone()
            db.execute("DELETE FROM audit WHERE seq = ?", (row[cols.index("seq")],))
            rc, out, err = self.kw.cli("audit", "verify")
            self.assertNotEqual(rc, 0, out)
            # e.g. "the newest record(s) after 5 were deleted"
            self.assertRegex(err, r"delet|missing", err)
            self.assertRegex(err, r"\b%d\b|\b%d\b" % (row[cols.index("seq")],
                                                          row[cols.index("seq")] - 1), err)
            db.execute("INSERT INTO audit (%s) VALUES (%s)" % (
                ", ".join(cols), ", ".join("?" * len(cols))), row)
        finally:
            db.close()
        rc, out, err = self.kw.cli("audit", "verify")
        self.assertEqual(rc, 0, err)


@kw.needs_sqlite
class FailClosedTest(RecoverCase):
    settings = {"limits": NO_LIMITS}

    def test_audit_failure_discloses_nothing(self):
        b = self.signed_in()
        k = self.key()
        did, secret, vol, name = self.device([k], (b.user, "local"))
        recoveries = lambda: [r for r in self.kw.audit_export() if r["result"] != "exported"]
        records = len(recoveries())
        before = disclosures(self.kw.metrics(), "disclosed")
        db = self.kw.db()
        try:
            db.execute("CREATE TRIGGER fail_audit BEFORE INSERT ON audit BEGIN "
                       "SELECT RAISE(ABORT, 'audit store failure'); END;")
            r = b.recover(k[0][:8])
            self.assertPage(r, 503)
            self.assertNoKey(r, k)
            self.assertNotIn(name, r.text())
            # export csv fails closed too while no audit record can be
            # written: the key's state from the database itself
            row = db.execute("SELECT state, disclosed_at FROM recovery_keys "
                             "WHERE key_hex = ?", (k[0].replace("-", ""),)).fetchone()
            self.assertEqual(row, (0, 0))   # active, never disclosed
            c = self.kw.checkin(secret, volumes=[vol])
            self.assertEqual(c.status, 200, c)
            self.assertEqual(c.json()["rotate"], [])
            self.assertEqual(len(recoveries()), records)
            self.assertEqual(disclosures(self.kw.metrics(), "disclosed"), before)
        finally:
            db.execute("DROP TRIGGER IF EXISTS fail_audit")
            db.close()
        self.assertIn("nothing disclosed", self.kw.log())
        r = b.recover(k[0][:8])
        self.assertKeyShown(r, k[1], name, k[0])
        self.assertEqual(self.state(k[0])["state"], "disclosed")
        c = self.kw.checkin(secret, volumes=[vol])
        self.assertEqual(c.json()["rotate"], [k[0]])
        rows = recoveries()
        self.assertEqual(len(rows), records + 1)
        self.assertEqual(rows[-1]["result"], "disclosed")
        rc, out, err = self.kw.cli("audit", "verify")
        self.assertEqual(rc, 0, err)


class RotationTest(RecoverCase):
    settings = {"limits": NO_LIMITS}

    def test_disclosed_key_rotated(self):
        b = self.signed_in()
        k = self.key()
        keep = self.key()
        did, secret, vol, name = self.device([k, keep], (b.user, "local"))
        c = self.kw.checkin(secret, volumes=[vol])
        self.assertEqual(c.json()["rotate"], [])
        self.assertKeyShown(b.recover(k[0][:8]), k[1], name, k[0])
        row = self.state(k[0])
        self.assertEqual(row["state"], "disclosed")
        self.assertRegex(row["disclosed_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(self.state(keep[0])["state"], "active")
        for _ in range(2):   # told again until the device reports it gone
            c = self.kw.checkin(secret, volumes=[vol])
            self.assertEqual(c.status, 200, c)
            self.assertEqual(c.json()["rotate"], [k[0]])
        # the device rotated: a new key, the old one gone
        new = self.key()
        vol2 = volume([keep, new], vid=vol["id"])
        self.kw.secrets.add(new[1])
        c = self.kw.checkin(secret, volumes=[vol2])
        self.assertEqual(c.status, 200, c)
        self.assertEqual(c.json()["rotate"], [])
        self.assertEqual(self.state(k[0])["state"], "superseded")
        self.assertEqual(self.state(keep[0])["state"], "active")
        self.assertEqual(self.state(new[0])["state"], "active")
        self.assertEqual(self.kw.checkin(secret, volumes=[vol2]).json()["rotate"], [])
        # the new key is there for the next lockout
        self.assertKeyShown(b.recover(new[0][:8]), new[1], name, new[0])


if __name__ == "__main__":
    unittest.main()
