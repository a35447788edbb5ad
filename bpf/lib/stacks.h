/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Loader side of the stack probes: reading the double-buffered stack maps of stacks.bpf.h,
 * and symbolizing on the device into folded stacks.
 *
 * Kernel frames come from /proc/kallsyms (read once, sorted, binary search); user frames from
 * the ELF symbols (.symtab, else .dynsym) of the file mapped at the address, found through
 * /proc/<pid>/maps (read once per process and interval) and cached per (device, inode), with
 * the file offset turned into the ELF address through the PT_LOAD headers (PIE, shared
 * libraries, prelinked executables alike). A frame that cannot be named is its hex address.
 *
 * Folded text (the "stack" field of every stack record): frames root first, separated by ';',
 * user frames from the outermost, then kernel frames each suffixed "_[k]". When the text does
 * not fit, it ends in ";…" at a frame boundary.
 *
 *	struct stack_agg agg = STACK_AGG_INIT;
 *	stack_agg_setup(&agg, obj, "profile", sizeof(struct profile_key));	// once
 *	stack_agg_flip(&agg);				// every interval
 *	for (uint32_t i = 0; i < agg.nkeys; i++) {
 *		const struct profile_key *k = stack_agg_key(&agg, i);
 *		stack_agg_value(&agg, i, &sum);
 *		stack_agg_fill(&agg, ctx, k->pid, k->ustack, k->kstack, rec.stack, sizeof(rec.stack));
 *	}
 *	stack_agg_clear(&agg);
 */
#ifndef BPFLEET_STACKS_LIB_H
#define BPFLEET_STACKS_LIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <bpf/libbpf.h>
#include "bpfleet/stacks.h"

/* stack_agg_fold() result bits. */
enum {
	STACK_TRUNCATED = 1,	/* the text was cut and ends in ";…" */
	STACK_MISSING = 2,	/* a stack was not in the map or the kernel could not store it
				 * (BPFLEET_STACK_LOST, counted as map_full there): the text holds
				 * "[missing kernel stack]" or "[missing user stack]" */
};

struct stack_agg {
	const char *probe;	/* for messages */
	int slot_fd;		/* stack_slot: which pair the programs write */
	int counts_fd[2];	/* counts_a, counts_b */
	int stacks_fd[2];	/* stacks_a, stacks_b */
	uint32_t slot;		/* the pair the programs write now; 1 - slot is the retired one */
	int ncpu;
	size_t key_size;
	uint32_t max_keys;
	char *keys;		/* keys of the retired count map, after stack_agg_flip() */
	uint32_t nkeys;
	uint64_t *vals;		/* per-CPU values of one key */
	uint64_t *ids;		/* stack ids of the retired stack map, for clearing */
	uint32_t max_ids;
	struct stack_agg_item *items;	/* stack_agg_sorted() */
	bool single;		/* one stack map for all intervals (stacks_b has 1 entry) */
	uint64_t *keep;		/* single: ids to keep (stack_agg_keep), sorted before use */
	size_t nkeep, capkeep;
	bool keep_failed;	/* out of memory while collecting ids: free nothing */
	uint64_t freed;		/* single: stacks freed by the collection */
	uint64_t ips[BPFLEET_STACK_DEPTH];
	uint64_t flip_ns;	/* probe_now_ns() after the last flip: the interval's end */
	/* figures, reported by stack_agg_report() */
	uint64_t folded;	/* stacks folded */
	uint64_t fold_ns;	/* time spent folding (reading stacks + symbolizing) */
};

#define STACK_AGG_INIT { .slot_fd = -1 }

/* Finds the maps of stacks.bpf.h in a loaded object. Prints "<probe>: ..." and returns -1 on failure. */
int stack_agg_setup(struct stack_agg *a, struct bpf_object *obj, const char *probe, size_t key_size);

/*
 * Points the programs at the other pair of maps, then collects the keys of the retired count
 * map. Also forgets the per-process address maps of the last interval. Returns 0 or -1.
 */
int stack_agg_flip(struct stack_agg *a);

static inline const void *stack_agg_key(const struct stack_agg *a, uint32_t i)
{
	return a->keys + (size_t)i * a->key_size;
}

/* Sum over CPUs of key i's value in the retired count map. Returns 0, or -1 when unreadable. */
int stack_agg_value(struct stack_agg *a, uint32_t i, uint64_t *sum);

/*
 * Folds the user stack ustack and the kernel stack kstack (ids in the retired stack map, or
 * BPFLEET_STACK_NONE / BPFLEET_STACK_LOST) of process pid into out. Returns
 * STACK_TRUNCATED / STACK_MISSING bits.
 */
int stack_agg_fold(struct stack_agg *a, uint32_t pid, uint64_t ustack, uint64_t kstack,
		   char *out, size_t len);

/*
 * Single stack map (BPFLEET_STACK_SINGLE): stack id still referenced outside the count maps
 * (a task off the CPU right now). Call for each before stack_agg_clear().
 */
