/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Running one instance as Google Benchmark's BenchmarkRunner does: an optional warm-up,
 * then trials with growing iteration counts until one lasts min_time (or the iteration
 * count is fixed), then the further repetitions at that count. Timers are read at the
 * loop's two edges and at pause/resume, never inside the loop.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include "cbench/internal.h"
#include "common/clock.h"
#include "common/verify.h"

/*
 * The threads of one multi-threaded trial: a reusable barrier (the loops start and end
 * together, as in Google Benchmark) and a gate that holds the threads until all exist.
 */
struct group {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int parties;
	int arrived;
	unsigned generation;
	bool open;
};

/* Waits until all parties have arrived; a no-op without a group. */
static void
group_wait(struct group *g)
{
	unsigned gen;

	if (g == NULL) {
		return;
	}
	pthread_mutex_lock(&g->mu);
	ASSERT(g->arrived < g->parties);
	gen = g->generation;
	if (++g->arrived == g->parties) {
		g->arrived = 0;
		g->generation++;
		pthread_cond_broadcast(&g->cv);
	} else {
		while (gen == g->generation) {
			pthread_cond_wait(&g->cv, &g->mu);
		}
	}
	pthread_mutex_unlock(&g->mu);
}

struct cbench_run_ {
	const struct cbench_instance *inst;
	struct group *group; /* NULL with one thread */
	int thread_index;
	int threads;
	uint64_t iterations;      /* the count asked for */
	uint64_t iterations_done; /* the count run, once finished */
	bool process_cpu;
	bool started;
	bool finished;
	bool timing;
	uint64_t real_start_ns;
	uint64_t cpu_start_ns;
	uint64_t tsc_start;
	uint64_t real_ns;
	uint64_t cpu_ns;
	uint64_t tsc_cycles;
	double manual_s;
	struct cbench_counter_val counters[CBENCH_COUNTERS_MAX];
	size_t n_counters;
	bool have_items;
	uint64_t items;
	char label[CBENCH_LABEL_MAX];
	enum cbench_skip skipped;
	char message[CBENCH_LABEL_MAX];
	void *user;
};

