"""The HTTP layer under stress and attack (issue 8): SIGTERM under load,
503 for store failures, X-Forwarded-For from trusted proxies, slow clients,
ambiguous framing, TLS versions and suites, and the headers of the
responses libmicrohttpd makes itself."""

import http.client
import json
import os
import random
import re
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import unittest

import kw
from kw import hex_prefix, key_id, key_id_with_prefix, recovery_password, volume

# The whole of 127.0.0.0/8 is loopback: attackers and proxies connect from
# one address, the checks from another.
ATTACKER = "127.0.0.1"
BYSTANDER = "127.0.0.2"
OPENSSL = kw.OPENSSL


def connect_from(source, port, timeout=30):
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def closed_by_peer(s, wait):
    """True when the server closed s within wait seconds (EOF or reset)."""
    s.settimeout(wait)
    try:
        while True:
            if s.recv(65536) == b"":
                return True
    except socket.timeout:
        return False
    except OSError:
        return True


def assertSecurityHeaders(test, headers, what, tls=False):
    """headers: a dict with lower-case names (kw.read_response) or an
    HTTPMessage."""
    get = headers.get
    test.assertEqual(get("content-security-policy"), kw.CSP, what)
    test.assertEqual(get("x-content-type-options"), "nosniff", what)
    test.assertEqual(get("referrer-policy"), "no-referrer", what)
    test.assertEqual(get("x-frame-options"), "DENY", what)
    test.assertEqual(get("cache-control"), "no-store", what)
    test.assertRegex(get("content-type") or "", r";\s*charset=utf-8", what)
    if tls:
        test.assertRegex(get("strict-transport-security") or "", r"max-age=[1-9]", what)
    else:
        test.assertIsNone(get("strict-transport-security"), what)


# ---- point 5: SIGTERM under load --------------------------------------------------

class DrainUnderLoadTest(unittest.TestCase):
    """SIGTERM while 64 keep-alive clients check in: the server always exits
    0 and every check-in answered 200 is in the database afterwards."""

    CLIENTS = 64
    ROUNDS = 6 if kw.WRAPPER else 40

    def test_sigterm_under_keep_alive_check_ins(self):
        k = kw.Keywarden(name="drainload")
        self.addCleanup(k.close, False)
        devices = [k.register() for _ in range(self.CLIENTS)]
        acked = {}                       # key_id -> (device_id, password)
        odd = []                         # answers other than 200 and 503
        lock = threading.Lock()
        for rnd in range(self.ROUNDS):
            if rnd:
                k.start()
            stop = threading.Event()
            started = threading.Semaphore(0)

            def client(did, secret):
                conn = None
                first = True
                while not stop.is_set():
                    kid, pw = key_id(), recovery_password()
                    body = json.dumps({"os": "W", "volumes": [volume([(kid, pw)])]})
                    try:
                        if conn is None:
                            conn = http.client.HTTPConnection("127.0.0.1", k.port,
                                                              timeout=60)
                        conn.request("POST", "/api/v1/checkin", body=body, headers={
                            "Authorization": "Bearer " + secret,
                            "Content-Type": "application/json"})
                        r = conn.getresponse()
                        r.read()
                        if r.status == 200:
                            with lock:
                                acked[kid] = (did, pw)
                        elif r.status != 503:
                            with lock:
                                odd.append((r.status, r.getheader("Content-Type")))
                        if r.getheader("Connection", "").lower() == "close":
                            conn.close()
                            conn = None
                    except (OSError, http.client.HTTPException):
                        if conn is not None:
                            conn.close()
                        conn = None
                        time.sleep(0.01)
                    if first:
                        started.release()
                        first = False
                    # Think time: connections sit idle between requests, so
                    # some are between two requests when the signal comes.
                    time.sleep(random.uniform(0, 0.2))
                if conn is not None:
                    conn.close()

            threads = [threading.Thread(target=client, args=d) for d in devices]
            for t in threads:
                t.start()
            for _ in threads:
                started.acquire(timeout=120)
            time.sleep(random.uniform(0.05, 0.4))
            k.proc.send_signal(signal.SIGTERM)
            try:
                rc = k.proc.wait(timeout=kw.STOP_TIMEOUT)
            finally:
                stop.set()
                for t in threads:
                    t.join(120)
            log = k.log()
            kw._live.discard(k.proc)
            k.proc = None
            self.assertEqual(rc, 0, "round %d: exit %r\n%s" % (rnd, rc, log[-3000:]))
        rows = {r["key_id"]: (r["device_id"], r["recovery_password"])
                for r in k.export_rows()}
        missing = [kid for kid, v in acked.items() if rows.get(kid) != v]
        self.assertGreater(len(acked), self.ROUNDS)
        self.assertEqual(odd, [])
        self.assertEqual(missing, [])


