#!/bin/sh
# bench/starters.sh: zero-config builds of the framework starters in internal/build/testdata/starters (the
# smallest real project of each official starter, real packages at pinned versions, committed lockfiles). Each
# starter is built twice in the bubblewrap sandbox with fresh storage: the first build has no cache, the second
# restores the dependency cache and the framework's build cache. One row per starter, side by side: install
# and build seconds of both builds, and the whole build (clone to clean-up).
#
# Usage: bench/starters.sh [STARTER,...]   (default: all of them; names are the folders under testdata/starters)
# Environment: FERRY_STARTERS_REPORT=FILE keeps the table. The first builds download from the npm registry;
# node 22 (Nuxt 4, Astro 7, SvelteKit 3, Angular 22) is fetched once into $TMPDIR/ferry-test-tools.
# Needs: go, git, node and npm, bubblewrap. Takes about 20 minutes on 2 cores for all of them.
set -eu
cd "$(dirname "$0")/.."
report=${FERRY_STARTERS_REPORT:-$(mktemp)}
: >"$report"
FERRY_STARTERS=${1:-all} FERRY_STARTERS_REPORT=$report \
	go test -count=1 -timeout 90m -run 'TestStarters$' ./internal/build >&2
echo "starter      framework  first build (no cache)                          | second build (cache)                                  | files"
cat "$report"
