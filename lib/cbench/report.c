/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The three report formats, byte for byte in Google Benchmark 1.7's layout where we
 * could check it against the C++ library: console (ConsoleReporter, without colour),
 * JSON (JSONReporter) and CSV (CSVReporter). JSON is written by hand with a strict
 * escaper (see docs/benchmarks.md for why not json-c).
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cbench/internal.h"
#include "common/verify.h"

double
cbench_unit_multiplier(enum cbench_unit unit)
{
	switch (unit) {
	case CBENCH_S:
		return 1.0;
	case CBENCH_MS:
		return 1e3;
	case CBENCH_US:
		return 1e6;
	case CBENCH_NS:
	case CBENCH_UNIT_DEFAULT:
		break;
	}
	return 1e9;
}

const char *
cbench_unit_name(enum cbench_unit unit)
{
	switch (unit) {
	case CBENCH_S:
		return "s";
	case CBENCH_MS:
		return "ms";
	case CBENCH_US:
		return "us";
	case CBENCH_NS:
	case CBENCH_UNIT_DEFAULT:
		break;
	}
	return "ns";
}

/* Per-iteration time in the result's unit (GB's GetAdjustedRealTime/CPUTime). */
static double
adjusted(const struct cbench_result *r, double accumulated_s)
{
	double t = accumulated_s * cbench_unit_multiplier(r->unit);

	if (r->iterations != 0) {
		t /= (double)r->iterations;
	}
	return t;
}

/* Length of a valid UTF-8 sequence at s, or 0 if the bytes there are not one. */
static size_t
utf8_len(const unsigned char *s)
{
	size_t n;
	uint32_t cp;

	if (s[0] < 0x80) {
		return 1;
	} else if ((s[0] & 0xE0) == 0xC0) {
		n = 2;
		cp = s[0] & 0x1F;
	} else if ((s[0] & 0xF0) == 0xE0) {
		n = 3;
		cp = s[0] & 0x0F;
	} else if ((s[0] & 0xF8) == 0xF0) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80) {
			return 0; /* also stops at the NUL */
		}
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	/* Overlong forms, surrogates and values past U+10FFFF are not valid UTF-8. */
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
		return 0;
	}
	return n;
}

void
cbench_json_escape(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p != '\0') {
		size_t n;

		switch (*p) {
		case '"':
			fputs("\\\"", out);
			break;
		case '\\':
			fputs("\\\\", out);
			break;
		case '\b':
			fputs("\\b", out);
			break;
		case '\f':
			fputs("\\f", out);
			break;
		case '\n':
			fputs("\\n", out);
			break;
		case '\r':
			fputs("\\r", out);
			break;
		case '\t':
			fputs("\\t", out);
			break;
		default:
			if (*p < 0x20 || *p == 0x7F) {
				fprintf(out, "\\u%04x", *p);
				break;
			}
			n = utf8_len(p);
			if (n == 0) {
				fputs("\\ufffd", out);
				break;
			}
			fwrite(p, 1, n, out);
			p += n - 1;
			break;
		}
		p++;
	}
}

static void
json_str(FILE *out, const char *indent, const char *key, const char *value, bool comma)
{
	fprintf(out, "%s\"", indent);
	cbench_json_escape(out, key);
	fputs("\": \"", out);
	cbench_json_escape(out, value);
	fprintf(out, "\"%s\n", comma ? "," : "");
}

static void
json_int(FILE *out, const char *indent, const char *key, int64_t value, bool comma)
{
	fprintf(out, "%s\"", indent);
	cbench_json_escape(out, key);
	fprintf(out, "\": %" PRId64 "%s\n", value, comma ? "," : "");
}

/* Doubles as GB writes them: 17 significant digits, NaN and Infinity spelled out. */
static void
json_double(FILE *out, const char *indent, const char *key, double value, bool comma)
{
	fprintf(out, "%s\"", indent);
	cbench_json_escape(out, key);
	fputs("\": ", out);
	if (isnan(value)) {
		fputs("NaN", out);
	} else if (isinf(value)) {
		fputs(value < 0 ? "-Infinity" : "Infinity", out);
	} else {
		fprintf(out, "%.16e", value);
	}
	fprintf(out, "%s\n", comma ? "," : "");
}

