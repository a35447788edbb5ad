// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpbytes loader: see tcpbytes.bpf.c and bpf/README.md for the contract. */
#include <stdlib.h>
#include <string.h>
#include <linux/types.h>
#include "probe.h"
#include "swap_map.h"
#include "tcpbytes.h"
#include "tcpbytes.skel.h"

#define EV struct tcpbytes_event
static const struct probe_field fields[] = {
	FIELD(EV, ts_ns, FT_U64, FMT_KTIME_NS, "ns", 0, "end of the interval"),
	FIELD(EV, pid, FT_U32, FMT_PLAIN, "", 7, "process (tgid)"),
	FIELD(EV, comm, FT_COMM, FMT_PLAIN, "", 16, "command name of the first thread seen this interval"),
	FIELD(EV, sent_bytes, FT_U64, FMT_PLAIN, "bytes", 12, "TCP payload sent this interval"),
	FIELD(EV, recv_bytes, FT_U64, FMT_PLAIN, "bytes", 12, "TCP payload received this interval"),
	FIELD(EV, sent_total, FT_U64, FMT_PLAIN, "bytes", 14, "TCP payload sent since the probe started"),
	FIELD(EV, recv_total, FT_U64, FMT_PLAIN, "bytes", 14, "TCP payload received since the probe started"),
	FIELD(EV, send_calls, FT_U64, FMT_PLAIN, "", 10, "sends that moved data this interval"),
	FIELD(EV, recv_calls, FT_U64, FMT_PLAIN, "", 10, "receives that moved data this interval"),
};

static const struct probe_hook hooks[] = {
	{ "send", "tcpio_send_tp", HOOK_TRACEPOINT, "sock/sock_send_length" },
	{ "send", "tcpio_send_kp", HOOK_KPROBE, "tcp_sendmsg" },
	{ "send", "tcpio_send_krp", HOOK_KRETPROBE, "tcp_sendmsg" },
	{ "recv", "tcpio_recv_tp", HOOK_TRACEPOINT, "sock/sock_recv_length" },
	{ "recv", "tcpio_recv_kp", HOOK_KPROBE, "tcp_cleanup_rbuf" },
};

/* Totals since start, per process, sorted by pid. */
struct proc {
	__u32 pid;
	bool seen;		/* active this interval */
	__u64 sent_total;
	__u64 recv_total;
};

static struct {
	struct swap_map bytes;	/* bytes_a / bytes_b behind bytes_cur, keyed by tgid */
	EV recs[TCPBYTES_MAX_PROCS];	/* one per key of the retired map, sorted for output */
	struct proc *procs;
	size_t nprocs, cap;
} st = { .bytes = SWAP_MAP_INIT };

static struct proc *proc_get(__u32 pid)
{
	size_t lo = 0, hi = st.nprocs;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (st.procs[mid].pid == pid)
			return &st.procs[mid];
		if (st.procs[mid].pid < pid)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (st.nprocs == st.cap) {
		size_t cap = st.cap ? st.cap * 2 : 256;
		struct proc *p = realloc(st.procs, cap * sizeof(*p));

		if (!p)
			return NULL;
		st.procs = p;
		st.cap = cap;
	}
	memmove(&st.procs[lo + 1], &st.procs[lo], (st.nprocs - lo) * sizeof(*st.procs));
	st.nprocs++;
	memset(&st.procs[lo], 0, sizeof(*st.procs));
	st.procs[lo].pid = pid;
	return &st.procs[lo];
}

/* Forget processes that are gone: their last record already carried their totals. */
static void procs_prune(void)
{
	size_t o = 0;

	for (size_t i = 0; i < st.nprocs; i++) {
		struct proc *p = &st.procs[i];

		if (!p->seen && probe_pid_gone(p->pid))
			continue;
		p->seen = false;
		st.procs[o++] = *p;
	}
	st.nprocs = o;
}

