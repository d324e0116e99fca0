"""POST /api/v1/checkin (SPEC §1, §5): authentication, escrow, formats,
atomicity, conflicts, idempotence, key life cycle, limits, field errors."""

import http.client
import json
import re
import unittest

import kw
from kw import key_id, new_keys, recovery_password, volume

PUBLISHED = ["496298-461032-321464-595518-463221-173943-033616-139579",
             "471207-278498-422125-177177-561902-537405-468006-693451"]
CANON_KEY_RE = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$")
CANON_PW_RE = re.compile(r"^\d{6}(-\d{6}){7}$")


def logon_lines(show):
    """{(user, type)} from `device show`."""
    out = set()
    for line in show.splitlines():
        m = re.match(r"\s*logon\s+(\S+)\s+(local|remote)\b", line)
        if m:
            out.add((m.group(1), m.group(2)))
    return out


class CheckinAuthTest(kw.ServerTestCase):

    def test_no_authorization_401(self):
        r = self.kw.checkin(None, volumes=[])
        self.assertEqual(r.status, 401, r)

    def test_wrong_secret_401(self):
        _, secret = self.new_device()
        for bad in ("kwd_" + "A" * 43, secret[:-1], secret + "x", "x"):
            r = self.kw.checkin(bad, volumes=[])
            self.assertEqual(r.status, 401, (bad, r))

    def test_other_schemes_401(self):
        _, secret = self.new_device()
        for h in ("Basic " + secret, secret, "Bearer", "Bearer "):
            r = self.kw.request("POST", "/api/v1/checkin", json={"volumes": []},
                                headers={"Authorization": h})
            self.assertEqual(r.status, 401, (h, r))

    def test_enrollment_token_is_not_a_device_secret(self):
        token = self.kw.enroll_token()
        r = self.kw.checkin(token, volumes=[])
        self.assertEqual(r.status, 401, r)

    def test_revoked_device_401(self):
        did, secret = self.new_device()
        self.assertCheckin(secret, volumes=[volume(new_keys(1))])
        rc, out, err = self.kw.cli("device", "revoke", did)
        self.assertEqual(rc, 0, err)
        r = self.kw.checkin(secret, volumes=[volume(new_keys(1))])
        self.assertEqual(r.status, 401, r)
        self.assertIn("revoked", self.kw.device_show(did))

    def test_401_stores_nothing(self):
        did, secret = self.new_device()
        k = new_keys(1)
        r = self.kw.checkin(secret + "x", volumes=[volume(k)])
        self.assertEqual(r.status, 401, r)
        self.assertNotIn(k[0][0], self.kw.export()[2])


