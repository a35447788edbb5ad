#!/bin/sh
# Runs inside an emulated board (busybox sh): every probe in /bin/probes against a known
# loopback workload, with markers the host-side test parses. Not a test by itself.
PORT=5555 SEND=123456 RECV=65432
run() {
	label=$1 probe=$2; shift 2
	echo "== BEGIN $label"
	/bin/$probe --json "$@" >/tmp/out 2>/tmp/err &
	pid=$!
	i=0
	while ! grep -q ready /tmp/err 2>/dev/null && kill -0 $pid 2>/dev/null && [ $i -lt 300 ]; do
		sleep 0.1; i=$((i + 1))
	done
	if grep -q ready /tmp/err; then
		if [ -n "$TRIGGER" ]; then eval "$TRIGGER" >/tmp/gen 2>&1; else /bin/tcpgen $PORT $SEND $RECV 2 >/tmp/gen; fi
		sleep 1
		kill -INT $pid
	fi
	wait $pid
	echo "rc=$?"
	echo "-- stdout"; cat /tmp/out
	echo "-- stderr"; cat /tmp/err
	echo "-- tcpgen"; cat /tmp/gen 2>/dev/null
	echo "== END $label"
	rm -f /tmp/out /tmp/err /tmp/gen
}
uname -r
run tcpstates tcpstates --rport $PORT
run tcpstates-kprobe tcpstates --rport $PORT --prefer kprobe
run tcplife tcplife --rport $PORT
run tcpwin tcpwin --rport $PORT --sample-ms 0
run tcpbytes tcpbytes --comm tcpgen
run tcptop tcptop --rport $PORT
run skbclone skbclone --comm tcpgen
# Issue 6: XDP on lo (no native XDP there: the loaders fall back to generic), the netstat
# counters around tcpgen, kvmexit (loads where the kernel has KVM's tracepoints).
ICMP='grep ^Icmp: /proc/net/snmp'
TRIGGER="$ICMP; ping -c 5 -W 1 127.0.0.1; $ICMP"
run xdpping xdpping --ifname lo --interval 300
TRIGGER="ping -c 3 -W 1 127.0.0.1"
run xdpdrop xdpdrop --ifname lo --block 127.0.0.1/32 --block ::1 --interval 300
TRIGGER=
run netstat netstat --comm tcpgen --interval 300
run kvmexit kvmexit
