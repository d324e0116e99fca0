"""Test harness for keywarden's black-box integration tests.

Python 3 standard library only. One Keywarden object is one instance: a
temporary directory holding keywarden.conf, the master key, the SQLite
database (unless KW_TEST_DATABASE says otherwise) and the server's log.

Environment:
  KEYWARDEN          the binary (default: build/src/keywarden in the repository)
  KW_WRAPPER         a command put in front of `serve`, e.g.
                     "valgrind --leak-check=full --error-exitcode=99
                      --errors-for-leak-kinds=definite"
  KW_TEST_DATABASE   the database URL (default sqlite:DIR/kw.db). "{dir}" is
                     replaced by the instance's directory and "{id}" by a
                     unique name (e.g. postgresql:///kw_{id}); every instance
                     needs an empty database of its own.
  KW_TEST_DB_SETUP   optional shell command run before `init`, with {id},
                     {url} and {dir} replaced (e.g. "createdb kw_{id}")
  KW_TEST_DB_TEARDOWN optional shell command run when the instance is
                     closed (e.g. "dropdb --if-exists kw_{id}")
  KW_KEEP            keep the temporary directories (for debugging)
"""

import atexit
import csv
import glob
import html
import http.client
import io
import json as jsonlib
import os
import random
import re
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BINARY = os.path.abspath(os.environ.get("KEYWARDEN") or
                         os.path.join(REPO, "build", "src", "keywarden"))
WRAPPER = shlex.split(os.environ.get("KW_WRAPPER", ""))
STARTUP_TIMEOUT = 60.0 if WRAPPER else 10.0
STOP_TIMEOUT = 120.0 if WRAPPER else 30.0
CLI_TIMEOUT = 60.0
IS_SQLITE = os.environ.get("KW_TEST_DATABASE", "sqlite:").startswith("sqlite:")
ADMIN_PASSWORD = "Correct-Horse-Battery-42"

CSP = ("default-src 'self'; frame-ancestors 'none'; form-action 'self'; "
       "base-uri 'none'")
EXPORT_HEADER = ("device_id,device_name,domain,volume_id,mount,key_id,"
                 "recovery_password,state,created_at,disclosed_at")
LISTEN_RE = re.compile(r"keywarden listening on (https?)://127\.0\.0\.1:(\d+)")
# An access-log line: "... 127.0.0.1 GET /path 200 12 0.3ms"
ACCESS_RE = re.compile(r"\b127\.0\.0\.1 ([A-Z]+) (\S+) (\d{3}) ")

_live = set()          # every server process started, killed at exit
_port0 = None          # does the program accept listen = 127.0.0.1:0?


@atexit.register
def _kill_leftovers():
    for p in list(_live):
        if p.poll() is None:
            p.kill()
            p.wait()


def wait_for(fn, timeout=None, interval=0.02):
    """Polls fn() until it returns a true value or timeout passes; returns
    the last value. (Access-log lines and request counters are written when
    a response has been sent, so they may lag the client by a moment.)"""
    deadline = time.monotonic() + (timeout or (10.0 if WRAPPER else 2.0))
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)


# ---- test data -------------------------------------------------------------

def recovery_password():
    """A valid BitLocker recovery password (8 groups of 11 * a 16-bit value)."""
    return "-".join("%06d" % (11 * random.getrandbits(16)) for _ in range(8))


def key_id():
    return str(uuid.uuid4()).upper()


def volume(keys=(), vid=None, mount="C:", vtype="os", protection="on",
           encryption="xts_aes_256", percent=100, **extra):
    """A check-in volume; keys are (key_id, password) pairs or dicts."""
    v = {"id": vid or key_id(), "mount": mount, "type": vtype,
         "protection": protection, "encryption": encryption,
         "percent_encrypted": percent,
         "recovery_keys": [k if isinstance(k, dict) else
                           {"key_id": k[0], "recovery_password": k[1]}
                           for k in keys]}
    v.update(extra)
    return v


