// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * xdpdrop loader: see xdpdrop.bpf.c and bpf/README.md for the contract.
 *
 * The blocklist (--block CIDR, repeatable, and --block-file FILE: one CIDR per line, '#'
 * comments) is parsed before anything is loaded; host bits are cleared, a prefix given twice
 * is one rule. The maps are sized to it, loaded, filled, and only then is the program attached
 * (lib/xdp.c: a BPF link, gone with this process). Every interval: one XDPDROP_PASSED record,
 * then one XDPDROP_DROPPED record per prefix that dropped something, busiest first.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/types.h>
#include <bpf/bpf.h>
#include "probe.h"
#include "xdp.h"
#include "xdpdrop.h"
#include "xdpdrop.skel.h"

#define MAX_RULES 65536

#define EV struct xdpdrop_event
static const struct probe_field fields[] = {
	FIELD(EV, ts_ns, FT_U64, FMT_KTIME_NS, "ns", 0, "monotonic time at the end of the interval"),
	FIELD(EV, type, FT_U8, FMT_PLAIN, "", 5, "0: packets passed to the stack; 1: packets dropped by one prefix"),
	FIELD(EV, family, FT_U16, FMT_FAMILY, "", 7, "dropped: address family of the prefix"),
	FIELD(EV, addr, FT_ADDR, FMT_PLAIN, "", 26, "dropped: the blocklist prefix"),
	FIELD(EV, prefixlen, FT_U8, FMT_PLAIN, "", 4, "dropped: its length"),
	FIELD(EV, rule, FT_U32, FMT_PLAIN, "", 5, "dropped: index of the prefix in the blocklist"),
	FIELD(EV, packets, FT_U64, FMT_PLAIN, "packets", 10, "packets in the interval"),
	FIELD(EV, bytes, FT_U64, FMT_PLAIN, "bytes", 12, "frame bytes in the interval"),
	FIELD(EV, packets_total, FT_U64, FMT_PLAIN, "packets", 12, "packets since the probe started"),
	FIELD(EV, bytes_total, FT_U64, FMT_PLAIN, "bytes", 0, "frame bytes since the probe started"),
};

static const struct probe_hook hooks[] = {
	{ "rx", "xdpdrop_xdp", HOOK_XDP, "--ifname" },
};

static const struct probe_arg args[] = {
	XDP_ARGS,
	{ "block", "CIDR", "drop packets from this IPv4/IPv6 prefix (repeatable; an address alone is /32 or /128)" },
	{ "block-file", "FILE", "drop packets from the prefixes in FILE, one per line, '#' comments" },
};

struct rule {
	__u16 family;
	__u8 prefixlen;
	__u8 addr[16];
	struct xdpdrop_count seen;	/* kernel totals at the last interval */
};

static struct rule *rules;
static __u32 nrules;
static struct xdpdrop_count passed_seen;
static struct bpf_object *object;

static int add_rule(const char *cidr, const char *where)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash, *end;
	struct rule r = {};
	int max;
	long len;

	if (strlen(cidr) >= sizeof(buf))
		goto bad;
	strcpy(buf, cidr);
	slash = strchr(buf, '/');
	if (slash)
		*slash = 0;
	if (inet_pton(AF_INET, buf, r.addr) == 1)
		r.family = AF_INET, max = 32;
	else if (inet_pton(AF_INET6, buf, r.addr) == 1)
		r.family = AF_INET6, max = 128;
	else
		goto bad;
	len = max;
	if (slash) {
		errno = 0;
		len = strtol(slash + 1, &end, 10);
		if (errno || *end || !slash[1] || len < 0 || len > max)
			goto bad;
	}
	r.prefixlen = (__u8)len;
	for (int bit = (int)len; bit < max; bit++)	/* clear host bits */
		r.addr[bit / 8] &= (__u8)~(0x80 >> (bit % 8));
	for (__u32 i = 0; i < nrules; i++)
		if (rules[i].family == r.family && rules[i].prefixlen == r.prefixlen &&
		    !memcmp(rules[i].addr, r.addr, sizeof(r.addr)))
			return 0;
	if (nrules == MAX_RULES) {
		fprintf(stderr, "xdpdrop: more than %d prefixes; split the blocklist\n", MAX_RULES);
		exit(EXIT_USAGE);
	}
	if (!(nrules & (nrules + 1)) || !rules) {
		struct rule *t = realloc(rules, (nrules + 1) * 2 * sizeof(*rules));

		if (!t)
			return -1;
		rules = t;
	}
	rules[nrules++] = r;
	return 0;
