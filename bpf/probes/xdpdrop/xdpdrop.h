/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* xdpdrop: packets dropped by source prefix, and passed, per interval. Fixed-width fields only. */
#ifndef BPFLEET_XDPDROP_H
#define BPFLEET_XDPDROP_H

enum xdpdrop_record_type {
	XDPDROP_PASSED = 0,	/* everything not dropped, one record per interval */
	XDPDROP_DROPPED = 1,	/* drops of one blocklist prefix (only prefixes that dropped) */
};

struct xdpdrop_event {
	__u64 ts_ns;		/* monotonic time at the end of the interval */
	__u64 packets;		/* in this interval */
	__u64 bytes;		/* frame bytes (from the Ethernet header) in this interval */
	__u64 packets_total;	/* since the probe started */
	__u64 bytes_total;
	__u8 addr[16];		/* DROPPED: the prefix (IPv4 in the first 4 bytes) */
	__u16 family;		/* DROPPED: AF_INET or AF_INET6 */
	__u8 prefixlen;		/* DROPPED: prefix length */
	__u8 type;		/* enum xdpdrop_record_type */
	__u32 rule;		/* DROPPED: index of the prefix in the blocklist as given */
};

/* LPM trie keys: prefix length, then the address in network order. */
struct xdpdrop_key4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct xdpdrop_key6 {
	__u32 prefixlen;
	__u8 addr[16];
};

/* Per-CPU counters of one rule (and, at index nrules, of passed packets). */
struct xdpdrop_count {
	__u64 packets;
	__u64 bytes;
};

#endif
