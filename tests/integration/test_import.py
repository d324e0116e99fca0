"""`keywarden import csv` (SPEC §9; README "Importing keys"): keywarden's own
export imports back into a fresh instance and exports the same; an MBAM
export brings its users as associations, so they recover through
self-service; every invalid row is reported with its line and nothing is
stored unless --skip-invalid; a rerun adds nothing twice; an import killed
mid-way and run again ends as one clean run."""

import os
import random
import re
import signal
import subprocess
import time
import unittest

import kw
from kw import key_id, new_keys, recovery_password, volume

PW = "496298-461032-321464-595518-463221-173943-033616-139579"
MBAM_HEADER = ("RecoveryKeyId,RecoveryKey,VolumeId,MachineName,DomainName,"
               "LastUpdateTime,UserName,Disclosed")


def write(inst, name, text, encoding="utf-8", newline="\r\n"):
    path = os.path.join(inst.dir, name)
    data = text.replace("\n", newline)
    with open(path, "wb") as f:
        f.write(data.encode(encoding) if isinstance(data, str) else data)
    return path


def keywarden_csv(rows, header=kw.EXPORT_HEADER):
    """rows: lists of the export's 10 values."""
    return header + "\n" + "".join(",".join(r) + "\n" for r in rows)


def kw_row(device_id=None, name="PC-1", kid=None, pw=None, vol=None, state="active",
           created="2026-01-05T08:00:00Z", disclosed=""):
    return [device_id or "0f4c6b0e-3f7c-4d2a-9c1e-5b8e2a7d9f10", name, "CORP",
            vol or "5A1C0E7E-6B3D-4F2A-8E9C-0D1B2C3D4E5F", "C:", kid or key_id(),
            pw or recovery_password(), state, created, disclosed]


class ImportCase(unittest.TestCase):

    def instance(self, name, start=False, **kw_args):
        inst = kw.Keywarden(name="%s-%s" % (self.id().rsplit(".", 1)[-1], name),
                            start=start, **kw_args)
        self.addCleanup(inst.close)
        return inst

    def imported(self, inst, path, *args, ok=True, timeout=kw.CLI_TIMEOUT):
        rc, out, err = inst.cli("import", "csv", path, *args, timeout=timeout)
        if ok:
            self.assertEqual(rc, 0, out + err)
        else:
            self.assertNotEqual(rc, 0, out + err)
        return out, err

    def import_records(self, inst):
        return [r for r in inst.audit_export() if r["result"] == "imported"]

    def assertNothingStored(self, inst):
        self.assertEqual(inst.export()[1], [])
        self.assertEqual(self.import_records(inst), [])

    def assertNoPassword(self, text, *passwords):
        for pw in passwords:
            self.assertNotIn(pw, text)
            self.assertNotIn(pw.replace("-", ""), text)