/* ---- human-readable numbers (GB's string_util) ---- */

void
cbench_human_number(char *buf, size_t len, double value, bool iec)
{
	static const char big_si[] = "kMGTPEZY";
	static const char big_iec[] = "KMGTPEZY";
	static const char small_si[] = "munpfazy";
	const double one_k = iec ? 1024.0 : 1000.0;
	const double threshold = 1.1; /* up to 1.1k is shown with the lower prefix */
	const double big = threshold * one_k;
	const char *sign = value < 0 ? "-" : "";
	double v = fabs(value);

	ASSERT(len >= 32);
	if (v > big) {
		double scaled = v;
		for (size_t i = 0; i < sizeof(big_si) - 1; i++) {
			scaled /= one_k;
			if (scaled <= big) {
				/* 1.7 prints 1024-based values as K/M/G, no "i". */
				snprintf(buf, len, "%s%g%c", sign, scaled,
				         iec ? big_iec[i] : big_si[i]);
				return;
			}
		}
	} else if (v < threshold && v < 0.01) {
		double scaled = v;
		for (size_t i = 0; i < sizeof(small_si) - 1; i++) {
			scaled *= one_k;
			if (scaled >= threshold) {
				snprintf(buf, len, "%s%g%c", sign, scaled, small_si[i]);
				return;
			}
		}
	}
	snprintf(buf, len, "%s%g", sign, v);
}

void
cbench_format_time(char *buf, size_t len, double t)
{
	if (t < 1.0) {
		snprintf(buf, len, "%10.3f", t);
	} else if (t < 10.0) {
		snprintf(buf, len, "%10.2f", t);
	} else if (t < 100.0) {
		snprintf(buf, len, "%10.1f", t);
	} else if (t > 9999999999.0) {
		snprintf(buf, len, "%1.4e", t);
	} else {
		snprintf(buf, len, "%10.0f", t);
	}
}

/* ---- context ---- */

static void
context_text(FILE *err, const struct cbench_sysinfo *si, const struct cbench_flags *f)
{
	fprintf(err, "%s\n", si->date);
	fprintf(err, "Running %s\n", si->executable);
	fprintf(err, "Run on (%d X %g MHz CPU%s)\n", si->num_cpus, si->cycles_per_second / 1e6,
	        si->num_cpus > 1 ? " s" : "");
	if (si->n_caches > 0) {
		fprintf(err, "CPU Caches:\n");
	}
	for (size_t i = 0; i < si->n_caches; i++) {
		const struct cbench_cache *c = &si->caches[i];
		fprintf(err, "  L%d %s %ld KiB", c->level, c->type, c->size_bytes / 1024);
		if (c->num_sharing != 0) {
			fprintf(err, " (x%d)", si->num_cpus / c->num_sharing);
		}
		fprintf(err, "\n");
	}
	if (si->n_load_avg > 0) {
		fprintf(err, "Load Average: ");
		for (int i = 0; i < si->n_load_avg; i++) {
			fprintf(err, "%.2f%s", si->load_avg[i],
			        i + 1 < si->n_load_avg ? ", " : "\n");
		}
	}
	for (size_t i = 0; i < f->n_context; i++) {
		fprintf(err, "%s: %s\n", f->context[i].key, f->context[i].value);
	}
	if (si->scaling_enabled) {
		fprintf(err, "***WARNING*** CPU scaling is enabled, the benchmark real time "
		             "measurements may be noisy and will incur extra overhead.\n");
	}
#ifndef NDEBUG
	fprintf(err, "***WARNING*** Library was built as DEBUG. Timings may be affected.\n");
#endif
}

