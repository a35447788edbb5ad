// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * memleak loader: see memleak.bpf.c and bpf/README.md for the contract.
 *
 * User mode (--pid, no --kernel): attaches the uprobes to --pid and to the C library it maps
 * (the executable itself when it is static). Kernel mode (--kernel): the kmem tracepoints,
 * every process or those of --pid / --comm (the allocating task); the record's stack is then
 * the kernel stack of the allocation. Every interval it reads the live allocations, keeps those at least --min-age-ms
 * old, sums them by (process, thread name, stack), folds the stacks (symbolized on the
 * device, lib/stacks.h) and emits one record each, most bytes first. Stacks no allocation
 * refers to any more are freed once the stack map is half full.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <linux/types.h>
#include <bpf/bpf.h>
#include "probe.h"
#include "stacks.h"
#include "memleak.h"
#include "memleak.skel.h"

#define EV struct memleak_event
static const struct probe_field fields[] = {
	FIELD(EV, ts_ns, FT_U64, FMT_KTIME_NS, "ns", 0, "monotonic time of the check"),
	FIELD(EV, pid, FT_U32, FMT_PLAIN, "", 7, "process (tgid)"),
	FIELD(EV, comm, FT_COMM, FMT_PLAIN, "", 16, "thread name at the allocations"),
	FIELD(EV, value, FT_U64, FMT_PLAIN, "bytes", 12, "bytes still allocated from this stack, of allocations at least --min-age-ms old"),
	FIELD(EV, count, FT_U64, FMT_PLAIN, "allocations", 8, "those allocations"),
	FIELD(EV, stack, FT_STR, FMT_PLAIN, "", 1, "folded user stack of the allocation's caller (--kernel: kernel stack of the allocation), root first; ends in ;… when cut"),
};

static const struct probe_hook hooks[] = {
	{ "alloc", "memleak_malloc", HOOK_UPROBE, "libc:malloc" },
	{ "alloc", "memleak_malloc_ret", HOOK_UPROBE, "libc:malloc" },
	{ "alloc", "memleak_calloc", HOOK_UPROBE, "libc:calloc" },
	{ "alloc", "memleak_calloc_ret", HOOK_UPROBE, "libc:calloc" },
	{ "alloc", "memleak_realloc", HOOK_UPROBE, "libc:realloc" },
	{ "alloc", "memleak_realloc_ret", HOOK_UPROBE, "libc:realloc" },
	{ "alloc", "memleak_free", HOOK_UPROBE, "libc:free" },
	/* --kernel, hooks[NUSER..]: the kmem tracepoints; the *_node events exist before 6.1 only. */
	{ "kmalloc", "memleak_kmalloc", HOOK_TRACEPOINT, "kmem/kmalloc" },
	{ "kmalloc", "memleak_kmalloc_node", HOOK_TRACEPOINT, "kmem/kmalloc_node" },
	{ "kmem_cache_alloc", "memleak_kmem_cache_alloc", HOOK_TRACEPOINT, "kmem/kmem_cache_alloc" },
	{ "kmem_cache_alloc", "memleak_kmem_cache_alloc_node", HOOK_TRACEPOINT, "kmem/kmem_cache_alloc_node" },
	{ "kfree", "memleak_kfree", HOOK_TRACEPOINT, "kmem/kfree" },
	{ "kmem_cache_free", "memleak_kmem_cache_free", HOOK_TRACEPOINT, "kmem/kmem_cache_free" },
};
#define NUSER 7	/* hooks[0..NUSER) user mode, the rest --kernel */

static const struct probe_arg args[] = {
	{ "min-age-ms", "MS", "report allocations at least MS milliseconds old (default 500)" },
	{ "libc", "PATH", "the C library to probe (default: the libc.so the process maps, else its executable)" },
	{ "kernel", NULL, "kernel allocations instead (kmem tracepoints: kmalloc, kmem_cache_alloc, kfree, kmem_cache_free), "
			  "by kernel stack, of every process or of --pid / --comm (the allocating task)" },
	{ "sample-rate", "N", "--kernel: record about one allocation in N, counted as sampled_out (default 1: all); "
			      "value and count are then of the sampled allocations only" },
	{ "max-allocs", "N", "live allocations the probe can hold (default 65536, about 100 bytes of kernel memory each); "
			     "those past it are counted as map_full. --kernel without --pid on a busy machine needs more" },
};

