"""The HTTP server (SPEC §5, §6, §7): headers, routing, /healthz, /metrics,
durability across restarts, encryption at rest, the access log, draining on
SIGTERM, HTTPS."""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import threading
import time
import unittest

import kw
from kw import key_id, new_keys, recovery_password, volume

TEXTUAL = re.compile(r"^(text/|application/(json|javascript|xml)|[^;]*\+(json|xml))", re.I)


class HeadersTest(kw.ServerTestCase):

    def assertStandardHeaders(self, r, what):
        h = r.headers
        self.assertEqual(h.get("Content-Security-Policy"), kw.CSP, what)
        self.assertEqual(len(h.get_all("Content-Security-Policy")), 1, what)
        self.assertEqual(h.get("X-Content-Type-Options"), "nosniff", what)
        self.assertEqual(h.get("Referrer-Policy"), "no-referrer", what)
        ct = h.get("Content-Type")
        if r.body:
            self.assertTrue(ct, what)
        if ct and TEXTUAL.match(ct):
            self.assertRegex(ct, r";\s*charset=utf-8\b", what)
        self.assertIsNone(h.get("Strict-Transport-Security"), what)  # plain HTTP

    def test_every_status_carries_security_headers(self):
        _, secret = self.new_device()
        token = self.kw.enroll_token()
        auth = {"Authorization": "Bearer " + secret}
        cases = [
            (200, ("GET", "/healthz", None, {})),
            (200, ("GET", "/metrics", None, {})),
            (200, ("POST", "/api/v1/checkin", json.dumps({"volumes": []}), auth)),
            (201, ("POST", "/api/v1/register",
                   json.dumps({"enrollment_token": token, "name": "PC-H"}), {})),
            (400, ("POST", "/api/v1/checkin", "{bad", auth)),
            (401, ("POST", "/api/v1/checkin", json.dumps({"volumes": []}), {})),
            (404, ("GET", "/no/such/page", None, {})),
            (404, ("GET", "/api/v1/nothing", None, {})),
            (405, ("GET", "/api/v1/checkin", None, {})),
            (405, ("DELETE", "/api/v1/register", None, {})),
            (413, ("POST", "/api/v1/checkin", " " * 70000, auth)),
            (422, ("POST", "/api/v1/checkin", json.dumps({"volumes": 5}), auth)),
        ]
        for status, (method, path, body, headers) in cases:
            hdrs = dict(headers)
            if body is not None:
                hdrs["Content-Type"] = "application/json"
            r = self.kw.request(method, path, body=body, headers=hdrs)
            self.assertEqual(r.status, status, (method, path, r))
            self.assertStandardHeaders(r, (method, path, status))

    def test_pages_and_static_files_carry_security_headers(self):
        # the portal's own pages are tested elsewhere; here only that the
        # server-wide headers and charsets reach every kind of response
        seen = 0
        for method, path in (("GET", "/login"), ("GET", "/"), ("GET", "/SelfService"),
                             ("GET", "/static/portal.css"), ("GET", "/static/portal.js"),
                             ("POST", "/login")):
            r = self.kw.request(method, path, body="" if method == "POST" else None,
                                headers={"Content-Type": "application/x-www-form-urlencoded"}
                                if method == "POST" else {})
            if r.status == 404:
                continue
            seen += 1
            self.assertStandardHeaders(r, (method, path, r.status))
        self.assertGreater(seen, 0)

    def test_unknown_path_404(self):
        for path in ("/nope", "/api/v1/checkin/extra", "/api/v2/checkin", "/healthz/x",
                     "/%2e%2e/etc/passwd"):
            r = self.kw.request("GET", path)
            self.assertEqual(r.status, 404, (path, r))

    def test_wrong_method_405_with_allow(self):
        for method, path in (("GET", "/api/v1/checkin"), ("PUT", "/api/v1/checkin"),
                             ("GET", "/api/v1/register")):
            r = self.kw.request(method, path)
            self.assertEqual(r.status, 405, (method, path, r))
            allow = r.header("Allow")
            self.assertTrue(allow, (method, path))
            self.assertIn("POST", [m.strip() for m in allow.split(",")])
            self.assertNotIn(method, [m.strip() for m in allow.split(",")])

    def test_healthz(self):
        r = self.kw.request("GET", "/healthz")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.text().strip(), "ok")
        self.assertRegex(r.header("Content-Type"), r"^text/plain\b")

    def test_keep_alive_serves_several_requests(self):
        conn = self.kw.connection()
        try:
            for _ in range(3):
                conn.request("GET", "/healthz")
                r = conn.getresponse()
                self.assertEqual(r.status, 200)
                self.assertEqual(r.read().strip(), b"ok")
        finally:
            conn.close()


