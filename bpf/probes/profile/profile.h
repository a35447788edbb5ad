/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* profile: on-CPU samples of one process and stack over one interval. Fixed-width fields only. */
#ifndef BPFLEET_PROFILE_H
#define BPFLEET_PROFILE_H

#include "bpfleet/stacks.h"

struct profile_event {
	__u64 ts_ns;		/* monotonic time at the end of the interval */
	__u64 value;		/* samples of this stack in the interval */
	__u32 pid;		/* tgid */
	__u32 __pad;
	char comm[16];		/* thread command name */
	char stack[BPFLEET_STACK_TEXT];	/* folded, root first, user then kernel (_[k]) frames */
};

/* Count key: one per process, thread name and pair of stacks. */
struct profile_key {
	__u64 kstack;		/* kernel stack: its hash in the stack map, 0 none, ~0 lost */
	__u64 ustack;		/* user stack, likewise */
	__u32 pid;
	__u32 __pad;
	char comm[16];
};

#endif