class RoundTripTest(ImportCase):

    def test_export_imports_back_identically(self):
        a = self.instance("a", start=True, settings={
            "limits": {"lookup_failures": "1000/15m"}})
        # Keys in every state: active, removed (gone from the volume),
        # disclosed (recovered), superseded (recovered, then rotated).
        did1, secret1 = a.register(name='=SUM(1,2) "quoted", name')
        k = new_keys(4)
        vol1 = volume(k[:3], mount="C:")
        vol2 = volume(k[3:], mount="D:", vtype="fixed")
        self.assertEqual(a.checkin(secret1, volumes=[vol1, vol2],
                                   logons=[{"user": "CORP\\alice", "type": "local"}]).status,
                         200)
        user = ("CORP\\alice", "Pw-alice-" + os.urandom(6).hex())
        a.add_user(*user)
        b = kw.Browser(a)
        b.sign_in(*user)
        for kid, _ in (k[0], k[1]):
            self.assertEqual(b.recover(kid).status, 200)
        vol1["recovery_keys"] = [vol1["recovery_keys"][0]]    # k[1] rotated, k[2] removed
        self.assertEqual(a.checkin(secret1, volumes=[vol1, vol2]).status, 200)
        did2, secret2 = a.register(name="Laptop-2", domain="")
        self.assertEqual(a.checkin(secret2, volumes=[volume(new_keys(2), mount="")]).status,
                         200)
        a.stop()
        _, rows, text = a.export()
        self.assertEqual(sorted(r["state"] for r in rows),
                         ["active", "active", "active", "disclosed", "removed",
                          "superseded"])
        self.assertIn("\"'=SUM(1,2) \"\"quoted\"\", name\"", text)

        fresh = self.instance("b")
        path = write(fresh, "backup.csv", text, newline="\r\n")
        out, err = self.imported(fresh, path)
        self.assertIn("6 keys imported", out)
        self.assertIn("2 devices", out)
        self.assertEqual(fresh.export()[2], text)
        # The keys say where they came from; the device never checked in.
        show = fresh.device_show(did1)
        self.assertIn("imported: import:csv:backup.csv", show)
        self.assertIn("last check-in: never", show)
        self.assertIn('name: =SUM(1,2) "quoted", name', show)

        # Again: nothing added twice.
        out, err = self.imported(fresh, path)
        self.assertIn("0 keys imported", out)
        self.assertIn("6 keys already present", out)
        self.assertEqual(fresh.export()[2], text)

        recs = self.import_records(fresh)
        self.assertEqual(len(recs), 2)
        self.assertEqual((recs[0]["source"], recs[0]["key_type"]), ("cli", "recovery_password"))
        self.assertTrue(recs[0]["comment"].startswith("6 keys imported from %s " % path),
                        recs[0])
        self.assertIn("2 devices", recs[0]["comment"])
        self.assertTrue(recs[1]["comment"].startswith("0 keys imported"), recs[1])
        rc, out, err = fresh.cli("audit", "verify")
        self.assertEqual(rc, 0, out + err)
        self.assertNoPassword(recs[0]["comment"] + err, *[r["recovery_password"] for r in rows])

    def test_standard_input_and_lf(self):
        inst = self.instance("stdin")
        rows = [kw_row(), kw_row()]
        rc, out, err = inst.cli("import", "csv", "-", input=keywarden_csv(rows))
        self.assertEqual(rc, 0, err)
        got = inst.export()[1]
        self.assertEqual(sorted(r["key_id"] for r in got), sorted(r[5] for r in rows))
        self.assertIn("standard input", self.import_records(inst)[0]["comment"])
        self.assertIn("imported: import:csv:stdin", inst.device_show(rows[0][0]))

    def test_columns_in_any_order_and_case_optional_ones_left_out(self):
        inst = self.instance("order")
        kid, pw = key_id(), recovery_password()
        text = ("Key_ID,Recovery_Password,Volume_ID,Device_Name,Device_ID\n"
                "%s,%s,{5A1C0E7E-6B3D-4F2A-8E9C-0D1B2C3D4E5F},PC-9,"
                "0F4C6B0E-3F7C-4D2A-9C1E-5B8E2A7D9F10\n" % (kid.lower(), pw.replace("-", "")))
        self.imported(inst, write(inst, "order.csv", text))
        (row,) = inst.export()[1]
        self.assertEqual((row["key_id"], row["recovery_password"], row["volume_id"],
                          row["device_id"], row["state"], row["domain"], row["mount"]),
                         (kid, pw, "5A1C0E7E-6B3D-4F2A-8E9C-0D1B2C3D4E5F",
                          "0f4c6b0e-3f7c-4d2a-9c1e-5b8e2a7d9f10", "active", "", ""))

    def test_device_id_known_under_another_name(self):
        inst = self.instance("rename")
        self.imported(inst, write(inst, "one.csv", keywarden_csv([kw_row(name="PC-1")])))
        other = kw_row(name="PC-2")
        out, err = self.imported(inst, write(inst, "two.csv", keywarden_csv([other])),
                                 ok=False)
        self.assertRegex(err, r"two\.csv:2: device 0f4c6b0e-\S+ is in keywarden as "
                         r"'PC-1'; this row names it 'PC-2'")
        self.assertEqual(len(inst.export()[1]), 1)
        # The same name in other letter case is the same device.
        self.imported(inst, write(inst, "three.csv", keywarden_csv([kw_row(name="pc-1")])))
        self.assertEqual(len(inst.export()[1]), 2)


