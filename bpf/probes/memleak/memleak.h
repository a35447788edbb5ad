/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* memleak: outstanding allocations by stack: user (one process's libc) or kernel (kmem
 * tracepoints, --kernel). Fixed-width fields only. */
#ifndef BPFLEET_MEMLEAK_H
#define BPFLEET_MEMLEAK_H

#include "bpfleet/stacks.h"

struct memleak_event {
	__u64 ts_ns;		/* monotonic time of the check */
	__u64 value;		/* bytes outstanding from this stack, of allocations at least --min-age-ms old */
	__u64 count;		/* those allocations */
	__u32 pid;		/* tgid */
	__u32 __pad;
	char comm[16];		/* thread name at the oldest such allocation */
	char stack[BPFLEET_STACK_TEXT];	/* folded user stack of the caller of malloc/calloc/realloc,
					 * or (--kernel) the kernel stack of kmalloc/kmem_cache_alloc */
};

/* One live allocation, by address. */
struct memleak_alloc {
	__u64 size;
	__u64 ts;		/* bpf_ktime_get_ns() when allocated */
	__u64 ustack;		/* the allocating user stack (stacks.bpf.h id), user mode */
	__u64 kstack;		/* the allocating kernel stack, --kernel */
	__u32 pid;
	__u32 __pad;
	char comm[16];
};

/* Count key of stacks.bpf.h (the count maps are unused: memleak reads its allocations). */
struct memleak_key {
	__u64 kstack;
	__u64 ustack;
};

#endif
