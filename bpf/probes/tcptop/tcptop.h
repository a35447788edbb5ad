/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* tcptop: the busiest TCP connections of each interval. Fixed-width fields only: one layout on
 * x86_64, arm64 and armv7. */
#ifndef BPFLEET_TCPTOP_H
#define BPFLEET_TCPTOP_H

#define TCPTOP_MAX_CONNS 4096

struct tcptop_event {
	__u64 ts_ns;		/* end of the interval (bpf_ktime_get_ns clock) */
	__u64 sent_bytes;	/* this interval */
	__u64 recv_bytes;
	__u32 pid;		/* tgid */
	__u16 family;		/* AF_INET or AF_INET6 */
	__u16 lport;		/* host order */
	__u16 rport;		/* host order */
	__u16 __pad;
	__u32 __pad2;
	char comm[16];
	__u8 saddr[16];		/* IPv4 in the first 4 bytes */
	__u8 daddr[16];
};

/* Kernel map key: one connection of one process. Zeroed before filling (hashed as bytes). */
struct tcptop_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 pid;
	__u16 family;
	__u16 lport;
	__u16 rport;
	__u16 __pad;
};

/* Per-CPU value. */
struct tcptop_val {
	__u64 sent;
	__u64 recv;
	char comm[16];		/* set on the CPU that created the entry only */
};

#endif