class InvalidTest(ImportCase):

    def test_every_invalid_row_reported_nothing_stored(self):
        inst = self.instance("bad")
        good = [kw_row(), kw_row()]
        bad_pw = "311111-" + recovery_password()[7:]   # group 1 not divisible by 11
        lines = [kw.EXPORT_HEADER] + [",".join(r) for r in good]
        lines.append(",".join(kw_row(kid="XYZ-not-a-key")))                     # 4
        lines.append(",".join(kw_row(pw=bad_pw)))                               # 5
        lines.append(",".join(kw_row(name="=cmd|' /C calc'!A0")))              # 6
        lines.append(",".join(kw_row(name="L" * 20000)))                        # 7
        lines.append(",".join(kw_row(state="lost")))                            # 8
        lines.append(",".join(kw_row(created="yesterday")))                     # 9
        lines.append(",".join(kw_row()[:9]))                                    # 10
        lines.append(",".join(kw_row(state="disclosed")))                       # 11
        body = ("\n".join(lines) + "\n").encode()
        body += ",".join(kw_row(name="PC-\xff")).encode("latin-1") + b"\n"      # 12
        path = os.path.join(inst.dir, "bad.csv")
        with open(path, "wb") as f:
            f.write(body)
        out, err = self.imported(inst, path, ok=False)
        for line, why in ((4, "key_id: .*recovery key ID"),
                          (5, "recovery_password: Group 1 is not divisible by 11"),
                          (6, "device_name: starts with '=', as a spreadsheet formula"),
                          (7, "too long"),
                          (8, "state: is not one of active, removed, disclosed, superseded"),
                          (9, "created_at: is not a time"),
                          (10, "9 fields where the header has 10"),
                          (11, "disclosed_at: is empty"),
                          (12, "not UTF-8")):
            self.assertRegex(err, r"bad\.csv:%d: .*%s" % (line, why))
        self.assertIn("nothing imported: 9 of 11 rows are invalid", err)
        for line in (2, 3):
            self.assertNotIn("bad.csv:%d:" % line, err)
        self.assertNoPassword(err + out, bad_pw, *[r[6] for r in good])
        self.assertNotIn("311111", err)
        self.assertNothingStored(inst)

        # --skip-invalid stores the two good rows and says what it skipped.
        out, err = self.imported(inst, path, "--skip-invalid")
        self.assertIn("2 keys imported", out)
        self.assertIn("9 invalid rows skipped", err)
        self.assertRegex(err, r"bad\.csv:5: recovery_password: Group 1")
        self.assertEqual(sorted(r["key_id"] for r in inst.export()[1]),
                         sorted(r[5] for r in good))
        self.assertIn("9 invalid rows skipped", self.import_records(inst)[0]["comment"])

    def test_header_problems(self):
        inst = self.instance("header")
        for text, why in (
                ("device_id,device_name,volume_id,key_id\n", "lacks the column recovery_password"),
                ("device_id,device_name,volume_id,key_id,recovery_password,colour\n",
                 "does not know: colour"),
                ("device_id,device_name,volume_id,key_id,recovery_password,Key_ID\n",
                 "names the column key_id twice"),
                (MBAM_HEADER + "\n", "an MBAM export\\? use --format mbam"),
                # a file without line ends is all header: no value is quoted
                (kw.EXPORT_HEADER + ",%s,x" % PW, "does not know: "
                 "\\(a value that looks like a recovery password\\), x"),
                ("", "the file is empty"),
                ((MBAM_HEADER + "\n").encode("utf-16"), "the file is UTF-16: save it as "
                 "UTF-8")):
            if isinstance(text, bytes):
                with open(os.path.join(inst.dir, "h.csv"), "wb") as f:
                    f.write(text)
                text = None
            out, err = self.imported(inst, os.path.join(inst.dir, "h.csv") if text is None
                                     else write(inst, "h.csv", text), ok=False)
            self.assertRegex(err, r"h\.csv: .*" + why)
            self.assertNoPassword(err, PW)
        self.assertNothingStored(inst)

    def test_conflicting_password(self):
        inst = self.instance("conflict")
        row = kw_row()
        self.imported(inst, write(inst, "a.csv", keywarden_csv([row])))
        other = list(row)
        other[6] = recovery_password()
        new = kw_row(device_id="1f4c6b0e-3f7c-4d2a-9c1e-5b8e2a7d9f10", name="PC-NEW")
        out, err = self.imported(inst, write(inst, "b.csv", keywarden_csv([new, other])),
                                 ok=False)
        self.assertIn("b.csv:3: key %s is stored already with a different recovery "
                      "password" % row[5], err)
        self.assertNoPassword(err, row[6], other[6])
        rows = inst.export()[1]
        self.assertEqual([(r["key_id"], r["recovery_password"]) for r in rows],
                         [(row[5], row[6])])
        self.assertEqual(len(self.import_records(inst)), 1)

    def test_usage(self):
        inst = self.instance("usage")
        rc, out, err = inst.cli("import", "csv")
        self.assertEqual(rc, 2, err)
        rc, out, err = inst.cli("import", "csv", "x.csv", "--format", "excel")
        self.assertEqual(rc, 1, err)
        self.assertIn("use keywarden or mbam", err)
        rc, out, err = inst.cli("import", "csv", "no-such.csv")
        self.assertEqual(rc, 1, err)
        self.assertIn("cannot open no-such.csv", err)
        rc, out, err = inst.cli("import", "csv", "--help")
        self.assertEqual(rc, 0, err)
        self.assertIn("RecoveryKeyId", out)


