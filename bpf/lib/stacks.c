// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Stack maps and on-device symbolization for the stack probes; see stacks.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/perf_event.h>
#include <gelf.h>
#include <libelf.h>
#include <bpf/bpf.h>
#include "probe.h"
#include "stacks.h"

/* ---------------------------------------------------------------- symbol tables */

struct sym {
	uint64_t addr;
	uint64_t size;		/* 0: unknown (kallsyms, some assembly symbols) */
	const char *name;
};

struct symtab {
	struct sym *syms;
	size_t n, cap;
	char *pool;		/* names */
	size_t pool_len, pool_cap;
};

static int symtab_add(struct symtab *t, uint64_t addr, uint64_t size, const char *name)
{
	size_t len = strlen(name) + 1;

	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 1024;
		struct sym *s = realloc(t->syms, cap * sizeof(*s));

		if (!s)
			return -1;
		t->syms = s;
		t->cap = cap;
	}
	if (t->pool_len + len > t->pool_cap) {
		size_t cap = t->pool_cap ? t->pool_cap * 2 : 16384;
		char *p;

		while (cap < t->pool_len + len)
			cap *= 2;
		p = realloc(t->pool, cap);
		if (!p)
			return -1;
		t->pool = p;
		t->pool_cap = cap;
	}
	memcpy(t->pool + t->pool_len, name, len);
	/* Names are pool offsets until symtab_finish(): the pool moves while it grows. */
	t->syms[t->n++] = (struct sym){ addr, size, (const char *)(uintptr_t)t->pool_len };
	t->pool_len += len;
	return 0;
}

static int by_addr(const void *a, const void *b)
{
	const struct sym *x = a, *y = b;

	if (x->addr != y->addr)
		return x->addr < y->addr ? -1 : 1;
	/* Same address: the sized one first (a function over its 0-sized alias). */
	return (x->size < y->size) - (x->size > y->size);
}

static void symtab_finish(struct symtab *t)
{
	for (size_t i = 0; i < t->n; i++)
		t->syms[i].name = t->pool + (uintptr_t)t->syms[i].name;
	qsort(t->syms, t->n, sizeof(*t->syms), by_addr);
}

static void symtab_free(struct symtab *t)
{
	free(t->syms);
	free(t->pool);
	memset(t, 0, sizeof(*t));
}

/* The symbol at or below addr; with a known size, addr must fall inside it. */
static const struct sym *symtab_find(const struct symtab *t, uint64_t addr)
{
	size_t lo = 0, hi = t->n;
	const struct sym *s;
	size_t i;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->syms[mid].addr <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo)
		return NULL;
	/* Several symbols may start at this address; by_addr put the sized one first. */
	for (i = lo - 1; i > 0 && t->syms[i - 1].addr == t->syms[i].addr; i--)
		;
	s = &t->syms[i];
	if (s->size && addr >= s->addr + s->size)
		return NULL;
	return s;
}

/* ---------------------------------------------------------------- kernel */

static struct symtab ksyms;
static int ksyms_state;		/* 0: not loaded, 1: loaded, -1: unavailable */
static uint64_t ksyms_ns;

static void ksyms_load(void)
{
	uint64_t t0 = probe_now_ns();
	FILE *f = fopen("/proc/kallsyms", "re");
	char line[512], type;
	unsigned long long addr;
	bool nonzero = false;

	ksyms_state = -1;
	if (!f) {
		fprintf(stderr, "stacks: cannot read /proc/kallsyms (%s): kernel frames stay hex\n",
			strerror(errno));
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		/* "ffffffff81000000 T _stext [module]": parsed by hand, sscanf is slow here. */
		char *p = line, *end, *n;

		addr = strtoull(p, &end, 16);
		if (end == p || end[0] != ' ' || !end[1] || end[2] != ' ')
			continue;
		type = end[1];
		if (type != 't' && type != 'T' && type != 'w' && type != 'W')
			continue;
		n = end + 3;
		n[strcspn(n, " \t\n")] = 0;
		nonzero |= addr != 0;
		if (symtab_add(&ksyms, addr, 0, n))
			break;
	}
	fclose(f);
	if (!nonzero) {
		fprintf(stderr, "stacks: /proc/kallsyms shows no addresses (kernel.kptr_restrict, or not "
			"root): kernel frames stay hex\n");
		symtab_free(&ksyms);
		return;
	}
	symtab_finish(&ksyms);
	ksyms_state = 1;
	ksyms_ns = probe_now_ns() - t0;
}

