// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * xdpping loader: see xdpping.bpf.c and bpf/README.md for the contract.
 *
 * An interval probe: every --interval it emits one XDPPING_INTERVAL record with the answered
 * and passed deltas, preceded by the XDPPING_ECHO records (--sample N) the kernel queued in
 * the ring buffer since the last interval. The program is attached with a BPF link (lib/xdp.c):
 * it leaves the interface when this process ends, whatever ends it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/types.h>
#include <bpf/bpf.h>
#include "probe.h"
#include "xdp.h"
#include "xdpping.h"
#include "xdpping.skel.h"

#define EV struct xdpping_event
static const struct probe_field fields[] = {
	FIELD(EV, ts_ns, FT_U64, FMT_KTIME_NS, "ns", 0, "monotonic time: end of the interval, or when the echo was answered"),
	FIELD(EV, type, FT_U8, FMT_PLAIN, "", 5, "0: interval counters; 1: one answered echo request (sampled)"),
	FIELD(EV, answered, FT_U64, FMT_PLAIN, "packets", 9, "echo requests answered with XDP_TX in the interval"),
	FIELD(EV, passed, FT_U64, FMT_PLAIN, "packets", 9, "packets passed to the network stack in the interval"),
	FIELD(EV, answered_total, FT_U64, FMT_PLAIN, "packets", 10, "answered since the probe started"),
	FIELD(EV, passed_total, FT_U64, FMT_PLAIN, "packets", 10, "passed since the probe started"),
	FIELD(EV, saddr, FT_ADDR, FMT_PLAIN, "", 15, "echo: IPv4 address that asked"),
	FIELD(EV, daddr, FT_ADDR, FMT_PLAIN, "", 15, "echo: IPv4 address asked for (the reply's source)"),
	FIELD(EV, id, FT_U16, FMT_PLAIN, "", 6, "echo: ICMP identifier"),
	FIELD(EV, seq, FT_U16, FMT_PLAIN, "", 6, "echo: ICMP sequence number"),
	FIELD(EV, ifindex, FT_U32, FMT_PLAIN, "", 0, "index of the interface the program is attached to"),
};

static const struct probe_hook hooks[] = {
	{ "rx", "xdpping_xdp", HOOK_XDP, "--ifname" },
};

static const struct probe_arg args[] = {
	XDP_ARGS,
	{ "sample", "N", "also report every Nth answered echo request per CPU (src, id, seq); default 0: none" },
};

static __u32 sample_every;
static __u64 seen[XDPPING_NCOUNTERS];	/* kernel totals at the last interval */
static struct ring_buffer *rb;
static struct probe_ctx *cur_ctx;

static int parse_arg(const char *name, const char *value)
{
	char *end;
	unsigned long v;

	if (!xdp_parse_arg(name, value))
		return 0;
	if (!strcmp(name, "sample")) {
		errno = 0;
		v = strtoul(value, &end, 10);
		if (errno || *end || !*value || v > 1000000000ul)
			return -1;
		sample_every = (__u32)v;
		return 0;
	}
	return -1;
}

static int on_echo(void *vctx, void *data, size_t size)
{
	(void)vctx;
	return probe_emit(cur_ctx, data, size) == -EPIPE ? -EPIPE : 0;
}

static int on_interval(struct probe_ctx *ctx, struct bpf_object *obj)
{
	struct bpf_map *map = bpf_object__find_map_by_name(obj, "counts");
	struct xdpping_event e = { .ts_ns = probe_now_ns(), .type = XDPPING_INTERVAL };
	__u64 now[XDPPING_NCOUNTERS];

	cur_ctx = ctx;
	if (!rb && sample_every) {
		struct bpf_map *events = bpf_object__find_map_by_name(obj, "events");

		rb = events ? ring_buffer__new(bpf_map__fd(events), on_echo, NULL, NULL) : NULL;
		if (!rb) {
			fprintf(stderr, "xdpping: failed to create ring buffer: %s\n", strerror(errno));
			return -1;
		}
	}
	/* -EPIPE: stdout closed; probe_emit() has already told probe_run() to stop. */
	if (rb) {
		int n = ring_buffer__consume(rb);

		if (n < 0 && n != -EPIPE) {
			fprintf(stderr, "xdpping: reading the ring buffer failed: %s\n", strerror(-n));
			return -1;
		}
	}
	if (!map)
		return -1;
	for (__u32 k = 0; k < XDPPING_NCOUNTERS; k++)
		if (percpu_u64_sum(bpf_map__fd(map), &k, &now[k])) {
			probe_count_lost(ctx, 1);
			return 0;
		}
	e.answered = now[XDPPING_ANSWERED] - seen[XDPPING_ANSWERED];
	e.passed = now[XDPPING_PASSED] - seen[XDPPING_PASSED];
	e.answered_total = now[XDPPING_ANSWERED];
	e.passed_total = now[XDPPING_PASSED];
	e.ifindex = (__u32)xdp_ifindex();
	memcpy(seen, now, sizeof(seen));
	return probe_emit(ctx, &e, sizeof(e)) == -EPIPE ? -1 : 0;
}

/*
 * Smoke test (bpf/README.md, "Smoke tests"): ping_loopback pings {addr}, an address of 127/8
 * no one else uses, over lo (generic mode: lo has no native XDP); each echo is sampled.
 */
static const char *const smoke_args[] = {
	"--ifname", "lo", "--xdp-mode", "generic", "--sample", "1", "--interval", "200", NULL
};
static const struct probe_smoke_expect smoke_expect[] = {
	{ "type", "eq", "1" },
	{ "daddr", "eq", "{addr}" },
};
static const struct probe_smoke smoke = {
	.trigger = "ping_loopback",
	.args = smoke_args,
	.expect = smoke_expect,
	.nexpect = sizeof(smoke_expect) / sizeof(smoke_expect[0]),
	.description = "an echo request to {addr} on lo answered in XDP",
};

static const struct probe_def def = {
	.name = "xdpping",
	.version = "1.0.0",
	.summary = "answers IPv4 ICMP echo requests in XDP (XDP_TX); answered/passed per interval, sampled echoes",
	.kind = "interval",
	.record = "xdpping_event",
	.record_size = sizeof(EV),
	.fields = fields,
	.nfields = sizeof(fields) / sizeof(fields[0]),
	.hooks = hooks,
	.nhooks = sizeof(hooks) / sizeof(hooks[0]),
	.args = args,
	.nargs = sizeof(args) / sizeof(args[0]),
	.parse_arg = parse_arg,
	.on_interval = on_interval,
	.attach = xdp_attach,
	.hello = xdp_hello,
	.smoke = &smoke,
};

int main(int argc, char **argv)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts);
	struct xdpping_bpf *skel;
	int err;

	if (!probe_init(&def, argc, argv, &opts))
		return EXIT_OK;
	xdp_check_args(def.name);
	skel = xdpping_bpf__open_opts(&opts);
	if (!skel)
		return probe_open_failed(&def);
	skel->rodata->sample_every = sample_every;
	probe_prepare(&def, skel->obj);
	err = probe_run(&def, skel->obj);
	ring_buffer__free(rb);
	xdpping_bpf__destroy(skel);
	return err;
}
