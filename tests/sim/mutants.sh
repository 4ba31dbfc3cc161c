#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
#
# Proof that the Raft tests bite: builds the core once per injected bug (-Draft_bug=NAME,
# the choices in meson_options.txt), runs the scenario tests and the simulator against each
# build, and prints one table row per mutant: which scenario tests fail, and the first
# simulator seed that finds a violation, or SURVIVED. See docs/simulator.md.
set -u

usage() {
	cat <<'EOF'
usage: tests/sim/mutants.sh [options]

Builds every Raft mutant (meson option raft_bug) in its own build directory, reusing
directories that exist, and checks that both the scenario tests
(tests/unit/raft/test_raft_scenarios) and the simulator (tests/sim/raft-sim) catch it.
build-mut-none, the correct core, confirms that a violation found on a mutant does not
happen without it. Prints a markdown table; exits 1 if any mutant survives either, 2 on a
usage or build error.

options:
  --mutants a,b,...   only these mutants (default: every choice of raft_bug but none)
  --build-root DIR    where build-mut-NAME directories go (default: the current one)
  --seeds N           seeds searched per node count (default 20000, at most 20000)
  --nodes "3 5 7"     node counts, searched in this order until one catches (default "3 5 7")
  --each-nodes        search every node count (first seed per count) instead of stopping
                      at the first count that catches
  --chunk N           seeds per raft-sim process (default 500)
  --base DIR          a build of the correct core (raft_bug=none) to confirm violations
                      with, instead of building build-mut-none
  --no-sim            skip the simulator column
  --no-scenarios      skip the scenario column
  --keep-builds       (default) keep build directories; --clean removes each after use
  --list              print the mutants' names, one a line, and exit
  -h, --help          this text

Heavy: run it alone on a shared machine. Every build uses ninja -j1, every process runs
under nice -n 19. A mutant's first run sets up its build directory and builds the Raft
core, the scenario tests and raft-sim (about 5 s on a 2-core machine); a caught mutant then
costs seconds; one that survives costs the whole search (20,000 seeds each of 3, 5 and 7
nodes is about 15 CPU-minutes).

A row reads: mutant | the rule it breaks | the scenario test written for that rule, which
must fail (+N other scenario tests that fail too) | the first simulator seed, node count
and violated property, confirmed to pass on the correct core | verdict. Replay a catch with
  build-mut-NAME/tests/sim/raft-sim --seeds 1 --seed-start S --nodes K --trace
EOF
}

# The rule each mutant breaks and the scenario test written for that rule: a mutant is
# caught only when that test fails (other tests failing too is reported, not required).
declare -A RULE TEST
rule() { RULE[$1]=$2; TEST[$1]=$3; }
rule old_term_commit "5.4.2: only current-term entries commit by counting replicas" \
	test_only_current_term_entries_committed_by_counting
rule vote_less_uptodate "RequestVote 2 / 5.4.1: vote only for an up-to-date log" \
	test_vote_denied_to_less_up_to_date_log
rule early_membership "6: no membership change before an own-term commit" \
	test_second_membership_change_refused
rule early_readindex "ReadIndex: no read before an own-term commit" \
	test_read_index_waits_for_own_term_commit
rule vote_not_persisted "Figure 2 state: the vote is durable before it is sent" \
	test_vote_persisted_before_reply
rule append_stale_term "AppendEntries 1: refuse term < currentTerm" \
	test_append_from_older_term_refused
rule append_skip_prev_check "AppendEntries 2: refuse when prevLogIndex/prevLogTerm do not match" \
	test_follower_rejects_mismatched_append
rule append_keep_conflicts "AppendEntries 3: a conflicting entry is deleted with all that follow" \
	test_append_truncates_only_from_a_conflict
rule append_truncate_matching "AppendEntries 3-4: truncate only from a conflict (old duplicates)" \
	test_append_truncates_only_from_a_conflict
rule heartbeat_commit_unbounded "AppendEntries 5: commit only what the leader verified here" \
	test_heartbeat_commit_bounded_by_match