const char *stacks_ksym(uint64_t ip)
{
	const struct sym *s;

	if (!ksyms_state)
		ksyms_load();
	if (ksyms_state < 0)
		return NULL;
	s = symtab_find(&ksyms, ip);
	return s ? s->name : NULL;
}

/* ---------------------------------------------------------------- ELF files */

struct seg {
	uint64_t off, vaddr, filesz;
};

struct elf_file {
	uint64_t dev, ino;
	bool ok;		/* symbols read (maybe none) */
	struct symtab syms;
	struct seg *segs;
	size_t nsegs;
};

#define MAX_ELF_FILES 512
static struct elf_file *elfs;
static size_t nelfs;
static uint64_t elf_loaded, elf_ns;

static void elf_file_free(struct elf_file *e)
{
	symtab_free(&e->syms);
	free(e->segs);
}

static void elf_read_syms(Elf *elf, struct elf_file *e, bool arm)
{
	Elf_Scn *scn = NULL;
	GElf_Shdr sh;
	size_t have_symtab = 0;

	/* .symtab when present (it includes static functions), else .dynsym. */
	while ((scn = elf_nextscn(elf, scn)))
		if (gelf_getshdr(scn, &sh) && sh.sh_type == SHT_SYMTAB)
			have_symtab = 1;
	scn = NULL;
	while ((scn = elf_nextscn(elf, scn))) {
		Elf_Data *data;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != (have_symtab ? SHT_SYMTAB : SHT_DYNSYM))
			continue;
		data = elf_getdata(scn, NULL);
		if (!data || !sh.sh_entsize)
			continue;
		for (size_t i = 0; i < sh.sh_size / sh.sh_entsize; i++) {
			GElf_Sym s;
			const char *n;
			uint64_t addr;

			if (!gelf_getsym(data, (int)i, &s))
				break;
			if ((GELF_ST_TYPE(s.st_info) != STT_FUNC && GELF_ST_TYPE(s.st_info) != STT_GNU_IFUNC) ||
			    s.st_shndx == SHN_UNDEF || !s.st_value)
				continue;
			n = elf_strptr(elf, sh.sh_link, s.st_name);
			if (!n || !*n)
				continue;
			addr = s.st_value;
			if (arm)
				addr &= ~1ull;	/* Thumb functions have the low bit set */
			if (symtab_add(&e->syms, addr, s.st_size, n))
				return;
		}
	}
}

static void elf_load(struct elf_file *e, int fd)
{
	uint64_t t0 = probe_now_ns();
	size_t nph = 0;
	GElf_Ehdr eh;
	Elf *elf;

	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!elf)
		return;
	if (!gelf_getehdr(elf, &eh) || elf_getphdrnum(elf, &nph))
		goto out;
	e->segs = calloc(nph ? nph : 1, sizeof(*e->segs));
	if (!e->segs)
		goto out;
	for (size_t i = 0; i < nph; i++) {
		GElf_Phdr ph;

		if (gelf_getphdr(elf, (int)i, &ph) && ph.p_type == PT_LOAD && (ph.p_flags & PF_X))
			e->segs[e->nsegs++] = (struct seg){ ph.p_offset, ph.p_vaddr, ph.p_filesz };
	}
	elf_read_syms(elf, e, eh.e_machine == EM_ARM);
	symtab_finish(&e->syms);
	e->ok = true;
	elf_loaded++;
out:
	elf_end(elf);
	elf_ns += probe_now_ns() - t0;
}

