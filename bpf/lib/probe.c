// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The loader contract shared by every probe; see probe.h and bpf/README.md. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <linux/perf_event.h>
#include <sys/utsname.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include "bpfleet/frame.h"
#include "kernel.h"
#include "output.h"
#include "probe.h"

struct probe_env env = {
	.interval_ms = 1000,
	.ringbuf_kb = 256,
	.linger_ms = 2,
	.stats_interval_ms = 1000,
};

struct probe_ctx {
	const struct probe_def *def;
	enum output_mode mode;
	uint64_t records;		/* records written */
	uint64_t lost_user;		/* records the loader could not read or write */
	uint64_t truncated;		/* records whose text was cut to fit (folded stacks) */
	uint64_t intervals;
	int stats_fd;
	int err;
};

static const char *prog_name;
static const char *btf_source = "kernel";
static volatile sig_atomic_t exiting;
static bool selected[64];

static void die(int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_DEBUG && !env.verbose)
		return 0;
	if (level == LIBBPF_INFO && !env.verbose)
		return 0;
	return vfprintf(stderr, fmt, args);
}

uint64_t probe_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

bool probe_pid_gone(uint32_t pid)
{
	/* kill(0, 0) would address our own process group, which always exists. */
	return pid && kill((pid_t)pid, 0) && errno == ESRCH;
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---------------------------------------------------------------- arguments */

enum {
	OPT_JSON = 1000, OPT_MACHINE, OPT_DESCRIBE, OPT_MANIFEST, OPT_PID, OPT_COMM, OPT_LPORT,
	OPT_RPORT, OPT_DURATION, OPT_INTERVAL, OPT_BTF, OPT_PREFER, OPT_RINGBUF, OPT_LINGER, OPT_STATS,
	OPT_VERBOSE, OPT_HELP, OPT_PROBE_BASE = 2000,
};

static const struct option common_opts[] = {
	{ "json", no_argument, NULL, OPT_JSON },
	{ "machine", no_argument, NULL, OPT_MACHINE },
	{ "describe", no_argument, NULL, OPT_DESCRIBE },
	{ "manifest", no_argument, NULL, OPT_MANIFEST },
	{ "pid", required_argument, NULL, OPT_PID },
	{ "comm", required_argument, NULL, OPT_COMM },
	{ "lport", required_argument, NULL, OPT_LPORT },
	{ "rport", required_argument, NULL, OPT_RPORT },
	{ "duration", required_argument, NULL, OPT_DURATION },
	{ "interval", required_argument, NULL, OPT_INTERVAL },
	{ "btf", required_argument, NULL, OPT_BTF },
	{ "prefer", required_argument, NULL, OPT_PREFER },
	{ "ringbuf-kb", required_argument, NULL, OPT_RINGBUF },
	{ "linger-ms", required_argument, NULL, OPT_LINGER },
	{ "stats-interval", required_argument, NULL, OPT_STATS },
	{ "verbose", no_argument, NULL, OPT_VERBOSE },
	{ "help", no_argument, NULL, OPT_HELP },
};
#define NCOMMON (sizeof(common_opts) / sizeof(common_opts[0]))

static void usage(const struct probe_def *def, FILE *o)
{
	fprintf(o,
		"usage: %s [options]\n%s\n\n"
		"output (default: a table on stdout):\n"
		"  --json                one JSON object per record on stdout\n"
		"  --machine             framed binary records + stats for the bpfleet agent\n"
		"  --describe            print manifest, kernel facts and hook availability (JSON)\n"
		"  --manifest            print the manifest only (JSON), no kernel access\n"
		"filters:\n"
		"  --pid PID             only this process (tgid)\n"
		"  --comm NAME           only tasks with this command name\n"
		"  --lport P[,P...]      local ports (up to %d)\n"
		"  --rport P[,P...]      remote ports (up to %d)\n"
		"running:\n"
		"  --duration SEC        stop after SEC seconds (default: until SIGINT/SIGTERM)\n"
		"  --interval MS         aggregation interval of interval probes (default 1000)\n"
		"  --stats-interval MS   stats cadence in machine mode (default 1000)\n"
		"  --ringbuf-kb KB       ring buffer size, power of two (default 256)\n"
		"  --linger-ms MS        after records arrive, wait and drain again before writing (default 2, 0: off)\n"
		"  --btf FILE            BTF to use instead of the kernel's / the embedded one\n"
		"  --prefer KIND         try hooks of this kind first (tracepoint, tp_btf, raw_tp, kprobe)\n"
		"  -v, --verbose         libbpf debug output on stderr\n",
		def->name, def->summary, BPFLEET_MAX_PORTS, BPFLEET_MAX_PORTS);
	if (def->nargs)
		fprintf(o, "%s options:\n", def->name);
	for (size_t i = 0; i < def->nargs; i++) {
		char left[64];

		snprintf(left, sizeof(left), "--%s%s%s", def->args[i].name,
			 def->args[i].value ? " " : "", def->args[i].value ?: "");
		fprintf(o, "  %-21s %s\n", left, def->args[i].desc);
	}
}

static long parse_long(const char *opt, const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		die(EXIT_USAGE, "invalid --%s '%s': expected an integer in [%ld, %ld]", opt, s, min, max);
	return v;
}

static void parse_ports(const char *opt, const char *s, uint16_t *ports, uint32_t *n)
{
	char *copy = strdup(s), *save = NULL;

	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (*n >= BPFLEET_MAX_PORTS)
			die(EXIT_USAGE, "too many --%s ports: at most %d", opt, BPFLEET_MAX_PORTS);
		ports[(*n)++] = (uint16_t)parse_long(opt, tok, 1, 65535);
	}
	free(copy);
}

