#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Checks that the checked-in seed corpus is what corpus_gen writes today.
#   corpus_check.sh CORPUS_GEN CORPUS_DIR
#   corpus_check.sh CORPUS_GEN CORPUS_DIR --update   rewrites CORPUS_DIR from the generator
set -eu
gen=$1 dir=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/fuzz_frame" "$tmp/fuzz_binproto" "$tmp/fuzz_memcache"
"$gen" "$tmp" >/dev/null
if [ "${3:-}" = --update ]; then
	for t in fuzz_frame fuzz_binproto fuzz_memcache; do
		rm -rf "${dir:?}/$t"
		cp -r "$tmp/$t" "$dir/$t"
	done
	echo "corpus_check: $dir rewritten"
	exit 0
fi
for t in fuzz_frame fuzz_binproto fuzz_memcache; do
	if ! diff -r "$tmp/$t" "$dir/$t" >/dev/null; then
		diff -rq "$tmp/$t" "$dir/$t" || true
		echo "corpus_check: $dir/$t differs from what corpus_gen writes;" \
			"run tests/fuzz/corpus_check.sh build/tests/fuzz/corpus_gen tests/fuzz/corpus --update" >&2
		exit 1
	fi
done
echo "corpus_check: $(find "$dir" -type f | grep -cv README) seeds match corpus_gen"
