/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The TCP state-change hook shared by tcpstates and tcplife, with its fallback. The including
 * probe defines:
 *
 *   static int on_tcp_state(struct sock *sk, int oldstate, int newstate, __u16 family,
 *                           __u16 lport, __u16 rport, const __u8 *saddr, const __u8 *daddr);
 *
 * before including this file; ports are host order, addresses 4 (IPv4) or 16 bytes.
 * Programs: tcp_state_tp  (tracepoint sock/inet_sock_set_state, Linux 4.16+, no kernel BTF needed)
 *           tcp_state_kprobe (kprobe tcp_set_state, for kernels without that tracepoint)
 */
#ifndef BPFLEET_TCP_STATE_BPF_H
#define BPFLEET_TCP_STATE_BPF_H

#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>

#ifndef IPPROTO_TCP
#define IPPROTO_TCP 6
#endif

SEC("tracepoint/sock/inet_sock_set_state")
int tcp_state_tp(struct trace_event_raw_inet_sock_set_state *ctx)
{
	__u8 saddr[16] = {}, daddr[16] = {};
	__u16 family = ctx->family;

	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	/* Array fields of the context are read, not dereferenced: CO-RE moves their offsets. */
	if (family == AF_INET) {
		bpf_core_read(saddr, 4, &ctx->saddr);
		bpf_core_read(daddr, 4, &ctx->daddr);
	} else {
		bpf_core_read(saddr, 16, &ctx->saddr_v6);
		bpf_core_read(daddr, 16, &ctx->daddr_v6);
	}
	return on_tcp_state((struct sock *)ctx->skaddr, ctx->oldstate, ctx->newstate, family,
			    ctx->sport, ctx->dport, saddr, daddr);
}

SEC("kprobe/tcp_set_state")
int BPF_KPROBE(tcp_state_kprobe, struct sock *sk, int state)
{
	__u8 saddr[16] = {}, daddr[16] = {};
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	int old = BPF_CORE_READ(sk, __sk_common.skc_state);

	if (old == state)
		return 0;
	/* Explicit sizes: BPF_CORE_READ_INTO into a byte array would copy sizeof(__u8). */
	if (family == AF_INET) {
		bpf_core_read(saddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(daddr, 4, &sk->__sk_common.skc_daddr);
	} else {
		bpf_core_read(saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(daddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
	return on_tcp_state(sk, old, state, family, BPF_CORE_READ(sk, __sk_common.skc_num),
			    bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport)), saddr, daddr);
}

#endif