static void parse_args(const struct probe_def *def, int argc, char **argv)
{
	struct option opts[NCOMMON + 32 + 1];
	size_t n = 0;
	int c;

	prog_name = def->name;
	for (size_t i = 0; i < NCOMMON; i++)
		opts[n++] = common_opts[i];
	for (size_t i = 0; i < def->nargs && i < 32; i++)
		opts[n++] = (struct option){ def->args[i].name,
			def->args[i].value ? required_argument : no_argument, NULL, (int)(OPT_PROBE_BASE + i) };
	opts[n] = (struct option){ 0 };

	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		switch (c) {
		case OPT_JSON: env.json = true; break;
		case OPT_MACHINE: env.machine = true; break;
		case OPT_DESCRIBE: env.describe = true; break;
		case OPT_MANIFEST: env.manifest = true; break;
		case OPT_PID: env.pid = (uint32_t)parse_long("pid", optarg, 1, INT_MAX); break;
		case OPT_COMM:
			if (strlen(optarg) >= BPFLEET_TASK_COMM_LEN)
				die(EXIT_USAGE, "--comm '%s' is longer than the kernel's %d-byte comm",
				    optarg, BPFLEET_TASK_COMM_LEN - 1);
			strncpy(env.comm, optarg, sizeof(env.comm) - 1);
			env.comm_set = true;
			break;
		case OPT_LPORT: parse_ports("lport", optarg, env.lports, &env.nlports); break;
		case OPT_RPORT: parse_ports("rport", optarg, env.rports, &env.nrports); break;
		case OPT_DURATION: env.duration_s = (int)parse_long("duration", optarg, 1, INT_MAX); break;
		case OPT_INTERVAL: env.interval_ms = (int)parse_long("interval", optarg, 10, 3600000); break;
		case OPT_STATS: env.stats_interval_ms = (int)parse_long("stats-interval", optarg, 10, 3600000); break;
		case OPT_RINGBUF: {
			long kb = parse_long("ringbuf-kb", optarg, 4, 1 << 20);

			if (kb & (kb - 1))
				die(EXIT_USAGE, "--ringbuf-kb %ld is not a power of two", kb);
			env.ringbuf_kb = (uint32_t)kb;
			break;
		}
		case OPT_LINGER: env.linger_ms = (int)parse_long("linger-ms", optarg, 0, 100); break;
		case OPT_BTF: env.btf_path = optarg; break;
		case OPT_PREFER:
			if (strcmp(optarg, "tracepoint") && strcmp(optarg, "tp_btf") &&
			    strcmp(optarg, "raw_tp") && strcmp(optarg, "kprobe"))
				die(EXIT_USAGE, "--prefer takes tracepoint, tp_btf, raw_tp or kprobe, not '%s'", optarg);
			env.prefer = optarg;
			break;
		case 'v':
		case OPT_VERBOSE: env.verbose = true; break;
		case 'h':
		case OPT_HELP: usage(def, stdout); exit(EXIT_OK);
		default:
			if (c >= OPT_PROBE_BASE && c < OPT_PROBE_BASE + (int)def->nargs) {
				const struct probe_arg *a = &def->args[c - OPT_PROBE_BASE];

				if (def->parse_arg && def->parse_arg(a->name, optarg) == 0)
					break;
				die(EXIT_USAGE, "invalid --%s '%s'", a->name, optarg ?: "");
			}
			usage(def, stderr);
			exit(EXIT_USAGE);
		}
	}
	if (optind < argc)
		die(EXIT_USAGE, "unexpected argument '%s' (see --help)", argv[optind]);
	if (env.json && env.machine)
		die(EXIT_USAGE, "--json and --machine are exclusive");
	libbpf_set_print(libbpf_print);
}

