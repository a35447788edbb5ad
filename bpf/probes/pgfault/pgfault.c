// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * pgfault loader: see pgfault.bpf.c and bpf/README.md for the contract.
 *
 * Every interval: flip the stack maps, fold each (process, stacks) count into a record
 * (symbolized on the device, lib/stacks.h) and emit them, most faults first.
 */
#include <stddef.h>
#include <string.h>
#include <linux/types.h>
#include "probe.h"
#include "stacks.h"
#include "pgfault.h"
#include "pgfault.skel.h"

#define EV struct pgfault_event
static const struct probe_field fields[] = {
	FIELD(EV, ts_ns, FT_U64, FMT_KTIME_NS, "ns", 0, "monotonic time at the end of the interval"),
	FIELD(EV, pid, FT_U32, FMT_PLAIN, "", 7, "process (tgid) that faulted"),
	FIELD(EV, comm, FT_COMM, FMT_PLAIN, "", 16, "thread command name"),
	FIELD(EV, value, FT_U64, FMT_PLAIN, "faults", 8, "page faults with this stack in the interval"),
	FIELD(EV, stack, FT_STR, FMT_PLAIN, "", 1, "folded stack at the fault, root first: user frames, then kernel frames suffixed _[k]; ends in ;… when cut"),
};

static const struct probe_hook hooks[] = {
	{ "fault", "pgfault_user_tp", HOOK_TRACEPOINT, "exceptions/page_fault_user" },
	{ "fault", "pgfault_kernel_tp", HOOK_TRACEPOINT, "exceptions/page_fault_kernel" },
	{ "fault", "pgfault_kprobe", HOOK_KPROBE, "handle_mm_fault" },
};

static struct stack_agg agg = STACK_AGG_INIT;
static struct stack_out out = STACK_OUT(EV);

/* The probe's own fields of a record, from the key of its count map. */
static void fill(void *rec, const void *key, struct stack_ids *ids)
{
	EV *r = rec;
	const struct pgfault_key *k = key;

	r->pid = k->pid;
	memcpy(r->comm, k->comm, sizeof(r->comm));
	*ids = (struct stack_ids){ k->pid, k->ustack, k->kstack };
}

static int on_interval(struct probe_ctx *ctx, struct bpf_object *obj)
{
	if (agg.slot_fd < 0 && stack_agg_setup(&agg, obj, "pgfault", sizeof(struct pgfault_key)))
		return -1;
	if (stack_agg_collect(&agg, &out, ctx, fill))
		return -1;
	stack_agg_clear(&agg);
	return stack_out_emit(&out, ctx);
}

/* Smoke test (bpf/README.md, "Smoke tests"): the page_touch trigger, isolated by --pid. */
static const char *const smoke_args[] = { "--pid", "{pid}", "--interval", "200", NULL };
static const struct probe_smoke_expect smoke_expect[] = {
	{ "pid", "eq", "{pid}" },
	{ "value", "ge", "1" },
};
static const struct probe_smoke smoke = {
	.trigger = "page_touch",
	.args = smoke_args,
	.expect = smoke_expect,
	.nexpect = sizeof(smoke_expect) / sizeof(smoke_expect[0]),
	.description = "page faults of {pid} touching fresh pages",
};

static const struct probe_def def = {
	.name = "pgfault",
	.version = "1.0.0",
	.summary = "Page faults per process and stack, folded and symbolized (x86 exceptions tracepoints; kprobe handle_mm_fault elsewhere)",
	.kind = "interval",
	.record = "pgfault_event",
	.record_size = sizeof(EV),
	.fields = fields,
	.nfields = sizeof(fields) / sizeof(fields[0]),
	.hooks = hooks,
	.nhooks = sizeof(hooks) / sizeof(hooks[0]),
	.smoke = &smoke,
	.on_interval = on_interval,
};

int main(int argc, char **argv)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts);
	struct pgfault_bpf *skel;
	int err;

	if (!probe_init(&def, argc, argv, &opts))
		return EXIT_OK;
	skel = pgfault_bpf__open_opts(&opts);
	if (!skel)
		return probe_open_failed(&def);
	probe_prepare(&def, skel->obj);
	err = probe_run(&def, skel->obj);
	if (agg.slot_fd >= 0)
		stack_agg_report(&agg);
	pgfault_bpf__destroy(skel);
	return err;
}
