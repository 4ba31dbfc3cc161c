/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libcbench internals shared by its modules and its unit tests; not for benchmarks.
 *   registry.c  families, argument expansion, instance names, filter
 *   flags.c     command-line and BENCHMARK_* environment parsing
 *   runner.c    the state, timers, iteration growth, repetitions, counters
 *   stats.c     aggregates (mean, median, stddev, cv)
 *   report.c    console, JSON and CSV writers
 *   sysinfo.c   the context: CPUs, caches, frequency, load, date
 *   main.c      cbench_main()
 */
#ifndef SP_CBENCH_INTERNAL_H
#define SP_CBENCH_INTERNAL_H

#include <stdio.h>

#include "cbench/cbench.h"

#define CBENCH_COUNTER_NAME_MAX 64  /* bytes of a counter name, with NUL */
#define CBENCH_CONTEXT_MAX      32  /* --benchmark_context pairs */
#define CBENCH_CONTEXT_TEXT_MAX 128 /* bytes of a context key or value, with NUL */
#define CBENCH_CACHES_MAX       8   /* cache levels/types described in the context */
#define CBENCH_ERRORS_MAX       16  /* registration errors kept for the report */
#define CBENCH_ERROR_MAX        256 /* bytes of one error message, with NUL */
#define CBENCH_MIN_TIME_S       0.5 /* Google Benchmark's default --benchmark_min_time */

/* ---- registry.c ---- */

struct cbench {
	char name[CBENCH_NAME_MAX];
	cbench_fn fn;
	int64_t (*argsets)[CBENCH_ARGS_MAX]; /* instances, each n_args long */
	size_t n_argsets;
	size_t cap_argsets;
	size_t n_args; /* 0 until the first argument set fixes it */
	int multiplier;
	const char *arg_names[CBENCH_ARGS_MAX];
	size_t n_arg_names;
	enum cbench_unit unit;
	double min_time_s;        /* 0: the flag's */
	double min_warmup_time_s; /* < 0: the flag's */
	uint64_t iterations;      /* 0: grow until min time */
	int repetitions;          /* 0: the flag's */
	bool real_time;
	bool manual_time;
	bool process_cpu_time;
	bool cycles_per_item;
	cbench_fn setup;
	cbench_fn teardown;
	int thread_counts[CBENCH_THREAD_COUNTS_MAX]; /* none: one thread, no name suffix */
	size_t n_thread_counts;
	bool dead; /* the handle returned past CBENCH_FAMILIES_MAX */
};

struct cbench_instance {
	const struct cbench *family;
	const int64_t *args;
	size_t n_args;
	int threads;
	char name[CBENCH_NAME_MAX];
	int family_index;
	int per_family_instance_index;
};

/* Registered families in registration order and their count. */
struct cbench *cbench_family_at(size_t i);
size_t cbench_family_count(void);
/* Registration errors, formatted; cbench_main reports them. */
size_t cbench_error_count(void);
const char *cbench_error_at(size_t i);
void cbench_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Frees every family and forgets the errors (tests). */
void cbench_registry_reset(void);

/*
 * Appends Google Benchmark's Range(lo, hi) expansion with multiplier mult to out (at
 * most cap values). Returns the count, or -EINVAL (bad bounds) or -SP_ETOOBIG (> cap).
 */
int cbench_expand_range(int64_t lo, int64_t hi, int mult, int64_t *out, size_t cap);

/* Writes the full instance name ("BM_get/8", "BM_x/n:4/real_time") into inst->name. */
int cbench_instance_name(struct cbench_instance *inst);

/*
 * Fills out (capacity cap) with the instances matching filter (NULL, "" or "all": all;
 * a leading '-' negates), numbering family and per-family indices as Google Benchmark.
 * Returns the count, -EINVAL on a bad regex (message in err) or -SP_ETOOBIG.
 */
int cbench_find_instances(const char *filter, struct cbench_instance *out, size_t cap, char *err,
                          size_t err_len);
size_t cbench_instance_total(void);

/* ---- flags.c ---- */

enum cbench_format {
	CBENCH_FORMAT_CONSOLE = 0,
	CBENCH_FORMAT_JSON,
	CBENCH_FORMAT_CSV,
};

enum cbench_color {
	CBENCH_COLOR_AUTO = 0, /* when stdout is a terminal that is not "dumb" */
	CBENCH_COLOR_ON,
	CBENCH_COLOR_OFF,
};

struct cbench_context_kv {
	char key[CBENCH_CONTEXT_TEXT_MAX];
	char value[CBENCH_CONTEXT_TEXT_MAX];
};

struct cbench_flags {
	bool help;
	bool list_tests;
	const char *filter;
	double min_time_s;
	uint64_t min_time_iterations; /* non-zero: "<N>x" */
	double min_warmup_time_s;
	int repetitions;
	bool report_aggregates_only;
	bool display_aggregates_only;
	bool counters_tabular;
	enum cbench_color color;
	enum cbench_format format;
	const char *out;
	enum cbench_format out_format;
	enum cbench_unit time_unit;
	struct cbench_context_kv context[CBENCH_CONTEXT_MAX];
	size_t n_context;
};

/* Google Benchmark's defaults. Can't fail. */
void cbench_flags_default(struct cbench_flags *f);

/*
 * Applies the BENCHMARK_* environment (env: NULL-terminated "K=V" array, or NULL for
 * none) and then argv[1..argc-1] to f. Strings in f point into argv/env. Returns 0, or
 * -EINVAL with a message naming the flag and the value in err.
 */