static unsigned long long min_age_ms = 500;
static const char *libc_path;
static bool kernel_mode;
static unsigned long sample_rate = 1;
static unsigned long max_allocs;	/* 0: the map's own size */
static char libc_buf[PATH_MAX + 64];

static int parse_arg(const char *name, const char *value)
{
	char *end;

	if (!strcmp(name, "libc")) {
		libc_path = value;
		return 0;
	}
	if (!strcmp(name, "kernel")) {
		kernel_mode = true;
		return 0;
	}
	if (!strcmp(name, "sample-rate")) {
		errno = 0;
		sample_rate = strtoul(value, &end, 10);
		return errno || end == value || *end || *value == '-' || !sample_rate || sample_rate > 1000000 ? -1 : 0;
	}
	if (!strcmp(name, "max-allocs")) {
		errno = 0;
		max_allocs = strtoul(value, &end, 10);
		return errno || end == value || *end || *value == '-' || max_allocs < 1024 || max_allocs > (1ul << 24) ? -1 : 0;
	}
	if (strcmp(name, "min-age-ms"))
		return -1;
	errno = 0;
	min_age_ms = strtoull(value, &end, 10);
	return errno || end == value || *end || *value == '-' || min_age_ms > 86400000ull ? -1 : 0;
}

/* The libc.so mapped by env.pid, through /proc/PID/root; else the executable (static). */
static const char *find_libc(void)
{
	char maps[64], line[PATH_MAX + 128];
	FILE *f;

	snprintf(maps, sizeof(maps), "/proc/%u/maps", env.pid);
	f = fopen(maps, "re");
	if (!f)
		return NULL;
	while (fgets(line, sizeof(line), f)) {
		char *path = strchr(line, '/'), *nl;

		if (!path || !strstr(path, "/libc"))
			continue;
		if (!strstr(path, "libc.so") && !strstr(path, "libc-"))
			continue;
		nl = strchr(path, '\n');
		if (nl)
			*nl = 0;
		snprintf(libc_buf, sizeof(libc_buf), "/proc/%u/root%s", env.pid, path);
		fclose(f);
		return libc_buf;
	}
	fclose(f);
	snprintf(libc_buf, sizeof(libc_buf), "/proc/%u/exe", env.pid);
	return libc_buf;
}

static int attach(struct bpf_program *prog, const struct probe_hook *hook)
{
	LIBBPF_OPTS(bpf_uprobe_opts, uo);
	const char *func = strchr(hook->target, ':') + 1;

	uo.func_name = func;
	uo.retprobe = !strncmp(bpf_program__section_name(prog), "uretprobe", 9);
	if (!bpf_program__attach_uprobe_opts(prog, (pid_t)env.pid, libc_path, 0, &uo)) {
		int err = errno;
		struct utsname u;

		uname(&u);
		/* 32-bit ARM uprobes decode ARM-mode instructions only; libc there is Thumb-2. */
		if (err == EINVAL && !strncmp(u.machine, "arm", 3)) {
			fprintf(stderr, "memleak: unsupported on this kernel (%s %s): needs uprobes on Thumb-2 "
				"code, which 32-bit ARM kernels do not place (%s in %s is Thumb)\n",
				u.release, u.machine, func, libc_path);
			return EXIT_UNSUPPORTED;
		}
		fprintf(stderr, "memleak: failed to attach %s to %s in %s (pid %u): %s\n",
			bpf_program__name(prog), func, libc_path, env.pid, strerror(err));
		return err == EPERM || err == EACCES ? EXIT_PERM : EXIT_ATTACH;
	}
	return 0;
}

struct live {
	__u32 pid;
	__u64 ustack;
	__u64 kstack;
	char comm[16];
	__u64 size;
};