class CheckinEscrowTest(kw.ServerTestCase):

    def test_success_reply(self):
        _, secret = self.new_device()
        r = self.assertCheckin(secret, volumes=[volume(new_keys(1))],
                               logons=[{"user": "CORP\\alice", "type": "local",
                                        "at": "2026-11-20T08:00:00Z"}])
        self.assertRegex(r.header("Content-Type"), r"^application/json\b")
        self.assertEqual(r.json(), {"rotate": [], "checkin_interval": 5400})

    def test_export_header_exact(self):
        header, _, text = self.kw.export()
        self.assertEqual(header, kw.EXPORT_HEADER)

    def test_keys_are_stored_and_exported(self):
        did, secret = self.new_device(name="PC-STORE-1")
        vid = key_id()
        keys = new_keys(2)
        self.assertCheckin(secret, volumes=[volume(keys, vid=vid, mount="C:")])
        rows = self.kw.export_rows(did)
        self.assertEqual(len(rows), 2, rows)
        got = {r["key_id"]: r for r in rows}
        for kid, pw in keys:
            row = got[kid]
            self.assertEqual(row["recovery_password"], pw)
            self.assertEqual(row["state"], "active")
            self.assertEqual(row["device_name"], "PC-STORE-1")
            self.assertEqual(row["domain"], "CORP")
            self.assertEqual(row["volume_id"], vid)
            self.assertEqual(row["mount"], "C:")
            self.assertTrue(row["created_at"])
            self.assertEqual(row["disclosed_at"], "")
        show = self.kw.device_show(did)
        for kid, _ in keys:
            self.assertIn(kid, show)
        # device show never prints a password
        for _, pw in keys:
            self.assertNotIn(pw, show)
            self.assertNotIn(pw.replace("-", ""), show)

    def test_published_vectors_accepted(self):
        did, secret = self.new_device()
        keys = [(key_id(), pw) for pw in PUBLISHED]
        self.assertCheckin(secret, volumes=[volume(keys)])
        got = {r["key_id"]: r["recovery_password"] for r in self.kw.export_rows(did)}
        self.assertEqual(got, dict(keys))

    def test_key_id_canonicalised(self):
        did, secret = self.new_device()
        k1, k2, k3, vol = key_id(), key_id(), key_id(), key_id()
        p1, p2, p3 = (recovery_password() for _ in range(3))
        self.assertCheckin(secret, volumes=[volume(
            [(k1.lower(), p1), ("{%s}" % k2.lower(), p2), (k3.replace("-", ""), p3)],
            vid="{%s}" % vol.lower())])
        rows = self.kw.export_rows(did)
        got = {r["key_id"]: r["recovery_password"] for r in rows}
        self.assertEqual(got, {k1: p1, k2: p2, k3: p3})
        for r in rows:
            self.assertRegex(r["key_id"], CANON_KEY_RE)
            self.assertEqual(r["volume_id"], vol)

    def test_canonical_key_id_matches_lower_case_report(self):
        # reported in lower case, then upper case: the same key, no conflict
        did, secret = self.new_device()
        k, p = key_id(), recovery_password()
        self.assertCheckin(secret, volumes=[volume([(k.lower(), p)], vid=key_id())])
        vid = self.kw.export_rows(did)[0]["volume_id"]
        self.assertCheckin(secret, volumes=[volume([("{%s}" % k, p)], vid=vid)])
        rows = self.kw.export_rows(did)
        self.assertEqual(len(rows), 1, rows)
        self.assertEqual(rows[0]["state"], "active")

    def test_password_separators_canonicalised(self):
        did, secret = self.new_device()
        keys = new_keys(4)
        reported = [
            (keys[0][0], keys[0][1].replace("-", " ")),
            (keys[1][0], keys[1][1].replace("-", "")),
            (keys[2][0], "  " + keys[2][1] + " "),
            (keys[3][0], keys[3][1].replace("-", " - ")),
        ]
        self.assertCheckin(secret, volumes=[volume(reported)])
        got = {r["key_id"]: r["recovery_password"] for r in self.kw.export_rows(did)}
        self.assertEqual(got, dict(keys))
        for pw in got.values():
            self.assertRegex(pw, CANON_PW_RE)

    def test_password_tab_and_newline_separators(self):
        did, secret = self.new_device()
        keys = new_keys(2)
        reported = [(keys[0][0], keys[0][1].replace("-", "\t")),
                    (keys[1][0], keys[1][1] + "\r\n")]
        self.assertCheckin(secret, volumes=[volume(reported)])
        got = {r["key_id"]: r["recovery_password"] for r in self.kw.export_rows(did)}
        self.assertEqual(got, dict(keys))

    def test_logons_in_device_show(self):
        did, secret = self.new_device()
        self.assertCheckin(secret, volumes=[], logons=[
            {"user": "CORP\\alice", "type": "local", "at": "2026-11-20T08:00:00Z"},
            {"user": "bob@corp.example.com", "type": "remote", "at": "2026-11-20T09:00:00Z"},
            {"user": "CORP\\carol", "type": "local"},
        ])
        got = logon_lines(self.kw.device_show(did))
        self.assertEqual(got, {("CORP\\alice", "local"), ("bob@corp.example.com", "remote"),
                               ("CORP\\carol", "local")})

    def test_logon_first_and_last_seen(self):
        did, secret = self.new_device()
        for at in ("2025-06-10T08:00:00Z", "2025-06-01T07:30:00Z", "2025-06-20T18:45:00Z",
                   "2025-06-15T12:00:00Z"):
            self.assertCheckin(secret, volumes=[],
                               logons=[{"user": "CORP\\frank", "type": "local", "at": at}])
        lines = [l for l in self.kw.device_show(did).splitlines() if "frank" in l]
        self.assertEqual(len(lines), 1, lines)
        self.assertRegex(lines[0], r"first 2025-06-01T07:30:00Z\b")
        self.assertRegex(lines[0], r"last 2025-06-20T18:45:00Z\b")

    def test_volume_details_in_device_show(self):
        did, secret = self.new_device()
        vid = key_id()
        self.assertCheckin(secret, volumes=[volume(new_keys(1), vid=vid, mount="D:",
                                                   vtype="fixed", protection="suspended",
                                                   encryption="aes_128", percent=42)])
        show = self.kw.device_show(did)
        line = [l for l in show.splitlines() if vid in l]
        self.assertEqual(len(line), 1, show)
        for part in ("D:", "fixed", "suspended", "aes_128", "42"):
            self.assertIn(part, line[0])

    def test_os_updated(self):
        did, secret = self.new_device()
        self.assertCheckin(secret, volumes=[], os_name="Windows 11 Enterprise 24H2")
        self.assertIn("Windows 11 Enterprise 24H2", self.kw.device_show(did))

    def test_idempotent(self):
        did, secret = self.new_device()
        vols = [volume(new_keys(3), mount="C:"), volume(new_keys(2), mount="E:",
                                                        vtype="removable")]
        logons = [{"user": "CORP\\dave", "type": "local", "at": "2026-11-20T08:00:00Z"}]
        self.assertCheckin(secret, volumes=vols, logons=logons)
        before = self.kw.export_rows(did)
        show_before = logon_lines(self.kw.device_show(did))
        r = self.assertCheckin(secret, volumes=vols, logons=logons)
        self.assertEqual(r.json(), {"rotate": [], "checkin_interval": 5400})
        after = self.kw.export_rows(did)
        self.assertEqual(len(after), 5)
        self.assertEqual(sorted(map(repr, before)), sorted(map(repr, after)))
        self.assertEqual(logon_lines(self.kw.device_show(did)), show_before)

    def test_absent_key_becomes_removed_and_stays_exported(self):
        did, secret = self.new_device()
        vid = key_id()
        (k1, p1), (k2, p2) = new_keys(2)
        self.assertCheckin(secret, volumes=[volume([(k1, p1), (k2, p2)], vid=vid)])
        self.assertCheckin(secret, volumes=[volume([(k1, p1)], vid=vid)])
        got = {r["key_id"]: r for r in self.kw.export_rows(did)}
        self.assertEqual(set(got), {k1, k2})
        self.assertEqual(got[k1]["state"], "active")
        self.assertEqual(got[k2]["state"], "removed")
        self.assertEqual(got[k2]["recovery_password"], p2)
        # an empty key list on the volume removes every key, deletes nothing
        self.assertCheckin(secret, volumes=[volume([], vid=vid)])
        got = {r["key_id"]: r for r in self.kw.export_rows(did)}
        self.assertEqual({k: r["state"] for k, r in got.items()},
                         {k1: "removed", k2: "removed"})
        self.assertEqual(got[k1]["recovery_password"], p1)

    def test_new_key_replacing_old_one(self):
        # a rotation: the volume reports a new key instead of the old one
        did, secret = self.new_device()
        vid = key_id()
        (k1, p1), (k2, p2) = new_keys(2)
        self.assertCheckin(secret, volumes=[volume([(k1, p1)], vid=vid)])
        self.assertCheckin(secret, volumes=[volume([(k2, p2)], vid=vid)])
        got = {r["key_id"]: (r["state"], r["recovery_password"])
               for r in self.kw.export_rows(did)}
        self.assertEqual(got, {k1: ("removed", p1), k2: ("active", p2)})

    def test_absent_volume_left_as_it_was(self):
        did, secret = self.new_device()
        v1, v2 = key_id(), key_id()
        (k1, p1), (k2, p2) = new_keys(2)
        self.assertCheckin(secret, volumes=[volume([(k1, p1)], vid=v1),
                                            volume([(k2, p2)], vid=v2, mount="E:",
                                                   vtype="removable")])
        self.assertCheckin(secret, volumes=[volume([(k1, p1)], vid=v1)])
        got = {r["key_id"]: (r["state"], r["recovery_password"], r["volume_id"])
               for r in self.kw.export_rows(did)}
        self.assertEqual(got, {k1: ("active", p1, v1), k2: ("active", p2, v2)})
        self.assertIn(v2, self.kw.device_show(did))

    def test_device_writes_only_its_own_records(self):
        did_a, sec_a = self.new_device()
        did_b, sec_b = self.new_device()
        vid = key_id()
        ka = new_keys(1)
        self.assertCheckin(sec_a, volumes=[volume(ka, vid=vid)])
        # B reports a volume with the same GUID: A's keys are untouched
        kb = new_keys(1)
        self.assertCheckin(sec_b, volumes=[volume(kb, vid=vid)])
        a = {r["key_id"]: r["state"] for r in self.kw.export_rows(did_a)}
        b = {r["key_id"]: r["state"] for r in self.kw.export_rows(did_b)}
        self.assertEqual(a, {ka[0][0]: "active"})
        self.assertEqual(b, {kb[0][0]: "active"})
        # B reports the volume empty: A's key is still active
        self.assertCheckin(sec_b, volumes=[volume([], vid=vid)])
        a = {r["key_id"]: r["state"] for r in self.kw.export_rows(did_a)}
        self.assertEqual(a, {ka[0][0]: "active"})