/* The cached ELF file of a mapping; opens it on first use. NULL when it cannot be read. */
static struct elf_file *elf_get(uint32_t pid, uint64_t dev, uint64_t ino, uint64_t start,
				uint64_t end, const char *path)
{
	char p[4096 + 64];
	struct elf_file *e;
	int fd;

	for (size_t i = 0; i < nelfs; i++)
		if (elfs[i].dev == dev && elfs[i].ino == ino)
			return elfs[i].ok ? &elfs[i] : NULL;
	if (!elfs) {
		elfs = calloc(MAX_ELF_FILES, sizeof(*elfs));
		if (!elfs)
			return NULL;
		elf_version(EV_CURRENT);
	}
	if (nelfs == MAX_ELF_FILES) {	/* many files: start over rather than grow without end */
		for (size_t i = 0; i < nelfs; i++)
			elf_file_free(&elfs[i]);
		memset(elfs, 0, nelfs * sizeof(*elfs));
		nelfs = 0;
	}
	e = &elfs[nelfs++];
	e->dev = dev;
	e->ino = ino;
	/* map_files reaches the very file mapped (other mount namespaces, deleted files). */
	snprintf(p, sizeof(p), "/proc/%u/map_files/%" PRIx64 "-%" PRIx64, pid, start, end);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(p, sizeof(p), "/proc/%u/root%s", pid, path);
		fd = open(p, O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0)
		return NULL;
	elf_load(e, fd);
	close(fd);
	return e->ok ? e : NULL;
}

/* ---------------------------------------------------------------- processes */

struct vma {
	uint64_t start, end, off, dev, ino;
	char *path;
};

struct proc_maps {
	uint32_t pid;
	bool ok;
	bool stale;		/* read in an earlier interval: re-read before use */
	bool used;		/* looked up since the last stacks_forget_pids() */
	struct vma *vmas;
	size_t n;
};

static struct proc_maps *procs;
static size_t nprocs, capprocs;

static void maps_free(struct proc_maps *pm)
{
	for (size_t j = 0; j < pm->n; j++)
		free(pm->vmas[j].path);
	free(pm->vmas);
	pm->vmas = NULL;
	pm->n = 0;
}

/*
 * Processes map and unmap files between intervals: the maps read are re-read before their
 * next use. Those not used in the last interval are dropped; a process that exited keeps the
 * maps last read, so its final samples are still named.
 */
void stacks_forget_pids(void)
{
	size_t n = 0;

	for (size_t i = 0; i < nprocs; i++) {
		if (!procs[i].used) {
			maps_free(&procs[i]);
			continue;
		}
		procs[i].used = false;
		procs[i].stale = true;
		procs[n++] = procs[i];
	}
	nprocs = n;
}

static void maps_read(struct proc_maps *pm)
{
	char p[64], line[4096 + 128], perms[8];
	unsigned long long start, end, off, ino;
	unsigned int major, minor;
	size_t cap = 0;
	int n;
	FILE *f;

	snprintf(p, sizeof(p), "/proc/%u/maps", pm->pid);
	f = fopen(p, "re");
	if (!f)
		return;	/* gone already: its frames stay hex */
	while (fgets(line, sizeof(line), f)) {
		char *path, *nl;

		if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %n", &start, &end, perms, &off, &major,
			   &minor, &ino, &n) < 7)
			continue;
		path = line + n;
		if (perms[2] != 'x' || path[0] != '/' || !ino)
			continue;
		nl = strchr(path, '\n');
		if (nl)
			*nl = 0;
		if (pm->n == cap) {
			struct vma *v;

			cap = cap ? cap * 2 : 32;
			v = realloc(pm->vmas, cap * sizeof(*v));
			if (!v)
				break;
			pm->vmas = v;
		}
		pm->vmas[pm->n++] = (struct vma){ start, end, off, ((uint64_t)major << 32) | minor, ino,
						  strdup(path) };
	}
	fclose(f);
	pm->ok = true;
}

static struct proc_maps *proc_get(uint32_t pid)
{
	for (size_t i = 0; i < nprocs; i++) {
		struct proc_maps *pm = &procs[i], fresh = { .pid = pid };

		if (pm->pid != pid)
			continue;
		pm->used = true;
		if (pm->stale) {
			pm->stale = false;
			maps_read(&fresh);
			if (fresh.ok) {	/* else gone: keep what it had mapped */
				maps_free(pm);
				pm->vmas = fresh.vmas;
				pm->n = fresh.n;
				pm->ok = true;
			}
		}
		return pm;
	}
	if (nprocs == capprocs) {
		size_t cap = capprocs ? capprocs * 2 : 64;
		struct proc_maps *p = realloc(procs, cap * sizeof(*p));

		if (!p)
			return NULL;
		procs = p;
		capprocs = cap;
	}
	procs[nprocs] = (struct proc_maps){ .pid = pid, .used = true };
	maps_read(&procs[nprocs]);
	return &procs[nprocs++];
}

