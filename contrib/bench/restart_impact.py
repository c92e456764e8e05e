#!/usr/bin/env python3
"""Benchmark: what clients notice when berthd or berth-core goes away.

Run by hand, as root, with Berth running from this checkout
(bash contrib/setup.sh). Standard library only.

    python3 contrib/bench/restart_impact.py [--seconds 3]

Reports, under a client looping on GET /containers/json (one connection per
request):
  1. berthd --takeover: failed requests and the slowest request;
  2. berthd kill -9 plus restart: failed requests, the longest gap without an
     answer, and the slowest request;
  3. berth-core kill -9: the time from a container's exit during the outage
     until `docker inspect` reports it (berthd restarts the core, the core
     re-adopts the shim and reports the exit).
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import recovery  # noqa: E402

SOCK = "/run/berth/docker.sock"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BERTHD = os.path.join(ROOT, "target", "release", "berthd")


def call(method, path, body=None):
    return recovery.call(SOCK, method, path, body)


class Looper(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.stop = False
        self.ok = 0
        self.failed = 0
        self.slowest = 0.0
        self.longest_gap = 0.0

    def run(self):
        last_ok = time.monotonic()
        while not self.stop:
            t = time.monotonic()
            try:
                status, _ = call("GET", "/containers/json")
                good = status == 200
            except OSError:
                good = False
            now = time.monotonic()
            if good:
                self.ok += 1
                self.slowest = max(self.slowest, now - t)
                self.longest_gap = max(self.longest_gap, now - last_ok)
                last_ok = now
            else:
                self.failed += 1


def berthd_pid():
    out = subprocess.run(["pgrep", "-xo", "berthd"], capture_output=True, text=True).stdout.strip()
    return int(out) if out else None


def start_berthd(extra):
    return subprocess.Popen([BERTHD, *extra], stdin=subprocess.DEVNULL, stdout=open("/var/log/berthd.log", "a"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def wait_gone(pid, limit=30):
    fd = os.pidfd_open(pid)
    import select
    select.select([fd], [], [], limit)
    os.close(fd)


def measure(label, action, seconds):
    loop = Looper()
    loop.start()
    time.sleep(seconds / 2)
    action()
    time.sleep(seconds / 2)
    loop.stop = True
    loop.join()
    print(f"{label}: {loop.ok} requests ok, {loop.failed} failed, slowest {loop.slowest * 1000:.1f} ms, "
          f"longest gap between answers {loop.longest_gap * 1000:.1f} ms")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    old = berthd_pid()
    assert old, "berthd is not running (bash contrib/setup.sh)"

    def takeover():
        start_berthd(["--takeover"])
        wait_gone(old)

    measure("takeover", takeover, args.seconds)

    def kill_restart():
        pid = berthd_pid()
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid)
        start_berthd([])

    measure("kill -9 + restart", kill_restart, args.seconds)

    # Core outage: a container exits while no core runs.
    status, body = call("POST", "/containers/create",
                        {"Image": "busybox", "Cmd": ["sh", "-c", "trap 'exit 3' TERM; while true; do sleep 0.05; done"]})
    cid = json.loads(body)["Id"]
    call("POST", f"/containers/{cid}/start")
    pid = json.loads(call("GET", f"/containers/{cid}/json")[1])["State"]["Pid"]
    core = int(subprocess.run(["pgrep", "-xo", "berth-core"], capture_output=True, text=True).stdout.strip())
    os.kill(core, signal.SIGKILL)
    wait_gone(core)
    t0 = time.monotonic()
    os.kill(pid, signal.SIGTERM)
    while True:
        try:
            state = json.loads(call("GET", f"/containers/{cid}/json")[1])["State"]
            if state["Status"] == "exited":
                break
        except OSError:
            pass
    print(f"core outage: exit (code {state['ExitCode']}) reported {(time.monotonic() - t0) * 1000:.1f} ms after it happened")
    call("DELETE", f"/containers/{cid}")


if __name__ == "__main__":
    main()
