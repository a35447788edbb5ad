/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* pgfault: page faults of one process and stack over one interval. Fixed-width fields only. */
#ifndef BPFLEET_PGFAULT_H
#define BPFLEET_PGFAULT_H

#include "bpfleet/stacks.h"

struct pgfault_event {
	__u64 ts_ns;		/* monotonic time at the end of the interval */
	__u64 value;		/* page faults with this stack in the interval */
	__u32 pid;		/* tgid */
	__u32 __pad;
	char comm[16];		/* thread command name */
	char stack[BPFLEET_STACK_TEXT];	/* folded, root first, user then kernel (_[k]) frames */
};

/* Count key (kstack, ustack first: see stacks.bpf.h). */
struct pgfault_key {
	__u64 kstack;		/* kernel stack: its hash in the stack map, 0 none, ~0 lost */
	__u64 ustack;		/* user stack, likewise */
	__u32 pid;
	__u32 __pad;
	char comm[16];
};

#endif
