/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libcbench: a C benchmark harness that behaves like Google Benchmark (1.7, the Debian
 * version): the same flags, the same benchmark and instance names, the same console table,
 * the same JSON and CSV, so Google Benchmark's tools (compare.py) work on its output.
 *
 * A benchmark file:
 *
 *	#include "cbench/cbench.h"
 *
 *	static void
 *	BM_get(struct cbench_state *st)
 *	{
 *		int64_t n = cbench_range(st, 0);
 *		... set-up, not timed ...
 *		while (cbench_keep_running(st)) {
 *			... the measured work ...
 *		}
 *		cbench_set_items_processed(st, cbench_iterations(st) * n);
 *	}
 *	CBENCH_REGISTER(BM_get)
 *	{
 *		cbench_add_range(b, 8, 512);        // BM_get/8, BM_get/64, BM_get/512
 *	}
 *
 *	static void BM_put(struct cbench_state *st) { ... }
 *	CBENCH(BM_put);                             // no arguments: one instance "BM_put"
 *
 * and links with cbench_main_dep (which provides main()) or calls cbench_main() itself.
 * DPDK benchmarks start the EAL with cbench_eal_init() (cbench/cbench_eal.h,
 * cbench_eal_dep). docs/benchmarks.md has the whole guide.
 *
 * Registration runs before main() (a constructor); it only records, never runs anything.
 * Mistakes in registration (too many arguments, bad ranges) are recorded and reported by
 * cbench_main(), which then exits with status 1 without running anything.
 *
 * Threads: cbench_add_threads(b, n) runs the function on n threads at once, as Google
 * Benchmark's ->Threads(n): every thread runs the same iteration count, the loops start
 * and end together, and the report sums iterations and counters over the threads. A
 * benchmark that drives DPDK lcores itself should instead call
 * cbench_measure_process_cpu_time() so CPU time covers them.
 */
#ifndef SP_CBENCH_CBENCH_H
#define SP_CBENCH_CBENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds. Registration past one of them is an error reported by cbench_main(). */
#define CBENCH_FAMILIES_MAX      1024 /* registered benchmark families per program */
#define CBENCH_INSTANCES_MAX     4096 /* argument sets (instances) of one family */
#define CBENCH_ARGS_MAX          8    /* arguments per instance (range(0) .. range(7)) */
#define CBENCH_COUNTERS_MAX      32   /* user counters per run, items/bytes included */
#define CBENCH_NAME_MAX          256  /* bytes of a full instance or counter name, with NUL */
#define CBENCH_LABEL_MAX         256  /* bytes of a label or skip message, with NUL */
#define CBENCH_REPETITIONS_MAX   10000
#define CBENCH_THREADS_MAX       64            /* threads of one instance */
#define CBENCH_THREAD_COUNTS_MAX 16            /* thread counts of one family */
#define CBENCH_ITERATIONS_MAX    1000000000ull /* Google Benchmark's kMaxIterations */
#define CBENCH_RANGE_MULTIPLIER  8             /* default multiplier of cbench_add_range() */

/* The time unit of a family's report (Google Benchmark's TimeUnit). */
enum cbench_unit {
	CBENCH_UNIT_DEFAULT = 0, /* --benchmark_time_unit, else nanoseconds */
	CBENCH_NS,
	CBENCH_US,
	CBENCH_MS,
	CBENCH_S,
};

/* Counter flags, with the meaning (and the order of application) of benchmark::Counter. */
enum cbench_counter_flags {
	CBENCH_COUNTER_DEFAULT = 0,
	CBENCH_COUNTER_RATE = 1 << 0,           /* divided by the measured seconds */
	CBENCH_COUNTER_AVG_THREADS = 1 << 1,    /* divided by the thread count */
	CBENCH_COUNTER_ITER_INVARIANT = 1 << 2, /* multiplied by the iteration count */
	CBENCH_COUNTER_AVG_ITERATIONS = 1 << 3, /* divided by the iteration count */
	CBENCH_COUNTER_INVERT = 1 << 4,         /* 1/value, last (seconds per item) */
	CBENCH_COUNTER_1024 = 1 << 5,           /* console: 1024-based K/M/G, not 1000's k/M/G */
};

