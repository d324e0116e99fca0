"""POST /api/v1/register and enrollment tokens (SPEC §5, §9)."""

import re
import threading
import time
import unittest

import kw

SECRET_RE = re.compile(r"^(?:[a-z]{2,8}_)?([A-Za-z0-9_-]+)$")


def token_ids(k):
    """{id: state} from `enroll list`."""
    rc, out, err = k.cli("enroll", "list")
    assert rc == 0, err
    ids = {}
    for line in out.splitlines()[1:]:
        parts = line.split()
        if parts and parts[0].isdigit():
            ids[int(parts[0])] = line
    return ids


class RegisterTest(kw.ServerTestCase):

    def register_raw(self, body, **kwargs):
        return self.kw.request("POST", "/api/v1/register", json=body, **kwargs)

    def newest_token_id(self):
        return max(token_ids(self.kw))

    def test_register_returns_device_id_and_secret(self):
        token = self.kw.enroll_token()
        r = self.register_raw({"enrollment_token": token, "name": "PC-0042",
                               "domain": "CORP", "os": "Windows 11 Pro 23H2"})
        self.assertEqual(r.status, 201, r)
        self.assertRegex(r.header("Content-Type"), r"^application/json\b")
        d = r.json()
        self.assertIsInstance(d.get("device_id"), str)
        self.assertTrue(d["device_id"])
        secret = d.get("device_secret")
        self.assertIsInstance(secret, str)
        m = SECRET_RE.match(secret)
        self.assertTrue(m, "secret %r is not [prefix_]base64url" % secret)
        # >= 256 bits: 43 base64url characters after the prefix
        self.assertGreaterEqual(len(m.group(1)), 43, secret)
        # the device exists and the secret works
        out = self.kw.device_show(d["device_id"])
        self.assertIn("PC-0042", out)
        self.assertIn("CORP", out)
        r2 = self.kw.checkin(secret, volumes=[])
        self.assertEqual(r2.status, 200, r2)

    def test_secrets_and_ids_are_unique(self):
        token = self.kw.enroll_token()
        seen_ids, seen_secrets = set(), set()
        for i in range(5):
            did, secret = self.kw.register(name="PC-U%d" % i, token=token)
            seen_ids.add(did)
            seen_secrets.add(secret)
        self.assertEqual(len(seen_ids), 5)
        self.assertEqual(len(seen_secrets), 5)

    def test_device_list_shows_registered_device(self):
        did, _ = self.kw.register(name="PC-LISTED-1")
        rc, out, err = self.kw.cli("device", "list")
        self.assertEqual(rc, 0, err)
        self.assertIn(did, out)
        self.assertIn("PC-LISTED-1", out)

    def test_bad_token_401(self):
        for token in ("kwe_" + "A" * 43, "nonsense", "x"):
            r = self.register_raw({"enrollment_token": token, "name": "PC-BAD"})
            self.assertEqual(r.status, 401, (token, r))
            self.assertIn("error", r.json())

    def test_bad_token_does_not_register(self):
        self.register_raw({"enrollment_token": "kwe_" + "B" * 43, "name": "PC-NEVER-1"})
        rc, out, err = self.kw.cli("device", "list")
        self.assertEqual(rc, 0, err)
        self.assertNotIn("PC-NEVER-1", out)

    def test_revoked_token_401(self):
        token = self.kw.enroll_token()
        tid = self.newest_token_id()
        # works before revocation
        self.kw.register(token=token)
        rc, out, err = self.kw.cli("enroll", "revoke", str(tid))
        self.assertEqual(rc, 0, err)
        r = self.register_raw({"enrollment_token": token, "name": "PC-REVOKED"})
        self.assertEqual(r.status, 401, r)
        self.assertIn("revoked", token_ids(self.kw)[tid])

    def test_expired_token_401(self):
        token = self.kw.enroll_token("--expires", "1s")
        tid = self.newest_token_id()
        time.sleep(2.1)
        r = self.register_raw({"enrollment_token": token, "name": "PC-EXPIRED"})
        self.assertEqual(r.status, 401, r)
        self.assertIn("expired", token_ids(self.kw)[tid])

    def test_unexpired_short_token_works(self):
        token = self.kw.enroll_token("--expires", "1h")
        r = self.register_raw({"enrollment_token": token, "name": "PC-FRESH"})
        self.assertEqual(r.status, 201, r)

    def test_single_use_token(self):
        token = self.kw.enroll_token("--uses", "1")
        tid = self.newest_token_id()
        r = self.register_raw({"enrollment_token": token, "name": "PC-ONCE-1"})
        self.assertEqual(r.status, 201, r)
        r = self.register_raw({"enrollment_token": token, "name": "PC-ONCE-2"})
        self.assertEqual(r.status, 401, r)
        line = token_ids(self.kw)[tid]
        self.assertIn("used up", line)

    def test_two_use_token(self):
        token = self.kw.enroll_token("--uses", "2")
        for i in range(2):
            r = self.register_raw({"enrollment_token": token, "name": "PC-TWICE-%d" % i})
            self.assertEqual(r.status, 201, r)
        r = self.register_raw({"enrollment_token": token, "name": "PC-TWICE-3"})
        self.assertEqual(r.status, 401, r)

    def test_use_count_holds_under_parallel_registrations(self):
        token = self.kw.enroll_token("--uses", "3")
        tid = self.newest_token_id()
        results = []

        def work(i):
            results.append(self.register_raw({"enrollment_token": token,
                                              "name": "PC-RACE-%d" % i}).status)
        threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(sorted(results), [201] * 3 + [401] * 9)
        self.assertIn("used up", token_ids(self.kw)[tid])

    def test_failed_validation_does_not_use_up_token(self):
        token = self.kw.enroll_token("--uses", "1")
        r = self.register_raw({"enrollment_token": token, "name": ""})
        self.assertEqual(r.status, 422, r)
        r = self.register_raw({"enrollment_token": token, "name": "PC-AFTER-422"})
        self.assertEqual(r.status, 201, r)

    def assertFieldError(self, r, field):
        self.assertEqual(r.status, 422, r)
        self.assertRegex(r.header("Content-Type"), r"^application/json\b")
        d = r.json()
        self.assertIsInstance(d.get("errors"), list, d)
        fields = [e.get("field") for e in d["errors"]]
        self.assertIn(field, fields, d)
        for e in d["errors"]:
            self.assertIsInstance(e.get("message"), str)
            self.assertTrue(e["message"])

    def test_missing_name_422(self):
        token = self.kw.enroll_token()
        self.assertFieldError(self.register_raw({"enrollment_token": token}), "name")

    def test_empty_name_422(self):
        token = self.kw.enroll_token()
        self.assertFieldError(self.register_raw({"enrollment_token": token, "name": ""}),
                              "name")

    def test_non_string_name_422(self):
        token = self.kw.enroll_token()
        self.assertFieldError(self.register_raw({"enrollment_token": token, "name": 42}),
                              "name")

    def test_name_with_control_characters_422(self):
        token = self.kw.enroll_token()
        self.assertFieldError(
            self.register_raw({"enrollment_token": token, "name": "PC\n-1"}), "name")

    def test_invalid_json_400(self):
        for body in (b"{not json", b"", b'{"enrollment_token": "x", "name": "PC"',
                     b"\xff\xfe"):
            r = self.kw.request("POST", "/api/v1/register", body=body,
                                headers={"Content-Type": "application/json"})
            self.assertEqual(r.status, 400, (body, r))
            self.assertIn("error", r.json())

    def test_json_not_an_object_400(self):
        r = self.kw.request("POST", "/api/v1/register", body=b"[1, 2]",
                            headers={"Content-Type": "application/json"})
        self.assertEqual(r.status, 400, r)