/* ---------------------------------------------------------------- BTF */

static char btf_fd_path[64];

static const char *btf_path(const struct probe_def *def)
{
	struct utsname u;
	char list[512] = "";
	size_t o = 0;
	int fd;

	if (env.btf_path) {
		if (access(env.btf_path, R_OK))
			die(EXIT_UNSUPPORTED, "cannot read --btf %s: %s", env.btf_path, strerror(errno));
		btf_source = env.btf_path;
		return env.btf_path;
	}
	if (kernel_has_btf())
		return NULL;
	uname(&u);
	for (const struct embedded_btf *b = bpfleet_embedded_btfs; b->release; b++) {
		if (strcmp(b->release, u.release)) {
			o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", o ? ", " : "", b->release);
			if (o >= sizeof(list))
				o = sizeof(list) - 1;
			continue;
		}
		/* libbpf wants a path: hand it an anonymous in-memory file. */
		fd = memfd_create("bpfleet-btf", MFD_CLOEXEC);
		if (fd < 0 || write(fd, b->start, (size_t)(b->end - b->start)) != b->end - b->start)
			die(EXIT_RUNTIME, "cannot stage embedded BTF for %s: %s", u.release, strerror(errno));
		snprintf(btf_fd_path, sizeof(btf_fd_path), "/proc/self/fd/%d", fd);
		btf_source = "embedded";
		return btf_fd_path;
	}
	if (env.describe || env.manifest) {
		btf_source = "none";
		return NULL;
	}
	die(EXIT_UNSUPPORTED,
	    "unsupported on this kernel: needs BTF. Kernel %s (%s) has no /sys/kernel/btf/vmlinux and "
	    "this %s binary embeds minimized BTF only for: %s. Either run a kernel built with "
	    "CONFIG_DEBUG_INFO_BTF=y, or ship this kernel's BTF: add its full BTF to toolchains/btf/ "
	    "and rebuild (make -C bpf), or pass --btf FILE (see bpf/README.md, \"Kernels without BTF\")",
	    u.release, u.machine, def->name, o ? list : "(none)");
	return NULL;
}

/* ---------------------------------------------------------------- hooks */

/* A software cpu-clock perf event can be opened on CPU 0 (what profile samples with). */
static bool perf_cpu_clock_available(char *why, size_t len)
{
	struct perf_event_attr a = { .size = sizeof(a), .type = PERF_TYPE_SOFTWARE,
				     .config = PERF_COUNT_SW_CPU_CLOCK, .disabled = 1 };
	int fd = (int)syscall(__NR_perf_event_open, &a, -1, 0, -1, PERF_FLAG_FD_CLOEXEC);

	if (fd >= 0) {
		close(fd);
		return true;
	}
	snprintf(why, len, "perf_event_open(cpu-clock) failed: %s%s", strerror(errno),
		 errno == ENOENT || errno == ENOSYS ? " (needs CONFIG_PERF_EVENTS)" :
		 errno == EACCES || errno == EPERM ? " (run as root or lower kernel.perf_event_paranoid)" : "");
	return false;
}

