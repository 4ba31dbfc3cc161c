/* SPDX-License-Identifier: BSD-3-Clause */
/* The example operation of docs/tasks.md (example_hits.c). */
#ifndef SP_TESTS_EXAMPLE_HITS_H
#define SP_TESTS_EXAMPLE_HITS_H

#include <stddef.h>

#include "dataplane/tasks/task.h"

int hits_register(struct sp_task_registry *r, char *why, size_t why_len);

#endif