class EnrollCliTest(kw.ServerTestCase):

    def test_create_prints_token_alone(self):
        rc, out, err = self.kw.cli("enroll", "create")
        self.assertEqual(rc, 0, err)
        self.assertTrue(out.endswith("\n"))
        lines = out.splitlines()
        self.assertEqual(len(lines), 1, out)
        self.assertRegex(lines[0], r"^\S{20,}$")
        # that line is the token: it registers a device
        did, _ = self.kw.register(token=lines[0])
        self.assertTrue(did)

    def test_create_makes_distinct_tokens(self):
        a = self.kw.enroll_token()
        b = self.kw.enroll_token()
        self.assertNotEqual(a, b)

    def test_list_shows_token_but_not_its_text(self):
        before = token_ids(self.kw)
        token = self.kw.enroll_token("--uses", "3", "--expires", "2h")
        rc, out, err = self.kw.cli("enroll", "list")
        self.assertEqual(rc, 0, err)
        after = token_ids(self.kw)
        new = set(after) - set(before)
        self.assertEqual(len(new), 1, out)
        line = after[new.pop()]
        self.assertIn("valid", line)
        self.assertRegex(line, r"\b3\b")
        self.assertNotIn(token, out)
        self.assertNotIn(token[4:], out)

    def test_revoke_unknown_id_fails(self):
        rc, out, err = self.kw.cli("enroll", "revoke", "999999")
        self.assertNotEqual(rc, 0)
        self.assertTrue(err.strip())

    def test_bad_expires_fails(self):
        rc, out, err = self.kw.cli("enroll", "create", "--expires", "soon")
        self.assertNotEqual(rc, 0)
        self.assertIn("soon", err)
        self.assertEqual(out, "")

    def test_bad_uses_fails(self):
        for v in ("0", "-1", "many"):
            rc, out, err = self.kw.cli("enroll", "create", "--uses", v)
            self.assertNotEqual(rc, 0, v)
            self.assertEqual(out, "", v)


if __name__ == "__main__":
    unittest.main()
