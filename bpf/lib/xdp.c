// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* XDP attach for the XDP probes: see xdp.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include "probe.h"
#include "xdp.h"

static char ifname[IF_NAMESIZE];
static int ifindex;
static int want;		/* 0 auto, XDP_FLAGS_DRV_MODE or XDP_FLAGS_SKB_MODE */
static const char *mode = "none";
static int link_fd = -1;	/* kept open until exit: closing it detaches */

int xdp_parse_arg(const char *name, const char *value)
{
	if (!strcmp(name, "ifname")) {
		if (strlen(value) >= sizeof(ifname)) {
			fprintf(stderr, "--ifname: '%s' is longer than an interface name can be\n", value);
			exit(EXIT_USAGE);
		}
		strcpy(ifname, value);
		return 0;
	}
	if (!strcmp(name, "xdp-mode")) {
		if (!strcmp(value, "auto"))
			want = 0;
		else if (!strcmp(value, "native"))
			want = XDP_FLAGS_DRV_MODE;
		else if (!strcmp(value, "generic"))
			want = XDP_FLAGS_SKB_MODE;
		else {
			fprintf(stderr, "--xdp-mode takes auto, native or generic, not '%s'\n", value);
			exit(EXIT_USAGE);
		}
		return 0;
	}
	return -1;
}

void xdp_check_args(const char *probe)
{
	if (!ifname[0]) {
		fprintf(stderr, "%s: --ifname IF is required: the interface whose received packets "
			"the XDP program sees (ip -br link lists them)\n", probe);
		exit(EXIT_USAGE);
	}
	ifindex = (int)if_nametoindex(ifname);
	if (!ifindex) {
		fprintf(stderr, "%s: no interface '%s' in this network namespace (%s); ip -br link "
			"lists them\n", probe, ifname, strerror(errno));
		exit(EXIT_USAGE);
	}
}

int xdp_ifindex(void)
{
	return ifindex;
}

static int try_mode(int prog_fd, __u32 flags)
{
	LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = flags);
	int fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, &opts);

	return fd < 0 ? -errno : fd;
}

int xdp_attach(struct bpf_program *prog, const struct probe_hook *hook)
{
	int prog_fd = bpf_program__fd(prog), fd = -EINVAL, native_err = 0;
	const char *p = bpf_program__name(prog);

	(void)hook;
	if (!ifindex)
		xdp_check_args(p);
	if (want != XDP_FLAGS_SKB_MODE) {
		fd = try_mode(prog_fd, XDP_FLAGS_DRV_MODE);
		if (fd >= 0)
			mode = "native";
		native_err = fd < 0 ? fd : 0;
	}
	if (fd < 0 && want != XDP_FLAGS_DRV_MODE && native_err != -EBUSY && native_err != -EPERM) {
		fd = try_mode(prog_fd, XDP_FLAGS_SKB_MODE);
		if (fd >= 0)
			mode = "generic";
	}
	if (fd < 0) {
		if (fd == -EBUSY || native_err == -EBUSY) {
			fprintf(stderr, "failed to attach %s to %s: an XDP program is already attached "
				"there (ip link show dev %s; remove it, or stop the probe that owns it)\n",
				p, ifname, ifname);
			return EXIT_ATTACH;
		}
		if (fd == -EPERM)
			return fprintf(stderr, "failed to attach %s to %s: %s: run as root (CAP_NET_ADMIN)\n",
				       p, ifname, strerror(-fd)), EXIT_PERM;
		fprintf(stderr, "failed to attach %s to %s in %s mode: %s%s\n", p, ifname,
			want == XDP_FLAGS_DRV_MODE ? "native" : want ? "generic" : "native or generic",
			strerror(-fd), fd == -EINVAL ? " (XDP links need kernel >= 5.9)" : "");
		return EXIT_ATTACH;
	}
	link_fd = fd;
	if (!strcmp(mode, "generic") && native_err)
		fprintf(stderr, "%s: %s: native XDP not offered by the driver (%s); using generic "
			"(SKB) mode\n", p, ifname, strerror(-native_err));
	fprintf(stderr, "%s: attached to %s (ifindex %d) in %s mode\n", p, ifname, ifindex, mode);
	return 0;
}

int xdp_hello(char *buf, size_t len)
{
	int n = snprintf(buf, len, ",\"xdp\":{\"ifname\":\"%s\",\"ifindex\":%d,\"mode\":\"%s\"}",
			 ifname, ifindex, mode);

	return n < 0 ? 0 : (size_t)n >= len ? (int)len - 1 : n;
}

int percpu_u64_sum(int map_fd, const void *key, __u64 *sum)
{
	int ncpu = libbpf_num_possible_cpus();
	__u64 *vals;

	*sum = 0;
	if (ncpu <= 0)
		return ncpu ? ncpu : -EINVAL;
	vals = calloc((size_t)ncpu, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	if (bpf_map_lookup_elem(map_fd, key, vals)) {
		int err = -errno;

		free(vals);
		return err;
	}
	for (int i = 0; i < ncpu; i++)
		*sum += vals[i];
	free(vals);
	return 0;
}
