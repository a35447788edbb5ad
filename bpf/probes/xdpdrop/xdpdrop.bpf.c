// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * xdpdrop: drops received packets whose IPv4 or IPv6 source address falls in a blocklist
 * prefix, before the kernel allocates an skb. Prefixes live in two LPM tries (longest match
 * wins); each prefix's value is its rule index, under which its drops are counted in a per-CPU
 * array (no atomics). The slot after the last rule counts what passed. The loader fills the
 * tries and sizes the maps before attaching; nothing is matched before that.
 *
 * Untagged Ethernet frames and one 802.1Q/802.1ad tag are parsed; anything else (ARP, other
 * ethertypes, truncated headers) passes and is counted as passed. --pid/--comm mean nothing
 * here: XDP runs in no task's context.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "bpfleet/common.bpf.h"
#include "xdpdrop.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile struct xdpdrop_event xdpdrop_event_layout = {};

/* Index of the "passed" slot in `counts` (= number of rules); set by the loader. */
const volatile __u32 passed_slot = 0;

/* Sized by the loader to the blocklist (max_entries may not be 0: at least 1). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct xdpdrop_key4);
	__type(value, __u32);
} block4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct xdpdrop_key6);
	__type(value, __u32);
} block6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xdpdrop_count);
} counts SEC(".maps");

struct vlanhdr {
	__be16 tci;
	__be16 proto;
};

static __always_inline void count(__u32 slot, __u64 bytes)
{
	struct xdpdrop_count *c = bpf_map_lookup_elem(&counts, &slot);

	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

SEC("xdp")
int xdpdrop_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	__u64 len = end - data;
	struct ethhdr *eth = data;
	void *l3 = eth + 1;
	__u32 *rule = NULL;
	__be16 proto;

	if (l3 > end)
		goto pass;
	proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlanhdr *v = l3;

		if ((void *)(v + 1) > end)
			goto pass;
		proto = v->proto;
		l3 = v + 1;
	}
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		struct xdpdrop_key4 k = { .prefixlen = 32 };

		if ((void *)(ip + 1) > end)
			goto pass;
		__builtin_memcpy(k.addr, &ip->saddr, 4);
		rule = bpf_map_lookup_elem(&block4, &k);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		struct xdpdrop_key6 k = { .prefixlen = 128 };

		if ((void *)(ip6 + 1) > end)
			goto pass;
		__builtin_memcpy(k.addr, &ip6->saddr, 16);
		rule = bpf_map_lookup_elem(&block6, &k);
	}
	if (rule) {
		count(*rule, len);
		return XDP_DROP;
	}
pass:
	count(passed_slot, len);
	return XDP_PASS;
}
