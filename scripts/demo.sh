#!/usr/bin/env bash
# The main job, as far as it exists today: build the probes and watch real kernel events from
# this machine's TCP stack while a loopback workload runs. The controller, emulated boards and
# dashboard join this script as their issues land (see README.md, "Status").
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: needs root (eBPF programs are loaded for real)" >&2; exit 1; }
seconds=${DEMO_SECONDS:-8}
port=${DEMO_PORT:-48080}

npx nx run-many -t build-x86_64 build-arm64 build-arm --projects bpf --outputStyle=static
mkdir -p test/fixtures/.bin
cc -O2 -o test/fixtures/.bin/tcpgen test/fixtures/tcpgen.c

pids=()
cleanup() { for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

echo "== tcplife and tcpstates on $(uname -r) for ${seconds}s; loopback workload on port $port"
bpf/out/x86_64/tcplife --rport "$port" --duration "$seconds" & pids+=($!)
bpf/out/x86_64/tcpstates --rport "$port" --duration "$seconds" --json > /tmp/bpfleet-demo-tcpstates.jsonl & pids+=($!)
sleep 1
for i in 1 2 3; do test/fixtures/.bin/tcpgen "$port" $((i * 100000)) $((i * 1000)) 2 >/dev/null; sleep 0.5; done
wait "${pids[@]}" 2>/dev/null || true
pids=()
echo "== tcpstates recorded $(wc -l < /tmp/bpfleet-demo-tcpstates.jsonl) transitions (JSON lines in /tmp/bpfleet-demo-tcpstates.jsonl)"
echo "== the same probes for arm64 and armv7 boards:"
file bpf/out/arm64/tcpstates bpf/out/arm/tcpstates | sed 's/, BuildID[^,]*//'
