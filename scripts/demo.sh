#!/usr/bin/env bash
# The main job: build the probes for three architectures and the dashboard, start the controller
# (gRPC, admin API, dashboard), enroll an agent on this machine, deploy tcpstates, tcplife and
# profile to it through the CLI, make loopback TCP traffic, show what the controller stored and the
# loss per stage, then boot an emulated DAYU200 (QEMU, Debian's 5.10 arm64 kernel) that enrolls and
# gets tcpstates too. On a terminal it keeps running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: needs root (eBPF programs are loaded for real)" >&2; exit 1; }
port=${DEMO_PORT:-18080}
work=$(mktemp -d /tmp/bpfleet-demo.XXXXXX)
export XDG_CONFIG_HOME=$work/cfg
export BPFLEET_BOARDS_DIR=$work/boards # emulated boards of this demo only (bpfleet board list/down)
bpfleet() { node controller/bin/bpfleet.js "$@"; }

npx nx run-many -t build-x86_64 build-arm64 build-arm --projects bpf --outputStyle=static
npx nx run controller:build-web --outputStyle=static
mkdir -p test/fixtures/.bin
cc -O2 -o test/fixtures/.bin/tcpgen test/fixtures/tcpgen.c

pids=()
cleanup() {
  [ -d "$work/boards" ] && node controller/bin/bpfleet.js board down --all --keep-logs >/dev/null 2>&1
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "== logs and database kept in $work"
}
trap cleanup EXIT

echo "== controller (gRPC 127.0.0.1:17474 for agents, admin API 127.0.0.1:17475, dashboard 127.0.0.1:17480)"
# node itself, not the bpfleet() function: $! must be the controller's PID for the cleanup to stop it.
node controller/bin/bpfleet.js controller --data-dir "$work/controller" --grpc 127.0.0.1:17474 --admin 127.0.0.1:17475 \
  --http "${DEMO_HTTP:-127.0.0.1:17480}" > "$work/controller.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do grep -q 'admin API on' "$work/controller.log" && break; sleep 0.2; done
echo "== dashboard: http://${DEMO_HTTP:-127.0.0.1:17480}/  log in with the admin token:"
node -e 'console.log("   " + JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).adminToken)' "$XDG_CONFIG_HOME/bpfleet/controller.json"
token=$(bpfleet token create --label lab=demo --json | node -e 'process.stdin.on("data",d=>console.log(JSON.parse(d).token))')

echo "== agent on this machine, enrolled with a one-time token"
node agent/bin/bpfleet-agent.js --controller 127.0.0.1:17474 --data-dir "$work/agent" --board workstation \
  --enroll-token "$token" --dev-probes bpf/out/x86_64 > "$work/agent.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do grep -q welcomed "$work/agent.log" && break; sleep 0.2; done
bpfleet devices

echo "== deploy tcpstates and tcplife (signed bundles) to lab=demo"
bpfleet deploy tcpstates --to lab=demo --args "--rport $port"
bpfleet deploy tcplife --to lab=demo --args "--rport $port"
sleep 2
echo "== loopback workload: 3 x 2 connections to port $port"
for i in 1 2 3; do test/fixtures/.bin/tcpgen "$port" $((i * 100000)) $((i * 1000)) 2 >/dev/null; sleep 0.3; done
sleep 2
bpfleet events --probe tcplife --limit 10
bpfleet events --probe tcpstates --limit 10
echo "== loss per stage"
bpfleet stats

echo "== an emulated DAYU200 (qemu-system-aarch64, Debian's 5.10 arm64 kernel) joins the fleet"
bpfleet board up qemu-dayu200 --controller 127.0.0.1:17474 --traffic 3
bpfleet deploy tcpstates --to board=qemu-dayu200
sleep 15
echo "== loopback connections made on the board (busybox nc, port 7777), seen by tcpstates there"
bpfleet events --probe tcpstates --device qemu-dayu200-1 --limit 10
bpfleet board list

echo "== profile (CPU stacks) on this machine, for the dashboard's Stacks page"
bpfleet deploy profile --to lab=demo --args "--freq 49 --interval 2000"

# On a terminal the fleet stays up (traffic every 5 s, dashboard live) until Ctrl-C; in a pipe or
# with DEMO_EXIT=1 the demo ends here.
if [ -t 0 ] && [ -z "${DEMO_EXIT:-}" ]; then
  echo "== the fleet is running: dashboard http://${DEMO_HTTP:-127.0.0.1:17480}/ (admin token above);"
  echo "   loopback traffic every 5 s; bpfleet events --follow in another shell; Ctrl-C stops everything"
  while :; do test/fixtures/.bin/tcpgen "$port" 10000 1000 2 >/dev/null || true; sleep 5; done
fi
