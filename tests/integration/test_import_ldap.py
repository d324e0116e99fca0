"""`keywarden import ldap` (SPEC §8, §9; README "Importing keys") against a
real slapd (slapd.py): msFVE-RecoveryInformation objects under computer
objects become devices and keys (GUIDs in Windows byte order), a key then
recovers through self-service, a rerun adds nothing twice, invalid objects
are named by DN and nothing is stored unless --skip-invalid, a directory
that is down stores nothing, and `export csv` shows what came in."""

import os
import time
import unittest
import uuid

import kw
import slapd
from kw import recovery_password

TIMEOUT = 2
# {12345678-9ABC-DEF0-1122-334455667788} as Windows stores it: Data1,
# Data2 and Data3 little-endian, Data4 as written.
KNOWN_ID = "12345678-9ABC-DEF0-1122-334455667788"
KNOWN_BYTES = bytes.fromhex("78563412" "BC9A" "F0DE" "1122" "334455667788")
VOLUME_ID = "0A1B2C3D-4E5F-4071-8293-A4B5C6D7E8F9"


def settings(d, uri=None):
    return {"ldap": d.settings(uri=uri, netbios_domain="CORP", timeout="%ds" % TIMEOUT)}


def bad_password():
    """48 digits whose first group is not divisible by 11."""
    good = recovery_password()
    return "111112" + good[6:]


@slapd.needs_slapd
class ImportLdapCase(unittest.TestCase):

    def directory(self):
        d = slapd.Slapd()
        self.addCleanup(d.close)
        return d

    def instance(self, d, uri=None, **ldap):
        s = settings(d, uri)
        s["ldap"].update(ldap)
        inst = kw.Keywarden(name=self.id().rsplit(".", 1)[-1], start=False, settings=s)
        self.addCleanup(inst.close)
        inst.secrets.add(slapd.Slapd.SERVICE_PASSWORD)
        return inst

    def run_import(self, inst, *args, ok=True, ca=None):
        if ca:
            os.environ["LDAPTLS_CACERT"] = ca
        try:
            rc, out, err = inst.cli("import", "ldap", *args)
        finally:
            os.environ.pop("LDAPTLS_CACERT", None)
        if ok:
            self.assertEqual(rc, 0, out + err)
        else:
            self.assertNotEqual(rc, 0, out + err)
        self.assertNotIn(slapd.Slapd.SERVICE_PASSWORD, out + err)
        return out, err

    def import_records(self, inst):
        return [r for r in inst.audit_export() if r["result"] == "imported"]

    def assertNothingStored(self, inst):
        self.assertEqual(inst.export()[1], [])
        self.assertEqual(self.import_records(inst), [])


