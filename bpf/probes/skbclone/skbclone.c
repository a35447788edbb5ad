// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * skbclone loader: see skbclone.bpf.c and bpf/README.md for the contract.
 *
 * The kernel keeps a running count per tgid and never resets it: resetting from user space
 * would race with increments. Each interval this loader reads every entry, subtracts what it
 * saw last time, and emits the deltas, busiest first. Entries of processes that are gone are
 * deleted (an exited process cannot call skb_clone() any more, so nothing is lost).
 */
#include <stdlib.h>
#include <string.h>
#include <linux/types.h>
#include <bpf/bpf.h>
#include "probe.h"
#include "skbclone.h"
#include "skbclone.skel.h"

#define EV struct skbclone_event
static const struct probe_field fields[] = {
	FIELD(EV, ts_ns, FT_U64, FMT_KTIME_NS, "ns", 0, "monotonic time at the end of the interval"),
	FIELD(EV, pid, FT_U32, FMT_PLAIN, "", 7, "tgid of the calling task (softirq: the interrupted one)"),
	FIELD(EV, comm, FT_COMM, FMT_PLAIN, "", 16, "command name of that process"),
	FIELD(EV, count, FT_U64, FMT_PLAIN, "", 12, "skb_clone() calls in this interval"),
	FIELD(EV, total, FT_U64, FMT_PLAIN, "", 14, "skb_clone() calls since the probe started"),
};

static const struct probe_hook hooks[] = {
	{ "clone", "skbclone_kprobe", HOOK_KPROBE, "skb_clone" },
};

/* What the loader remembers of one tgid between intervals. */
struct seen {
	__u32 tgid;
	__u64 kcount;	/* kernel count at the last read */
	__u64 total;	/* calls counted since start */
};

/* One entry read this interval. */
struct cur {
	__u32 tgid;
	__u64 kcount;
	__u64 delta;
	__u64 total;
	char comm[16];
};

static struct seen *prev;
static size_t nprev;

static int by_tgid(const void *a, const void *b)
{
	__u32 x = ((const struct cur *)a)->tgid, y = ((const struct cur *)b)->tgid;

	return x < y ? -1 : x > y;
}

static int by_delta_desc(const void *a, const void *b)
{
	const struct cur *x = a, *y = b;

	if (x->delta != y->delta)
		return x->delta > y->delta ? -1 : 1;
	return x->tgid < y->tgid ? -1 : x->tgid > y->tgid;
}

static int on_interval(struct probe_ctx *ctx, struct bpf_object *obj)
{
	struct bpf_map *map = bpf_object__find_map_by_name(obj, "counts");
	int ncpu = libbpf_num_possible_cpus(), fd, err = 0;
	struct skbclone_val *vals = NULL;
	struct cur *cur = NULL, *tmp;
	struct seen *next = NULL;
	size_t n = 0, cap = 0, p = 0;
	__u32 key, *kp = NULL;
	__u64 now = probe_now_ns();

	if (!map || ncpu <= 0) {
		fprintf(stderr, "skbclone: internal: no counts map or cpu count\n");
		return -1;
	}
	fd = bpf_map__fd(map);
	vals = calloc((size_t)ncpu, sizeof(*vals));
	if (!vals)
		return -1;

	while (bpf_map_get_next_key(fd, kp, &key) == 0) {
		struct cur c = { .tgid = key };

		kp = &key;
		if (bpf_map_lookup_elem(fd, &key, vals)) {
			probe_count_lost(ctx, 1);
			continue;
		}
		for (int i = 0; i < ncpu; i++) {
			c.kcount += vals[i].count;
			if (!c.comm[0] && vals[i].comm[0])
				memcpy(c.comm, vals[i].comm, sizeof(c.comm));
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			tmp = realloc(cur, cap * sizeof(*cur));
			if (!tmp) {
				err = -1;
				goto out;
			}
			cur = tmp;
		}
		cur[n++] = c;
	}

	/* Merge with the previous interval, both sorted by tgid. */
	qsort(cur, n, sizeof(*cur), by_tgid);
	next = calloc(n ? n : 1, sizeof(*next));
	if (!next) {
		err = -1;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		while (p < nprev && prev[p].tgid < cur[i].tgid)
			p++;
		if (p < nprev && prev[p].tgid == cur[i].tgid) {
			/* A smaller count means the entry was deleted and recreated. */
			cur[i].delta = cur[i].kcount >= prev[p].kcount ?
				       cur[i].kcount - prev[p].kcount : cur[i].kcount;
			cur[i].total = prev[p].total + cur[i].delta;
		} else {
			cur[i].delta = cur[i].total = cur[i].kcount;
		}
		next[i] = (struct seen){ cur[i].tgid, cur[i].kcount, cur[i].total };
	}
	free(prev);
	prev = next;
	nprev = n;

	/* Forget processes that are gone and were idle; their last calls are counted above. */
	nprev = 0;
	for (size_t i = 0; i < n; i++) {
		if (!cur[i].delta && probe_pid_gone(cur[i].tgid)) {
			bpf_map_delete_elem(fd, &cur[i].tgid);
			continue;
		}
		prev[nprev++] = prev[i];
	}

	qsort(cur, n, sizeof(*cur), by_delta_desc);
	for (size_t i = 0; i < n && cur[i].delta; i++) {
		struct skbclone_event e = {
			.ts_ns = now,
			.count = cur[i].delta,
			.total = cur[i].total,
			.pid = cur[i].tgid,
		};

		memcpy(e.comm, cur[i].comm, sizeof(e.comm));
		if (probe_emit(ctx, &e, sizeof(e)) < 0) {
			err = -1;
			break;
		}
	}
out:
	free(cur);
	free(vals);
	return err;
}

/* Smoke test (bpf/README.md, "Smoke tests"): the tcp_loopback trigger, isolated by the filter. */
static const char *const smoke_args[] = { "--pid", "{pid}", "--interval", "200", NULL };
static const struct probe_smoke_expect smoke_expect[] = {
	{ "pid", "eq", "{pid}" },
	{ "count", "ge", "1" },
};
static const struct probe_smoke smoke = {
	.trigger = "tcp_loopback",
	.args = smoke_args,
	.expect = smoke_expect,
	.nexpect = sizeof(smoke_expect) / sizeof(smoke_expect[0]),
	.description = "the agent process cloned socket buffers while sending on loopback",
};

static const struct probe_def def = {
	.name = "skbclone",
	.version = "1.0.0",
	.summary = "skb_clone() calls per process and interval, busiest first (kprobe)",
	.kind = "interval",
	.record = "skbclone_event",
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
	struct skbclone_bpf *skel;
	int err;

	if (!probe_init(&def, argc, argv, &opts))
		return EXIT_OK;
	skel = skbclone_bpf__open_opts(&opts);
	if (!skel)
		return probe_open_failed(&def);
	probe_prepare(&def, skel->obj);
	err = probe_run(&def, skel->obj);
	skbclone_bpf__destroy(skel);
	return err;
}
