// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * loadmon loader: see loadmon.bpf.c and bpf/README.md for the contract.
 *
 * Reads /proc/loadavg before loading and every interval: above --threshold it arms the
 * sampling program, at or below it disarms it. The state at start and every change emit a
 * state record (kind 1 armed, 2 disarmed; value 0, no stack; the one for the start comes
 * with the first interval) and a line on stderr. Kernel stacks
 * counted while armed are emitted every interval like profile's (kind 0).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/types.h>
#include "probe.h"
#include "stacks.h"
#include "loadmon.h"
#include "loadmon.skel.h"

#define EV struct loadmon_event
static const struct probe_field fields[] = {
	FIELD(EV, ts_ns, FT_U64, FMT_KTIME_NS, "ns", 0, "monotonic time at the end of the interval, or of the load check"),
	FIELD(EV, kind, FT_U8, FMT_PLAIN, "", 4, "0: stack samples; 1: armed (load above the threshold); 2: disarmed"),
	FIELD(EV, load1_milli, FT_U32, FMT_PLAIN, "milli", 6, "1-minute load average x 1000 at the last check"),
	FIELD(EV, threshold_milli, FT_U32, FMT_PLAIN, "milli", 0, "--threshold x 1000"),
	FIELD(EV, pid, FT_U32, FMT_PLAIN, "", 7, "process (tgid) on the CPU when sampled (0 in state records)"),
	FIELD(EV, comm, FT_COMM, FMT_PLAIN, "", 16, "thread command name"),
	FIELD(EV, value, FT_U64, FMT_PLAIN, "samples", 8, "samples of this kernel stack in the interval (0 in state records)"),
	FIELD(EV, stack, FT_STR, FMT_PLAIN, "", 1, "folded kernel stack, root first, frames suffixed _[k]; ends in ;… when cut; empty in state records"),
};

static const struct probe_hook hooks[] = {
	{ "sample", "loadmon_sample", HOOK_PERF_EVENT, "cpu-clock" },
};

static const struct probe_arg args[] = {
	{ "threshold", "LOAD", "sample while the 1-minute load average is above LOAD (default: the number of online CPUs)" },
	{ "freq", "HZ", "samples per second on each CPU while armed (default 49)" },
};

static double threshold = -1;
static unsigned long freq = 49;

static int parse_arg(const char *name, const char *value)
{
	char *end;

	errno = 0;
	if (!strcmp(name, "threshold")) {
		threshold = strtod(value, &end);
		return errno || end == value || *end || !(threshold >= 0) || threshold > 1e6 ? -1 : 0;
	}
	if (!strcmp(name, "freq")) {
		freq = strtoul(value, &end, 10);
		return errno || end == value || *end || *value == '-' || !freq || freq > 100000 ? -1 : 0;
	}
	return -1;
}

static int attach(struct bpf_program *prog, const struct probe_hook *hook)
{
	return stacks_attach_cpu_clock(prog, freq, "loadmon");
}

static struct loadmon_bpf *skel;
static struct stack_agg agg = STACK_AGG_INIT;
static struct stack_out out = STACK_OUT(EV);
static int state;		/* LOADMON_ARMED / LOADMON_DISARMED */
static bool state_reported;	/* the state record of the last change is out */
static __u64 state_ts;		/* when it changed */
static double load1;

static int read_load1(double *v)
{
	FILE *f = fopen("/proc/loadavg", "re");
	int ok = f && fscanf(f, "%lf", v) == 1;

	if (f)
		fclose(f);
	return ok ? 0 : -1;
}

static __u32 milli(double v)
{
	return (__u32)(v * 1000 + 0.5);
}

/* Reads the load and arms or disarms; a change is said on stderr and reported next. */
static int check_load(void)
{
	int next;

	if (read_load1(&load1)) {
		fprintf(stderr, "loadmon: cannot read /proc/loadavg: %s\n", strerror(errno));
		return -1;
	}
	next = load1 > threshold ? LOADMON_ARMED : LOADMON_DISARMED;
	if (next == state)
		return 0;
	skel->bss->armed = next == LOADMON_ARMED;	/* before load: the initial value */
	state = next;
	state_ts = probe_now_ns();
	state_reported = false;
	fprintf(stderr, "loadmon: %s (load1 %.2f %s threshold %.2f)\n",
		next == LOADMON_ARMED ? "armed" : "disarmed", load1, next == LOADMON_ARMED ? ">" : "<=", threshold);
	return 0;
}

