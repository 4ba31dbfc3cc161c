/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Assertions. VERIFY is always on: it guards invariants whose failure means memory or
 * data would be corrupted if the process went on. ASSERT is compiled out with NDEBUG
 * (release builds) and may sit on hot paths. Split compound conditions so a failure
 * names the exact one: ASSERT(a); ASSERT(b);
 */
#ifndef SP_COMMON_VERIFY_H
#define SP_COMMON_VERIFY_H

/* _Noreturn, not <stdnoreturn.h>: its `noreturn` macro would break every
 * __attribute__((noreturn)) in headers read after this one (DPDK's among them). */
_Noreturn void sp_verify_failed(const char *expr, const char *file, int line, const char *func);

#define VERIFY(cond)                                                           \
	do {                                                                   \
		if (__builtin_expect(!(cond), 0))                              \
			sp_verify_failed(#cond, __FILE__, __LINE__, __func__); \
	} while (0)

#ifdef NDEBUG
#define ASSERT(cond) ((void)sizeof(cond))
#else
#define ASSERT(cond) VERIFY(cond)
#endif

#define SP_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)

#define SP_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define SP_MIN(a, b)     ((a) < (b) ? (a) : (b))
#define SP_MAX(a, b)     ((a) > (b) ? (a) : (b))

#endif
