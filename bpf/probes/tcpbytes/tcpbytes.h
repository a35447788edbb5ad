/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* tcpbytes: TCP payload per process, one record per active process and interval. Fixed-width
 * fields only: one layout on x86_64, arm64 and armv7. */
#ifndef BPFLEET_TCPBYTES_H
#define BPFLEET_TCPBYTES_H

#define TCPBYTES_MAX_PROCS 4096

struct tcpbytes_event {
	__u64 ts_ns;		/* end of the interval (bpf_ktime_get_ns clock) */
	__u64 sent_bytes;	/* this interval */
	__u64 recv_bytes;
	__u64 sent_total;	/* since the probe started */
	__u64 recv_total;
	__u64 send_calls;	/* this interval: sends / receives that moved data */
	__u64 recv_calls;
	__u32 pid;		/* tgid */
	__u32 __pad;
	char comm[16];
};

/* Per-CPU value of the kernel map, keyed by tgid (__u32). */
struct tcpbytes_val {
	__u64 sent;
	__u64 recv;
	__u64 send_calls;
	__u64 recv_calls;
	char comm[16];		/* of the thread that created the entry; set on one CPU only */
};

#endif
