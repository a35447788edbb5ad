/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* netstat: one counter's change over one interval. Fixed-width fields only. */
#ifndef BPFLEET_NETSTAT_H
#define BPFLEET_NETSTAT_H

struct netstat_event {
	__u64 ts_ns;		/* monotonic time at the end of the interval */
	__s64 delta;		/* change in this interval (gauges like CurrEstab can shrink) */
	__u64 value;		/* procfs: the counter's value; TcpState: transitions since start */
	__u32 pid;		/* TcpState: tgid of the task at the transition; 0 for procfs counters */
	__u32 __pad;
	char comm[16];		/* TcpState: that task's command name */
	char group[16];		/* Tcp, TcpExt, Udp, Ip, IpExt, Icmp, Ip6, Udp6, Icmp6; TcpState (eBPF) */
	char name[32];		/* the kernel's counter name; TcpState: the state entered */
};

/* eBPF part: TCP state transitions per process and state entered. */
struct netstat_key {
	__u32 tgid;
	__u32 state;		/* the state entered (kernel TCP_* number) */
};

struct netstat_val {
	__u64 count;		/* per CPU, since the entry was created; never reset in the kernel */
	char comm[16];
};

#endif
