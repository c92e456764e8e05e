#!/usr/bin/env python3
"""Checks berthd's JSON answers against api-spec/engine.yaml (generated from
the official Docker Engine API spec). Run by compat-tests/tests/spec.rs:

    check_spec.py SOCKET SPEC

Drives a container through create, start, inspect, list, wait and remove
with plain HTTP over the unix socket and validates each response body
against the response schema the spec documents for that status code.
Exits non-zero listing every mismatch.
"""
import http.client
import json
import socket
import sys

import jsonschema
import yaml


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def swagger_to_jsonschema(node):
    """Swagger 2.0 has no null; fields marked x-nullable accept it, and so
    does any field with a type: dockerd writes an unset Go slice, map or
    pointer as null whatever the spec says (the differential test holds
    Berth to dockerd's types)."""
    if isinstance(node, dict):
        out = {k: swagger_to_jsonschema(v) for k, v in node.items()}
        nil = isinstance(node.get("type"), str) and "properties" not in node
        if node.get("x-nullable") or nil:
            return {"anyOf": [out, {"type": "null"}]}
        return out
    if isinstance(node, list):
        return [swagger_to_jsonschema(v) for v in node]
    return node


def main():
    sock, spec_path = sys.argv[1], sys.argv[2]
    spec = yaml.safe_load(open(spec_path))
    definitions = swagger_to_jsonschema(spec["definitions"])
    failures = []

    def call(method, path, body=None):
        c = UnixHTTP(sock)
        data = json.dumps(body).encode() if body is not None else None
        c.request(method, "/v1.50" + path, body=data, headers={"Content-Type": "application/json"})
        r = c.getresponse()
        raw = r.read()
        return r.status, raw

    def check(method, template, path, body=None, expect=None):
        status, raw = call(method, path, body)
        if expect is not None and status != expect:
            failures.append(f"{method} {path}: status {status}, expected {expect}: {raw[:200]!r}")
            return None
        op = spec["paths"][template][method.lower()]
        resp = op["responses"].get(status, op["responses"].get(str(status)))
        if resp is None:
            failures.append(f"{method} {path}: status {status} is not documented")
            return None
        value = json.loads(raw) if raw.strip() else None
        schema = resp.get("schema")
        if schema is not None and value is not None:
            full = dict(swagger_to_jsonschema(schema))
            full["definitions"] = definitions
            try:
                jsonschema.Draft4Validator(full).validate(value)
            except jsonschema.ValidationError as e:
                failures.append(f"{method} {path}: {e.message} at {list(e.absolute_path)}")
        return value

    check("GET", "/version", "/version", expect=200)
    check("GET", "/info", "/info", expect=200)
    check("GET", "/images/json", "/images/json", expect=200)
    check("GET", "/images/{name}/json", "/images/busybox/json", expect=200)
    check("GET", "/images/{name}/json", "/images/nosuch/json", expect=404)
    created = check("POST", "/containers/create", "/containers/create?name=spec-check",
                    {"Image": "busybox", "Cmd": ["sh", "-c", "exit 4"], "Labels": {"a": "b"}}, expect=201)
    check("POST", "/containers/create", "/containers/create?name=spec-check",
          {"Image": "busybox", "Cmd": ["true"]}, expect=409)
    check("POST", "/containers/create", "/containers/create", {"Image": "nosuch", "Cmd": ["true"]}, expect=404)
    cid = created["Id"] if created else "spec-check"
    check("GET", "/containers/{id}/json", f"/containers/{cid}/json", expect=200)
    check("POST", "/containers/{id}/start", f"/containers/{cid}/start", expect=204)
    waited = check("POST", "/containers/{id}/wait", f"/containers/{cid}/wait", expect=200)
    if waited and waited.get("StatusCode") != 4:
        failures.append(f"wait returned {waited}, expected StatusCode 4")
    check("GET", "/containers/json", "/containers/json?all=1", expect=200)
    check("GET", "/containers/{id}/json", f"/containers/{cid}/json", expect=200)
    check("GET", "/containers/{id}/json", "/containers/nosuch/json", expect=404)
    check("POST", "/containers/{id}/kill", f"/containers/{cid}/kill", expect=409)
    committed = check("POST", "/commit", f"/commit?container={cid}&repo=spec-commit&tag=1", expect=201)
    check("GET", "/images/{name}/history", "/images/spec-commit:1/history", expect=200)
    check("GET", "/images/{name}/history", "/images/nosuch/history", expect=404)
    check("GET", "/system/df", "/system/df", expect=200)
    check("DELETE", "/containers/{id}", f"/containers/{cid}", expect=204)
    check("DELETE", "/containers/{id}", f"/containers/{cid}", expect=404)
    check("POST", "/containers/prune", "/containers/prune", expect=200)
    if committed:
        check("DELETE", "/images/{name}", "/images/spec-commit:1", expect=200)
    check("POST", "/images/prune", "/images/prune", expect=200)
    check("POST", "/networks/prune", "/networks/prune", expect=200)
    check("POST", "/build/prune", "/build/prune", expect=200)
    # An empty body is an empty Dockerfile; a bad tag is refused up front.
    check("POST", "/build", "/build", expect=400)
    check("POST", "/build", "/build?t=Bad:Tag:x", expect=400)
    running = check("POST", "/containers/create", "/containers/create?name=spec-run",
                    {"Image": "busybox", "Cmd": ["sleep", "300"]}, expect=201)
    rid = running["Id"] if running else "spec-run"
    check("POST", "/containers/{id}/start", f"/containers/{rid}/start", expect=204)
    check("GET", "/containers/{id}/top", f"/containers/{rid}/top", expect=200)
    check("GET", "/containers/{id}/stats", f"/containers/{rid}/stats?stream=false&one-shot=true", expect=200)
    check("GET", "/containers/{id}/changes", f"/containers/{rid}/changes", expect=200)
    check("POST", "/containers/{id}/update", f"/containers/{rid}/update", {"Memory": 67108864}, expect=200)
    check("POST", "/containers/{id}/pause", f"/containers/{rid}/pause", expect=204)
    check("POST", "/containers/{id}/unpause", f"/containers/{rid}/unpause", expect=204)
    check("POST", "/containers/{id}/rename", f"/containers/{rid}/rename?name=spec-renamed", expect=204)
    check("GET", "/containers/{id}/archive", f"/containers/{rid}/archive?path=/nonexist", expect=404)
    check("DELETE", "/containers/{id}", f"/containers/{rid}?force=1", expect=204)
    check("GET", "/distribution/{name}/json", "/distribution/127.0.0.1:1/nothing/json", expect=500)
    net = check("POST", "/networks/create", "/networks/create",
                {"Name": "spec-net", "Labels": {"a": "b"}}, expect=201)
    check("POST", "/networks/create", "/networks/create",
          {"Name": "spec-bad", "IPAM": {"Config": [{"Subnet": "10.1.1.5/24"}]}}, expect=400)
    nid = net["Id"] if net else "spec-net"
    check("GET", "/networks", "/networks", expect=200)
    check("GET", "/networks/{id}", f"/networks/{nid}", expect=200)
    check("GET", "/networks/{id}", "/networks/nosuch", expect=404)
    on_net = check("POST", "/containers/create", "/containers/create?name=spec-net-c",
                   {"Image": "busybox", "Cmd": ["sleep", "300"],
                    "HostConfig": {"NetworkMode": "spec-net",
                                   "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1"}]}}},
                   expect=201)
    nc = on_net["Id"] if on_net else "spec-net-c"
    check("POST", "/containers/{id}/start", f"/containers/{nc}/start", expect=204)
    check("GET", "/containers/{id}/json", f"/containers/{nc}/json", expect=200)
    check("GET", "/containers/json", "/containers/json", expect=200)
    check("GET", "/networks/{id}", f"/networks/{nid}", expect=200)
    check("POST", "/networks/{id}/connect", "/networks/bridge/connect", {"Container": nc}, expect=200)
    check("POST", "/networks/{id}/disconnect", "/networks/bridge/disconnect", {"Container": nc}, expect=200)
    check("DELETE", "/networks/{id}", f"/networks/{nid}", expect=403)
    check("DELETE", "/networks/{id}", "/networks/bridge", expect=403)
    check("DELETE", "/containers/{id}", f"/containers/{nc}?force=1", expect=204)
    check("DELETE", "/networks/{id}", f"/networks/{nid}", expect=204)
    check("DELETE", "/networks/{id}", f"/networks/{nid}", expect=404)

    if failures:
        print("\n".join(failures))
        sys.exit(1)
    print("all responses match api-spec/engine.yaml")


if __name__ == "__main__":
    main()