class DrainKeepAliveTest(unittest.TestCase):

    def test_idle_keep_alive_connection_gets_503_while_draining(self):
        # A connection idle at SIGTERM sends its next request while another
        # request keeps the server draining: 503 with Connection: close, and
        # nothing of it stored.
        k = kw.Keywarden(name="drainidle")
        self.addCleanup(k.close)
        did, secret = k.register()
        idle = http.client.HTTPConnection("127.0.0.1", k.port, timeout=60)
        self.addCleanup(idle.close)
        first = new_checkin = None
        try:
            first = (key_id(), recovery_password())
            idle.request("POST", "/api/v1/checkin", headers={
                "Authorization": "Bearer " + secret, "Content-Type": "application/json"},
                body=json.dumps({"volumes": [volume([first])]}))
            r = idle.getresponse()
            r.read()
            self.assertEqual(r.status, 200)
            self.assertNotEqual((r.getheader("Connection") or "").lower(), "close")
            body = json.dumps({"volumes": [volume([(key_id(), recovery_password())])]}).encode()
            slow = socket.create_connection(("127.0.0.1", k.port), timeout=60)
            self.addCleanup(slow.close)
            slow.sendall(b"POST /api/v1/checkin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                         + secret.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
                         + body[:10])
            time.sleep(0.3)
            k.proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            new_checkin = (key_id(), recovery_password())
            idle.request("POST", "/api/v1/checkin", headers={
                "Authorization": "Bearer " + secret, "Content-Type": "application/json"},
                body=json.dumps({"volumes": [volume([new_checkin])]}))
            r = idle.getresponse()
            reply = r.read()
            self.assertEqual(r.status, 503)
            self.assertEqual(r.getheader("Connection"), "close")
            self.assertRegex(r.getheader("Retry-After") or "", r"^[1-9]\d*$")
            self.assertIn("error", json.loads(reply))
            slow.sendall(body[10:])
            status, _, _ = kw.read_response(slow)
            self.assertEqual(status, 200)
        finally:
            self.assertEqual(k.stop(), 0)
        keys = {r["key_id"] for r in k.export_rows(did)}
        self.assertIn(first[0], keys)
        self.assertNotIn(new_checkin[0], keys)


# ---- point 6: store failures are 503 on every route -----------------------------------

@kw.needs_sqlite
class StoreFailureTest(kw.PortalTestCase):
    """A store that refuses writes (a trigger raising an error) gets 503 with
    Retry-After on every route, from a handler or from the sign-in check."""
    settings = {"portal": {"session_idle_timeout": "20s", "session_warning": "5s"}}

    def failing(self, table, op):
        db = self.kw.db()
        name = "fail_%s_%s" % (table, op.lower())
        db.execute("CREATE TRIGGER %s BEFORE %s ON %s BEGIN "
                   "SELECT RAISE(ABORT, 'store failure for the test'); END;" % (name, op, table))
        self.addCleanup(lambda: (db.execute("DROP TRIGGER IF EXISTS %s" % name), db.close()))

    def assert503(self, r, what):
        self.assertEqual(r.status, 503, (what, r))
        self.assertRegex(r.header("Retry-After") or "", r"^[1-9]\d*$", what)
        self.assertEqual(r.header("Content-Security-Policy"), kw.CSP, what)

    def test_sign_in_when_sessions_cannot_be_written(self):
        name, pw = self.new_user()
        self.failing("sessions", "INSERT")
        r = self.browser().login(name, pw)
        self.assert503(r, "POST /login")
        self.assertFalse((r.header("Content-Type") or "").startswith("application/json"))

    def test_page_when_the_session_cannot_be_touched(self):
        # The sign-in check itself (the session's activity is written) fails.
        # Activity is written at most every idle/20 s: 1 s here (a 20 s idle
        # timeout), so the views below, a second later, are due to write it.
        b = self.signed_in()
        self.failing("sessions", "UPDATE")
        time.sleep(1.1)
        self.assert503(b.get("/recover"), "GET /recover")
        self.assert503(b.recover(hex_prefix()), "POST /recover")

    def test_api_when_devices_cannot_be_written(self):
        token = self.kw.enroll_token()
        self.failing("devices", "INSERT")
        r = self.kw.request("POST", "/api/v1/register",
                            json={"enrollment_token": token, "name": "PC-503"})
        self.assert503(r, "POST /api/v1/register")
        self.assertIn("error", r.json())


# ---- point 9: X-Forwarded-For from trusted proxies ------------------------------------

