// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcptop loader: see tcptop.bpf.c and bpf/README.md for the contract. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <linux/types.h>
#include <bpf/bpf.h>
#include "probe.h"
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
	int outer, fds[2], slot, ncpu;
	struct tcptop_key *keys;
	struct tcptop_val *vals;
	EV *recs;
} st = { .outer = -1 };

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

static int setup(struct bpf_object *obj)
{
	struct bpf_map *a = bpf_object__find_map_by_name(obj, "conns_a");
	struct bpf_map *b = bpf_object__find_map_by_name(obj, "conns_b");
	struct bpf_map *cur = bpf_object__find_map_by_name(obj, "conns_cur");

	st.ncpu = libbpf_num_possible_cpus();
	if (!a || !b || !cur || st.ncpu <= 0) {
		fprintf(stderr, "tcptop: internal: maps or cpu count missing\n");
		return -1;
	}
	st.fds[0] = bpf_map__fd(a);
	st.fds[1] = bpf_map__fd(b);
	st.outer = bpf_map__fd(cur);
	st.keys = calloc(TCPTOP_MAX_CONNS, sizeof(*st.keys));
	st.recs = calloc(TCPTOP_MAX_CONNS, sizeof(*st.recs));
	st.vals = calloc((size_t)st.ncpu, sizeof(*st.vals));
	if (!st.keys || !st.recs || !st.vals) {
		fprintf(stderr, "tcptop: out of memory\n");
		return -1;
	}
	return 0;
}

static int on_interval(struct probe_ctx *ctx, struct bpf_object *obj)
{
	__u32 zero = 0, n = 0, nrec = 0;
	__u64 now;
	int old;

	if (st.outer < 0 && setup(obj))
		return -1;
	/*
	 * Point the programs at the other map. Updating an array of maps waits for running
	 * programs (synchronize_rcu), so from here on nothing writes the old one.
	 */
	old = st.fds[st.slot];
	if (bpf_map_update_elem(st.outer, &zero, &st.fds[st.slot ^ 1], BPF_ANY)) {
		fprintf(stderr, "tcptop: cannot swap maps: %s\n", strerror(errno));
		return -1;
	}
	st.slot ^= 1;
	now = probe_now_ns();

	while (n < TCPTOP_MAX_CONNS &&
	       !bpf_map_get_next_key(old, n ? &st.keys[n - 1] : NULL, &st.keys[n]))
		n++;
	for (__u32 i = 0; i < n; i++) {
		const struct tcptop_key *k = &st.keys[i];
		EV *r = &st.recs[nrec];

		if (bpf_map_lookup_elem(old, k, st.vals)) {
			probe_count_lost(ctx, 1);
			continue;
		}
		memset(r, 0, sizeof(*r));
		r->ts_ns = now;
		r->pid = k->pid;
		r->family = k->family;
		r->lport = k->lport;
		r->rport = k->rport;
		memcpy(r->saddr, k->saddr, sizeof(r->saddr));
		memcpy(r->daddr, k->daddr, sizeof(r->daddr));
		/* Per-CPU parts: the comm was written on the CPU that created the entry. */
		for (int c = 0; c < st.ncpu; c++) {
			r->sent_bytes += st.vals[c].sent;
			r->recv_bytes += st.vals[c].recv;
			if (!r->comm[0] && st.vals[c].comm[0])
				memcpy(r->comm, st.vals[c].comm, sizeof(r->comm));
		}
		nrec++;
	}
	/* Cleared for the interval after next, when the programs write to it again. */
	for (__u32 i = 0; i < n; i++)
		bpf_map_delete_elem(old, &st.keys[i]);

	qsort(st.recs, nrec, sizeof(*st.recs), cmp_rec);
	if (top && nrec > top)
		nrec = (__u32)top;
	for (__u32 i = 0; i < nrec; i++)
		if (probe_emit(ctx, &st.recs[i], sizeof(st.recs[i])))
			return -1;
	return 0;
}

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
