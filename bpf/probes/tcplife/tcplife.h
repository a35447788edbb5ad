/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* tcplife: one record per closed TCP connection. Fixed-width fields only. */
#ifndef BPFLEET_TCPLIFE_H
#define BPFLEET_TCPLIFE_H

struct tcplife_event {
	__u64 ts_ns;		/* when the connection reached CLOSE */
	__u64 skaddr;
	__u64 span_us;		/* first state seen -> CLOSE; 0 if its opening was not seen */
	__u64 rx_bytes;		/* tcp_sock.bytes_received */
	__u64 tx_bytes;		/* tcp_sock.bytes_acked */
	__u32 pid;		/* tgid of the task seen opening it (see tcplife.bpf.c) */
	__u16 family;
	__u16 lport;
	__u16 rport;
	__u8 passive;		/* 1: accepted (LISTEN -> SYN_RECV), 0: connected */
	__u8 open_seen;		/* 1: the opening was traced, span and pid are meaningful */
	__u8 __pad[4];
	char comm[16];
	__u8 saddr[16];
	__u8 daddr[16];
};

#endif
