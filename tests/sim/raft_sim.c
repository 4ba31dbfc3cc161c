/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * raft-sim: runs the deterministic Raft simulator over a range of seeds.
 *   raft-sim --seeds N [--seed-start S] [--nodes K] [--steps T] [--trace] [--help]
 * Prints one summary line; on a violation prints the seed, the property and the command
 * that replays it with a trace, and exits 1. Bad flags exit 2.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/errors.h"
#include "common/log.h"
#include "common/verify.h"
#include "sim_cluster.h"

#define SIM_SEEDS_MAX     100000000ull
#define SIM_STEPS_DEFAULT 1500
#define SIM_NODES_DEFAULT 3

struct cli {
	uint64_t seeds;
	uint64_t seed_start;
	unsigned nodes;
	uint64_t steps;
	bool trace;
	bool keep_going;
	bool no_liveness;
};

/* Violations per property, for --keep-going. */
#define SIM_TALLY_MAX 16

struct tally {
	char property[SIM_PROPERTY_MAX];
	uint64_t count;
	uint64_t first_seed;
};

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: raft-sim --seeds N [--seed-start S] [--nodes K] [--steps T] [--trace]\n"
	        "  --seeds N       seeds to run, 1..%llu (required)\n"
	        "  --seed-start S  first seed (default 0); seeds S..S+N-1 run\n"
	        "  --nodes K       initial voters, %u..%u (default %u)\n"
	        "  --steps T       ticks of faults before the network heals, 1..%u (default %u)\n"
	        "  --trace         print every event of every seed on stdout\n"
	        "  --keep-going    run every seed even after a violation; tally by property\n"
	        "  --no-liveness   skip the liveness check (hunting safety bugs while a known\n"
	        "                  liveness problem is open)\n"
	        "  --help          this text\n"
	        "Exit status: 0 no violation, 1 a violation (seed and replay command printed),\n"
	        "2 bad arguments.\n",
	        SIM_SEEDS_MAX, SIM_VOTERS_MIN, SIM_VOTERS_MAX, SIM_NODES_DEFAULT, SIM_STEPS_MAX,
	        SIM_STEPS_DEFAULT);
}

/* Parses a decimal u64 in [lo, hi]. Returns 0 or -EINVAL with a message printed. */
static int
parse_u64(const char *flag, const char *text, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end = NULL;

	if (text == NULL) {
		fprintf(stderr, "raft-sim: %s needs a value; see --help\n", flag);
		return -EINVAL;
	}
	errno = 0;
	unsigned long long v = strtoull(text, &end, 10);

	if (errno != 0 || end == text || *end != '\0' || text[0] == '-') {
		fprintf(stderr, "raft-sim: %s '%s' is not a decimal number\n", flag, text);
		return -EINVAL;
	}
	if (v < lo || v > hi) {
		fprintf(stderr, "raft-sim: %s %llu is out of range; use %" PRIu64 "..%" PRIu64 "\n",
		        flag, v, lo, hi);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/* Fills cli from argv. Returns 0, 1 for --help (printed), or -EINVAL (message printed). */
static int
parse_args(int argc, char **argv, struct cli *cli)
{
	bool have_seeds = false;
	uint64_t v;

	*cli = (struct cli){.nodes = SIM_NODES_DEFAULT, .steps = SIM_STEPS_DEFAULT};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 1;
		} else if (strcmp(a, "--trace") == 0) {
			cli->trace = true;
		} else if (strcmp(a, "--keep-going") == 0) {
			cli->keep_going = true;
		} else if (strcmp(a, "--no-liveness") == 0) {
			cli->no_liveness = true;
		} else if (strcmp(a, "--seeds") == 0) {
			if (parse_u64(a, val, 1, SIM_SEEDS_MAX, &cli->seeds) != 0)
				return -EINVAL;
			have_seeds = true;
			i++;
		} else if (strcmp(a, "--seed-start") == 0) {
			if (parse_u64(a, val, 0, UINT64_MAX - SIM_SEEDS_MAX, &cli->seed_start) != 0)
				return -EINVAL;
			i++;
		} else if (strcmp(a, "--nodes") == 0) {
			if (parse_u64(a, val, SIM_VOTERS_MIN, SIM_VOTERS_MAX, &v) != 0)
				return -EINVAL;
			cli->nodes = (unsigned)v;
			i++;
		} else if (strcmp(a, "--steps") == 0) {
			if (parse_u64(a, val, 1, SIM_STEPS_MAX, &cli->steps) != 0)
				return -EINVAL;
			i++;
		} else {
			fprintf(stderr, "raft-sim: unknown argument '%s'; see --help\n", a);
			return -EINVAL;
		}
	}
	if (!have_seeds) {
		fprintf(stderr, "raft-sim: --seeds N is required; see --help\n");
		return -EINVAL;
	}
	ASSERT(cli->nodes >= SIM_VOTERS_MIN);
	ASSERT(cli->steps >= 1);
	return 0;
}

