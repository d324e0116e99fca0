"""A real directory for the tests: Debian's slapd with a throw-away
configuration in a temporary directory, on random loopback ports.

    d = Slapd()                  # configured, started, with the data below
    d.uri                        # ldap://127.0.0.1:PORT
    d.ldaps_uri                  # ldaps://127.0.0.1:PORT2 (tls=True)
    d.pause() / d.resume()       # SIGSTOP / SIGCONT: a directory that hangs
    d.stop() / d.start()         # a directory that is down, and back
    d.close()                    # stops it and removes the directory

What it holds (BASE = dc=corp,dc=example,dc=com):
  ou=people     users (inetOrgPerson + kwADUser: uid, sAMAccountName,
                userPrincipalName NAME@corp.example.com, {SSHA} passwords)
  ou=groups     groupOfNames with member (the memberof overlay, when it
                loads, keeps the users' memberOf); add_group() nests groups
  ou=services   cn=keywarden, the service account keywarden searches with
  ou=computers  computer objects with msFVE-RecoveryInformation children
                (add_computer, add_recovery: for import ldap)

The schema file written next to slapd.conf (kw-ad.schema) gives the Active
Directory attributes keywarden reads: sAMAccountName and userPrincipalName
(case-insensitive, their AD OIDs), computer, whenCreated, and the BitLocker
ones with their real OIDs (msFVE-RecoveryPassword .1964, -RecoveryGuid
.1965, -VolumeGuid .1998, -KeyPackage .1999, class
msFVE-RecoveryInformation 1.2.840.113556.1.5.253).

Needs the Debian packages slapd and ldap-utils (tools/deps.sh
KW_TEST_PACKAGES); the tests skip when they are missing (needs_slapd).

For tests in other languages (tests/e2e), run as a program:

    /usr/bin/python3 tests/integration/slapd.py [--tls] [--user UID:PASSWORD[:GROUP]]...

prints one JSON line (uri, ldaps_uri, ca, pid, base_dn, bind_dn,
bind_password_file, the groups' DNs), then serves until its standard input
closes, and cleans up.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

SLAPD = "/usr/sbin/slapd"
SLAPPASSWD = "/usr/sbin/slappasswd"
LDAPADD = "/usr/bin/ldapadd"
LDAPMODIFY = "/usr/bin/ldapmodify"
OPENSSL = "/usr/bin/openssl"
SCHEMA_DIR = "/etc/ldap/schema"
MODULE_DIR = "/usr/lib/ldap"

BASE = "dc=corp,dc=example,dc=com"
DNS_DOMAIN = "corp.example.com"
ROOT_DN = "cn=admin," + BASE
SERVICE_DN = "cn=keywarden,ou=services," + BASE
START_TIMEOUT = 20.0

needs_slapd = unittest.skipUnless(
    all(os.access(p, os.X_OK) for p in (SLAPD, SLAPPASSWD, LDAPADD)),
    "needs Debian's slapd and ldap-utils (tools/deps.sh KW_TEST_PACKAGES)")

_live = set()

AD_SCHEMA = """\
# Just enough of Active Directory's schema for keywarden's tests.
objectidentifier kwOID 1.3.6.1.4.1.99999.4242

attributetype ( 1.2.840.113556.1.4.221 NAME 'sAMAccountName'
	EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
	SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{256} SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.656 NAME 'userPrincipalName'
	EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
	SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{1024} SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.619 NAME 'dNSHostName'
	EQUALITY caseIgnoreMatch
	SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{2048} SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.2 NAME 'objectGUID'
	EQUALITY octetStringMatch
	SYNTAX 1.3.6.1.4.1.1466.115.121.1.40{16} SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.2.2 NAME 'whenCreated'
	EQUALITY generalizedTimeMatch ORDERING generalizedTimeOrderingMatch
	SYNTAX 1.3.6.1.4.1.1466.115.121.1.24 SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.1964 NAME 'msFVE-RecoveryPassword'
	EQUALITY caseExactMatch
	SYNTAX 1.3.6.1.4.1.1466.115.121.1.15{256} SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.1965 NAME 'msFVE-RecoveryGuid'
	EQUALITY octetStringMatch
	SYNTAX 1.3.6.1.4.1.1466.115.121.1.40{16} SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.1998 NAME 'msFVE-VolumeGuid'
	EQUALITY octetStringMatch
	SYNTAX 1.3.6.1.4.1.1466.115.121.1.40{16} SINGLE-VALUE )
attributetype ( 1.2.840.113556.1.4.1999 NAME 'msFVE-KeyPackage'
	EQUALITY octetStringMatch
	SYNTAX 1.3.6.1.4.1.1466.115.121.1.40{102400} SINGLE-VALUE )