class ImportTest(ImportLdapCase):

    def test_import_recover_rerun_export(self):
        d = self.directory()
        pc1 = d.add_computer("PC-0001")
        pc2 = d.add_computer("Laptop-7")
        pw_known = recovery_password()
        d.add_recovery(pc1, KNOWN_ID, pw_known, volume_id=VOLUME_ID,
                       when_created="20260514182345.0Z",
                       extra={"msFVE-RecoveryGuid": KNOWN_BYTES})
        others = [(pc1, str(uuid.uuid4()).upper(), recovery_password()),
                  (pc2, str(uuid.uuid4()).upper(), recovery_password())]
        for dn, kid, pw in others:
            d.add_recovery(dn, kid, pw, volume_id=str(uuid.uuid4()))
        inst = self.instance(d)
        inst.secrets.update([pw_known] + [pw for _, _, pw in others])

        out, err = self.run_import(inst)
        self.assertIn("3 keys imported", out)
        self.assertIn("2 devices", out)
        self.assertNoPasswords(out + err, pw_known, *[pw for _, _, pw in others])

        _, rows, _ = inst.export()
        by_key = {r["key_id"]: r for r in rows}
        self.assertEqual(sorted(by_key), sorted([KNOWN_ID] + [k for _, k, _ in others]))
        known = by_key[KNOWN_ID]
        # The device is the computer object: its ID is the objectGUID.
        self.assertEqual(known["device_id"], d.computer_guid[pc1].lower())
        self.assertEqual(by_key[others[1][1]]["device_id"], d.computer_guid[pc2].lower())
        self.assertEqual(known["recovery_password"], pw_known)
        self.assertEqual(known["volume_id"], VOLUME_ID)
        self.assertEqual(known["device_name"], "PC-0001")
        self.assertEqual(known["domain"], "CORP")
        self.assertEqual(known["created_at"], "2026-05-14T18:23:45Z")
        self.assertEqual(known["state"], "active")
        self.assertEqual(by_key[others[0][1]]["device_name"], "PC-0001")
        self.assertEqual(by_key[others[1][1]]["device_name"], "Laptop-7")
        show = inst.device_show(known["device_id"])
        self.assertRegex(show, r"imported: import:ldap:ldap://127\.0\.0\.1:\d+")
        recs = self.import_records(inst)
        self.assertEqual(len(recs), 1)
        self.assertIn("3 keys imported from ldap://", recs[0]["comment"])
        self.assertIn("(ldap format)", recs[0]["comment"])

        # Again: nothing twice.
        out, _ = self.run_import(inst)
        self.assertIn("0 keys imported", out)
        self.assertIn("3 keys already present", out)
        self.assertIn("0 devices", out)
        self.assertEqual(len(inst.export()[1]), 3)

        # A user of the computer recovers the imported key through the portal.
        inst.assoc("CORP\\alice", known["device_id"])
        user = ("CORP\\alice", "Pw-alice-" + uuid.uuid4().hex[:12])
        inst.add_user(*user)
        inst.secrets.add(user[1])
        inst.start()
        b = kw.Browser(inst)
        b.sign_in(*user)
        r = b.recover(KNOWN_ID)
        self.assertEqual(r.status, 200, r.text())
        self.assertIn(pw_known, r.text())
        # A key of a computer alice never used stays hidden.
        r = b.recover(others[1][1])
        self.assertNotIn(others[1][2], r.text())

    def assertNoPasswords(self, text, *passwords):
        for pw in passwords:
            self.assertNotIn(pw, text)
            self.assertNotIn(pw.replace("-", ""), text)

    def test_directory_user_recovers_an_imported_key(self):
        # The directory that held the key also signs people in: alice,
        # associated with the imported computer as CORP\\alice, signs in
        # with her UPN and recovers its key.
        d = self.directory()
        alice_pw = "Pw-alice-" + uuid.uuid4().hex[:12]
        d.add_user("alice", alice_pw)
        kid, pw = str(uuid.uuid4()).upper(), recovery_password()
        d.add_recovery(d.add_computer("PC-0006"), kid, pw, volume_id=str(uuid.uuid4()))
        inst = self.instance(d)
        inst.settings["auth"] = {"backends": "ldap, local"}
        inst.settings["identity"] = {"domains": "CORP:" + slapd.DNS_DOMAIN}
        inst.write_config()
        inst.secrets.update([pw, alice_pw])
        self.run_import(inst)
        device_id = inst.export()[1][0]["device_id"]
        inst.assoc("CORP\\alice", device_id)
        inst.start()
        b = kw.Browser(inst)
        b.sign_in("alice@" + slapd.DNS_DOMAIN, alice_pw)
        r = b.recover(kid)
        self.assertEqual(r.status, 200, r.text())
        self.assertIn(pw, r.text())

    def test_more_objects_than_the_size_limit(self):
        # slapd answers at most 500 entries to a search (its default
        # sizelimit): 1200 objects under 300 computers come in pages.
        d = self.directory()
        text, keys = "", {}
        for c in range(300):
            name = "WS-%04d" % c
            dn = d.computer_dn(name)
            text += slapd.ldif(dn, {"objectClass": "computer", "cn": name,
                                    "sAMAccountName": name + "$",
                                    "objectGUID": uuid.uuid4().bytes_le})
            for _ in range(4):
                kid, pw = str(uuid.uuid4()).upper(), recovery_password()
                keys[kid] = (name, pw)
                cn = "2026-05-14T10:23:45-08:00{%s}" % kid
                text += slapd.ldif("cn=%s,%s" % (cn, dn), {
                    "objectClass": "msFVE-RecoveryInformation", "cn": cn,
                    "msFVE-RecoveryPassword": pw,
                    "msFVE-RecoveryGuid": uuid.UUID(kid).bytes_le,
                    "msFVE-VolumeGuid": uuid.uuid4().bytes_le,
                    "whenCreated": "20260514182345.0Z"})
        d.add(text)
        inst = self.instance(d)
        inst.secrets.update(pw for _, pw in keys.values())
        out, err = self.run_import(inst)
        self.assertIn("1200 keys imported", out)
        self.assertIn("300 devices", out)
        rows = inst.export()[1]
        self.assertEqual({r["key_id"]: (r["device_name"], r["recovery_password"])
                          for r in rows}, keys)

    def test_a_computer_is_its_objectguid_not_its_name(self):
        """One name in two OUs, a name reused by a new computer, a computer
        renamed: keys go to the computer object, so the users of one
        computer never recover another's key."""
        d = self.directory()
        d.add_ou("laptops")
        here = d.add_computer("PC-0009")
        there = d.add_computer("PC-0009", ou="laptops")
        old = d.add_computer("PC-0010")
        moved = d.add_computer("PC-0011")
        keys, objects = {}, {}
        for dn in (here, there, old, moved):
            keys[dn] = (str(uuid.uuid4()).upper(), recovery_password())
            objects[dn] = d.add_recovery(dn, keys[dn][0], keys[dn][1],
                                         volume_id=str(uuid.uuid4()))
        inst = self.instance(d)
        inst.secrets.update(pw for _, pw in keys.values())
        out, _ = self.run_import(inst)
        self.assertIn("4 keys imported", out)
        self.assertIn("4 devices", out)
        device = {r["key_id"]: r["device_id"] for r in inst.export()[1]}
        for dn, (kid, _) in keys.items():
            self.assertEqual(device[kid], d.computer_guid[dn].lower(), dn)

        # PC-0010 leaves; a new computer gets its name. PC-0011 is renamed.
        old_guid, old_key = d.computer_guid[old], keys.pop(old)
        d.modify("".join("dn: %s\nchangetype: delete\n\n" % dn for dn in
                         (objects[old], old)))
        new = d.add_computer("PC-0010")
        keys[new] = (str(uuid.uuid4()).upper(), recovery_password())
        d.add_recovery(new, keys[new][0], keys[new][1], volume_id=str(uuid.uuid4()))
        d.modify("dn: %s\nchangetype: modrdn\nnewrdn: cn=PC-0012\ndeleteoldrdn: 1\n\n"
                 % moved)
        renamed = d.computer_dn("PC-0012")
        d.computer_guid[renamed] = d.computer_guid[moved]
        later = (str(uuid.uuid4()).upper(), recovery_password())
        d.add_recovery(renamed, later[0], later[1], volume_id=str(uuid.uuid4()))
        inst.secrets.update([keys[new][1], later[1]])
        out, err = self.run_import(inst)
        self.assertIn("2 keys imported", out)
        self.assertIn("1 devices", out)
        device = {r["key_id"]: r for r in inst.export()[1]}
        self.assertEqual(device[keys[new][0]]["device_id"], d.computer_guid[new].lower())
        self.assertNotEqual(d.computer_guid[new], old_guid)
        # The renamed computer's new key is on its device, under its first name.
        self.assertEqual(device[later[0]]["device_id"], d.computer_guid[moved].lower())
        self.assertEqual(device[later[0]]["device_name"], "PC-0011")

        # A user of the old PC-0010 and of ou=computers' PC-0009 recovers
        # their keys and neither of the others.
        user = ("CORP\\alice", "Pw-alice-" + uuid.uuid4().hex[:12])
        inst.assoc(user[0], old_guid.lower())
        inst.assoc(user[0], d.computer_guid[here].lower())
        inst.add_user(*user)
        inst.secrets.add(user[1])
        inst.start()
        b = kw.Browser(inst)
        b.sign_in(*user)
        for kid, pw in (old_key, keys[here]):
            r = b.recover(kid)
            self.assertEqual(r.status, 200, r.text())
            self.assertIn(pw, r.text())
        for dn in (new, there):
            r = b.recover(keys[dn][0])
            self.assertNotIn(keys[dn][1], r.text())

    def test_empty_directory(self):
        d = self.directory()
        inst = self.instance(d)
        out, _ = self.run_import(inst)
        self.assertIn("no recovery objects", out)
        self.assertNothingStored(inst)