static bool hook_available(const struct probe_hook *h, char *why, size_t len)
{
	char cat[64], name[128];
	const char *slash;

	switch (h->kind) {
	case HOOK_TRACEPOINT:
		slash = strchr(h->target, '/');
		snprintf(cat, sizeof(cat), "%.*s", (int)(slash - h->target), h->target);
		snprintf(name, sizeof(name), "%s", slash + 1);
		if (!kernel_tracefs()) {
			snprintf(why, len, "tracefs not mounted (mount -t tracefs nodev /sys/kernel/tracing)");
			return false;
		}
		if (!kernel_tracepoint_exists(cat, name)) {
			snprintf(why, len, "no tracepoint %s", h->target);
			return false;
		}
		return true;
	case HOOK_RAW_TP:
		if (kernel_tracefs() && !kernel_raw_tracepoint_exists(h->target)) {
			snprintf(why, len, "no tracepoint %s", h->target);
			return false;
		}
		return true;
	case HOOK_TP_BTF:
		if (!kernel_has_btf()) {
			snprintf(why, len, "needs kernel BTF (/sys/kernel/btf/vmlinux)");
			return false;
		}
		if (!kernel_btf_has_tp(h->target)) {
			snprintf(why, len, "kernel BTF has no btf_trace_%s", h->target);
			return false;
		}
		return true;
	case HOOK_KPROBE:
	case HOOK_KRETPROBE:
		if (!kernel_has_kprobes()) {
			snprintf(why, len, "needs kprobes (CONFIG_KPROBES / CONFIG_KPROBE_EVENTS)");
			return false;
		}
		if (!kernel_function_exists(h->target)) {
			snprintf(why, len, "no traceable kernel function %s", h->target);
			return false;
		}
		return true;
	case HOOK_XDP:
		/* The interface and the attach mode are the probe's (def->attach): checked there. */
		return true;
	case HOOK_PERF_EVENT:
		return perf_cpu_clock_available(why, len);
	case HOOK_UPROBE:
		if (access("/sys/bus/event_source/devices/uprobe/type", F_OK)) {
			snprintf(why, len, "needs uprobes (CONFIG_UPROBE_EVENTS)");
			return false;
		}
		return true;
	}
	return false;
}

static bool kind_matches(enum hook_kind k, const char *prefer)
{
	const char *n = hook_kind_name(k);

	return !strcmp(n, prefer) || (!strcmp(prefer, "kprobe") && k == HOOK_KRETPROBE);
}

/* Picks one hook per group: the preferred kind if asked and available, else the first
 * available in the probe's order. Returns the name of a group with none, or NULL. */
static const char *select_hooks(const struct probe_def *def)
{
	char why[256];

	memset(selected, 0, sizeof(selected));
	for (size_t i = 0; i < def->nhooks; i++) {
		const char *g = def->hooks[i].group;
		bool done = false;

		for (size_t j = 0; j < i; j++)
			done |= !strcmp(def->hooks[j].group, g);
		if (done)
			continue;
		for (int pass = env.prefer ? 0 : 1; pass < 2 && !done; pass++) {
			for (size_t j = i; j < def->nhooks && !done; j++) {
				const struct probe_hook *h = &def->hooks[j];

				if (strcmp(h->group, g) || (pass == 0 && !kind_matches(h->kind, env.prefer)))
					continue;
				if (hook_available(h, why, sizeof(why))) {
					/* Every program of this kind in the group goes together
					 * (e.g. a kprobe with its kretprobe). */
					for (size_t k = j; k < def->nhooks; k++)
						if (!strcmp(def->hooks[k].group, g) &&
						    (def->hooks[k].kind == h->kind ||
						     (h->kind == HOOK_KPROBE && def->hooks[k].kind == HOOK_KRETPROBE)) &&
						    hook_available(&def->hooks[k], why, sizeof(why)))
							selected[k] = true;
					done = true;
				}
			}
		}
		if (!done)
			return g;
	}
	return NULL;
}

static void unsupported_exit(const struct probe_def *def, const char *group)
{
	char why[256], need[1024] = "";
	size_t o = 0;
	struct utsname u;

	uname(&u);
	for (size_t i = 0; i < def->nhooks; i++) {
		if (strcmp(def->hooks[i].group, group))
			continue;
		hook_available(&def->hooks[i], why, sizeof(why));
		o += (size_t)snprintf(need + o, sizeof(need) - o, "%s%s %s (%s)", o ? " or " : "",
				      hook_kind_name(def->hooks[i].kind), def->hooks[i].target, why);
		if (o >= sizeof(need))
			break;
	}
	die(EXIT_UNSUPPORTED, "unsupported on this kernel (%s %s): needs %s", u.release, u.machine, need);
}