objectclass ( kwOID:1 NAME 'kwADUser' SUP top AUXILIARY
	MAY ( sAMAccountName $ userPrincipalName ) )
objectclass ( 1.2.840.113556.1.3.30 NAME 'computer' SUP top STRUCTURAL
	MUST cn MAY ( objectGUID $ sAMAccountName $ dNSHostName $ description $
	whenCreated ) )
objectclass ( 1.2.840.113556.1.5.253 NAME 'msFVE-RecoveryInformation'
	SUP top STRUCTURAL
	MUST ( cn $ msFVE-RecoveryPassword $ msFVE-RecoveryGuid )
	MAY ( msFVE-VolumeGuid $ msFVE-KeyPackage $ whenCreated ) )
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ssha(password):
    p = subprocess.run([SLAPPASSWD, "-h", "{SSHA}", "-T", "/dev/stdin"],
                       input=password, capture_output=True, text=True, check=True,
                       timeout=30)
    return p.stdout.strip()


def _ldif_value(v):
    """An LDIF attribute value: base64 unless it is plain safe text."""
    import base64
    if isinstance(v, bytes):
        return ":: " + base64.b64encode(v).decode()
    if (not v or v[0] in " :<" or v[-1] == " " or
            any(ord(c) < 32 or ord(c) > 126 for c in v)):
        return ":: " + base64.b64encode(v.encode()).decode()
    return ": " + v


def ldif(dn, attrs):
    """One LDIF record: attrs maps names to a value or a list of values."""
    lines = ["dn" + _ldif_value(dn)]
    for k, vs in attrs.items():
        for v in (vs if isinstance(vs, (list, tuple)) else [vs]):
            lines.append(k + _ldif_value(v))
    return "\n".join(lines) + "\n\n"


