// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * netstat loader: see netstat.bpf.c and bpf/README.md for the contract.
 *
 * Two sources, one record layout:
 *  - procfs (group Tcp, TcpExt, Udp, Ip, IpExt, Icmp, Ip6, Udp6, Icmp6; pid 0): the kernel's
 *    SNMP and netstat MIB counters, read from /proc/net/snmp, /proc/net/netstat and
 *    /proc/net/snmp6 at start and every interval. These are the kernel's own counters of this
 *    network namespace (the loader's); reading them is the honest source, eBPF adds nothing.
 *    By default the counters of seed 004's table (aborts, retransmits, listen overflows,
 *    reordering, out-of-order, syncookies, UDP errors, IP/ICMP errors, multicast, ECN);
 *    --all-counters: every counter of the three files.
 *  - eBPF (group TcpState): TCP state transitions per process and state entered (the
 *    sock:inet_sock_set_state tracepoint, kprobe tcp_set_state as fallback).
 * Only counters that changed in the interval are emitted; a counter that first appears
 * later (a module loaded) starts from 0.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <linux/types.h>
#include <bpf/bpf.h>
#include "probe.h"
#include "netstat.h"
#include "netstat.skel.h"
#include "output.h"

#define EV struct netstat_event
static const struct probe_field fields[] = {
	FIELD(EV, ts_ns, FT_U64, FMT_KTIME_NS, "ns", 0, "monotonic time at the end of the interval"),
	FIELD(EV, group, FT_COMM, FMT_PLAIN, "", 9, "Tcp, TcpExt, Udp, Ip, IpExt, Icmp, Ip6, Udp6, Icmp6 (procfs); TcpState (eBPF)"),
	FIELD(EV, name, FT_STR, FMT_PLAIN, "", 22, "kernel counter name; TcpState: the TCP state entered"),
	FIELD(EV, delta, FT_S64, FMT_PLAIN, "", 10, "change in this interval"),
	FIELD(EV, value, FT_U64, FMT_PLAIN, "", 14, "procfs: the counter now; TcpState: transitions since the probe started"),
	FIELD(EV, pid, FT_U32, FMT_PLAIN, "", 7, "TcpState: tgid of the task current at the transition; 0 for procfs"),
	FIELD(EV, comm, FT_COMM, FMT_PLAIN, "", 16, "TcpState: its command name"),
};

static const struct probe_hook hooks[] = {
	{ "set_state", "tcp_state_tp", HOOK_TRACEPOINT, "sock/inet_sock_set_state" },
	{ "set_state", "tcp_state_kprobe", HOOK_KPROBE, "tcp_set_state" },
};

static const struct probe_arg args[] = {
	{ "all-counters", NULL, "every counter of /proc/net/snmp, netstat and snmp6, not just seed 004's table" },
};

