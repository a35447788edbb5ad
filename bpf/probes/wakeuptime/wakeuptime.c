// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * wakeuptime loader: see wakeuptime.bpf.c and bpf/README.md for the contract.
 *
 * Every interval: flip the count and stack maps, fold each (target, waker, waker's stacks)
 * sum into a record (symbolized on the device in the waker's address space, lib/stacks.h)
 * and emit them, most time first.
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
#include "wakeuptime.h"
#include "wakeuptime.skel.h"

#define EV struct wakeuptime_event
static const struct probe_field fields[] = {
	FIELD(EV, ts_ns, FT_U64, FMT_KTIME_NS, "ns", 0, "monotonic time at the end of the interval"),
	FIELD(EV, pid, FT_U32, FMT_PLAIN, "", 7, "target: process (tgid) of the thread that was blocked"),
	FIELD(EV, comm, FT_COMM, FMT_PLAIN, "", 16, "target thread name"),
	FIELD(EV, waker_pid, FT_U32, FMT_PLAIN, "", 7, "process (tgid) that woke the target (in interrupt context: the one interrupted)"),
	FIELD(EV, waker_comm, FT_COMM, FMT_PLAIN, "", 16, "waker thread name"),
	FIELD(EV, value, FT_U64, FMT_PLAIN, "ns", 14, "time the target was blocked, summed over the sleeps this waker ended in the interval"),
	FIELD(EV, stack, FT_STR, FMT_PLAIN, "", 1, "the waker's folded stack when it woke the target, root first: user frames, then kernel frames suffixed _[k]; ends in ;… when cut"),
};

static const struct probe_hook hooks[] = {
	{ "block", "wakeuptime_switch_btf", HOOK_TP_BTF, "sched_switch" },
	{ "block", "wakeuptime_switch_raw", HOOK_RAW_TP, "sched_switch" },
	{ "wake", "wakeuptime_waking_btf", HOOK_TP_BTF, "sched_waking" },
	{ "wake", "wakeuptime_waking_raw", HOOK_RAW_TP, "sched_waking" },
};

static const struct probe_arg args[] = {
	{ "min-block-us", "US", "leave out sleeps shorter than US microseconds (default 1 ns: all)" },
	{ "max-block-us", "US", "leave out sleeps longer than US microseconds (default: none)" },
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
/* The probe's own fields of a record, from the key of its count map: the stack is the waker's. */
static void fill(void *rec, const void *key, struct stack_ids *ids)
{
	EV *r = rec;
	const struct wakeuptime_key *k = key;

	r->pid = k->pid;
	r->waker_pid = k->waker_pid;
	memcpy(r->comm, k->comm, sizeof(r->comm));
	memcpy(r->waker_comm, k->waker_comm, sizeof(r->waker_comm));
	*ids = (struct stack_ids){ k->waker_pid, k->ustack, k->kstack };
}

static int on_interval(struct probe_ctx *ctx, struct bpf_object *obj)
{
	if (agg.slot_fd < 0 && stack_agg_setup(&agg, obj, "wakeuptime", sizeof(struct wakeuptime_key)))
		return -1;
	if (stack_agg_collect(&agg, &out, ctx, fill))
		return -1;
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
	.description = "blocked time of {pid}, summed by the stack that woke it",
};

static const struct probe_def def = {
	.name = "wakeuptime",
	.version = "1.0.0",
	.summary = "Time blocked per target, waker and the waker's stack, folded and symbolized (sched_switch, sched_waking)",
	.kind = "interval",
	.record = "wakeuptime_event",
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
	struct wakeuptime_bpf *skel;
	int err;

	if (!probe_init(&def, argc, argv, &opts))
		return EXIT_OK;
	if (min_ns > max_ns) {
		fprintf(stderr, "wakeuptime: --min-block-us is above --max-block-us\n");
		return EXIT_USAGE;
	}
	skel = wakeuptime_bpf__open_opts(&opts);
	if (!skel)
		return probe_open_failed(&def);
	skel->rodata->min_ns = min_ns;
	skel->rodata->max_ns = max_ns;
	probe_prepare(&def, skel->obj);
	err = probe_run(&def, skel->obj);
	if (agg.slot_fd >= 0)
		stack_agg_report(&agg);
	wakeuptime_bpf__destroy(skel);
	return err;
}
