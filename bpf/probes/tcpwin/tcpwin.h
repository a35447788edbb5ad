/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* tcpwin: one sampled record of a TCP connection's congestion and window state. Fixed-width
 * fields only: one layout on x86_64, arm64 and armv7 (checked against the object's BTF). */
#ifndef BPFLEET_TCPWIN_H
#define BPFLEET_TCPWIN_H

struct tcpwin_event {
	__u64 ts_ns;		/* bpf_ktime_get_ns() at the sample */
	__u64 skaddr;		/* struct sock address: one connection's identity while it lives */
	__u32 pid;		/* tgid of the running task (softirq: whoever was interrupted) */
	__u16 family;		/* AF_INET or AF_INET6 */
	__u16 lport;		/* host order */
	__u16 rport;		/* host order */
	__u8 ca_state;		/* icsk_ca_state: 0 Open, 1 Disorder, 2 CWR, 3 Recovery, 4 Loss */
	__u8 __pad;
	__u32 snd_cwnd;		/* packets */
	__u32 snd_ssthresh;	/* packets */
	__u32 sndbuf;		/* sk_sndbuf, bytes */
	__u32 wmem_queued;	/* sk_wmem_queued, bytes */
	__u32 srtt_us;		/* smoothed RTT (tcp_sock.srtt_us is stored << 3) */
	__u32 snd_wnd;		/* peer's advertised window, bytes */
	__u32 rcv_wnd;		/* our current receive window, bytes */
	__u32 packets_out;	/* in flight */
	__u32 retrans_out;	/* retransmitted packets in flight */
	__u32 lost_out;
	__u32 sacked_out;
	__u32 mss_cache;	/* bytes */
	__u32 total_retrans;	/* retransmitted segments over the connection's life */
	char comm[16];
	__u8 saddr[16];		/* IPv4 in the first 4 bytes */
	__u8 daddr[16];
};

#endif