static void
context_json(FILE *out, const struct cbench_sysinfo *si, const struct cbench_flags *f)
{
	const char *in = "    ";

	fprintf(out, "{\n  \"context\": {\n");
	json_str(out, in, "date", si->date, true);
	json_str(out, in, "host_name", si->host_name, true);
	json_str(out, in, "executable", si->executable, true);
	json_int(out, in, "num_cpus", si->num_cpus, true);
	json_int(out, in, "mhz_per_cpu", (int64_t)llround(si->cycles_per_second / 1e6), true);
	fprintf(out, "%s\"cpu_scaling_enabled\": %s,\n", in,
	        si->scaling_enabled ? "true" : "false");
	fprintf(out, "%s\"caches\": [\n", in);
	for (size_t i = 0; i < si->n_caches; i++) {
		const struct cbench_cache *c = &si->caches[i];
		const char *in2 = "        ";
		fprintf(out, "%s  {\n", in);
		json_str(out, in2, "type", c->type, true);
		json_int(out, in2, "level", c->level, true);
		json_int(out, in2, "size", c->size_bytes, true);
		json_int(out, in2, "num_sharing", c->num_sharing, false);
		fprintf(out, "%s  }%s\n", in, i + 1 < si->n_caches ? "," : "");
	}
	fprintf(out, "%s],\n", in);
	fprintf(out, "%s\"load_avg\": [", in);
	for (int i = 0; i < si->n_load_avg; i++) {
		fprintf(out, "%g%s", si->load_avg[i], i + 1 < si->n_load_avg ? "," : "");
	}
	fprintf(out, "],\n");
#ifdef NDEBUG
	json_str(out, in, "library_build_type", "release", true);
#else
	json_str(out, in, "library_build_type", "debug", true);
#endif
	json_int(out, in, "json_schema_version", 1, f->n_context > 0);
	for (size_t i = 0; i < f->n_context; i++) {
		json_str(out, in, f->context[i].key, f->context[i].value, i + 1 < f->n_context);
	}
	fprintf(out, "  },\n  \"benchmarks\": [\n");
}

void
cbench_report_begin(struct cbench_reporter *r, FILE *out, enum cbench_format format, int name_width)
{
	ASSERT(out != NULL);
	ASSERT(name_width > 0);
	memset(r, 0, sizeof(*r));
	r->out = out;
	r->format = format;
	r->name_width = name_width;
	r->first_run = true;
}

void
cbench_report_context(struct cbench_reporter *r, FILE *err, const struct cbench_sysinfo *si,
                      const struct cbench_flags *f)
{
	if (r->format == CBENCH_FORMAT_JSON) {
		context_json(r->out, si, f);
	} else {
		context_text(err, si, f);
	}
}

/* ---- console ---- */

/* GB's ANSI colour codes (ColorPrintf): text, then a reset; no code for the default. */
enum color {
	COLOR_DEFAULT = 0,
	COLOR_RED = 1,
	COLOR_GREEN = 2,
	COLOR_YELLOW = 3,
	COLOR_CYAN = 6,
};