class MetricsTest(kw.ServerTestCase):

    def test_prometheus_text_format(self):
        self.kw.request("GET", "/healthz")
        r = self.kw.request("GET", "/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertRegex(r.header("Content-Type"), r"^text/plain;\s*version=0\.0\.4")
        sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="'
                            r'(?:[^"\\\n]|\\.)*",?)*\})? [-+0-9.eEInfa]+$')
        types = {}
        for line in r.text().splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ", 3)
                types[name] = kind
            elif line.startswith("#") or not line:
                continue
            else:
                self.assertRegex(line, sample)
        self.assertEqual(types.get("keywarden_http_requests_total"), "counter")
        self.assertEqual(types.get("keywarden_escrowed_keys_total"), "counter")

    def test_request_counter(self):
        name = 'keywarden_http_requests_total{method="GET",route="/healthz",status="200"}'
        before = self.kw.metrics().get(name, 0)
        for _ in range(3):
            self.kw.request("GET", "/healthz")
        kw.wait_for(lambda: self.kw.metrics()[name] >= before + 3)
        self.assertEqual(self.kw.metrics()[name], before + 3)

    def test_escrowed_keys_counter(self):
        name = "keywarden_escrowed_keys_total"
        before = self.kw.metrics()[name]
        did, secret = self.new_device()
        vols = [volume(new_keys(3)), volume(new_keys(2), mount="D:", vtype="fixed")]
        r = self.kw.checkin(secret, volumes=vols)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.kw.metrics()[name], before + 5)
        # the same check-in again escrows nothing
        self.assertEqual(self.kw.checkin(secret, volumes=vols).status, 200)
        self.assertEqual(self.kw.metrics()[name], before + 5)
        # refused check-ins escrow nothing
        bad = [volume(new_keys(1) + [(key_id(), "311111-" * 7 + "311111")])]
        self.assertEqual(self.kw.checkin(secret, volumes=bad).status, 422)
        self.assertEqual(self.kw.metrics()[name], before + 5)
        vols[0]["recovery_keys"].append({"key_id": key_id(),
                                         "recovery_password": recovery_password()})
        self.assertEqual(self.kw.checkin(secret, volumes=vols).status, 200)
        self.assertEqual(self.kw.metrics()[name], before + 6)


class PersistenceTest(kw.ServerTestCase):

    def test_restart_keeps_everything(self):
        devices = []
        for i in range(3):
            did, secret = self.new_device()
            vols = [volume(new_keys(2)), volume(new_keys(1), mount="E:", vtype="removable")]
            self.assertEqual(self.kw.checkin(
                secret, volumes=vols,
                logons=[{"user": "CORP\\u%d" % i, "type": "local"}]).status, 200)
            devices.append((did, secret, vols))
        _, rows_before, text_before = self.kw.export()
        shows = {did: self.kw.device_show(did) for did, _, _ in devices}
        self.kw.restart()
        _, rows_after, text_after = self.kw.export()
        self.assertEqual(text_after, text_before)
        ids = {d[0] for d in devices}
        self.assertEqual(len([r for r in rows_after if r["device_id"] in ids]), 9)
        for did, secret, vols in devices:
            self.assertEqual(self.kw.device_show(did), shows[did])
            # the device secret still works and the same check-in adds nothing
            self.assertEqual(self.kw.checkin(secret, volumes=vols).status, 200)
        self.assertEqual(self.kw.export()[2], text_before)

    def test_kill_9_keeps_acknowledged_keys(self):
        did, secret = self.new_device()
        keys = new_keys(4)
        for k in keys:
            self.assertEqual(self.kw.checkin(secret, volumes=[volume([k], vid=key_id())])
                             .status, 200)
        self.kw.proc.send_signal(signal.SIGKILL)
        self.kw.proc.wait()
        self.kw.proc = None
        self.kw.start()
        got = {r["key_id"]: r["recovery_password"] for r in self.kw.export_rows(did)}
        self.assertEqual(got, dict(keys))