class TrustedProxyTest(kw.PortalTestCase):
    """127.0.0.1 plays the TLS proxy (127.0.0.3 a second one inside it);
    127.0.0.2 is an ordinary client."""
    settings = {"server": {"trusted_proxies": "127.0.0.1, 127.0.0.3/32, fd00::/8",
                           "max_connections_per_address": "4"},
                "limits": {"lookup_failures": "100/15m",
                           "lookup_failures_per_address": "2/15m"}}

    def logged_client(self, xff=(), source=None):
        """The client address the access log gives to a request with these
        X-Forwarded-For headers, sent from source (default 127.0.0.1)."""
        path = "/probe-%s" % key_id().lower()
        s = connect_from(source or ATTACKER, self.kw.port)
        try:
            s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (path, "".join(
                "X-Forwarded-For: %s\r\n" % v for v in xff))).encode())
            status, _, _ = kw.read_response(s)
        finally:
            s.close()
        self.assertEqual(status, 404)
        line = kw.wait_for(lambda: [l for l in self.kw.log().splitlines()
                                    if " GET %s " % path in l])
        self.assertEqual(len(line), 1, path)
        return re.search(r"(\S+) GET " + re.escape(path) + " ", line[0]).group(1)

    def test_rightmost_untrusted_hop_is_the_client(self):
        cases = [
            ((), "127.0.0.1"),                                  # the proxy itself
            (("203.0.113.7",), "203.0.113.7"),
            (("198.51.100.9, 203.0.113.7",), "203.0.113.7"),    # the left is the client's say
            (("198.51.100.9, 127.0.0.3",), "198.51.100.9"),     # through a second proxy
            (("198.51.100.9", "127.0.0.3"), "198.51.100.9"),    # two headers, in order
            (("203.0.113.7:4711",), "203.0.113.7"),
            (("[2001:db8::7]:4711",), "2001:db8::7"),
            (("2001:db8::7",), "2001:db8::7"),
            (("::ffff:203.0.113.7",), "203.0.113.7"),
            (("fd00::1, 127.0.0.3",), "fd00::1"),              # all trusted: the leftmost
        ]
        for xff, want in cases:
            self.assertEqual(self.logged_client(xff), want, xff)

    def test_malformed_forwarded_for_stops_at_the_proxy(self):
        cases = [
            (("garbage",), "127.0.0.1"),
            (("",), "127.0.0.1"),
            (("203.0.113.7, ",), "127.0.0.1"),
            (("203.0.113.7, unknown, 127.0.0.3",), "127.0.0.3"),
            (("203.0.113.7 198.51.100.9",), "127.0.0.1"),
            (("1.2.3.4.5",), "127.0.0.1"),
        ]
        for xff, want in cases:
            self.assertEqual(self.logged_client(xff), want, xff)

    def test_many_headers_keep_the_rightmost(self):
        """Headers a client sends in front push out its own, never the
        proxies': with 20 of them the rightmost still decide."""
        xff = tuple("198.51.100.%d" % i for i in range(19)) + ("203.0.113.7, 127.0.0.3",)
        self.assertEqual(self.logged_client(xff), "203.0.113.7")

    def test_untrusted_peer_cannot_claim_an_address(self):
        self.assertEqual(self.logged_client(("203.0.113.7",), source=BYSTANDER), BYSTANDER)

    def test_limits_and_audit_use_the_client_address(self):
        users = [self.signed_in() for _ in range(3)]
        one = {"X-Forwarded-For": "203.0.113.10"}
        for b in users[:2]:
            self.assertEqual(b.recover(hex_prefix(), headers=one).status, 404)
        # 203.0.113.10 is at lookup_failures_per_address; the proxy's other
        # clients are not
        self.assertEqual(users[2].recover(hex_prefix(), headers=one).status, 429)
        self.assertEqual(users[2].recover(
            hex_prefix(), headers={"X-Forwarded-For": "203.0.113.11"}).status, 404)
        clients = [r["client"] for r in self.kw.audit_export()[-4:]]
        self.assertEqual(clients, ["203.0.113.10"] * 3 + ["203.0.113.11"])

    def test_connection_cap_spares_trusted_proxies(self):
        def open_and_ask(source, n):
            socks, served = [], 0
            try:
                for _ in range(n):
                    socks.append(connect_from(source, self.kw.port))
                for s in socks:
                    try:
                        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                        served += kw.read_response(s)[0] == 200
                    except (OSError, ConnectionError):
                        pass
            finally:
                for s in socks:
                    s.close()
            return served
        self.assertEqual(open_and_ask(ATTACKER, 8), 8)       # the proxy
        # an address no other test uses: its count starts at 0
        self.assertEqual(open_and_ask("127.0.0.9", 8), 4)    # max_connections_per_address