struct cbench;       /* a registered family: a function and its argument sets */
struct cbench_state; /* handed to the benchmark function for one run */

typedef void (*cbench_fn)(struct cbench_state *st);

/* ---- Registration (before main, or from main before cbench_main) ---- */

/*
 * Registers a family named name running fn. Both must stay valid for the program's life.
 * Returns the family handle; on overflow of CBENCH_FAMILIES_MAX records an error and
 * returns a handle that accepts and ignores the builder calls, so it never returns NULL.
 */
struct cbench *cbench_register(const char *name, cbench_fn fn);

/* Builder calls; each records an error (reported by cbench_main) on a bad value. */
void cbench_add_arg(struct cbench *b, int64_t value);                    /* ->Arg(v) */
void cbench_add_args(struct cbench *b, const int64_t *values, size_t n); /* ->Args({..}) */
void cbench_add_range(struct cbench *b, int64_t lo, int64_t hi);         /* ->Range(lo,hi) */
void cbench_add_dense_range(struct cbench *b, int64_t lo, int64_t hi, int64_t step);
/* ->Ranges({{lo0,hi0},{lo1,hi1},..}): the product of each dimension's Range(), n dims. */
void cbench_add_ranges(struct cbench *b, const int64_t *lo, const int64_t *hi, size_t n);
void cbench_set_range_multiplier(struct cbench *b, int multiplier); /* >= 2 */
void cbench_set_arg_names(struct cbench *b, const char *const *names, size_t n);
void cbench_set_unit(struct cbench *b, enum cbench_unit unit);
void cbench_set_min_time(struct cbench *b, double seconds);        /* adds /min_time:X */
void cbench_set_min_warmup_time(struct cbench *b, double seconds); /* /min_warmup_time:X */
void cbench_set_iterations(struct cbench *b, uint64_t iterations); /* /iterations:N */
void cbench_set_repetitions(struct cbench *b, int repetitions);    /* /repeats:N */
void cbench_use_real_time(struct cbench *b);   /* iterations grow on real time */
void cbench_use_manual_time(struct cbench *b); /* cbench_set_iteration_time() */
void cbench_measure_process_cpu_time(struct cbench *b);
/*
 * Adds the counter cycles_per_item (TSC cycles in the timed region / items processed)
 * when the benchmark sets items processed and the TSC is invariant (CPUID 0x80000007
 * EDX bit 8); elsewhere the counter is left out rather than reported wrong.
 */
void cbench_set_cycles_per_item(struct cbench *b);
/*
 * Fixtures: setup runs before every run of an instance (each trial of an iteration
 * count, each repetition), teardown after it; neither is timed. Either may be NULL.
 */
void cbench_set_fixture(struct cbench *b, cbench_fn setup, cbench_fn teardown);
/*
 * Thread counts (->Threads(n), ->ThreadRange(lo, hi) doubling from lo): each argument set
 * runs once per count, named ".../threads:N". With several threads the fixture runs
 * once per trial on the calling thread (thread 0), and every thread sees its user
 * pointer.
 */
void cbench_add_threads(struct cbench *b, int threads);
void cbench_add_thread_range(struct cbench *b, int lo, int hi);

