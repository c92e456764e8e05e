#!/usr/bin/env python3
"""Writes api-spec/engine.yaml: the part of the official Docker Engine API
(../shared/moby-swagger.yaml) that berthd serves, with the definitions those
operations use. Rerun after adding an endpoint to engine/src/api/mod.rs and to
IMPLEMENTED below; compat-tests check berthd's answers against the result.

    python3 contrib/gen-engine-spec.py [path/to/moby-swagger.yaml]
"""
import pathlib
import sys

import yaml

IMPLEMENTED = {
    "/_ping": ["get", "head"],
    "/version": ["get"],
    "/info": ["get"],
    "/events": ["get"],
    "/containers/create": ["post"],
    "/containers/json": ["get"],
    "/containers/{id}/json": ["get"],
    "/containers/{id}/start": ["post"],
    "/containers/{id}/stop": ["post"],
    "/containers/{id}/restart": ["post"],
    "/containers/{id}/kill": ["post"],
    "/containers/{id}/wait": ["post"],
    "/containers/{id}/logs": ["get"],
    "/containers/{id}/attach": ["post"],
    "/containers/{id}/attach/ws": ["get"],
    "/containers/{id}/resize": ["post"],
    "/containers/{id}": ["delete"],
    "/images/json": ["get"],
    "/images/load": ["post"],
    "/images/create": ["post"],
    "/images/{name}/json": ["get"],
    "/images/{name}/tag": ["post"],
    "/images/{name}": ["delete"],
    "/images/{name}/push": ["post"],
    "/images/{name}/history": ["get"],
    "/images/{name}/get": ["get"],
    "/images/get": ["get"],
    "/images/prune": ["post"],
    "/auth": ["post"],
    "/distribution/{name}/json": ["get"],
    "/commit": ["post"],
    "/containers/{id}/export": ["get"],
    "/containers/prune": ["post"],
    "/system/df": ["get"],
    "/networks": ["get"],
    "/networks/create": ["post"],
    "/networks/{id}": ["get", "delete"],
    "/networks/{id}/connect": ["post"],
    "/networks/{id}/disconnect": ["post"],
    "/networks/prune": ["post"],
    "/build": ["post"],
    "/build/prune": ["post"],
    "/volumes": ["get"],
    "/volumes/create": ["post"],
    "/volumes/{name}": ["get", "delete"],
    "/volumes/prune": ["post"],
    "/containers/{id}/exec": ["post"],
    "/exec/{id}/start": ["post"],
    "/exec/{id}/json": ["get"],
    "/exec/{id}/resize": ["post"],
    "/containers/{id}/pause": ["post"],
    "/containers/{id}/unpause": ["post"],
    "/containers/{id}/rename": ["post"],
    "/containers/{id}/update": ["post"],
    "/containers/{id}/top": ["get"],
    "/containers/{id}/stats": ["get"],
    "/containers/{id}/changes": ["get"],
    "/containers/{id}/archive": ["get", "head", "put"],
}