/* --describe / --manifest: prints and returns true when the loader should exit. */
static bool handle_describe(const struct probe_def *def)
{
	struct utsname u;
	char why[256];

	if (env.manifest) {
		output_manifest(stdout, def);
		putchar('\n');
		return true;
	}
	if (!env.describe)
		return false;
	uname(&u);
	select_hooks(def);
	printf("{\"manifest\":");
	output_manifest(stdout, def);
	printf(",\"kernel\":{\"release\":\"%s\",\"machine\":\"%s\",\"btf\":%s,\"btf_source\":\"%s\","
	       "\"kprobes\":%s,\"tracefs\":%s,\"jit\":%d},\"hooks\":[",
	       u.release, u.machine, kernel_has_btf() ? "true" : "false", btf_source,
	       kernel_has_kprobes() ? "true" : "false", kernel_tracefs() ? "true" : "false",
	       kernel_jit_enabled());
	for (size_t i = 0; i < def->nhooks; i++) {
		const struct probe_hook *h = &def->hooks[i];
		bool ok = hook_available(h, why, sizeof(why));

		printf("%s{\"group\":\"%s\",\"kind\":\"%s\",\"target\":\"%s\",\"available\":%s,"
		       "\"selected\":%s,\"reason\":\"%s\"}",
		       i ? "," : "", h->group, hook_kind_name(h->kind), h->target, ok ? "true" : "false",
		       selected[i] ? "true" : "false", ok ? "" : why);
	}
	printf("]}\n");
	return true;
}

/* ---------------------------------------------------------------- start */

bool probe_init(const struct probe_def *def, int argc, char **argv,
		struct bpf_object_open_opts *opts)
{
	parse_args(def, argc, argv);
	/* --manifest first: it must not touch the kernel, not even to look for BTF. */
	if (env.manifest)
		return !handle_describe(def);
	opts->btf_custom_path = btf_path(def);
	return !handle_describe(def);
}

int probe_open_failed(const struct probe_def *def)
{
	fprintf(stderr, "%s: failed to open BPF object: %s\n", def->name, strerror(errno));
	return EXIT_RUNTIME;
}

/* ---------------------------------------------------------------- prepare */

/* Writes a global of .rodata by name, found through the object's BTF. */
static int rodata_set(struct bpf_object *obj, const char *var, const void *val, size_t size)
{
	struct bpf_map *map = NULL, *m;
	const struct btf_var_secinfo *vs;
	const struct btf_type *sec;
	struct btf *btf = bpf_object__btf(obj);
	size_t data_sz;
	char *data;
	int id;

	bpf_object__for_each_map(m, obj)
		if (strstr(bpf_map__name(m), ".rodata"))
			map = m;
	if (!map || !btf)
		return -ENOENT;
	id = btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC);
	if (id < 0)
		return -ENOENT;
	sec = btf__type_by_id(btf, (unsigned)id);
	data = (char *)bpf_map__initial_value(map, &data_sz);
	vs = btf_var_secinfos(sec);
	for (unsigned i = 0; i < btf_vlen(sec); i++, vs++) {
		const struct btf_type *t = btf__type_by_id(btf, vs->type);

		if (strcmp(btf__name_by_offset(btf, t->name_off), var))
			continue;
		if (vs->size != size || vs->offset + size > data_sz)
			return -EINVAL;
		memcpy(data + vs->offset, val, size);
		return 0;
	}
	return -ENOENT;
}

void probe_prepare(const struct probe_def *def, struct bpf_object *obj)
{
	struct bpf_map *rb = bpf_object__find_map_by_name(obj, "events");
	const char *missing;
	bool on = env.comm_set;
	int err = 0;

	if (rb && bpf_map__set_max_entries(rb, env.ringbuf_kb * 1024))
		die(EXIT_USAGE, "cannot size the ring buffer to %u KiB", env.ringbuf_kb);
	err |= rodata_set(obj, "filter_tgid", &env.pid, sizeof(env.pid));
	err |= rodata_set(obj, "filter_comm_on", &on, sizeof(on));
	err |= rodata_set(obj, "filter_comm", env.comm, sizeof(env.comm));
	err |= rodata_set(obj, "filter_nlports", &env.nlports, sizeof(env.nlports));
	err |= rodata_set(obj, "filter_lports", env.lports, sizeof(env.lports));
	err |= rodata_set(obj, "filter_nrports", &env.nrports, sizeof(env.nrports));
	err |= rodata_set(obj, "filter_rports", env.rports, sizeof(env.rports));
	if (err)
		die(EXIT_RUNTIME, "internal: the BPF object lacks the common filter globals");

	missing = select_hooks(def);
	if (missing)
		unsupported_exit(def, missing);
	for (size_t i = 0; i < def->nhooks; i++) {
		struct bpf_program *p = bpf_object__find_program_by_name(obj, def->hooks[i].prog);

		if (!p)
			die(EXIT_RUNTIME, "internal: no BPF program %s", def->hooks[i].prog);
		bpf_program__set_autoload(p, selected[i]);
	}
}

