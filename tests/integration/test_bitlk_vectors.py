"""Real BitLocker recovery passwords (issue 13, point 3): cryptsetup's test
images, made by Windows, with their recovery passwords in images.conf.

The images come from Debian's cryptsetup source package at test time (they
are GPL-2+ like the rest of cryptsetup's source and are not kept in this
tree); the download is cached (KW_BITLK_CACHE, default
/var/cache/keywarden-tests/bitlk, else ~/.cache/keywarden-tests/bitlk). For
every image with a recovery password:
  (a) `cryptsetup bitlkOpen -r IMG --test-passphrase` accepts it (no root,
      no device-mapper) and refuses it with one digit changed;
  (b) a real server escrows it from a check-in, canonical and unchanged;
  (c) the recovery-password protector GUID `cryptsetup bitlkDump` prints is
      the key ID the server stores (canonical), and the self-service portal
      finds the key by the first 8 characters of that GUID, as the BitLocker
      recovery screen shows them.
Skipped, saying why, only when the source package cannot be fetched; a
missing cryptsetup fails (tools/test installs cryptsetup-bin).
"""

import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import unittest

import kw
from kw import volume

CRYPTSETUP = shutil.which("cryptsetup") or "/usr/sbin/cryptsetup"
NO_LIMITS = {"lookup_failures": "1000/15m", "lookup_failures_per_address": "1000/15m"}
GUID_RE = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
FETCH_TIMEOUT = 600


def cache_dir():
    d = os.environ.get("KW_BITLK_CACHE")
    if d:
        os.makedirs(d, exist_ok=True)
        return d
    for d in ("/var/cache/keywarden-tests/bitlk",
              os.path.expanduser("~/.cache/keywarden-tests/bitlk")):
        try:
            os.makedirs(d, exist_ok=True)
        except OSError:
            continue
        if os.access(d, os.W_OK):
            return d
    return tempfile.mkdtemp(prefix="kwtest-bitlk-")


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=FETCH_TIMEOUT, **kw)


def deb_src_entries():
    """deb822 deb-src entries for the Debian archives this machine's apt
    already uses (binary indexes of origin Debian): no host is named here."""
    r = run(["apt-get", "indextargets", "--format",
             "$(REPO_URI)\t$(RELEASE)\t$(COMPONENT)\t$(ORIGIN)", "Created-By: Packages"])
    if r.returncode != 0:
        raise unittest.SkipTest("apt-get indextargets failed: %s" % r.stderr.strip())
    seen, out = set(), []
    for line in r.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) != 4 or parts[3] != "Debian" or tuple(parts[:3]) in seen:
            continue
        seen.add(tuple(parts[:3]))
        uri, suite, comp = parts[:3]
        out.append("Types: deb-src\nURIs: %s\nSuites: %s\nComponents: %s\n"
                   "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
                   % (uri, suite, comp))
    if not out:
        raise unittest.SkipTest("this machine's apt has no Debian archive to fetch "
                                "cryptsetup's source from")
    return out


def fetch_source(workdir):
    """Downloads cryptsetup's source package into workdir with apt-get
    source --download-only, through a private apt state (the machine's apt
    configuration is left as it was); returns the .orig tarball's path."""
    etc, lists, cache = (os.path.join(workdir, d) for d in ("etc", "lists", "cache"))
    for d in (os.path.join(etc, "sources.list.d"), os.path.join(etc, "preferences.d"),
              os.path.join(lists, "partial"), os.path.join(cache, "archives", "partial")):
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(etc, "sources.list"), "w"):
        pass
    with open(os.path.join(etc, "sources.list.d", "debian-src.sources"), "w") as f:
        f.write("\n".join(deb_src_entries()))
    opts = ["-o", "Dir::Etc::SourceList=" + os.path.join(etc, "sources.list"),
            "-o", "Dir::Etc::SourceParts=" + os.path.join(etc, "sources.list.d"),
            "-o", "Dir::Etc::Preferences=" + os.path.join(etc, "preferences"),
            "-o", "Dir::Etc::PreferencesParts=" + os.path.join(etc, "preferences.d"),
            "-o", "Dir::State::Lists=" + lists, "-o", "Dir::Cache=" + cache]
    if os.getuid() == 0:
        # root's downloads go through the _apt user, who cannot write here
        opts += ["-o", "APT::Sandbox::User=root"]
    r = run(["apt-get", "-q"] + opts + ["update"])
    if r.returncode != 0:
        raise unittest.SkipTest("cannot fetch cryptsetup's source (apt-get update "
                                "failed): %s" % r.stderr.strip()[-400:])
    # The source of the installed cryptsetup when the archive still has it.
    v = run(["dpkg-query", "-W", "-f=${source:Version}", "cryptsetup-bin"]).stdout.strip()
    dl = os.path.join(workdir, "src")
    os.makedirs(dl, exist_ok=True)
    for spec in (["cryptsetup=" + v] if v else []) + ["cryptsetup"]:
        r = run(["apt-get", "-q"] + opts + ["source", "--download-only", spec], cwd=dl)
        if r.returncode == 0:
            break
    else:
        raise unittest.SkipTest("cannot fetch cryptsetup's source (apt-get source "
                                "failed): %s" % r.stderr.strip()[-400:])
    origs = [f for f in os.listdir(dl) if re.match(r"cryptsetup_.*\.orig\.tar\.", f)]
    if len(origs) != 1:
        raise AssertionError("apt-get source gave %r" % sorted(os.listdir(dl)))
    return os.path.join(dl, origs[0])


