"""keywarden-agent for Linux on real LUKS2 headers (image files made by
cryptsetup in a temporary directory) against a real keywarden on
loopback: registration, first escrow, the self-service flow by the key
ID's first 8 characters, rotation after a disclosure, the server down
during a rotation, a full keyslot table, a volume the agent was not given
a passphrase for, and the check-in body's shape (the shared fixture)."""

import fcntl
import json
import os
import re
import shutil
import stat
import tempfile
import signal
import struct
import subprocess
import unittest

import kw
from agent import AGENT, FAST, Agent, Image, cryptsetup, why_unusable

SKIP = why_unusable()
KEY_ID_RE = r"^[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}$"
PASSWORD_RE = r"^\d{6}(-\d{6}){7}$"


def valid_password(pw):
    groups = pw.split("-")
    return len(groups) == 8 and all(len(g) == 6 and int(g) % 11 == 0 and int(g) < 720896
                                    for g in groups)


class AgentCase(kw.PortalTestCase):
    """Helpers: a temporary folder per test, agents, enrolled volumes."""

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="kwagent-")
        if not os.environ.get("KW_KEEP"):
            self.addCleanup(shutil.rmtree, self.tmp, True)

    def agent(self, *images, **kw_args):
        return Agent(self.kw, self.tmp, [i.path for i in images], **kw_args)

    def enrolled(self, passphrase="admin passphrase 1"):
        """A registered agent with one enrolled, escrowed volume:
        (agent, image, device_id, key_id)."""
        img = Image(self.tmp, passphrase)
        a = self.agent(img)
        did, _ = a.register()
        out = a.ok("enroll-volume", img.path, input=passphrase + "\n")
        (kid, slots, escrowed), = img.tokens()
        self.assertIn(kid, out)
        self.assertFalse(escrowed)
        a.ok("checkin")
        self.assertEqual(img.tokens(), [(kid, slots, True)])
        return a, img, did, kid

    def server_keys(self, did):
        return {r["key_id"]: r for r in self.kw.export_rows(did)}