/* ---------------------------------------------------------------- run */

static void on_signal(int sig)
{
	(void)sig;
	exiting = 1;
}

static int handle_event(void *vctx, void *data, size_t size)
{
	struct probe_ctx *ctx = vctx;
	int err = probe_emit(ctx, data, size);

	return err == -EPIPE ? err : 0;
}

int probe_emit(struct probe_ctx *ctx, const void *rec, size_t size)
{
	int err = output_record(ctx->def, ctx->mode, rec, size);

	if (err == -EINVAL) {
		ctx->lost_user++;	/* short record: layout mismatch, counted */
		return 0;
	}
	if (err) {
		ctx->err = errno == EPIPE ? -EPIPE : err;
		exiting = 1;
		return ctx->err;
	}
	ctx->records++;
	return 0;
}

void probe_count_lost(struct probe_ctx *ctx, uint64_t n)
{
	ctx->lost_user += n;
}

void probe_count_truncated(struct probe_ctx *ctx, uint64_t n)
{
	ctx->truncated += n;
}

void probe_interval_end(struct probe_ctx *ctx)
{
	char buf[128];
	int n;

	ctx->intervals++;
	if (ctx->mode == OUT_MACHINE) {
		n = snprintf(buf, sizeof(buf), "{\"interval\":%" PRIu64 ",\"ts_ns\":%" PRIu64 "}",
			     ctx->intervals, probe_now_ns());
		output_frame(BPFLEET_FRAME_INTERVAL, buf, (uint32_t)n);
	} else if (ctx->mode == OUT_TABLE) {
		putchar('\n');
	}
	fflush(stdout);
}

static void kernel_stats(struct probe_ctx *ctx, uint64_t out[BPFLEET_STAT_MAX])
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t vals[ncpu > 0 ? ncpu : 1];

	memset(out, 0, sizeof(uint64_t) * BPFLEET_STAT_MAX);
	if (ctx->stats_fd < 0 || ncpu <= 0)
		return;
	for (uint32_t k = 0; k < BPFLEET_STAT_MAX; k++) {
		if (bpf_map_lookup_elem(ctx->stats_fd, &k, vals))
			continue;
		for (int c = 0; c < ncpu; c++)
			out[k] += vals[c];
	}
}

static int stats_json(struct probe_ctx *ctx, char *buf, size_t len)
{
	uint64_t k[BPFLEET_STAT_MAX];

	kernel_stats(ctx, k);
	return snprintf(buf, len,
			"{\"ts_ns\":%" PRIu64 ",\"records\":%" PRIu64 ",\"intervals\":%" PRIu64 ","
			"\"kernel\":{\"ringbuf_full\":%" PRIu64 ",\"map_full\":%" PRIu64
			",\"sampled_out\":%" PRIu64 ",\"read_failed\":%" PRIu64 "},"
			"\"loader\":{\"lost\":%" PRIu64 ",\"truncated\":%" PRIu64 "}}",
			probe_now_ns(), ctx->records, ctx->intervals, k[BPFLEET_STAT_RINGBUF_FULL],
			k[BPFLEET_STAT_MAP_FULL], k[BPFLEET_STAT_SAMPLED_OUT], k[BPFLEET_STAT_READ_FAILED],
			ctx->lost_user, ctx->truncated);
}

static void emit_stats(struct probe_ctx *ctx)
{
	char buf[512];
	int n = stats_json(ctx, buf, sizeof(buf));

	output_frame(BPFLEET_FRAME_STATS, buf, (uint32_t)n);
	fflush(stdout);
}

