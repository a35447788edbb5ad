/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * TCP payload moved by user tasks, for the probes that count it (tcpbytes, tcptop).
 * Include after vmlinux.h and common.bpf.h, then define tcp_io_account(). The programs here
 * filter (task, then ports) and hand every accepted send or receive to it.
 *
 * Hooks, one group each for send and receive, in preference order:
 *  send: tracepoint sock/sock_send_length (Linux 6.3+), else kprobe + kretprobe tcp_sendmsg
 *  recv: tracepoint sock/sock_recv_length (Linux 6.3+), else kprobe tcp_cleanup_rbuf
 * Programs: tcpio_send_tp, tcpio_send_kp, tcpio_send_krp, tcpio_recv_tp, tcpio_recv_kp.
 */
#ifndef BPFLEET_TCP_IO_BPF_H
#define BPFLEET_TCP_IO_BPF_H

#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

#ifndef IPPROTO_TCP
#define IPPROTO_TCP 6
#endif
#define TCP_IO_MSG_PEEK 0x2
#define TCP_IO_MSG_ERRQUEUE 0x2000

/* One accepted transfer's socket, as the filters saw it. */
struct tcp_io_conn {
	struct sock *sk;
	__u32 tgid;
	__u16 family;
	__u16 lport;		/* host order */
	__u16 rport;		/* host order */
	__u16 __pad[3];
};

/* Defined by the includer: count bytes sent (send) or received on c by the current task. */
static __always_inline void tcp_io_account(const struct tcp_io_conn *c, bool send, __u64 bytes);

/*
 * Context of sock_send_length/sock_recv_length. Named with a flavor so the probes build
 * against vmlinux.h of kernels that predate it; CO-RE matches it to the kernel's struct.
 */
struct trace_event_raw_sock_msg_length___bpfleet {
	struct trace_entry ent;
	void *sk;
	__u16 family;
	__u16 protocol;
	int ret;
	int flags;
} __attribute__((preserve_access_index));

/* sock pointer stashed between tcp_sendmsg's entry and return, per thread. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct tcp_io_conn);
} tcp_io_sending SEC(".maps");

/* tp->copied_seq at the last tcp_cleanup_rbuf() of a socket; LRU: no close hook frees it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u32);
} tcp_io_copied SEC(".maps");

/* Filters, cheapest first: the task (no socket reads for other tasks), then the ports. */
static __always_inline bool tcp_io_match(struct sock *sk, struct tcp_io_conn *c)
{
	__builtin_memset(c, 0, sizeof(*c));
	c->tgid = bpf_get_current_pid_tgid() >> 32;
	if (!sk || !bpfleet_task_match(c->tgid, NULL))
		return false;
	c->sk = sk;
	c->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (c->family != AF_INET && c->family != AF_INET6)
		return false;
	c->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	c->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	return bpfleet_ports_match(c->lport, c->rport);
}

/* Both tracepoints fire for every socket family and protocol: drop non-TCP first. */
static __always_inline int tcp_io_tp(struct trace_event_raw_sock_msg_length___bpfleet *ctx, bool send)
{
	struct tcp_io_conn c;
	int ret = ctx->ret;

	if (ctx->protocol != IPPROTO_TCP || ret <= 0)
		return 0;
	/* A peek leaves the data queued; the error queue holds no payload. */
	if (!send && (ctx->flags & (TCP_IO_MSG_PEEK | TCP_IO_MSG_ERRQUEUE)))
		return 0;
	if (ctx->family != AF_INET && ctx->family != AF_INET6)
		return 0;
	if (!tcp_io_match(BPFLEET_READ_PTR(ctx, sk), &c))
		return 0;
	tcp_io_account(&c, send, (__u64)ret);
	return 0;
}

SEC("tracepoint/sock/sock_send_length")
int tcpio_send_tp(struct trace_event_raw_sock_msg_length___bpfleet *ctx)
{
	return tcp_io_tp(ctx, true);
}

SEC("tracepoint/sock/sock_recv_length")
int tcpio_recv_tp(struct trace_event_raw_sock_msg_length___bpfleet *ctx)
{
	return tcp_io_tp(ctx, false);
}

SEC("kprobe/tcp_sendmsg")
int BPF_KPROBE(tcpio_send_kp, struct sock *sk)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tcp_io_conn c;

	if (tcp_io_match(sk, &c))
		bpfleet_map_update(&tcp_io_sending, &id, &c, BPF_ANY);
	return 0;
}

SEC("kretprobe/tcp_sendmsg")
int BPF_KRETPROBE(tcpio_send_krp, int ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tcp_io_conn *c = bpf_map_lookup_elem(&tcp_io_sending, &id);

	if (!c)
		return 0;
	if (ret > 0)
		tcp_io_account(c, true, (__u64)ret);
	bpf_map_delete_elem(&tcp_io_sending, &id);
	return 0;
}

/*
 * tcp_recvmsg() calls tcp_cleanup_rbuf() with its running total, possibly more than once per
 * read (before it sleeps or processes the backlog, and at the end), and also for MSG_PEEK.
 * Count what tp->copied_seq advanced since the socket's last call instead, at most copied:
 * repeats and peeks add nothing, and reads this probe did not see are not charged here.
 */
SEC("kprobe/tcp_cleanup_rbuf")
int BPF_KPROBE(tcpio_recv_kp, struct sock *sk, int copied)
{
	__u64 key = (__u64)(unsigned long)sk;
	struct tcp_io_conn c;
	__u32 seq, *last, bytes = (__u32)copied;

	if (copied <= 0 || !tcp_io_match(sk, &c))
		return 0;
	seq = BPF_CORE_READ((struct tcp_sock *)sk, copied_seq);
	last = bpf_map_lookup_elem(&tcp_io_copied, &key);
	if (last) {
		if (seq - *last < bytes)
			bytes = seq - *last;
		*last = seq;
	} else {
		bpf_map_update_elem(&tcp_io_copied, &key, &seq, BPF_ANY);
	}
	if (bytes)
		tcp_io_account(&c, false, bytes);
	return 0;
}

/* The map the programs write this interval: slot 0 of an array of maps the loader swaps. */
static __always_inline void *tcp_io_current(void *outer)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(outer, &zero);
}

#endif
