// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcplife loader: see tcplife.bpf.c and bpf/README.md for the contract. */
#include <linux/types.h>
#include "probe.h"
#include "tcplife.h"
#include "tcplife.skel.h"

#define EV struct tcplife_event
static const struct probe_field fields[] = {
	FIELD(EV, ts_ns, FT_U64, FMT_KTIME_NS, "ns", 0, "monotonic time the connection closed"),
	FIELD(EV, skaddr, FT_U64, FMT_HEX, "", 0, "kernel socket address"),
	FIELD(EV, pid, FT_U32, FMT_PLAIN, "", 7, "tgid of the task seen opening the connection"),
	FIELD(EV, comm, FT_COMM, FMT_PLAIN, "", 16, "command name of that task"),
	FIELD(EV, family, FT_U16, FMT_FAMILY, "", 5, "address family"),
	FIELD(EV, saddr, FT_ADDR, FMT_PLAIN, "", 15, "local address"),
	FIELD(EV, lport, FT_U16, FMT_PLAIN, "", 5, "local port"),
	FIELD(EV, daddr, FT_ADDR, FMT_PLAIN, "", 15, "remote address"),
	FIELD(EV, rport, FT_U16, FMT_PLAIN, "", 5, "remote port"),
	FIELD(EV, tx_bytes, FT_U64, FMT_PLAIN, "bytes", 10, "bytes sent and acknowledged"),
	FIELD(EV, rx_bytes, FT_U64, FMT_PLAIN, "bytes", 10, "bytes received"),
	FIELD(EV, span_us, FT_U64, FMT_PLAIN, "us", 10, "lifetime from the first state seen to CLOSE"),
	FIELD(EV, passive, FT_U8, FMT_PLAIN, "", 7, "1 if accepted, 0 if connected"),
	FIELD(EV, open_seen, FT_U8, FMT_PLAIN, "", 0, "1 if the opening was traced (span/pid valid)"),
};

static const struct probe_hook hooks[] = {
	{ "set_state", "tcp_state_tp", HOOK_TRACEPOINT, "sock/inet_sock_set_state" },
	{ "set_state", "tcp_state_kprobe", HOOK_KPROBE, "tcp_set_state" },
};

/* Smoke test (bpf/README.md, "Smoke tests"): the tcp_loopback trigger, isolated by the filter. */
static const char *const smoke_args[] = { "--lport", "{port}", NULL };
static const struct probe_smoke_expect smoke_expect[] = {
	{ "lport", "eq", "{port}" },
	{ "rx_bytes", "ge", "{bytes}" },
	{ "tx_bytes", "ge", "{bytes}" },
};
static const struct probe_smoke smoke = {
	.trigger = "tcp_loopback",
	.args = smoke_args,
	.expect = smoke_expect,
	.nexpect = sizeof(smoke_expect) / sizeof(smoke_expect[0]),
	.description = "the server side of a closed loopback connection to {port} moved {bytes} bytes each way",
};

static const struct probe_def def = {
	.name = "tcplife",
	.version = "1.0.0",
	.summary = "TCP connection lifetimes per process with bytes each way",
	.kind = "stream",
	.record = "tcplife_event",
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
	struct tcplife_bpf *skel;
	int err;

	if (!probe_init(&def, argc, argv, &opts))
		return EXIT_OK;
	skel = tcplife_bpf__open_opts(&opts);
	if (!skel)
		return probe_open_failed(&def);
	probe_prepare(&def, skel->obj);
	err = probe_run(&def, skel->obj);
	tcplife_bpf__destroy(skel);
	return err;
}