@unittest.skipUnless(kw.IS_SQLITE, "the data-dir scan needs SQLite")
class AtRestTest(kw.ServerTestCase):

    def scan(self, needles):
        """{file: [needles found]} over the database files."""
        db = self.kw.sqlite_path
        found = {}
        for name in os.listdir(os.path.dirname(db)):
            if not name.startswith(os.path.basename(db)):
                continue
            with open(os.path.join(os.path.dirname(db), name), "rb") as f:
                data = f.read()
            hits = [n for n in needles if n.encode() in data]
            if hits:
                found[name] = hits
        return found

    def test_no_plaintext_secrets_in_database_files(self):
        token = self.kw.enroll_token()
        did, secret = self.kw.register(token=token)
        keys = new_keys(10) + [(key_id(), "496298-461032-321464-595518-463221-173943-"
                                          "033616-139579")]
        self.assertEqual(self.kw.checkin(secret, volumes=[volume(keys[:6]),
                                                          volume(keys[6:], mount="D:")])
                         .status, 200)
        needles = [pw for _, pw in keys] + [pw.replace("-", "") for _, pw in keys]
        needles += [secret, secret.split("_", 1)[-1], token, token.split("_", 1)[-1]]
        # sanity: the scan finds what is there
        self.assertTrue(os.path.exists(self.kw.sqlite_path))
        files = [n for n in os.listdir(self.kw.dir) if n.startswith("kw.db")]
        self.assertIn("kw.db", files)
        self.assertTrue(self.scan([did]), "device id not found: the scan is broken")
        # while running (WAL present) and after a clean stop (checkpointed)
        self.assertEqual(self.scan(needles), {})
        self.kw.stop()
        self.assertEqual(self.scan(needles), {})
        self.kw.start()
        # and the keys are all there
        got = {r["key_id"]: r["recovery_password"] for r in self.kw.export_rows(did)}
        self.assertEqual(got, dict(keys))


class AccessLogTest(kw.ServerTestCase):

    def test_one_line_per_request(self):
        marks = ["/probe-%s" % key_id().lower() for _ in range(5)]
        for m in marks:
            self.kw.request("GET", m)
        before = len([l for l in self.kw.access_lines() if "GET /healthz " in l])
        for _ in range(4):
            self.kw.request("GET", "/healthz")
        kw.wait_for(lambda: len([l for l in self.kw.access_lines()
                                 if "GET /healthz " in l]) >= before + 4)
        time.sleep(0.1)
        lines = self.kw.access_lines()
        for m in marks:
            hits = [l for l in lines if " GET %s " % m in l]
            self.assertEqual(len(hits), 1, (m, hits))
            self.assertRegex(hits[0], r" 404 ")
        self.assertEqual(len([l for l in lines if "GET /healthz " in l]), before + 4)

    def test_counts_check_ins_and_registrations(self):
        def count(s):
            return len([l for l in self.kw.access_lines() if s in l])
        c0, r0 = count("POST /api/v1/checkin "), count("POST /api/v1/register ")
        did, secret = self.new_device()
        for _ in range(3):
            self.kw.checkin(secret, volumes=[volume(new_keys(1))])
        self.kw.checkin("nope", volumes=[])
        kw.wait_for(lambda: count("POST /api/v1/checkin ") >= c0 + 4)
        time.sleep(0.1)
        self.assertEqual(count("POST /api/v1/checkin "), c0 + 4)
        self.assertEqual(count("POST /api/v1/register "), r0 + 1)

    def test_log_never_holds_secrets(self):
        token = self.kw.enroll_token()
        did, secret = self.kw.register(token=token)
        keys = new_keys(3)
        vid = key_id()
        self.assertEqual(self.kw.checkin(secret, volumes=[volume(keys, vid=vid)]).status, 200)
        # a conflicting password, an invalid one, and secrets in the query string
        other = recovery_password()
        self.assertEqual(self.kw.checkin(secret, volumes=[volume(
            [(keys[0][0], other)], vid=vid)]).status, 409)
        bad = recovery_password()[:-6] + "311111"
        self.assertEqual(self.kw.checkin(secret, volumes=[volume(
            [(key_id(), bad)], vid=vid)]).status, 422)
        self.kw.request("POST", "/api/v1/register",
                        json={"enrollment_token": token, "name": "x\n" + secret})
        self.kw.request("GET", "/healthz?token=" + token)
        kw.wait_for(lambda: "GET /healthz" in self.kw.log())
        log = self.kw.log()
        self.assertIn("POST /api/v1/checkin", log)
        needles = [pw for _, pw in keys] + [pw.replace("-", "") for _, pw in keys]
        needles += [other, other.replace("-", ""), bad, bad.replace("-", ""),
                    secret, secret.split("_", 1)[-1], token, token.split("_", 1)[-1]]
        self.kw.stop()
        log = self.kw.log()
        for n in needles:
            self.assertNotIn(n, log)
        self.kw.start()