const char *stacks_usym(uint32_t pid, uint64_t ip)
{
	struct proc_maps *pm = proc_get(pid);

	if (!pm || !pm->ok)
		return NULL;
	for (size_t i = 0; i < pm->n; i++) {
		const struct vma *v = &pm->vmas[i];
		struct elf_file *e;
		uint64_t foff;

		if (ip < v->start || ip >= v->end)
			continue;
		e = elf_get(pid, v->dev, v->ino, v->start, v->end, v->path ? v->path : "");
		if (!e)
			return NULL;
		/* Address -> offset in the file -> the ELF address of the segment holding it. */
		foff = ip - v->start + v->off;
		for (size_t s = 0; s < e->nsegs; s++) {
			const struct seg *g = &e->segs[s];
			const struct sym *sym;

			if (foff < g->off || foff >= g->off + g->filesz)
				continue;
			sym = symtab_find(&e->syms, foff - g->off + g->vaddr);
			return sym ? sym->name : NULL;
		}
		return NULL;
	}
	return NULL;
}

/* ---------------------------------------------------------------- perf events */

int stacks_attach_cpu_clock(struct bpf_program *prog, unsigned long freq, const char *probe)
{
	int ncpu = libbpf_num_possible_cpus(), attached = 0;

	for (int cpu = 0; cpu < ncpu; cpu++) {
		struct perf_event_attr a = {
			.size = sizeof(a),
			.type = PERF_TYPE_SOFTWARE,
			.config = PERF_COUNT_SW_CPU_CLOCK,
			.freq = 1,
			.sample_freq = freq,
		};
		int fd = (int)syscall(__NR_perf_event_open, &a, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);

		if (fd < 0) {
			if (errno == ENODEV)	/* possible but offline CPU */
				continue;
			fprintf(stderr, "%s: failed to open the cpu-clock perf event on cpu %d: %s%s\n",
				probe, cpu, strerror(errno),
				errno == EINVAL ? " (is --freq above /proc/sys/kernel/perf_event_max_sample_rate?)" : "");
			return errno == EACCES || errno == EPERM ? EXIT_PERM : EXIT_ATTACH;
		}
		if (!bpf_program__attach_perf_event(prog, fd)) {
			fprintf(stderr, "%s: failed to attach %s to cpu %d: %s\n",
				probe, bpf_program__name(prog), cpu, strerror(errno));
			close(fd);
			return EXIT_ATTACH;
		}
		attached++;	/* the link owns fd; both live until exit */
	}
	if (!attached) {
		fprintf(stderr, "%s: no online CPU to sample\n", probe);
		return EXIT_ATTACH;
	}
	return 0;
}

/* ---------------------------------------------------------------- folding */

struct fold {
	char *out;
	size_t len, o;
	bool truncated;
};

/* Appends one frame; on overflow ends the text in ";…" (room for it is always kept). */
static void fold_add(struct fold *f, const char *name, const char *suffix)
{
	static const char ell[] = "\xe2\x80\xa6";	/* U+2026 … */
	size_t n = strlen(name) + strlen(suffix) + (f->o ? 1 : 0);
	size_t room = f->len - 1 - (1 + sizeof(ell) - 1);	/* NUL, ';' and … stay free */

	if (f->truncated || f->len < 16)
		return;
	if (f->o + n > room) {
		if (f->o)
			f->out[f->o++] = ';';
		memcpy(f->out + f->o, ell, sizeof(ell) - 1);
		f->o += sizeof(ell) - 1;
		f->out[f->o] = 0;
		f->truncated = true;
		return;
	}
	if (f->o)
		f->out[f->o++] = ';';
	for (const char *c = name; *c; c++)	/* ';' separates frames, so no name holds one */
		f->out[f->o++] = *c == ';' ? ':' : (unsigned char)*c < 0x20 ? '?' : *c;
	memcpy(f->out + f->o, suffix, strlen(suffix));
	f->o += strlen(suffix);
	f->out[f->o] = 0;
}

