/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * cbench_main: flags, registration errors, the instance list, then for every instance
 * its repetitions and aggregates, reported to the display (stdout) and, with
 * --benchmark_out, to a file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cbench/internal.h"
#include "common/verify.h"

extern char **environ;

/* Name column width: the longest instance name, plus room for "_stddev" when needed. */
static int
name_width(const struct cbench_instance *insts, size_t n, const struct cbench_flags *f)
{
	size_t width = 10;
	bool aggregates = false;

	for (size_t i = 0; i < n; i++) {
		width = SP_MAX(width, strlen(insts[i].name));
		aggregates = aggregates || cbench_instance_repetitions(&insts[i], f) > 1;
	}
	if (aggregates) {
		width += 1 + strlen("median");
	}
	return (int)width;
}

/* Colour for the display: asked for, or "auto" on a terminal that is not "dumb". */
static bool
use_color(const struct cbench_flags *f)
{
	const char *term = getenv("TERM");

	if (f->color != CBENCH_COLOR_AUTO) {
		return f->color == CBENCH_COLOR_ON;
	}
	return isatty(STDOUT_FILENO) && term != NULL && term[0] != '\0' &&
	       strcmp(term, "dumb") != 0;
}

/* Reports runs and aggregates to one reporter, honouring the aggregates-only choice. */
static void
report(struct cbench_reporter *r, bool aggregates_only, const struct cbench_result *runs,
       size_t n_runs, const struct cbench_result *agg, size_t n_agg)
{
	if (!(aggregates_only && n_agg > 0)) {
		cbench_report_runs(r, runs, n_runs);
	}
	cbench_report_runs(r, agg, n_agg);
}

/* Runs every instance; returns 0 or a negative errno. */
static int
run_all(const struct cbench_instance *insts, size_t n, const struct cbench_flags *f,
        struct cbench_reporter *display, struct cbench_reporter *file)
{
	for (size_t i = 0; i < n; i++) {
		int reps = cbench_instance_repetitions(&insts[i], f);
		struct cbench_result *res;
		struct cbench_result agg[4];
		size_t n_agg;

		ASSERT(reps >= 1);
		res = calloc((size_t)reps, sizeof(*res));
		if (res == NULL) {
			return -ENOMEM;
		}
		if (cbench_run_instance(&insts[i], f, res, reps) != 0) {
			free(res);
			return -ENOMEM;
		}
		n_agg = cbench_aggregates(res, (size_t)reps, agg);
		ASSERT(n_agg <= SP_ARRAY_SIZE(agg));
		report(display, f->report_aggregates_only || f->display_aggregates_only, res,
		       (size_t)reps, agg, n_agg);
		if (file != NULL) {
			report(file, f->report_aggregates_only, res, (size_t)reps, agg, n_agg);
		}
		free(res);
	}
	return 0;
}

int
cbench_main(int argc, char **argv)
{
	struct cbench_flags *f = NULL;
	struct cbench_instance *insts = NULL;
	struct cbench_sysinfo si;
	struct cbench_reporter display;
	struct cbench_reporter file;
	FILE *out = NULL;
	const char *prog = argc > 0 ? argv[0] : "cbench";
	char err[512];
	size_t total;
	int n;
	int status = 1;

	f = malloc(sizeof(*f));
	if (f == NULL) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return 1;
	}
	cbench_flags_default(f);
	if (cbench_flags_parse(f, argc, argv, environ, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: error: %s\n", prog, err);
		cbench_usage(stderr, prog);
		goto done;
	}
	if (f->help) {
		cbench_usage(stdout, prog);
		status = 0;
		goto done;
	}
	if (cbench_error_count() > 0) {
		for (size_t i = 0; i < cbench_error_count() && i < CBENCH_ERRORS_MAX; i++) {
			fprintf(stderr, "%s: registration error: %s\n", prog, cbench_error_at(i));
		}
		fprintf(stderr, "%s: %zu registration error(s); nothing was run\n", prog,
		        cbench_error_count());
		goto done;
	}
	total = cbench_instance_total();
	insts = calloc(total > 0 ? total : 1, sizeof(*insts));
	if (insts == NULL) {
		fprintf(stderr, "%s: out of memory for %zu instances\n", prog, total);
		goto done;
	}
	n = cbench_find_instances(f->filter, insts, total, err, sizeof(err));
	if (n < 0) {
		fprintf(stderr, "%s: error: %s\n", prog, err);
		goto done;
	}
	if (f->list_tests) {
		for (int i = 0; i < n; i++) {
			printf("%s\n", insts[i].name);
		}
		status = 0;
		goto done;
	}
	if (n == 0) {
		fprintf(stderr, "Failed to match any benchmarks against regex: %s\n", f->filter);
		goto done;
	}
	if (f->out != NULL) {
		out = fopen(f->out, "w");
		if (out == NULL) {
			fprintf(stderr, "%s: invalid file name: '%s': %s\n", prog, f->out,
			        strerror(errno));
			goto done;
		}
	}
	cbench_sysinfo_read(&si, prog);
	int width = name_width(insts, (size_t)n, f);
	cbench_report_begin(&display, stdout, f->format, width);
	cbench_report_console_options(&display, use_color(f), f->counters_tabular);
	cbench_report_context(&display, stderr, &si, f);
	if (out != NULL) {
		cbench_report_begin(&file, out, f->out_format, width);
		cbench_report_console_options(&file, false, f->counters_tabular);
		cbench_report_context(&file, out, &si, f);
	}
	if (run_all(insts, (size_t)n, f, &display, out != NULL ? &file : NULL) != 0) {
		fprintf(stderr, "%s: out of memory while running\n", prog);
		goto done;
	}
	cbench_report_end(&display);
	status = 0;
	if (out != NULL) {
		cbench_report_end(&file);
		if (ferror(out)) {
			fprintf(stderr, "%s: writing '%s' failed\n", prog, f->out);
			status = 1;
		}
	}
done:
	if (out != NULL && fclose(out) != 0) {
		fprintf(stderr, "%s: closing '%s' failed: %s\n", prog, f->out, strerror(errno));
		status = 1;
	}
	free(insts);
	free(f);
	return status;
}