class MbamTest(ImportCase):

    def mbam_file(self, inst, rows, name="mbam.csv"):
        body = "\ufeff" + MBAM_HEADER + "\n" + "".join(",".join(r) + "\n" for r in rows)
        return write(inst, name, body)

    def test_mbam_users_recover_through_self_service(self):
        inst = self.instance("mbam", start=True, settings={
            "identity": {"domains": "CORP:corp.example.com"}})
        k1, k2, k3 = new_keys(3)
        rows = [
            [k1[0], k1[1], "{7F3A2B1C-0D4E-4F5A-8B6C-9D0E1F2A3B4C}", "WS-0142",
             "CORP", "2024-03-11 09:15:02.483", '"CORP\\alice; CORP\\bob"', "False"],
            [k2[0].lower(), k2[1], "{8A4B3C2D-1E5F-4A6B-9C7D-0E1F2A3B4C5D}", "WS-0142",
             "CORP", "2024-03-12 10:00:00", "CORP\\alice", "True"],
            [k3[0], k3[1], "9B5C4D3E-2F6A-4B7C-8D8E-1F2A3B4C5D6E", "LAB-PC-7",
             "CORP", "2025-01-02T03:04:05Z", "", "False"],
        ]
        path = self.mbam_file(inst, rows)
        out, err = self.imported(inst, path, "--format", "mbam")
        self.assertIn("3 keys imported", out)
        self.assertIn("2 devices and 2 associations added", out)
        self.assertIn("columns not used: Disclosed", err)
        got = {r["key_id"]: r for r in inst.export()[1]}
        self.assertEqual(set(got), {k1[0], k2[0], k3[0]})
        self.assertEqual(got[k1[0]]["recovery_password"], k1[1])
        self.assertEqual(got[k1[0]]["created_at"], "2024-03-11T09:15:02Z")
        self.assertEqual(got[k1[0]]["device_name"], "WS-0142")
        self.assertEqual(got[k1[0]]["device_id"], got[k2[0]]["device_id"])
        self.assertEqual(got[k1[0]]["volume_id"], "7F3A2B1C-0D4E-4F5A-8B6C-9D0E1F2A3B4C")
        show = inst.device_show(got[k1[0]]["device_id"])
        self.assertIn("association CORP\\alice", show)
        self.assertIn("association CORP\\bob", show)
        self.assertIn("imported: import:mbam:mbam.csv", show)

        # The help desk sees the computer as never reported: its drives'
        # protection is unknown, not "not protected".
        staff = ("hd-admin", "Pw-hd-" + os.urandom(6).hex())
        inst.add_user(staff[0], staff[1], "helpdesk_admin")
        hd = kw.Browser(inst)
        hd.sign_in(*staff)
        text = kw.page_text(hd.get("/helpdesk/devices/%s/lost" %
                                   got[k1[0]]["device_id"]).body)
        self.assertIn("has not reported its drives (its keys were imported)", text)
        self.assertIn("Not reported", text)
        self.assertNotIn("Not protected", text)
        text = kw.page_text(hd.get("/helpdesk/devices/%s" % got[k1[0]]["device_id"]).body)
        self.assertIn("Imported: import:mbam:mbam.csv", text)

        # alice recovers her computer's key by its first 8 characters; carol,
        # who never used it, cannot.
        alice = ("CORP\\alice", "Pw-alice-" + os.urandom(6).hex())
        carol = ("CORP\\carol", "Pw-carol-" + os.urandom(6).hex())
        inst.add_user(*alice)
        inst.add_user(*carol)
        b = kw.Browser(inst)
        b.sign_in(*alice)
        r = b.recover(k1[0][:8])
        self.assertEqual(r.status, 200, r)
        self.assertIn(k1[1], kw.page_text(r.body))
        self.assertIn("WS-0142", kw.page_text(r.body))
        c = kw.Browser(inst)
        c.sign_in(*carol)
        self.assertEqual(c.recover(k1[0][:8]).status, 404)
        self.assertEqual(c.recover(k3[0][:8]).status, 404)

        # Again: nothing twice (the key alice recovered stays disclosed).
        out, err = self.imported(inst, path, "--format", "mbam")
        self.assertIn("0 keys imported", out)
        self.assertIn("0 devices and 0 associations added, 3 keys already present", out)
        self.assertEqual(len(inst.export()[1]), 3)

    def test_mbam_strict_values(self):
        inst = self.instance("mbamstrict")
        kid, pw = new_keys(1)[0]
        rows = [[kid, pw, "not-a-guid", "WS-1", "CORP", "3/11/2024 9:15 AM", "CORP\\alice",
                 ""]]
        path = self.mbam_file(inst, rows)
        out, err = self.imported(inst, path, "--format", "mbam", ok=False)
        self.assertIn("mbam.csv:2: VolumeId: is not a volume GUID", err)
        self.assertIn("LastUpdateTime: is not a time", err)
        self.assertNoPassword(err, pw)
        # Header names in any case and order, the user column as Users.
        text = ("users,MACHINENAME,recoverykey,RecoveryKeyID,volumeid\n"
                "CORP\\dave,WS-2,%s,%s,9B5C4D3E-2F6A-4B7C-8D8E-1F2A3B4C5D6E\n" % (pw, kid))
        self.imported(inst, write(inst, "m2.csv", text), "--format", "mbam")
        (row,) = inst.export()[1]
        self.assertEqual((row["key_id"], row["device_name"], row["domain"]), (kid, "WS-2", ""))
        self.assertIn("association CORP\\dave", inst.device_show(row["device_id"]))