bad:
	fprintf(stderr, "xdpdrop: %s: '%s' is not an IPv4 or IPv6 prefix (like 10.0.0.0/8, "
		"192.0.2.7 or 2001:db8::/32)\n", where, cidr);
	exit(EXIT_USAGE);
}

static int read_block_file(const char *path)
{
	char line[256], where[300];
	FILE *f = fopen(path, "r");
	int n = 0;

	if (!f) {
		fprintf(stderr, "xdpdrop: cannot read --block-file %s: %s\n", path, strerror(errno));
		exit(EXIT_USAGE);
	}
	while (fgets(line, sizeof(line), f)) {
		char *s = line, *e;

		n++;
		if ((e = strchr(s, '#')))
			*e = 0;
		while (*s == ' ' || *s == '\t')
			s++;
		e = s + strlen(s);
		while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
			*--e = 0;
		if (!*s)
			continue;
		snprintf(where, sizeof(where), "%s line %d", path, n);
		if (add_rule(s, where))
			break;
	}
	fclose(f);
	return 0;
}

static int parse_arg(const char *name, const char *value)
{
	if (!xdp_parse_arg(name, value))
		return 0;
	if (!strcmp(name, "block"))
		return add_rule(value, "--block");
	if (!strcmp(name, "block-file"))
		return read_block_file(value);
	return -1;
}

/* After load, before the program sees a packet: the tries get the blocklist. */
static int attach(struct bpf_program *prog, const struct probe_hook *hook)
{
	struct bpf_map *m4 = bpf_object__find_map_by_name(object, "block4");
	struct bpf_map *m6 = bpf_object__find_map_by_name(object, "block6");

	for (__u32 i = 0; i < nrules; i++) {
		struct xdpdrop_key4 k4 = { .prefixlen = rules[i].prefixlen };
		struct xdpdrop_key6 k6 = { .prefixlen = rules[i].prefixlen };
		int err;

		memcpy(k4.addr, rules[i].addr, 4);
		memcpy(k6.addr, rules[i].addr, 16);
		err = rules[i].family == AF_INET ?
		      bpf_map_update_elem(bpf_map__fd(m4), &k4, &i, BPF_ANY) :
		      bpf_map_update_elem(bpf_map__fd(m6), &k6, &i, BPF_ANY);
		if (err) {
			fprintf(stderr, "xdpdrop: cannot add prefix %u to the blocklist map: %s\n", i,
				strerror(errno));
			return EXIT_RUNTIME;
		}
	}
	return xdp_attach(prog, hook);
}

static int read_slot(int fd, __u32 slot, struct xdpdrop_count *out, int ncpu, struct xdpdrop_count *vals)
{
	memset(out, 0, sizeof(*out));
	if (bpf_map_lookup_elem(fd, &slot, vals))
		return -1;
	for (int c = 0; c < ncpu; c++) {
		out->packets += vals[c].packets;
		out->bytes += vals[c].bytes;
	}
	return 0;
}

static int by_packets_desc(const void *a, const void *b)
{
	const struct xdpdrop_event *x = a, *y = b;

	if (x->packets != y->packets)
		return x->packets > y->packets ? -1 : 1;
	return x->rule < y->rule ? -1 : x->rule > y->rule;
}

