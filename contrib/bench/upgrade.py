#!/usr/bin/env python3
"""Benchmark: what clients notice while Berth is upgraded in place.

Run by hand, as root, with the berthd of this checkout running (as
contrib/setup.sh starts it, or on the socket given). Standard library only.

    python3 contrib/bench/upgrade.py [--containers 200] [--host /run/berth/docker.sock] [--seconds 2] [--repeat 1] [--pace 5] [--window 300]

With N running containers that print a line every half second, two clients
loop (waiting --pace ms between steps), one connection per request: one lists containers (GET
/containers/json, which berthd answers alone), one runs short containers
through the API (create, start, wait, delete: each needs berth-core, and
each container exits). For each of these, run in turn:

  1. nothing (the baseline);
  2. `berthd upgrade --core-only`: berth-core taken over;
  3. `berthd upgrade`: berth-core, then berthd;
  4. a plain core restart: SIGTERM to berth-core (berthd starts a new one
     when it notices);

it prints the requests that failed and the slowest of each kind in
progress while the action ran (at least --window ms from its start, the
same span for the baseline; each request timed on its own; with --repeat K, each action is run K times,
interleaved with the others, and the median and the maximum over the runs
are shown, with when the worst core request started relative to the
action), then checks that every container kept running and logging. The binaries of this
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
    """Loops on `step` until stopped; every request is timed on its own."""

    def __init__(self, step, pace=0.0):
        super().__init__(daemon=True)
        self.step = step
        # Seconds between steps: a client that polls, not one that
        # saturates the host (whose own queueing would be measured then).
        self.pace = pace
        self.stop = False
        self.ok = 0
        self.failed = []
        # (started, seconds, what) of every request that answered.
        self.requests = []

    def timed(self, what, request):
        t = time.monotonic()
        try:
            result = request()
        except OSError as e:
            raise RuntimeError(f"{what}: {e} after {time.monotonic() - t:.1f} s") from e
        self.requests.append((t, time.monotonic() - t, what))
        return result

    def run(self):
        while not self.stop:
            try:
                self.step(self)
                self.ok += 1
            except Exception as e:  # a failure is what we count
                self.failed.append(str(e))
            if self.pace:
                time.sleep(self.pace)

    def slowest(self, kinds=None, during=None):
        """The slowest request (seconds, what, started) of the given kinds,
        of those that were in progress at some time of `during` (from, to)."""
        chosen = [r for r in self.requests if kinds is None or r[2] in kinds]
        if during is not None:
            chosen = [r for r in chosen if r[0] < during[1] and r[0] + r[1] > during[0]]
        if not chosen:
            return (0.0, "-", 0.0)
        t, d, what = max(chosen, key=lambda r: r[1])
        return (d, what, t)


def list_step(sock, client):
    status, body = client.timed("list", lambda: call(sock, "GET", "/containers/json"))
    if status != 200:
        raise RuntimeError(f"list: {status} {body[:200]!r}")


# The requests of a run cycle that go to berth-core. `wait` is left out of
# the slowest: it lasts as long as the container runs.
CORE_REQUESTS = ("create", "start", "delete")


def run_step(sock, client):
    """One short container through the API: create, start, wait, delete
    (removed whatever happened)."""
    status, body = client.timed("create", lambda: call(
        sock, "POST", "/containers/create",
        {"Image": "busybox", "Cmd": ["true"], "Labels": {"berth.bench": "recovery"}}))
    if status != 201:
        raise RuntimeError(f"create: {status} {body[:200]!r}")
    cid = json.loads(body)["Id"]
    try:
        for what, path, want in (("start", f"/containers/{cid}/start", 204),
                                 ("wait", f"/containers/{cid}/wait", 200)):
            status, body = client.timed(what, lambda: call(sock, "POST", path))
            if status != want:
                raise RuntimeError(f"POST {path}: {status} {body[:200]!r}")
    finally:
        status, body = client.timed("delete", lambda: call(sock, "DELETE", f"/containers/{cid}?force=1"))
        if status != 204:
            raise RuntimeError(f"DELETE: {status} {body[:200]!r}")


def core_pid(exec_root):
    found = process_of("berth-core", exec_root)
    return found[0] if found else None


def wait_gone(pid):
    fd = os.pidfd_open(pid)
    select.select([fd], [], [], 30)
    os.close(fd)


def measure(sock, action, seconds, pace, window):
    """Loads the daemon for `seconds` with `action` run in the middle; the
    action's duration, the failures, and the slowest list and core request
    in progress while the action ran (at least `window` seconds from its
    start, so that the baseline's "nothing" spans as long as an upgrade),
    as (seconds, what, started relative to the action's start)."""
    lister = Client(lambda c: list_step(sock, c), pace)
    runner = Client(lambda c: run_step(sock, c), pace)
    for c in (lister, runner):
        c.start()
    time.sleep(seconds / 2)
    t = time.monotonic()
    action()
    took = time.monotonic() - t
    time.sleep(seconds / 2)
    for c in (lister, runner):
        c.stop = True
    for c in (lister, runner):
        c.join()
    during = (t, t + max(took, window))
    slow_list = lister.slowest(during=during)
    slow_core = runner.slowest(CORE_REQUESTS, during=during)
    return {
        "took": took,
        "ok": (lister.ok, runner.ok),
        "failed": lister.failed + runner.failed,
        "list": (slow_list[0], slow_list[1], slow_list[2] - t),
        "core": (slow_core[0], slow_core[1], slow_core[2] - t),
    }


def report(label, runs):
    """One table row: medians over the repeats, and the worst repeat."""
    def ms(x):
        return f"{x * 1000:.1f}"

    def median(xs):
        xs = sorted(xs)
        return xs[len(xs) // 2]

    lists = [r["list"][0] for r in runs]
    cores = [r["core"][0] for r in runs]
    failed = [f for r in runs for f in r["failed"]]
    worst_list = max(runs, key=lambda r: r["list"][0])["list"]
    worst_core = max(runs, key=lambda r: r["core"][0])["core"]
    print(f"| {label} | {ms(median([r['took'] for r in runs]))} ms | "
          f"{sum(r['ok'][0] for r in runs)} / {sum(r['ok'][1] for r in runs)} | {len(failed)} | "
          f"{ms(median(lists))} ({ms(max(lists))}) ms, worst at {worst_list[2] * 1000:+.0f} ms | "
          f"{ms(median(cores))} ({ms(max(cores))}) ms, "
          f"worst: {worst_core[1]} at {worst_core[2] * 1000:+.0f} ms |")
    for f in failed[:5]:
        print(f"|   failed: {f} |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=200)
    ap.add_argument("--host", default="/run/berth/docker.sock")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--pace", type=float, default=5.0,
                    help="milliseconds each client waits between steps (0: as fast as it can)")
    ap.add_argument("--window", type=float, default=300.0,
                    help="milliseconds from the action's start in which requests count, at least")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run each action this many times (the slowest request varies between runs)")
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

        print(f"{args.containers} running containers; clients: list, and create+start+wait+delete, "
              f"{args.pace:g} ms apart; {args.repeat} run(s) of each action\n")
        print("| action | action took (median) | requests ok (list / run cycles) | failed "
              f"| slowest list while it ran (≥ {args.window:g} ms): median (max) "
              "| slowest create/start/delete while it ran: median (max) |")
        print("|---|---|---|---|---|---|")
        actions = [
            ("nothing (baseline)", lambda: None),
            ("core takeover (`berthd upgrade --core-only`)", lambda: upgrade("--core-only")),
            ("full upgrade (`berthd upgrade`)", lambda: upgrade()),
            ("plain core restart (SIGTERM)", restart_core),
        ]
        runs = {label: [] for label, _ in actions}
        # Interleaved, so that a slow spell of the host falls on every row.
        for _ in range(args.repeat):
            for label, action in actions:
                runs[label].append(measure(sock, action, args.seconds, args.pace / 1000, args.window / 1000))
        for label, _ in actions:
            report(label, runs[label])

        ids_after = docker(sock, "ps", "-q", "--filter", "label=" + LABEL).split()
        kept = sum(1 for i in ids if docker(sock, "inspect", "-f", "{{.State.Pid}}", i).strip() == pids[i])
        grew = sum(1 for i, n in before.items() if len(docker(sock, "logs", i).splitlines()) > n)
        print(f"\n{len(ids_after)} of {len(ids)} containers running, {kept} with the same pid; "
              f"{grew} of {len(before)} sampled kept logging")
    finally:
        remove_containers(sock)


if __name__ == "__main__":
    main()