class DrainTest(unittest.TestCase):

    def setUp(self):
        self.kw = kw.Keywarden(name="drain")
        self.addCleanup(self.kw.close)

    def test_sigterm_finishes_request_in_progress(self):
        did, secret = self.kw.register()
        keys = new_keys(2)
        body = json.dumps({"os": "W", "volumes": [volume(keys)]}).encode()
        head = (b"POST /api/v1/checkin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Authorization: Bearer " + secret.encode() + b"\r\n"
                b"Content-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body))
        half = len(body) // 2
        s = socket.create_connection(("127.0.0.1", self.kw.port), timeout=60)
        try:
            s.sendall(head + body[:half])
            time.sleep(0.3)
            self.kw.proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            self.assertIsNone(self.kw.proc.poll(), "exited before the request finished")
            s.sendall(body[half:])
            status, headers, reply = kw.read_response(s)
        finally:
            s.close()
        self.assertEqual(status, 200, reply)
        self.assertEqual(json.loads(reply), {"rotate": [], "checkin_interval": 5400})
        self.assertEqual(self.kw.stop(), 0)
        got = {r["key_id"]: r["recovery_password"] for r in self.kw.export_rows(did)}
        self.assertEqual(got, dict(keys))

    def test_sigterm_idle_exits_zero(self):
        self.assertEqual(self.kw.request("GET", "/healthz").status, 200)
        t0 = time.monotonic()
        self.assertEqual(self.kw.stop(), 0)
        self.assertLess(time.monotonic() - t0, 10 if not kw.WRAPPER else 60)

    def test_sigint_exits_zero(self):
        self.assertEqual(self.kw.request("GET", "/healthz").status, 200)
        self.kw.proc.send_signal(signal.SIGINT)
        self.assertEqual(self.kw.proc.wait(kw.STOP_TIMEOUT), 0, self.kw.log())
        self.kw.proc = None

    def test_port_in_use_fails_clearly(self):
        other = kw.Keywarden(name="busy", start=False)
        self.addCleanup(other.close, False)
        other.settings["server"]["listen"] = "127.0.0.1:%d" % self.kw.port
        other.write_config()
        try:
            rc = other.start(expect_fail=True)
        finally:
            other.kill()
        self.assertNotEqual(rc, 0)
        self.assertIn(str(self.kw.port), other.log())
        self.assertEqual(self.kw.request("GET", "/healthz").status, 200)

    def test_new_connections_refused_while_draining(self):
        did, secret = self.kw.register()
        body = json.dumps({"volumes": [volume(new_keys(1))]}).encode()
        s = socket.create_connection(("127.0.0.1", self.kw.port), timeout=60)
        try:
            s.sendall(b"POST /api/v1/checkin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                      + secret.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
                      + body[:10])
            time.sleep(0.3)
            self.kw.proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            with self.assertRaises(OSError):
                c = socket.create_connection(("127.0.0.1", self.kw.port), timeout=2)
                try:
                    c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    if c.recv(100) == b"":
                        raise ConnectionResetError("closed")
                finally:
                    c.close()
            s.sendall(body[10:])
            status, _, _ = kw.read_response(s)
            self.assertEqual(status, 200)
        finally:
            s.close()
        self.assertEqual(self.kw.stop(), 0)


class ConnectionLimitTest(kw.ServerTestCase):
    """At max_connections a further client waits in the listen backlog and
    is served once a connection closes; it is not refused."""
    settings = {"server": {"max_connections": "2"}}

    def test_client_beyond_the_limit_waits(self):
        idle = [socket.create_connection(("127.0.0.1", self.kw.port), timeout=10)
                for _ in range(2)]
        # Both counted as open connections before the third arrives.
        for s in idle:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertIn(b"200", s.recv(4096))
        result = {}

        def third():
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.kw.port, timeout=20)
                c.request("GET", "/healthz")
                result["status"] = c.getresponse().status
                c.close()
            except Exception as e:       # reported by the assertion below
                result["error"] = repr(e)
        t = threading.Thread(target=third)
        t.start()
        t.join(0.5)
        self.assertTrue(t.is_alive(), "served beyond the limit: %r" % result)
        idle[0].close()
        t.join(20)
        idle[1].close()
        self.assertEqual(result, {"status": 200})


