/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target for the control plane's frame decoder: arbitrary bytes are parsed as a
 * stream of frames, before and after authentication limits; AUTH payloads and the Raft
 * messages that RAFT frames carry are decoded. Every frame returned must lie inside the
 * input, and every decoded entry inside its frame.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "raft/raft.h"
#include "transport/frame.h"

static struct raft_entry entries[RAFT_MSG_ENTRIES_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	for (int pass = 0; pass < 2; pass++) {
		uint32_t max = pass ? FRAME_LEN_MAX : FRAME_PREAUTH_MAX;
		size_t off = 0;
		while (off < size) {
			struct frame f;
			int64_t n = frame_parse(data + off, size - off, max, &f);
			if (n <= 0)
				break;
			if ((size_t)n > size - off || f.payload + f.len > data + size)
				abort();
			if (f.type == FRAME_AUTH) {
				struct frame_auth a;
				(void)frame_auth_decode(f.payload, f.len, &a);
			} else if (f.type == FRAME_RAFT) {
				struct raft_msg m;
				if (raft_msg_decode(f.payload, f.len, &m, entries,
				                    RAFT_MSG_ENTRIES_MAX) == 0) {
					for (uint32_t i = 0; i < m.n_entries; i++)
						if (m.entries[i].len &&
						    ((const uint8_t *)m.entries[i].data <
						             f.payload ||
						     (const uint8_t *)m.entries[i].data +
						                     m.entries[i].len >
						             f.payload + f.len))
							abort();
				}
			}
			off += (size_t)n;
		}
	}
	return 0;
}