static bool is_tracing_frame(const char *s)
{
	return s && (!strncmp(s, "bpf_prog_", 9) || !strncmp(s, "bpf_trace_run", 13) ||
		     !strncmp(s, "__bpf_trace_", 12) || !strncmp(s, "__traceiter_", 12));
}

/* Reads stack id into a->ips; returns the frame count, or -1 when it is not in the map. */
static int stack_read(struct stack_agg *a, uint64_t id)
{
	int n = 0;

	memset(a->ips, 0, sizeof(a->ips));
	if (bpf_map_lookup_elem(a->stacks_fd[a->single ? 0 : 1 - a->slot], &id, a->ips))
		return -1;
	while (n < BPFLEET_STACK_DEPTH && a->ips[n])
		n++;
	return n;
}

static bool stack_present(uint64_t id)
{
	return id != BPFLEET_STACK_NONE && id != BPFLEET_STACK_LOST;
}

int stack_agg_fold(struct stack_agg *a, uint32_t pid, uint64_t ustack, uint64_t kstack,
		   char *out, size_t len)
{
	uint64_t t0 = probe_now_ns();
	struct fold f = { out, len, 0, false };
	char hex[32];
	int n, flags = 0;

	out[0] = 0;
	if (stack_present(ustack) && (n = stack_read(a, ustack)) >= 0) {
		for (int i = n - 1; i >= 0; i--) {	/* ips[0] is the leaf */
			const char *s = stacks_usym(pid, a->ips[i]);

			if (!s) {
				snprintf(hex, sizeof(hex), "0x%" PRIx64, a->ips[i]);
				s = hex;
			}
			fold_add(&f, s, "");
		}
	} else if (ustack != BPFLEET_STACK_NONE) {
		fold_add(&f, "[missing user stack]", "");
		flags |= STACK_MISSING;
	}
	if (stack_present(kstack) && (n = stack_read(a, kstack)) >= 0) {
		int leaf = 0;

		/* The innermost frames of a tracepoint program's stack are the BPF program and the
		 * tracepoint machinery that called it: not where the task was. */
		while (leaf < n && is_tracing_frame(stacks_ksym(a->ips[leaf])))
			leaf++;
		for (int i = n - 1; i >= leaf; i--) {
			const char *s = stacks_ksym(a->ips[i]);

			if (!s) {
				snprintf(hex, sizeof(hex), "0x%" PRIx64, a->ips[i]);
				s = hex;
			}
			fold_add(&f, s, "_[k]");
		}
	} else if (kstack != BPFLEET_STACK_NONE) {
		fold_add(&f, "[missing kernel stack]", "_[k]");
		flags |= STACK_MISSING;
	}
	a->folded++;
	a->fold_ns += probe_now_ns() - t0;
	return flags | (f.truncated ? STACK_TRUNCATED : 0);
}

/* ---------------------------------------------------------------- maps */

static int map_fd(struct bpf_object *obj, const char *probe, const char *name)
{
	struct bpf_map *m = bpf_object__find_map_by_name(obj, name);

	if (!m || bpf_map__fd(m) < 0) {
		fprintf(stderr, "%s: internal: no loaded map %s\n", probe, name);
		return -1;
	}
	return bpf_map__fd(m);
}

