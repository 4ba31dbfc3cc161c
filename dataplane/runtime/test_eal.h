/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * EAL for the unit tests that run a node over net_ring (test_bounds, test_mcport): no
 * hugepages, no PCI, no telemetry, three lcores on CPU 0 (main + two workers), and a
 * file prefix of the test's name and pid so that runs never share EAL state.
 * test_eal_stop() is also how test_handoff (its own EAL arguments) ends EAL.
 */
#ifndef SP_DP_TEST_EAL_H
#define SP_DP_TEST_EAL_H

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
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

/*
 * Stops EAL, then removes the runtime directory of the test's own file prefix
 * (/var/run/dpdk/<prefix>: config, fbarrays, sockets, ~3 MB), which rte_eal_cleanup leaves
 * behind; every test run would otherwise add one. The path is copied first: it lives in
 * EAL's configuration. The directory holds only plain files of this process. A failure is
 * printed but fails no test: the test's result does not depend on it.
 */
static inline void
test_eal_stop(void)
{
	char dir[PATH_MAX];
	struct dirent *ent;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s", rte_eal_get_runtime_dir());
	rte_eal_cleanup();
	if (dir[0] == '\0')
		return;
	d = opendir(dir);
	if (d == NULL) {
		SP_LOG_WARN("test_eal", "cannot open %s to remove it: %s", dir, strerror(errno));
		return;
	}
	while ((ent = readdir(d)) != NULL) {
		if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(d), ent->d_name, 0) != 0)
			SP_LOG_WARN("test_eal", "cannot remove %s/%s: %s", dir, ent->d_name,
			            strerror(errno));
	}
	closedir(d);
	if (rmdir(dir) != 0)
		SP_LOG_WARN("test_eal", "cannot remove %s: %s", dir, strerror(errno));
}

#endif
