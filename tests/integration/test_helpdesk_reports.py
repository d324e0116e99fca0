"""The help desk's reports (issue 10 points 4 and 5): who may read them, the
recovery audit report (filters, pages, CSV), the keys disclosed and not yet
rotated, and compliance with its summary. No report ever shows a recovery
password."""

import csv
import io
import re
import secrets
import time
import urllib.parse

import kw

REPORTS = ("/helpdesk/reports/audit", "/helpdesk/reports/unrotated",
           "/helpdesk/reports/compliance")
FORMULA = "=cmd|'/c calc'!A1"   # a computer named so, with a suffix per test


def rows_of(text):
    return list(csv.reader(io.StringIO(text, newline="")))


def table_rows(body):
    """The <tbody> rows of the page's last data table, as lists of cell texts."""
    html = body.decode()
    tbody = html[html.rfind("<tbody>"):html.rfind("</tbody>")]
    out = []
    for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", tbody, re.S):
        cells = re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", tr, re.S)
        out.append([kw.page_text(c.encode()).strip() for c in cells])
    return out


class ReportsTest(kw.PortalTestCase):
    # Many failed lookups make records to page through.
    settings = {"limits": {"lookup_failures": "1000/15m",
                           "lookup_failures_per_address": "1000/15m"}}

    def user_with(self, *roles):
        name = "CORP\\r%s" % secrets.token_hex(3)
        pw = "Pw-%s" % secrets.token_urlsafe(12)
        self.kw.add_user(name, pw, *roles)
        return name, pw

    def reader(self, role="reports"):
        return self.signed_in(self.user_with(role))

    def disclose(self, name=None, user=None):
        """A device whose key an end user recovers (self-service): (device id,
        secret, volume, computer, key id, password, user)."""
        user = user or self.new_user()
        (kid, pw), = kw.new_keys(1)
        did, secret, vol, computer = self.kw.device_with(
            keys=[(kid, pw)], logons=[(user[0], "local")], name=name)
        b = self.signed_in(user)
        r = b.recover(kid[:8])
        self.assertIn(pw, kw.page_text(r.body), r)
        return did, secret, vol, computer, kid, pw, user

    # -- roles --

    def test_every_role_and_report(self):
        for role, status in ((None, 403), ("helpdesk", 403), ("reports", 200),
                             ("helpdesk_admin", 200), ("admin", 200)):
            b = self.reader(role) if role else self.signed_in(self.user_with())
            for path in REPORTS:
                r = b.get(path)
                self.assertPage(r, status, (role, path))
                r = b.get(path + "?format=csv")
                self.assertEqual(r.status, status, (role, path, "csv"))
        # without a session: the sign-in page, never a report
        r = self.browser().get(REPORTS[0] + "?format=csv")
        self.assertNotEqual(r.status, 200)
        self.assertNotIn("text/csv", r.header("Content-Type") or "")

    def test_reports_never_reach_a_key_path(self):
        did = self.kw.device_with(keys=kw.new_keys(1))[0]
        b = self.reader("reports")
        for path in ("/helpdesk/recover", "/helpdesk/devices", "/helpdesk/devices/" + did,
                     "/helpdesk/devices/%s/lost" % did):
            self.assertPage(b.get(path), 403, path)
        r = b.post("/helpdesk/recover", {"key_id": "ABCDEF12", "reason": "tpm_reset"})
        self.assertEqual(r.status, 403)
        # the navigation offers only the reports
        text = b.get(REPORTS[0]).body.decode()
        self.assertNotIn('href="/helpdesk/recover"', text)
        self.assertNotIn('href="/helpdesk/devices"', text)

    def test_swedish(self):
        b = self.signed_in(self.user_with("reports"), accept_language="sv")
        for path, title in zip(REPORTS, ("Granskningsrapport för återställning",
                                         "Utlämnade nycklar som inte bytts ännu",
                                         "Efterlevnadsrapport")):
            r = b.get(path)
            self.assertPage(r, 200, path)
            self.assertIn("<h1>%s</h1>" % title, r.body.decode(), path)
        self.assertIn("Ange datum som ÅÅÅÅ-MM-DD.",
                      kw.page_text(b.get(REPORTS[0] + "?from=ig%C3%A5r").body))

    # -- the recovery audit report --

    def test_audit_report_columns_filters_and_no_password(self):
        formula = FORMULA + secrets.token_hex(3)
        did, secret, vol, computer, kid, pw, user = self.disclose(name=formula)
        other = self.disclose()
        # a failed lookup by the first user
        self.signed_in(user).recover("ABCDEF12")
        b = self.reader()
        r = b.get(REPORTS[0])
        self.assertPage(r, 200)
        self.assertEqual(r.header("Cache-Control"), "no-store")
        body = r.body.decode()
        for col in ("Time (UTC)", "Source", "Result", "Help-desk user", "End user",
                    "Computer", "Key ID", "Key type", "Reason", "Client address"):
            self.assertIn('<th scope="col">%s</th>' % col, body)
        for p in (pw, other[5]):
            self.assertNotIn(p, body)
        rows = table_rows(r.body)
        self.assertIn(kid, [c for row in rows for c in row])
        self.assertIn(other[4], [c for row in rows for c in row])

        def shown(query):
            r = b.get(REPORTS[0] + "?" + urllib.parse.urlencode(query))
            self.assertPage(r, 200, query)
            return table_rows(r.body)

        # user: actor or end user, any case; computer, any case
        got = shown({"user": user[0].upper()})
        self.assertEqual(len(got), 2, got)
        self.assertTrue(all(row[4] == user[0] for row in got), got)
        got = shown({"computer": formula.upper()})
        self.assertEqual([row[6] for row in got], [kid])
        self.assertEqual(got[0][5], formula, "shown as text, escaped")
        # result and source
        got = shown({"user": user[0], "result": "not_found"})
        self.assertEqual([(row[2], row[6]) for row in got], [("Not found", "ABCDEF12")])
        got = shown({"user": user[0], "result": "disclosed", "source": "self_service"})
        self.assertEqual([(row[1], row[2], row[6]) for row in got],
                         [("Self-service", "Disclosed", kid)])
        self.assertEqual(shown({"user": user[0], "source": "helpdesk"}),
                         [["No records match."]])
        # dates: today is in, a range before it is not
        today = time.strftime("%Y-%m-%d", time.gmtime())
        self.assertEqual(len(shown({"user": user[0], "from": today, "to": today})), 2)
        self.assertEqual(shown({"user": user[0], "to": "2001-01-01"}),
                         [["No records match."]])
        # a bad date or an unknown result: 400 with the form again
        for q in ({"from": "yesterday"}, {"result": "leaked"}, {"from": today,
                                                                 "to": "2001-01-01"}):
            r = b.get(REPORTS[0] + "?" + urllib.parse.urlencode(q))
            self.assertPage(r, 400, q)
            self.assertIn('role="alert"', r.body.decode())

    def test_every_result_and_source_is_a_filter(self):
        # the filter offers exactly what records can hold: the CLI's list
        # (its refusal names every result) and the report's agree
        rc, out, err = self.kw.cli("audit", "export", "--result", "nonsense")
        cli = set(re.findall(r"[a-z_]+", err.split(": use ", 1)[1])) - {"or"}
        body = self.reader().get(REPORTS[0]).body.decode()
        select = re.search(r'<select[^>]*name="result".*?</select>', body, re.S).group(0)
        offered = set(re.findall(r'<option value="([a-z_]+)"', select))
        self.assertEqual(offered, cli)
        # an association made by the help desk is found by its result
        b = self.reader("helpdesk_admin")
        did = self.kw.device_with()[0]
        b.get("/helpdesk/devices/%s" % did)
        user = "CORP\\assoc%s" % secrets.token_hex(3)
        r = b.post("/helpdesk/devices/%s/associations" % did, {"user": user})
        self.assertEqual(r.status, 303, r)
        r = b.get(REPORTS[0] + "?result=associated")
        self.assertPage(r, 200)
        self.assertIn(user, kw.page_text(r.body))
        self.assertIn("User associated with a device", kw.page_text(r.body))

    def test_audit_report_pages(self):
        user = self.new_user()
        ub = self.signed_in(user)
        made = []
        for i in range(57):
            prefix = "%08X" % (0xA0000000 + i)
            self.assertEqual(ub.recover(prefix).status, 404)
            made.append(prefix)
        made.reverse()           # newest first
        b = self.reader()
        base = REPORTS[0] + "?user=" + urllib.parse.quote(user[0])
        r = b.get(base)
        page1 = [row[6] for row in table_rows(r.body)]
        self.assertEqual(page1, made[:50])
        body = r.body.decode()
        self.assertNotIn('rel="prev"', body)
        older = re.search(r'href="([^"]+)" rel="next"', body).group(1).replace("&amp;", "&")
        self.assertIn("user=", older, "the filter kept")
        r = b.get(older)
        page2 = [row[6] for row in table_rows(r.body)]
        self.assertEqual(page2, made[50:])
        body = r.body.decode()
        self.assertNotIn('rel="next"', body)
        newer = re.search(r'href="([^"]+)" rel="prev"', body).group(1).replace("&amp;", "&")
        r = b.get(newer)
        self.assertEqual([row[6] for row in table_rows(r.body)], made[:50])
        # records added meanwhile do not shift an older page
        self.assertEqual(ub.recover("B0000000").status, 404)
        r = b.get(older)
        self.assertEqual([row[6] for row in table_rows(r.body)], made[50:])
        # a cursor that is no number
        self.assertPage(b.get(base + "&after=x"), 400)

    def test_audit_csv(self):
        formula = FORMULA + secrets.token_hex(3)
        did, secret, vol, computer, kid, pw, user = self.disclose(name=formula)
        b = self.signed_in(user)
        b.recover("+12345678")     # refused as invalid, recorded as typed
        b.recover("-1234567")
        rd = self.reader()
        r = rd.get(REPORTS[0] + "?format=csv&user=" + urllib.parse.quote(user[0]))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), "text/csv; charset=utf-8")
        self.assertEqual(r.header("Content-Disposition"),
                         'attachment; filename="recovery-audit.csv"')
        self.assertEqual(r.header("Transfer-Encoding"), "chunked", "streamed")
        text = r.body.decode()
        self.assertNotIn(pw, text)
        lines = text.split("\r\n")
        self.assertEqual(lines[0], "time,source,result,helpdesk_user,end_user,computer,"
                         "key_id,key_type,reason,client")
        self.assertEqual(lines[-1], "", "every line ends in CRLF")
        self.assertNotIn("\n", "".join(lines))
        rows = rows_of(text)
        self.assertEqual(len(rows), 4, rows)     # header, 3 records
        disclosed = [row for row in rows if row[2] == "disclosed"]
        self.assertEqual(len(disclosed), 1)
        row = disclosed[0]
        self.assertRegex(row[0], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(row[1:5], ["self_service", "disclosed", user[0], user[0]])
        # the formula is quoted and neutralised
        self.assertEqual(row[5], "'" + formula)
        self.assertIn("\"'%s\"" % formula, text)
        self.assertEqual(row[6], kid)
        for row in rows[1:]:
            for cell in row:
                self.assertFalse(cell[:1] in ("=", "+", "-", "@"), row)
        # a filter matching nothing: the header alone
        r = rd.get(REPORTS[0] + "?format=csv&computer=nothing-" + secrets.token_hex(4))
        self.assertEqual(r.body.decode(), lines[0] + "\r\n")

    def test_audit_csv_many_parts(self):
        # more records than a part: every one, once, newest first
        user = self.new_user()
        ub = self.signed_in(user)
        for i in range(30):
            ub.recover("%08X" % (0xC0000000 + i))
        db = self.kw.db()
        n = db.execute("SELECT count(*) FROM audit").fetchone()[0]
        # copies of the records (the report reads, never verifies the chain)
        db.execute("INSERT INTO audit (seq, at, source, result, actor, end_user, computer,"
                   " device_id, key_id, key_type, reason, comment, client, prev_hash, hash,"
                   " actor_lc, end_user_lc, computer_lc) WITH RECURSIVE c(i) AS (SELECT 1"
                   " UNION ALL SELECT i + 1 FROM c WHERE i < 1200) SELECT ? + i, 1000 + i,"
                   " 'helpdesk', 'not_found', 'bulk', 'bulk', 'PC', '', printf('K%04d', i),"
                   " 'recovery_password', 'tpm_reset', '', '127.0.0.1', x'', x'', 'bulk',"
                   " 'bulk', 'pc' FROM c", (n + 100,))
        db.close()
        r = self.reader().get(REPORTS[0] + "?format=csv&user=bulk")
        rows = rows_of(r.body.decode())[1:]
        self.assertEqual([row[6] for row in rows],
                         ["K%04d" % i for i in range(1200, 0, -1)])
        # the access line counts the streamed body's bytes, not 0
        size = str(len(r.body))
        kw.wait_for(lambda: any(l.split()[l.split().index("200") + 1] == size
                                for l in self.kw.access_lines()
                                if "/helpdesk/reports/audit " in l and " 200 " in l))

    # -- keys disclosed and not yet rotated --

    def test_unrotated(self):
        did, secret, vol, computer, kid, pw, user = self.disclose()
        b = self.reader()
        r = b.get(REPORTS[1])
        self.assertPage(r, 200)
        self.assertNotIn(pw, r.body.decode())
        rows = [row for row in table_rows(r.body) if kid in row]
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0][:3], [computer, "C:", kid])
        self.assertRegex(rows[0][4], r"^0 min$")
        r = b.get(REPORTS[1] + "?format=csv")
        self.assertEqual(r.header("Content-Disposition"),
                         'attachment; filename="keys-not-rotated.csv"')
        rows = rows_of(r.body.decode())
        self.assertEqual(rows[0], ["computer", "device_id", "volume", "key_id",
                                   "disclosed_at", "days_since"])
        mine = [row for row in rows if row[3] == kid]
        self.assertEqual(mine[0][:4], [computer, did, "C:", kid])
        self.assertEqual(mine[0][5], "0")
        self.assertNotIn(pw, r.body.decode())
        # the device rotates: checks in with a new key and without the old one
        (nkid, npw), = kw.new_keys(1)
        self.kw.secrets.add(npw)
        self.assertCheckin(secret, volumes=[kw.volume([(nkid, npw)], vid=vol["id"])])
        r = b.get(REPORTS[1])
        self.assertNotIn(kid, r.body.decode())
        self.assertNotIn(kid, b.get(REPORTS[1] + "?format=csv").body.decode())

    # -- compliance --

    def test_compliance_states_and_summary(self):
        db = self.kw.db()
        before = db.execute("SELECT count(*) FROM devices").fetchone()[0]
        tag = secrets.token_hex(3).upper()

        def device(suffix, volumes):
            did, secret = self.kw.register(name="CMP-%s-%s" % (tag, suffix))
            self.assertCheckin(secret, volumes=volumes)
            return did

        ok = device("OK", [kw.volume(kw.new_keys(1)),
                           kw.volume(kw.new_keys(1), mount="D:", vtype="fixed"),
                           kw.volume([], mount="E:", vtype="removable", protection="off",
                                     percent=0, encryption="none")])
        off = device("OFF", [kw.volume(kw.new_keys(1), protection="off")])
        half = device("HALF", [kw.volume(kw.new_keys(1)),
                               kw.volume(kw.new_keys(1), mount="D:", vtype="fixed",
                                         percent=40)])
        nokey = device("NOKEY", [kw.volume([])])
        stale = device("STALE", [kw.volume(kw.new_keys(1))])
        never, _ = self.kw.register(name="CMP-%s-NEVER" % tag)
        db.execute("UPDATE devices SET last_checkin_at = last_checkin_at - 15 * 86400 "
                   "WHERE uid = ?", (stale,))
        db.close()
        b = self.reader()
        r = b.get(REPORTS[2])
        self.assertPage(r, 200)
        html = r.body.decode()
        states = {name: state for state, name in re.findall(
            r'<tr data-state="([a-z_]+)">\s*<th scope="row">CMP-%s-(\w+)' % tag, html)}
        self.assertEqual(states, {"OK": "compliant", "OFF": "non_compliant",
                                  "HALF": "non_compliant", "NOKEY": "non_compliant",
                                  "STALE": "unknown", "NEVER": "unknown"})
        # the summary counts every device (the older ones of other tests too)
        summary = dict((row[0], row[1:]) for row in table_rows(
            html[:html.find("devices-caption")].encode() + b"</tbody>"))
        total = before + 6
        self.assertEqual(summary["All computers"], [str(total), "100 %"])
        n = int(summary["Compliant"][0]) + int(summary["Not compliant"][0]) + \
            int(summary["Unknown"][0])
        self.assertEqual(n, total)
        self.assertGreaterEqual(int(summary["Compliant"][0]), 1)
        pct = "%.1f %%" % (100.0 * int(summary["Unknown"][0]) / total)
        self.assertEqual(summary["Unknown"][1], pct)

        r = b.get(REPORTS[2] + "?format=csv")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Disposition"), 'attachment; filename="compliance.csv"')
        rows = rows_of(r.body.decode())
        self.assertEqual(rows[0], ["computer", "device_id", "domain", "os", "last_checkin",
                                   "state", "mount", "type", "protection", "encryption",
                                   "percent", "active_key_escrowed"])
        mine = [row for row in rows if row[0].startswith("CMP-%s-" % tag)]
        by = {}
        for row in mine:
            by.setdefault(row[0].split("-")[-1], []).append(row)
        self.assertEqual([(row[6], row[7], row[11]) for row in by["OK"]],
                         [("C:", "os", "yes"), ("D:", "fixed", "yes"),
                          ("E:", "removable", "no")])
        self.assertEqual({row[5] for row in by["OK"]}, {"compliant"})
        self.assertEqual(by["OK"][0][1], ok)
        self.assertEqual(by["HALF"][1][10], "40")
        self.assertEqual(by["OFF"][0][8], "off")
        self.assertEqual(by["NOKEY"][0][11], "no")
        self.assertEqual(by["NEVER"], [["CMP-%s-NEVER" % tag, never, "CORP",
                                        "Windows 11 Pro 23H2", "", "unknown", "", "", "", "",
                                        "", ""]])
        del off, half, nokey

    def test_compliance_pages(self):
        tag = secrets.token_hex(3).upper()
        for i in range(55):
            self.kw.register(name="PG-%s-%02d" % (tag, i))
        b = self.reader()
        seen = []
        url = REPORTS[2]
        for _ in range(100):
            r = b.get(url)
            self.assertPage(r, 200)
            html = r.body.decode()
            seen += re.findall(r'<th scope="row">(PG-%s-\d\d)</th>' % tag, html)
            m = re.search(r'href="([^"]+)" rel="next"', html)
            if not m:
                break
            url = m.group(1).replace("&amp;", "&")
        self.assertEqual(seen, ["PG-%s-%02d" % (tag, i) for i in range(55)])
