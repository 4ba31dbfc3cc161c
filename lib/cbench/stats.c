/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Aggregates over repetitions, computed as Google Benchmark's ComputeStats: times are
 * rescaled so that "per iteration" of an aggregate means per repetition; counters are
 * aggregated as already finished; cv is stddev / mean, reported as a percentage.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cbench/internal.h"
#include "common/verify.h"

double
cbench_stat_mean(const double *v, size_t n)
{
	double sum = 0.0;

	if (n == 0) {
		return 0.0;
	}
	for (size_t i = 0; i < n; i++) {
		sum += v[i];
	}
	return sum / (double)n;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a;
	double y = *(const double *)b;

	return (x > y) - (x < y);
}

double
cbench_stat_median(const double *v, size_t n)
{
	double *s;
	double m;

	if (n == 0) {
		return 0.0;
	}
	if (n == 1) {
		return v[0];
	}
	s = malloc(n * sizeof(*s));
	VERIFY(s != NULL);
	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_double);
	m = n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2.0;
	free(s);
	return m;
}

/* The sample standard deviation (n - 1); 0 for fewer than two values. */
double
cbench_stat_stddev(const double *v, size_t n)
{
	double mean;
	double sq = 0.0;

	if (n < 2) {
		return 0.0;
	}
	mean = cbench_stat_mean(v, n);
	for (size_t i = 0; i < n; i++) {
		sq += (v[i] - mean) * (v[i] - mean);
	}
	return sqrt(sq / (double)(n - 1));
}

double
cbench_stat_cv(const double *v, size_t n)
{
	if (n < 2) {
		return 0.0;
	}
	return cbench_stat_stddev(v, n) / cbench_stat_mean(v, n);
}

static const struct {
	const char *name;
	double (*fn)(const double *v, size_t n);
	bool percent;
} stats[] = {
        {"mean", cbench_stat_mean, false},
        {"median", cbench_stat_median, false},
        {"stddev", cbench_stat_stddev, false},
        {"cv", cbench_stat_cv, true},
};

size_t
cbench_aggregates(const struct cbench_result *runs, size_t n, struct cbench_result *agg)
{
	double *real = NULL;
	double *cpu = NULL;
	double *cv = NULL;
	const struct cbench_result *first = NULL;
	size_t ok = 0;
	bool same_label = true;

	ASSERT(runs != NULL);
	ASSERT(agg != NULL);
	for (size_t i = 0; i < n; i++) {
		if (runs[i].skipped == CBENCH_SKIP_NONE) {
			ok++;
			first = first != NULL ? first : &runs[i];
		}
		same_label = same_label && strcmp(runs[i].label, runs[0].label) == 0;
	}
	if (ok < 2) {
		return 0;
	}
	real = malloc(ok * sizeof(double));
	cpu = malloc(ok * sizeof(double));
	cv = malloc(ok * sizeof(double));
	VERIFY(real != NULL && cpu != NULL && cv != NULL);
	for (size_t i = 0, k = 0; i < n; i++) {
		if (runs[i].skipped == CBENCH_SKIP_NONE) {
			real[k] = runs[i].real_s;
			cpu[k] = runs[i].cpu_s;
			k++;
		}
	}
	/* All repetitions ran the same iteration count, so times scale alike. */
	double rescale = (double)n / (double)runs[0].iterations;
	for (size_t s = 0; s < SP_ARRAY_SIZE(stats); s++) {
		struct cbench_result *a = &agg[s];

		memset(a, 0, sizeof(*a));
		snprintf(a->name, sizeof(a->name), "%s_%s", runs[0].inst->name, stats[s].name);
		a->inst = runs[0].inst;
		a->aggregate = true;
		a->aggregate_name = stats[s].name;
		a->aggregate_percent = stats[s].percent;
		a->repetitions = runs[0].repetitions;
		a->threads = runs[0].threads;
		a->repetition_index = -1;
		a->iterations = n;
		a->unit = runs[0].unit;
		a->real_s = stats[s].fn(real, ok);
		a->cpu_s = stats[s].fn(cpu, ok);
		if (!stats[s].percent) {
			a->real_s *= rescale;
			a->cpu_s *= rescale;
		}
		if (same_label) {
			memcpy(a->label, runs[0].label, sizeof(a->label));
		}
		a->n_counters = first->n_counters;
		for (size_t c = 0; c < first->n_counters; c++) {
			size_t k = 0;

			for (size_t i = 0; i < n; i++) {
				if (runs[i].skipped != CBENCH_SKIP_NONE) {
					continue;
				}
				/* A run may have set fewer counters: match by name. */
				cv[k] = 0.0;
				for (size_t j = 0; j < runs[i].n_counters; j++) {
					if (strcmp(runs[i].counters[j].name,
					           first->counters[c].name) == 0) {
						cv[k] = runs[i].counters[j].value;
					}
				}
				k++;
			}
			a->counters[c] = first->counters[c];
			a->counters[c].value = stats[s].fn(cv, ok);
		}
	}
	free(real);
	free(cpu);
	free(cv);
	return SP_ARRAY_SIZE(stats);
}