class CheckinAtomicityTest(kw.ServerTestCase):
    """422 and 409 store nothing from the request."""

    def baseline(self):
        did, secret = self.new_device()
        vid = key_id()
        k0 = new_keys(1)[0]
        self.assertCheckin(secret, volumes=[volume([k0], vid=vid)], os_name="OS-BEFORE",
                           logons=[{"user": "CORP\\alice", "type": "local"}])
        state = (self.kw.export()[2], self.kw.device_show(did))
        return did, secret, vid, k0, state

    def assertUnchanged(self, did, state, *absent):
        text, show = state
        now_text = self.kw.export()[2]
        self.assertEqual(now_text, text)
        now_show = self.kw.device_show(did)
        self.assertEqual(logon_lines(now_show), logon_lines(show))
        self.assertIn("OS-BEFORE", now_show)
        self.assertNotIn("OS-AFTER", now_show)
        for a in absent:
            self.assertNotIn(a, now_text)
            self.assertNotIn(a, now_show)

    def test_invalid_password_422_stores_nothing(self):
        did, secret, vid, k0, state = self.baseline()
        good = new_keys(1)[0]
        bad_pw = recovery_password().split("-")
        bad_pw[2] = "311111"
        bad = (key_id(), "-".join(bad_pw))
        other_vol = key_id()
        r = self.kw.checkin(secret, os_name="OS-AFTER",
                            volumes=[volume([good, bad], vid=vid),
                                     volume(new_keys(1), vid=other_vol, mount="E:")],
                            logons=[{"user": "CORP\\mallory", "type": "local"}])
        self.assertEqual(r.status, 422, r)
        errors = r.json()["errors"]
        self.assertEqual([e["field"] for e in errors],
                         ["volumes[0].recovery_keys[1].recovery_password"])
        msg = errors[0]["message"]
        self.assertTrue("311111" in msg or re.search(r"group 3\b", msg, re.I), msg)
        self.assertIn("11", msg.replace("311111", ""), msg)
        self.assertUnchanged(did, state, good[0], bad[0], other_vol, "mallory")

    def test_group_too_large_422(self):
        did, secret, vid, k0, state = self.baseline()
        pw = recovery_password().split("-")
        pw[7] = "720896"          # 11 * 65536: divisible, but too large
        r = self.kw.checkin(secret, os_name="OS-AFTER",
                            volumes=[volume([k0, (key_id(), "-".join(pw))], vid=vid)])
        self.assertEqual(r.status, 422, r)
        errors = r.json()["errors"]
        self.assertEqual(errors[0]["field"], "volumes[0].recovery_keys[1].recovery_password")
        self.assertTrue("720896" in errors[0]["message"] or
                        re.search(r"group 8\b", errors[0]["message"], re.I), errors)
        self.assertUnchanged(did, state)

    def test_wrong_digit_count_and_characters_422(self):
        did, secret, vid, k0, state = self.baseline()
        for bad in (recovery_password()[:-1], recovery_password() + "-000000",
                    PUBLISHED[0].replace("0", "O", 1), "", "abc"):
            r = self.kw.checkin(secret, os_name="OS-AFTER",
                                volumes=[volume([(key_id(), bad)], vid=vid)])
            self.assertEqual(r.status, 422, (bad, r))
            self.assertEqual(r.json()["errors"][0]["field"],
                             "volumes[0].recovery_keys[0].recovery_password")
        self.assertUnchanged(did, state)

    def test_invalid_key_id_422(self):
        did, secret, vid, k0, state = self.baseline()
        for bad in ("1234567", "XYZ" + key_id()[3:], key_id() + "00", ""):
            r = self.kw.checkin(secret, os_name="OS-AFTER",
                                volumes=[volume([(bad, recovery_password())], vid=vid)])
            self.assertEqual(r.status, 422, (bad, r))
            self.assertEqual(r.json()["errors"][0]["field"],
                             "volumes[0].recovery_keys[0].key_id", bad)
        self.assertUnchanged(did, state)

    def test_same_key_different_password_409(self):
        did, secret, vid, k0, state = self.baseline()
        new_first = new_keys(1)[0]
        other_vol, other_key = key_id(), new_keys(1)[0]
        changed = (k0[0], recovery_password())
        self.assertNotEqual(changed[1], k0[1])
        r = self.kw.checkin(secret, os_name="OS-AFTER",
                            volumes=[volume([other_key], vid=other_vol, mount="E:"),
                                     volume([new_first, changed], vid=vid)],
                            logons=[{"user": "CORP\\mallory", "type": "local"}])
        self.assertEqual(r.status, 409, r)
        self.assertRegex(r.header("Content-Type"), r"^application/json\b")
        self.assertUnchanged(did, state, new_first[0], other_key[0], other_vol,
                             changed[1], "mallory")
        # the escrowed password is the first one, still active
        rows = self.kw.export_rows(did)
        self.assertEqual([(r["key_id"], r["recovery_password"], r["state"]) for r in rows],
                         [(k0[0], k0[1], "active")])

    def test_same_key_different_password_in_lower_case_409(self):
        did, secret, vid, k0, state = self.baseline()
        r = self.kw.checkin(secret, os_name="OS-AFTER",
                            volumes=[volume([(k0[0].lower(), recovery_password())],
                                            vid=vid)])
        self.assertEqual(r.status, 409, r)
        self.assertUnchanged(did, state)

    def test_key_of_another_device_409(self):
        did_a, sec_a, vid_a, k0, state_a = self.baseline()
        did_b, sec_b = self.new_device()
        own = new_keys(1)[0]
        for pw in (k0[1], recovery_password()):
            r = self.kw.checkin(sec_b, volumes=[volume([own, (k0[0], pw)])])
            self.assertEqual(r.status, 409, r)
        self.assertEqual(self.kw.export_rows(did_b), [])
        rows = self.kw.export_rows(did_a)
        self.assertEqual([(r["key_id"], r["recovery_password"], r["state"]) for r in rows],
                         [(k0[0], k0[1], "active")])
        self.assertNotIn(own[0], self.kw.export()[2])

    def test_every_field_error_reported(self):
        did, secret, vid, k0, state = self.baseline()
        body = {"os": "OS-AFTER",
                "volumes": [volume([k0], vid=vid, vtype="ssd", protection="maybe",
                                   percent=101)],
                "logons": [{"user": "CORP\\x", "type": "console"},
                           {"user": "CORP\\y", "type": "local", "at": "yesterday"}]}
        r = self.kw.checkin(secret, body=body)
        self.assertEqual(r.status, 422, r)
        fields = {e["field"] for e in r.json()["errors"]}
        self.assertEqual(fields, {"volumes[0].type", "volumes[0].protection",
                                  "volumes[0].percent_encrypted", "logons[0].type",
                                  "logons[1].at"})
        self.assertUnchanged(did, state)

    def test_single_field_errors(self):
        did, secret, vid, k0, state = self.baseline()
        cases = [
            ({"type": "ssd"}, "volumes[0].type"),
            ({"type": 1}, "volumes[0].type"),
            ({"protection": "maybe"}, "volumes[0].protection"),
            ({"percent_encrypted": 101}, "volumes[0].percent_encrypted"),
            ({"percent_encrypted": -1}, "volumes[0].percent_encrypted"),
            ({"percent_encrypted": "100"}, "volumes[0].percent_encrypted"),
            ({"percent_encrypted": 99.5}, "volumes[0].percent_encrypted"),
            ({"id": "not-a-guid"}, "volumes[0].id"),
            ({"recovery_keys": "none"}, "volumes[0].recovery_keys"),
            ({"encryption": "XTS AES"}, "volumes[0].encryption"),
        ]
        for change, field in cases:
            v = volume([k0], vid=vid)
            v.update(change)
            r = self.kw.checkin(secret, os_name="OS-AFTER", volumes=[v])
            self.assertEqual(r.status, 422, (change, r))
            self.assertIn(field, [e["field"] for e in r.json()["errors"]], change)
        logon_cases = [
            ({"user": "CORP\\x", "type": "console"}, "logons[0].type"),
            ({"user": "CORP\\x", "type": "local", "at": "yesterday"}, "logons[0].at"),
            ({"user": "CORP\\x", "type": "local", "at": "2026-13-45T99:00:00Z"},
             "logons[0].at"),
            ({"type": "local"}, "logons[0].user"),
        ]
        for logon, field in logon_cases:
            r = self.kw.checkin(secret, os_name="OS-AFTER", volumes=[volume([k0], vid=vid)],
                                logons=[logon])
            self.assertEqual(r.status, 422, (logon, r))
            self.assertIn(field, [e["field"] for e in r.json()["errors"]], logon)
        self.assertUnchanged(did, state)

    def test_bad_shapes(self):
        did, secret, vid, k0, state = self.baseline()
        for body in ({"os": "OS-AFTER"}, {"os": "OS-AFTER", "volumes": {}},
                     {"os": "OS-AFTER", "volumes": [1]},
                     {"os": "OS-AFTER", "volumes": [], "logons": "alice"}):
            r = self.kw.checkin(secret, body=body)
            self.assertEqual(r.status, 422, (body, r))
            self.assertTrue(r.json()["errors"], body)
        for raw in (b"{", b"[]", b"null"):
            r = self.kw.checkin(secret, body=raw)
            self.assertIn(r.status, (400, 422), (raw, r))
        r = self.kw.checkin(secret, body=b"{bad json")
        self.assertEqual(r.status, 400, r)
        self.assertUnchanged(did, state)


