#!/bin/sh
# bench/build-cache.sh: measures the dependency cache. It builds the same commit of bench/build-cache/ twice
# with `ferry build` (fresh storage, so the first build has no cache and the second restores it) and prints
# both install times and their ratio, measured side by side in one run.
# Goal (issue 3): the second install takes at most a third of the first (ratio <= 0.33).
#
# Usage: bench/build-cache.sh [ROUNDS]
# Environment: FERRY_WORKDIR (ferry build's --workdir) puts the build workspace elsewhere, for example
# /dev/shm to leave the disk out of it. The first install downloads from the npm registry.
# Needs: go, git, node and npm, bubblewrap (or FERRY_SANDBOX=none for trusted code).
set -eu
cd "$(dirname "$0")/.."
fixture=$(pwd)/bench/build-cache
rounds=${1:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/ferry" .
git init -q -b main "$work/repo"
cp -r "$fixture/." "$work/repo/"
git -C "$work/repo" add -A
git -C "$work/repo" -c user.name=bench -c user.email=bench@example.com commit -q -m bench
seconds() { sed -n 's/^ *"install": \([0-9.]*\).*/\1/p' "$1"; }
r=1
while [ "$r" -le "$rounds" ]; do
	rm -rf "$work/storage"
	for i in 1 2; do
		"$work/ferry" build --repo "$work/repo" --project cachebench --storage "file://$work/storage" --json \
			>"$work/out$i.json" 2>"$work/log$i" || { cat "$work/log$i"; exit 1; }
	done
	first=$(seconds "$work/out1.json")
	second=$(seconds "$work/out2.json")
	echo "round $r (workdir ${FERRY_WORKDIR:-system temp}): install without cache ${first}s, with cache ${second}s, ratio $(echo "$second $first" | awk '{printf "%.2f", $1/$2}')"
	r=$((r + 1))
done
