#!/bin/sh
# Measures the dependency cache: builds the same commit of site/ twice with `ferry build` (fresh storage, so
# the first build has no cache and the second restores it) and prints both install times and their ratio.
# Goal (issue 3): the second install takes at most a third of the first.
#
# Usage, from the repository root: internal/build/testdata/cachebench/run.sh [ROUNDS]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
rounds=${1:-1}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/ferry" github.com/ferryhq/ferry
git init -q -b main "$work/repo"
cp -r "$here/site/." "$work/repo/"
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
	echo "round $r: install without cache ${first}s, with cache ${second}s, ratio $(echo "$second $first" | awk '{printf "%.2f", $1/$2}')"
	r=$((r + 1))
done
