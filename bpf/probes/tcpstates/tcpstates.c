// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpstates loader: see tcpstates.bpf.c and bpf/README.md for the contract. */
#include <stdlib.h>
#include <linux/types.h>
#include "probe.h"
#include "tcpstates.h"
#include "tcpstates.skel.h"

#define EV struct tcpstates_event
static const struct probe_field fields[] = {
	FIELD(EV, ts_ns, FT_U64, FMT_KTIME_NS, "ns", 0, "monotonic time of the transition"),
	FIELD(EV, skaddr, FT_U64, FMT_HEX, "", 18, "kernel socket address (connection identity)"),
	FIELD(EV, pid, FT_U32, FMT_PLAIN, "", 7, "tgid of the task running at the transition"),
	FIELD(EV, comm, FT_COMM, FMT_PLAIN, "", 16, "command name of that task"),
	FIELD(EV, family, FT_U16, FMT_FAMILY, "", 5, "address family"),
	FIELD(EV, saddr, FT_ADDR, FMT_PLAIN, "", 15, "local address"),
	FIELD(EV, lport, FT_U16, FMT_PLAIN, "", 5, "local port"),
	FIELD(EV, daddr, FT_ADDR, FMT_PLAIN, "", 15, "remote address"),
	FIELD(EV, rport, FT_U16, FMT_PLAIN, "", 5, "remote port"),
	FIELD(EV, oldstate, FT_U16, FMT_TCPSTATE, "", 11, "state left"),
	FIELD(EV, newstate, FT_U16, FMT_TCPSTATE, "", 11, "state entered"),
	FIELD(EV, delta_us, FT_U64, FMT_PLAIN, "us", 10, "time spent in the state left (0: start not seen)"),
};

static const struct probe_hook hooks[] = {
	{ "set_state", "tcp_state_tp", HOOK_TRACEPOINT, "sock/inet_sock_set_state" },
	{ "set_state", "tcp_state_kprobe", HOOK_KPROBE, "tcp_set_state" },
};

/* Smoke test (bpf/README.md, "Smoke tests"): the tcp_loopback trigger, isolated by the filter. */
static const char *const smoke_args[] = { "--lport", "{port}", NULL };
static const struct probe_smoke_expect smoke_expect[] = {
	{ "lport", "eq", "{port}" },
	{ "newstate", "eq", "ESTABLISHED" },
};
static const struct probe_smoke smoke = {
	.trigger = "tcp_loopback",
	.args = smoke_args,
	.expect = smoke_expect,
	.nexpect = sizeof(smoke_expect) / sizeof(smoke_expect[0]),
	.description = "the server socket of a loopback connection to {port} enters ESTABLISHED",
};

static const struct probe_def def = {
	.name = "tcpstates",
	.version = "1.0.0",
	.summary = "TCP state transitions with the time spent in the old state (IPv4 and IPv6)",
	.kind = "stream",
	.record = "tcpstates_event",
	.record_size = sizeof(EV),
	.fields = fields,
	.nfields = sizeof(fields) / sizeof(fields[0]),
	.hooks = hooks,
	.nhooks = sizeof(hooks) / sizeof(hooks[0]),
	.smoke = &smoke,
};

int main(int argc, char **argv)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts);
	struct tcpstates_bpf *skel;
	int err;

	if (!probe_init(&def, argc, argv, &opts))
		return EXIT_OK;
	skel = tcpstates_bpf__open_opts(&opts);
	if (!skel)
		return probe_open_failed(&def);
	probe_prepare(&def, skel->obj);
	err = probe_run(&def, skel->obj);
	tcpstates_bpf__destroy(skel);
	return err;
}