class ConcurrencyTest(kw.ServerTestCase):

    def run_parallel(self, fns):
        results = [None] * len(fns)

        def work(i):
            try:
                results[i] = fns[i]()
            except Exception as e:       # reported by the assertions below
                results[i] = e
        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(fns))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        return results

    def test_parallel_check_ins_all_stored(self):
        devices = [self.new_device() for _ in range(32)]
        plans = [(did, secret, [volume(new_keys(2)), volume(new_keys(1), mount="D:")])
                 for did, secret in devices]
        results = self.run_parallel([
            (lambda s=secret, v=vols: self.kw.checkin(s, volumes=v))
            for _, secret, vols in plans])
        for r in results:
            self.assertIsInstance(r, kw.Response, r)
            self.assertEqual(r.status, 200, r)
        rows = self.kw.export_rows()
        for did, _, vols in plans:
            want = {k["key_id"]: k["recovery_password"] for v in vols
                    for k in v["recovery_keys"]}
            got = {r["key_id"]: r["recovery_password"] for r in rows
                   if r["device_id"] == did}
            self.assertEqual(got, want)

    def test_parallel_check_ins_of_one_device(self):
        did, secret = self.new_device()
        vols = [volume(new_keys(1), mount="V%d:" % i, vtype="fixed") for i in range(16)]
        results = self.run_parallel([
            (lambda v=v: self.kw.checkin(secret, volumes=[v])) for v in vols])
        for r in results:
            self.assertIsInstance(r, kw.Response, r)
            self.assertEqual(r.status, 200, r)
        states = {r["key_id"]: r["state"] for r in self.kw.export_rows(did)}
        self.assertEqual(states, {v["recovery_keys"][0]["key_id"]: "active" for v in vols})

    def test_race_for_one_key_id(self):
        # several devices report the same new key at once: exactly one wins
        devices = [self.new_device() for _ in range(8)]
        kid = key_id()
        results = self.run_parallel([
            (lambda s=secret: self.kw.checkin(
                s, volumes=[volume([(kid, recovery_password())])]))
            for _, secret in devices])
        statuses = sorted(r.status if isinstance(r, kw.Response) else repr(r)
                          for r in results)
        self.assertEqual(statuses, [200] + [409] * 7)
        rows = [r for r in self.kw.export_rows() if r["key_id"] == kid]
        self.assertEqual(len(rows), 1)




@kw.needs_openssl
class TlsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.kw = kw.tls_instance("tls")
        cls.addClassCleanup(cls.kw.close)

    def test_https_works_with_hsts(self):
        self.assertEqual(self.kw.scheme, "https")
        r = self.kw.request("GET", "/healthz")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.text().strip(), "ok")
        hsts = r.header("Strict-Transport-Security")
        self.assertTrue(hsts)
        m = re.search(r"max-age=(\d+)", hsts)
        self.assertTrue(m and int(m.group(1)) > 0, hsts)
        self.assertEqual(r.header("Content-Security-Policy"), kw.CSP)
        r = self.kw.request("GET", "/nope")
        self.assertEqual(r.status, 404)
        self.assertTrue(r.header("Strict-Transport-Security"))

    def test_device_api_over_https(self):
        did, secret = self.kw.register()
        keys = new_keys(1)
        r = self.kw.checkin(secret, volumes=[volume(keys)])
        self.assertEqual(r.status, 200, r)
        self.assertEqual([x["key_id"] for x in self.kw.export_rows(did)], [keys[0][0]])

    def test_plain_http_to_tls_port_fails(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.kw.port, timeout=10)
        try:
            conn.request("GET", "/healthz")
            r = conn.getresponse()
            body = r.read()
            self.assertNotEqual((r.status, body.strip()), (200, b"ok"))
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        # the server is still fine
        self.assertEqual(self.kw.request("GET", "/healthz").status, 200)

    def test_tls_allows_listening_beyond_loopback(self):
        s = dict(self.kw.settings)
        s["server"] = dict(s["server"], listen="0.0.0.0:8443")
        conf = os.path.join(self.kw.dir, "public.conf")
        orig = self.kw.conf
        try:
            self.kw.conf = conf
            self.kw.write_config(s)
            rc, out, err = self.kw.cli("config", "check")
        finally:
            self.kw.conf = orig
        self.assertEqual(rc, 0, err)


if __name__ == "__main__":
    unittest.main()
