/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * DPDK EAL start-up for benchmark programs (cbench_eal_dep, built only with DPDK).
 * A benchmark calls cbench_eal_init() from its function or fixture, so that listing or
 * filtering benchmarks never starts DPDK. The EAL is started once per process with
 *   --no-pci --lcores 0-N --no-telemetry --log-level=*:warning --file-prefix=cbench-<pid>
 * plus --in-memory with free 2 MiB hugepages, or --no-huge --no-shconf -m 256 without
 * them or when SP_NO_HUGE=1 is set (the EAL refuses --in-memory with --no-huge). The
 * runtime directory is removed at exit. DPDK's log and usage go to stderr, never stdout,
 * so the JSON or CSV report on stdout stays clean.
 */
#ifndef SP_CBENCH_CBENCH_EAL_H
#define SP_CBENCH_CBENCH_EAL_H

#include <stdbool.h>

#define CBENCH_EAL_LCORES_MAX 8     /* lcores asked for: at most this many, one per CPU */
#define CBENCH_EAL_NO_HUGE_MB 256   /* default memory of a --no-huge start */
#define CBENCH_EAL_MEM_MB_MAX 16384 /* the most cbench_eal_init_mb() accepts */
#define CBENCH_EAL_ARGS_MAX   16

/*
 * Starts the EAL with min(online CPUs, CBENCH_EAL_LCORES_MAX) lcores, the first being
 * the calling thread. Idempotent: later calls return the first call's result. Returns 0,
 * or a negative errno (the reason is also printed on stderr).
 */
int cbench_eal_init(void);

/*
 * The same with mem_mb MiB for the --no-huge start (-m), for benchmarks with large
 * tables; with hugepages the EAL grows on demand and mem_mb is not passed. Returns
 * -EINVAL for 0 or more than CBENCH_EAL_MEM_MB_MAX. The first successful start wins.
 */
int cbench_eal_init_mb(unsigned int mem_mb);

/*
 * The same with at least want_lcores lcores (at most CBENCH_EAL_LCORES_MAX, else -EINVAL),
 * for benchmarks that set up a node of several workers in one thread: when the machine
 * has fewer online CPUs, the lcores share them (--lcores (0-N)@(0-C)). 0 asks for the
 * default. The first successful start wins.
 */
int cbench_eal_init_lcores(unsigned int want_lcores, unsigned int mem_mb);

/* Whether the EAL runs without hugepages (true before a successful init too). */
bool cbench_eal_no_huge(void);

#endif
