/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The machine description of the report's context, read the way Google Benchmark reads
 * it on Linux (sysfs, /proc/cpuinfo). Anything unreadable is reported as 0 or left out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "cbench/internal.h"
#include "common/verify.h"

/* Reads the first line of path into buf without its newline. Returns 0 or -1. */
static int
read_line(const char *path, char *buf, size_t len)
{
	FILE *fp = fopen(path, "r");
	char *ok;

	if (fp == NULL) {
		return -1;
	}
	ok = fgets(buf, (int)len, fp);
	fclose(fp);
	if (ok == NULL) {
		return -1;
	}
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

/* Bits set in a sysfs CPU mask such as "00000003" or "ff,00000000". */
static int
count_mask_bits(const char *mask)
{
	int n = 0;

	for (const char *p = mask; *p != '\0'; p++) {
		char c = *p;
		int v;

		if (c >= '0' && c <= '9') {
			v = c - '0';
		} else if (c >= 'a' && c <= 'f') {
			v = c - 'a' + 10;
		} else if (c >= 'A' && c <= 'F') {
			v = c - 'A' + 10;
		} else {
			continue;
		}
		n += __builtin_popcount((unsigned)v);
	}
	return n;
}

static void
read_caches(struct cbench_sysinfo *si)
{
	for (int i = 0; si->n_caches < CBENCH_CACHES_MAX; i++) {
		char path[128];
		char buf[256];
		struct cbench_cache *c = &si->caches[si->n_caches];
		char *end;

		snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
		if (read_line(path, buf, sizeof(buf)) != 0) {
			break;
		}
		c->size_bytes = strtol(buf, &end, 10);
		if (*end == 'K') {
			c->size_bytes *= 1024;
		} else if (*end == 'M') {
			c->size_bytes *= 1024 * 1024;
		}
		snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu0/cache/index%d/type", i);
		if (read_line(path, buf, sizeof(buf)) != 0) {
			break;
		}
		snprintf(c->type, sizeof(c->type), "%.15s", buf);
		snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
		if (read_line(path, buf, sizeof(buf)) != 0) {
			break;
		}
		c->level = atoi(buf);
		snprintf(path, sizeof(path),
		         "/sys/devices/system/cpu/cpu0/cache/index%d/shared_cpu_map", i);
		c->num_sharing = read_line(path, buf, sizeof(buf)) == 0 ? count_mask_bits(buf) : 0;
		si->n_caches++;
	}
	ASSERT(si->n_caches <= CBENCH_CACHES_MAX);
}

/* Google Benchmark's order: tsc_freq_khz, cpuinfo_max_freq, then /proc/cpuinfo. */
static double
read_cycles_per_second(void)
{
	char buf[256];
	FILE *fp;
	double mhz = 0.0;
	double bogo = 0.0;

	if (read_line("/sys/devices/system/cpu/cpu0/tsc_freq_khz", buf, sizeof(buf)) == 0 &&
	    atof(buf) > 0) {
		return atof(buf) * 1000.0;
	}
	if (read_line("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", buf, sizeof(buf)) ==
	            0 &&
	    atof(buf) > 0) {
		return atof(buf) * 1000.0;
	}
	fp = fopen("/proc/cpuinfo", "r");
	if (fp == NULL) {
		return 0.0;
	}
	while (fgets(buf, sizeof(buf), fp) != NULL) {
		const char *colon = strchr(buf, ':');
		if (colon == NULL) {
			continue;
		}
		if (mhz == 0.0 && strncmp(buf, "cpu MHz", 7) == 0) {
			mhz = atof(colon + 1);
		} else if (bogo == 0.0 && strncasecmp(buf, "bogomips", 8) == 0) {
			bogo = atof(colon + 1);
		}
	}
	fclose(fp);
	return (mhz > 0.0 ? mhz : bogo) * 1e6;
}

static bool
read_scaling(int num_cpus)
{
	for (int cpu = 0; cpu < num_cpus; cpu++) {
		char path[128];
		char buf[64];

		snprintf(path, sizeof(path),
		         "/sys/devices/system/cpu/cpu%d/cpufreq/scaling_governor", cpu);
		if (read_line(path, buf, sizeof(buf)) == 0 && strcmp(buf, "performance") != 0) {
			return true;
		}
	}
	return false;
}

bool
cbench_tsc_invariant(void)
{
#if defined(__x86_64__) || defined(__i386__)
	static int cached = -1;
	unsigned a, b, c, d;

	if (cached < 0) {
		cached = __get_cpuid(0x80000007, &a, &b, &c, &d) != 0 && (d & (1u << 8)) != 0;
	}
	return cached == 1;
#else
	return false;
#endif
}

/* "2026-11-26T03:31:44+00:00": local time, ISO 8601 with a colon in the offset. */
static void
read_date(char *buf, size_t len)
{
	time_t now = time(NULL);
	struct tm tm;
	char tz[8];
	size_t n;

	ASSERT(len >= 32);
	localtime_r(&now, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	if (strftime(tz, sizeof(tz), "%z", &tm) == 5) {
		snprintf(buf + n, len - n, "%.3s:%.2s", tz, tz + 3);
	}
}

void
cbench_sysinfo_read(struct cbench_sysinfo *si, const char *executable)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	memset(si, 0, sizeof(*si));
	read_date(si->date, sizeof(si->date));
	if (gethostname(si->host_name, sizeof(si->host_name) - 1) != 0) {
		snprintf(si->host_name, sizeof(si->host_name), "unknown");
	}
	si->executable = executable != NULL ? executable : "";
	si->num_cpus = ncpu > 0 ? (int)ncpu : 0;
	si->cycles_per_second = read_cycles_per_second();
	si->scaling_enabled = read_scaling(si->num_cpus);
	read_caches(si);
	si->n_load_avg = getloadavg(si->load_avg, 3);
	if (si->n_load_avg < 0) {
		si->n_load_avg = 0;
	}
	si->tsc_invariant = cbench_tsc_invariant();
}