# ---- point 10: slow clients ---------------------------------------------------------

class SlowClientTest(kw.ServerTestCase):
    """One address holding connections open (slowloris) neither fills the
    server nor keeps its connections past the header and body deadlines."""
    settings = {"server": {"max_connections": "60", "max_connections_per_address": "20"}}

    def test_slowloris_leaves_the_portal_answering(self):
        # As `slowhttptest -H` does: many connections, each sending one more
        # header line every couple of seconds and never ending the request.
        stop = threading.Event()
        socks = []
        opened = threading.Event()

        def attack():
            for _ in range(100):
                try:
                    s = connect_from(ATTACKER, self.kw.port, timeout=5)
                    s.sendall(b"GET /login HTTP/1.1\r\nHost: x\r\nUser-Agent: slow\r\n")
                    socks.append(s)
                except OSError:
                    pass
            opened.set()
            n = 0
            while not stop.wait(2):
                n += 1
                for s in socks:
                    try:
                        s.sendall(b"X-Slow-%d: %d\r\n" % (n, n))
                    except OSError:
                        pass
        t = threading.Thread(target=attack)
        t.start()
        try:
            opened.wait(60)
            deadline = time.monotonic() + 14
            checks = 0
            while time.monotonic() < deadline:
                for path in ("/healthz", "/login"):
                    c = http.client.HTTPConnection("127.0.0.1", self.kw.port, timeout=5,
                                                   source_address=(BYSTANDER, 0))
                    try:
                        c.request("GET", path)
                        r = c.getresponse()
                        r.read()
                        self.assertEqual(r.status, 200, path)
                        checks += 1
                    finally:
                        c.close()
                time.sleep(0.5)
            self.assertGreater(checks, 10)
            # the attacker's connections that were accepted are gone by now:
            # bytes kept arriving, but the headers never ended
            still_open = [s for s in socks if not closed_by_peer(s, 0.2)]
            self.assertEqual(still_open, [])
        finally:
            stop.set()
            t.join(30)
            for s in socks:
                s.close()

    def test_slow_body_is_cut(self):
        s = connect_from(BYSTANDER, self.kw.port)
        try:
            s.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      b"application/x-www-form-urlencoded\r\nContent-Length: 10000\r\n\r\n")
            # one byte a second, for longer than any deadline the server keeps
            closed = False
            for _ in range(25):
                try:
                    s.sendall(b"a")
                except OSError:
                    closed = True
                    break
                if closed_by_peer(s, 1):
                    closed = True
                    break
            self.assertTrue(closed, "a body at 1 byte/s was still being read after 25 s")
        finally:
            s.close()
        self.assertEqual(self.kw.request("GET", "/healthz").status, 200)


# ---- point 13: ambiguous framing ----------------------------------------------------

class FramingTest(kw.ServerTestCase):

    def send_checkin(self, secret, extra_headers, body):
        head = (b"POST /api/v1/checkin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                + secret.encode() + b"\r\nContent-Type: application/json\r\n"
                + extra_headers + b"\r\n")
        return self.kw.raw_request(head + body)

    def test_two_content_lengths_refused(self):
        did, secret = self.new_device()
        k = (key_id(), recovery_password())
        body = json.dumps({"volumes": [volume([k])]}).encode()
        cases = [
            b"Content-Length: %d\r\nContent-Length: %d\r\n" % (len(body), len(body) + 5),
            b"Content-Length: %d\r\nContent-Length: %d\r\n" % (len(body), len(body)),
            b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % len(body),
            b"Transfer-Encoding: chunked\r\nContent-Length: %d\r\n" % len(body),
        ]
        for extra in cases:
            status, headers, _ = self.send_checkin(secret, extra, body)
            self.assertEqual(status, 400, extra)
            self.assertEqual(headers.get("connection"), "close", extra)
            assertSecurityHeaders(self, headers, extra)
        self.assertEqual(self.kw.export_rows(did), [])
        # one Content-Length is fine
        status, _, _ = self.send_checkin(secret, b"Content-Length: %d\r\n" % len(body), body)
        self.assertEqual(status, 200)
        self.assertEqual([r["key_id"] for r in self.kw.export_rows(did)], [k[0]])


# ---- point 15: libmicrohttpd's own responses ----------------------------------------