static void cprintf(struct cbench_reporter *r, enum color color, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void
cprintf(struct cbench_reporter *r, enum color color, const char *fmt, ...)
{
	va_list ap;

	if (r->color && color != COLOR_DEFAULT) {
		fprintf(r->out, "\033[0;3%dm", (int)color);
	}
	va_start(ap, fmt);
	vfprintf(r->out, fmt, ap);
	va_end(ap);
	if (r->color) {
		fputs("\033[m", r->out);
	}
}

void
cbench_report_console_options(struct cbench_reporter *r, bool color, bool tabular)
{
	ASSERT(r->first_run);
	r->color = color;
	r->tabular = tabular;
}

/* Whether run's counters have exactly the names of the last tabular header. */
static bool
same_counter_names(const struct cbench_reporter *r, const struct cbench_result *run)
{
	if (run->n_counters != r->n_counter_names) {
		return false;
	}
	for (size_t i = 0; i < run->n_counters; i++) {
		if (strcmp(run->counters[i].name, r->counter_names[i]) != 0) {
			return false;
		}
	}
	return true;
}

/*
 * GB's PrintHeader: dashes, the column titles (with the counter names when tabular, or
 * "UserCounters..." when the run has counters), dashes. Remembers the tabular names.
 */
static void
console_header(struct cbench_reporter *r, const struct cbench_result *run)
{
	char line[CBENCH_NAME_MAX + 128 + CBENCH_COUNTERS_MAX * (CBENCH_COUNTER_NAME_MAX + 1)];
	int n;

	ASSERT(run->n_counters <= CBENCH_COUNTERS_MAX);
	n = snprintf(line, sizeof(line), "%-*s %13s %15s %12s", r->name_width, "Benchmark", "Time",
	             "CPU", "Iterations");
	ASSERT(n > 0);
	r->n_counter_names = 0;
	for (size_t i = 0; i < run->n_counters && r->tabular; i++) {
		snprintf(r->counter_names[i], CBENCH_COUNTER_NAME_MAX, "%s", run->counters[i].name);
		r->n_counter_names++;
		if (n > 0 && (size_t)n < sizeof(line)) {
			n += snprintf(line + n, sizeof(line) - (size_t)n, " %10s",
			              run->counters[i].name);
		}
	}
	if (run->n_counters > 0 && !r->tabular && n > 0 && (size_t)n < sizeof(line)) {
		n += snprintf(line + n, sizeof(line) - (size_t)n, " UserCounters...");
	}
	n = SP_MIN(n, (int)sizeof(line) - 1);
	for (int i = 0; i < n; i++) {
		fputc('-', r->out);
	}
	fprintf(r->out, "\n%s\n", line);
	for (int i = 0; i < n; i++) {
		fputc('-', r->out);
	}
	fputc('\n', r->out);
}

/* One counter: " name=1.5M/s", or right-aligned under its column when tabular. */
static void
console_counter(struct cbench_reporter *r, const struct cbench_result *run,
                const struct cbench_counter_val *c)
{
	char num[64];
	const char *unit = "";

	if (run->aggregate_percent) {
		snprintf(num, sizeof(num), "%.2f", 100.0 * c->value);
		unit = "%";
	} else {
		cbench_human_number(num, sizeof(num), c->value,
		                    (c->flags & CBENCH_COUNTER_1024) != 0);
		if (c->flags & CBENCH_COUNTER_RATE) {
			unit = (c->flags & CBENCH_COUNTER_INVERT) ? "s" : "/s";
		}
	}
	if (r->tabular) {
		int width = (int)SP_MAX(strlen(c->name), (size_t)10) - (int)strlen(unit);
		cprintf(r, COLOR_DEFAULT, " %*s%s", width, num, unit);
	} else {
		cprintf(r, COLOR_DEFAULT, " %s=%s%s", c->name, num, unit);
	}
}

/* One table row (GB's PrintRunData); prints the header first when it is due. */
static void
console_run(struct cbench_reporter *r, const struct cbench_result *run)
{
	char real[32];
	char cpu[32];

	ASSERT(run->inst != NULL);
	ASSERT(run->n_counters <= CBENCH_COUNTERS_MAX);

	if (!r->printed_header || (r->tabular && !same_counter_names(r, run))) {
		console_header(r, run);
		r->printed_header = true;
	}
	cprintf(r, COLOR_GREEN, "%-*s ", r->name_width, run->name);
	if (run->skipped == CBENCH_SKIP_ERROR) {
		cprintf(r, COLOR_RED, "ERROR OCCURRED: '%s'", run->message);
		cprintf(r, COLOR_DEFAULT, "\n");
		return;
	}
	if (run->skipped == CBENCH_SKIP_MESSAGE) {
		cprintf(r, COLOR_DEFAULT, "SKIPPED: '%s'", run->message);
		cprintf(r, COLOR_DEFAULT, "\n");
		return;
	}
	if (run->aggregate_percent) {
		cprintf(r, COLOR_YELLOW, "%10.2f %-4s %10.2f %-4s ", 100.0 * run->real_s, "%",
		        100.0 * run->cpu_s, "%");
	} else {
		const char *unit = cbench_unit_name(run->unit);
		cbench_format_time(real, sizeof(real), adjusted(run, run->real_s));
		cbench_format_time(cpu, sizeof(cpu), adjusted(run, run->cpu_s));
		cprintf(r, COLOR_YELLOW, "%s %-4s %s %-4s ", real, unit, cpu, unit);
	}
	cprintf(r, COLOR_CYAN, "%10" PRIu64, run->iterations);
	for (size_t i = 0; i < run->n_counters; i++) {
		console_counter(r, run, &run->counters[i]);
	}
	if (run->label[0] != '\0') {
		cprintf(r, COLOR_DEFAULT, " %s", run->label);
	}
	cprintf(r, COLOR_DEFAULT, "\n");
}

/* ---- JSON ---- */

/* One benchmarks[] entry, keys in GB 1.7's order; "last" leaves out the comma. */
static void
json_run(struct cbench_reporter *r, const struct cbench_result *run, bool last)
{
	FILE *out = r->out;
	const char *in = "      ";

	ASSERT(run->inst != NULL);
	ASSERT(run->n_counters <= CBENCH_COUNTERS_MAX);

	fprintf(out, "    {\n");
	json_str(out, in, "name", run->name, true);
	json_int(out, in, "family_index", run->inst->family_index, true);
	json_int(out, in, "per_family_instance_index", run->inst->per_family_instance_index, true);
	json_str(out, in, "run_name", run->inst->name, true);
	json_str(out, in, "run_type", run->aggregate ? "aggregate" : "iteration", true);
	json_int(out, in, "repetitions", run->repetitions, true);
	if (!run->aggregate) {
		json_int(out, in, "repetition_index", run->repetition_index, true);
	}
	json_int(out, in, "threads", run->threads, true);
	if (run->aggregate) {
		json_str(out, in, "aggregate_name", run->aggregate_name, true);
		json_str(out, in, "aggregate_unit", run->aggregate_percent ? "percentage" : "time",
		         true);
	}
	if (run->skipped == CBENCH_SKIP_ERROR) {
		fprintf(out, "%s\"error_occurred\": true,\n", in);
		json_str(out, in, "error_message", run->message, true);
	} else if (run->skipped == CBENCH_SKIP_MESSAGE) {
		fprintf(out, "%s\"skipped\": true,\n", in);
		json_str(out, in, "skip_message", run->message, true);
	}
	json_int(out, in, "iterations", (int64_t)run->iterations, true);
	if (run->aggregate_percent) {
		json_double(out, in, "real_time", run->real_s, true);
		json_double(out, in, "cpu_time", run->cpu_s, true);
	} else {
		json_double(out, in, "real_time", adjusted(run, run->real_s), true);
		json_double(out, in, "cpu_time", adjusted(run, run->cpu_s), true);
	}
	json_str(out, in, "time_unit", cbench_unit_name(run->unit),
	         run->n_counters > 0 || run->label[0] != '\0');
	for (size_t i = 0; i < run->n_counters; i++) {
		json_double(out, in, run->counters[i].name, run->counters[i].value,
		            i + 1 < run->n_counters || run->label[0] != '\0');
	}
	if (run->label[0] != '\0') {
		json_str(out, in, "label", run->label, false);
	}
	fprintf(out, "    }%s", last ? "" : ",\n");
}

/* ---- CSV ---- */

/* GB's CsvEscape: the text in double quotes, inner quotes doubled. */
static void
csv_escape(FILE *out, const char *s)
{
	fputc('"', out);
	for (const char *p = s; *p != '\0'; p++) {
		if (*p == '"') {
			fputc('"', out);
		}
		fputc(*p, out);
	}
	fputc('"', out);
}

static bool
csv_builtin(const char *name)
{
	return strcmp(name, "bytes_per_second") == 0 || strcmp(name, "items_per_second") == 0;
}

static const struct cbench_counter_val *
find_counter(const struct cbench_result *run, const char *name)
{
	for (size_t i = 0; i < run->n_counters; i++) {
		if (strcmp(run->counters[i].name, name) == 0) {
			return &run->counters[i];
		}
	}
	return NULL;
}

/* The header is written once, with the user counters of the first runs, as GB does. */
static void
csv_header(struct cbench_reporter *r, const struct cbench_result *runs, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		for (size_t i = 0; i < runs[k].n_counters; i++) {
			const char *name = runs[k].counters[i].name;
			bool seen = csv_builtin(name);

			for (size_t j = 0; j < r->n_counter_names && !seen; j++) {
				seen = strcmp(r->counter_names[j], name) == 0;
			}
			if (!seen && r->n_counter_names < CBENCH_COUNTERS_MAX) {
				snprintf(r->counter_names[r->n_counter_names++],
				         CBENCH_COUNTER_NAME_MAX, "%s", name);
			}
		}
	}
	fprintf(r->out, "name,iterations,real_time,cpu_time,time_unit,bytes_per_second,"
	                "items_per_second,label,error_occurred,error_message");
	for (size_t j = 0; j < r->n_counter_names; j++) {
		fprintf(r->out, ",");
		csv_escape(r->out, r->counter_names[j]);
	}
	fputc('\n', r->out);
}