uint64_t
cbench_cpu_ns(bool process)
{
	struct timespec ts;

	clock_gettime(process ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * SP_NS_PER_S + (uint64_t)ts.tv_nsec;
}

static inline uint64_t
read_tsc(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return __rdtsc();
#else
	return 0;
#endif
}

static void
timer_start(struct cbench_run_ *r)
{
	ASSERT(!r->timing);
	r->timing = true;
	/* Google Benchmark's order: the real-time interval encloses the CPU-time one. */
	r->real_start_ns = sp_mono_ns();
	r->tsc_start = read_tsc();
	r->cpu_start_ns = cbench_cpu_ns(r->process_cpu);
}

static void
timer_stop(struct cbench_run_ *r)
{
	uint64_t cpu_end_ns = cbench_cpu_ns(r->process_cpu);
	uint64_t tsc_end = read_tsc();
	uint64_t real_end_ns = sp_mono_ns();

	ASSERT(r->timing);
	r->timing = false;
	r->real_ns += real_end_ns - r->real_start_ns;
	r->tsc_cycles += tsc_end - r->tsc_start;
	r->cpu_ns += cpu_end_ns - r->cpu_start_ns;
}

/*
 * Called by cbench_keep_running when its countdown is at zero: the first time it starts
 * the timers and the countdown, the second time (or after a skip) it stops them.
 */
bool
cbench_loop_edge_(struct cbench_state *st)
{
	struct cbench_run_ *r = st->run_;

	ASSERT(r != NULL);
	ASSERT(st->left_ == 0);
	if (!r->started) {
		r->started = true;
		group_wait(r->group);
		if (r->skipped != CBENCH_SKIP_NONE) {
			r->finished = true;
			group_wait(r->group);
			return false;
		}
		ASSERT(r->iterations >= 1);
		timer_start(r);
		st->left_ = r->iterations - 1;
		return true;
	}
	if (r->finished) {
		return false;
	}
	if (r->timing) {
		timer_stop(r);
	}
	if (r->skipped == CBENCH_SKIP_NONE) {
		r->iterations_done = r->iterations;
	}
	r->finished = true;
	group_wait(r->group);
	return false;
}

/* A benchmark asked for an argument its instance does not have: a bug in the benchmark. */
void
cbench_range_fail_(const struct cbench_state *st, unsigned i)
{
	fprintf(stderr, "cbench: %s asked for range(%u) but has %u argument(s)\n",
	        st->run_->inst->name, i, st->n_args_);
	VERIFY(i < st->n_args_);
	abort();
}

uint64_t
cbench_iterations(const struct cbench_state *st)
{
	const struct cbench_run_ *r = st->run_;

	if (!r->started) {
		return 0;
	}
	if (r->finished) {
		return r->iterations_done;
	}
	return r->iterations - st->left_;
}

int
cbench_thread_index(const struct cbench_state *st)
{
	return st->run_->thread_index;
}

int
cbench_threads(const struct cbench_state *st)
{
	return st->run_->threads;
}

void
cbench_pause_timing(struct cbench_state *st)
{
	VERIFY(st->run_->timing);
	timer_stop(st->run_);
}

void
cbench_resume_timing(struct cbench_state *st)
{
	VERIFY(st->run_->started);
	VERIFY(!st->run_->timing);
	timer_start(st->run_);
}

void
cbench_set_iteration_time(struct cbench_state *st, double seconds)
{
	ASSERT(seconds >= 0.0);
	st->run_->manual_s += seconds;
}

/* Finds or adds a counter slot; NULL (and the run skipped) when the table is full. */
static struct cbench_counter_val *
counter_slot(struct cbench_state *st, const char *name)
{
	struct cbench_run_ *r = st->run_;
	struct cbench_counter_val *c;

	for (size_t i = 0; i < r->n_counters; i++) {
		if (strncmp(r->counters[i].name, name, CBENCH_COUNTER_NAME_MAX - 1) == 0) {
			return &r->counters[i];
		}
	}
	if (r->n_counters == CBENCH_COUNTERS_MAX) {
		char msg[CBENCH_LABEL_MAX];
		snprintf(msg, sizeof(msg), "counter '%.64s': more than %d counters", name,
		         CBENCH_COUNTERS_MAX);
		cbench_skip_with_error(st, msg);
		return NULL;
	}
	c = &r->counters[r->n_counters++];
	snprintf(c->name, sizeof(c->name), "%s", name);
	return c;
}

void
cbench_counter(struct cbench_state *st, const char *name, double value, unsigned flags)
{
	struct cbench_counter_val *c;

	ASSERT(name != NULL);
	c = counter_slot(st, name);
	if (c != NULL) {
		c->value = value;
		c->flags = flags;
	}
}

void
cbench_set_items_processed(struct cbench_state *st, uint64_t items)
{
	st->run_->have_items = true;
	st->run_->items = items;
	cbench_counter(st, "items_per_second", (double)items, CBENCH_COUNTER_RATE);
}

void
cbench_set_bytes_processed(struct cbench_state *st, uint64_t bytes)
{
	cbench_counter(st, "bytes_per_second", (double)bytes,
	               CBENCH_COUNTER_RATE | CBENCH_COUNTER_1024);
}

void
cbench_set_label(struct cbench_state *st, const char *label)
{
	snprintf(st->run_->label, sizeof(st->run_->label), "%s", label != NULL ? label : "");
}

static void
skip(struct cbench_state *st, enum cbench_skip kind, const char *message)
{
	struct cbench_run_ *r = st->run_;

	if (r->skipped != CBENCH_SKIP_NONE) {
		return; /* the first reason stands */
	}
	r->skipped = kind;
	snprintf(r->message, sizeof(r->message), "%s", message != NULL ? message : "");
	if (r->started && !r->finished) {
		/* This iteration counts as run; the loop ends at its next test. */
		r->iterations_done = r->iterations - st->left_;
		st->left_ = 0;
	}
}

void
cbench_skip_with_error(struct cbench_state *st, const char *message)
{
	skip(st, CBENCH_SKIP_ERROR, message);
}

void
cbench_skip_with_message(struct cbench_state *st, const char *message)
{
	skip(st, CBENCH_SKIP_MESSAGE, message);
}

bool
cbench_skipped(const struct cbench_state *st)
{
	return st->run_->skipped != CBENCH_SKIP_NONE;
}

void *
cbench_user(const struct cbench_state *st)
{
	return st->run_->user;
}

void
cbench_set_user(struct cbench_state *st, void *user)
{
	st->run_->user = user;
}

uint64_t
cbench_predict_iterations(uint64_t iters, double seconds, double min_time_s)
{
	double multiplier = min_time_s * 1.4 / SP_MAX(seconds, 1e-9);
	bool significant = seconds / min_time_s > 0.1;
	double next;

	ASSERT(iters >= 1);
	multiplier = significant ? multiplier : 10.0;
	next = round(SP_MAX(multiplier * (double)iters, (double)iters + 1.0));
	if (!(next < (double)CBENCH_ITERATIONS_MAX)) {
		return CBENCH_ITERATIONS_MAX;
	}
	ASSERT((uint64_t)next > iters);
	return (uint64_t)next;
}

double
cbench_counter_finish(double value, unsigned flags, uint64_t iterations, double seconds,
                      int threads)
{
	double v = value;

	ASSERT(threads >= 1);
	if (flags & CBENCH_COUNTER_RATE) {
		v /= seconds;
	}
	if (flags & CBENCH_COUNTER_AVG_THREADS) {
		v /= threads;
	}
	if (flags & CBENCH_COUNTER_ITER_INVARIANT) {
		v *= (double)iterations;
	}
	if (flags & CBENCH_COUNTER_AVG_ITERATIONS) {
		v /= (double)iterations;
	}
	if (flags & CBENCH_COUNTER_INVERT) {
		v = 1.0 / v;
	}
	return v;
}

/* Fresh run record of one thread of a trial. */
static void
run_init(struct cbench_run_ *r, const struct cbench_instance *inst, uint64_t iters, struct group *g,
         int thread_index)
{
	ASSERT(iters >= 1);
	ASSERT(iters <= CBENCH_ITERATIONS_MAX);
	memset(r, 0, sizeof(*r));
	r->inst = inst;
	r->group = g;
	r->thread_index = thread_index;
	r->threads = inst->threads;
	r->iterations = iters;
	r->process_cpu = inst->family->process_cpu_time;
}

/*
 * Runs the function on one thread's state, then turns a function that never ran its
 * loop, or left it early, into an error; in a group it still passes the barriers the
 * other threads wait at.
 */
static void
run_body(struct cbench_state *st)
{
	struct cbench_run_ *r = st->run_;

	ASSERT(r != NULL);
	ASSERT(!r->started);
	r->inst->family->fn(st);
	if (!r->started) {
		if (r->skipped == CBENCH_SKIP_NONE) {
			skip(st, CBENCH_SKIP_ERROR, "the benchmark did not run its loop");
		}
		r->started = true;
		r->finished = true;
		group_wait(r->group);
		group_wait(r->group);
	} else if (!r->finished) {
		if (r->skipped == CBENCH_SKIP_NONE) {
			skip(st, CBENCH_SKIP_ERROR, "the benchmark returned inside its loop");
		}
		if (r->timing) {
			timer_stop(r);
		}
		r->finished = true;
		group_wait(r->group);
	}
}

struct worker {
	pthread_t tid;
	struct cbench_run_ run;
	struct cbench_state st;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct group *g = w->run.group;

	pthread_mutex_lock(&g->mu);
	while (!g->open) {
		pthread_cond_wait(&g->cv, &g->mu);
	}
	pthread_mutex_unlock(&g->mu);
	run_body(&w->st);
	return NULL;
}

/* Adds one thread's counter to the merged run, by name (GB's Increment). */
static void
merge_counter(struct cbench_run_ *into, const struct cbench_counter_val *c)
{
	for (size_t i = 0; i < into->n_counters; i++) {
		if (strcmp(into->counters[i].name, c->name) == 0) {
			into->counters[i].value += c->value;
			return;
		}
	}
	if (into->n_counters < CBENCH_COUNTERS_MAX) {
		into->counters[into->n_counters++] = *c;
	}
}

/* Folds a worker's run into thread 0's: times, counters and items add up. */
static void
merge_run(struct cbench_run_ *into, const struct cbench_run_ *w)
{
	ASSERT(into->iterations == w->iterations);
	ASSERT(w->thread_index > 0);
	into->real_ns += w->real_ns;
	into->cpu_ns += w->cpu_ns;
	into->tsc_cycles += w->tsc_cycles;
	into->manual_s += w->manual_s;
	into->items += w->items;
	into->have_items = into->have_items || w->have_items;
	for (size_t i = 0; i < w->n_counters; i++) {
		merge_counter(into, &w->counters[i]);
	}
	if (into->label[0] == '\0') {
		memcpy(into->label, w->label, sizeof(into->label));
	}
	if (into->skipped == CBENCH_SKIP_NONE && w->skipped != CBENCH_SKIP_NONE) {
		into->skipped = w->skipped;
		memcpy(into->message, w->message, sizeof(into->message));
	}
}

/*
 * The threads of a multi-threaded trial: workers 1..n-1 are created and held at the
 * gate, then all run; thread 0 is the caller. Real and manual time (and process CPU
 * time) are averaged over the threads afterwards, as Google Benchmark does.
 */
static void
run_threads(const struct cbench_instance *inst, struct cbench_state *st0)
{
	struct cbench_run_ *r = st0->run_;
	int n = inst->threads;
	struct worker *w = calloc((size_t)(n - 1), sizeof(*w));
	struct group g = {.parties = 1};
	int created = 0;

	ASSERT(n >= 2);
	ASSERT(n <= CBENCH_THREADS_MAX);
	if (w == NULL) {
		skip(st0, CBENCH_SKIP_ERROR, "out of memory for the benchmark's threads");
		return;
	}
	pthread_mutex_init(&g.mu, NULL);
	pthread_cond_init(&g.cv, NULL);
	r->group = &g;
	for (int k = 1; k < n; k++) {
		struct worker *wk = &w[k - 1];

		run_init(&wk->run, inst, r->iterations, &g, k);
		wk->run.user = r->user;
		wk->st = (struct cbench_state){
		        .args_ = st0->args_, .n_args_ = st0->n_args_, .run_ = &wk->run};
		if (pthread_create(&wk->tid, NULL, worker_main, wk) != 0) {
			skip(st0, CBENCH_SKIP_ERROR,
			     "pthread_create failed for a benchmark thread");
			break;
		}
		created++;
	}
	pthread_mutex_lock(&g.mu);
	g.parties = created + 1;
	g.open = true;
	pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.mu);
	run_body(st0);
	for (int k = 0; k < created; k++) {
		pthread_join(w[k].tid, NULL);
		merge_run(r, &w[k].run);
	}
	/* Averages over the threads that ran (all n unless a thread could not start). */
	r->group = NULL;
	r->real_ns /= (uint64_t)(created + 1);
	r->manual_s /= created + 1;
	if (r->process_cpu) {
		r->cpu_ns /= (uint64_t)(created + 1);
	}
	pthread_cond_destroy(&g.cv);
	pthread_mutex_destroy(&g.mu);
	free(w);
}

