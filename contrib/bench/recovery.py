#!/usr/bin/env python3
"""Benchmark: recovery at scale. The daemon is killed (SIGKILL) with many
running containers and started again; how long until it answers a request,
and until `GET /containers/json` lists every container as running?

Run by hand, as root, with the berthd of this checkout running (as
contrib/setup.sh starts it, or on the socket given). Standard library only.

    python3 contrib/bench/recovery.py [--containers 200] [--host /run/berth/docker.sock] [--docker]

berthd is restarted with the command line it ran with. With --docker, the
same is measured on Debian's dockerd with --live-restore, beside Berth: its
own data-root, exec-root, socket and bridge, and a containerd started on
its own (dockerd's managed containerd dies with a SIGKILLed dockerd, which
would stop the containers live-restore is meant to keep). The containers
are removed at the end, and that dockerd and containerd stopped.
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
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def call(sock, method, path, body=None):
    """(status, body) of an API request (version 1.50) with a JSON body."""
    c = UnixConnection(sock)
    c.request(method, "/v1.50" + path, body=json.dumps(body) if body is not None else None,
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


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


def process_of(binary, mention):
    """(pid, command line) of the `binary` process whose command line
    mentions `mention`, or None."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if os.path.basename(cmd[0]) == binary.encode() and any(mention.encode() in a for a in cmd):
            return int(pid), [a.decode() for a in cmd if a]
    return None


def berthd_pid(sock):
    """The berthd serving `sock`: the one whose command line names it."""
    found = process_of("berthd", sock)
    if not found:
        raise SystemExit(f"no berthd serving {sock} (start it with -H unix://{sock})")
    return found


def wait_killed(pid):
    """SIGKILLs `pid` and waits for it on a pidfd: a daemon is not our
    child, and once re-parented, init may leave it a zombie for long."""
    exited = os.pidfd_open(pid)
    os.kill(pid, signal.SIGKILL)
    select.select([exited], [], [])
    os.close(exited)


def measure(sock, containers, restart):
    """(first answer, every container listed running), in seconds after
    `restart()` is called."""
    t0 = time.monotonic()
    restart()
    while True:
        r = get(sock, "/_ping")
        if r and r[0] == 200:
            first = time.monotonic() - t0
            break
    query = "/containers/json?filters=" + urllib.parse.quote('{"label":["berth.bench=recovery"]}')
    while True:
        r = get(sock, query)
        if r and r[0] == 200:
            listed = json.loads(r[1])
            if len(listed) == containers and all(c["State"] == "running" for c in listed):
                return first, time.monotonic() - t0


def start_containers(sock, image, n):
    docker(sock, "load", "-i", image)
    for _ in range(n):
        docker(sock, "run", "-d", "--label", "berth.bench=recovery", "busybox", "sleep", "3600")


def remove_containers(sock):
    ids = docker(sock, "ps", "-aq", "--filter", "label=berth.bench=recovery").split()
    if ids:
        docker(sock, "rm", "-f", *ids)


def wait_socket(sock, what):
    for _ in range(300):
        r = get(sock, "/_ping")
        if r and r[0] == 200:
            return
        time.sleep(0.1)
    raise SystemExit(f"{what} did not answer on {sock}")


class Dockerd:
    """Debian's dockerd with --live-restore on a containerd of its own."""

    BRIDGE = "bench-docker9"

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="bench-recovery.")
        self.sock = os.path.join(self.dir, "docker.sock")
        self.containerd = None
        self.dockerd = None
        d = self.dir
        config = os.path.join(d, "containerd.toml")
        with open(config, "w") as f:
            f.write('version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n')
        self.ctr_sock = os.path.join(d, "containerd.sock")
        self.log = open(os.path.join(d, "daemons.log"), "ab")
        self.containerd = subprocess.Popen(
            ["containerd", "--config", config, "--root", os.path.join(d, "containerd-root"),
             "--state", os.path.join(d, "containerd-state"), "--address", self.ctr_sock],
            stdout=self.log, stderr=self.log, start_new_session=True)
        subprocess.run(["ip", "link", "add", "name", self.BRIDGE, "type", "bridge"], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "addr", "add", "172.31.249.1/24", "dev", self.BRIDGE], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "link", "set", self.BRIDGE, "up"], check=True)
        self.cmd = ["dockerd", "--data-root", os.path.join(d, "data"), "--exec-root", os.path.join(d, "exec"),
                    "-H", "unix://" + self.sock, "--pidfile", os.path.join(d, "docker.pid"),
                    "-b", self.BRIDGE, "--iptables=false", "--ip-masq=false", "--live-restore",
                    "--containerd", self.ctr_sock]
        for _ in range(100):
            if os.path.exists(self.ctr_sock):
                break
            time.sleep(0.1)
        self.start()
        wait_socket(self.sock, "dockerd")

    def start(self):
        self.dockerd = subprocess.Popen(self.cmd, stdout=self.log, stderr=self.log, start_new_session=True)

    def kill(self):
        wait_killed(self.dockerd.pid)
        self.dockerd.wait()

    def stop(self):
        """Everything it started goes: containers, dockerd, containerd and
        its shims, the bridge, mounts and the directory."""
        try:
            remove_containers(self.sock)
        except Exception as e:  # keep cleaning up
            print(f"removing dockerd's containers: {e}")
        for p in (self.dockerd, self.containerd):
            if p and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        subprocess.run(["ip", "link", "del", self.BRIDGE], stderr=subprocess.DEVNULL)
        mounts = [line.split()[1] for line in open("/proc/self/mounts")]
        for m in sorted((m for m in mounts if m.startswith(self.dir)), reverse=True):
            subprocess.run(["umount", "-l", m], stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=200)
    ap.add_argument("--host", default="/run/berth/docker.sock")
    ap.add_argument("--docker", action="store_true")
    args = ap.parse_args()
    sock = args.host
    image = os.path.join(ROOT, "target", "busybox.tar")
    if not os.path.exists(image):
        subprocess.run([os.path.join(ROOT, "contrib", "make-busybox-image.sh"), image], check=True,
                       stdout=subprocess.DEVNULL)
    results = []
    try:
        start_containers(sock, image, args.containers)
        pid, cmd = berthd_pid(sock)
        wait_killed(pid)
        log = open(os.path.join("/tmp", "berth-recovery-berthd.log"), "ab")
        first, every = measure(sock, args.containers,
                               lambda: subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True))
        results.append(("berthd", first, every))
    finally:
        remove_containers(sock)
    if args.docker:
        d = Dockerd()
        try:
            start_containers(d.sock, image, args.containers)
            d.kill()
            first, every = measure(d.sock, args.containers, d.start)
            results.append(("dockerd --live-restore", first, every))
        finally:
            d.stop()
    print(f"daemon killed with {args.containers} running containers and started again:")
    for name, first, every in results:
        print(f"  {name}: first answer after {first * 1000:.0f} ms, "
              f"every container listed running after {every * 1000:.0f} ms")


if __name__ == "__main__":
    main()