/* One CSV row; a failed run has only its name, "true" and the message (as GB). */
static void
csv_run(struct cbench_reporter *r, const struct cbench_result *run)
{
	FILE *out = r->out;
	const struct cbench_counter_val *c;

	ASSERT(run->inst != NULL);
	ASSERT(r->n_counter_names <= CBENCH_COUNTERS_MAX);

	csv_escape(out, run->name);
	fputc(',', out);
	if (run->skipped != CBENCH_SKIP_NONE) {
		fprintf(out, ",,,,,,,%s,", run->skipped == CBENCH_SKIP_ERROR ? "true" : "false");
		csv_escape(out, run->message);
		fputc('\n', out);
		return;
	}
	fprintf(out, "%" PRIu64 ",", run->iterations);
	if (run->aggregate_percent) {
		fprintf(out, "%g,%g,", run->real_s, run->cpu_s);
	} else {
		fprintf(out, "%g,%g,", adjusted(run, run->real_s), adjusted(run, run->cpu_s));
	}
	fprintf(out, "%s,", cbench_unit_name(run->unit));
	if ((c = find_counter(run, "bytes_per_second")) != NULL) {
		fprintf(out, "%g", c->value);
	}
	fputc(',', out);
	if ((c = find_counter(run, "items_per_second")) != NULL) {
		fprintf(out, "%g", c->value);
	}
	fputc(',', out);
	if (run->label[0] != '\0') {
		csv_escape(out, run->label);
	}
	fprintf(out, ",,");
	for (size_t j = 0; j < r->n_counter_names; j++) {
		c = find_counter(run, r->counter_names[j]);
		if (c != NULL) {
			fprintf(out, ",%g", c->value);
		} else {
			fputc(',', out);
		}
	}
	fputc('\n', out);
}

/* GB's ReportRuns: one instance's runs, or its aggregates, in the reporter's format. */
void
cbench_report_runs(struct cbench_reporter *r, const struct cbench_result *runs, size_t n)
{
	ASSERT(r->out != NULL);
	ASSERT(n == 0 || runs != NULL);
	if (n == 0) {
		return;
	}
	switch (r->format) {
	case CBENCH_FORMAT_CONSOLE:
		for (size_t i = 0; i < n; i++) {
			console_run(r, &runs[i]);
		}
		break;
	case CBENCH_FORMAT_JSON:
		if (!r->first_run) {
			fprintf(r->out, ",\n");
		}
		for (size_t i = 0; i < n; i++) {
			json_run(r, &runs[i], i + 1 == n);
		}
		break;
	case CBENCH_FORMAT_CSV:
		if (r->first_run) {
			csv_header(r, runs, n);
		}
		for (size_t i = 0; i < n; i++) {
			csv_run(r, &runs[i]);
		}
		break;
	}
	r->first_run = false;
	fflush(r->out);
}

void
cbench_report_end(struct cbench_reporter *r)
{
	if (r->format == CBENCH_FORMAT_JSON) {
		fprintf(r->out, "\n  ]\n}\n");
	}
	fflush(r->out);
}