int stack_agg_setup(struct stack_agg *a, struct bpf_object *obj, const char *probe, size_t key_size)
{
	struct bpf_map *m;

	a->probe = probe;
	a->key_size = key_size;
	a->ncpu = libbpf_num_possible_cpus();
	a->slot_fd = map_fd(obj, probe, "stack_slot");
	a->counts_fd[0] = map_fd(obj, probe, "counts_a");
	a->counts_fd[1] = map_fd(obj, probe, "counts_b");
	a->stacks_fd[0] = map_fd(obj, probe, "stacks_a");
	a->stacks_fd[1] = map_fd(obj, probe, "stacks_b");
	if (a->slot_fd < 0 || a->counts_fd[0] < 0 || a->counts_fd[1] < 0 || a->stacks_fd[0] < 0 ||
	    a->stacks_fd[1] < 0 || a->ncpu <= 0) {
		a->slot_fd = -1;
		return -1;
	}
	m = bpf_object__find_map_by_name(obj, "counts_a");
	a->max_keys = bpf_map__max_entries(m);
	if (bpf_map__key_size(m) != key_size) {
		fprintf(stderr, "%s: internal: count key of %u bytes, loader expects %zu\n", probe,
			bpf_map__key_size(m), key_size);
		a->slot_fd = -1;
		return -1;
	}
	a->max_ids = bpf_map__max_entries(bpf_object__find_map_by_name(obj, "stacks_a"));
	a->single = bpf_map__max_entries(bpf_object__find_map_by_name(obj, "stacks_b")) == 1;
	a->keys = malloc((size_t)a->max_keys * key_size);
	a->vals = calloc((size_t)a->ncpu, sizeof(uint64_t));
	a->ids = calloc(a->max_ids, sizeof(uint64_t));
	a->items = calloc(a->max_keys, sizeof(*a->items));
	if (!a->keys || !a->vals || !a->ids || !a->items) {
		fprintf(stderr, "%s: out of memory for stack maps\n", probe);
		a->slot_fd = -1;
		return -1;
	}
	return 0;
}

int stack_agg_flip(struct stack_agg *a)
{
	uint32_t zero = 0, next = 1 - a->slot;
	int fd;
	char *prev = NULL;

	if (bpf_map_update_elem(a->slot_fd, &zero, &next, BPF_ANY)) {
		fprintf(stderr, "%s: cannot switch stack maps: %s\n", a->probe, strerror(errno));
		return -1;
	}
	a->slot = next;
	a->flip_ns = probe_now_ns();
	/* A program that read the old slot just before the flip finishes within microseconds. */
	usleep(2000);
	stacks_forget_pids();
	fd = a->counts_fd[1 - a->slot];
	a->nkeys = 0;
	while (a->nkeys < a->max_keys &&
	       !bpf_map_get_next_key(fd, prev, a->keys + (size_t)a->nkeys * a->key_size)) {
		prev = a->keys + (size_t)a->nkeys * a->key_size;
		a->nkeys++;
	}
	return 0;
}

int stack_agg_value(struct stack_agg *a, uint32_t i, uint64_t *sum)
{
	*sum = 0;
	if (bpf_map_lookup_elem(a->counts_fd[1 - a->slot], stack_agg_key(a, i), a->vals))
		return -1;
	for (int c = 0; c < a->ncpu; c++)
		*sum += a->vals[c];
	return 0;
}

static int by_value_desc(const void *x, const void *y)
{
	const struct stack_agg_item *p = x, *q = y;

	if (p->value != q->value)
		return p->value > q->value ? -1 : 1;
	return (p->i > q->i) - (p->i < q->i);
}

uint32_t stack_agg_sorted(struct stack_agg *a, struct probe_ctx *ctx)
{
	uint32_t n = 0;
	uint64_t v;

	for (uint32_t i = 0; i < a->nkeys; i++) {
		if (stack_agg_value(a, i, &v)) {
			probe_count_lost(ctx, 1);
			continue;
		}
		if (v)
			a->items[n++] = (struct stack_agg_item){ i, v };
	}
	qsort(a->items, n, sizeof(*a->items), by_value_desc);
	return n;
}

void stack_agg_fill(struct stack_agg *a, struct probe_ctx *ctx, uint32_t pid, uint64_t ustack,
		    uint64_t kstack, char *out, size_t len)
{
	int r = stack_agg_fold(a, pid, ustack, kstack, out, len);

	if (r & STACK_TRUNCATED)
		probe_count_truncated(ctx, 1);
	/* A lost stack was counted as map_full by the kernel side already; a stack the map no
	 * longer holds is the loader's loss. */
	if ((r & STACK_MISSING) && ustack != BPFLEET_STACK_LOST && kstack != BPFLEET_STACK_LOST)
		probe_count_lost(ctx, 1);
}