/* Hello: what was loaded, from which hooks, with which BTF, and what it cost the verifier. */
static void emit_hello(const struct probe_def *def, struct bpf_object *obj)
{
	char buf[4096];
	struct utsname u;
	struct bpf_program *p;
	size_t o;

	uname(&u);
	o = (size_t)snprintf(buf, sizeof(buf),
			     "{\"probe\":\"%s\",\"version\":\"%s\",\"record_size\":%zu,\"kernel\":\"%s\","
			     "\"machine\":\"%s\",\"btf_source\":\"%s\",\"clock_offset_ns\":%" PRId64
			     ",\"programs\":[",
			     def->name, def->version, def->record_size, u.release, u.machine, btf_source,
			     (int64_t)(realtime_ns() - probe_now_ns()));
	bool first = true;

	bpf_object__for_each_program(p, obj) {
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);
		const char *kind = "?", *target = "?";

		if (!bpf_program__autoload(p) || o >= sizeof(buf) - 256)
			continue;
		for (size_t i = 0; i < def->nhooks; i++)
			if (!strcmp(def->hooks[i].prog, bpf_program__name(p))) {
				kind = hook_kind_name(def->hooks[i].kind);
				target = def->hooks[i].target;
			}
		bpf_obj_get_info_by_fd(bpf_program__fd(p), &info, &len);
		o += (size_t)snprintf(buf + o, sizeof(buf) - o,
				      "%s{\"name\":\"%s\",\"kind\":\"%s\",\"target\":\"%s\","
				      "\"xlated_insns\":%u,\"verified_insns\":%u,\"jited\":%s}",
				      first ? "" : ",", bpf_program__name(p), kind, target,
				      info.xlated_prog_len / 8, info.verified_insns,
				      info.jited_prog_len ? "true" : "false");
		first = false;
	}
	o += (size_t)snprintf(buf + o, sizeof(buf) - o, "]");
	if (def->hello && o < sizeof(buf) - 2)
		o += (size_t)def->hello(buf + o, sizeof(buf) - 2 - o);
	o += (size_t)snprintf(buf + o, sizeof(buf) - o, "}");
	if (env.machine) {
		output_frame(BPFLEET_FRAME_HELLO, buf, (uint32_t)o);
		fflush(stdout);
	} else if (env.verbose) {
		fprintf(stderr, "%s: %s\n", def->name, buf);
	}
}

static void describe_selected(const struct probe_def *def, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = 0;
	for (size_t i = 0; i < def->nhooks && o < len; i++)
		if (selected[i])
			o += (size_t)snprintf(buf + o, len - o, "%s%s:%s", o ? ", " : "",
					      hook_kind_name(def->hooks[i].kind), def->hooks[i].target);
}

static int load_error(const struct probe_def *def, int err)
{
	if (err == -EPERM || err == -EACCES) {
		if (geteuid() != 0)
			die(EXIT_PERM, "failed to load BPF programs: %s: run as root "
			    "(or grant CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN)", strerror(-err));
		die(EXIT_LOAD, "failed to load BPF programs: %s: the verifier rejected a program "
		    "(log above; rerun with -v for libbpf's full log)", strerror(-err));
	}
	die(EXIT_LOAD, "failed to load BPF programs: %s (log above; rerun with -v)", strerror(-err));
	(void)def;
	return EXIT_LOAD;
}

