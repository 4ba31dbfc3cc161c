/* SPDX-License-Identifier: BSD-3-Clause */
/* Prefetching a cache line that is about to be written. */
#ifndef SP_DATAPLANE_RUNTIME_PREFETCH_H
#define SP_DATAPLANE_RUNTIME_PREFETCH_H

/*
 * Asks for a cache line in exclusive state: a line the other side of a ring wrote last is
 * fetched once, not once for reading and again for writing. PREFETCHW is a no-op on x86
 * CPUs that lack it; -march=corei7 does not let the compiler emit it, hence the asm.
 */
static inline void
dp_prefetch_for_write(const void *p)
{
#if defined(__x86_64__)
	__asm__ volatile("prefetchw %0" : : "m"(*(const volatile char *)p));
#else
	__builtin_prefetch(p, 1, 3);
#endif
}

#endif
