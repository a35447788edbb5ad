/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Loader side of the XDP probes (xdpping, xdpdrop): the --ifname / --xdp-mode options, the
 * attach with its native -> generic fallback, and the HELLO members saying what was chosen.
 *
 * The program is attached through a BPF link (kernel >= 5.9), never through the netlink
 * "set XDP fd" interface: a link is owned by the loader's file descriptor, so the kernel
 * removes the program from the interface when the loader exits for any reason (signal,
 * crash, SIGKILL). Nothing is ever left behind on the interface.
 */
#ifndef BPFLEET_XDP_H
#define BPFLEET_XDP_H

#include <stddef.h>
#include <bpf/libbpf.h>

struct probe_hook;

#define XDP_ARGS \
	{ "ifname", "IF", "interface to attach to (required)" }, \
	{ "xdp-mode", "MODE", "auto (native, else generic; default), native or generic (SKB mode)" }

/* Handles --ifname and --xdp-mode; returns 0 if it was one of them, -1 if not. */
int xdp_parse_arg(const char *name, const char *value);

/* Exits with EXIT_USAGE when --ifname is missing or names no interface (in this namespace). */
void xdp_check_args(const char *probe);

/* def->attach for HOOK_XDP hooks: attaches prog to --ifname; returns 0 or an exit code. */
int xdp_attach(struct bpf_program *prog, const struct probe_hook *hook);

/* def->hello: ',"xdp":{"ifname":..,"ifindex":..,"mode":"native"|"generic"}'. */
int xdp_hello(char *buf, size_t len);

/* Sum over CPUs of one __u64 slot of a per-CPU map (array or hash); 0 or -errno. */
int percpu_u64_sum(int map_fd, const void *key, __u64 *sum);

/* The interface's index after xdp_check_args(). */
int xdp_ifindex(void);

#endif
