#!/usr/bin/env python3
"""Benchmark: recovery at scale. berthd is killed (SIGKILL) with many
running containers and started again; how long until it answers a request,
and until `GET /containers/json` lists every container as running?

Run by hand, as root, with the berthd of this checkout running (as
contrib/setup.sh starts it, or on the socket given). Standard library only.

    python3 contrib/bench/recovery.py [--containers 200] [--host /run/berth/docker.sock]

berthd is restarted with the command line it ran with. The containers are
removed at the end. (dockerd's figure for the same, with --live-restore,
is in the speed issue's notes: it is measured by hand, since the
side-by-side dockerd of these benchmarks runs without live-restore.)
"""
import argparse
import http.client
import json
import os
import select
import signal
import socket
import subprocess
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def get(sock, path):
    """(status, body) of a GET, or None when nothing answers."""
    try:
        c = UnixConnection(sock)
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    except OSError:
        return None


def docker(sock, *args):
    env = dict(os.environ, DOCKER_HOST="unix://" + sock)
    return subprocess.run(["docker", *args], env=env, check=True, capture_output=True, text=True).stdout


def berthd_pid(sock):
    """The berthd serving `sock`: the one whose command line names it."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if os.path.basename(cmd[0]) == b"berthd" and any(sock.encode() in a for a in cmd):
            return int(pid), [a.decode() for a in cmd if a]
    raise SystemExit(f"no berthd serving {sock} (start it with -H unix://{sock})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=200)
    ap.add_argument("--host", default="/run/berth/docker.sock")
    args = ap.parse_args()
    sock = args.host
    image = os.path.join(ROOT, "target", "busybox.tar")
    if not os.path.exists(image):
        subprocess.run([os.path.join(ROOT, "contrib", "make-busybox-image.sh"), image], check=True,
                       stdout=subprocess.DEVNULL)
    docker(sock, "load", "-i", image)
    for _ in range(args.containers):
        docker(sock, "run", "-d", "--label", "berth.bench=recovery", "busybox", "sleep", "3600")
    pid, cmd = berthd_pid(sock)
    # Its exit is awaited on a pidfd: berthd is not our child, and once
    # re-parented, init may leave it a zombie (still in /proc) for long.
    exited = os.pidfd_open(pid)
    os.kill(pid, signal.SIGKILL)
    select.select([exited], [], [])
    os.close(exited)
    log = open(os.path.join("/tmp", "berth-recovery-berthd.log"), "ab")
    t0 = time.monotonic()
    subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
    first = None
    while True:
        r = get(sock, "/_ping")
        if r and r[0] == 200:
            first = time.monotonic() - t0
            break
    while True:
        r = get(sock, "/containers/json?filters=" + urllib.parse.quote('{"label":["berth.bench=recovery"]}'))
        if r and r[0] == 200:
            listed = json.loads(r[1])
            if len(listed) == args.containers and all(c["State"] == "running" for c in listed):
                every = time.monotonic() - t0
                break
    print(f"berthd killed with {args.containers} running containers and started again:")
    print(f"  first answer after {first * 1000:.0f} ms, every container listed running after {every * 1000:.0f} ms")
    ids = docker(sock, "ps", "-aq", "--filter", "label=berth.bench=recovery").split()
    if ids:
        docker(sock, "rm", "-f", *ids)


if __name__ == "__main__":
    main()