/* Seed 004's table ("group.Name"); the rest only with --all-counters. */
static const char *const table[] = {
	/* TCP connection aborts, accept queue, reordering, out-of-order queue, syncookies */
	"TcpExt.TCPAbortOnData", "TcpExt.TCPAbortOnClose", "TcpExt.TCPAbortOnMemory",
	"TcpExt.TCPAbortOnTimeout", "TcpExt.TCPAbortOnLinger", "TcpExt.TCPAbortFailed",
	"TcpExt.ListenOverflows", "TcpExt.ListenDrops", "TcpExt.TCPTSReorder",
	"TcpExt.TCPSACKReorder", "TcpExt.TCPRenoReorder", "TcpExt.TCPOFOQueue", "TcpExt.TCPOFODrop",
	"TcpExt.TCPOFOMerge", "TcpExt.OfoPruned", "TcpExt.SyncookiesRecv", "TcpExt.SyncookiesSent",
	"TcpExt.SyncookiesFailed",
	/* retransmissions and timeouts */
	"TcpExt.TCPLostRetransmit", "TcpExt.TCPFastRetrans", "TcpExt.TCPSlowStartRetrans",
	"TcpExt.TCPTimeouts", "TcpExt.TCPSynRetrans", "TcpExt.TCPRetransFail",
	"TcpExt.TCPBacklogDrop", "TcpExt.TCPReqQFullDrop", "TcpExt.TCPMemoryPressures",
	"TcpExt.EmbryonicRsts", "TcpExt.PruneCalled",
	/* TCP: opens, handshake issues, packets, errors */
	"Tcp.ActiveOpens", "Tcp.PassiveOpens", "Tcp.AttemptFails", "Tcp.EstabResets", "Tcp.CurrEstab",
	"Tcp.InSegs", "Tcp.OutSegs", "Tcp.RetransSegs", "Tcp.InErrs", "Tcp.OutRsts", "Tcp.InCsumErrors",
	/* UDP */
	"Udp.InDatagrams", "Udp.OutDatagrams", "Udp.NoPorts", "Udp.InErrors", "Udp.RcvbufErrors",
	"Udp.SndbufErrors", "Udp.InCsumErrors", "Udp.IgnoredMulti",
	/* IPv4 packets and errors, ICMP, multicast, ECN */
	"Ip.InReceives", "Ip.OutRequests", "Ip.ForwDatagrams", "Ip.InDelivers", "Ip.InDiscards",
	"Ip.OutDiscards", "Ip.InHdrErrors", "Ip.OutNoRoutes", "Ip.InAddrErrors",
	"Icmp.InMsgs", "Icmp.OutMsgs", "Icmp.InErrors", "Icmp.OutErrors", "Icmp.InCsumErrors",
	"Icmp.InEchos", "Icmp.OutEchoReps",
	"IpExt.InMcastPkts", "IpExt.OutMcastPkts", "IpExt.InMcastOctets", "IpExt.OutMcastOctets",
	"IpExt.InCEPkts", "IpExt.InNoECTPkts", "IpExt.InECT0Pkts", "IpExt.InECT1Pkts",
	/* IPv6 */
	"Ip6.InReceives", "Ip6.OutRequests", "Ip6.OutForwDatagrams", "Ip6.InDelivers",
	"Ip6.InDiscards", "Ip6.OutDiscards", "Ip6.InMcastPkts", "Ip6.OutMcastPkts",
	"Udp6.InDatagrams", "Udp6.OutDatagrams", "Udp6.NoPorts", "Udp6.InErrors",
	"Udp6.RcvbufErrors", "Udp6.SndbufErrors", "Icmp6.InMsgs", "Icmp6.OutMsgs", "Icmp6.InErrors",
};

struct counter {
	char group[16];
	char name[32];
	__u64 value;
	bool seen;		/* read this time */
};

static bool all_counters;
static struct counter *ctrs;
static size_t nctrs, capctrs;

struct seen {
	struct netstat_key key;
	__u64 count;		/* kernel count, summed over CPUs */
	__u64 total;		/* transitions counted since start */
	char comm[16];
};
static struct seen *prev;
static size_t nprev;

static int parse_arg(const char *name, const char *value)
{
	(void)value;
	if (!strcmp(name, "all-counters")) {
		all_counters = true;
		return 0;
	}
	return -1;
}

static bool wanted(const char *group, const char *name)
{
	char full[64];

	if (all_counters)
		return true;
	snprintf(full, sizeof(full), "%s.%s", group, name);
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (!strcmp(table[i], full))
			return true;
	return false;
}

static struct counter *counter(const char *group, const char *name)
{
	struct counter *c;

	for (size_t i = 0; i < nctrs; i++)
		if (!strcmp(ctrs[i].name, name) && !strcmp(ctrs[i].group, group))
			return &ctrs[i];
	if (nctrs == capctrs) {
		capctrs = capctrs ? capctrs * 2 : 128;
		c = realloc(ctrs, capctrs * sizeof(*ctrs));
		if (!c)
			return NULL;
		ctrs = c;
	}
	c = &ctrs[nctrs++];
	memset(c, 0, sizeof(*c));
	snprintf(c->group, sizeof(c->group), "%s", group);
	snprintf(c->name, sizeof(c->name), "%s", name);
	return c;
}

/* A counter read now: returns the change since the last read (first read: a baseline). */
static int update(const char *group, const char *name, __u64 v, bool baseline,
		  struct probe_ctx *ctx, __u64 ts)
{
	struct counter *c;
	__s64 d;

	if (!wanted(group, name))
		return 0;
	c = counter(group, name);
	if (!c)
		return -1;
	d = (__s64)(v - c->value);
	c->value = v;
	if (baseline || !d)
		return 0;
	struct netstat_event e = { .ts_ns = ts, .delta = d, .value = v };