void stack_agg_keep(struct stack_agg *a, uint64_t id);

/*
 * Empties the retired count map, and the retired stack map for the interval after next. With
 * a single stack map, frees instead, once it is half full, every stack that neither the
 * active count map nor a stack_agg_keep() id refers to.
 */
void stack_agg_clear(struct stack_agg *a);

/* Key i of the retired map and its value, for stack_agg_sorted(). */
struct stack_agg_item {
	uint32_t i;
	uint64_t value;
};

/*
 * The retired keys with a non-zero value, largest value first, in a->items (keys whose value
 * cannot be read are counted as lost on ctx). Returns how many.
 */
uint32_t stack_agg_sorted(struct stack_agg *a, struct probe_ctx *ctx);

/*
 * Fills a record's stack text (stack_agg_fold) and counts a truncated text on ctx, and a
 * missing stack that the kernel did not already count, as lost.
 */
void stack_agg_fill(struct stack_agg *a, struct probe_ctx *ctx, uint32_t pid, uint64_t ustack,
		    uint64_t kstack, char *out, size_t len);

/*
 * Records of one interval, merged: different raw stacks can fold to the same text (another
 * instruction in the same functions, an address that stays hex), and each (process, name,
 * text) must be one record. A record is identified by all its bytes except the u64 value.
 *
 *	struct stack_out out = { .rec_size = sizeof(EV), .value_off = offsetof(EV, value) };
 *	EV *r = stack_out_next(&out);		// zeroed; fill all but value
 *	stack_out_add(&out, v);			// merge it, adding v
 *	stack_out_emit(&out, ctx);		// largest value first; empties out
 */
struct stack_out {
	size_t rec_size, value_off;
	size_t ts_off, stack_off, stack_size;	/* for stack_agg_collect (STACK_OUT) */
	bool has_count;		/* a second u64 at count_off is summed as well (memleak) */
	size_t count_off;
	char *recs;		/* n records, then the scratch one */
	uint64_t *vals, *counts;
	uint32_t n, cap;
	uint32_t *table;	/* open addressing: index + 1, 0 empty */
	uint32_t table_cap;
};

/* The zeroed scratch record to fill, or NULL when out of memory. */
void *stack_out_next(struct stack_out *o);
/* Merges the scratch record with v added to its value. Returns 0, or -1 out of memory. */
int stack_out_add(struct stack_out *o, uint64_t v);
/* The same, adding c to the count field too (has_count). */
int stack_out_add2(struct stack_out *o, uint64_t v, uint64_t c);
/* Emits the merged records, largest value first. Returns 0, or -1 when output failed. */
int stack_out_emit(struct stack_out *o, struct probe_ctx *ctx);

/*
 * The interval loop the stack probes share, for records with u64 ts_ns, char stack[] and u64
 * value fields (STACK_OUT(EV) describes them):
 *
 *	static struct stack_out out = STACK_OUT(EV);
 *	static void fill(void *rec, const void *key, struct stack_ids *ids)
 *	{	... the probe's own fields of the zeroed record from its key, and whose stacks ... }
 *	stack_agg_collect(&agg, &out, ctx, fill);	// flip, then every key, largest first
 *	stack_agg_clear(&agg);
 *	stack_out_emit(&out, ctx);
 *
 * collect sets ts_ns (the flip time), the folded stack text and the value itself.
 */
struct stack_ids {
	uint32_t pid;		/* whose user stack it is (symbolized in that process) */
	uint64_t ustack, kstack;
};

#define STACK_OUT(T) { .rec_size = sizeof(T), .value_off = offsetof(T, value), \
	.ts_off = offsetof(T, ts_ns), .stack_off = offsetof(T, stack), .stack_size = sizeof(((T *)0)->stack) }

typedef void (*stack_fill_fn)(void *rec, const void *key, struct stack_ids *ids);

/* Returns 0, or -1 when a map could not be read or memory ran out. */
int stack_agg_collect(struct stack_agg *a, struct stack_out *o, struct probe_ctx *ctx, stack_fill_fn fill);

/* One stderr line: stacks folded, time per stack, symbols and files loaded. */
void stack_agg_report(const struct stack_agg *a);

/*
 * Opens a software cpu-clock perf event sampling freq times a second on every online CPU and
 * attaches prog to each (profile, loadmon). Returns 0, or an exit code after saying why.
 */
int stacks_attach_cpu_clock(struct bpf_program *prog, unsigned long freq, const char *probe);

/* ---- the symbolizer on its own (also used by stack_agg_fold) */

/* Name of kernel address ip, or NULL (no /proc/kallsyms, addresses hidden, or below all). */
const char *stacks_ksym(uint64_t ip);

/* Name of user address ip in process pid, or NULL. */
const char *stacks_usym(uint32_t pid, uint64_t ip);

/* Forget the per-process address maps (processes map and unmap files between intervals). */
void stacks_forget_pids(void);

#endif
