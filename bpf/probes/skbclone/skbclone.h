/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* skbclone: skb_clone() calls of one process over one interval. Fixed-width fields only. */
#ifndef BPFLEET_SKBCLONE_H
#define BPFLEET_SKBCLONE_H

struct skbclone_event {
	__u64 ts_ns;		/* monotonic time at the end of the interval */
	__u64 count;		/* calls in this interval */
	__u64 total;		/* calls since the probe started */
	__u32 pid;		/* tgid */
	__u32 __pad;
	char comm[16];
};

/* Kernel map value, one per CPU and tgid (the loader sums the CPUs). */
struct skbclone_val {
	__u64 count;		/* calls since the entry was created; never reset in the kernel */
	char comm[16];		/* command name at a call on this CPU; empty if none yet */
};

#endif