static int by_group(const void *x, const void *y)
{
	const struct live *a = x, *b = y;
	int c;

	if (a->pid != b->pid)
		return a->pid < b->pid ? -1 : 1;
	if (a->ustack != b->ustack)
		return a->ustack < b->ustack ? -1 : 1;
	if (a->kstack != b->kstack)
		return a->kstack < b->kstack ? -1 : 1;
	c = memcmp(a->comm, b->comm, sizeof(a->comm));
	return c;
}

static struct stack_agg agg = STACK_AGG_INIT;
static struct stack_out out = { .rec_size = sizeof(EV), .value_off = offsetof(EV, value),
				.has_count = true, .count_off = offsetof(EV, count) };
static int allocs_fd = -1;
static struct live *lives;
static size_t caplives;

/* Keeps one live allocation if it is old enough (and its stacks in any case). */
static int take(const struct memleak_alloc *a, __u64 now, __u64 min_ns, size_t *n)
{
	stack_agg_keep(&agg, a->ustack);
	stack_agg_keep(&agg, a->kstack);
	if (now < a->ts || now - a->ts < min_ns)
		return 0;
	if (*n == caplives) {
		size_t cap = caplives ? caplives * 2 : 1024;
		struct live *l = realloc(lives, cap * sizeof(*l));

		if (!l)
			return -1;
		lives = l;
		caplives = cap;
	}
	lives[*n] = (struct live){ .pid = a->pid, .ustack = a->ustack, .kstack = a->kstack, .size = a->size };
	memcpy(lives[*n].comm, a->comm, sizeof(lives[*n].comm));
	(*n)++;
	return 0;
}

#define BATCH 4096
static __u64 bkeys[BATCH];
static struct memleak_alloc bvals[BATCH];

/*
 * Every live allocation, once. A batch lookup walks the hash table bucket by bucket, so
 * entries deleted meanwhile (frees, thousands a second in --kernel mode) cannot make it
 * restart; bpf_map_get_next_key() restarts from the first bucket when the key it was given
 * has gone, and then returns entries twice (seen here: 238 of 200 pipes). Kernels before 5.6
 * have no batch operations: the key walk then, with the duplicates it may bring.
 */
static int walk(__u64 now, __u64 min_ns, size_t *n)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bo);
	__u64 addr, *prev = NULL;
	__u32 token = 0, count;
	struct memleak_alloc a;
	bool first = true;
	int err;

	for (;;) {
		count = BATCH;
		err = bpf_map_lookup_batch(allocs_fd, first ? NULL : &token, &token, bkeys, bvals, &count, &bo);
		if (err && errno != ENOENT) {
			if (first && (errno == EINVAL || errno == ENOTSUP || errno == 524 /* ENOTSUPP */))
				break;	/* no batch operations: the key walk below */
			fprintf(stderr, "memleak: reading the allocations failed: %s\n", strerror(errno));
			return -1;
		}
		first = false;
		for (__u32 i = 0; i < count; i++)
			if (take(&bvals[i], now, min_ns, n))
				return -1;
		if (err)	/* ENOENT: the last bucket was read */
			return 0;
	}
	while (!bpf_map_get_next_key(allocs_fd, prev, &addr)) {
		prev = &addr;
		if (bpf_map_lookup_elem(allocs_fd, &addr, &a))
			continue;	/* freed meanwhile */
		if (take(&a, now, min_ns, n))
			return -1;
	}
	return 0;
}

static int on_interval(struct probe_ctx *ctx, struct bpf_object *obj)
{
	__u64 now, min_ns = min_age_ms * 1000000ull;
	size_t n = 0;

	if (agg.slot_fd < 0) {
		if (stack_agg_setup(&agg, obj, "memleak", sizeof(struct memleak_key)))
			return -1;
		allocs_fd = bpf_map__fd(bpf_object__find_map_by_name(obj, "allocs"));
	}
	if (stack_agg_flip(&agg))
		return -1;
	now = probe_now_ns();
	if (walk(now, min_ns, &n))
		return -1;
	qsort(lives, n, sizeof(*lives), by_group);
	for (size_t i = 0, j; i < n; i = j) {
		__u64 bytes = 0, count = 0;
		EV *r;

		for (j = i; j < n && !by_group(&lives[i], &lives[j]); j++) {
			bytes += lives[j].size;
			count++;
		}
		r = stack_out_next(&out);
		if (!r)
			return -1;
		r->ts_ns = now;
		r->pid = lives[i].pid;
		memcpy(r->comm, lives[i].comm, sizeof(r->comm));
		stack_agg_fill(&agg, ctx, lives[i].pid, lives[i].ustack, lives[i].kstack, r->stack, sizeof(r->stack));
		if (stack_out_add2(&out, bytes, count))
			return -1;
	}
	stack_agg_clear(&agg);
	return stack_out_emit(&out, ctx);
}