void stack_agg_keep(struct stack_agg *a, uint64_t id)
{
	if (!stack_present(id))
		return;
	if (a->nkeep == a->capkeep) {
		size_t cap = a->capkeep ? a->capkeep * 2 : 1024;
		uint64_t *k = realloc(a->keep, cap * sizeof(*k));

		if (!k) {
			a->keep_failed = true;	/* then nothing is collected this time */
			return;
		}
		a->keep = k;
		a->capkeep = cap;
	}
	a->keep[a->nkeep++] = id;
}

/* Single stack map: ids the active count map refers to (keys begin with kstack, ustack). */
static void keep_active(struct stack_agg *a)
{
	int fd = a->counts_fd[a->slot];
	char *k = malloc(a->key_size * 2), *prev = NULL, *cur = k;
	uint64_t ids[2];

	if (!k) {
		a->keep_failed = true;
		return;
	}
	while (!bpf_map_get_next_key(fd, prev, cur)) {
		memcpy(ids, cur, sizeof(ids));
		stack_agg_keep(a, ids[0]);
		stack_agg_keep(a, ids[1]);
		prev = cur;
		cur = cur == k ? k + a->key_size : k;
	}
	free(k);
}

static int by_u64(const void *x, const void *y)
{
	uint64_t p = *(const uint64_t *)x, q = *(const uint64_t *)y;

	return (p > q) - (p < q);
}

void stack_agg_clear(struct stack_agg *a)
{
	int cfd = a->counts_fd[1 - a->slot], sfd = a->stacks_fd[a->single ? 0 : 1 - a->slot];
	uint64_t *prev = NULL;
	uint32_t n = 0;

	for (uint32_t i = 0; i < a->nkeys; i++)
		bpf_map_delete_elem(cfd, stack_agg_key(a, i));
	a->nkeys = 0;
	while (n < a->max_ids && !bpf_map_get_next_key(sfd, prev, &a->ids[n])) {
		prev = &a->ids[n];
		n++;
	}
	if (a->single) {
		/* Collect only under pressure: a stack freed just as a task leaves the CPU with
		 * it would be missing when the task returns (counted as lost then). */
		if (n > a->max_ids / 2) {
			keep_active(a);
			if (!a->keep_failed) {
				qsort(a->keep, a->nkeep, sizeof(*a->keep), by_u64);
				for (uint32_t i = 0; i < n; i++) {
					if (bsearch(&a->ids[i], a->keep, a->nkeep, sizeof(*a->keep), by_u64))
						continue;
					if (!bpf_map_delete_elem(sfd, &a->ids[i]))
						a->freed++;
				}
			}
		}
		a->nkeep = 0;
		a->keep_failed = false;
		return;
	}
	for (uint32_t i = 0; i < n; i++)
		bpf_map_delete_elem(sfd, &a->ids[i]);
}

/* ---------------------------------------------------------------- merged output */

static uint64_t rec_hash(const struct stack_out *o, const char *r)
{
	uint64_t h = 1469598103934665603ull;	/* FNV-1a; the value field is 0 while hashing */

	for (size_t i = 0; i < o->rec_size; i++)
		h = (h ^ (unsigned char)r[i]) * 1099511628211ull;
	return h;
}

static int table_grow(struct stack_out *o)
{
	uint32_t cap = o->table_cap ? o->table_cap * 2 : 1024, *t = calloc(cap, sizeof(*t));

	if (!t)
		return -1;
	for (uint32_t i = 0; i < o->n; i++) {
		uint64_t h = rec_hash(o, o->recs + (size_t)i * o->rec_size);

		while (t[h & (cap - 1)])
			h++;
		t[h & (cap - 1)] = i + 1;
	}
	free(o->table);
	o->table = t;
	o->table_cap = cap;
	return 0;
}

void *stack_out_next(struct stack_out *o)
{
	if (o->n + 1 >= o->cap) {
		uint32_t cap = o->cap ? o->cap * 2 : 256;
		char *r = realloc(o->recs, (size_t)cap * o->rec_size);
		uint64_t *v;

		if (!r)
			return NULL;
		o->recs = r;
		v = realloc(o->vals, cap * sizeof(*v));
		if (!v)
			return NULL;
		o->vals = v;
		v = realloc(o->counts, cap * sizeof(*v));
		if (!v)
			return NULL;
		o->counts = v;
		o->cap = cap;
	}
	memset(o->recs + (size_t)o->n * o->rec_size, 0, o->rec_size);
	return o->recs + (size_t)o->n * o->rec_size;
}

