"""The HTTP layer under stress and attack (issue 8): SIGTERM under load,
503 for store failures, X-Forwarded-For from trusted proxies, slow clients,
ambiguous framing, TLS versions and suites, and the headers of the
responses libmicrohttpd makes itself."""

import http.client
import json
import os
import random
import signal
import socket
import subprocess
import threading
import time
import unittest

import kw
from kw import key_id, recovery_password, volume


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


if __name__ == "__main__":
    unittest.main()