def images():
    """The folder holding cryptsetup's bitlk-images (fetched once, cached)."""
    top = cache_dir()
    done = os.path.join(top, "bitlk-images")
    if os.path.isfile(os.path.join(done, "images.conf")):
        return done
    work = tempfile.mkdtemp(prefix="fetch-", dir=top)
    try:
        orig = fetch_source(work)
        with tarfile.open(orig) as t:
            member = next((m for m in t.getmembers()
                           if m.name.endswith("/tests/bitlk-images.tar.xz")), None)
            if member is None:
                raise AssertionError("%s has no tests/bitlk-images.tar.xz" % orig)
            with open(os.path.join(work, "bitlk-images.tar.xz"), "wb") as f:
                shutil.copyfileobj(t.extractfile(member), f)
        out = os.path.join(work, "out")
        os.mkdir(out)
        # GNU tar keeps the 100 MB images sparse (a few MB on disk).
        r = run(["tar", "-xJSf", os.path.join(work, "bitlk-images.tar.xz"),
                 "--no-same-owner", "-C", out])
        if r.returncode != 0:
            raise AssertionError("tar: %s" % r.stderr)
        try:
            os.rename(os.path.join(out, "bitlk-images"), done)
        except OSError:
            if not os.path.isfile(os.path.join(done, "images.conf")):
                raise  # not a concurrent run that got there first
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return done


def read_conf(path):
    """images.conf: {image name: {KEY: value}}."""
    conf, cur = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            m = re.fullmatch(r"\[(.+)\]", line)
            if m:
                cur = conf.setdefault(m.group(1), {})
            elif cur is not None and "=" in line:
                k, v = line.split("=", 1)
                cur[k] = v
    return conf


def dump(img):
    """`cryptsetup bitlkDump IMG`: (volume GUID, [recovery-password protector
    GUIDs]) as printed."""
    r = run([CRYPTSETUP, "bitlkDump", img], env=dict(os.environ, LANG="C", LC_ALL="C"))
    if r.returncode != 0:
        raise AssertionError("bitlkDump %s: %s" % (img, r.stderr))
    vol = re.search(r"^GUID:\s*(%s)\s*$" % GUID_RE, r.stdout, re.M)
    rp = re.findall(r"^\s+GUID:\s*(%s)\s*\n\s*Protection:\s*VMK protected with "
                    r"recovery passphrase\s*$" % GUID_RE, r.stdout, re.M)
    return (vol.group(1) if vol else None), rp


def unlock(img, password):
    """cryptsetup's exit status for password on img: 0 when it unlocks the
    volume master key. `bitlkOpen -r --test-passphrase` first; images of a
    type cryptsetup will not activate (encrypt-on-write, clear key: exit 1
    whatever the password, as for a wrong one) are tried with `bitlkDump
    --dump-volume-key`, into a private file removed at once."""
    r = subprocess.run([CRYPTSETUP, "bitlkOpen", "-r", img, "--test-passphrase",
                        "--key-file", "-"], input=password, capture_output=True,
                       text=True, timeout=120)
    if r.returncode == 0:
        return 0
    with tempfile.TemporaryDirectory(prefix="kwtest-vk-") as d:
        r = subprocess.run([CRYPTSETUP, "bitlkDump", "-q", img, "--dump-volume-key",
                            "--volume-key-file", os.path.join(d, "vk"), "--key-file", "-"],
                           input=password, capture_output=True, text=True, timeout=120)
    return r.returncode