/* Expands to a registration of fn with no arguments: CBENCH(BM_x); */
#define CBENCH(fn)                                                      \
	__attribute__((constructor)) static void cbench_ctor_##fn(void) \
	{                                                               \
		(void)cbench_register(#fn, fn);                         \
	}                                                               \
	_Static_assert(1, "CBENCH needs a semicolon")

/*
 * Registers fn and runs the block that follows with `b`, the family handle:
 *	CBENCH_REGISTER(BM_x) { cbench_add_range(b, 1, 64); }
 */
#define CBENCH_REGISTER(fn)                                             \
	static void cbench_build_##fn(struct cbench *b);                \
	__attribute__((constructor)) static void cbench_ctor_##fn(void) \
	{                                                               \
		cbench_build_##fn(cbench_register(#fn, fn));            \
	}                                                               \
	static void cbench_build_##fn(struct cbench *b __attribute__((unused)))

/* ---- Running ---- */

/*
 * Parses the flags (and their BENCHMARK_* environment forms), runs every registered
 * instance that matches --benchmark_filter and reports. Returns the process exit status:
 * 0 on success (a benchmark that skipped with an error still counts as success, as in
 * Google Benchmark), 1 on a bad flag, a registration error or an output file error.
 */
int cbench_main(int argc, char **argv);

/* ---- Inside a benchmark function ---- */

/*
 * The state is owned by libcbench. The fields are public only so that the loop test
 * below can be inlined; read and change them through the functions.
 */
struct cbench_state {
	uint64_t left_;       /* iterations still to run in this loop */
	const int64_t *args_; /* the instance's arguments */
	unsigned n_args_;
	struct cbench_run_ *run_;
};

bool cbench_loop_edge_(struct cbench_state *st);
__attribute__((noreturn)) void cbench_range_fail_(const struct cbench_state *st, unsigned i);

/*
 * The measured loop: while (cbench_keep_running(st)) { ... }. The first call starts the
 * timers, the call that returns false stops them. The hot path is one decrement; timers
 * are read only at the two edges. Use exactly one such loop per benchmark function.
 */
static inline bool
cbench_keep_running(struct cbench_state *st)
{
	if (__builtin_expect(st->left_ != 0, 1)) {
		st->left_--;
		return true;
	}
	return cbench_loop_edge_(st);
}

/* The i-th argument of the instance (state.range(i)); aborts with a message past the last. */
static inline int64_t
cbench_range(const struct cbench_state *st, unsigned i)
{
	if (__builtin_expect(i >= st->n_args_, 0)) {
		cbench_range_fail_(st, i);
	}
	return st->args_[i];
}

uint64_t cbench_iterations(const struct cbench_state *st); /* iterations of this run */
int cbench_thread_index(const struct cbench_state *st);    /* 0 .. cbench_threads(st) - 1 */
int cbench_threads(const struct cbench_state *st);
/* Stops and restarts the timers inside the loop (costly: two clock reads each). */
void cbench_pause_timing(struct cbench_state *st);
void cbench_resume_timing(struct cbench_state *st);
/* With cbench_use_manual_time(): the seconds the iteration just run took. */
void cbench_set_iteration_time(struct cbench_state *st, double seconds);
/*
 * Sets (or replaces) user counter name to value, finished as flags say when the run ends.
 * Names past CBENCH_NAME_MAX are truncated; past CBENCH_COUNTERS_MAX distinct counters
 * the run is skipped with an error naming the counter.
 */
void cbench_counter(struct cbench_state *st, const char *name, double value, unsigned flags);
void cbench_set_items_processed(struct cbench_state *st, uint64_t items); /* items_per_second */
void cbench_set_bytes_processed(struct cbench_state *st, uint64_t bytes); /* bytes_per_second */
void cbench_set_label(struct cbench_state *st, const char *label);
/*
 * Ends the run with an error (reported as error_occurred/error_message): the loop, if
 * running, stops at its next test; a loop not yet started never starts.
 */
void cbench_skip_with_error(struct cbench_state *st, const char *message);
/* Ends the run as skipped (reported as skipped/skip_message, as Google Benchmark 1.8). */
void cbench_skip_with_message(struct cbench_state *st, const char *message);
bool cbench_skipped(const struct cbench_state *st);
/* A pointer for the fixture and the function to share (set-up data); NULL at first. */
void *cbench_user(const struct cbench_state *st);
void cbench_set_user(struct cbench_state *st, void *user);

/* Makes the compiler assume *p is read and may be written: the work on it must happen. */
static inline void
cbench_do_not_optimize(const void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

/* For a scalar lvalue: the compiler must compute its value and may not assume it after. */
#define CBENCH_DO_NOT_OPTIMIZE(lvalue) __asm__ volatile("" : "+r,m"(lvalue) : : "memory")

/* Makes the compiler assume all memory is read and written here (a compiler barrier). */
static inline void
cbench_clobber_memory(void)
{
	__asm__ volatile("" : : : "memory");
}

#endif
