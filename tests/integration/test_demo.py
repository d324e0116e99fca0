"""`keywarden demo`: the instance the README's first command starts."""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

import kw


class DemoTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="kwtest-demo-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def run_demo(self, port):
        """Starts the demo on port; returns (process, banner text)."""
        p = subprocess.Popen(kw.WRAPPER + [kw.BINARY, "demo", "--dir",
                                           os.path.join(self.dir, "d"),
                                           "--listen", "127.0.0.1:%d" % port],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        out, deadline = "", time.time() + kw.STARTUP_TIMEOUT * 3
        while "stop with Ctrl-C" not in out and time.time() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            out += line
        self.assertIn("stop with Ctrl-C", out)
        return p, out

    def stop(self, p):
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(kw.STOP_TIMEOUT), 0)

    def healthy(self, port):
        inst = kw.Keywarden.__new__(kw.Keywarden)
        inst.port, inst.scheme = port, "http"
        try:
            return inst.request("GET", "/healthz", timeout=5).status == 200
        except OSError:
            return False

    def test_rerun_listens_where_asked(self):
        first, second = kw.free_port(), kw.free_port()
        p, out = self.run_demo(first)
        self.assertIn("http://127.0.0.1:%d/" % first, out)
        kid = re.search(r"full ID ([0-9A-F-]{36})", out).group(1)
        self.assertTrue(kw.wait_for(lambda: self.healthy(first), timeout=30))
        self.stop(p)
        # Again with the same data and another address: served there, the
        # banner says so, and the key ID to try is the same.
        p, out = self.run_demo(second)
        self.assertIn("http://127.0.0.1:%d/" % second, out)
        self.assertIn(kid, out)
        self.assertTrue(kw.wait_for(lambda: self.healthy(second), timeout=30))
        self.stop(p)


if __name__ == "__main__":
    unittest.main()
