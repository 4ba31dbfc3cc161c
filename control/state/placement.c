/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/verify.h"
#include "placement.h"

#define SLOTS_MAX (SP_MEMBERS_MAX * SP_WORKERS_MAX)

struct slot {
	uint32_t node_id;
	uint16_t worker;
	uint32_t held;  /* partitions currently mapped here */
	uint32_t quota; /* partitions it gets */
	uint32_t kept;
};

/* Slot index of (node, worker), or -1 when that slot does not exist. */
static int
slot_of(const struct placement_node *nodes, uint32_t n, const uint32_t *base, struct sp_map_entry e)
{
	for (uint32_t i = 0; i < n; i++)
		if (nodes[i].node_id == e.node_id)
			return e.worker < nodes[i].workers ? (int)(base[i] + e.worker) : -1;
	return -1;
}

static int
cmp_slot_by_held(const void *a, const void *b, void *slots_v)
{
	const struct slot *slots = slots_v;
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	if (slots[x].held != slots[y].held)
		return slots[x].held > slots[y].held ? -1 : 1;
	return x < y ? -1 : x > y; /* deterministic tie-break */
}

int
placement_rebalance(struct sp_map_entry *map, uint32_t partitions,
                    const struct placement_node *nodes, uint32_t n)
{
	static struct slot slots[SLOTS_MAX];
	static uint32_t order[SLOTS_MAX];
	uint32_t base[SP_MEMBERS_MAX];
	uint32_t n_slots = 0;

	if (n == 0 || n > SP_MEMBERS_MAX || !sp_is_power_of_two(partitions) ||
	    partitions > SP_PARTITIONS_MAX)
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++) {
		if (nodes[i].workers == 0 || nodes[i].workers > SP_WORKERS_MAX)
			return -EINVAL;
		base[i] = n_slots;
		for (uint16_t w = 0; w < nodes[i].workers; w++)
			slots[n_slots++] = (struct slot){.node_id = nodes[i].node_id, .worker = w};
	}
	ASSERT(n_slots <= SLOTS_MAX);
	for (uint32_t p = 0; p < partitions; p++) {
		int s = slot_of(nodes, n, base, map[p]);
		if (s >= 0)
			slots[s].held++;
	}
	/* The ceil quotas go to the slots holding most, so fewest partitions move. */
	for (uint32_t s = 0; s < n_slots; s++)
		order[s] = s;
	qsort_r(order, n_slots, sizeof(order[0]), cmp_slot_by_held, slots);
	uint32_t q = partitions / n_slots, extra = partitions % n_slots;
	for (uint32_t k = 0; k < n_slots; k++)
		slots[order[k]].quota = q + (k < extra ? 1 : 0);

	int moved = 0;
	uint32_t fill = 0; /* next slot (in order) that may still take partitions */
	for (uint32_t pass = 0; pass < 2; pass++) {
		for (uint32_t p = 0; p < partitions; p++) {
			int s = slot_of(nodes, n, base, map[p]);
			if (pass == 0) {
				/* First pass: keep what fits. Mark the rest with node 0. */
				if (s >= 0 && slots[s].kept < slots[s].quota) {
					slots[s].kept++;
				} else {
					map[p].node_id = 0;
				}
				continue;
			}
			if (map[p].node_id != 0)
				continue;
			while (slots[order[fill]].kept >= slots[order[fill]].quota)
				fill++;
			VERIFY(fill < n_slots);
			struct slot *t = &slots[order[fill]];
			map[p] = (struct sp_map_entry){.node_id = t->node_id, .worker = t->worker};
			t->kept++;
			moved++;
		}
	}
	for (uint32_t s = 0; s < n_slots; s++)
		ASSERT(slots[s].kept == slots[s].quota);
	return moved;
}

void
placement_spread(const struct sp_map_entry *map, uint32_t partitions,
                 const struct placement_node *nodes, uint32_t n, uint32_t *min, uint32_t *max)
{
	static uint32_t count[SLOTS_MAX];
	uint32_t base[SP_MEMBERS_MAX], n_slots = 0;

	VERIFY(n <= SP_MEMBERS_MAX);
	for (uint32_t i = 0; i < n; i++) {
		base[i] = n_slots;
		n_slots += nodes[i].workers;
	}
	memset(count, 0, n_slots * sizeof(count[0]));
	for (uint32_t p = 0; p < partitions; p++) {
		int s = slot_of(nodes, n, base, map[p]);
		if (s >= 0)
			count[s]++;
	}
	*min = UINT32_MAX;
	*max = 0;
	for (uint32_t s = 0; s < n_slots; s++) {
		*min = SP_MIN(*min, count[s]);
		*max = SP_MAX(*max, count[s]);
	}
}