class CheckinLimitsTest(kw.ServerTestCase):

    def body_of_size(self, secret_unused, size):
        """A valid check-in body of exactly size bytes (padded "os")."""
        body = {"os": "", "volumes": [volume(new_keys(1))]}
        base = len(json.dumps(body).encode())
        pad = size - base
        assert pad >= 0
        # "os" is at most 255 bytes: pad with white space after the object
        body["os"] = "W" * min(pad, 200)
        text = json.dumps(body)
        text += " " * (size - len(text.encode()))
        assert len(text.encode()) == size
        return text.encode()

    def test_body_at_limit_accepted(self):
        did, secret = self.new_device()
        r = self.kw.checkin(secret, body=self.body_of_size(secret, 65536))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(self.kw.export_rows(did)), 1)

    def test_body_over_limit_413_content_length(self):
        did, secret = self.new_device()
        body = self.body_of_size(secret, 65537)
        r = self.kw.raw_request(
            b"POST /api/v1/checkin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Bearer " + secret.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
            + body)
        self.assertEqual(r[0], 413, r)
        self.assertEqual(self.kw.export_rows(did), [])

    def test_body_over_limit_413_http_client(self):
        did, secret = self.new_device()
        body = self.body_of_size(secret, 100000)
        try:
            r = self.kw.checkin(secret, body=body)
        except (BrokenPipeError, ConnectionResetError) as e:
            self.fail("connection broken instead of a 413: %r" % e)
        self.assertEqual(r.status, 413, r)
        self.assertEqual(self.kw.export_rows(did), [])

    def chunked_request(self, secret, body, size=8192):
        chunks = [body[i:i + size] for i in range(0, len(body), size)]
        return self.kw.request("POST", "/api/v1/checkin", body=iter(chunks),
                               encode_chunked=True,
                               headers={"Authorization": "Bearer " + secret,
                                        "Content-Type": "application/json",
                                        "Transfer-Encoding": "chunked"})

    def test_body_over_limit_413_chunked(self):
        did, secret = self.new_device()
        body = self.body_of_size(secret, 70000)
        try:
            r = self.chunked_request(secret, body)
        except (ConnectionError, http.client.HTTPException) as e:
            self.fail("connection closed instead of a 413: %r" % e)
        self.assertEqual(r.status, 413, r)
        self.assertEqual(self.kw.export_rows(did), [])

    def test_body_over_limit_chunked_not_accepted(self):
        # whatever the answer, an oversized chunked body stores nothing
        did, secret = self.new_device()
        body = self.body_of_size(secret, 70000)
        try:
            r = self.chunked_request(secret, body)
            self.assertNotEqual(r.status, 200, r)
        except (ConnectionError, http.client.HTTPException):
            pass
        self.assertEqual(self.kw.export_rows(did), [])
        self.assertTrue(self.kw.running())

    def test_chunked_body_within_limit_accepted(self):
        did, secret = self.new_device()
        body = self.body_of_size(secret, 65536)
        r = self.chunked_request(secret, body, 1000)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(self.kw.export_rows(did)), 1)

    def test_register_body_limit(self):
        token = self.kw.enroll_token()
        body = json.dumps({"enrollment_token": token, "name": "PC-BIG"}) + " " * 70000
        r = self.kw.request("POST", "/api/v1/register", body=body,
                            headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 413, r)

    def test_64_volumes_accepted_65_refused(self):
        did, secret = self.new_device()
        vols = [volume(new_keys(1), mount="V%d:" % i, vtype="fixed") for i in range(65)]
        r = self.kw.checkin(secret, volumes=vols)
        self.assertEqual(r.status, 422, r)
        self.assertIn("volumes", [e["field"] for e in r.json()["errors"]])
        self.assertEqual(self.kw.export_rows(did), [])
        self.assertCheckin(secret, volumes=vols[:64])
        self.assertEqual(len(self.kw.export_rows(did)), 64)

    def test_16_keys_accepted_17_refused(self):
        did, secret = self.new_device()
        vid = key_id()
        keys = new_keys(17)
        r = self.kw.checkin(secret, volumes=[volume(keys, vid=vid)])
        self.assertEqual(r.status, 422, r)
        self.assertIn("volumes[0].recovery_keys", [e["field"] for e in r.json()["errors"]])
        self.assertEqual(self.kw.export_rows(did), [])
        self.assertCheckin(secret, volumes=[volume(keys[:16], vid=vid)])
        self.assertEqual(len(self.kw.export_rows(did)), 16)

    def test_256_logons_accepted_257_refused(self):
        did, secret = self.new_device()
        logons = [{"user": "CORP\\user%03d" % i, "type": "local" if i % 2 else "remote",
                   "at": "2026-11-20T08:00:00Z"} for i in range(257)]
        r = self.kw.checkin(secret, volumes=[], logons=logons)
        self.assertEqual(r.status, 422, r)
        self.assertIn("logons", [e["field"] for e in r.json()["errors"]])
        self.assertEqual(logon_lines(self.kw.device_show(did)), set())
        self.assertCheckin(secret, volumes=[], logons=logons[:256])
        self.assertEqual(len(logon_lines(self.kw.device_show(did))), 256)