NOTES = {
    "/events": "Container events (create, attach, start, die, kill, stop, restart, destroy, pause, unpause, rename, update, copy, oom, health_status, exec_create, exec_start, exec_die, commit, export) and image events (pull, push, tag, untag, delete, load, save, import), volume events (create, mount, unmount, destroy) and network events (create, connect, disconnect, destroy); filters type, event, container, image, volume, network, label; the last 1024 are journaled in the data-root, so --since replay reaches across engine restarts.",
    "/containers/{id}/attach/ws": "The same session as a hijacked attach, never multiplexed; binary messages from API 1.42 (text before); the client's close ends its input. logs=1 is not replayed.",
    "/containers/{id}/logs": "json-file or local-driver logs, rotated files included. Entries read back from the file are sent with consecutive entries of one stream in one frame (the bytes per stream are Docker's); followed output has one frame per entry.",
    "/images/create": "fromImage pulls (Docker schema 2 and OCI, indexes by platform, gzip and zstd layers); fromSrc=- imports the body; fromSrc=<url> answers 400.",
    "/system/df": "Answers in the pre-1.52 shape (LayersSize, Images, Containers, Volumes, BuildCache) that API 1.50 clients read.",
    "/networks/prune": "User-defined networks no container is connected to (running or not); filters label, label!, until.",
    "/networks/create": "Bridge driver only, one IPv4 subnet (IPv6 answers 400); without a subnet one comes from --default-address-pool. Options com.docker.network.bridge.name and com.docker.network.driver.mtu are applied.",
    "/networks/{id}/connect": "A running container gets the new interface at once (netavark); a stopped one at its next start.",
    "/build": "The legacy builder (version=1): a tar context (plain, gzip or zstd) or a bare Dockerfile; version=2 (BuildKit) and remote contexts are refused. RUN steps use network none unless networkmode=host.",
    "/volumes/create": "Local driver only. Its options type, device and o mount a filesystem on the volume's _data directory while a container uses it, as Docker's local driver does; size (quotas) is refused.",
    "/build/prune": "Forgets the legacy builder's cache and removes the intermediate step images only it kept.",
    "/commit": "The container is not paused while its layer is written.",
    "/containers/{id}/archive": "Paths resolve inside the container's root (openat2 RESOLVE_IN_ROOT); a running container is paused while a tree is read. /etc/hosts, /etc/hostname and /etc/resolv.conf read as the container sees them (the files mounted over them).",
    "/containers/{id}/update": "Memory, MemorySwap, MemoryReservation, NanoCpus, CpuShares, CpuPeriod, CpuQuota, CpusetCpus, CpusetMems, PidsLimit, BlkioWeight and RestartPolicy; applied live with the runtime's update.",
    "/containers/{id}/stats": "From the container's cgroup (v1 or v2) and its network namespace's /proc/net/dev.",
    "/containers/create": "An unknown network (NetworkMode or NetworkingConfig) answers 400, not 404: the docker CLI answers a 404 from create by pulling the image. Docker finds out at start instead.",
}


def refs(node, found):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith("#/definitions/"):
                found.add(v.split("/")[-1])
            else:
                refs(v, found)
    elif isinstance(node, list):
        for v in node:
            refs(v, found)


def main():
    root = pathlib.Path(__file__).resolve().parent.parent
    src = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else root.parent / "shared" / "moby-swagger.yaml"
    spec = yaml.safe_load(src.read_text())
    paths = {}
    for path, methods in IMPLEMENTED.items():
        ops = spec["paths"][path]
        paths[path] = {m: ops[m] for m in methods if m in ops}
        if "parameters" in ops:
            paths[path]["parameters"] = ops["parameters"]
        if path in NOTES:
            paths[path]["x-berth-note"] = NOTES[path]
    wanted = set()
    refs(paths, wanted)
    defs = {}
    while wanted:
        name = wanted.pop()
        if name in defs:
            continue
        defs[name] = spec["definitions"][name]
        more = set()
        refs(defs[name], more)
        wanted |= more - set(defs)
    out = {
        "swagger": "2.0",
        "info": {
            "title": "Berth Engine API (the Docker Engine API subset berthd serves)",
            "version": "1.50",
            "description": "Generated by contrib/gen-engine-spec.py from the official Docker Engine API "
            f"(version {spec['info']['version']}). berthd serves these paths with and without a /v1.xx prefix "
            "(1.24 to 1.50).",
        },
        "basePath": "/v1.50",
        "schemes": ["http"],
        "consumes": ["application/json", "text/plain"],
        "produces": ["application/json", "text/plain"],
        "paths": paths,
        "definitions": dict(sorted(defs.items())),
    }
    header = "# Generated by contrib/gen-engine-spec.py from ../shared/moby-swagger.yaml; do not edit by hand.\n"
    (root / "api-spec" / "engine.yaml").write_text(header + yaml.safe_dump(out, sort_keys=False, width=120))
    print(f"api-spec/engine.yaml: {sum(len([m for m in p if m in ('get','post','delete','head','put')]) for p in paths.values())} operations, {len(defs)} definitions")


if __name__ == "__main__":
    main()
