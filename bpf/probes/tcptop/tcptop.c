// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcptop loader: see tcptop.bpf.c and bpf/README.md for the contract. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <linux/types.h>
#include "probe.h"
#include "swap_map.h"
#include "tcptop.h"
#include "tcptop.skel.h"

#define EV struct tcptop_event
static const struct probe_field fields[] = {
	FIELD(EV, ts_ns, FT_U64, FMT_KTIME_NS, "ns", 0, "end of the interval"),
	FIELD(EV, pid, FT_U32, FMT_PLAIN, "", 7, "process (tgid)"),
	FIELD(EV, comm, FT_COMM, FMT_PLAIN, "", 16, "command name of the first thread seen this interval"),
	FIELD(EV, family, FT_U16, FMT_FAMILY, "", 5, "address family"),
	FIELD(EV, saddr, FT_ADDR, FMT_PLAIN, "", 15, "local address"),
	FIELD(EV, lport, FT_U16, FMT_PLAIN, "", 5, "local port"),
	FIELD(EV, daddr, FT_ADDR, FMT_PLAIN, "", 15, "remote address"),
	FIELD(EV, rport, FT_U16, FMT_PLAIN, "", 5, "remote port"),
	FIELD(EV, sent_bytes, FT_U64, FMT_PLAIN, "bytes", 12, "TCP payload sent this interval"),
	FIELD(EV, recv_bytes, FT_U64, FMT_PLAIN, "bytes", 12, "TCP payload received this interval"),
};

static const struct probe_hook hooks[] = {
	{ "send", "tcpio_send_tp", HOOK_TRACEPOINT, "sock/sock_send_length" },
	{ "send", "tcpio_send_kp", HOOK_KPROBE, "tcp_sendmsg" },
	{ "send", "tcpio_send_krp", HOOK_KRETPROBE, "tcp_sendmsg" },
	{ "recv", "tcpio_recv_tp", HOOK_TRACEPOINT, "sock/sock_recv_length" },
	{ "recv", "tcpio_recv_kp", HOOK_KPROBE, "tcp_cleanup_rbuf" },
};

static const struct probe_arg args[] = {
	{ "top", "N", "connections per interval, busiest first (default 20; 0: all)" },
};

static unsigned long top = 20;

static int parse_arg(const char *name, const char *value)
{
	char *end;

	if (strcmp(name, "top"))
		return -1;
	errno = 0;
	top = strtoul(value, &end, 10);
	if (errno || end == value || *end || *value == '-' || top > INT_MAX)
		return -1;
	return 0;
}

static struct {
	struct swap_map conns;	/* conns_a / conns_b behind conns_cur, keyed by connection */
	EV recs[TCPTOP_MAX_CONNS];	/* one per key of the retired map, sorted for output */
} st = { .conns = SWAP_MAP_INIT };

static int cmp_rec(const void *a, const void *b)
{
	const EV *x = a, *y = b;
	__u64 tx = x->sent_bytes + x->recv_bytes, ty = y->sent_bytes + y->recv_bytes;

	if (tx != ty)
		return tx < ty ? 1 : -1;
	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	if (x->lport != y->lport)
		return x->lport < y->lport ? -1 : 1;
	return (x->rport > y->rport) - (x->rport < y->rport);
}

static int on_interval(struct probe_ctx *ctx, struct bpf_object *obj)
{
	const struct tcptop_val *vals;
	__u32 nrec = 0;

	if (st.conns.outer < 0 &&
	    swap_map_setup(&st.conns, obj, "tcptop", "conns_cur", "conns_a", "conns_b"))
		return -1;
	if (swap_map_flip(&st.conns))
		return -1;
	vals = st.conns.vals;
	for (__u32 i = 0; i < st.conns.nkeys; i++) {
		const struct tcptop_key *k = swap_map_key(&st.conns, i);
		EV *r = &st.recs[nrec];

		if (swap_map_read(&st.conns, i)) {
			probe_count_lost(ctx, 1);
			continue;
		}
		memset(r, 0, sizeof(*r));
		r->ts_ns = st.conns.flip_ns;
		r->pid = k->pid;
		r->family = k->family;
		r->lport = k->lport;
		r->rport = k->rport;
		memcpy(r->saddr, k->saddr, sizeof(r->saddr));
		memcpy(r->daddr, k->daddr, sizeof(r->daddr));
		/* Per-CPU parts: the comm was written on the CPU that created the entry. */
		for (int c = 0; c < st.conns.ncpu; c++) {
			r->sent_bytes += vals[c].sent;
			r->recv_bytes += vals[c].recv;
			if (!r->comm[0] && vals[c].comm[0])
				memcpy(r->comm, vals[c].comm, sizeof(r->comm));
		}
		nrec++;
	}
	swap_map_clear(&st.conns);

	qsort(st.recs, nrec, sizeof(*st.recs), cmp_rec);
	if (top && nrec > top)
		nrec = (__u32)top;
	for (__u32 i = 0; i < nrec; i++)
		if (probe_emit(ctx, &st.recs[i], sizeof(st.recs[i])))
			return -1;
	return 0;
}

/* Smoke test (bpf/README.md, "Smoke tests"): the tcp_loopback trigger, isolated by the filter. */
static const char *const smoke_args[] = { "--lport", "{port}", "--interval", "200", NULL };
static const struct probe_smoke_expect smoke_expect[] = {
	{ "lport", "eq", "{port}" },
	{ "pid", "eq", "{pid}" },
	{ "recv_bytes", "ge", "1" },
};
static const struct probe_smoke smoke = {
	.trigger = "tcp_loopback",
	.args = smoke_args,
	.expect = smoke_expect,
	.nexpect = sizeof(smoke_expect) / sizeof(smoke_expect[0]),
	.description = "the server connection on port {port} of the agent process received bytes",
};

static const struct probe_def def = {
	.name = "tcptop",
	.version = "1.0.0",
	.summary = "Busiest TCP connections per interval: payload bytes sent and received (IPv4 and IPv6)",
	.kind = "interval",
	.record = "tcptop_event",
	.record_size = sizeof(EV),
	.fields = fields,
	.nfields = sizeof(fields) / sizeof(fields[0]),
	.hooks = hooks,
	.nhooks = sizeof(hooks) / sizeof(hooks[0]),
	.args = args,
	.nargs = sizeof(args) / sizeof(args[0]),
	.parse_arg = parse_arg,
	.on_interval = on_interval,
	.smoke = &smoke,
};

int main(int argc, char **argv)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts);
	struct tcptop_bpf *skel;
	int err;

	if (!probe_init(&def, argc, argv, &opts))
		return EXIT_OK;
	skel = tcptop_bpf__open_opts(&opts);
	if (!skel)
		return probe_open_failed(&def);
	probe_prepare(&def, skel->obj);
	err = probe_run(&def, skel->obj);
	tcptop_bpf__destroy(skel);
	return err;
}
