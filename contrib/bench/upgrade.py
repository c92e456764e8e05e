#!/usr/bin/env python3
"""Benchmark: what clients notice while Berth is upgraded in place.

Run by hand, as root, with the berthd of this checkout running (as
contrib/setup.sh starts it, or on the socket given). Standard library only.

    python3 contrib/bench/upgrade.py [--containers 200] [--host /run/berth/docker.sock] [--seconds 2]

With N running containers that print a line every half second, two clients
loop, one connection per request: one lists containers (GET
/containers/json, which berthd answers alone), one runs short containers
through the API (create, start, wait, delete: each needs berth-core, and
each container exits). For each of these, run in turn:

  1. nothing (the baseline);
  2. `berthd upgrade --core-only`: berth-core taken over;
  3. `berthd upgrade`: berth-core, then berthd;
  4. a plain core restart: SIGTERM to berth-core (berthd starts a new one
     when it notices);

it prints the requests that failed and the slowest of each kind, then
checks that every container kept running and logging. The binaries of this
checkout replace themselves, which measures the mechanism, not a version
change.
"""
import argparse
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from recovery import ROOT, berthd_pid, call, docker, process_of, remove_containers  # noqa: E402

BERTHD = os.path.join(ROOT, "target", "release", "berthd")
LABEL = "berth.bench=recovery"


class Client(threading.Thread):
    """Loops on `step` until stopped; counts failures and the slowest."""

    def __init__(self, step):
        super().__init__(daemon=True)
        self.step = step
        self.stop = False
        self.ok = 0
        self.failed = []
        self.slowest = 0.0

    def run(self):
        while not self.stop:
            t = time.monotonic()
            try:
                self.step()
                self.ok += 1
            except Exception as e:  # a failure is what we count
                self.failed.append(str(e))
            self.slowest = max(self.slowest, time.monotonic() - t)


def list_step(sock):
    status, body = call(sock, "GET", "/containers/json")
    if status != 200:
        raise RuntimeError(f"list: {status} {body[:200]!r}")


def run_step(sock):
    """One short container, its four requests timed together; removed
    whatever happened."""
    status, body = call(sock, "POST", "/containers/create",
                        {"Image": "busybox", "Cmd": ["true"], "Labels": {"berth.bench": "recovery"}})
    if status != 201:
        raise RuntimeError(f"create: {status} {body[:200]!r}")
    cid = json.loads(body)["Id"]
    try:
        for method, path, want in (("POST", f"/containers/{cid}/start", 204),
                                   ("POST", f"/containers/{cid}/wait", 200)):
            status, body = call(sock, method, path)
            if status != want:
                raise RuntimeError(f"{method} {path}: {status} {body[:200]!r}")
    finally:
        status, body = call(sock, "DELETE", f"/containers/{cid}?force=1")
        if status != 204:
            raise RuntimeError(f"DELETE: {status} {body[:200]!r}")


def core_pid(exec_root):
    found = process_of("berth-core", exec_root)
    return found[0] if found else None


def wait_gone(pid):
    fd = os.pidfd_open(pid)
    select.select([fd], [], [], 30)
    os.close(fd)


def measure(sock, label, action, seconds):
    clients = [Client(lambda: list_step(sock)), Client(lambda: run_step(sock))]
    for c in clients:
        c.start()
    time.sleep(seconds / 2)
    t = time.monotonic()
    action()
    took = time.monotonic() - t
    time.sleep(seconds / 2)
    for c in clients:
        c.stop = True
    for c in clients:
        c.join()
    lister, runner = clients
    failed = lister.failed + runner.failed
    print(f"| {label} | {took * 1000:.0f} ms | {lister.ok} / {runner.ok} | {len(failed)} | "
          f"{lister.slowest * 1000:.1f} ms | {runner.slowest * 1000:.1f} ms |")
    for f in failed[:5]:
        print(f"|   failed: {f} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=200)
    ap.add_argument("--host", default="/run/berth/docker.sock")
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    sock = args.host
    pid, cmd = berthd_pid(sock)
    flags = [a for a in cmd[1:] if a != "--takeover"]
    exec_root = "/run/berth"
    if "--exec-root" in flags:
        exec_root = flags[flags.index("--exec-root") + 1]
    log = os.path.realpath(f"/proc/{pid}/fd/2")
    log_opt = ["--log-file", log] if os.path.isfile(log) else []
    image = os.path.join(ROOT, "target", "busybox.tar")
    if not os.path.exists(image):
        subprocess.run([os.path.join(ROOT, "contrib", "make-busybox-image.sh"), image], check=True,
                       stdout=subprocess.DEVNULL)
    docker(sock, "load", "-i", image)
    try:
        for _ in range(args.containers):
            docker(sock, "run", "-d", "--label", LABEL, "busybox", "sh", "-c",
                   "while :; do echo tick; sleep 0.5; done")
        ids = docker(sock, "ps", "-q", "--filter", "label=" + LABEL).split()
        before = {i: len(docker(sock, "logs", i).splitlines()) for i in ids[:10]}
        pids = {i: docker(sock, "inspect", "-f", "{{.State.Pid}}", i).strip() for i in ids}

        def upgrade(*extra):
            out = subprocess.run([BERTHD, "upgrade", *log_opt, *extra, *flags], capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(f"berthd upgrade failed: {out.stderr}")

        def restart_core():
            core = core_pid(exec_root)
            os.kill(core, signal.SIGTERM)
            wait_gone(core)

        print(f"{args.containers} running containers; clients: list, and create+start+wait+delete\n")
        print("| action | action took | requests ok (list / run cycles) | failed | slowest list | slowest run cycle |")
        print("|---|---|---|---|---|---|")
        measure(sock, "nothing (baseline)", lambda: None, args.seconds)
        measure(sock, "core takeover (`berthd upgrade --core-only`)", lambda: upgrade("--core-only"), args.seconds)
        measure(sock, "full upgrade (`berthd upgrade`)", lambda: upgrade(), args.seconds)
        measure(sock, "plain core restart (SIGTERM)", restart_core, args.seconds)

        ids_after = docker(sock, "ps", "-q", "--filter", "label=" + LABEL).split()
        kept = sum(1 for i in ids if docker(sock, "inspect", "-f", "{{.State.Pid}}", i).strip() == pids[i])
        grew = sum(1 for i, n in before.items() if len(docker(sock, "logs", i).splitlines()) > n)
        print(f"\n{len(ids_after)} of {len(ids)} containers running, {kept} with the same pid; "
              f"{grew} of {len(before)} sampled kept logging")
    finally:
        remove_containers(sock)


if __name__ == "__main__":
    main()
