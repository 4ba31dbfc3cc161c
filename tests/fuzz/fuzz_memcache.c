/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer target for the memcached UDP codec: the frame header, then every command of the
 * payload through the parser the way mcexec walks it, and each parsed command's reply
 * shape through the writer (VALUE lines for get keys, reply lines otherwise). Checks the
 * parser's contract: progress on every step, nothing read past the input, keys within
 * their limit, data blocks inside the input and ended by "\r\n".
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/errors.h"
#include "wire/memcache.h"

/* Output datagrams per input: small, so the writer's full path is reached too. */
#define FUZZ_OUT_CAP 4u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int cond)
{
	if (!cond)
		abort();
}

static void
write_get(struct sp_mc_out *o, const struct sp_mc_cmd *c)
{
	char line[SP_MC_LINE_BYTES_MAX];
	uint32_t pos = 0, kl, n = 0;
	const char *k;

	while (sp_mc_next_key(c, &pos, &k, &kl)) {
		struct sp_mc_seg segs[3];

		check(kl > 0 && kl <= SP_MC_KEY_MAX);
		check(k >= c->keys && k + kl <= c->keys + c->keys_len);
		segs[0] = (struct sp_mc_seg){
		        line, sp_mc_format_value_line(line, k, kl, kl, kl, true, pos)};
		segs[1] = (struct sp_mc_seg){k, kl};
		segs[2] = (struct sp_mc_seg){"END\r\n", ++n == c->key_count ? 5u : 0u};
		if (sp_mc_out_resp(o, segs, 3) != 0) {
			sp_mc_out_cull(o);
			return;
		}
	}
	check(n == c->key_count);
	sp_mc_out_flush(o);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out_buf[FUZZ_OUT_CAP * SP_MC_DGRAM_BYTES_MAX];
	static uint16_t out_lens[FUZZ_OUT_CAP];
	struct sp_mc_frame f;
	struct sp_mc_out o;
	size_t off;
	/* The first byte picks the value limit, so the too-large path is reached. */
	size_t value_max = size > 0 ? (size_t)data[0] * 4u : SP_MC_VALUE_MAX;

	if (sp_mc_frame_decode(data, size, &f) != 0) {
		check(size < SP_MC_FRAME_BYTES);
		return 0;
	}
	if (!sp_mc_frame_acceptable(&f, size - SP_MC_FRAME_BYTES))
		return 0;
	sp_mc_out_init(&o, out_buf, out_lens, FUZZ_OUT_CAP, f.request_id);
	off = SP_MC_FRAME_BYTES;
	while (off < size) {
		struct sp_mc_cmd c;
		size_t used = 0;
		int rc = sp_mc_parse(data + off, size - off, value_max, &c, &used);

		check(used <= size - off);
		if (rc != 0) {
			check(rc == -SP_ETRUNCATED);
			break;
		}
		check(used > 0);
		check(c.kind < SP_MC_KIND_COUNT);
		check(c.key_len <= SP_MC_KEY_MAX);
		if (c.value != NULL) {
			check(c.value >= data + off &&
			      c.value + c.value_len + 2 <= data + off + used);
			check(memcmp(c.value + c.value_len, "\r\n", 2) == 0);
		}
		if (sp_mc_kind_is_get(c.kind)) {
			write_get(&o, &c);
		} else {
			const char *t =
			        sp_mc_reply_text(c.kind == SP_MC_REPLY ? c.reply : SP_MC_R_STORED);

			if (c.cull)
				sp_mc_out_cull(&o);
			if (c.noreply)
				sp_mc_out_skip(&o);
			else if (sp_mc_out_line(&o, t, strlen(t)) != 0)
				break;
		}
		off += used;
	}
	for (uint32_t i = 0; i < o.n; i++) {
		struct sp_mc_frame r;

		check(o.lens[i] >= SP_MC_FRAME_BYTES && o.lens[i] <= SP_MC_DGRAM_BYTES_MAX);
		check(sp_mc_frame_decode(sp_mc_out_dgram(&o, i), o.lens[i], &r) == 0);
		check(r.request_id == f.request_id);
		check(r.count == 0 || r.seq < r.count);
	}
	return 0;
}
