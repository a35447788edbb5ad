/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Kernel-side counters every bpfleet probe keeps, shared by the BPF program and its loader. */
#ifndef BPFLEET_STATS_H
#define BPFLEET_STATS_H

enum bpfleet_stat {
	/* bpf_ringbuf_reserve() failed: the loader fell behind and the event is lost. */
	BPFLEET_STAT_RINGBUF_FULL = 0,
	/* A bounded hash map was full: state for one object could not be kept. */
	BPFLEET_STAT_MAP_FULL = 1,
	/* Events deliberately not emitted because of a rate limit (not a loss). */
	BPFLEET_STAT_SAMPLED_OUT = 2,
	/* A bpf_probe_read of kernel memory failed; the record carries zeros there. */
	BPFLEET_STAT_READ_FAILED = 3,
	BPFLEET_STAT_MAX = 4,
};

#define BPFLEET_TASK_COMM_LEN 16
#define BPFLEET_MAX_PORTS 8

#endif