def new_keys(n):
    return [(key_id(), recovery_password()) for _ in range(n)]


def port0_accepted():
    """Does the program accept listen = 127.0.0.1:0 (the system picks the
    port)? Asked once. When it does not (see test_cli.ConfigTest.
    test_listen_port_zero), instances get a free port picked here instead."""
    global _port0
    if _port0 is None:
        d = tempfile.mkdtemp(prefix="kwtest-probe-")
        try:
            conf = os.path.join(d, "probe.conf")
            with open(conf, "w") as f:
                f.write("[server]\nlisten = 127.0.0.1:0\n[storage]\n"
                        "database = sqlite:%s/kw.db\nkey_file = %s/master.key\n" % (d, d))
            p = subprocess.run([BINARY, "--config", conf, "config", "check"],
                               capture_output=True, text=True, timeout=CLI_TIMEOUT)
            _port0 = p.returncode == 0
        finally:
            shutil.rmtree(d, ignore_errors=True)
    return _port0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- responses ---------------------------------------------------------------

class Response(tuple):
    """(status, headers, body) with a few conveniences."""

    def __new__(cls, status, headers, body):
        return super().__new__(cls, (status, headers, body))

    status = property(lambda self: self[0])
    headers = property(lambda self: self[1])
    body = property(lambda self: self[2])

    def header(self, name):
        return self[1].get(name)

    def json(self):
        return jsonlib.loads(self[2].decode("utf-8"))

    def text(self):
        return self[2].decode("utf-8", "replace")

    def __repr__(self):
        return "Response(%d, %r)" % (self[0], self[2][:300])


def parse_csv(text):
    """(header line, list of dict rows) of `export csv` output."""
    first = text.split("\n", 1)[0].rstrip("\r")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    return first, rows


# ---- the instance ------------------------------------------------------------