class OwnErrorsTest(kw.ServerTestCase):
    """Responses libmicrohttpd makes itself carry the same headers, and a
    browser's usual headers (150 small cookies) fit."""

    def test_malformed_requests(self):
        for raw, want in ((b"GET /\r\n\r\n", 400),
                          (b"GET / HTTP/1.1 junk\r\nHost: x\r\n\r\n", 400),
                          (b"\x00\x01 / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
                          (b"GET / HTTP/1.1\r\nno colon here\r\nHost: x\r\n\r\n", 400),
                          (b"GET / HTTP/9.1\r\nHost: x\r\n\r\n", 505)):
            status, headers, _ = self.kw.raw_request(raw)
            self.assertEqual(status, want, raw)
            assertSecurityHeaders(self, headers, raw)

    def test_uri_too_long(self):
        status, headers, _ = self.kw.raw_request(
            b"GET /" + b"a" * 60000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(status, 414)
        assertSecurityHeaders(self, headers, 414)

    def test_headers_too_large(self):
        big = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"v" * 1000) for i in range(60))
        status, headers, _ = self.kw.raw_request(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")
        self.assertEqual(status, 431)
        assertSecurityHeaders(self, headers, 431)

    def test_150_small_cookies(self):
        cookie = "; ".join("c%03d=%s" % (i, "v" * 14) for i in range(150))
        for path in ("/healthz", "/login"):
            status, headers, body = self.kw.raw_request(
                ("GET %s HTTP/1.1\r\nHost: x\r\nUser-Agent: Mozilla/5.0 (X11; Linux "
                 "x86_64)\r\nAccept: text/html\r\nAccept-Language: en\r\nCookie: %s\r\n\r\n"
                 % (path, cookie)).encode())
            self.assertEqual(status, 200, path)
            assertSecurityHeaders(self, headers, path)


# ---- point 14: TLS versions and suites; HSTS on libmicrohttpd's own errors ----------------

@kw.needs_openssl
class TlsPolicyTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.kw = kw.tls_instance("tlspolicy")
        cls.addClassCleanup(cls.kw.close)
        # Debian's openssl.cnf forbids the client old versions and weak
        # suites; an empty one lets it try them.
        cls.conf = os.path.join(cls.kw.dir, "openssl-client.cnf")
        with open(cls.conf, "w") as f:
            f.write("")

    def handshake(self, *args):
        """(succeeded, output) of an openssl s_client handshake."""
        env = dict(os.environ, OPENSSL_CONF=self.conf)
        p = subprocess.run([OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % self.kw.port,
                            "-servername", "localhost"] + list(args),
                           input="", capture_output=True, text=True, timeout=60, env=env)
        out = p.stdout + p.stderr
        ok = p.returncode == 0 and re.search(r"Cipher is (?!\(NONE\))\S+", out) is not None
        return ok, out

    def test_old_versions_refused(self):
        for version in ("-tls1", "-tls1_1"):
            ok, out = self.handshake(version, "-cipher", "DEFAULT:@SECLEVEL=0")
            self.assertFalse(ok, (version, out[-800:]))

    def test_static_rsa_and_cbc_suites_refused(self):
        for suite in ("AES128-SHA", "AES256-SHA256", "AES128-GCM-SHA256",
                      "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA384"):
            ok, out = self.handshake("-tls1_2", "-cipher", suite + ":@SECLEVEL=0")
            self.assertFalse(ok, (suite, out[-800:]))

    def test_tls13_works(self):
        ok, out = self.handshake("-tls1_3")
        self.assertTrue(ok, out[-800:])
        self.assertIn("TLSv1.3", out)

    def test_tls12_ecdhe_gcm_works(self):
        for suite in ("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384",
                      "ECDHE-RSA-CHACHA20-POLY1305"):
            ok, out = self.handshake("-tls1_2", "-cipher", suite)
            self.assertTrue(ok, (suite, out[-800:]))

    def test_own_errors_carry_hsts(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        for raw, want in ((b"GET /\r\n\r\n", 400),
                          (b"GET /" + b"a" * 60000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414)):
            # The server answers 414 and closes while the client is still
            # sending: the unread rest may reset the connection and take the
            # answer with it. A few tries; one answer is enough.
            for attempt in range(5):
                try:
                    with socket.create_connection(("127.0.0.1", self.kw.port),
                                                  timeout=30) as raw_s:
                        with ctx.wrap_socket(raw_s) as s:
                            try:
                                s.sendall(raw)
                            except (ssl.SSLError, ConnectionError):
                                pass
                            status, headers, _ = kw.read_response(s)
                    break
                except (ssl.SSLError, ConnectionError):
                    if attempt == 4:
                        raise
            self.assertEqual(status, want)
            assertSecurityHeaders(self, headers, want, tls=True)


if __name__ == "__main__":
    unittest.main()
