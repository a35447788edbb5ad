/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* wakeuptime: time blocked, by target and by waker and its stack, over one interval. */
#ifndef BPFLEET_WAKEUPTIME_H
#define BPFLEET_WAKEUPTIME_H

#include "bpfleet/stacks.h"

struct wakeuptime_event {
	__u64 ts_ns;		/* monotonic time at the end of the interval */
	__u64 value;		/* ns the target was blocked, of sleeps this waker ended in the interval */
	__u32 pid;		/* target: the process (tgid) that was blocked */
	__u32 waker_pid;	/* the process (tgid) that woke it */
	char comm[16];		/* target thread name */
	char waker_comm[16];	/* waker thread name */
	char stack[BPFLEET_STACK_TEXT];	/* the waker's folded stack when it woke the target */
};

/* Count key (kstack, ustack first: see stacks.bpf.h); the stacks are the waker's. */
struct wakeuptime_key {
	__u64 kstack;		/* the waker's kernel stack: its hash in the stack map, 0 none, ~0 lost */
	__u64 ustack;		/* the waker's user stack, likewise */
	__u32 pid;
	__u32 waker_pid;
	char comm[16];
	char waker_comm[16];
};

/* A thread that blocked, by thread id. */
struct wakeuptime_start {
	__u64 ts;
	__u32 tgid;
	__u32 __pad;
	char comm[16];
};

#endif
