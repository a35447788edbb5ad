/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* tcpstates: one record per TCP state transition. Fixed-width fields only: one layout on
 * x86_64, arm64 and armv7 (checked against the compiled object's BTF by the test suite). */
#ifndef BPFLEET_TCPSTATES_H
#define BPFLEET_TCPSTATES_H

struct tcpstates_event {
	__u64 ts_ns;		/* bpf_ktime_get_ns() at the transition */
	__u64 skaddr;		/* struct sock address: one connection's identity while it lives */
	__u64 delta_us;		/* time spent in oldstate; 0 if its start was not seen */
	__u32 pid;		/* tgid of the task running when the state changed */
	__u16 family;		/* AF_INET or AF_INET6 */
	__u16 lport;		/* host order */
	__u16 rport;		/* host order */
	__u16 oldstate;
	__u16 newstate;
	__u16 __pad;
	char comm[16];
	__u8 saddr[16];		/* IPv4 in the first 4 bytes */
	__u8 daddr[16];
};

#endif