/* Counts one violation of property; properties past SIM_TALLY_MAX share the last slot. */
static void
tally_add(struct tally *t, unsigned *n, const char *property, uint64_t seed)
{
	for (unsigned i = 0; i < *n; i++) {
		if (strcmp(t[i].property, property) == 0) {
			t[i].count++;
			return;
		}
	}
	if (*n == SIM_TALLY_MAX) {
		t[*n - 1].count++;
		return;
	}
	snprintf(t[*n].property, sizeof(t[*n].property), "%s", property);
	t[*n].count = 1;
	t[*n].first_seed = seed;
	(*n)++;
	ASSERT(*n <= SIM_TALLY_MAX);
}

int
main(int argc, char **argv)
{
	struct cli cli;
	int rc = parse_args(argc, argv, &cli);

	if (rc == 1)
		return 0;
	if (rc != 0)
		return 2;
	/* The core logs membership and leadership events; keep them for traces. */
	sp_log_set_level(cli.trace ? SP_LOG_DEBUG : SP_LOG_WARN);
	uint64_t t0 = sp_mono_ns();
	uint64_t ticks = 0, events = 0, checks = 0, acked = 0, reads = 0, crashes = 0;
	uint64_t confs = 0, transfers = 0, compactions = 0, corrupt = 0, live_max = 0;
	uint64_t violations = 0, run = 0;
	struct tally tallies[SIM_TALLY_MAX];
	unsigned n_tallies = 0;

	for (uint64_t k = 0; k < cli.seeds; k++) {
		struct sim_opts o = {
		        .seed = cli.seed_start + k,
		        .nodes = cli.nodes,
		        .steps = cli.steps,
		        .trace = cli.trace,
		        .no_liveness = cli.no_liveness,
		};
		struct sim_result res;

		if (cli.trace)
			printf("=== seed %" PRIu64 " nodes %u steps %" PRIu64 "\n", o.seed, o.nodes,
			       o.steps);
		rc = sim_run(&o, &res);
		if (rc != 0) {
			fprintf(stderr, "raft-sim: seed %" PRIu64 ": %s\n", o.seed,
			        sp_strerror(rc));
			return 2;
		}
		run++;
		ticks += res.ticks;
		events += res.events;
		checks += res.checks;
		acked += res.writes_acked;
		reads += res.reads_ok;
		crashes += res.crashes;
		confs += res.conf_changes;
		transfers += res.transfers;
		compactions += res.compactions;
		corrupt += res.corrupt_rejected;
		live_max = SP_MAX(live_max, res.liveness_ticks);
		if (res.violated) {
			violations++;
			printf("VIOLATION seed %" PRIu64 " nodes %u tick %" PRIu64 ": %s: %s\n",
			       o.seed, o.nodes, res.violation_tick, res.property, res.detail);
			printf("replay: %s --seeds 1 --seed-start %" PRIu64
			       " --nodes %u --steps %" PRIu64 "%s --trace\n",
			       argv[0], o.seed, o.nodes, o.steps,
			       o.no_liveness ? " --no-liveness" : "");
			fflush(stdout);
			tally_add(tallies, &n_tallies, res.property, o.seed);
			if (!cli.keep_going)
				break;
		}
	}
	double secs = (double)(sp_mono_ns() - t0) / 1e9;

	printf("raft-sim: seeds %" PRIu64 " (from %" PRIu64 ", %u nodes, %" PRIu64
	       " steps) violations %" PRIu64 " ticks %" PRIu64 " events %" PRIu64 " checks %" PRIu64
	       " writes %" PRIu64 " reads %" PRIu64 " crashes %" PRIu64 " conf %" PRIu64
	       " transfers %" PRIu64 " compactions %" PRIu64 " corrupt-rejected %" PRIu64
	       " liveness-max %" PRIu64 " ticks time %.2fs\n",
	       run, cli.seed_start, cli.nodes, cli.steps, violations, ticks, events, checks, acked,
	       reads, crashes, confs, transfers, compactions, corrupt, live_max, secs);
	for (unsigned i = 0; i < n_tallies; i++)
		printf("raft-sim: property '%s' violated by %" PRIu64 " seeds, first seed %" PRIu64
		       "\n",
		       tallies[i].property, tallies[i].count, tallies[i].first_seed);
	return violations > 0 ? 1 : 0;
}