rule stale_vote_counted "Candidates: count only votes of the current term" \
	test_stale_vote_response_not_counted
rule vote_twice "RequestVote 2: at most one vote per term (votedFor)" test_one_vote_per_term
rule vote_index_only "5.4.1: compare last terms before lengths" \
	test_vote_compares_last_term_before_length
rule leader_without_quorum "Candidates: leader only with votes of a majority" \
	test_candidate_needs_a_majority_of_votes
rule higher_term_keeps_leading "All servers: T > currentTerm: adopt T, become follower" \
	test_leader_steps_down_on_higher_term_response
rule apply_uncommitted "All servers: apply only up to commitIndex" \
	test_entries_applied_only_once_committed
rule commit_half_quorum "Leaders: commit N only when a majority has matchIndex >= N" \
	test_leader_alone_does_not_commit
rule match_from_next "Leaders: matchIndex from acknowledgements, not from nextIndex" \
	test_match_index_only_from_acknowledgements
rule conf_concurrent "6: one membership change at a time" test_second_membership_change_refused
rule conf_no_rollback "6: a truncated membership change is undone" \
	test_truncated_conf_entry_reverts_membership
rule learner_commit_counted "Learners: never counted toward a commit" \
	test_learner_acks_do_not_commit
rule read_stale_ack "ReadIndex: a quorum answers a heartbeat round of this read" \
	test_read_index_needs_a_fresh_heartbeat_round
rule snapshot_older_installed "InstallSnapshot: ignore a snapshot the commit index covers" \
	test_older_snapshot_ignored
rule snapshot_discards_tail "InstallSnapshot 6: keep the log that follows a held entry" \
	test_snapshot_keeps_log_after_it
rule uncommitted_unbounded "Bound: a leader accepts at most max_uncommitted_bytes" \
	test_bounded_log_growth_of_partitioned_leader
rule prevote_records_vote "Pre-vote: a grant changes neither term nor vote" \
	test_pre_vote_changes_neither_term_nor_vote
rule transfer_timeout_now_early "Transfer: timeout-now only to a target holding the whole log" \
	test_transfer_to_slow_follower
rule transfer_accepts_proposals "Transfer: no proposals while a transfer is under way" \
	test_transfer_to_slow_follower

SRC=$(cd "$(dirname "$0")/../.." && pwd)
ROOT=$PWD
SEEDS=20000
NODES="3 5 7"
CHUNK=500
ONLY=""
DO_SIM=1
DO_SCEN=1
CLEAN=0
BASE=""
LIST_ONLY=0
EACH=0

while [ $# -gt 0 ]; do
	case "$1" in
	--mutants) ONLY=${2:?--mutants needs a list}; shift 2 ;;
	--build-root) ROOT=${2:?--build-root needs a directory}; shift 2 ;;
	--seeds) SEEDS=${2:?--seeds needs a number}; shift 2 ;;
	--nodes) NODES=${2:?--nodes needs a list}; shift 2 ;;
	--chunk) CHUNK=${2:?--chunk needs a number}; shift 2 ;;
	--base) BASE=${2:?--base needs a build directory}; shift 2 ;;
	--no-sim) DO_SIM=0; shift ;;
	--no-scenarios) DO_SCEN=0; shift ;;
	--keep-builds) CLEAN=0; shift ;;
	--clean) CLEAN=1; shift ;;
	--list) LIST_ONLY=1; shift ;;
	--each-nodes) EACH=1; shift ;;
	-h|--help) usage; exit 0 ;;
	*) echo "mutants.sh: unknown argument '$1'; see --help" >&2; exit 2 ;;
	esac
done
case "$SEEDS" in ''|*[!0-9]*) echo "mutants.sh: --seeds '$SEEDS' is not a number" >&2; exit 2 ;; esac
case "$CHUNK" in ''|*[!0-9]*) echo "mutants.sh: --chunk '$CHUNK' is not a number" >&2; exit 2 ;; esac
if [ "$SEEDS" -lt 1 ] || [ "$SEEDS" -gt 20000 ]; then
	echo "mutants.sh: --seeds $SEEDS is out of range; use 1..20000" >&2
	exit 2