	memcpy(e.group, c->group, sizeof(e.group));
	memcpy(e.name, c->name, sizeof(e.name));
	return probe_emit(ctx, &e, sizeof(e)) == -EPIPE ? -1 : 0;
}

/* /proc/net/snmp and /proc/net/netstat: pairs of "Group: names..." / "Group: values..." lines. */
static int read_pairs(const char *path, bool baseline, struct probe_ctx *ctx, __u64 ts)
{
	static char names[8192], values[8192];
	FILE *f = fopen(path, "r");
	int err = 0;

	if (!f) {
		fprintf(stderr, "netstat: cannot read %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (!err && fgets(names, sizeof(names), f) && fgets(values, sizeof(values), f)) {
		char *sn, *sv, *n, *v, *colon = strchr(names, ':');
		char group[16];

		if (!colon || strncmp(names, values, (size_t)(colon - names + 1)))
			continue;	/* out of step: a header without values */
		snprintf(group, sizeof(group), "%.*s", (int)(colon - names), names);
		n = strtok_r(colon + 1, " \n", &sn);
		v = strtok_r(values + (colon - names) + 1, " \n", &sv);
		for (; n && v && !err; n = strtok_r(NULL, " \n", &sn), v = strtok_r(NULL, " \n", &sv))
			/* Signed in the file for a few (Tcp MaxConn -1): kept as two's complement. */
			err = update(group, n, (__u64)strtoll(v, NULL, 10), baseline, ctx, ts);
	}
	fclose(f);
	return err;
}

/* /proc/net/snmp6: "Ip6InReceives  123" lines; group = the prefix up to the first capital after it. */
static int read_snmp6(bool baseline, struct probe_ctx *ctx, __u64 ts)
{
	char line[256], key[128], group[16];
	unsigned long long v;
	FILE *f = fopen("/proc/net/snmp6", "r");
	int err = 0;

	if (!f)
		return 0;	/* kernel without IPv6: nothing to read, not an error */
	while (!err && fgets(line, sizeof(line), f)) {
		size_t g = 0;

		if (sscanf(line, "%127s %llu", key, &v) != 2)
			continue;
		/* Ip6, Icmp6, Udp6, UdpLite6: letters up to and including the '6'. */
		while (key[g] && key[g] != '6')
			g++;
		if (!key[g] || g + 1 >= sizeof(group))
			continue;
		snprintf(group, sizeof(group), "%.*s", (int)g + 1, key);
		err = update(group, key + g + 1, v, baseline, ctx, ts);
	}
	fclose(f);
	return err;
}

static int read_procfs(bool baseline, struct probe_ctx *ctx, __u64 ts)
{
	if (read_pairs("/proc/net/snmp", baseline, ctx, ts) ||
	    read_pairs("/proc/net/netstat", baseline, ctx, ts))
		return -1;
	return read_snmp6(baseline, ctx, ts);
}

static int by_key(const void *a, const void *b)
{
	const struct netstat_key *x = a, *y = b;	/* key is the first member of struct seen */

	if (x->tgid != y->tgid)
		return x->tgid < y->tgid ? -1 : 1;
	return x->state < y->state ? -1 : x->state > y->state;
}

/* eBPF part: per-interval deltas of the per-(tgid, state) transition counts. */
static int read_states(struct probe_ctx *ctx, struct bpf_object *obj, __u64 ts)
{
	struct bpf_map *map = bpf_object__find_map_by_name(obj, "states");
	int ncpu = libbpf_num_possible_cpus(), fd, err = 0;
	struct netstat_key key, *kp = NULL;
	struct netstat_val *vals;
	struct seen *next = NULL, *t;
	size_t n = 0, cap = 0, p = 0;

	if (!map || ncpu <= 0)
		return -1;
	fd = bpf_map__fd(map);
	vals = calloc((size_t)ncpu, sizeof(*vals));
	if (!vals)
		return -1;
	while (bpf_map_get_next_key(fd, kp, &key) == 0) {
		struct seen s = { .key = key };

		kp = &key;
		if (bpf_map_lookup_elem(fd, &key, vals)) {
			probe_count_lost(ctx, 1);
			continue;
		}
		for (int c = 0; c < ncpu; c++) {
			s.count += vals[c].count;
			if (!s.comm[0] && vals[c].comm[0])
				memcpy(s.comm, vals[c].comm, sizeof(s.comm));
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			t = realloc(next, cap * sizeof(*next));
			if (!t) {
				free(next);
				free(vals);
				return -1;
			}
			next = t;
		}
		next[n++] = s;
	}
	qsort(next, n, sizeof(*next), by_key);
	for (size_t i = 0; i < n && !err; i++) {
		bool known;
		__u64 d;

		while (p < nprev && by_key(&prev[p].key, &next[i].key) < 0)
			p++;
		known = p < nprev && !by_key(&prev[p].key, &next[i].key);
		/* A smaller count means the entry was deleted and recreated. */
		d = !known ? next[i].count :
		    next[i].count >= prev[p].count ? next[i].count - prev[p].count : next[i].count;
		next[i].total = (known ? prev[p].total : 0) + d;
		if (!d) {
			/* Idle entry of a process that is gone: forget it (its counts were reported). */
			if (probe_pid_gone(next[i].key.tgid))
				bpf_map_delete_elem(fd, &next[i].key);
			continue;
		}
		struct netstat_event e = { .ts_ns = ts, .delta = (__s64)d, .value = next[i].total,
					   .pid = next[i].key.tgid };

		memcpy(e.comm, next[i].comm, sizeof(e.comm));
		snprintf(e.group, sizeof(e.group), "TcpState");
		snprintf(e.name, sizeof(e.name), "%s", tcp_state_name(next[i].key.state));
		if (probe_emit(ctx, &e, sizeof(e)) == -EPIPE)
			err = -1;
	}
	free(prev);
	prev = next;
	nprev = n;
	free(vals);
	return err;
}

static int on_interval(struct probe_ctx *ctx, struct bpf_object *obj)
{
	__u64 ts = probe_now_ns();

	if (read_procfs(false, ctx, ts))
		return -1;
	return read_states(ctx, obj, ts);
}

/*
 * Smoke test (bpf/README.md, "Smoke tests"): tcp_loopback; connect() enters SYN_SENT in the
 * connecting task, so the transition is charged exactly to the agent process.
 */
static const char *const smoke_args[] = { "--pid", "{pid}", "--interval", "200", NULL };
static const struct probe_smoke_expect smoke_expect[] = {
	{ "group", "eq", "TcpState" },
	{ "name", "eq", "SYN_SENT" },
	{ "pid", "eq", "{pid}" },
};
static const struct probe_smoke smoke = {
	.trigger = "tcp_loopback",
	.args = smoke_args,
	.expect = smoke_expect,
	.nexpect = sizeof(smoke_expect) / sizeof(smoke_expect[0]),
	.description = "the agent process {pid} connected to 127.0.0.1:{port}: a SYN_SENT transition charged to it",
};

static const struct probe_def def = {
	.name = "netstat",
	.version = "1.0.0",
	.summary = "kernel SNMP/netstat counters as per-interval deltas (procfs) and TCP state transitions per process (eBPF)",
	.kind = "interval",
	.record = "netstat_event",
	.record_size = sizeof(EV),
	.fields = fields,
	.nfields = sizeof(fields) / sizeof(fields[0]),
	.hooks = hooks,
	.nhooks = sizeof(hooks) / sizeof(hooks[0]),
	.args = args,
	.nargs = sizeof(args) / sizeof(args[0]),
	.parse_arg = parse_arg,
	.on_interval = on_interval,
	.smoke = &smoke,
};

int main(int argc, char **argv)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts);
	struct netstat_bpf *skel;
	int err;

	if (!probe_init(&def, argc, argv, &opts))
		return EXIT_OK;
	skel = netstat_bpf__open_opts(&opts);
	if (!skel)
		return probe_open_failed(&def);
	probe_prepare(&def, skel->obj);
	/* The baseline: the first interval reports what changed after the probe started. */
	if (read_procfs(true, NULL, 0)) {
		netstat_bpf__destroy(skel);
		return EXIT_RUNTIME;
	}
	err = probe_run(&def, skel->obj);
	netstat_bpf__destroy(skel);
	free(ctrs);
	free(prev);
	return err;
}
