#!/bin/busybox sh
# bpfleet emulated board: /init of the initramfs built by `bpfleet board image`.
# Mounts what the probes need, brings eth0 up by DHCP (QEMU user networking), and keeps the agent
# running. Settings come from the kernel command line (bpfleet.controller=, bpfleet.token=,
# bpfleet.name=, bpfleet.board=, bpfleet.traffic=SECS, bpfleet.node_options=--a,--b (node flags
# in place of the runtime's defaults; "none" for none), bpfleet.dev_probes=1,
# bpfleet.transport=grpc|mqtt, bpfleet.mqtt=mqtt://H:P), or from
# /etc/bpfleet/agent.conf (same names without the "bpfleet." prefix, sourced as shell) when present.
# Console lines starting with BPFLEET- are read by the host (boards/src/qemu-board.ts).
/bin/busybox mkdir -p /dev /proc /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec 0<>/dev/console 1>&0 2>&0
/bin/busybox --install -s /bin
export PATH=/bin:/sbin HOME=/root TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mkdir -p /sys/fs/bpf && mount -t bpf bpf /sys/fs/bpf 2>/dev/null
ip link set lo up
while read -r m; do insmod "$m" || echo "BPFLEET-WARN insmod $m failed"; done </bpfleet/modules
dmesg -n 1

controller="" token="" name="" board="" traffic=0 dev_probes=0 transport=grpc mqtt=""
for w in $(cat /proc/cmdline); do
  case $w in
    bpfleet.controller=*) controller=${w#*=} ;;
    bpfleet.token=*) token=${w#*=} ;;
    bpfleet.name=*) name=${w#*=} ;;
    bpfleet.board=*) board=${w#*=} ;;
    bpfleet.traffic=*) traffic=${w#*=} ;;
    bpfleet.transport=*) transport=${w#*=} ;;
    bpfleet.mqtt=*) mqtt=${w#*=} ;;
    bpfleet.dev_probes=1) dev_probes=1 ;;
    # Command-line flags, not NODE_OPTIONS: V8 flags like --single-threaded-gc are refused there.
    bpfleet.node_options=none) BPFLEET_NODE_FLAGS=""; export BPFLEET_NODE_FLAGS ;;
    bpfleet.node_options=*) BPFLEET_NODE_FLAGS=$(echo "${w#*=}" | tr ',' ' '); export BPFLEET_NODE_FLAGS ;;
  esac
done
# shellcheck disable=SC1091
[ -f /etc/bpfleet/agent.conf ] && . /etc/bpfleet/agent.conf
[ -n "$name" ] && hostname "$name"
yn() { if [ -e "$1" ]; then echo yes; else echo no; fi; }
echo "BPFLEET-FACTS release=$(uname -r) machine=$(uname -m) btf=$(yn /sys/kernel/btf/vmlinux) kprobe_events=$(yn /sys/kernel/tracing/kprobe_events) uptime=$(cut -d' ' -f1 /proc/uptime)"

ip link set eth0 up
if udhcpc -i eth0 -s /bpfleet/udhcpc.script -q -n -t 20 -T 2 >/tmp/udhcpc.log 2>&1; then
  echo "BPFLEET-NET eth0 $(ip -4 -o addr show eth0 | awk '{print $4}') uptime=$(cut -d' ' -f1 /proc/uptime)"
else
  echo "BPFLEET-WARN DHCP on eth0 failed:"; cat /tmp/udhcpc.log
fi

# Loopback TCP connections every $traffic seconds, so network probes have something to see that
# happens on the board itself (port 7777, busybox nc).
if [ "$traffic" -gt 0 ] 2>/dev/null; then
  (
    while :; do
      nc -l -p 7777 >/dev/null 2>&1 &
      sleep 1
      echo bpfleet | nc 127.0.0.1 7777 >/dev/null 2>&1
      wait
      sleep "$traffic"
    done
  ) &
fi

if [ -z "$controller" ]; then
  echo "BPFLEET-WARN no bpfleet.controller= on the kernel command line and no /etc/bpfleet/agent.conf: not starting the agent"
  exec sh
fi
mkdir -p /var/lib/bpfleet
set -- --controller "$controller" --data-dir /var/lib/bpfleet
# The image's own loaders (/opt/bpfleet/probes) run only on request: otherwise the board runs what
# the controller deploys, like a real one.
[ "$dev_probes" = 1 ] && set -- "$@" --dev-probes /opt/bpfleet/probes
[ -n "$board" ] && set -- "$@" --board "$board"
[ -n "$name" ] && set -- "$@" --name "$name"
[ -n "$token" ] && set -- "$@" --enroll-token "$token"
# Enrollment is always gRPC at $controller; with transport mqtt the session then goes to the broker.
if [ "$transport" = mqtt ]; then
  [ -z "$mqtt" ] && echo "BPFLEET-WARN bpfleet.transport=mqtt without bpfleet.mqtt=mqtt://HOST:PORT: the agent will refuse to start"
  set -- "$@" --transport mqtt ${mqtt:+--mqtt "$mqtt"}
fi
echo "BPFLEET-TRANSPORT $transport${mqtt:+ $mqtt}"
while :; do
  echo "BPFLEET-AGENT-START uptime=$(cut -d' ' -f1 /proc/uptime)"
  /opt/bpfleet/bpfleet-agent "$@" &
  pid=$!
  n=0
  while kill -0 "$pid" 2>/dev/null; do
    sleep 5
    n=$((n + 1))
    if [ $((n % 3)) = 0 ] && [ -r /proc/$pid/status ]; then
      echo "BPFLEET-RSS $(awk '/^VmRSS/ {r=$2} /^VmHWM/ {h=$2} END {print r " kB hwm=" h}' /proc/$pid/status) kB uptime=$(cut -d' ' -f1 /proc/uptime)"
    fi
  done
  wait "$pid"
  echo "BPFLEET-AGENT-EXIT $? (restarting in 5 s)"
  sleep 5
done