fi
[ "$CHUNK" -ge 1 ] || { echo "mutants.sh: --chunk must be >= 1" >&2; exit 2; }

# Every choice of raft_bug but 'none', in the order meson_options.txt lists them.
ALL=$(sed -n "/option('raft_bug'/,/description/p" "$SRC/meson_options.txt" |
	grep -o "'[a-z_]*'" | tr -d "'" | grep -v -e '^raft_bug$' -e '^combo$' -e '^none$')
if [ $LIST_ONLY = 1 ]; then
	echo "$ALL"
	exit 0
fi
if [ -n "$ONLY" ]; then
	LIST=$(echo "$ONLY" | tr ',' ' ')
	for m in $LIST; do
		echo "$ALL" | grep -qx "$m" ||
			{ echo "mutants.sh: '$m' is not a raft_bug choice in meson_options.txt" >&2; exit 2; }
	done
else
	LIST=$ALL
fi

mkdir -p "$ROOT/build-mut-logs" || exit 2
NICE="nice -n 19"

# build MUTANT: configures (once) and builds the two test programs.
build() {
	local dir="$ROOT/build-mut-$1"
	if [ ! -f "$dir/build.ninja" ]; then
		$NICE meson setup "$dir" "$SRC" -Draft_bug="$1" -Ddataplane=disabled \
			>"$ROOT/build-mut-logs/$1.log" 2>&1 || return 1
	fi
	$NICE ninja -C "$dir" -j1 tests/unit/raft/test_raft_scenarios tests/sim/raft-sim \
		>>"$ROOT/build-mut-logs/$1.log" 2>&1
}

# scenarios MUTANT: prints the failing scenario tests (a test that crashes the program is
# marked 'crash'), or nothing when every test passes.
scenarios() {
	local bin="$ROOT/build-mut-$1/tests/unit/raft/test_raft_scenarios" out rc failed last
	out=$(CMOCKA_MESSAGE_OUTPUT=stdout $NICE stdbuf -oL "$bin" 2>/dev/null)
	rc=$?
	failed=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \(test_[a-z0-9_]*\).*/\1/p' |
		sort -u | tr '\n' ' ')
	if [ $rc -ge 128 ]; then
		last=$(printf '%s\n' "$out" | sed -n 's/^\[ RUN      \] \(test_[a-z0-9_]*\).*/\1/p' |
			tail -1)
		failed="$failed${last} (crash)"
	elif [ $rc -ne 0 ] && [ -z "$failed" ]; then
		failed="(exit $rc)"
	fi
	echo "$failed" | sed 's/ *$//'
}

# base_passes SEED NODES: true when the correct core (build-mut-none) passes that seed, so
# that a violation found on a mutant is the mutant's doing.
base_passes() {
	$NICE "${BASE:-$ROOT/build-mut-none}/tests/sim/raft-sim" --seeds 1 --seed-start "$1" \
		--nodes "$2" >/dev/null 2>&1
}

# sim MUTANT: prints "seed S (K nodes): property" for the first violation that the correct
# core does not also show, or nothing; with --each-nodes, one such result per node count,
# "; "-separated, and "none in N seeds (K nodes)" for a count that found nothing.
sim() {
	local n res all="" pending=""
	for n in $NODES; do
		res=$(sim_nodes "$1" "$n")
		if [ $EACH = 0 ]; then
			[ -n "$res" ] && { echo "$res"; return; }
			continue
		fi
		[ -n "$res" ] && all="$all${all:+; }$res"
		[ -n "$res" ] || pending="$pending${pending:+; }none in $SEEDS seeds ($n nodes)"
	done
	[ -n "$all" ] && echo "$all${pending:+; $pending}"
}