class InvalidTest(ImportLdapCase):

    def setUp(self):
        d = self.d = self.directory()
        pc = d.add_computer("PC-0002")
        self.good = (str(uuid.uuid4()).upper(), recovery_password())
        d.add_recovery(pc, self.good[0], self.good[1], volume_id=str(uuid.uuid4()))
        self.bad = {}
        self.bad["password"] = d.add_recovery(pc, str(uuid.uuid4()).upper(), bad_password(),
                                              volume_id=str(uuid.uuid4()))
        self.bad["length"] = d.add_recovery(pc, str(uuid.uuid4()).upper(),
                                            recovery_password(), volume_id=str(uuid.uuid4()),
                                            extra={"msFVE-RecoveryGuid": b"\x01" * 15})
        self.bad["volume"] = d.add_recovery(pc, str(uuid.uuid4()).upper(),
                                            recovery_password())
        self.bad["name"] = d.add_recovery(pc, str(uuid.uuid4()).upper(), recovery_password(),
                                          volume_id=str(uuid.uuid4()),
                                          extra={"msFVE-RecoveryGuid": uuid.uuid4().bytes_le})
        self.bad["time"] = d.add_recovery(pc, str(uuid.uuid4()).upper(), recovery_password(),
                                          volume_id=str(uuid.uuid4()),
                                          when_created="20260514102345-0800")
        self.bad["guid"] = d.add_recovery(d.add_computer("PC-0003", guid=False),
                                          str(uuid.uuid4()).upper(), recovery_password(),
                                          volume_id=str(uuid.uuid4()))
        self.bad["parent"] = d.add_recovery("ou=people," + slapd.BASE,
                                            str(uuid.uuid4()).upper(), recovery_password(),
                                            volume_id=str(uuid.uuid4()))
        self.inst = self.instance(d)
        self.inst.secrets.add(self.good[1])

    def assertReported(self, err):
        reasons = {"password": "msFVE-RecoveryPassword", "length": "is 15 bytes, not 16",
                   "volume": "has no msFVE-VolumeGuid", "name": "its name says key",
                   "parent": "not under a computer object",
                   "guid": "its computer has no objectGUID",
                   "time": "whenCreated '20260514102345-0800' is not a time in UTC"}
        lines = err.splitlines()
        for what, dn in self.bad.items():
            mine = [ln for ln in lines if ln.startswith("keywarden: " + dn + ": ")]
            self.assertEqual(len(mine), 1, (what, err))
            self.assertIn(reasons[what], mine[0], what)
        self.assertNotIn(self.good[1], err)

    def test_invalid_objects_store_nothing(self):
        out, err = self.run_import(self.inst, ok=False)
        self.assertReported(err)
        self.assertIn("nothing imported: 7 of 8 recovery objects are invalid", err)
        self.assertNothingStored(self.inst)

    def test_skip_invalid_stores_the_rest(self):
        out, err = self.run_import(self.inst, "--skip-invalid")
        self.assertReported(err)
        self.assertIn("1 keys imported", out)
        self.assertIn("7 invalid recovery objects skipped", err)
        rows = self.inst.export()[1]
        self.assertEqual([(r["key_id"], r["recovery_password"]) for r in rows], [self.good])
        self.assertIn("7 invalid rows skipped", self.import_records(self.inst)[0]["comment"])