class Slapd:
    """A slapd of its own (see the module's text)."""

    ROOT_PASSWORD = "root-secret-Zq8"
    SERVICE_PASSWORD = "svc-Pw-7Kq2-not-logged"

    def __init__(self, tls=False, start=True, memberof=True):
        self.dir = tempfile.mkdtemp(prefix="kwtest-slapd-")
        self.port = _free_port()
        self.uri = "ldap://127.0.0.1:%d" % self.port
        self.tls = tls
        self.ldaps_port = _free_port() if tls else None
        self.ldaps_uri = "ldaps://127.0.0.1:%d" % self.ldaps_port if tls else None
        self.proc = None
        self.paused = False
        self.memberof = memberof and os.path.exists(
            os.path.join(MODULE_DIR, "memberof.so"))
        self.log_path = os.path.join(self.dir, "slapd.log")
        self.users = {}
        self.computer_guid = {}
        try:
            os.mkdir(os.path.join(self.dir, "db"), 0o700)
            with open(os.path.join(self.dir, "kw-ad.schema"), "w") as f:
                f.write(AD_SCHEMA)
            if tls:
                self._make_certificates()
            self._write_conf()
            if start:
                self.start()
                self._load_base()
        except BaseException:
            self.close()
            raise

    # -- configuration --

    def _make_certificates(self):
        """A throw-away CA and a certificate for 127.0.0.1 and localhost it
        signed; another CA (other_ca) that signed nothing of this server."""
        d = self.dir
        self.ca = os.path.join(d, "ca.pem")
        self.other_ca = os.path.join(d, "other-ca.pem")
        self.cert = os.path.join(d, "server.pem")
        self.key = os.path.join(d, "server.key")

        def run(*args):
            subprocess.run([OPENSSL] + list(args), check=True, capture_output=True,
                           timeout=60, cwd=d)
        for name, path in (("kw test CA", self.ca), ("another CA", self.other_ca)):
            run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", "/CN=" + name, "-keyout", path + ".key", "-out", path,
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", self.key, "-out", "server.csr")
        with open(os.path.join(d, "ext.cnf"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                    "extendedKeyUsage=serverAuth\n")
        run("x509", "-req", "-in", "server.csr", "-CA", self.ca, "-CAkey",
            self.ca + ".key", "-CAcreateserial", "-days", "2", "-out", self.cert,
            "-extfile", "ext.cnf")
        os.chmod(self.key, 0o600)

    def _write_conf(self):
        d = self.dir
        schemas = ["core", "cosine", "inetorgperson", "nis"]
        lines = ["include %s/%s.schema" % (SCHEMA_DIR, s) for s in schemas]
        lines += [
            "include %s/kw-ad.schema" % d,
            "pidfile %s/slapd.pid" % d,
            "argsfile %s/slapd.args" % d,
            "modulepath %s" % MODULE_DIR,
            "moduleload back_mdb",
        ]
        if self.memberof:
            lines.append("moduleload memberof")
        if self.tls:
            lines += ["TLSCACertificateFile %s" % self.ca,
                      "TLSCertificateFile %s" % self.cert,
                      "TLSCertificateKeyFile %s" % self.key]
        lines += [
            "sizelimit 500",
            "database mdb",
            "maxsize 33554432",
            'suffix "%s"' % BASE,
            'rootdn "%s"' % ROOT_DN,
            "rootpw %s" % self.ROOT_PASSWORD,
            "directory %s/db" % d,
            # 500 entries a search, as above, except in pages (RFC 2696)
            # for the service account: as Active Directory's MaxPageSize
            # bounds a page, not a paged search (import ldap reads more).
            'limits dn.exact="%s" size.soft=500 size.hard=500 size.pr=500 '
            'size.prtotal=unlimited' % SERVICE_DN,
            # Anonymous may only bind; signed-in entries read everything
            # but passwords.
            "access to attrs=userPassword by self write by anonymous auth by * none",
            "access to * by users read by * none",
        ]
        if self.memberof:
            lines += ["overlay memberof", "memberof-refint true"]
        self.conf = os.path.join(d, "slapd.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        p = subprocess.run([SLAPD, "-T", "test", "-u", "-f", self.conf], capture_output=True,
                           text=True, timeout=30)
        if p.returncode != 0:
            raise AssertionError("slapd.conf does not check:\n%s%s" % (p.stdout, p.stderr))

    def _load_base(self):
        text = ldif(BASE, {"objectClass": ["top", "dcObject", "organization"],
                           "dc": "corp", "o": "Corp"})
        for ou in ("people", "groups", "services", "computers"):
            text += ldif("ou=%s,%s" % (ou, BASE),
                         {"objectClass": "organizationalUnit", "ou": ou})
        text += ldif(SERVICE_DN, {
            "objectClass": ["organizationalRole", "simpleSecurityObject"],
            "cn": "keywarden", "userPassword": _ssha(self.SERVICE_PASSWORD)})
        self.add(text)

    # -- data --

    def add(self, text):
        """ldapadd of LDIF text as the root DN."""
        self._ldap_tool(LDAPADD, text)

    def modify(self, text):
        self._ldap_tool(LDAPMODIFY, text)

    def _ldap_tool(self, tool, text):
        p = subprocess.run([tool, "-x", "-H", self.uri, "-D", ROOT_DN, "-w",
                            self.ROOT_PASSWORD], input=text, capture_output=True,
                           text=True, timeout=30)
        if p.returncode != 0:
            raise AssertionError("%s failed (%d): %s%s\n%s" % (
                os.path.basename(tool), p.returncode, p.stdout, p.stderr, text))

    def user_dn(self, uid):
        return "uid=%s,ou=people,%s" % (uid, BASE)

    def group_dn(self, cn):
        return "cn=%s,ou=groups,%s" % (cn, BASE)

    def add_user(self, uid, password, sam=None, upn=None, cn=None, extra=None):
        """A person uid with sAMAccountName sam (default uid) and
        userPrincipalName upn (default uid@corp.example.com); returns the DN."""
        dn = self.user_dn(uid)
        attrs = {"objectClass": ["inetOrgPerson", "kwADUser"], "uid": uid,
                 "cn": cn or uid, "sn": uid,
                 "sAMAccountName": sam or uid,
                 "userPrincipalName": upn or "%s@%s" % (uid, DNS_DOMAIN)}
        if password is not None:
            attrs["userPassword"] = _ssha(password)
        attrs.update(extra or {})
        self.add(ldif(dn, attrs))
        self.users[uid] = password
        return dn

    def add_group(self, cn, members):
        """A groupOfNames with these member DNs (users or groups: a group in
        members nests); returns its DN."""
        dn = self.group_dn(cn)
        # groupOfNames needs a member: an empty group holds the base.
        self.add(ldif(dn, {"objectClass": "groupOfNames", "cn": cn,
                           "member": list(members) or [BASE]}))
        return dn

    def add_member(self, group_dn, member_dn):
        self.modify("dn: %s\nchangetype: modify\nadd: member\nmember: %s\n\n" %
                    (group_dn, member_dn))

    def computer_dn(self, name, ou="computers"):
        return "cn=%s,ou=%s,%s" % (name, ou, BASE)

    def add_ou(self, ou):
        """An organizational unit ou=OU under the base; returns its DN."""
        dn = "ou=%s,%s" % (ou, BASE)
        self.add(ldif(dn, {"objectClass": "organizationalUnit", "ou": ou}))
        return dn

    def add_computer(self, name, dns_name=None, ou="computers", guid=None):
        """A computer object (AD's class computer) under ou=OU with
        objectGUID guid (default: a new one; False: none) in Windows byte
        order (uuid.bytes_le); returns its DN.
        self.computer_guid[DN] is the GUID as text, upper case."""
        import uuid
        dn = self.computer_dn(name, ou)
        attrs = {"objectClass": "computer", "cn": name, "sAMAccountName": name + "$",
                 "dNSHostName": dns_name or "%s.%s" % (name.lower(), DNS_DOMAIN)}
        if guid is not False:
            g = uuid.UUID(str(guid)) if guid else uuid.uuid4()
            attrs["objectGUID"] = g.bytes_le
            self.computer_guid[dn] = str(g).upper()
        self.add(ldif(dn, attrs))
        return dn

    def add_recovery(self, computer_dn, key_id, password, volume_id=None,
                     created="2026-05-14T10:23:45-08:00", when_created="20260514182345.0Z",
                     extra=None):
        """An msFVE-RecoveryInformation object under computer_dn, as
        BitLocker's group policy escrows it: named CREATED{KEY-ID}, the
        recovery GUID and volume GUID in Windows byte order (uuid.bytes_le:
        the first three fields little-endian). Returns its DN."""
        import uuid
        cn = "%s{%s}" % (created, str(key_id).upper())
        dn = "cn=%s,%s" % (cn, computer_dn)
        attrs = {"objectClass": "msFVE-RecoveryInformation", "cn": cn,
                 "msFVE-RecoveryPassword": password,
                 "msFVE-RecoveryGuid": uuid.UUID(str(key_id)).bytes_le,
                 "whenCreated": when_created}
        if volume_id:
            attrs["msFVE-VolumeGuid"] = uuid.UUID(str(volume_id)).bytes_le
        attrs.update(extra or {})
        self.add(ldif(dn, attrs))
        return dn

    def write_service_password(self, path, newline=True):
        """Writes the service account's password where bind_password_file
        points (0600), with a trailing newline unless told not to."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.SERVICE_PASSWORD + ("\n" if newline else ""))
        return path

    def settings(self, user_filter="(uid=%s)", uri=None, **extra):
        """keywarden.conf's [ldap] section for this directory."""
        s = {"uri": uri or self.uri, "base_dn": BASE, "bind_dn": SERVICE_DN,
             "bind_password_file": os.path.join(self.dir, "bind.pw"),
             "user_filter": user_filter}
        if not os.path.exists(s["bind_password_file"]):
            self.write_service_password(s["bind_password_file"])
        s.update(extra)
        return s

    # -- the process --

    def start(self):
        """Starts slapd (in the foreground, -d 0, as the current user) and
        waits until it answers on its port."""
        if self.proc:
            return
        urls = self.uri + "/"
        if self.tls:
            urls += " " + self.ldaps_uri + "/"
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen([SLAPD, "-f", self.conf, "-h", urls, "-d", "0"],
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        _live.add(self.proc)
        self.paused = False
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                _live.discard(self.proc)
                self.proc = None
                raise AssertionError("slapd exited before answering:\n" + self.log())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError("slapd did not answer within %ds:\n%s" %
                             (START_TIMEOUT, self.log()))

    def stop(self):
        """Stops slapd (SIGTERM, which it answers by closing its database
        cleanly; SIGKILL after 10 s)."""
        if not self.proc:
            return
        if self.paused:
            self.resume()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        _live.discard(self.proc)
        self.proc = None

    def pause(self):
        """SIGSTOP: connections are accepted by the kernel and never answered."""
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def close(self):
        self.stop()
        if os.environ.get("KW_KEEP"):
            print("kept slapd directory: %s" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


import atexit  # noqa: E402


@atexit.register
def _kill_leftovers():
    for p in list(_live):
        if p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGCONT)
            except OSError:
                pass
            p.kill()
            p.wait()


def main(argv):
    import argparse
    import json
    import sys
    ap = argparse.ArgumentParser(description="a throw-away slapd for tests")
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--user", action="append", default=[],
                    help="UID:PASSWORD[:GROUP] (GROUP made when new)")
    args = ap.parse_args(argv)
    d = Slapd(tls=args.tls)
    try:
        members = {}
        for spec in args.user:
            uid, password, *group = spec.split(":", 2)
            dn = d.add_user(uid, password)
            if group:
                members.setdefault(group[0], []).append(dn)
        groups = {g: d.add_group(g, dns) for g, dns in members.items()}
        s = d.settings()
        print(json.dumps({"uri": d.uri, "ldaps_uri": d.ldaps_uri,
                          "ca": getattr(d, "ca", None), "pid": d.proc.pid,
                          "base_dn": s["base_dn"], "bind_dn": s["bind_dn"],
                          "bind_password_file": s["bind_password_file"],
                          "groups": groups}), flush=True)
        sys.stdin.read()
    finally:
        d.close()
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(main(sys.argv[1:]))