class Keywarden:
    """A keywarden instance in a temporary directory."""

    def __init__(self, settings=None, init=True, start=True, name="kw"):
        self.dir = tempfile.mkdtemp(prefix="kwtest-%s-" % name)
        self.conf = os.path.join(self.dir, "keywarden.conf")
        self.key_file = os.path.join(self.dir, "master.key")
        self.notice_file = os.path.join(self.dir, "notice.txt")
        self.db_id = "kwtest_%s" % secrets.token_hex(6)
        tmpl = os.environ.get("KW_TEST_DATABASE")
        if tmpl:
            self.database = tmpl.replace("{dir}", self.dir).replace("{id}", self.db_id)
        else:
            self.database = "sqlite:" + os.path.join(self.dir, "kw.db")
        self.sqlite_path = (self.database[len("sqlite:"):]
                            if self.database.startswith("sqlite:") else None)
        self.settings = {
            "server": {"listen": "127.0.0.1:0" if port0_accepted()
                       else "127.0.0.1:%d" % free_port()},
            "storage": {"database": self.database, "key_file": self.key_file},
            "portal": {"display_notice": "false", "notice_file": self.notice_file},
        }
        for section, kv in (settings or {}).items():
            self.settings.setdefault(section, {}).update(kv)
        with open(self.notice_file, "w") as f:
            f.write("Authorised use only.\n")
        self.proc = None
        self.port = None
        self.scheme = "http"
        # Values that must never reach the server's log (see leaked()):
        # passwords, recovery passwords, session cookies, CSRF tokens.
        self.secrets = set()
        self.log_path = None
        self.starts = 0
        self._db_made = False
        self.write_config()
        if init:
            self.init()
        if start:
            self.start()

    # -- configuration --

    def write_config(self, settings=None, extra_text=""):
        """Writes keywarden.conf from self.settings (or the given ones)."""
        settings = self.settings if settings is None else settings
        lines = []
        for section, kv in settings.items():
            lines.append("[%s]" % section)
            for k, v in kv.items():
                lines.append("%s = %s" % (k, v))
            lines.append("")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + extra_text)

    def _shell_hook(self, var):
        cmd = os.environ.get(var)
        if cmd:
            cmd = (cmd.replace("{id}", self.db_id).replace("{url}", self.database)
                   .replace("{dir}", self.dir))
            subprocess.run(cmd, shell=True, check=(var == "KW_TEST_DB_SETUP"),
                           timeout=CLI_TIMEOUT)

    def make_database(self):
        """Runs KW_TEST_DB_SETUP once (before the first `init`)."""
        if not self._db_made:
            self._shell_hook("KW_TEST_DB_SETUP")
            self._db_made = True

    def init(self, admin="admin", password=ADMIN_PASSWORD):
        """`init --admin ADMIN --password-stdin`; returns its standard output."""
        self.make_database()
        rc, out, err = self.cli("init", "--admin", admin, "--password-stdin",
                                input=password + "\n")
        if rc != 0:
            raise AssertionError("keywarden init failed (rc %d):\n%s%s" % (rc, out, err))
        return out

    # -- processes --

    def cli(self, *args, input=None, config=True, timeout=CLI_TIMEOUT):
        """Runs `keywarden --config CONF ARGS`; returns (rc, stdout, stderr)."""
        if args and args[0] == "init":
            self.make_database()
        cmd = [BINARY] + (["--config", self.conf] if config else []) + list(args)
        p = subprocess.run(cmd, input=input, capture_output=True, text=True,
                           timeout=timeout, cwd=self.dir)
        return p.returncode, p.stdout, p.stderr

    def serve_command(self):
        return WRAPPER + [BINARY, "--config", self.conf, "serve"]

    def start(self, expect_fail=False):
        """Starts `serve`; waits for its "listening" line (or its exit when
        expect_fail). Returns the exit code when it fails as expected."""
        self.starts += 1
        self.log_path = os.path.join(self.dir, "serve.%d.log" % self.starts)
        log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(self.serve_command(), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         cwd=self.dir, start_new_session=True)
        finally:
            log.close()
        _live.add(self.proc)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            m = LISTEN_RE.search(self.log())
            if m:
                if expect_fail:
                    self.kill()
                    raise AssertionError("serve started although it should not:\n" +
                                         self.log())
                self.scheme, self.port = m.group(1), int(m.group(2))
                return None
            rc = self.proc.poll()
            if rc is not None:
                _live.discard(self.proc)
                self.proc = None
                if expect_fail:
                    return rc
                raise AssertionError("serve exited with %d before listening:\n%s" %
                                     (rc, self.log()))
            time.sleep(0.02)
        self.kill()
        raise AssertionError("serve did not report listening within %ds:\n%s" %
                             (STARTUP_TIMEOUT, self.log()))

    def log(self):
        """The current server run's stderr (and stdout)."""
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def logs(self):
        """The log of every server run of this instance, concatenated."""
        out = []
        for path in sorted(glob.glob(os.path.join(self.dir, "serve.*.log"))):
            with open(path, "rb") as f:
                out.append(f.read().decode("utf-8", "replace"))
        return "".join(out)

    def leaked(self, extra=()):
        """The secrets (self.secrets and extra) found in any server log, also
        with the hyphens of a recovery password dropped."""
        text = self.logs()
        found = []
        for v in set(self.secrets) | set(extra):
            if not v or len(v) < 6:
                continue
            forms = {v}
            if re.fullmatch(r"\d{6}(-\d{6}){7}", v):
                forms.add(v.replace("-", ""))
            if any(f in text for f in forms):
                found.append(v)
        return sorted(found)

    def access_lines(self):
        return [l for l in self.log().splitlines() if ACCESS_RE.search(l)]

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, check=True):
        """SIGTERM, wait, and (check) assert a clean exit: code 0."""
        if self.proc is None:
            return None
        p = self.proc
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            rc = None
        _live.discard(p)
        self.proc = None
        if check and rc != 0:
            raise AssertionError("serve did not exit cleanly after SIGTERM (exit %r):\n%s"
                                 % (rc, self.log()[-6000:]))
        return rc

    def kill(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            _live.discard(self.proc)
            self.proc = None

    def restart(self):
        self.stop()
        self.start()

    def close(self, check=True):
        """Stops the server (asserting a clean exit when check) and removes
        the directory. Safe to call twice."""
        try:
            if self.proc is not None:
                self.stop(check=check)
        finally:
            self.kill()
            if self._db_made:
                self._db_made = False
                try:
                    self._shell_hook("KW_TEST_DB_TEARDOWN")
                except Exception:
                    pass
            if not os.environ.get("KW_KEEP"):
                shutil.rmtree(self.dir, ignore_errors=True)

    # -- HTTP --

    def connection(self, timeout=30):
        if self.scheme == "https":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               context=ctx)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, json=None, headers=None,
                encode_chunked=False, timeout=None):
        """One request on a new connection; returns Response(status, headers, body).
        headers of the response: an http.client.HTTPMessage (case-insensitive)."""
        if timeout is None:
            timeout = 120 if WRAPPER else 30
        hdrs = dict(headers or {})
        if json is not None:
            body = jsonlib.dumps(json).encode()
            hdrs.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=hdrs,
                         encode_chunked=encode_chunked)
            r = conn.getresponse()
            data = r.read()
            return Response(r.status, r.headers, data)
        finally:
            conn.close()

    def raw_request(self, data, timeout=30):
        """Sends raw bytes on a new connection; returns (status, headers dict
        lower-cased, body bytes) of the reply, tolerating an early close."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        try:
            try:
                s.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return read_response(s)
        finally:
            s.close()

    # -- device API --

    def enroll_token(self, *args):
        rc, out, err = self.cli("enroll", "create", *args)
        if rc != 0:
            raise AssertionError("enroll create failed: %s" % err)
        lines = out.splitlines()
        if len(lines) != 1:
            raise AssertionError("enroll create printed %r" % out)
        return lines[0].strip()

    def register(self, name=None, token=None, domain="CORP",
                 os_name="Windows 11 Pro 23H2"):
        """Registers a device; returns (device_id, device_secret)."""
        if token is None:
            token = self.enroll_token()
        name = name or "PC-%s" % secrets.token_hex(4).upper()
        r = self.request("POST", "/api/v1/register",
                         json={"enrollment_token": token, "name": name,
                               "domain": domain, "os": os_name})
        if r.status != 201:
            raise AssertionError("register: %r" % (r,))
        d = r.json()
        return d["device_id"], d["device_secret"]

    def checkin(self, secret, body=None, volumes=None, logons=None,
                os_name="Windows 11 Pro 23H2", **kw):
        """POST /api/v1/checkin with the device's secret."""
        if body is None:
            body = {"os": os_name, "volumes": volumes or []}
            if logons is not None:
                body["logons"] = logons
        headers = {"Authorization": "Bearer " + secret} if secret else {}
        if isinstance(body, (dict, list)):
            return self.request("POST", "/api/v1/checkin", json=body,
                                headers=headers, **kw)
        headers["Content-Type"] = "application/json"
        return self.request("POST", "/api/v1/checkin", body=body, headers=headers, **kw)

    # -- accounts and devices for the portal --

    def add_user(self, name, password, *roles):
        """`user add NAME [--role R]... --password-stdin`; asserts success."""
        args = ["user", "add", name]
        for r in roles:
            args += ["--role", r]
        rc, out, err = self.cli(*(args + ["--password-stdin"]), input=password + "\n")
        if rc != 0:
            raise AssertionError("user add %s failed (rc %d): %s" % (name, rc, err))
        self.secrets.add(password)

    def device_with(self, keys=(), logons=(), name=None, vid=None):
        """Registers a device and checks in one volume holding keys ((key_id,
        password) pairs) with logons ((user, "local"|"remote") pairs).
        Returns (device_id, secret, volume, device name)."""
        name = name or "PC-%s" % secrets.token_hex(4).upper()
        did, secret = self.register(name=name)
        vol = volume(keys, vid=vid)
        r = self.checkin(secret, volumes=[vol],
                         logons=[{"user": u, "type": t} for u, t in logons])
        if r.status != 200:
            raise AssertionError("checkin: %r" % (r,))
        for _, pw in keys:
            self.secrets.add(pw)
        return did, secret, vol, name

    def assoc(self, user, device_id):
        rc, out, err = self.cli("assoc", "add", user, device_id)
        if rc != 0:
            raise AssertionError("assoc add failed (rc %d): %s" % (rc, err))

    def audit_export(self):
        """`audit export`: list of row dicts; asserts rc 0."""
        rc, out, err = self.cli("audit", "export")
        if rc != 0:
            raise AssertionError("audit export failed (rc %d): %s" % (rc, err))
        return list(csv.DictReader(io.StringIO(out, newline="")))

    def db(self):
        """A sqlite3 connection to the instance's database (SQLite only)."""
        import sqlite3
        if not self.sqlite_path:
            raise unittest.SkipTest("not an SQLite database")
        return sqlite3.connect(self.sqlite_path, timeout=30, isolation_level=None)

    # -- CLI views --

    def export(self):
        """`export csv`: (header line, rows as dicts, raw text); asserts rc 0."""
        rc, out, err = self.cli("export", "csv")
        if rc != 0:
            raise AssertionError("export csv failed (rc %d): %s" % (rc, err))
        header, rows = parse_csv(out)
        return header, rows, out

    def export_rows(self, device_id=None):
        rows = self.export()[1]
        return [r for r in rows if device_id is None or r["device_id"] == device_id]

    def device_show(self, device_id):
        rc, out, err = self.cli("device", "show", device_id)
        if rc != 0:
            raise AssertionError("device show failed: %s" % err)
        return out

    def metrics(self):
        """/metrics parsed: {'name{labels}': float}."""
        r = self.request("GET", "/metrics")
        if r.status != 200:
            raise AssertionError("/metrics: %r" % (r,))
        values = {}
        for line in r.text().splitlines():
            if not line or line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
        return values


