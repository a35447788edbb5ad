#!/bin/sh
# Runs inside an emulated board (busybox sh): the stack probes (profile, offcputime,
# wakeuptime, loadmon) against workloads with known stacks, with the markers
# stack-probes-on-boards.test.ts parses. Not a test by itself.
#   /bin/busyloop SECONDS: spins in bpfleet_busyloop_spin()
#   /bin/pipesleep SECONDS PERIOD_MS: pipereader sleeps in read(), pipewriter wakes it
#   /bin/pagetouch PAGES LINGER_MS: PAGES page faults in bpfleet_touch_pages()
#   /bin/leaker N SIZE DELAY_MS LINGER_MS: N blocks of SIZE leaked from bpfleet_leak()
#   /bin/pipeholder M DELAY_MS HOLD_MS LINGER_MS: M pipes held open, then closed
# TRIGGER, when set, runs once the probe is ready (its stdout becomes the workload line).
# GO, when set, is a pid sent SIGUSR1 once the probe is ready (leaker and pipeholder started
# with DELAY_MS "usr1" act then).
run() {
	label=$1 probe=$2 secs=$3; shift 3
	echo "== BEGIN $label"
	/bin/$probe --json "$@" >/tmp/out 2>/tmp/err &
	pid=$!
	i=0
	while ! grep -q ready /tmp/err 2>/dev/null && kill -0 $pid 2>/dev/null && [ $i -lt 300 ]; do
		sleep 0.1; i=$((i + 1))
	done
	if grep -q ready /tmp/err; then
		[ -n "$TRIGGER" ] && sh -c "$TRIGGER" >/tmp/work
		[ -n "$GO" ] && kill -USR1 "$GO"
		sleep "$secs"
		kill -INT $pid
	fi
	wait $pid
	echo "rc=$?"
	echo "-- stdout"; cat /tmp/out
	echo "-- stderr"; cat /tmp/err
	echo "-- workload"; cat /tmp/work 2>/dev/null
	echo "== END $label"
	rm -f /tmp/out /tmp/err
}
uname -r

/bin/busyloop 60 >/dev/null &
bl=$!
echo "{\"busyloop\":$bl}" >/tmp/work
run profile profile 4 --pid $bl --freq 49
# loadmon counts kernel-mode samples only: the busy loop (still running) keeps the load average
# up, and dd, copying /dev/zero to /dev/null, spends its time in read() in the kernel. Without
# dd the samples depended on whatever else happened to be in the kernel at a tick (CI once saw
# none in 4 s).
dd if=/dev/zero of=/dev/null bs=64k 2>/dev/null &
dd=$!
echo "{\"busyloop\":$bl,\"dd\":$dd}" >/tmp/work
run loadmon loadmon 4 --threshold 0 --freq 49
kill $dd $bl 2>/dev/null; wait $dd $bl 2>/dev/null

/bin/pipesleep 60 100 >/tmp/work &
ps=$!
sleep 1
run offcputime offcputime 4 --comm pipereader
run wakeuptime wakeuptime 4 --comm pipereader
kill $ps 2>/dev/null; wait $ps 2>/dev/null

TRIGGER='/bin/pagetouch 2000 2000' run pgfault pgfault 1 --comm pagetouch --interval 500
TRIGGER=

# The leaker allocates once memleak is attached (SIGUSR1 when it says ready).
/bin/leaker 50 1000 usr1 6000 >/tmp/work &
lk=$!
GO=$lk run memleak memleak 5 --pid $lk --min-age-ms 200 --interval 500
kill $lk 2>/dev/null; wait $lk 2>/dev/null

# memleak --kernel (kmem tracepoints): 50 pipes opened once it is attached, held 5 s, then closed.
/bin/pipeholder 50 usr1 5000 5000 >/tmp/work &
ph=$!
GO=$ph run memleak-kernel memleak 9 --kernel --pid $ph --min-age-ms 200 --interval 500
kill $ph 2>/dev/null; wait $ph 2>/dev/null
GO=
true
