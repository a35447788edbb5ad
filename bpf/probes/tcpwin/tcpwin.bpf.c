// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tcpwin: a TCP connection's congestion state (cwnd, ssthresh, buffers, RTT, windows), sampled
 * when an ACK or data segment is processed, at most once per --sample-ms per socket.
 * Hooks, in preference order: tp_btf/tcp_probe (kernel BTF), raw_tp/tcp_probe (no BTF in the
 * kernel: CO-RE against shipped BTF), kprobe/tcp_rcv_established (kernels without tcp_probe).
 * All three fire at the start of tcp_rcv_established(), so records mean the same thing.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "bpfleet/common.bpf.h"
#include "tcpwin.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Keeps struct tcpwin_event in the object's BTF, for the manifest check. */
const volatile struct tcpwin_event tcpwin_event_layout = {};

/* Minimum time between two records of one socket; 0: every call. Set by the loader. */
const volatile __u64 sample_ns = 100000000;

/*
 * Last emit time per socket. LRU: sockets that go away age out without a close hook, and a
 * busy host can never fill it (eviction only forgets a rate limit, which costs one extra record).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
} last_emit SEC(".maps");

static __always_inline int sample(struct sock *sk)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	struct inet_connection_sock *icsk = (struct inet_connection_sock *)sk;
	__u64 skaddr = (__u64)(unsigned long)sk, now, *last = NULL;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u16 family, lport, rport;
	struct tcpwin_event *e;

	/* Cheapest rejections first: family, ports, task. */
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (!bpfleet_ports_match(lport, rport) || !bpfleet_task_match(tgid, NULL))
		return 0;

	/*
	 * tcp_rcv_established() runs under the socket lock, so calls for one socket never race:
	 * a plain read-compare-write of its timestamp is enough (no cmpxchg on 5.10 anyway).
	 */
	now = bpf_ktime_get_ns();
	if (sample_ns) {
		last = bpf_map_lookup_elem(&last_emit, &skaddr);
		if (last && now - *last < sample_ns) {
			bpfleet_count(BPFLEET_STAT_SAMPLED_OUT);
			return 0;
		}
	}

	e = bpfleet_reserve(sizeof(*e));
	if (!e)
		return 0;	/* not remembered as emitted: the next call tries again */

	e->ts_ns = now;
	e->skaddr = skaddr;
	e->pid = tgid;
	e->family = family;
	e->lport = lport;
	e->rport = rport;
	e->ca_state = BPF_CORE_READ_BITFIELD_PROBED(icsk, icsk_ca_state);
	e->__pad = 0;
	e->snd_cwnd = BPF_CORE_READ(tp, snd_cwnd);
	e->snd_ssthresh = BPF_CORE_READ(tp, snd_ssthresh);
	e->sndbuf = BPF_CORE_READ(sk, sk_sndbuf);
	e->wmem_queued = BPF_CORE_READ(sk, sk_wmem_queued);
	e->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
	e->snd_wnd = BPF_CORE_READ(tp, snd_wnd);
	e->rcv_wnd = BPF_CORE_READ(tp, rcv_wnd);
	e->packets_out = BPF_CORE_READ(tp, packets_out);
	e->retrans_out = BPF_CORE_READ(tp, retrans_out);
	e->lost_out = BPF_CORE_READ(tp, lost_out);
	e->sacked_out = BPF_CORE_READ(tp, sacked_out);
	e->mss_cache = BPF_CORE_READ(tp, mss_cache);
	e->total_retrans = BPF_CORE_READ(tp, total_retrans);
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	__builtin_memset(e->saddr, 0, sizeof(e->saddr));
	__builtin_memset(e->daddr, 0, sizeof(e->daddr));
	/* Explicit sizes: BPF_CORE_READ_INTO would copy sizeof(*dst), one byte of an array. */
	if (family == AF_INET) {
		bpf_core_read(e->saddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(e->daddr, 4, &sk->__sk_common.skc_daddr);
	} else {
		bpf_core_read(e->saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(e->daddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
	bpf_ringbuf_submit(e, 0);

	if (sample_ns) {
		if (last)
			*last = now;
		else
			bpf_map_update_elem(&last_emit, &skaddr, &now, BPF_ANY);
	}
	return 0;
}

SEC("tp_btf/tcp_probe")
int BPF_PROG(tcpwin_btf, struct sock *sk, const struct sk_buff *skb)
{
	return sample(sk);
}

/* Same tracepoint without kernel BTF: args[0] is the socket, read only through CO-RE. */
SEC("raw_tp/tcp_probe")
int BPF_PROG(tcpwin_raw, struct sock *sk, const struct sk_buff *skb)
{
	return sample(sk);
}

SEC("kprobe/tcp_rcv_established")
int BPF_KPROBE(tcpwin_kprobe, struct sock *sk)
{
	return sample(sk);
}
