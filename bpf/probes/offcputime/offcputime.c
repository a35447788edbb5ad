// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * offcputime loader: see offcputime.bpf.c and bpf/README.md for the contract.
 *
 * Every interval: flip the count maps, fold each (process, stacks) sum into a record
 * (symbolized on the device, lib/stacks.h), emit them, most time first, then free the stacks
 * that neither a count nor a thread still off the CPU refers to (when the map is half full).
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <linux/types.h>
#include <bpf/bpf.h>
#include "probe.h"
#include "stacks.h"
#include "offcputime.h"
#include "offcputime.skel.h"

#define EV struct offcputime_event
static const struct probe_field fields[] = {
	FIELD(EV, ts_ns, FT_U64, FMT_KTIME_NS, "ns", 0, "monotonic time at the end of the interval"),
	FIELD(EV, pid, FT_U32, FMT_PLAIN, "", 7, "process (tgid) of the thread that was off the CPU"),
	FIELD(EV, comm, FT_COMM, FMT_PLAIN, "", 16, "thread command name when it left the CPU"),
	FIELD(EV, value, FT_U64, FMT_PLAIN, "ns", 14, "time off the CPU with this stack, summed over the stretches that ended in the interval"),
	FIELD(EV, stack, FT_STR, FMT_PLAIN, "", 1, "folded stack when it left the CPU, root first: user frames, then kernel frames suffixed _[k]; ends in ;… when cut"),
};

static const struct probe_hook hooks[] = {
	{ "switch", "offcputime_btf", HOOK_TP_BTF, "sched_switch" },
	{ "switch", "offcputime_raw", HOOK_RAW_TP, "sched_switch" },
};

static const struct probe_arg args[] = {
	{ "min-block-us", "US", "leave out stretches off the CPU shorter than US microseconds (default 1 ns: all)" },
	{ "max-block-us", "US", "leave out stretches longer than US microseconds (default: none)" },
};

static __u64 min_ns = 1, max_ns = ~0ull;

static int parse_arg(const char *name, const char *value)
{
	unsigned long long us;
	char *end;

	errno = 0;
	us = strtoull(value, &end, 10);
	if (errno || end == value || *end || *value == '-' || us > ~0ull / 1000)
		return -1;
	if (!strcmp(name, "min-block-us"))
		min_ns = us * 1000;
	else if (!strcmp(name, "max-block-us"))
		max_ns = us * 1000;
	else
		return -1;
	return 0;
}

static struct stack_agg agg = STACK_AGG_INIT;
static struct stack_out out = STACK_OUT(EV);
static int start_fd = -1;

/* Stacks of threads off the CPU right now must outlive the collection. */
static void keep_sleepers(void)
{
	__u32 tid, *prev = NULL;
	struct offcputime_start s;

	while (!bpf_map_get_next_key(start_fd, prev, &tid)) {
		if (!bpf_map_lookup_elem(start_fd, &tid, &s)) {
			stack_agg_keep(&agg, s.key.kstack);
			stack_agg_keep(&agg, s.key.ustack);
		}
		prev = &tid;
	}
}

/* The probe's own fields of a record, from the key of its count map. */
static void fill(void *rec, const void *key, struct stack_ids *ids)
{
	EV *r = rec;
	const struct offcputime_key *k = key;

	r->pid = k->pid;
	memcpy(r->comm, k->comm, sizeof(r->comm));
	*ids = (struct stack_ids){ k->pid, k->ustack, k->kstack };
}

static int on_interval(struct probe_ctx *ctx, struct bpf_object *obj)
{
	if (agg.slot_fd < 0) {
		if (stack_agg_setup(&agg, obj, "offcputime", sizeof(struct offcputime_key)))
			return -1;
		start_fd = bpf_map__fd(bpf_object__find_map_by_name(obj, "start"));
	}
	if (stack_agg_collect(&agg, &out, ctx, fill))
		return -1;
	keep_sleepers();
	stack_agg_clear(&agg);
	return stack_out_emit(&out, ctx);
}

/* Smoke test (bpf/README.md, "Smoke tests"): the process_activity trigger, isolated by --pid. */
static const char *const smoke_args[] = { "--pid", "{pid}", "--interval", "200", NULL };
static const struct probe_smoke_expect smoke_expect[] = {
	{ "pid", "eq", "{pid}" },
	{ "value", "ge", "1" },
};
static const struct probe_smoke smoke = {
	.trigger = "process_activity",
	.args = smoke_args,
	.expect = smoke_expect,
	.nexpect = sizeof(smoke_expect) / sizeof(smoke_expect[0]),
	.description = "off-CPU time of {pid} while it sleeps",
};

static const struct probe_def def = {
	.name = "offcputime",
	.version = "1.0.0",
	.summary = "Time off the CPU per process and stack (blocked, sleeping or preempted), folded and symbolized (sched_switch)",
	.kind = "interval",
	.record = "offcputime_event",
	.record_size = sizeof(EV),
	.fields = fields,
	.nfields = sizeof(fields) / sizeof(fields[0]),
	.hooks = hooks,
	.nhooks = sizeof(hooks) / sizeof(hooks[0]),
	.smoke = &smoke,
	.args = args,
	.nargs = sizeof(args) / sizeof(args[0]),
	.parse_arg = parse_arg,
	.on_interval = on_interval,
};

int main(int argc, char **argv)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts);
	struct offcputime_bpf *skel;
	int err;

	if (!probe_init(&def, argc, argv, &opts))
		return EXIT_OK;
	if (min_ns > max_ns) {
		fprintf(stderr, "offcputime: --min-block-us is above --max-block-us\n");
		return EXIT_USAGE;
	}
	skel = offcputime_bpf__open_opts(&opts);
	if (!skel)
		return probe_open_failed(&def);
	skel->rodata->min_ns = min_ns;
	skel->rodata->max_ns = max_ns;
	probe_prepare(&def, skel->obj);
	err = probe_run(&def, skel->obj);
	if (agg.slot_fd >= 0)
		stack_agg_report(&agg);
	offcputime_bpf__destroy(skel);
	return err;
}