/* One trial: set-up, the function on every thread for iters iterations each, teardown. */
static void
trial(const struct cbench_instance *inst, uint64_t iters, struct cbench_run_ *r)
{
	const struct cbench *b = inst->family;
	struct cbench_state st = {
	        .left_ = 0, .args_ = inst->args, .n_args_ = (unsigned)inst->n_args, .run_ = r};

	run_init(r, inst, iters, NULL, 0);
	if (b->setup != NULL) {
		b->setup(&st);
	}
	if (r->skipped == CBENCH_SKIP_NONE) {
		if (inst->threads > 1) {
			run_threads(inst, &st);
		} else {
			run_body(&st);
		}
	}
	if (b->teardown != NULL) {
		b->teardown(&st);
	}
}

/* The seconds that decide whether a trial was long enough (GB's i.seconds). */
static double
trial_seconds(const struct cbench *b, const struct cbench_run_ *r)
{
	if (b->manual_time) {
		return r->manual_s;
	}
	if (b->real_time) {
		return (double)r->real_ns / 1e9;
	}
	return (double)r->cpu_ns / 1e9;
}

/* GB's ShouldReportIterationResults: failed, at the cap, long enough, or 5x over in real time. */
static bool
long_enough(const struct cbench *b, const struct cbench_run_ *r, double seconds, double min_s)
{
	return r->skipped != CBENCH_SKIP_NONE || r->iterations >= CBENCH_ITERATIONS_MAX ||
	       seconds >= min_s || ((double)r->real_ns / 1e9 >= 5.0 * min_s && !b->manual_time);
}

