/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * BPF side of the stack probes: stacks aggregated per interval in double-buffered maps.
 *
 * A stack is taken with bpf_get_stack() into a per-CPU scratch buffer, named by a 64-bit
 * hash of its frames, and stored under that hash in a hash map (stacks_a or stacks_b). A hash
 * map chains colliding buckets, so distinct stacks never displace each other the way they do
 * in a BPF_MAP_TYPE_STACK_TRACE map (whose bucket collisions fail at a few dozen stacks). The
 * per-CPU count maps (counts_a, counts_b) are keyed by the probe's own key, which holds the
 * stack hashes. The loader's stack_agg (lib/stacks.h) flips the one-entry array stack_slot
 * every interval, then reads, symbolizes and clears the retired pair, so a stack a count
 * refers to is never removed while it is read.
 *
 *	#define BPFLEET_STACK_KEY struct profile_key
 *	#include "bpfleet/stacks.bpf.h"
 *	__u32 slot = bpfleet_stack_slot();
 *	key.kstack = bpfleet_stackid(ctx, slot, false);
 *	bpfleet_stack_add(slot, &key, 1);
 *
 * Off-CPU probes take a stack when a task leaves the CPU and count it when the task returns,
 * maybe many intervals later: they define BPFLEET_STACK_SINGLE, and then one stack map
 * (stacks_a) serves every interval and the loader frees stacks nothing refers to any more
 * (stack_agg_keep / stack_agg_clear in lib/stacks.h). Count keys begin with
 * __u64 kstack; __u64 ustack; in this order (the loader reads the ids there).
 *
 * A stack that cannot be stored (the stack map full) is counted as map_full and kept in the
 * key as BPFLEET_STACK_LOST; the loader shows "[missing ... stack]". No stack (a kernel
 * thread's user stack, the kernel stack of a sample in user mode) is BPFLEET_STACK_NONE and
 * not a loss.
 */
#ifndef BPFLEET_STACKS_BPF_H
#define BPFLEET_STACKS_BPF_H

#include "bpfleet/common.bpf.h"
#include "bpfleet/stacks.h"

#ifndef BPFLEET_STACK_KEY
#error "define BPFLEET_STACK_KEY (the probe's count key type) before including stacks.bpf.h"
#endif

#define BPFLEET_EEXIST 17

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} stack_slot SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bpfleet_stack);
} stack_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BPFLEET_STACK_ENTRIES);
	__type(key, __u64);
	__type(value, struct bpfleet_stack);
} stacks_a SEC(".maps");

/* With BPFLEET_STACK_SINGLE a placeholder of one entry (how the loader knows the mode). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
#ifdef BPFLEET_STACK_SINGLE
	__uint(max_entries, 1);
#else
	__uint(max_entries, BPFLEET_STACK_ENTRIES);
#endif
	__type(key, __u64);
	__type(value, struct bpfleet_stack);
} stacks_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, BPFLEET_STACK_KEYS);
	__type(key, BPFLEET_STACK_KEY);
	__type(value, __u64);
} counts_a SEC(".maps"), counts_b SEC(".maps");

/* Which pair of maps this interval writes: 0 (a) or 1 (b). */
static __always_inline __u32 bpfleet_stack_slot(void)
{
	__u32 zero = 0, *s = bpf_map_lookup_elem(&stack_slot, &zero);

	return s && *s ? 1 : 0;
}

/* The current task's kernel or user stack, stored in this slot's stack map; its hash. */
static __always_inline __u64 bpfleet_stackid(void *ctx, __u32 slot, bool user)
{
	struct bpfleet_stack *st;
	__u32 zero = 0, nr;
	__u64 h = 14695981039346656037ull;	/* FNV-1a over the frames */
	void *map;
	long n;

	st = bpf_map_lookup_elem(&stack_scratch, &zero);
	if (!st)
		return BPFLEET_STACK_NONE;
	/* Zero-fills the buffer after the last frame. */
	n = bpf_get_stack(ctx, st->ips, sizeof(st->ips), user ? BPF_F_USER_STACK : 0);
	if (n <= 0)
		return BPFLEET_STACK_NONE;
	nr = (__u32)n / sizeof(__u64);
	for (int i = 0; i < BPFLEET_STACK_DEPTH; i++) {
		if (i >= nr)
			break;
		h = (h ^ st->ips[i]) * 1099511628211ull;
	}
	h ^= user;	/* a kernel and a user stack never share a name */
	if (h == BPFLEET_STACK_NONE || h == BPFLEET_STACK_LOST)
		h = 1;
#ifdef BPFLEET_STACK_SINGLE
	map = &stacks_a;
#else
	map = slot ? (void *)&stacks_b : (void *)&stacks_a;
#endif
	if (bpf_map_lookup_elem(map, &h))
		return h;
	n = bpfleet_map_update(map, &h, st, BPF_NOEXIST);
	if (n && n != -BPFLEET_EEXIST)
		return BPFLEET_STACK_LOST;
	return h;
}

/* Adds v to key's per-CPU count in this slot's count map (a full map is counted). */
static __always_inline void bpfleet_stack_add(__u32 slot, const BPFLEET_STACK_KEY *key, __u64 v)
{
	void *counts = slot ? (void *)&counts_b : (void *)&counts_a;
	__u64 *p = bpf_map_lookup_elem(counts, key);

	if (p) {
		*p += v;
		return;
	}
	/* NOEXIST: a racing first insert of the same key must not be overwritten. */
	if (bpfleet_map_update(counts, key, &v, BPF_NOEXIST) == -BPFLEET_EEXIST) {
		p = bpf_map_lookup_elem(counts, key);
		if (p)
			*p += v;
	}
}

#endif