int cbench_flags_parse(struct cbench_flags *f, int argc, char **argv, char *const *env, char *err,
                       size_t err_len);

/* "0.5s", "0.5" (seconds) or "100x" (iterations). Returns 0 or -EINVAL. */
int cbench_parse_min_time(const char *text, double *seconds, uint64_t *iterations);

/* Writes the usage text to out. */
void cbench_usage(FILE *out, const char *prog);

/* ---- runner.c / stats.c ---- */

struct cbench_counter_val {
	char name[CBENCH_COUNTER_NAME_MAX];
	double value;
	unsigned flags;
};

enum cbench_skip {
	CBENCH_SKIP_NONE = 0,
	CBENCH_SKIP_ERROR,
	CBENCH_SKIP_MESSAGE,
};

struct cbench_result {
	char name[CBENCH_NAME_MAX + 8]; /* run name, plus "_stddev" for aggregates */
	const struct cbench_instance *inst;
	bool aggregate;
	const char *aggregate_name; /* "mean", "median", "stddev", "cv" */
	bool aggregate_percent;     /* cv: aggregate_unit "percentage" */
	int repetitions;
	int repetition_index;
	int threads;
	uint64_t iterations; /* over all threads */
	double real_s;       /* accumulated over all iterations */
	double cpu_s;
	enum cbench_unit unit;
	struct cbench_counter_val counters[CBENCH_COUNTERS_MAX]; /* finished, sorted by name */
	size_t n_counters;
	char label[CBENCH_LABEL_MAX];
	enum cbench_skip skipped;
	char message[CBENCH_LABEL_MAX];
};

/* Runs one instance with its repetitions; writes them to out[0..repetitions-1]. */
int cbench_run_instance(const struct cbench_instance *inst, const struct cbench_flags *f,
                        struct cbench_result *out, int repetitions);
/* The repetitions an instance runs: its family's, else the flag's. */
int cbench_instance_repetitions(const struct cbench_instance *inst, const struct cbench_flags *f);

/* Google Benchmark's PredictNumberOfIterations. */
uint64_t cbench_predict_iterations(uint64_t iters, double seconds, double min_time_s);
/* Google Benchmark's Counter::Finish: applies flags to value. */
double cbench_counter_finish(double value, unsigned flags, uint64_t iterations, double seconds,
                             int threads);

/*
 * Writes the mean, median, stddev and cv aggregates of runs[0..n-1] into agg[0..3].
 * Returns how many were written: 0 when fewer than two runs succeeded.
 */
size_t cbench_aggregates(const struct cbench_result *runs, size_t n, struct cbench_result *agg);
double cbench_stat_mean(const double *v, size_t n);
double cbench_stat_median(const double *v, size_t n); /* sorts a copy */
double cbench_stat_stddev(const double *v, size_t n);
double cbench_stat_cv(const double *v, size_t n);

/* ---- sysinfo.c ---- */

struct cbench_cache {
	char type[16];
	int level;
	long size_bytes;
	int num_sharing;
};

struct cbench_sysinfo {
	char date[40];
	char host_name[256];
	const char *executable;
	int num_cpus;
	double cycles_per_second;
	bool scaling_enabled;
	struct cbench_cache caches[CBENCH_CACHES_MAX];
	size_t n_caches;
	double load_avg[3];
	int n_load_avg;
	bool tsc_invariant;
};

void cbench_sysinfo_read(struct cbench_sysinfo *si, const char *executable);
bool cbench_tsc_invariant(void);
/* Nanoseconds of the clock the run measures CPU time with. */
uint64_t cbench_cpu_ns(bool process);

/* ---- report.c ---- */

struct cbench_reporter {
	FILE *out;
	enum cbench_format format;
	int name_width;
	bool color;   /* console: ANSI colours as GB's --benchmark_color */
	bool tabular; /* console: counters as columns (--benchmark_counters_tabular) */
	bool printed_header;
	bool first_run;
	/* CSV: the user counter columns; console tabular: the counters of the header. */
	char counter_names[CBENCH_COUNTERS_MAX][CBENCH_COUNTER_NAME_MAX];
	size_t n_counter_names;
};

void cbench_report_begin(struct cbench_reporter *r, FILE *out, enum cbench_format format,
                         int name_width);
/* Console options; both off after cbench_report_begin. */
void cbench_report_console_options(struct cbench_reporter *r, bool color, bool tabular);
/* The context: on err for console and CSV (as Google Benchmark), into the JSON otherwise. */
void cbench_report_context(struct cbench_reporter *r, FILE *err, const struct cbench_sysinfo *si,
                           const struct cbench_flags *f);
void cbench_report_runs(struct cbench_reporter *r, const struct cbench_result *runs, size_t n);
void cbench_report_end(struct cbench_reporter *r);

/* JSON string body of s (no quotes), escaped and with invalid UTF-8 replaced by U+FFFD. */
void cbench_json_escape(FILE *out, const char *s);
/* Google Benchmark 1.7's HumanReadableNumber: "1.2345G", "12.5K" (1024-based). */
void cbench_human_number(char *buf, size_t len, double value, bool iec);
/* Google Benchmark's console FormatTime (10 columns). */
void cbench_format_time(char *buf, size_t len, double t);
double cbench_unit_multiplier(enum cbench_unit unit);
const char *cbench_unit_name(enum cbench_unit unit);

#endif