static int
cmp_counter(const void *a, const void *b)
{
	return strcmp(((const struct cbench_counter_val *)a)->name,
	              ((const struct cbench_counter_val *)b)->name);
}

/* Turns a finished trial into a report entry, finishing its counters. */
static void
make_result(const struct cbench_instance *inst, const struct cbench_flags *f,
            const struct cbench_run_ *r, int rep, int reps, struct cbench_result *out)
{
	const struct cbench *b = inst->family;
	double seconds = trial_seconds(b, r);

	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", inst->name);
	out->inst = inst;
	out->repetitions = reps;
	out->repetition_index = rep;
	out->threads = inst->threads;
	out->iterations = r->iterations * (uint64_t)inst->threads;
	out->unit = b->unit != CBENCH_UNIT_DEFAULT ? b->unit : f->time_unit;
	snprintf(out->label, sizeof(out->label), "%s", r->label);
	out->skipped = r->skipped;
	snprintf(out->message, sizeof(out->message), "%s", r->message);
	if (r->skipped != CBENCH_SKIP_NONE) {
		return;
	}
	out->real_s = b->manual_time ? r->manual_s : (double)r->real_ns / 1e9;
	out->cpu_s = (double)r->cpu_ns / 1e9;
	for (size_t i = 0; i < r->n_counters; i++) {
		out->counters[i] = r->counters[i];
		out->counters[i].value =
		        cbench_counter_finish(r->counters[i].value, r->counters[i].flags,
		                              out->iterations, seconds, inst->threads);
	}
	out->n_counters = r->n_counters;
	if (b->cycles_per_item && r->have_items && r->items > 0 && cbench_tsc_invariant() &&
	    out->n_counters < CBENCH_COUNTERS_MAX) {
		struct cbench_counter_val *c = &out->counters[out->n_counters++];
		snprintf(c->name, sizeof(c->name), "cycles_per_item");
		c->value = (double)r->tsc_cycles / (double)r->items;
		c->flags = 0;
	}
	qsort(out->counters, out->n_counters, sizeof(out->counters[0]), cmp_counter);
}

