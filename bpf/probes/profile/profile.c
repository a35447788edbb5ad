// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * profile loader: see profile.bpf.c and bpf/README.md for the contract.
 *
 * Opens one software cpu-clock perf event per CPU at --freq Hz and attaches the sampling
 * program to each. Every interval it flips the stack maps, folds each (process, stacks)
 * count into a record (symbolized here, on the device: lib/stacks.h) and emits them, most
 * samples first.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <linux/types.h>
#include "probe.h"
#include "stacks.h"
#include "profile.h"
#include "profile.skel.h"

#define EV struct profile_event
static const struct probe_field fields[] = {
	FIELD(EV, ts_ns, FT_U64, FMT_KTIME_NS, "ns", 0, "monotonic time at the end of the interval"),
	FIELD(EV, pid, FT_U32, FMT_PLAIN, "", 7, "process (tgid) on the CPU when sampled"),
	FIELD(EV, comm, FT_COMM, FMT_PLAIN, "", 16, "thread command name"),
	FIELD(EV, value, FT_U64, FMT_PLAIN, "samples", 8, "samples of this stack in the interval (one per 1/freq s on a CPU)"),
	FIELD(EV, stack, FT_STR, FMT_PLAIN, "", 1, "folded stack, root first: user frames, then kernel frames suffixed _[k]; ends in ;… when cut"),
};

static const struct probe_hook hooks[] = {
	{ "sample", "profile_sample", HOOK_PERF_EVENT, "cpu-clock" },
};

static const struct probe_arg args[] = {
	{ "freq", "HZ", "samples per second on each CPU (default 49)" },
	{ "include-idle", NULL, "also count the idle task (pid 0)" },
	{ "kernel-only", NULL, "kernel stacks only" },
	{ "user-only", NULL, "user stacks only" },
};

static unsigned long freq = 49;
static bool include_idle, kernel_only, user_only;

static int parse_arg(const char *name, const char *value)
{
	char *end;

	if (!strcmp(name, "freq")) {
		errno = 0;
		freq = strtoul(value, &end, 10);
		return errno || end == value || *end || *value == '-' || !freq || freq > 100000 ? -1 : 0;
	}
	if (!strcmp(name, "include-idle"))
		include_idle = true;
	else if (!strcmp(name, "kernel-only"))
		kernel_only = true;
	else if (!strcmp(name, "user-only"))
		user_only = true;
	else
		return -1;
	return 0;
}

static int attach(struct bpf_program *prog, const struct probe_hook *hook)
{
	return stacks_attach_cpu_clock(prog, freq, "profile");
}

static struct stack_agg agg = STACK_AGG_INIT;
static struct stack_out out = STACK_OUT(EV);

/* The probe's own fields of a record, from the key of its count map. */
static void fill(void *rec, const void *key, struct stack_ids *ids)
{
	EV *r = rec;
	const struct profile_key *k = key;

	r->pid = k->pid;
	memcpy(r->comm, k->comm, sizeof(r->comm));
	*ids = (struct stack_ids){ k->pid, k->ustack, k->kstack };
}

static int on_interval(struct probe_ctx *ctx, struct bpf_object *obj)
{
	if (agg.slot_fd < 0 && stack_agg_setup(&agg, obj, "profile", sizeof(struct profile_key)))
		return -1;
	if (stack_agg_collect(&agg, &out, ctx, fill))
		return -1;
	stack_agg_clear(&agg);
	return stack_out_emit(&out, ctx);
}

/* Smoke test (bpf/README.md, "Smoke tests"): the process_activity trigger, isolated by --pid. */
static const char *const smoke_args[] = { "--pid", "{pid}", "--interval", "200", "--freq", "999", NULL };
static const struct probe_smoke_expect smoke_expect[] = {
	{ "pid", "eq", "{pid}" },
	{ "value", "ge", "1" },
};
static const struct probe_smoke smoke = {
	.trigger = "process_activity",
	.args = smoke_args,
	.expect = smoke_expect,
	.nexpect = sizeof(smoke_expect) / sizeof(smoke_expect[0]),
	.description = "samples of {pid} while it runs, forks and execs (999 Hz so a short burst is seen)",
};

static const struct probe_def def = {
	.name = "profile",
	.version = "1.0.0",
	.summary = "On-CPU stack samples per process at --freq Hz on every CPU, folded and symbolized (perf events)",
	.kind = "interval",
	.record = "profile_event",
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
	.attach = attach,
};

int main(int argc, char **argv)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts);
	struct profile_bpf *skel;
	int err;

	if (!probe_init(&def, argc, argv, &opts))
		return EXIT_OK;
	if (kernel_only && user_only) {
		fprintf(stderr, "profile: --kernel-only and --user-only are exclusive\n");
		return EXIT_USAGE;
	}
	skel = profile_bpf__open_opts(&opts);
	if (!skel)
		return probe_open_failed(&def);
	skel->rodata->include_idle = include_idle;
	skel->rodata->want_kernel = !user_only;
	skel->rodata->want_user = !kernel_only;
	probe_prepare(&def, skel->obj);
	err = probe_run(&def, skel->obj);
	if (agg.slot_fd >= 0)
		stack_agg_report(&agg);
	profile_bpf__destroy(skel);
	return err;
}