class DirectoryDownTest(ImportLdapCase):

    def test_directory_stopped(self):
        d = self.directory()
        d.add_recovery(d.add_computer("PC-0003"), str(uuid.uuid4()).upper(),
                       recovery_password(), volume_id=str(uuid.uuid4()))
        inst = self.instance(d)
        d.stop()
        out, err = self.run_import(inst, ok=False)
        self.assertRegex(err, r"nothing imported: ldap://127\.0\.0\.1:\d+: ")
        self.assertNothingStored(inst)
        d.start()
        out, err = self.run_import(inst)
        self.assertIn("1 keys imported", out)

    def test_directory_hangs(self):
        d = self.directory()
        d.add_recovery(d.add_computer("PC-0004"), str(uuid.uuid4()).upper(),
                       recovery_password(), volume_id=str(uuid.uuid4()))
        inst = self.instance(d)
        d.pause()
        try:
            t0 = time.monotonic()
            out, err = self.run_import(inst, ok=False)
            took = time.monotonic() - t0
        finally:
            d.resume()
        self.assertLess(took, TIMEOUT + 3, err)
        self.assertRegex(err, r"nothing imported: ldap://127\.0\.0\.1:\d+: .*"
                         r"(no answer|Timed out|Can't contact)")
        self.assertNothingStored(inst)

    def test_service_account_refused(self):
        d = self.directory()
        inst = self.instance(d)
        with open(d.settings()["bind_password_file"], "w") as f:
            f.write("wrong\n")
        out, err = self.run_import(inst, ok=False)
        self.assertIn("the service account's bind", err)
        self.assertNothingStored(inst)

    def test_base_dn_not_there(self):
        d = self.directory()
        inst = self.instance(d, base_dn="ou=nowhere," + slapd.BASE)
        out, err = self.run_import(inst, ok=False)
        self.assertIn("searching: No such object", err)
        self.assertNothingStored(inst)

    def test_no_ldap_settings(self):
        inst = kw.Keywarden(name="noldap", start=False)
        self.addCleanup(inst.close)
        rc, out, err = inst.cli("import", "ldap")
        self.assertNotEqual(rc, 0)
        self.assertIn("[ldap] needs uri and base_dn", err)