int
cbench_instance_repetitions(const struct cbench_instance *inst, const struct cbench_flags *f)
{
	return inst->family->repetitions != 0 ? inst->family->repetitions : f->repetitions;
}

/* Runs trials from *iters up until one is long enough for min_s; *iters is its count. */
static void
grow(const struct cbench_instance *inst, double min_s, uint64_t *iters, struct cbench_run_ *r)
{
	const struct cbench *b = inst->family;

	for (;;) {
		trial(inst, *iters, r);
		double seconds = trial_seconds(b, r);
		if (long_enough(b, r, seconds, min_s)) {
			return;
		}
		uint64_t next = cbench_predict_iterations(*iters, seconds, min_s);
		VERIFY(next > *iters);
		*iters = next;
	}
}

int
cbench_run_instance(const struct cbench_instance *inst, const struct cbench_flags *f,
                    struct cbench_result *out, int repetitions)
{
	const struct cbench *b = inst->family;
	struct cbench_run_ *r;
	double min_s = b->min_time_s > 0.0 ? b->min_time_s : f->min_time_s;
	double warmup_s = b->min_warmup_time_s >= 0.0 ? b->min_warmup_time_s : f->min_warmup_time_s;
	bool fixed = b->iterations != 0 || f->min_time_iterations != 0;
	uint64_t iters = b->iterations != 0            ? b->iterations
	                 : f->min_time_iterations != 0 ? f->min_time_iterations
	                                               : 1;

	ASSERT(repetitions >= 1);
	ASSERT(repetitions <= CBENCH_REPETITIONS_MAX);
	/* The run record holds counters and messages: keep it off the stack. */
	r = malloc(sizeof(*r));
	if (r == NULL) {
		return -ENOMEM;
	}
	if (!fixed && warmup_s > 0.0) {
		grow(inst, warmup_s, &iters, r);
	}
	for (int rep = 0; rep < repetitions; rep++) {
		if (rep == 0 && !fixed) {
			grow(inst, min_s, &iters, r);
		} else {
			trial(inst, iters, r);
		}
		make_result(inst, f, r, rep, repetitions, &out[rep]);
	}
	free(r);
	return 0;
}
