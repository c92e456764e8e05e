"""The streaming endpoints through the Python `docker` SDK (from PyPI), as
scripts that use Berth would call them: logs (whole, streamed, followed),
events (filtered, decoded), stats (streamed and one-shot) and an attach
socket with stdin.

    python3 sdk_streams.py unix:///path/to/docker.sock
"""
import sys
import time

import docker


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def main():
    client = docker.DockerClient(base_url=sys.argv[1], version="1.50")
    since = time.time()

    # logs: whole, split by stream, tail, streamed. (Which of two pipes is
    # read first is up to the kernel, so order is only asserted per stream.)
    c = client.containers.run("busybox", ["sh", "-c", "echo out1; echo err1 >&2; echo out2"], detach=True, name="sdk-logs")
    check(c.wait()["StatusCode"] == 0, "exit code")
    check(c.logs(stdout=True, stderr=False) == b"out1\nout2\n", c.logs(stdout=True, stderr=False))
    check(c.logs(stdout=False, stderr=True) == b"err1\n", "stderr")
    check(sorted(c.logs().splitlines()) == [b"err1", b"out1", b"out2"], c.logs())
    o = client.containers.run("busybox", ["sh", "-c", "echo a; echo b; echo c"], detach=True, name="sdk-tail")
    o.wait()
    check(o.logs(tail=2) == b"b\nc\n", o.logs(tail=2))
    streamed = b"".join(o.logs(stream=True))
    check(streamed == b"a\nb\nc\n", streamed)
    f = client.containers.run("busybox", ["sh", "-c", "for i in 1 2 3; do echo n$i; sleep 0.05; done"], detach=True, name="sdk-follow")
    followed = b"".join(f.logs(stream=True, follow=True))
    check(followed == b"n1\nn2\nn3\n", followed)

    # events: decoded, filtered, bounded by until.
    evs = list(client.events(since=since, until=time.time() + 0.001, decode=True, filters={"container": "sdk-logs"}))
    actions = [e["Action"] for e in evs]
    check(actions[:2] == ["create", "start"] and "die" in actions, actions)
    check(all(e["Type"] == "container" and e["Actor"]["Attributes"]["name"] == "sdk-logs" for e in evs), evs)

    # stats: a stream of documents a second apart, and one-shot.
    s = client.containers.run("busybox", ["sleep", "300"], detach=True, name="sdk-stats", mem_limit="64m")
    stream = s.stats(stream=True, decode=True)
    first, second = next(stream), next(stream)
    check(first["name"] == "/sdk-stats" and first["memory_stats"]["limit"] == 64 << 20, first)
    check(second["precpu_stats"]["cpu_usage"]["total_usage"] == first["cpu_stats"]["cpu_usage"]["total_usage"], "precpu is the previous sample")
    one = s.stats(stream=False, one_shot=True)
    check(one["pids_stats"]["current"] == 1, one)

    # attach socket: write to stdin, read the answer, close.
    a = client.containers.create("busybox", ["sh", "-c", "read l; echo got:$l"], stdin_open=True, name="sdk-attach")
    sock = client.api.attach_socket(a.id, params={"stdin": 1, "stdout": 1, "stream": 1})
    a.start()
    sock._sock.sendall(b"hello\n")
    data = b""
    while b"got:hello" not in data:
        chunk = sock._sock.recv(4096)
        check(chunk, "attach stream ended early: %r" % data)
        data += chunk
    sock.close()
    check(a.wait()["StatusCode"] == 0, "attach container exit")

    for name in ["sdk-logs", "sdk-tail", "sdk-follow", "sdk-stats", "sdk-attach"]:
        client.containers.get(name).remove(force=True)
    print("sdk streams ok")


if __name__ == "__main__":
    main()