static int report_state(void)
{
	EV *r;

	if (state_reported)
		return 0;
	r = stack_out_next(&out);
	if (!r)
		return -1;
	r->ts_ns = state_ts;
	r->kind = (__u8)state;
	r->load1_milli = milli(load1);
	r->threshold_milli = milli(threshold);
	state_reported = true;
	return stack_out_add(&out, 0);
}

/* The probe's own fields of a sample record, from the key of its count map. */
static void fill(void *rec, const void *key, struct stack_ids *ids)
{
	EV *r = rec;
	const struct loadmon_key *k = key;

	r->kind = LOADMON_SAMPLES;
	r->pid = k->pid;
	r->load1_milli = milli(load1);
	r->threshold_milli = milli(threshold);
	memcpy(r->comm, k->comm, sizeof(r->comm));
	*ids = (struct stack_ids){ k->pid, k->ustack, k->kstack };
}

static int on_interval(struct probe_ctx *ctx, struct bpf_object *obj)
{
	if (agg.slot_fd < 0 && stack_agg_setup(&agg, obj, "loadmon", sizeof(struct loadmon_key)))
		return -1;
	/* The state at start comes first. */
	if (report_state() || stack_out_emit(&out, ctx))
		return -1;
	if (stack_agg_collect(&agg, &out, ctx, fill))
		return -1;
	stack_agg_clear(&agg);
	/* Samples first (taken under the old state), then the state for the next interval. */
	if (stack_out_emit(&out, ctx) || check_load() || report_state())
		return -1;
	return stack_out_emit(&out, ctx);
}

/*
 * Smoke test (bpf/README.md, "Smoke tests"): cpu_load keeps {pid} busy in the kernel until the
 * 1-minute load is above 0 (the kernel updates it every 5 s), so threshold 0 arms the probe.
 */
static const char *const smoke_args[] = {
	"--pid", "{pid}", "--threshold", "0", "--freq", "999", "--interval", "200", NULL
};
static const struct probe_smoke_expect smoke_expect[] = {
	{ "kind", "eq", "0" },
	{ "pid", "eq", "{pid}" },
	{ "value", "ge", "1" },
};
static const struct probe_smoke smoke = {
	.trigger = "cpu_load",
	.args = smoke_args,
	.expect = smoke_expect,
	.nexpect = sizeof(smoke_expect) / sizeof(smoke_expect[0]),
	.description = "kernel stacks of {pid} sampled once the load armed the probe",
};

static const struct probe_def def = {
	.name = "loadmon",
	.version = "1.0.0",
	.summary = "Kernel stack samples per process while the 1-minute load average is above a threshold (perf events)",
	.kind = "interval",
	.record = "loadmon_event",
	.record_size = sizeof(EV),
	.fields = fields,
	.nfields = sizeof(fields) / sizeof(fields[0]),
	.hooks = hooks,
	.nhooks = sizeof(hooks) / sizeof(hooks[0]),
	.args = args,
	.nargs = sizeof(args) / sizeof(args[0]),
	.parse_arg = parse_arg,
	.on_interval = on_interval,
	.attach = attach,
	.smoke = &smoke,
};

int main(int argc, char **argv)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts);
	int err;

	if (!probe_init(&def, argc, argv, &opts))
		return EXIT_OK;
	if (threshold < 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		threshold = n > 0 ? (double)n : 1;
	}
	skel = loadmon_bpf__open_opts(&opts);
	if (!skel)
		return probe_open_failed(&def);
	if (check_load())
		return EXIT_RUNTIME;
	probe_prepare(&def, skel->obj);
	err = probe_run(&def, skel->obj);
	if (agg.slot_fd >= 0)
		stack_agg_report(&agg);
	loadmon_bpf__destroy(skel);
	return err;
}