@unittest.skipUnless(kw.IS_SQLITE, "marks a key disclosed through the SQLite file")
class RotateTest(kw.ServerTestCase):
    """rotate (SPEC §5): a disclosed key still on the device is listed until
    the device reports its volume without it. The disclosure is simulated by
    setting the row's state in the database (the portals do it for real)."""

    def disclose(self, kid):
        import sqlite3
        import time
        db = sqlite3.connect(self.kw.sqlite_path, timeout=30)
        with db:
            n = db.execute("UPDATE recovery_keys SET state = 2, disclosed_at = ?, "
                           "changed_at = ? WHERE key_hex = ?",
                           (int(time.time()), int(time.time()),
                            kid.replace("-", ""))).rowcount
        db.close()
        self.assertEqual(n, 1)

    def test_rotate_until_reported_without_it(self):
        did, secret = self.new_device()
        v1, v2 = key_id(), key_id()
        (k1, p1), (k2, p2), (k3, p3) = new_keys(3)
        vols = [volume([(k1, p1), (k2, p2)], vid=v1), volume([(k3, p3)], vid=v2, mount="D:")]
        self.assertCheckin(secret, volumes=vols)
        self.disclose(k1)
        rows = {r["key_id"]: r for r in self.kw.export_rows(did)}
        self.assertEqual(rows[k1]["state"], "disclosed")
        self.assertTrue(rows[k1]["disclosed_at"])
        # still on the device: rotate it (the same report, or one without v1)
        r = self.assertCheckin(secret, volumes=vols)
        self.assertEqual(r.json(), {"rotate": [k1], "checkin_interval": 5400})
        r = self.assertCheckin(secret, volumes=vols[1:])
        self.assertEqual(r.json()["rotate"], [k1])
        # the device rotated: v1 now has a new key instead of k1
        k4 = new_keys(1)[0]
        r = self.assertCheckin(secret, volumes=[volume([(k2, p2), k4], vid=v1), vols[1]])
        self.assertEqual(r.json(), {"rotate": [], "checkin_interval": 5400})
        rows = {r["key_id"]: r for r in self.kw.export_rows(did)}
        self.assertEqual(rows[k1]["state"], "superseded")
        self.assertEqual(rows[k1]["recovery_password"], p1)
        self.assertTrue(rows[k1]["disclosed_at"])
        self.assertEqual(rows[k4[0]]["state"], "active")
        self.assertEqual(rows[k2]["state"], "active")


if __name__ == "__main__":
    unittest.main()
