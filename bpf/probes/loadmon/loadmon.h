/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* loadmon: kernel stack samples while the load average is above a threshold. Fixed-width fields only. */
#ifndef BPFLEET_LOADMON_H
#define BPFLEET_LOADMON_H

#include "bpfleet/stacks.h"

enum loadmon_kind {
	LOADMON_SAMPLES = 0,	/* samples of one process and kernel stack in the interval */
	LOADMON_ARMED = 1,	/* the load went above the threshold: sampling from now on */
	LOADMON_DISARMED = 2,	/* the load is at or below the threshold: not sampling */
};

struct loadmon_event {
	__u64 ts_ns;		/* monotonic time at the end of the interval / of the check */
	__u64 value;		/* samples (0 in state records) */
	__u32 pid;		/* tgid */
	__u32 load1_milli;	/* 1-minute load average x 1000 at the last check */
	__u32 threshold_milli;	/* --threshold x 1000 */
	__u8 kind;		/* enum loadmon_kind */
	__u8 __pad[3];
	char comm[16];
	char stack[BPFLEET_STACK_TEXT];	/* folded kernel stack (frames suffixed _[k]), root first */
};

/* Count key (kstack, ustack first: see stacks.bpf.h; ustack is always none). */
struct loadmon_key {
	__u64 kstack;		/* kernel stack: its hash in the stack map, 0 none, ~0 lost */
	__u64 ustack;		/* user stack, likewise */
	__u32 pid;
	__u32 __pad;
	char comm[16];
};

#endif
