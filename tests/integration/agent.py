"""Helpers for tests/integration/test_agent.py: LUKS2 image files made with
Debian's cryptsetup in a temporary directory (no device-mapper, no loop
device), and keywarden-agent runs against a Keywarden instance."""

import json
import os
import shutil
import subprocess
import tempfile

import kw

AGENT = os.path.abspath(os.environ.get("KEYWARDEN_AGENT") or
                        os.path.join(os.path.dirname(kw.BINARY), "keywarden-agent"))
CRYPTSETUP = shutil.which("cryptsetup") or "/usr/sbin/cryptsetup"
# Fast key derivation for test images; the agent's own is set the same way
# in its configuration ([luks] pbkdf, pbkdf_iterations).
FAST = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"]
TOKEN_TYPE = "keywarden-recovery"


def cryptsetup(*args, input=None, check=True):
    p = subprocess.run([CRYPTSETUP] + list(args), input=input, capture_output=True,
                       text=True, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError("cryptsetup %s failed: %s" % (" ".join(args), p.stderr))
    return p


def why_unusable():
    """None when the tests can run, else the reason to skip them."""
    if not os.access(CRYPTSETUP, os.X_OK):
        return "no cryptsetup program (package cryptsetup-bin)"
    d = tempfile.mkdtemp(prefix="kwluks-probe-")
    try:
        img = os.path.join(d, "probe.img")
        with open(img, "wb") as f:
            f.truncate(20 << 20)
        p = cryptsetup("luksFormat", "--type", "luks2", "--batch-mode", *FAST, img, "-",
                       input="probe", check=False)
        if p.returncode != 0:
            return "cryptsetup luksFormat does not work here: %s" % p.stderr.strip()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return None


class Image:
    """A LUKS2 volume in an image file, made with passphrase."""

    def __init__(self, directory, passphrase="admin passphrase 1", name="vol"):
        self.path = os.path.join(directory, name + ".img")
        self.passphrase = passphrase
        with open(self.path, "wb") as f:
            f.truncate(20 << 20)
        cryptsetup("luksFormat", "--type", "luks2", "--batch-mode", *FAST, self.path, "-",
                   input=passphrase)

    def dump(self):
        """The header as cryptsetup luksDump --dump-json-metadata shows it."""
        p = cryptsetup("luksDump", "--dump-json-metadata", self.path)
        return json.loads(p.stdout)

    @property
    def uuid(self):
        return cryptsetup("luksUUID", self.path).stdout.strip().upper()

    def slots(self):
        return sorted(int(s) for s in self.dump()["keyslots"])

    def tokens(self):
        """The agent's tokens: [(key_id, slot, escrowed)]."""
        out = []
        for t in self.dump()["tokens"].values():
            if t.get("type") == TOKEN_TYPE:
                out.append((t["key_id"], [int(s) for s in t["keyslots"]], t["escrowed"]))
        return out

    def opens(self, passphrase, slot=None):
        args = ["open", "--test-passphrase", "--type", "luks2", self.path]
        if slot is not None:
            args += ["--key-slot", str(slot)]
        return cryptsetup(*args, input=passphrase, check=False).returncode == 0

    def add_passphrase(self, new):
        cryptsetup("luksAddKey", "--batch-mode", *FAST, self.path,
                   input="%s\n%s\n" % (self.passphrase, new))


class Agent:
    """keywarden-agent with its own configuration and state directory."""

    def __init__(self, server, directory, volumes, server_url=None, extra=None):
        self.dir = directory
        self.state = os.path.join(directory, "state")
        self.conf = os.path.join(directory, "agent.conf")
        self.server = server
        self.settings = {
            "agent": {"server": server_url or "http://127.0.0.1:%d" % server.port,
                      "state_dir": self.state,
                      "volumes": ", ".join(volumes),
                      "name": "LNX-TEST", "domain": "CORP",
                      "logons_file": os.path.join(directory, "wtmp"),
                      "timeout": "10s"},
            "luks": {"pbkdf": "pbkdf2", "pbkdf_iterations": "1000"},
        }
        for section, kv in (extra or {}).items():
            self.settings.setdefault(section, {}).update(kv)
        self.write()

    def write(self):
        with open(self.conf, "w") as f:
            for section, kv in self.settings.items():
                f.write("[%s]\n" % section)
                for k, v in kv.items():
                    f.write("%s = %s\n" % (k, v))

    def run(self, *args, input=None):
        p = subprocess.run([AGENT, "--config", self.conf] + list(args), input=input,
                           capture_output=True, text=True, timeout=300)
        return p.returncode, p.stdout, p.stderr

    def ok(self, *args, input=None):
        rc, out, err = self.run(*args, input=input)
        if rc != 0:
            raise AssertionError("keywarden-agent %s failed (rc %d):\n%s%s"
                                 % (" ".join(args), rc, out, err))
        return out

    def register(self):
        token = self.server.enroll_token()
        out = self.ok("register", input=token + "\n")
        with open(os.path.join(self.state, "registration")) as f:
            reg = dict(line.split("=", 1) for line in f.read().splitlines())
        return reg["device_id"], out

    def password(self, key_id):
        with open(os.path.join(self.state, "keys", key_id)) as f:
            return dict(line.split("=", 1) for line in f.read().splitlines())["password"]
