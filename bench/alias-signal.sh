#!/usr/bin/env bash
# bench/alias-signal.sh: how long a promote takes to show at two proxies that share one storage, through the
# alias change signal (docs/architecture.md, "Alias change signal"), and what the signal costs in storage
# requests per proxy per second. The alias TTL is an hour, so only the signal can explain a change.
# The goal (issue 17): every promote visible at every proxy in under 1 s.
#
# Usage: bench/alias-signal.sh [ROUNDS]   (default 3 rounds of 20 promotes, 40 samples each)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
for i in $(seq "$rounds"); do
	go test -count=1 -run '^TestAliasSignalLatency$' -v ./proxy | grep 'promote → visible' | sed "s/^ *signal_test.go:[0-9]*: /round $i: /"
done