static int on_interval(struct probe_ctx *ctx, struct bpf_object *obj)
{
	struct bpf_map *map = bpf_object__find_map_by_name(obj, "counts");
	int ncpu = libbpf_num_possible_cpus(), fd, err = 0;
	struct xdpdrop_count *vals, now;
	struct xdpdrop_event *out;
	__u64 ts = probe_now_ns();
	__u32 nout = 0;

	if (!map || ncpu <= 0)
		return -1;
	fd = bpf_map__fd(map);
	vals = calloc((size_t)ncpu, sizeof(*vals));
	out = calloc(nrules ? nrules : 1, sizeof(*out));
	if (!vals || !out) {
		free(vals);
		free(out);
		return -1;
	}
	for (__u32 i = 0; i < nrules; i++) {
		struct rule *r = &rules[i];
		struct xdpdrop_event *e = &out[nout];

		if (read_slot(fd, i, &now, ncpu, vals)) {
			probe_count_lost(ctx, 1);
			continue;
		}
		if (now.packets == r->seen.packets)
			continue;
		*e = (struct xdpdrop_event){
			.ts_ns = ts, .type = XDPDROP_DROPPED, .family = r->family,
			.prefixlen = r->prefixlen, .rule = i,
			.packets = now.packets - r->seen.packets, .bytes = now.bytes - r->seen.bytes,
			.packets_total = now.packets, .bytes_total = now.bytes,
		};
		memcpy(e->addr, r->addr, sizeof(e->addr));
		r->seen = now;
		nout++;
	}
	if (read_slot(fd, nrules, &now, ncpu, vals)) {
		probe_count_lost(ctx, 1);
	} else {
		struct xdpdrop_event e = {
			.ts_ns = ts, .type = XDPDROP_PASSED, .family = AF_INET,
			.packets = now.packets - passed_seen.packets, .bytes = now.bytes - passed_seen.bytes,
			.packets_total = now.packets, .bytes_total = now.bytes,
		};

		passed_seen = now;
		if (probe_emit(ctx, &e, sizeof(e)) == -EPIPE)
			err = -1;
	}
	qsort(out, nout, sizeof(*out), by_packets_desc);
	for (__u32 i = 0; i < nout && !err; i++)
		if (probe_emit(ctx, &out[i], sizeof(out[i])) == -EPIPE)
			err = -1;
	free(vals);
	free(out);
	return err;
}

/*
 * Smoke test (bpf/README.md, "Smoke tests"): udp_loopback sends {packets} datagrams on lo from
 * {addr}, an address of 127/8 no one else uses; only they are blocked.
 */
static const char *const smoke_args[] = {
	"--ifname", "lo", "--xdp-mode", "generic", "--block", "{addr}/32", "--interval", "200", NULL
};
static const struct probe_smoke_expect smoke_expect[] = {
	{ "type", "eq", "1" },
	{ "addr", "eq", "{addr}" },
	{ "packets_total", "ge", "{packets}" },
};
static const struct probe_smoke smoke = {
	.trigger = "udp_loopback",
	.args = smoke_args,
	.expect = smoke_expect,
	.nexpect = sizeof(smoke_expect) / sizeof(smoke_expect[0]),
	.description = "the {packets} datagrams from {addr} on lo dropped by its rule",
};

static const struct probe_def def = {
	.name = "xdpdrop",
	.version = "1.0.0",
	.summary = "drops packets from blocklisted IPv4/IPv6 source prefixes in XDP; drops per prefix and passed per interval",
	.kind = "interval",
	.record = "xdpdrop_event",
	.record_size = sizeof(EV),
	.fields = fields,
	.nfields = sizeof(fields) / sizeof(fields[0]),
	.hooks = hooks,
	.nhooks = sizeof(hooks) / sizeof(hooks[0]),
	.args = args,
	.nargs = sizeof(args) / sizeof(args[0]),
	.parse_arg = parse_arg,
	.on_interval = on_interval,
	.attach = attach,
	.hello = xdp_hello,
	.smoke = &smoke,
};

int main(int argc, char **argv)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts);
	struct xdpdrop_bpf *skel;
	__u32 n;
	int err;

	if (!probe_init(&def, argc, argv, &opts))
		return EXIT_OK;
	xdp_check_args(def.name);
	skel = xdpdrop_bpf__open_opts(&opts);
	if (!skel)
		return probe_open_failed(&def);
	object = skel->obj;
	skel->rodata->passed_slot = nrules;
	n = 0;
	for (__u32 i = 0; i < nrules; i++)
		n += rules[i].family == AF_INET;
	if (bpf_map__set_max_entries(skel->maps.block4, n ? n : 1) ||
	    bpf_map__set_max_entries(skel->maps.block6, nrules - n ? nrules - n : 1) ||
	    bpf_map__set_max_entries(skel->maps.counts, nrules + 1)) {
		fprintf(stderr, "xdpdrop: internal: cannot size the maps for %u prefixes\n", nrules);
		return EXIT_RUNTIME;
	}
	fprintf(stderr, "xdpdrop: %u prefixes (%u IPv4, %u IPv6)%s\n", nrules, n, nrules - n,
		nrules ? "" : ": nothing will be dropped");
	probe_prepare(&def, skel->obj);
	err = probe_run(&def, skel->obj);
	xdpdrop_bpf__destroy(skel);
	free(rules);
	return err;
}
