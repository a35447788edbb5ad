// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Record output in the three modes of the loader contract: a table for people, --json lines,
 * and --machine frames for the agent. Everything is driven by the probe's field table, which is
 * also what --manifest prints, so decoders and columns can never disagree with the loader.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "bpfleet/frame.h"
#include "output.h"

static const char *tcp_states[] = {
	[1] = "ESTABLISHED", [2] = "SYN_SENT", [3] = "SYN_RECV", [4] = "FIN_WAIT1",
	[5] = "FIN_WAIT2", [6] = "TIME_WAIT", [7] = "CLOSE", [8] = "CLOSE_WAIT",
	[9] = "LAST_ACK", [10] = "LISTEN", [11] = "CLOSING", [12] = "NEW_SYN_RECV",
	[13] = "BOUND_INACTIVE",
};

const char *tcp_state_name(uint64_t s)
{
	if (s < sizeof(tcp_states) / sizeof(tcp_states[0]) && tcp_states[s])
		return tcp_states[s];
	return "UNKNOWN";
}

static uint64_t read_uint(const void *rec, const struct probe_field *f)
{
	const unsigned char *p = (const unsigned char *)rec + f->offset;
	uint8_t u8; uint16_t u16; uint32_t u32; uint64_t u64;

	switch (f->size) {
	case 1: memcpy(&u8, p, 1); return u8;
	case 2: memcpy(&u16, p, 2); return u16;
	case 4: memcpy(&u32, p, 4); return u32;
	case 8: memcpy(&u64, p, 8); return u64;
	}
	return 0;
}

static int64_t read_int(const void *rec, const struct probe_field *f)
{
	uint64_t u = read_uint(rec, f);

	if (f->size == 4)
		return (int32_t)u;
	return (int64_t)u;
}

static int record_family(const struct probe_def *def, const void *rec)
{
	for (size_t i = 0; i < def->nfields; i++)
		if (def->fields[i].format == FMT_FAMILY)
			return (int)read_uint(rec, &def->fields[i]);
	return AF_INET;
}

/* Formats one field as text (no JSON quoting). Returns true if it is a string in JSON. */
static bool format_field(const struct probe_def *def, const void *rec, const struct probe_field *f,
			 char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)rec + f->offset;

	switch (f->type) {
	case FT_COMM:
	case FT_STR: {	/* FT_STR passes UTF-8 through (a truncated stack ends in "…") */
		size_t n = strnlen((const char *)p, f->size), o = 0;

		for (size_t i = 0; i < n && o + 7 < len; i++) {
			unsigned char c = p[i];

			if (c == '"' || c == '\\')
				o += snprintf(buf + o, len - o, "\\%c", c);
			else if (c < 0x20 || c == 0x7f || (c > 0x7f && f->type == FT_COMM))
				o += snprintf(buf + o, len - o, "\\u%04x", c);
			else
				buf[o++] = (char)c;
		}
		buf[o] = 0;
		return true;
	}
	case FT_ADDR: {
		int fam = record_family(def, rec);

		if (!inet_ntop(fam == AF_INET6 ? AF_INET6 : AF_INET, p, buf, (socklen_t)len))
			snprintf(buf, len, "?");
		return true;
	}
	case FT_S32:
	case FT_S64:
		snprintf(buf, len, "%" PRId64, read_int(rec, f));
		return false;
	default:
		break;
	}
	switch (f->format) {
	case FMT_FAMILY: {
		uint64_t v = read_uint(rec, f);

		snprintf(buf, len, "%s", v == AF_INET6 ? "IPv6" : v == AF_INET ? "IPv4" : "?");
		return true;
	}
	case FMT_TCPSTATE:
		snprintf(buf, len, "%s", tcp_state_name(read_uint(rec, f)));
		return true;
	case FMT_HEX:
		snprintf(buf, len, "0x%" PRIx64, read_uint(rec, f));
		return true;
	default:
		snprintf(buf, len, "%" PRIu64, read_uint(rec, f));
		return false;
	}
}

static int emit_json(const struct probe_def *def, const void *rec)
{
	static char buf[16384];	/* FT_STR fields (folded stacks) are up to a few KiB */

	putchar('{');
	for (size_t i = 0; i < def->nfields; i++) {
		const struct probe_field *f = &def->fields[i];
		bool str = format_field(def, rec, f, buf, sizeof(buf));

		printf(str ? "%s\"%s\":\"%s\"" : "%s\"%s\":%s", i ? "," : "", f->name, buf);
	}
	putchar('}');
	putchar('\n');
	return ferror(stdout) ? -EIO : 0;
}

void output_table_header(const struct probe_def *def)
{
	for (size_t i = 0; i < def->nfields; i++) {
		const struct probe_field *f = &def->fields[i];
		char up[64];
		size_t j;

		if (!f->width)
			continue;
		for (j = 0; f->name[j] && j < sizeof(up) - 1; j++)
			up[j] = (char)(f->name[j] >= 'a' && f->name[j] <= 'z' ? f->name[j] - 32 : f->name[j]);
		up[j] = 0;
		printf("%-*s ", f->width, up);
	}
	putchar('\n');
}

static int emit_table(const struct probe_def *def, const void *rec)
{
	static char buf[16384];	/* FT_STR fields (folded stacks) are up to a few KiB */

	for (size_t i = 0; i < def->nfields; i++) {
		const struct probe_field *f = &def->fields[i];

		if (!f->width)
			continue;
		format_field(def, rec, f, buf, sizeof(buf));
		printf("%-*s ", f->width, buf);
	}
	putchar('\n');
	return ferror(stdout) ? -EIO : 0;
}