int stack_out_add2(struct stack_out *o, uint64_t v, uint64_t c)
{
	char *r = o->recs + (size_t)o->n * o->rec_size;
	uint64_t h;

	if (2 * (o->n + 1) > o->table_cap && table_grow(o))
		return -1;
	memset(r + o->value_off, 0, sizeof(uint64_t));
	if (o->has_count)
		memset(r + o->count_off, 0, sizeof(uint64_t));
	for (h = rec_hash(o, r);; h++) {
		uint32_t idx = o->table[h & (o->table_cap - 1)];

		if (!idx) {
			o->table[h & (o->table_cap - 1)] = o->n + 1;
			o->counts[o->n] = c;
			o->vals[o->n++] = v;
			return 0;
		}
		if (!memcmp(o->recs + (size_t)(idx - 1) * o->rec_size, r, o->rec_size)) {
			o->vals[idx - 1] += v;
			o->counts[idx - 1] += c;
			return 0;
		}
	}
}

int stack_out_add(struct stack_out *o, uint64_t v)
{
	return stack_out_add2(o, v, 0);
}

static const struct stack_out *sort_out;

static int by_out_value(const void *x, const void *y)
{
	uint64_t a = sort_out->vals[*(const uint32_t *)x], b = sort_out->vals[*(const uint32_t *)y];

	if (a != b)
		return a > b ? -1 : 1;
	return (*(const uint32_t *)x > *(const uint32_t *)y) - (*(const uint32_t *)x < *(const uint32_t *)y);
}

int stack_out_emit(struct stack_out *o, struct probe_ctx *ctx)
{
	uint32_t *order = calloc(o->n ? o->n : 1, sizeof(*order));
	int err = 0;

	if (!order)
		return -1;
	for (uint32_t i = 0; i < o->n; i++)
		order[i] = i;
	sort_out = o;
	qsort(order, o->n, sizeof(*order), by_out_value);
	for (uint32_t i = 0; i < o->n && !err; i++) {
		char *r = o->recs + (size_t)order[i] * o->rec_size;

		memcpy(r + o->value_off, &o->vals[order[i]], sizeof(uint64_t));
		if (o->has_count)
			memcpy(r + o->count_off, &o->counts[order[i]], sizeof(uint64_t));
		err = probe_emit(ctx, r, o->rec_size) ? -1 : 0;
	}
	free(order);
	o->n = 0;
	if (o->table)
		memset(o->table, 0, o->table_cap * sizeof(*o->table));
	return err;
}

void stack_agg_report(const struct stack_agg *a)
{
	fprintf(stderr, "%s: symbolized %" PRIu64 " stacks in %.1f ms (%.1f us each); kallsyms: %zu "
		"symbols read in %.1f ms; %" PRIu64 " ELF files read in %.1f ms%s\n",
		a->probe, a->folded, (double)a->fold_ns / 1e6,
		a->folded ? (double)a->fold_ns / 1e3 / (double)a->folded : 0.0,
		ksyms.n, (double)ksyms_ns / 1e6, elf_loaded, (double)elf_ns / 1e6,
		a->single ? "; one stack map for all intervals" : "");
	if (a->freed)
		fprintf(stderr, "%s: freed %" PRIu64 " stacks no longer referenced\n", a->probe, a->freed);
}

int stack_agg_collect(struct stack_agg *a, struct stack_out *o, struct probe_ctx *ctx, stack_fill_fn fill)
{
	uint32_t n;

	if (stack_agg_flip(a))
		return -1;
	n = stack_agg_sorted(a, ctx);
	for (uint32_t j = 0; j < n; j++) {
		char *r = stack_out_next(o);
		struct stack_ids ids = { 0 };

		if (!r)
			return -1;
		fill(r, stack_agg_key(a, a->items[j].i), &ids);
		memcpy(r + o->ts_off, &a->flip_ns, sizeof(a->flip_ns));
		stack_agg_fill(a, ctx, ids.pid, ids.ustack, ids.kstack, r + o->stack_off, o->stack_size);
		if (stack_out_add(o, a->items[j].value))
			return -1;
	}
	return 0;
}
