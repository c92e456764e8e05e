#!/usr/bin/env python3
"""Benchmark: recovery at scale. berthd is killed (SIGKILL) with many
running containers and started again; how long until it answers a request,
and until `GET /containers/json` lists every container as running? With
--docker, the same for Debian's dockerd with --live-restore (its own
data-root, exec-root, socket and bridge, --iptables=false), started beside
Berth for the measurement and stopped after it.

Run by hand, as root, with the berthd of this checkout running (as
contrib/setup.sh starts it, or on the socket given). Standard library only.

    python3 contrib/bench/recovery.py [--containers 200] [--host /run/berth/docker.sock] [--docker]

Each daemon is restarted with the command line it ran with. The containers
are removed at the end.
"""
import argparse
import http.client
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
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


def daemon_pid(name, sock):
    """The daemon called `name` serving `sock`: the one whose command line
    names it; its pid and command line."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if os.path.basename(cmd[0]) == name.encode() and any(sock.encode() in a for a in cmd):
            return int(pid), [a.decode() for a in cmd if a]
    raise SystemExit(f"no {name} serving {sock} (start it with -H unix://{sock})")


def kill_and_wait(pid):
    # Its exit is awaited on a pidfd: the daemon may not be our child, and
    # once re-parented, init may leave it a zombie (still in /proc) for long.
    exited = os.pidfd_open(pid)
    os.kill(pid, signal.SIGKILL)
    select.select([exited], [], [])
    os.close(exited)


def measure(name, sock, containers, image):
    """Kills the daemon with `containers` running and starts it again."""
    docker(sock, "load", "-i", image)
    for _ in range(containers):
        docker(sock, "run", "-d", "--label", "berth.bench=recovery", "busybox", "sleep", "3600")
    pid, cmd = daemon_pid(name, sock)
    kill_and_wait(pid)
    log = open(os.path.join("/tmp", f"berth-recovery-{name}.log"), "ab")
    t0 = time.monotonic()
    subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
    while True:
        r = get(sock, "/_ping")
        if r and r[0] == 200:
            first = time.monotonic() - t0
            break
    while True:
        r = get(sock, "/containers/json?filters=" + urllib.parse.quote('{"label":["berth.bench=recovery"]}'))
        if r and r[0] == 200:
            listed = json.loads(r[1])
            if len(listed) == containers and all(c["State"] == "running" for c in listed):
                every = time.monotonic() - t0
                break
    print(f"{name} killed with {containers} running containers and started again:")
    print(f"  first answer after {first * 1000:.0f} ms, every container listed running after {every * 1000:.0f} ms")
    ids = docker(sock, "ps", "-aq", "--filter", "label=berth.bench=recovery").split()
    if ids:
        docker(sock, "rm", "-f", *ids)


def with_dockerd(run):
    """Runs `run(socket)` with a dockerd (--live-restore) beside Berth, then
    stops it and removes what it left (its containerd, mounts, bridge)."""
    root = tempfile.mkdtemp(prefix="bench-dockerd.", dir="/tmp")
    bridge = "bench-docker2"
    subprocess.run(["ip", "link", "add", "name", bridge, "type", "bridge"], stderr=subprocess.DEVNULL)
    subprocess.run(["ip", "addr", "add", "172.31.252.1/24", "dev", bridge], stderr=subprocess.DEVNULL)
    subprocess.run(["ip", "link", "set", bridge, "up"], check=True)
    sock = os.path.join(root, "docker.sock")
    log = open(os.path.join(root, "dockerd.log"), "ab")
    subprocess.Popen(["dockerd", "--live-restore", "--data-root", root + "/data", "--exec-root", root + "/exec",
                      "-H", "unix://" + sock, "--pidfile", root + "/docker.pid", "-b", bridge,
                      "--iptables=false", "--ip-masq=false", "--containerd-namespace", "benchrecovery",
                      "--containerd-plugins-namespace", "benchrecovery-plugins"],
                     stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not (get(sock, "/_ping") or (None,))[0] == 200:
            if time.monotonic() > deadline:
                raise SystemExit(f"dockerd did not come up; see {root}/dockerd.log")
            time.sleep(0.1)
        run(sock)
    finally:
        for name in ("dockerd", "containerd"):
            try:
                kill_and_wait(daemon_pid(name, root)[0])
            except SystemExit:
                pass
        # Shims (and any container left) of that containerd.
        for pid in os.listdir("/proc"):
            try:
                cmd = open(f"/proc/{pid}/cmdline", "rb").read()
            except OSError:
                continue
            if b"benchrecovery" in cmd:
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["umount", "-R", root], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "link", "del", bridge], stderr=subprocess.DEVNULL)
        shutil.rmtree(root, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=200)
    ap.add_argument("--host", default="/run/berth/docker.sock")
    ap.add_argument("--docker", action="store_true")
    args = ap.parse_args()
    image = os.path.join(ROOT, "target", "busybox.tar")
    if not os.path.exists(image):
        subprocess.run([os.path.join(ROOT, "contrib", "make-busybox-image.sh"), image], check=True,
                       stdout=subprocess.DEVNULL)
    measure("berthd", args.host, args.containers, image)
    if args.docker:
        with_dockerd(lambda sock: measure("dockerd", sock, args.containers, image))


if __name__ == "__main__":
    main()