static int cmp_rec(const void *a, const void *b)
{
	const EV *x = a, *y = b;
	__u64 tx = x->sent_bytes + x->recv_bytes, ty = y->sent_bytes + y->recv_bytes;

	if (tx != ty)
		return tx < ty ? 1 : -1;
	return x->pid < y->pid ? -1 : x->pid > y->pid;
}

static int on_interval(struct probe_ctx *ctx, struct bpf_object *obj)
{
	const struct tcpbytes_val *vals;
	__u32 nrec = 0;

	if (st.bytes.outer < 0 &&
	    swap_map_setup(&st.bytes, obj, "tcpbytes", "bytes_cur", "bytes_a", "bytes_b"))
		return -1;
	if (swap_map_flip(&st.bytes))
		return -1;
	vals = st.bytes.vals;
	for (__u32 i = 0; i < st.bytes.nkeys; i++) {
		__u32 pid = *(const __u32 *)swap_map_key(&st.bytes, i);
		EV *r = &st.recs[nrec];
		struct proc *p;

		p = swap_map_read(&st.bytes, i) ? NULL : proc_get(pid);
		if (!p) {
			probe_count_lost(ctx, 1);
			continue;
		}
		memset(r, 0, sizeof(*r));
		r->ts_ns = st.bytes.flip_ns;
		r->pid = pid;
		/* Per-CPU parts: the comm was written on the CPU that created the entry. */
		for (int c = 0; c < st.bytes.ncpu; c++) {
			const struct tcpbytes_val *v = &vals[c];

			r->sent_bytes += v->sent;
			r->recv_bytes += v->recv;
			r->send_calls += v->send_calls;
			r->recv_calls += v->recv_calls;
			if (!r->comm[0] && v->comm[0])
				memcpy(r->comm, v->comm, sizeof(r->comm));
		}
		p->sent_total += r->sent_bytes;
		p->recv_total += r->recv_bytes;
		p->seen = true;
		r->sent_total = p->sent_total;
		r->recv_total = p->recv_total;
		nrec++;
	}
	swap_map_clear(&st.bytes);

	qsort(st.recs, nrec, sizeof(*st.recs), cmp_rec);
	for (__u32 i = 0; i < nrec; i++)
		if (probe_emit(ctx, &st.recs[i], sizeof(st.recs[i])))
			return -1;
	procs_prune();
	return 0;
}

/* Smoke test (bpf/README.md, "Smoke tests"): the tcp_loopback trigger, isolated by the filter. */
static const char *const smoke_args[] = { "--lport", "{port}", "--interval", "200", NULL };
static const struct probe_smoke_expect smoke_expect[] = {
	{ "pid", "eq", "{pid}" },
	{ "recv_total", "ge", "{bytes}" },
	{ "sent_total", "ge", "{bytes}" },
};
static const struct probe_smoke smoke = {
	.trigger = "tcp_loopback",
	.args = smoke_args,
	.expect = smoke_expect,
	.nexpect = sizeof(smoke_expect) / sizeof(smoke_expect[0]),
	.description = "the agent process received and echoed {bytes} bytes on port {port}",
};

static const struct probe_def def = {
	.name = "tcpbytes",
	.version = "1.0.0",
	.summary = "TCP payload bytes sent and received per process, per interval and in total",
	.kind = "interval",
	.record = "tcpbytes_event",
	.record_size = sizeof(EV),
	.fields = fields,
	.nfields = sizeof(fields) / sizeof(fields[0]),
	.hooks = hooks,
	.nhooks = sizeof(hooks) / sizeof(hooks[0]),
	.on_interval = on_interval,
	.smoke = &smoke,
};

int main(int argc, char **argv)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts);
	struct tcpbytes_bpf *skel;
	int err;

	if (!probe_init(&def, argc, argv, &opts))
		return EXIT_OK;
	skel = tcpbytes_bpf__open_opts(&opts);
	if (!skel)
		return probe_open_failed(&def);
	probe_prepare(&def, skel->obj);
	err = probe_run(&def, skel->obj);
	tcpbytes_bpf__destroy(skel);
	return err;
}