class TLSTest(ImportLdapCase):
    """ldaps:// and StartTLS, certificates checked (the CA given to libldap
    through LDAPTLS_CACERT), as for sign-in."""

    def setUp(self):
        d = self.d = slapd.Slapd(tls=True)
        self.addCleanup(d.close)
        d.add_recovery(d.add_computer("PC-0005"), str(uuid.uuid4()).upper(),
                       recovery_password(), volume_id=str(uuid.uuid4()))

    def test_ldaps_and_starttls(self):
        for ldap in ({"uri": self.d.ldaps_uri}, {"starttls": "true"}):
            inst = self.instance(self.d, **ldap)
            out, err = self.run_import(inst, ca=self.d.ca)
            self.assertIn("1 keys imported", out, ldap)

    def test_another_ca_is_refused(self):
        for ldap in ({"uri": self.d.ldaps_uri}, {"starttls": "true"}):
            inst = self.instance(self.d, **ldap)
            out, err = self.run_import(inst, ok=False, ca=self.d.other_ca)
            self.assertIn("nothing imported: ldap", err)
            self.assertNothingStored(inst)

    def test_hung_during_the_tls_handshake(self):
        inst = self.instance(self.d, uri=self.d.ldaps_uri)
        self.d.pause()
        try:
            t0 = time.monotonic()
            out, err = self.run_import(inst, ok=False, ca=self.d.ca)
            took = time.monotonic() - t0
        finally:
            self.d.resume()
        self.assertLess(took, TIMEOUT + 3, err)
        self.assertNothingStored(inst)


if __name__ == "__main__":
    unittest.main()
