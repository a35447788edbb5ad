/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* offcputime: time off the CPU of one process and stack over one interval. Fixed-width fields only. */
#ifndef BPFLEET_OFFCPUTIME_H
#define BPFLEET_OFFCPUTIME_H

#include "bpfleet/stacks.h"

struct offcputime_event {
	__u64 ts_ns;		/* monotonic time at the end of the interval */
	__u64 value;		/* ns off the CPU with this stack, of stretches that ended in the interval */
	__u32 pid;		/* tgid */
	__u32 __pad;
	char comm[16];		/* thread command name when it left the CPU */
	char stack[BPFLEET_STACK_TEXT];	/* folded stack when it left the CPU, root first */
};

/* Count key (kstack, ustack first: see stacks.bpf.h). */
struct offcputime_key {
	__u64 kstack;		/* kernel stack: its hash in the stack map, 0 none, ~0 lost */
	__u64 ustack;		/* user stack, likewise */
	__u32 pid;
	__u32 __pad;
	char comm[16];
};

/* A thread off the CPU right now, by thread id. */
struct offcputime_start {
	__u64 ts;		/* when it left */
	struct offcputime_key key;
};

#endif
