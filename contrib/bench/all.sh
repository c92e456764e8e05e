#!/usr/bin/env bash
# The benchmarks' one entry point: runs each benchmark side by side with
# Debian's dockerd (each script starts its own, on its own data-root,
# socket and bridge) and prints one Markdown table: the figure, Berth's
# mean, dockerd's, their ratio and the target. Each script's own output is
# kept in the directory named at the end. As root, with Berth running
# (contrib/setup.sh, or BERTH_HOST=unix:///path/to.sock):
#
#   bash contrib/bench/all.sh [--runs N] [--only NAME,NAME]
#
# Benchmarks: run-latency, exec-latency, build (legacy builder), buildkit
# (buildx), network, ps, parallel (many `docker run -d` at once), stats
# (`docker stats --no-stream` of 50 containers; its log also has daemon CPU
# for streaming stats and for many event subscribers), compose (`compose
# up -d` and `down` of 20 and 100 services). memory.sh, logs.sh
# and pull.sh measure what a mean time does not say (RSS, throughput) and
# are run by themselves.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=10
only=run-latency,exec-latency,build,buildkit,network,ps,parallel,stats,compose
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift ;;
    --only) only=$2; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
out=$(mktemp -d /tmp/bench-all.XXXX)
for b in ${only//,/ }; do
  echo "running $b" >&2
  case $b in
    ps) bash contrib/bench/ps.sh --docker >"$out/ps.log" 2>&1 || echo "ps failed: see $out/ps.log" >&2 ;;
    # Each run starts hundreds of containers: three are enough.
    parallel | compose) BENCH_JSON=$out/$b.json bash "contrib/bench/$b.sh" --docker --runs 3 >"$out/$b.log" 2>&1 ||
      echo "$b failed: see $out/$b.log" >&2 ;;
    *) BENCH_JSON=$out/$b.json bash "contrib/bench/$b.sh" --docker --runs "$runs" >"$out/$b.log" 2>&1 ||
      echo "$b failed: see $out/$b.log" >&2 ;;
  esac
done

python3 - "$out" <<'EOF'
import json, os, re, sys

out = sys.argv[1]
# The issues' targets, by benchmark and case (ratio = Berth / dockerd).
targets = {
    ("run-latency", ""): ("ratio", 0.25),
    ("build", "uncached"): ("ratio", 0.5),
    ("build", "cached"): ("ratio", 0.5),
    ("buildkit", "uncached"): ("ratio", 0.5),
    ("buildkit", "cached"): ("ratio", 0.5),
    ("buildkit", "cache-mount"): ("ratio", 1 / 3),
    ("ps", ""): ("berth_ms", 3.0),
    ("parallel", "50x8"): ("ratio", 0.25),
    ("parallel", "200x32"): ("ratio", 0.25),
    ("compose", "up-20"): ("ratio", 0.25),
    ("compose", "down-20"): ("ratio", 0.25),
    ("compose", "up-100"): ("ratio", 0.25),
    ("compose", "down-100"): ("ratio", 0.25),
}
rows = []
for name in sorted(os.listdir(out)):
    bench, ext = os.path.splitext(name)
    if ext != ".json":
        continue
    results = json.load(open(os.path.join(out, name)))["results"]
    by_case = {}
    for r in results:
        side, _, case = r["command"].partition(" ")
        by_case.setdefault(case, {})[side] = r["mean"] * 1000
    for case, sides in by_case.items():
        rows.append((bench, case, sides.get("berth"), sides.get("docker")))
ps_log = os.path.join(out, "ps.log")
if os.path.exists(ps_log):
    sides = {}
    for line in open(ps_log):
        m = re.match(r"(berth|docker)\s.*: ([0-9.]+) ms median", line)
        if m:
            sides[m.group(1)] = float(m.group(2))
    rows.append(("ps", "", sides.get("berth"), sides.get("docker")))

print("| figure | Berth | dockerd | ratio | target | met |")
print("|---|---|---|---|---|---|")
for bench, case, berth, docker in rows:
    ratio = berth / docker if berth and docker else None
    kind, value = targets.get((bench, case), (None, None))
    if kind == "ratio":
        target, met = f"≤ {value:.2f}×", ratio is not None and ratio <= value
    elif kind == "berth_ms":
        target, met = f"≤ {value:g} ms", berth is not None and berth <= value
    else:
        target, met = "—", None
    fmt = lambda v: "—" if v is None else f"{v:.1f} ms"
    print(f"| {bench} {case}".rstrip() + f" | {fmt(berth)} | {fmt(docker)} | "
          + ("—" if ratio is None else f"{ratio:.2f}") + f" | {target} | "
          + ("—" if met is None else ("yes" if met else "no")) + " |")
EOF
echo "(each benchmark's output: $out)" >&2
