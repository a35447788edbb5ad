/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* xdpping: echo requests answered in XDP. Fixed-width fields only. */
#ifndef BPFLEET_XDPPING_H
#define BPFLEET_XDPPING_H

enum xdpping_record_type {
	XDPPING_INTERVAL = 0,	/* counters of one interval (from the loader) */
	XDPPING_ECHO = 1,	/* one answered echo request (sampled, from the kernel) */
};

/* One record layout for both types; the fields of the other type are zero. */
struct xdpping_event {
	__u64 ts_ns;
	__u64 answered;		/* interval: echo requests answered with XDP_TX */
	__u64 passed;		/* interval: packets handed to the stack (XDP_PASS) */
	__u64 answered_total;	/* interval: since the probe started */
	__u64 passed_total;
	__u8 saddr[16];		/* echo: IPv4 address that asked (first 4 bytes) */
	__u8 daddr[16];		/* echo: IPv4 address asked for, the reply's source */
	__u32 ifindex;		/* interface the program is attached to */
	__u16 id;		/* echo: ICMP identifier (host order) */
	__u16 seq;		/* echo: ICMP sequence number (host order) */
	__u8 type;		/* enum xdpping_record_type */
	__u8 __pad[7];
};

/* Per-CPU counters in the kernel, indexes of the `counts` array. */
enum xdpping_counter {
	XDPPING_ANSWERED = 0,
	XDPPING_PASSED = 1,
	XDPPING_NCOUNTERS = 2,
};

#endif