class InterruptedTest(ImportCase):

    def big_file(self, inst, n):
        rows = []
        for i in range(n):
            dev = "%08x-0000-4000-8000-%012x" % (i // 4, i // 4)
            rows.append(kw_row(device_id=dev, name="PC-%06d" % (i // 4),
                               vol="%08X-0000-4000-8000-%012X" % (i // 4, i % 2),
                               created="2025-06-%02dT10:00:00Z" % (1 + i % 28)))
        return write(inst, "big.csv", keywarden_csv(rows))

    def test_killed_mid_import_then_rerun(self):
        n = 20000
        clean = self.instance("clean")
        path = self.big_file(clean, n)
        # 20 000 rows take seconds; on PostgreSQL, a round trip a statement,
        # on a busy machine, minutes: the limit is a hang's, not a bar.
        t0 = time.monotonic()
        self.imported(clean, path, timeout=600)
        took = time.monotonic() - t0
        want = clean.export()[2]
        self.assertEqual(len(want.splitlines()), n + 1)

        inst = self.instance("killed")
        with open(path, "rb") as f, open(os.path.join(inst.dir, "big.csv"), "wb") as g:
            g.write(f.read())
        # Killed at points through the run (reading, checking, writing):
        # the one write either committed all or left nothing.
        for fraction in (0.2, 0.4, 0.6, 0.8, 0.95):
            p = subprocess.Popen([kw.BINARY, "--config", inst.conf, "import", "csv",
                                  "big.csv"], cwd=inst.dir, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            time.sleep(took * fraction)
            p.send_signal(signal.SIGKILL)
            p.wait()
            keys = len(inst.export()[1])
            self.assertIn(keys, (0, n), fraction)
            if keys:
                break
        self.imported(inst, "big.csv", timeout=600)
        self.assertEqual(inst.export()[2], want)
        rc, out, err = inst.cli("audit", "verify")
        self.assertEqual(rc, 0, out + err)


if __name__ == "__main__":
    unittest.main()
