/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * EAL for the unit tests that run a node over net_ring (test_bounds, test_mcport): no
 * hugepages, no PCI, no telemetry, three lcores on CPU 0 (main + two workers), and a
 * file prefix of the test's name and pid so that runs never share EAL state.
 */
#ifndef SP_DP_TEST_EAL_H
#define SP_DP_TEST_EAL_H

#include <stdio.h>
#include <unistd.h>

#include <rte_eal.h>

#include "common/log.h"
#include "common/verify.h"

/* Starts EAL for test `name` (argv0 as the program name). Returns 0, or -1 (printed). */
static inline int
test_eal_start(const char *name, char *argv0)
{
	static char prefix[64];
	char *eal_argv[] = {argv0,
	                    (char *)"--no-huge",
	                    (char *)"-m",
	                    (char *)"256",
	                    (char *)"--no-pci",
	                    (char *)"--lcores",
	                    (char *)"0@0,1@0,2@0",
	                    (char *)"--no-telemetry",
	                    (char *)"--log-level",
	                    (char *)"error",
	                    (char *)"--file-prefix",
	                    prefix};

	ASSERT(name != NULL);
	snprintf(prefix, sizeof(prefix), "sp_%s_%d", name, (int)getpid());
	if (rte_eal_init((int)SP_ARRAY_SIZE(eal_argv), eal_argv) < 0) {
		fprintf(stderr, "%s: EAL start-up failed\n", name);
		return -1;
	}
	sp_log_set_level(SP_LOG_WARN);
	return 0;
}

#endif