int probe_run(const struct probe_def *def, struct bpf_object *obj)
{
	struct probe_ctx ctx = { .def = def, .stats_fd = -1 };
	struct ring_buffer *rb = NULL;
	struct bpf_program *p;
	struct bpf_map *events, *stats;
	uint64_t start, next_interval, next_stats, deadline = 0;
	char hooks[512], sbuf[512];
	static char outbuf[1 << 16];
	int err;

	ctx.mode = env.machine ? OUT_MACHINE : env.json ? OUT_JSON : OUT_TABLE;
	setvbuf(stdout, outbuf, _IOFBF, sizeof(outbuf));
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	err = bpf_object__load(obj);
	if (err)
		return load_error(def, err);

	bpf_object__for_each_program(p, obj) {
		struct bpf_link *link;
		bool custom = false;

		if (!bpf_program__autoload(p))
			continue;
		for (size_t i = 0; i < def->nhooks; i++)
			if ((def->hooks[i].kind == HOOK_XDP || def->hooks[i].kind == HOOK_PERF_EVENT ||
			     def->hooks[i].kind == HOOK_UPROBE) &&
			    !strcmp(def->hooks[i].prog, bpf_program__name(p))) {
				if (!def->attach)
					die(EXIT_RUNTIME, "internal: %s has no attach for %s",
					    def->name, bpf_program__name(p));
				err = def->attach(p, &def->hooks[i]);
				if (err)
					exit(err);
				custom = true;
			}
		if (custom)
			continue;
		link = bpf_program__attach(p);
		if (!link) {
			err = -errno;
			die(err == -EPERM ? EXIT_PERM : EXIT_ATTACH, "failed to attach %s: %s",
			    bpf_program__name(p), strerror(-err));
		}
		/* Links live until exit; the kernel detaches them when the process goes. */
	}

	stats = bpf_object__find_map_by_name(obj, "bpfleet_stats");
	ctx.stats_fd = stats ? bpf_map__fd(stats) : -1;
	events = bpf_object__find_map_by_name(obj, "events");
	if (events && !def->on_interval) {
		rb = ring_buffer__new(bpf_map__fd(events), handle_event, &ctx, NULL);
		if (!rb)
			die(EXIT_RUNTIME, "failed to create ring buffer: %s", strerror(errno));
	}

	emit_hello(def, obj);
	if (ctx.mode == OUT_TABLE)
		output_table_header(def);
	fflush(stdout);
	describe_selected(def, hooks, sizeof(hooks));
	fprintf(stderr, "%s: ready (hooks: %s; btf: %s)\n", def->name, hooks, btf_source);

	start = probe_now_ns();
	next_interval = start + (uint64_t)env.interval_ms * 1000000ull;
	next_stats = start + (uint64_t)env.stats_interval_ms * 1000000ull;
	if (env.duration_s)
		deadline = start + (uint64_t)env.duration_s * 1000000000ull;

	while (!exiting) {
		uint64_t now = probe_now_ns(), until = next_stats;
		int timeout;

		if (def->on_interval && next_interval < until)
			until = next_interval;
		if (deadline && deadline < until)
			until = deadline;
		timeout = until > now ? (int)((until - now) / 1000000ull) : 0;
		if (timeout > 100)
			timeout = 100;
		if (rb) {
			err = ring_buffer__poll(rb, timeout);
			if (err < 0 && err != -EINTR) {
				fprintf(stderr, "%s: ring buffer poll failed: %s\n", def->name, strerror(-err));
				ctx.err = err;
				break;
			}
			/* Records are flowing: let a few more arrive and write them in one go. At 20k
			 * events/s this turns ~4 records per write(2) into ~100, which is most of the
			 * loader's CPU and the reader's wakeups (docs/BENCHMARKS.md). */
			if (err > 0 && env.linger_ms > 0) {
				usleep((useconds_t)env.linger_ms * 1000);
				ring_buffer__consume(rb);
			}
		} else {
			usleep((useconds_t)timeout * 1000);
		}
		fflush(stdout);
		now = probe_now_ns();
		if (def->on_interval && now >= next_interval) {
			if (def->on_interval(&ctx, obj) < 0) {
				fprintf(stderr, "%s: reading the interval's maps failed; stopping\n", def->name);
				ctx.err = -EIO;
				break;
			}
			probe_interval_end(&ctx);
			next_interval += (uint64_t)env.interval_ms * 1000000ull;
		}
		if (env.machine && now >= next_stats) {
			emit_stats(&ctx);
			next_stats = now + (uint64_t)env.stats_interval_ms * 1000000ull;
		} else if (now >= next_stats) {
			next_stats = now + (uint64_t)env.stats_interval_ms * 1000000ull;
		}
		if (deadline && now >= deadline)
			break;
		if (ferror(stdout)) {
			ctx.err = -EPIPE;
			break;
		}
	}

	/* Drain what the kernel already produced before reporting. */
	if (rb && ctx.err != -EPIPE)
		ring_buffer__consume(rb);
	if (def->on_interval && ctx.err != -EPIPE) {
		def->on_interval(&ctx, obj);
		probe_interval_end(&ctx);
	}
	if (env.machine && ctx.err != -EPIPE)
		emit_stats(&ctx);
	fflush(stdout);
	stats_json(&ctx, sbuf, sizeof(sbuf));
	fprintf(stderr, "%s: stats %s\n", def->name, sbuf);
	ring_buffer__free(rb);
	if (ctx.err == -EPIPE) {
		fprintf(stderr, "%s: stdout closed by the reader; stopping\n", def->name);
		return EXIT_RUNTIME;
	}
	return ctx.err ? EXIT_RUNTIME : EXIT_OK;
}
