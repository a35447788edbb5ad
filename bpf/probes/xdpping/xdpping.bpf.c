// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * xdpping: answers IPv4 ICMP echo requests in XDP, before the kernel allocates an skb. The
 * request is turned into the reply in place: Ethernet addresses swapped, IPv4 addresses
 * swapped (the IPv4 header checksum does not change: the same 16-bit words are summed), ICMP
 * type 8 -> 0 with the checksum updated incrementally (RFC 1624), then XDP_TX sends it back
 * out of the interface it came in on. The TTL is left as the asker set it.
 *
 * Everything else, and requests it does not answer (fragments, IP options are fine; VLAN
 * tagged frames, non-zero code, multicast/broadcast destinations), passes to the stack.
 * Counters are per-CPU (no atomics); the loader turns them into per-interval deltas. With
 * --sample N every Nth answered request on a CPU is also reported (src, id, seq); the others
 * are counted as sampled_out. --pid/--comm mean nothing here: XDP runs in no task's context.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "bpfleet/common.bpf.h"
#include "xdpping.h"

#define ETH_P_IP 0x0800
#define ETH_ALEN 6
#define IPPROTO_ICMP 1
#define ICMP_ECHOREPLY 0
#define ICMP_ECHO 8
#define IP_MF_OFFSET 0x3fff

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile struct xdpping_event xdpping_event_layout = {};

/* 0: no per-echo records; N: one per N answered requests per CPU. */
const volatile __u32 sample_every = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDPPING_NCOUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

static __always_inline __u64 count(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&counts, &which);

	if (!v)
		return 0;
	return ++*v;
}

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), all in network byte order. */
static __always_inline __u16 csum_replace16(__u16 csum, __u16 old, __u16 new)
{
	__u32 sum = (__u16)~csum + (__u32)(__u16)~old + new;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

static __always_inline void report(struct xdp_md *ctx, struct iphdr *ip, struct icmphdr *icmp,
				   __u64 answered)
{
	struct xdpping_event *e;

	if (!sample_every)
		return;
	if (answered % sample_every) {
		bpfleet_count(BPFLEET_STAT_SAMPLED_OUT);
		return;
	}
	e = bpfleet_reserve(sizeof(*e));
	if (!e)
		return;
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	e->type = XDPPING_ECHO;
	e->ifindex = ctx->ingress_ifindex;
	/* Already swapped: daddr is who asked. */
	__builtin_memcpy(e->saddr, &ip->daddr, 4);
	__builtin_memcpy(e->daddr, &ip->saddr, 4);
	e->id = bpf_ntohs(icmp->un.echo.id);
	e->seq = bpf_ntohs(icmp->un.echo.sequence);
	bpf_ringbuf_submit(e, 0);
}

SEC("xdp")
int xdpping_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct icmphdr *icmp;
	struct iphdr *ip;
	unsigned char mac[ETH_ALEN];
	__be32 addr;

	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		goto pass;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->ihl < 5 || ip->protocol != IPPROTO_ICMP ||
	    (ip->frag_off & bpf_htons(IP_MF_OFFSET)))
		goto pass;
	/* 224.0.0.0/4 and up (multicast, broadcast): the stack decides (icmp_echo_ignore_*). */
	if ((bpf_ntohl(ip->daddr) >> 28) >= 0xe)
		goto pass;
	icmp = (void *)ip + ip->ihl * 4;
	if ((void *)(icmp + 1) > end || icmp->type != ICMP_ECHO || icmp->code != 0)
		goto pass;

	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
	addr = ip->saddr;
	ip->saddr = ip->daddr;
	ip->daddr = addr;
	icmp->type = ICMP_ECHOREPLY;
	icmp->checksum = csum_replace16(icmp->checksum, bpf_htons(ICMP_ECHO << 8),
					bpf_htons(ICMP_ECHOREPLY << 8));
	report(ctx, ip, icmp, count(XDPPING_ANSWERED));
	return XDP_TX;
pass:
	count(XDPPING_PASSED);
	return XDP_PASS;
}