@unittest.skipIf(SKIP, SKIP or "")
class AgentTest(AgentCase):

    # -- register --

    def test_register(self):
        img = Image(self.tmp)
        a = self.agent(img)
        did, out = a.register()
        self.assertIn(did, out)
        st = os.stat(a.state)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o700)
        reg = os.path.join(a.state, "registration")
        self.assertEqual(stat.S_IMODE(os.stat(reg).st_mode), 0o600)
        with open(reg) as f:
            secret = re.search(r"^secret=(.+)$", f.read(), re.M).group(1)
        self.kw.secrets.add(secret)
        self.assertNotIn(secret, out)
        # no overwrite without --force; the registration is unchanged
        before = open(reg).read()
        rc, out, err = a.run("register", input=self.kw.enroll_token() + "\n")
        self.assertEqual(rc, 1)
        self.assertIn("already registered as %s" % did, err)
        self.assertEqual(open(reg).read(), before)
        # a bad token: a clear line, nothing changed
        rc, out, err = a.run("register", "--force", input="not-a-token\n")
        self.assertEqual(rc, 1)
        self.assertIn("refused the enrollment token", err)
        self.assertEqual(len(err.strip().splitlines()), 1)
        self.assertEqual(open(reg).read(), before)
        a.ok("register", "--force", input=self.kw.enroll_token() + "\n")
        self.assertNotEqual(open(reg).read(), before)
        # a revoked device: one clear line
        did = re.search(r"^device_id=(.+)$", open(reg).read(), re.M).group(1)
        rc, out, err = self.kw.cli("device", "revoke", did)
        self.assertEqual(rc, 0, err)
        rc, out, err = a.run("checkin")
        self.assertEqual(rc, 1)
        self.assertEqual(err.strip().splitlines()[-1], "keywarden-agent: error: the server "
                         "refused the check-in (401): the device secret is unknown or revoked")
        self.assertIn("outcome=failed: the server refused the check-in (401)",
                      open(os.path.join(a.state, "last-checkin")).read())
        # plain http to anything but loopback is refused before sending
        a.settings["agent"]["server"] = "http://192.0.2.1:1"
        a.write()
        rc, out, err = a.run("checkin")
        self.assertEqual(rc, 1)
        self.assertIn("plain http:// is allowed only to a loopback address", err)

    def test_url_with_user_part_refused(self):
        """The loopback check reads the host the way libcurl does: a user
        part ("localhost:80@", "[::1]@") does not make a host loopback."""
        img = Image(self.tmp)
        a = self.agent(img)
        for url in ("http://localhost:80@example.invalid/", "http://[::1]@evil/",
                    "http://127.0.0.1@192.0.2.1:%d" % self.kw.port,
                    "https://user:pw@example.invalid/", "http://localhost.example.invalid/",
                    "http://127.0.0.1:%d#@example.invalid" % self.kw.port):
            a.settings["agent"]["server"] = url
            a.write()
            rc, out, err = a.run("register", input=self.kw.enroll_token() + "\n")
            self.assertEqual(rc, 1, url)
            self.assertRegex(err, r"must not hold a user name or password|plain http:// is "
                             r"allowed only to a loopback address|must not hold a query", url)
            self.assertFalse(os.path.exists(os.path.join(a.state, "registration")), url)
        # loopback spelled in each accepted way still works
        for url in ("http://localhost:%d" % self.kw.port, "http://127.0.0.1:%d/" % self.kw.port):
            a.settings["agent"]["server"] = url
            a.write()
            a.ok("register", "--force", input=self.kw.enroll_token() + "\n")
        # a proxy from the environment is not used: a dead one changes nothing
        dead = kw.free_port()
        env = dict(os.environ, http_proxy="http://127.0.0.1:%d" % dead,
                   HTTP_PROXY="http://127.0.0.1:%d" % dead, no_proxy="", NO_PROXY="")
        p = subprocess.run([AGENT, "--config", a.conf, "register", "--force"],
                           input=self.kw.enroll_token() + "\n", capture_output=True, text=True,
                           timeout=120, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_same_volume_twice_reported_once(self):
        """Two devices with the same LUKS header (a loop device over an
        image, a clone; here the same path twice): reported once with a
        warning, escrowed, not refused by the server as a whole."""
        img = Image(self.tmp)
        a = self.agent(img, img)
        did, _ = a.register()
        a.ok("enroll-volume", img.path, input=img.passphrase + "\n")
        rc, out, err = a.run("checkin")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("LUKS UUID %s already seen on another device; reported once"
                      % img.uuid, err)
        (kid, _, escrowed), = img.tokens()
        self.kw.secrets.add(a.password(kid))
        self.assertTrue(escrowed)
        self.assertEqual(list(self.server_keys(did)), [kid])

    def test_register_answer_with_control_characters_refused(self):
        """A device secret or ID with a line end (it would add lines to the
        registration file and the Authorization header) is not stored."""
        img = Image(self.tmp)
        a = self.agent(img)
        for did, secret in (("D1", "abc\nserver=http://evil"), ("D1\r\nX: y", "abc"),
                            ("D1", "a b")):
            body = json.dumps({"device_id": did, "device_secret": secret}).encode()
            answer = (b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)) + body
            port = kw.free_port()
            fake = ForeignAnswerProxy(self.kw.port, port, answer, forward_first=False)
            a.settings["agent"]["server"] = "http://127.0.0.1:%d" % port
            a.write()
            try:
                rc, out, err = a.run("register", "--force", input="token\n")
            finally:
                fake.close()
            self.assertEqual(fake.requests, 1)
            self.assertEqual(rc, 1, out + err)
            self.assertIn("control characters or spaces; nothing stored", err)
            self.assertFalse(os.path.exists(os.path.join(a.state, "registration")))

    # -- first escrow --

    def test_first_escrow_and_self_service(self):
        a, img, did, kid = self.enrolled()
        self.assertRegex(kid, KEY_ID_RE)
        pw = a.password(kid)
        self.kw.secrets.add(pw)
        self.assertRegex(pw, PASSWORD_RE)
        self.assertTrue(valid_password(pw))
        # the slot opens the volume with the recovery password; the
        # administrator's passphrase still works
        (_, [slot], _), = img.tokens()
        self.assertTrue(img.opens(pw, slot))
        self.assertTrue(img.opens(img.passphrase))
        # the same check-in again changes nothing
        a.ok("checkin")
        self.assertEqual(img.tokens(), [(kid, [slot], True)])
        keys = self.server_keys(did)
        self.assertEqual(list(keys), [kid])
        self.assertEqual(keys[kid]["recovery_password"], pw)
        self.assertEqual(keys[kid]["volume_id"], img.uuid)
        self.assertEqual(keys[kid]["state"], "active")
        # a user of this machine finds it by the key ID's first 8 characters
        b = self.signed_in()
        self.kw.assoc(b.user, did)
        r = b.recover(kid[:8])
        self.assertKeyShown(r, pw, "LNX-TEST", kid)
        # the password file is 0600; status tells the state
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(a.state, "keys", kid)).st_mode),
                         0o600)
        out = a.ok("status")
        self.assertIn("recovery key %s in keyslot %d: escrowed" % (kid, slot), out)
        self.assertIn("last check-in:", out)
        self.assertNotIn(pw, out)

    # -- rotation --

    def test_rotation_after_disclosure(self):
        a, img, did, kid = self.enrolled()
        old_pw = a.password(kid)
        self.kw.secrets.add(old_pw)
        (_, [old_slot], _), = img.tokens()
        b = self.signed_in()
        self.kw.assoc(b.user, did)
        self.assertKeyShown(b.recover(kid[:8]), old_pw, "LNX-TEST", kid)
        rc, out, err = a.run("checkin")
        self.assertEqual(rc, 0, err)
        self.assertIn("disclosed recovery key %s removed" % kid, out)
        (new, [new_slot], escrowed), = img.tokens()
        new_pw = a.password(new)
        for text in (out, err):
            self.assertNotIn(new_pw, text)
            self.assertNotIn(old_pw, text)
        self.kw.secrets.add(new_pw)
        self.assertNotEqual(new, kid)
        self.assertTrue(escrowed)
        self.assertTrue(img.opens(new_pw, new_slot))
        self.assertFalse(img.opens(old_pw))
        self.assertNotIn(old_slot, img.slots()) if old_slot != new_slot else None
        self.assertTrue(img.opens(img.passphrase))
        self.assertFalse(os.path.exists(os.path.join(a.state, "keys", kid)))
        keys = self.server_keys(did)
        self.assertEqual(keys[new]["state"], "active")
        self.assertEqual(keys[new]["recovery_password"], new_pw)
        self.assertEqual(keys[kid]["state"], "superseded")
        # the server asks for nothing more
        r = self.kw.checkin(self.secret_of(a), volumes=[])
        self.assertEqual(r.json()["rotate"], [])
        self.assertKeyShown(b.recover(new[:8]), new_pw, "LNX-TEST", new)

    def secret_of(self, a):
        with open(os.path.join(a.state, "registration")) as f:
            secret = re.search(r"^secret=(.+)$", f.read(), re.M).group(1)
        self.kw.secrets.add(secret)
        return secret

    def test_server_down_during_rotation(self):
        a, img, did, kid = self.enrolled()
        old_pw = a.password(kid)
        self.kw.secrets.add(old_pw)
        b = self.signed_in()
        self.kw.assoc(b.user, did)
        self.assertKeyShown(b.recover(kid[:8]), old_pw, "LNX-TEST", kid)
        # the first check-in of the rotation reaches the server; the next
        # (the escrow of the new key) reaches a port where no one listens
        port = kw.free_port()
        proxy = OneShotProxy(self.kw.port, port)
        a.settings["agent"]["server"] = "http://127.0.0.1:%d" % port
        a.write()
        try:
            rc, out, err = a.run("checkin")
        finally:
            proxy.close()
        self.assertEqual(rc, 1, out + err)
        self.assertIn("cannot reach", err)
        toks = {t[0]: t for t in img.tokens()}
        self.assertEqual(set(toks), {kid, next(k for k in toks if k != kid)})
        new = next(k for k in toks if k != kid)
        self.assertTrue(toks[kid][2])          # the old one: escrowed, still there
        self.assertFalse(toks[new][2])         # the new one: not escrowed yet
        self.assertTrue(img.opens(old_pw, toks[kid][1][0]))
        self.kw.secrets.add(a.password(new))
        self.assertNotIn(new, self.server_keys(did))
        # the next run completes it
        a.settings["agent"]["server"] = "http://127.0.0.1:%d" % self.kw.port
        a.write()
        a.ok("checkin")
        (only, [slot], escrowed), = img.tokens()
        self.assertEqual((only, escrowed), (new, True))
        self.assertTrue(img.opens(a.password(new), slot))
        self.assertFalse(img.opens(old_pw))
        keys = self.server_keys(did)
        self.assertEqual(keys[new]["state"], "active")
        self.assertEqual(keys[kid]["state"], "superseded")

    def test_foreign_answer_during_rotation(self):
        """A 200 that is not the server's answer (a proxy's "ok"), or a 204,
        acknowledges nothing: the new key stays unescrowed, the old slot
        stays."""
        for answer in (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                       b"Content-Length: 2\r\nConnection: close\r\n\r\nok",
                       b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
                       b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 13\r\nConnection: close\r\n\r\n{\"rotate\": []}"):
            with self.subTest(answer=answer[:40]):
                self.tmp = tempfile.mkdtemp(prefix="kwagent-", dir=self.tmp)
                a, img, did, kid = self.enrolled()
                old_pw = a.password(kid)
                self.kw.secrets.add(old_pw)
                b = self.signed_in()
                self.kw.assoc(b.user, did)
                self.assertKeyShown(b.recover(kid[:8]), old_pw, "LNX-TEST", kid)
                port = kw.free_port()
                proxy = ForeignAnswerProxy(self.kw.port, port, answer)
                a.settings["agent"]["server"] = "http://127.0.0.1:%d" % port
                a.write()
                try:
                    rc, out, err = a.run("checkin")
                finally:
                    proxy.close()
                self.assertEqual(rc, 1, out + err)
                self.assertGreaterEqual(proxy.requests, 1)
                self.assertIn("is not the server's acknowledgement", err)
                toks = {t[0]: t for t in img.tokens()}
                self.assertEqual(len(toks), 2)
                new = next(k for k in toks if k != kid)
                self.kw.secrets.add(a.password(new))
                self.assertTrue(toks[kid][2])
                self.assertFalse(toks[new][2])     # not escrowed: the server never saw it
                self.assertTrue(img.opens(old_pw, toks[kid][1][0]))
                self.assertNotIn(new, self.server_keys(did))
                # the real server completes it
                a.settings["agent"]["server"] = "http://127.0.0.1:%d" % self.kw.port
                a.write()
                a.ok("checkin")
                (only, _, escrowed), = img.tokens()
                self.assertEqual((only, escrowed), (new, True))
                self.assertEqual(self.server_keys(did)[new]["state"], "active")

    def test_full_keyslot_table(self):
        a, img, did, kid = self.enrolled()
        pw = a.password(kid)
        self.kw.secrets.add(pw)
        for i in range(len(img.slots()), 32):
            img.add_passphrase("filler %d" % i)
        self.assertEqual(len(img.slots()), 32)
        before = img.dump()
        b = self.signed_in()
        self.kw.assoc(b.user, did)
        self.assertKeyShown(b.recover(kid[:8]), pw, "LNX-TEST", kid)
        rc, out, err = a.run("checkin")
        self.assertEqual(rc, 1)
        self.assertIn("the keyslot table is full", err)
        self.assertIn("could not be rotated; it stays", err)
        self.assertEqual(img.dump(), before)
        self.assertTrue(img.opens(pw))
        self.assertEqual(sorted(os.listdir(os.path.join(a.state, "keys"))), [kid])
        self.assertEqual(self.server_keys(did)[kid]["state"], "disclosed")

    def test_volume_without_passphrase(self):
        img = Image(self.tmp, "someone else's passphrase")
        before = img.dump()
        a = self.agent(img)
        did, _ = a.register()
        rc, out, err = a.run("checkin")
        self.assertEqual(rc, 1)
        self.assertIn("without a keywarden recovery key", err)
        self.assertIn(img.uuid, err)
        self.assertEqual(img.dump(), before)
        # reported all the same: the volume, protected, with no key
        show = self.kw.device_show(did)
        self.assertIn(img.uuid, show)
        # a wrong passphrase: a clear error, nothing changed
        rc, out, err = a.run("enroll-volume", img.path, input="wrong\n")
        self.assertEqual(rc, 1)
        self.assertIn("opens no keyslot; nothing changed", err)
        self.assertEqual(img.dump(), before)
        self.assertEqual(os.listdir(os.path.join(a.state, "keys")), [])


@unittest.skipIf(SKIP, SKIP or "")
class AgentRepairTest(AgentCase):
    """What a run killed between two steps leaves behind (made here with
    cryptsetup), and the next run converging."""

    def test_interrupted_runs_converge(self):
        a, img, did, kid = self.enrolled()
        kept_pw = a.password(kid)
        self.kw.secrets.add(kept_pw)
        # killed after the new slot was added, before its token: the
        # password file names the slot, which opens with it
        new, new_pw, new_slot = "0D4E5F60-7A8B-4C9D-8E0F-112233445566", \
            "111111-222222-333333-444444-555555-666666-000011-000022", 5
        self.assertTrue(all(int(g) % 11 == 0 for g in new_pw.split("-")))
        self.kw.secrets.add(new_pw)
        with open(os.path.join(a.state, "keys", new), "w") as f:
            f.write("password=%s\nslot=%d\nvolume=%s\n" % (new_pw, new_slot, img.uuid))
        os.chmod(os.path.join(a.state, "keys", new), 0o600)
        cryptsetup("luksAddKey", "--batch-mode", *FAST, "--key-slot", str(new_slot),
                   img.path, input="%s\n%s\n" % (img.passphrase, new_pw))
        # killed after a slot and its token were added, before the
        # password file was kept (it cannot be: this is the lost case: the
        # slot is not proven to be the agent's, so only the token goes), and
        # a token whose slot was killed before the token was removed
        cryptsetup("luksAddKey", "--batch-mode", *FAST, "--key-slot", "7", img.path,
                   input="%s\nlost password\n" % img.passphrase)
        lost = "7A7A7A7A-0000-4000-8000-000000000007"
        token_import(img, {"type": "keywarden-recovery", "keyslots": ["7"], "key_id": lost,
                           "escrowed": False})
        cryptsetup("luksAddKey", "--batch-mode", *FAST, "--key-slot", "9", img.path,
                   input="%s\nkilled slot\n" % img.passphrase)
        gone = "9B9B9B9B-0000-4000-8000-000000000009"
        token_import(img, {"type": "keywarden-recovery", "keyslots": ["9"], "key_id": gone,
                           "escrowed": True})
        cryptsetup("luksKillSlot", "--batch-mode", img.path, "9", input=img.passphrase)
        # killed after the password file was written, before the slot
        stale = "5C5C5C5C-0000-4000-8000-00000000000C"
        with open(os.path.join(a.state, "keys", stale), "w") as f:
            f.write("password=%s\nslot=12\nvolume=%s\n" % (new_pw, img.uuid))
        os.chmod(os.path.join(a.state, "keys", stale), 0o600)
        a.ok("checkin")
        toks = {t[0]: t for t in img.tokens()}
        self.assertEqual(set(toks), {kid, new})
        self.assertEqual(toks[new][1:], ([new_slot], True))
        self.assertTrue(toks[kid][2])
        self.assertIn(7, img.slots())             # not proven the agent's: kept
        self.assertTrue(img.opens("lost password", 7))
        self.assertNotIn(9, img.slots())
        self.assertTrue(img.opens(img.passphrase))
        self.assertTrue(img.opens(kept_pw))
        self.assertTrue(img.opens(new_pw, new_slot))
        self.assertEqual(sorted(os.listdir(os.path.join(a.state, "keys"))), sorted([kid, new]))
        keys = self.server_keys(did)
        self.assertEqual(keys[new]["state"], "active")
        self.assertEqual(keys[new]["recovery_password"], new_pw)
        self.assertEqual(keys[kid]["state"], "active")
        self.assertNotIn(lost, keys)
        # and a run with nothing to do changes nothing
        before = img.dump()
        a.ok("checkin")
        self.assertEqual(img.dump(), before)

    def write_key_file(self, a, key_id, password, slot, uuid):
        path = os.path.join(a.state, "keys", key_id)
        with open(path, "w") as f:
            f.write("password=%s\nslot=%d\nvolume=%s\n" % (password, slot, uuid))
        os.chmod(path, 0o600)

    def test_repair_keeps_a_slot_its_password_does_not_open(self):
        """An unescrowed token whose password does not open its slot (the
        slot is someone else's now): the token and file go, the slot stays."""
        img = Image(self.tmp)
        a = self.agent(img)
        a.register()
        cryptsetup("luksAddKey", "--batch-mode", *FAST, "--key-slot", "3", img.path,
                   input="%s\nsecond admin\n" % img.passphrase)
        kid = "3C3C3C3C-0000-4000-8000-000000000003"
        pw = "111111-222222-333333-444444-555555-666666-000011-000033"
        self.kw.secrets.add(pw)
        token_import(img, {"type": "keywarden-recovery", "keyslots": ["3"], "key_id": kid,
                           "escrowed": False})
        self.write_key_file(a, kid, pw, 3, img.uuid)
        rc, out, err = a.run("checkin")
        self.assertEqual(rc, 1, out + err)            # no recovery key: a problem
        self.assertIn(3, img.slots())
        self.assertTrue(img.opens("second admin", 3))
        self.assertTrue(img.opens(img.passphrase, 0))
        self.assertEqual(img.tokens(), [])
        self.assertEqual(os.listdir(os.path.join(a.state, "keys")), [])

    def test_rotation_keeps_a_slot_its_password_does_not_open(self):
        """The disclosed key's token names a slot its password does not
        open (an administrator's): the rotation adds and escrows the new
        key but never kills that slot; the agent lets go of the old key."""
        a, img, did, kid = self.enrolled()
        old_pw = a.password(kid)
        self.kw.secrets.add(old_pw)
        (_, [old_slot], _), = img.tokens()
        cryptsetup("luksAddKey", "--batch-mode", *FAST, "--key-slot", "6", img.path,
                   input="%s\nsecond admin\n" % img.passphrase)
        tid = next(t for t, v in img.dump()["tokens"].items() if v.get("key_id") == kid)
        cryptsetup("token", "remove", "--token-id", str(tid), img.path)
        token_import(img, {"type": "keywarden-recovery", "keyslots": ["6"], "key_id": kid,
                           "escrowed": True})
        self.write_key_file(a, kid, old_pw, 6, img.uuid)
        b = self.signed_in()
        self.kw.assoc(b.user, did)
        self.assertKeyShown(b.recover(kid[:8]), old_pw, "LNX-TEST", kid)
        rc, out, err = a.run("checkin")
        self.assertIn("keyslot 6 does not open with the password of key %s: not proven "
                      "the agent's, so kept" % kid, err)
        self.assertIn(6, img.slots())
        self.assertTrue(img.opens("second admin", 6))
        self.assertTrue(img.opens(old_pw, old_slot))
        (new, [new_slot], escrowed), = img.tokens()
        self.assertNotEqual(new, kid)
        self.kw.secrets.add(a.password(new))
        self.assertTrue(escrowed)
        self.assertTrue(img.opens(a.password(new), new_slot))
        self.assertEqual(os.listdir(os.path.join(a.state, "keys")), [new])
        self.assertEqual(rc, 0, out + err)
        keys = self.server_keys(did)
        self.assertEqual(keys[new]["state"], "active")
        self.assertEqual(keys[kid]["state"], "superseded")

    def test_only_sent_keys_marked_escrowed(self):
        """More working recovery keys than a check-in holds (16): only the
        ones sent are marked escrowed."""
        import random
        img = Image(self.tmp)
        a = self.agent(img)
        a.register()
        rng = random.Random(13)
        made = {}
        for slot in range(1, 18):
            pw = "-".join("%06d" % (11 * rng.randrange(65536)) for _ in range(8))
            kid = "%08X-0000-4000-8000-%012X" % (0x17170000 + slot, slot)
            self.kw.secrets.add(pw)
            self.write_key_file(a, kid, pw, slot, img.uuid)
            cryptsetup("luksAddKey", "--batch-mode", *FAST, "--key-slot", str(slot), img.path,
                       input="%s\n%s\n" % (img.passphrase, pw))
            made[kid] = pw
        rc, out, err = a.run("checkin")
        toks = img.tokens()
        self.assertEqual(len(toks), 17)            # the repair gave each slot its token
        escrowed = {k for k, _, e in toks if e}
        self.assertEqual(len(escrowed), 16)
        self.assertEqual(escrowed, set(self.server_keys(self.device_of(a))))
        self.assertEqual(rc, 1, out + err)
        self.assertIn("1 recovery keys beyond the 16 a check-in holds were not sent", err)

    def device_of(self, a):
        with open(os.path.join(a.state, "registration")) as f:
            return re.search(r"^device_id=(.+)$", f.read(), re.M).group(1)

    def test_daemon_and_lock(self):
        img = Image(self.tmp)
        a = self.agent(img)
        a.register()
        a.ok("enroll-volume", img.path, input=img.passphrase + "\n")
        # another run holds the lock: a clear error, nothing changed
        before = img.dump()
        with open(os.path.join(a.state, "lock"), "w") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            rc, out, err = a.run("checkin")
        self.assertEqual(rc, 1)
        self.assertIn("another keywarden-agent run holds", err)
        self.assertEqual(img.dump(), before)
        # --daemon checks in at once, then sleeps until SIGTERM ends it
        p = subprocess.Popen([AGENT, "--config", a.conf, "checkin", "--daemon"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            last = os.path.join(a.state, "last-checkin")
            self.assertTrue(kw.wait_for(
                lambda: os.path.exists(last) and "outcome=ok:" in open(last).read(),
                timeout=120))
            self.assertTrue(img.tokens()[0][2])
            p.send_signal(signal.SIGTERM)
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 0, err)
        self.assertIn("escrowed", out)
        self.assertIn("next in 5400s", out)

    def test_auto_finds_a_block_device(self):
        """volumes = auto: LUKS devices in /proc/partitions (here an image
        file on a loop device; skipped where none can be attached)."""
        img = Image(self.tmp)
        p = subprocess.run(["losetup", "-f", "--show", img.path], capture_output=True,
                           text=True, timeout=60)
        if p.returncode != 0:
            self.skipTest("no loop device: %s" % p.stderr.strip())
        dev = p.stdout.strip()
        self.addCleanup(subprocess.run, ["losetup", "-d", dev], timeout=60)
        a = Agent(self.kw, self.tmp, ["auto"])
        self.assertIn("volume %s: LUKS2 %s" % (dev, img.uuid), a.ok("status"))
        did, _ = a.register()
        a.ok("enroll-volume", dev, input=img.passphrase + "\n")
        a.run("checkin")     # other LUKS devices of the host may be reported too
        (kid, [slot], escrowed), = img.tokens()
        self.assertTrue(escrowed)
        keys = self.server_keys(did)
        self.assertEqual(keys[kid]["volume_id"], img.uuid)
        self.assertIn("volume %s - type=fixed protection=on encryption=aes_xts_plain64 100%%"
                      % img.uuid, self.kw.device_show(did))

    def test_logons_from_wtmp(self):
        img = Image(self.tmp)
        a = self.agent(img)
        did, _ = a.register()
        a.ok("enroll-volume", img.path, input=img.passphrase + "\n")
        with open(a.settings["agent"]["logons_file"], "wb") as f:
            f.write(utmp_record(7, "tty1", "alice", "", 1763625600))          # console
            f.write(utmp_record(7, "pts/0", "bob", "192.0.2.7", 1763631000))  # SSH
            f.write(utmp_record(7, "tty7", "carol", ":0", 1763632000))        # X seat
            f.write(utmp_record(8, "pts/1", "mallory", "192.0.2.9", 1763633000))  # ended
            f.write(utmp_record(7, "tty1", "alice", "", 1763640000))          # again: the latest
        a.ok("checkin")
        show = self.kw.device_show(did)
        self.assertRegex(show, r"logon alice +local +first 2025-11-20T12:00:00Z")
        self.assertRegex(show, r"logon bob +remote +first 2025-11-20T09:30:00Z")
        self.assertRegex(show, r"logon carol +local ")
        self.assertNotIn("mallory", show)
        self.assertIn("volume %s" % img.uuid, show)


STRACE = shutil.which("strace")
KILLED = (-9, 128 + 9)   # strace dies of the same signal as the program


@unittest.skipIf(SKIP, SKIP or "")
@unittest.skipUnless(STRACE, "needs strace")
class AgentKillTest(AgentCase):
    """A rotation killed (SIGKILL, by strace) at every call of each system
    call that writes a header or a file, makes it durable, or talks to the
    server: the volume always opens with a key the server holds, and the
    next run finishes the rotation."""

    def killed_at(self, a, syscall, n, *args, input=None):
        cmd = [STRACE, "-f", "-qq", "-o", "/dev/null", "-e", "trace=" + syscall,
               "-e", "inject=%s:signal=KILL:when=%d" % (syscall, n),
               AGENT, "--config", a.conf] + list(args or ["checkin"])
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"),
                                                     "detect_leaks=0"]))
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env,
                           input=input)
        return p.returncode, p.stdout, p.stderr

    def test_kill_enroll_volume_at_every_step(self):
        for syscall in ("write", "fsync", "rename"):
            n = 1
            while True:
                tmp = tempfile.mkdtemp(prefix="kwagent-")
                self.addCleanup(shutil.rmtree, tmp, True)
                img = Image(tmp)
                a = Agent(self.kw, tmp, [img.path])
                did, _ = a.register()
                rc, out, err = self.killed_at(a, syscall, n, "enroll-volume", img.path,
                                              input=img.passphrase + "\n")
                what = "enroll-volume killed at %s #%d" % (syscall, n)
                if rc not in KILLED:
                    self.assertEqual(rc, 0, what + ": " + err)
                    self.assertGreater(n, 1, "strace never killed at %s" % syscall)
                    break
                self.assertTrue(img.opens(img.passphrase), what)
                # the administrator runs it again if no key was left, then
                # the check-in escrows it
                rc, out, err = a.run("enroll-volume", img.path, input=img.passphrase + "\n")
                self.assertTrue(rc == 0 or "already enrolled" in err, what + ": " + err)
                a.ok("checkin")
                (kid, [slot], escrowed), = img.tokens()
                self.assertTrue(escrowed, what)
                pw = a.password(kid)
                self.kw.secrets.add(pw)
                self.assertTrue(img.opens(pw, slot), what)
                self.assertEqual(os.listdir(os.path.join(a.state, "keys")), [kid], what)
                self.assertEqual(sorted(img.slots()), sorted([0, slot]), what)
                self.assertEqual(self.server_keys(did)[kid]["recovery_password"], pw, what)
                n += 1
                self.assertLess(n, 100, "strace never let %s run to the end" % syscall)

    def disclosed(self, b):
        """A fresh enrolled volume whose key b has just disclosed."""
        self.tmp = tempfile.mkdtemp(prefix="kwagent-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        a, img, did, kid = self.enrolled()
        self.kw.assoc(b.user, did)
        r = b.recover(kid[:8])
        self.assertEqual(r.status, 200)
        self.kw.secrets.add(a.password(kid))
        return a, img, did, kid

    def test_kill_at_every_step(self):
        b = self.signed_in()
        for syscall in ("write", "fsync", "rename", "unlink", "sendto"):
            n = 1
            while True:
                a, img, did, kid = self.disclosed(b)
                rc, out, err = self.killed_at(a, syscall, n)
                what = "rotation killed at %s #%d" % (syscall, n)
                if rc not in KILLED:
                    self.assertEqual(rc, 0, what + ": " + err)
                    self.assertGreater(n, 1, "strace never killed at %s" % syscall)
                    break
                server = {r["key_id"]: r["recovery_password"]
                          for r in self.kw.export_rows(did)}
                self.kw.secrets.update(server.values())
                self.assertTrue(any(img.opens(pw) for pw in server.values()),
                                what + ": no key the server holds opens the volume")
                for key_id, _, escrowed in img.tokens():
                    if escrowed:
                        self.assertIn(key_id, server, what)
                # the next run finishes the job
                rc, out, err = a.run("checkin")
                self.assertEqual(rc, 0, what + ", then a run: " + out + err)
                (new, [slot], escrowed), = img.tokens()
                self.assertTrue(escrowed, what)
                self.assertNotEqual(new, kid, what)
                pw = a.password(new)
                self.kw.secrets.add(pw)
                self.assertTrue(img.opens(pw, slot), what)
                self.assertTrue(img.opens(img.passphrase), what)
                self.assertEqual(os.listdir(os.path.join(a.state, "keys")), [new], what)
                rows = {r["key_id"]: r for r in self.kw.export_rows(did)}
                self.assertEqual(rows[new]["state"], "active", what)
                self.assertEqual(rows[new]["recovery_password"], pw, what)
                self.assertEqual(rows[kid]["state"], "superseded", what)
                before = img.dump()
                a.ok("checkin")
                self.assertEqual(img.dump(), before, what + ": a third run changed the header")
                n += 1
                self.assertLess(n, 100, "strace never let %s run to the end" % syscall)


def token_import(img, token):
    cryptsetup("token", "import", "--json-file", "-", img.path, input=json.dumps(token))


def utmp_record(kind, line, user, host, at):
    """One glibc struct utmp (x86-64, 384 bytes)."""
    return struct.pack("=hxxi32s4s32s256shhiii16s20s", kind, 1000, line.encode(), b"",
                       user.encode(), host.encode(), 0, 0, 0, at, 0, b"", b"")


@unittest.skipIf(SKIP, SKIP or "")
@kw.needs_openssl
class AgentTlsTest(unittest.TestCase):
    """The agent verifies the server's certificate: refused without its CA,
    accepted with ca_file."""

    @classmethod
    def setUpClass(cls):
        cls.kw = kw.tls_instance("agenttls")
        cls.addClassCleanup(cls.kw.close)

    def test_certificate_verified(self):
        tmp = tempfile.mkdtemp(prefix="kwagent-")
        self.addCleanup(shutil.rmtree, tmp, True)
        img = Image(tmp)
        a = Agent(self.kw, tmp, [img.path],
                  server_url="https://localhost:%d" % self.kw.port)
        token = self.kw.enroll_token()
        rc, out, err = a.run("register", input=token + "\n")
        self.assertEqual(rc, 1)
        self.assertIn("cannot reach", err)
        self.assertFalse(os.path.exists(os.path.join(a.state, "registration")))
        a.settings["agent"]["ca_file"] = os.path.join(self.kw.dir, "cert.pem")
        a.write()
        a.ok("register", input=token + "\n")
        a.ok("enroll-volume", img.path, input=img.passphrase + "\n")
        a.ok("checkin")
        self.assertTrue(img.tokens()[0][2])


class OneShotProxy:
    """Forwards the first HTTP connection on listen_port to the server, then
    closes the port: the server is gone for the agent's next request."""

    def __init__(self, server_port, listen_port):
        import socket
        import threading
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", listen_port))
        self.sock.listen(1)
        self.server_port = server_port
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        try:
            c, _ = self.sock.accept()
        except OSError:
            return
        self.sock.close()
        self.forward(c)

    @staticmethod
    def read_request(c):
        req = b""
        while b"\r\n\r\n" not in req:
            d = c.recv(65536)
            if not d:
                raise OSError("connection closed")
            req += d
        head, body = req.split(b"\r\n\r\n", 1)
        n = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
        while len(body) < n:
            body += c.recv(65536)
        return head, body

    def forward(self, c):
        import socket
        s = socket.create_connection(("127.0.0.1", self.server_port))
        c.settimeout(30)
        s.settimeout(30)
        try:
            head, body = self.read_request(c)
            head = re.sub(rb"(?i)\r\nconnection:[^\r]*", b"", head) + b"\r\nConnection: close"
            s.sendall(head + b"\r\n\r\n" + body)
            while True:
                d = s.recv(65536)
                if not d:
                    break
                c.sendall(d)
        finally:
            s.close()
            c.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
        self.thread.join(5)


class ForeignAnswerProxy(OneShotProxy):
    """Forwards the first connection to the server; every later request
    gets answer (raw HTTP) from here, as a misconfigured proxy or captive
    portal would send it."""

    def __init__(self, server_port, listen_port, answer, forward_first=True):
        self.answer = answer
        self.requests = 0
        self.forward_first = forward_first
        super().__init__(server_port, listen_port)

    def serve(self):
        first = self.forward_first
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            if first:
                first = False
                self.forward(c)
                continue
            try:
                c.settimeout(30)
                self.read_request(c)
                self.requests += 1
                c.sendall(self.answer)
            except OSError:
                pass
            finally:
                c.close()


if __name__ == "__main__":
    unittest.main()