/*
 * Smoke test (bpf/README.md, "Smoke tests"): kernel mode, which every board can run (user mode's
 * uprobes fail on 32-bit ARM's Thumb-2 libc). open_files: {pid} opens {files} files and holds
 * them, one struct file each from one stack.
 */
static const char *const smoke_args[] = {
	"--kernel", "--pid", "{pid}", "--min-age-ms", "100", "--interval", "200", NULL
};
static const struct probe_smoke_expect smoke_expect[] = {
	{ "pid", "eq", "{pid}" },
	{ "count", "ge", "{files}" },
};
static const struct probe_smoke smoke = {
	.trigger = "open_files",
	.args = smoke_args,
	.expect = smoke_expect,
	.nexpect = sizeof(smoke_expect) / sizeof(smoke_expect[0]),
	.description = "{files} kernel allocations of {pid} from one stack, held while it keeps {files} files open",
};

static const struct probe_def def = {
	.name = "memleak",
	.version = "1.0.0",
	.summary = "Outstanding allocations by stack with an age filter: malloc/calloc/realloc of one process (uprobes on its libc), or kernel kmalloc/kmem_cache_alloc (--kernel, kmem tracepoints)",
	.kind = "interval",
	.record = "memleak_event",
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

/* Checks the options of the chosen mode; user mode: finds the C library. 0 or an exit code. */
static int check_mode(void)
{
	if (kernel_mode) {
		if (libc_path) {
			fprintf(stderr, "memleak: --libc is for user mode, not with --kernel\n");
			return EXIT_USAGE;
		}
		return 0;
	}
	if (sample_rate != 1) {
		fprintf(stderr, "memleak: --sample-rate is for --kernel\n");
		return EXIT_USAGE;
	}
	if (!env.pid) {
		fprintf(stderr, "memleak: --pid PID is required: the uprobes go into one process's C library "
			"(or --kernel for kernel allocations)\n");
		return EXIT_USAGE;
	}
	if (!libc_path)
		libc_path = find_libc();
	if (!libc_path) {
		fprintf(stderr, "memleak: cannot read /proc/%u/maps: %s (is the process running?)\n",
			env.pid, strerror(errno));
		return EXIT_USAGE;
	}
	return 0;
}

int main(int argc, char **argv)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts);
	struct memleak_bpf *skel;
	struct probe_def run = def;
	int err;

	if (!probe_init(&def, argc, argv, &opts))
		return EXIT_OK;
	err = check_mode();
	if (err)
		return err;
	/* The mode's hooks only: probe_prepare selects among them; the others are not loaded. */
	run.hooks = kernel_mode ? hooks + NUSER : hooks;
	run.nhooks = kernel_mode ? def.nhooks - NUSER : NUSER;
	skel = memleak_bpf__open_opts(&opts);
	if (!skel)
		return probe_open_failed(&def);
	for (size_t i = 0; i < def.nhooks; i++)
		if ((i < NUSER) == kernel_mode)
			bpf_program__set_autoload(bpf_object__find_program_by_name(skel->obj, hooks[i].prog), false);
	skel->rodata->sample_rate = (__u32)sample_rate;
	if (max_allocs && bpf_map__set_max_entries(skel->maps.allocs, (__u32)max_allocs)) {
		fprintf(stderr, "memleak: cannot size the allocation table to %lu entries\n", max_allocs);
		memleak_bpf__destroy(skel);
		return EXIT_RUNTIME;
	}
	probe_prepare(&run, skel->obj);
	err = probe_run(&run, skel->obj);
	if (agg.slot_fd >= 0)
		stack_agg_report(&agg);
	memleak_bpf__destroy(skel);
	return err;
}
