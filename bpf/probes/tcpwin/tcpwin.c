// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpwin loader: see tcpwin.bpf.c and bpf/README.md for the contract. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <linux/types.h>
#include "probe.h"
#include "tcpwin.h"
#include "tcpwin.skel.h"

#define EV struct tcpwin_event
static const struct probe_field fields[] = {
	FIELD(EV, ts_ns, FT_U64, FMT_KTIME_NS, "ns", 0, "monotonic time of the sample"),
	FIELD(EV, skaddr, FT_U64, FMT_HEX, "", 18, "kernel socket address (connection identity)"),
	FIELD(EV, pid, FT_U32, FMT_PLAIN, "", 7, "tgid of the running task (softirq: the interrupted one)"),
	FIELD(EV, comm, FT_COMM, FMT_PLAIN, "", 16, "command name of that task"),
	FIELD(EV, family, FT_U16, FMT_FAMILY, "", 0, "address family"),
	FIELD(EV, saddr, FT_ADDR, FMT_PLAIN, "", 15, "local address"),
	FIELD(EV, lport, FT_U16, FMT_PLAIN, "", 5, "local port"),
	FIELD(EV, daddr, FT_ADDR, FMT_PLAIN, "", 15, "remote address"),
	FIELD(EV, rport, FT_U16, FMT_PLAIN, "", 5, "remote port"),
	FIELD(EV, ca_state, FT_U8, FMT_PLAIN, "", 0, "congestion state: 0 open, 1 disorder, 2 cwr, 3 recovery, 4 loss"),
	FIELD(EV, snd_cwnd, FT_U32, FMT_PLAIN, "packets", 8, "congestion window"),
	FIELD(EV, snd_ssthresh, FT_U32, FMT_PLAIN, "packets", 12, "slow start threshold"),
	FIELD(EV, sndbuf, FT_U32, FMT_PLAIN, "bytes", 8, "send buffer size (sk_sndbuf)"),
	FIELD(EV, wmem_queued, FT_U32, FMT_PLAIN, "bytes", 11, "bytes queued for sending (sk_wmem_queued)"),
	FIELD(EV, srtt_us, FT_U32, FMT_PLAIN, "us", 7, "smoothed round-trip time"),
	FIELD(EV, snd_wnd, FT_U32, FMT_PLAIN, "bytes", 8, "window advertised by the peer"),
	FIELD(EV, rcv_wnd, FT_U32, FMT_PLAIN, "bytes", 8, "current receive window"),
	FIELD(EV, packets_out, FT_U32, FMT_PLAIN, "packets", 11, "packets in flight"),
	FIELD(EV, retrans_out, FT_U32, FMT_PLAIN, "packets", 11, "retransmitted packets in flight"),
	FIELD(EV, lost_out, FT_U32, FMT_PLAIN, "packets", 0, "packets marked lost"),
	FIELD(EV, sacked_out, FT_U32, FMT_PLAIN, "packets", 0, "packets selectively acknowledged"),
	FIELD(EV, mss_cache, FT_U32, FMT_PLAIN, "bytes", 9, "current sending MSS"),
	FIELD(EV, total_retrans, FT_U32, FMT_PLAIN, "packets", 0, "segments retransmitted over the connection's life"),
};

static const struct probe_hook hooks[] = {
	{ "sample", "tcpwin_btf", HOOK_TP_BTF, "tcp_probe" },
	{ "sample", "tcpwin_raw", HOOK_RAW_TP, "tcp_probe" },
	{ "sample", "tcpwin_kprobe", HOOK_KPROBE, "tcp_rcv_established" },
};

static const struct probe_arg args[] = {
	{ "sample-ms", "MS", "at most one record per connection every MS ms (default 100, 0: every call)" },
};

static long sample_ms = 100;

static int parse_arg(const char *name, const char *value)
{
	char *end;
	long v;

	if (strcmp(name, "sample-ms"))
		return -1;
	errno = 0;
	v = strtol(value, &end, 10);
	if (errno || end == value || *end || v < 0 || v > 3600000)
		return -1;
	sample_ms = v;
	return 0;
}

/* Smoke test (bpf/README.md, "Smoke tests"): the tcp_loopback trigger, isolated by the filter. */
static const char *const smoke_args[] = { "--lport", "{port}", "--sample-ms", "0", NULL };
static const struct probe_smoke_expect smoke_expect[] = {
	{ "lport", "eq", "{port}" },
	{ "snd_cwnd", "ge", "1" },
};
static const struct probe_smoke smoke = {
	.trigger = "tcp_loopback",
	.args = smoke_args,
	.expect = smoke_expect,
	.nexpect = sizeof(smoke_expect) / sizeof(smoke_expect[0]),
	.description = "a segment received on the server socket of a loopback connection to {port} is sampled",
};

static const struct probe_def def = {
	.name = "tcpwin",
	.version = "1.0.0",
	.summary = "TCP congestion state per connection (cwnd, ssthresh, buffers, srtt, windows), rate-limited per socket",
	.kind = "stream",
	.record = "tcpwin_event",
	.record_size = sizeof(EV),
	.fields = fields,
	.nfields = sizeof(fields) / sizeof(fields[0]),
	.hooks = hooks,
	.nhooks = sizeof(hooks) / sizeof(hooks[0]),
	.args = args,
	.nargs = sizeof(args) / sizeof(args[0]),
	.parse_arg = parse_arg,
	.smoke = &smoke,
};

int main(int argc, char **argv)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts);
	struct tcpwin_bpf *skel;
	int err;

	if (!probe_init(&def, argc, argv, &opts))
		return EXIT_OK;
	skel = tcpwin_bpf__open_opts(&opts);
	if (!skel)
		return probe_open_failed(&def);
	skel->rodata->sample_ns = (__u64)sample_ms * 1000000ull;
	probe_prepare(&def, skel->obj);
	err = probe_run(&def, skel->obj);
	tcpwin_bpf__destroy(skel);
	return err;
}
