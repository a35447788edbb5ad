/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Sizes shared by the stack probes (profile, offcputime, wakeuptime, loadmon), their BPF side
 * (stacks.bpf.h) and the loader's stack library (lib/stacks.h). Fixed-width and the same on
 * every architecture.
 */
#ifndef BPFLEET_STACKS_H
#define BPFLEET_STACKS_H

/* Bytes of a record's "stack" field: folded frames, root first, NUL-terminated. */
#define BPFLEET_STACK_TEXT 2048
/* Frames kept per kernel or user stack (the kernel's PERF_MAX_STACK_DEPTH). */
#define BPFLEET_STACK_DEPTH 127
/* Distinct stacks per interval in each of the two stack maps (~4.5 MiB each at full depth). */
#define BPFLEET_STACK_ENTRIES 4096

/*
 * Stack ids in count keys: a 64-bit hash of the frames, the key of the stack in its map.
 * 0: no stack of this kind (kernel thread without user stack, sample taken in user mode);
 * BPFLEET_STACK_LOST: the stack map was full (counted as map_full).
 */
#define BPFLEET_STACK_NONE 0ull
#define BPFLEET_STACK_LOST (~0ull)

/* A stored stack: frames innermost first, zero after the last. */
struct bpfleet_stack {
	__u64 ips[BPFLEET_STACK_DEPTH];
};
/* Distinct (process, stacks) keys per interval in each of the two count maps. */
#define BPFLEET_STACK_KEYS 10240

#endif