int output_frame(uint16_t kind, const void *payload, uint32_t len)
{
	/* All supported targets are little-endian, so the native header is the wire header. */
	struct bpfleet_frame_hdr h = { .len = len, .kind = kind, .flags = 0 };

	if (fwrite(&h, sizeof(h), 1, stdout) != 1)
		return -errno ?: -EIO;
	if (len && fwrite(payload, len, 1, stdout) != 1)
		return -errno ?: -EIO;
	return 0;
}

int output_record(const struct probe_def *def, enum output_mode mode, const void *rec, size_t size)
{
	if (size < def->record_size)
		return -EINVAL;
	switch (mode) {
	case OUT_MACHINE:
		return output_frame(BPFLEET_FRAME_EVENT, rec, (uint32_t)def->record_size);
	case OUT_JSON:
		return emit_json(def, rec);
	default:
		return emit_table(def, rec);
	}
}

static const char *type_name(enum field_type t)
{
	static const char *names[] = { "u8", "u16", "u32", "u64", "s32", "s64", "comm", "addr", "str" };

	return names[t];
}

static const char *format_name(enum field_format f)
{
	static const char *names[] = { "plain", "family", "tcp_state", "hex", "ktime_ns" };

	return names[f];
}

static const char *kind_name(enum hook_kind k)
{
	static const char *names[] = { "tracepoint", "tp_btf", "raw_tp", "kprobe", "kretprobe", "xdp", "perf_event",
				       "uprobe" };

	return names[k];
}

const char *hook_kind_name(enum hook_kind k)
{
	return kind_name(k);
}

static void json_str(FILE *o, const char *s)
{
	fputc('"', o);
	for (; s && *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(o, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(o, "\\u%04x", *s);
		else
			fputc(*s, o);
	}
	fputc('"', o);
}

/* ,"smoke":{"trigger","args":[..],"expect":[{"field","op","value"}..],"description"} */
static void output_smoke(FILE *o, const struct probe_smoke *sm)
{
	fprintf(o, ",\"smoke\":{\"trigger\":");
	json_str(o, sm->trigger);
	fprintf(o, ",\"args\":[");
	for (size_t i = 0; sm->args && sm->args[i]; i++) {
		if (i)
			fputc(',', o);
		json_str(o, sm->args[i]);
	}
	fprintf(o, "],\"expect\":[");
	for (size_t i = 0; i < sm->nexpect; i++) {
		fprintf(o, "%s{\"field\":", i ? "," : "");
		json_str(o, sm->expect[i].field);
		fprintf(o, ",\"op\":");
		json_str(o, sm->expect[i].op);
		fprintf(o, ",\"value\":");
		json_str(o, sm->expect[i].value);
		fprintf(o, "}");
	}
	fprintf(o, "],\"description\":");
	json_str(o, sm->description);
	fprintf(o, "}");
}

void output_manifest(FILE *o, const struct probe_def *def)
{
	fprintf(o, "{\"schema\":\"bpfleet.manifest/v1\",\"probe\":");
	json_str(o, def->name);
	fprintf(o, ",\"version\":");
	json_str(o, def->version);
	fprintf(o, ",\"summary\":");
	json_str(o, def->summary);
	fprintf(o, ",\"kind\":");
	json_str(o, def->kind);
	fprintf(o, ",\"record\":{\"name\":");
	json_str(o, def->record);
	fprintf(o, ",\"size\":%zu,\"endian\":\"little\",\"fields\":[", def->record_size);
	for (size_t i = 0; i < def->nfields; i++) {
		const struct probe_field *f = &def->fields[i];

		fprintf(o, "%s{\"name\":", i ? "," : "");
		json_str(o, f->name);
		fprintf(o, ",\"type\":\"%s\",\"offset\":%zu,\"size\":%zu,\"format\":\"%s\",\"unit\":",
			type_name(f->type), f->offset, f->size, format_name(f->format));
		json_str(o, f->unit);
		fprintf(o, ",\"description\":");
		json_str(o, f->desc);
		fprintf(o, "}");
	}
	fprintf(o, "]},\"hooks\":[");
	for (size_t i = 0; i < def->nhooks; i++) {
		const struct probe_hook *h = &def->hooks[i];

		fprintf(o, "%s{\"group\":", i ? "," : "");
		json_str(o, h->group);
		fprintf(o, ",\"program\":");
		json_str(o, h->prog);
		fprintf(o, ",\"kind\":\"%s\",\"target\":", kind_name(h->kind));
		json_str(o, h->target);
		fprintf(o, "}");
	}
	fprintf(o, "],\"args\":[");
	for (size_t i = 0; i < def->nargs; i++) {
		fprintf(o, "%s{\"name\":", i ? "," : "");
		json_str(o, def->args[i].name);
		fprintf(o, ",\"value\":");
		if (def->args[i].value)
			json_str(o, def->args[i].value);
		else
			fprintf(o, "null");
		fprintf(o, ",\"description\":");
		json_str(o, def->args[i].desc);
		fprintf(o, "}");
	}
	fprintf(o, "],\"stats\":[\"ringbuf_full\",\"map_full\",\"sampled_out\",\"read_failed\"]");
	if (def->smoke)
		output_smoke(o, def->smoke);
	fprintf(o, "}");
}
