/* SPDX-License-Identifier: BSD-3-Clause */
/* Monotonic and wall-clock time in integer units. These make a system call (vDSO). */
#ifndef SP_COMMON_CLOCK_H
#define SP_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

#define SP_NS_PER_US 1000ull
#define SP_NS_PER_MS 1000000ull
#define SP_NS_PER_S  1000000000ull

/* Nanoseconds since an arbitrary fixed point; never goes backwards. Can't fail. */
static inline uint64_t
sp_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * SP_NS_PER_S + (uint64_t)ts.tv_nsec;
}

static inline uint64_t
sp_mono_ms(void)
{
	return sp_mono_ns() / SP_NS_PER_MS;
}

/* Seconds since the Unix epoch. */
static inline uint64_t
sp_wall_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec;
}

#endif