def read_response(sock):
    """Reads one HTTP/1.1 response from sock (Content-Length or close)."""
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    if b"\r\n\r\n" not in data:
        raise ConnectionError("no complete response head: %r" % data[:200])
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "-1"))
    try:
        while n < 0 or len(body) < n:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    return status, headers, body


class ServerTestCase(unittest.TestCase):
    """One running instance per test class (cls.kw); stopped, with a clean
    exit asserted, after the class's last test."""
    settings = None

    @classmethod
    def setUpClass(cls):
        cls.kw = Keywarden(settings=cls.settings, name=cls.__name__)
        cls.addClassCleanup(cls.kw.close)

    def new_device(self, name=None):
        """Registers a fresh device: (device_id, secret)."""
        return self.kw.register(name=name)

    def assertCheckin(self, secret, status=200, **kw):
        r = self.kw.checkin(secret, **kw)
        self.assertEqual(r.status, status, r)
        return r


OPENSSL = "/usr/bin/openssl"
needs_openssl = unittest.skipUnless(os.path.exists(OPENSSL), "no /usr/bin/openssl")


def tls_instance(name):
    """A started instance serving HTTPS with a fresh self-signed
    certificate (its owner closes it)."""
    k = Keywarden(name=name, init=False, start=False)
    try:
        cert, key = os.path.join(k.dir, "cert.pem"), os.path.join(k.dir, "key.pem")
        subprocess.run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-subj", "/CN=localhost", "-days", "1", "-keyout", key,
                        "-out", cert], check=True, capture_output=True, timeout=60)
        os.chmod(key, 0o600)
        k.settings["server"].update({"tls_certificate": cert, "tls_key": key})
        k.write_config()
        k.init()
        k.start()
    except BaseException:
        k.close(check=False)
        raise
    return k