# sim_nodes MUTANT NODES: the first confirmed violation at one node count, or nothing.
sim_nodes() {
	local bin="$ROOT/build-mut-$1/tests/sim/raft-sim" n=$2 start=0 cnt out rc line s
	while [ $start -lt "$SEEDS" ]; do
		cnt=$CHUNK
		[ $((start + cnt)) -gt "$SEEDS" ] && cnt=$((SEEDS - start))
		out=$($NICE "$bin" --seeds $cnt --seed-start $start --nodes $n 2>&1)
		rc=$?
		line=$(printf '%s\n' "$out" | grep -m1 '^VIOLATION')
		if [ -n "$line" ]; then
			s=$(echo "$line" | sed -E 's/^VIOLATION seed ([0-9]+) .*/\1/')
			if ! base_passes "$s" "$n"; then
				echo "mutants.sh: seed $s ($n nodes) fails on the correct core too;" \
					"not counted (see docs/simulator.md)" >&2
				start=$((s + 1))
				continue
			fi
			echo "$line" | sed -E 's/^VIOLATION seed ([0-9]+) nodes ([0-9]+) tick [0-9]+: ([^:]*):.*/seed \1 (\2 nodes): \3/'
			return
		fi
		if [ $rc -ne 0 ]; then
			# The core stopped on one of its own assertions: find the seed.
			for s in $(seq $start $((start + cnt - 1))); do
				if ! $NICE "$bin" --seeds 1 --seed-start $s --nodes $n \
					>/dev/null 2>&1; then
					echo "seed $s ($n nodes): core assertion (exit $rc)"
					return
				fi
			done
			echo "seeds $start..$((start + cnt - 1)) ($n nodes): exit $rc"
			return
		fi
		start=$((start + cnt))
	done
}

# The correct core, to confirm that every violation found is the mutant's.
if [ -n "$BASE" ] && [ ! -x "$BASE/tests/sim/raft-sim" ]; then
	echo "mutants.sh: --base $BASE has no tests/sim/raft-sim; build it first" >&2
	exit 2
fi
if [ $DO_SIM = 1 ] && [ -z "$BASE" ] && ! build none; then
	echo "mutants.sh: the correct core does not build; see $ROOT/build-mut-logs/none.log" >&2
	exit 2
fi
survived=0
echo "| mutant | rule | scenario tests that fail | raft-sim: first seed caught | verdict |"
echo "| --- | --- | --- | --- | --- |"
for m in $LIST; do
	t0=$(date +%s)
	if ! build "$m"; then
		echo "mutants.sh: $m does not build; see $ROOT/build-mut-logs/$m.log" >&2
		exit 2
	fi
	scen="(not run)"
	simr="(not run)"
	verdict=caught
	if [ $DO_SCEN = 1 ]; then
		scen=$(scenarios "$m")
		case " $scen " in
		*" ${TEST[$m]:-?} "*)
			others=$(($(echo "$scen" | wc -w) - 1))
			case "$scen" in *"(crash)"*) others=$((others - 1)) ;; esac
			scen="${TEST[$m]}"
			[ $others -gt 0 ] && scen="$scen (+$others other)"
			;;
		*) scen="SURVIVED ${TEST[$m]:-(no rule test)}${scen:+; failing: $scen}"; verdict=SURVIVED ;;
		esac
	fi
	if [ $DO_SIM = 1 ]; then
		simr=$(sim "$m")
		[ -n "$simr" ] || { simr="SURVIVED ($SEEDS seeds each of $NODES nodes)"; verdict=SURVIVED; }
	fi
	[ $verdict = SURVIVED ] && survived=$((survived + 1))
	echo "| \`$m\` | ${RULE[$m]:-?} | $scen | $simr | $verdict ($(($(date +%s) - t0)) s) |"
	[ $CLEAN = 1 ] && rm -rf "$ROOT/build-mut-$m" "$ROOT/build-mut-logs/$m.log"
done
[ $survived -eq 0 ] || { echo "mutants.sh: $survived mutant(s) survived" >&2; exit 1; }
exit 0