def another_valid(pw):
    """pw with its last group moved by 11: still well-formed (a multiple of
    11 below 720896), so a refusal proves the key was checked."""
    return pw[:-6] + "%06d" % ((int(pw[-6:]) + 11) % 720896)


class BitlkVectorsTest(kw.PortalTestCase):
    settings = {"limits": NO_LIMITS}

    @classmethod
    def setUpClass(cls):
        if not os.access(CRYPTSETUP, os.X_OK):
            # a missing test package fails, as tools/test installs it
            raise AssertionError("no cryptsetup: install cryptsetup-bin "
                                 "(tools/deps.sh lists it)")
        cls.dir = images()
        conf = read_conf(os.path.join(cls.dir, "images.conf"))
        cls.vectors = []
        for name in sorted(conf):
            img = os.path.join(cls.dir, name + ".img")
            if conf[name].get("RP") and os.path.isfile(img):
                cls.vectors.append((name, img, conf[name]))
        super().setUpClass()

    def test_0_enough_vectors(self):
        # cryptsetup 2.6's archive has 16 images, every one with a recovery
        # password: a fetch that found fewer is broken, not a pass.
        self.assertGreaterEqual(len(self.vectors), 10, self.vectors)

    def test_cryptsetup_opens_with_each_password(self):
        for name, img, c in self.vectors:
            with self.subTest(image=name):
                self.assertEqual(unlock(img, c["RP"]), 0,
                                 "cryptsetup refused the recovery password of %s" % name)
                self.assertNotEqual(unlock(img, another_valid(c["RP"])), 0)

    def test_dump_prints_the_protector_guid(self):
        for name, img, c in self.vectors:
            with self.subTest(image=name):
                vol, rp = dump(img)
                self.assertEqual(vol, c["GUID"])
                self.assertEqual(rp, [c["RP_VMK_GUID"]])

    def test_escrowed_and_found_by_the_screens_prefix(self):
        b = self.signed_in()
        did, secret = self.kw.register(name="BITLK-VECTORS")
        vols, want = [], {}
        for i, (name, img, c) in enumerate(self.vectors):
            vol_guid, (kid,) = dump(img)
            # Sent as bitlkDump prints the ID (lower case) or braced as
            # Windows shows it, the password with or without hyphens: all
            # must come out canonical.
            typed = (kid, c["RP"]) if i % 2 else ("{%s}" % kid, c["RP"].replace("-", ""))
            vols.append(volume([typed], vid=vol_guid, mount="/media/" + name,
                               vtype="removable"))
            want[kid.upper()] = (c["RP"], name)
            self.kw.secrets.add(c["RP"])
        logons = [{"user": b.user, "type": "local"}]

        # One group changed in the last one: refused, group named, nothing kept.
        last = vols[-1]["recovery_keys"][0]
        good, pw = last["recovery_password"], last["recovery_password"].replace("-", "")
        last["recovery_password"] = pw[:-6] + "%06d" % ((int(pw[-6:]) + 1) % 720896)
        r = self.kw.checkin(secret, volumes=vols, logons=logons)
        self.assertEqual(r.status, 422, r)
        (err,) = r.json()["errors"]
        self.assertEqual(err["field"], "volumes[%d].recovery_keys[0].recovery_password"
                         % (len(vols) - 1))
        self.assertIn("Group 8", err["message"])
        self.assertEqual(self.kw.export_rows(did), [])
        last["recovery_password"] = good

        r = self.kw.checkin(secret, volumes=vols, logons=logons)
        self.assertEqual(r.status, 200, r)
        rows = {row["key_id"]: row for row in self.kw.export_rows(did)}
        self.assertEqual(sorted(rows), sorted(want))
        for kid, (pw, name) in want.items():
            with self.subTest(image=name):
                self.assertEqual(rows[kid]["recovery_password"], pw)
                self.assertEqual(rows[kid]["state"], "active")
                # the recovery screen shows the ID's first 8 characters
                r = b.recover(kid[:8].lower())
                self.assertKeyShown(r, pw, "BITLK-VECTORS", kid)

if __name__ == "__main__":
    unittest.main()