# ---- the portal, as a browser sees it -----------------------------------------

needs_sqlite = unittest.skipUnless(IS_SQLITE, "inspects the SQLite file")

FORM_TYPE = "application/x-www-form-urlencoded"
CSRF_RE = re.compile(r'<input type="hidden" name="csrf_token" value="([^"]*)">')
TAG_RE = re.compile(r"<[^>]*>")


def key_id_with_prefix(prefix):
    """A canonical recovery key ID whose 32 hex digits start with prefix."""
    h = (prefix.replace("-", "").upper() + uuid.uuid4().hex.upper())[:32]
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def hex_prefix():
    """8 random upper-case hex digits: a prefix no other test uses."""
    return secrets.token_hex(4).upper()


def strip_csrf(text):
    """A page with every CSRF token blanked (to compare two pages)."""
    return CSRF_RE.sub('<input type="hidden" name="csrf_token" value="">', text)


def page_text(body):
    """The visible text of an HTML page: tags removed, entities decoded."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    return html.unescape(TAG_RE.sub("", body))


class Cookie:
    """One Set-Cookie header: name, value and attributes (lower-cased names)."""

    def __init__(self, header):
        self.header = header
        parts = [p.strip() for p in header.split(";")]
        self.name, _, self.value = parts[0].partition("=")
        self.attrs = {}
        for p in parts[1:]:
            k, eq, v = p.partition("=")
            self.attrs[k.strip().lower()] = v.strip() if eq else True

    def __repr__(self):
        return "Cookie(%r)" % self.header


class Browser:
    """A browser: a cookie jar, the CSRF token of the last page it showed, and
    the headers a browser sends with a form (Origin: this site,
    Sec-Fetch-Site: same-origin). Redirects are not followed; follow() does
    one step. Every cookie value and token it sees goes into kw.secrets."""

    def __init__(self, kw, accept_language=None):
        self.kw = kw
        self.cookies = {}
        self.csrf = None
        self.accept_language = accept_language
        self.last = None

    @property
    def origin(self):
        return "%s://127.0.0.1:%d" % (self.kw.scheme, self.kw.port)

    def session_cookie_name(self):
        return "__Host-keywarden" if self.kw.scheme == "https" else "keywarden"

    @property
    def session(self):
        return self.cookies.get(self.session_cookie_name())

    def set_cookies(self, r):
        got = [Cookie(h) for h in r.headers.get_all("Set-Cookie") or []]
        for c in got:
            if c.attrs.get("max-age") == "0" or not c.value:
                self.cookies.pop(c.name, None)
            else:
                self.cookies[c.name] = c.value
                self.kw.secrets.add(c.value)
        return got

    def request(self, method, path, form=None, headers=None, body=None):
        """One request with this browser's cookies; headers with the value None
        are left out. Returns the Response (its .cookies: the Set-Cookie
        headers parsed)."""
        h = {}
        if self.accept_language:
            h["Accept-Language"] = self.accept_language
        if method == "POST":
            h["Origin"] = self.origin
            h["Sec-Fetch-Site"] = "same-origin"
            h["Content-Type"] = FORM_TYPE
        if self.cookies:
            h["Cookie"] = "; ".join("%s=%s" % kv for kv in self.cookies.items())
        for k, v in (headers or {}).items():
            h.pop(k, None)
            if v is not None:
                h[k] = v
        if form is not None:
            body = urllib.parse.urlencode(form)
        r = self.kw.request(method, path, body=body if body is not None else
                            ("" if method == "POST" else None), headers=h)
        r.cookies = self.set_cookies(r)
        ctype = r.header("Content-Type") or ""
        if ctype.startswith("text/html"):
            tokens = CSRF_RE.findall(r.text())
            if tokens:
                self.csrf = tokens[0]
                self.kw.secrets.update(tokens)
        self.last = r
        return r

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, form=None, csrf=True, **kw):
        """POST a form; csrf=True adds the token of the last page shown,
        a string adds that token, None/False sends none."""
        form = dict(form or {})
        if csrf is True:
            if self.csrf is not None:
                form["csrf_token"] = self.csrf
        elif csrf:
            form["csrf_token"] = csrf
        return self.request("POST", path, form=form, **kw)

    def follow(self, r):
        loc = r.header("Location")
        if not loc:
            raise AssertionError("no Location in %r" % (r,))
        return self.get(loc)

    def login(self, username, password, **kw):
        """GET /login, then POST the form as a browser would. Returns the POST's
        response (303 on success)."""
        self.kw.secrets.add(password)
        r = self.get("/login")
        if r.status != 200:
            raise AssertionError("GET /login: %r" % (r,))
        return self.post("/login", {"username": username, "password": password}, **kw)

    def sign_in(self, username, password):
        """login(), assert it worked and follow the redirect to the page a
        browser then shows (so that self.csrf is the session's token).
        Returns where the sign-in redirected to."""
        r = self.login(username, password)
        if r.status != 303 or not self.session:
            raise AssertionError("sign-in as %s failed: %r" % (username, r))
        self.follow(r)
        return r.header("Location")

    def recover(self, key_id, reason="bios_tpm_changed", csrf=True, **kw):
        """POST /recover as the form does (a GET /recover first when no token
        is known yet)."""
        if self.csrf is None:
            self.get("/recover")
        form = {}
        if key_id is not None:
            form["key_id"] = key_id
        if reason is not None:
            form["reason"] = reason
        r = self.post("/recover", form, csrf=csrf, **kw)
        for pw in re.findall(r'data-key="([0-9-]+)"', r.text()):
            self.kw.secrets.add(pw)
        return r


class PortalTestCase(ServerTestCase):
    """A ServerTestCase for the portal: users, browsers, and at the end of the
    class a check that no secret used reached the server's log."""

    def setUp(self):
        self.kw.secrets.add(ADMIN_PASSWORD)

    @classmethod
    def tearDownClass(cls):
        leaked = cls.kw.leaked() if getattr(cls, "kw", None) else []
        if leaked:
            raise AssertionError("the server log holds secrets: %r" % leaked)

    def browser(self, accept_language=None):
        return Browser(self.kw, accept_language)

    def new_user(self, base="user", domain="CORP"):
        """A new local account DOMAIN\\baseNNNN: (name, password)."""
        name = "%s\\%s%s" % (domain, base, secrets.token_hex(3)) if domain else \
            "%s%s" % (base, secrets.token_hex(3))
        pw = "Pw-%s-%s" % (base, secrets.token_urlsafe(9))
        self.kw.add_user(name, pw)
        return name, pw

    def signed_in(self, user=None, accept_language=None):
        """A browser signed in as user ((name, password); a new one if None)."""
        name, pw = user or self.new_user()
        b = self.browser(accept_language)
        b.sign_in(name, pw)
        b.user = name
        return b

    def assertPage(self, r, status, what=None):
        """An HTML page with the status and the portal's headers."""
        self.assertEqual(r.status, status, what or r)
        self.assertEqual(r.header("Content-Type"), "text/html; charset=utf-8", what)
        self.assertEqual(r.header("Content-Security-Policy"), CSP, what)
        self.assertEqual(r.header("X-Content-Type-Options"), "nosniff", what)
        self.assertEqual(r.header("Referrer-Policy"), "no-referrer", what)

    def assertRedirect(self, r, location, status=303, what=None):
        self.assertEqual((r.status, r.header("Location")), (status, location), what or r)

    def assertKeyShown(self, r, password, computer, kid):
        self.assertPage(r, 200)
        text = page_text(r.body)
        self.assertIn(password, text)
        self.assertIn(computer, text)
        self.assertIn(kid, text)
        self.assertEqual(r.header("Cache-Control"), "no-store")
