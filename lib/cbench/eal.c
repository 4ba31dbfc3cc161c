/* SPDX-License-Identifier: BSD-3-Clause */
/* DPDK EAL start-up shared by the DPDK benchmarks (see cbench_eal.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_log.h>

#include "cbench/cbench_eal.h"
#include "common/verify.h"

static int init_rc = 1; /* 1: not tried yet */
static bool no_huge = true;

/* Free 2 MiB pages and a mounted hugetlbfs: both are needed for a hugepage start. */
static bool
hugepages_usable(void)
{
	const char *force = getenv("SP_NO_HUGE");
	char line[512];
	long free_pages = 0;
	bool mounted = false;
	FILE *fp;

	if (force != NULL && strcmp(force, "1") == 0) {
		return false;
	}
	fp = fopen("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "r");
	if (fp != NULL) {
		if (fscanf(fp, "%ld", &free_pages) != 1) {
			free_pages = 0;
		}
		fclose(fp);
	}
	fp = fopen("/proc/mounts", "r");
	if (fp != NULL) {
		while (!mounted && fgets(line, sizeof(line), fp) != NULL) {
			mounted = strstr(line, " hugetlbfs ") != NULL;
		}
		fclose(fp);
	}
	return free_pages > 0 && mounted;
}

/*
 * Runs rte_eal_init with stdout pointed at stderr: the EAL prints its usage and some
 * notices with printf, and stdout carries the report (JSON, CSV) that must stay clean.
 */
static int
init_quiet_stdout(int argc, char **argv)
{
	int saved;
	int rc;

	fflush(stdout);
	saved = dup(STDOUT_FILENO);
	if (saved >= 0) {
		(void)dup2(STDERR_FILENO, STDOUT_FILENO);
	}
	rc = rte_eal_init(argc, argv);
	fflush(stdout);
	if (saved >= 0) {
		(void)dup2(saved, STDOUT_FILENO);
		close(saved);
	}
	return rc;
}

static char runtime_dir[256]; /* the EAL's per-prefix directory, removed at exit */

/* Releases the EAL, then removes its (by then empty) runtime directory. */
static void
cleanup(void)
{
	if (init_rc == 0) {
		rte_eal_cleanup();
		if (runtime_dir[0] != '\0') {
			(void)rmdir(runtime_dir);
		}
	}
}

int
cbench_eal_init(void)
{
	return cbench_eal_init_mb(CBENCH_EAL_NO_HUGE_MB);
}

int
cbench_eal_init_mb(unsigned int mem_mb)
{
	return cbench_eal_init_lcores(0, mem_mb);
}

int
cbench_eal_init_lcores(unsigned int want_lcores, unsigned int mem_mb)
{
	static char lcores[48];
	static char mem[16];
	static char prefix[48];
	int rc;
	char *argv[CBENCH_EAL_ARGS_MAX];
	int argc = 0;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int n_lcores;

	if (mem_mb == 0 || mem_mb > CBENCH_EAL_MEM_MB_MAX) {
		fprintf(stderr, "cbench: EAL memory %u MiB; allowed 1..%d\n", mem_mb,
		        CBENCH_EAL_MEM_MB_MAX);
		return -EINVAL;
	}
	if (want_lcores > CBENCH_EAL_LCORES_MAX) {
		fprintf(stderr, "cbench: %u lcores asked for; allowed 0..%d\n", want_lcores,
		        CBENCH_EAL_LCORES_MAX);
		return -EINVAL;
	}
	if (init_rc != 1) {
		return init_rc;
	}
	n_lcores = cpus > 0 ? (int)SP_MIN(cpus, (long)CBENCH_EAL_LCORES_MAX) : 1;
	if ((int)want_lcores > n_lcores) {
		/* More lcores than CPUs: threads 0 .. want - 1 share the online CPUs. */
		snprintf(lcores, sizeof(lcores), "(0-%u)@(0-%d)", want_lcores - 1, n_lcores - 1);
	} else {
		snprintf(lcores, sizeof(lcores), "0-%d", n_lcores - 1);
	}
	no_huge = !hugepages_usable();
	argv[argc++] = "cbench";
	argv[argc++] = "--no-pci";
	argv[argc++] = "--lcores";
	argv[argc++] = lcores;
	argv[argc++] = "--log-level=*:warning";
	argv[argc++] = "--no-telemetry";
	/* A private prefix: concurrent benchmark programs never share EAL files. */
	snprintf(prefix, sizeof(prefix), "--file-prefix=cbench-%ld", (long)getpid());
	argv[argc++] = prefix;
	if (no_huge) {
		/* --in-memory refuses --no-huge (legacy memory): use a private prefix. */
		snprintf(mem, sizeof(mem), "%u", mem_mb);
		argv[argc++] = "--no-huge";
		argv[argc++] = "--no-shconf";
		argv[argc++] = "-m";
		argv[argc++] = mem;
	} else {
		argv[argc++] = "--in-memory";
	}
	ASSERT(argc < CBENCH_EAL_ARGS_MAX);
	argv[argc] = NULL;
	rte_openlog_stream(stderr);
	rc = init_quiet_stdout(argc, argv);
	if (rc < 0) {
		int err = rte_errno != 0 ? rte_errno : EINVAL;
		fprintf(stderr,
		        "cbench: DPDK EAL init failed (lcores %s, %s): %s; run scripts/setup for "
		        "hugepages, or set SP_NO_HUGE=1\n",
		        lcores, no_huge ? "--no-huge" : "hugepages", rte_strerror(err));
		init_rc = -err;
		return init_rc;
	}
	init_rc = 0;
	snprintf(runtime_dir, sizeof(runtime_dir), "%s", rte_eal_get_runtime_dir());
	atexit(cleanup);
	return 0;
}

bool
cbench_eal_no_huge(void)
{
	return no_huge;
}
