#!/usr/bin/env bash
# bench/publish.sh: how long `ferry publish` takes for a generated 1,000-file site, first and as an unchanged
# republish, against S3. The goal (issue 2): the republish uploads 0 blobs and takes under 10% of the first
# publish's time.
#
# Usage:
#   bench/publish.sh                      start versitygw on a loopback port (needs versitygw v1.8.0:
#                                         go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)
#   bench/publish.sh 's3://BUCKET/PREFIX?region=R&endpoint=...'
#                                         use an existing bucket, with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
#                                         (or a role) from the environment
# Environment: FILES (default 1000) is the number of files to generate.
# Needs: go, curl (7.75+, for --aws-sigv4), jq.
set -euo pipefail

cd "$(dirname "$0")/.."
files=${FILES:-1000}
work=$(mktemp -d)
gw_pid=""
cleanup() {
	if [ -n "$gw_pid" ]; then kill "$gw_pid" 2>/dev/null || true; wait "$gw_pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

now_ms() { date +%s%3N; }

echo "building ferry" >&2
go build -o "$work/ferry" .

storage=${1:-}
if [ -z "$storage" ]; then
	gw=$(command -v versitygw || echo "$(go env GOPATH)/bin/versitygw")
	if [ ! -x "$gw" ]; then
		echo "versitygw not found; install it with: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0" >&2
		exit 1
	fi
	port=$(( 20000 + RANDOM % 20000 ))
	export AWS_ACCESS_KEY_ID="AKBENCH$RANDOM$RANDOM" AWS_SECRET_ACCESS_KEY="bench-secret-$RANDOM$RANDOM$RANDOM"
	mkdir -p "$work/gw"
	ROOT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID ROOT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
		"$gw" --port "127.0.0.1:$port" --region us-east-1 --health /health --quiet posix "$work/gw" \
		>"$work/gw.log" 2>&1 &
	gw_pid=$!
	for _ in $(seq 100); do
		curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
		sleep 0.1
	done
	curl -fsS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
		-H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
		-X PUT "http://127.0.0.1:$port/bench" >/dev/null
	storage="s3://bench/ferry?region=us-east-1&endpoint=http://127.0.0.1:$port&path_style=true"
	echo "versitygw v1.8.0 on 127.0.0.1:$port (posix backend in $work/gw)" >&2
fi

# A site shaped like a real build: many small pages and chunks, a few larger assets.
echo "generating $files files" >&2
site="$work/site"
mkdir -p "$site/assets" "$site/docs"
for i in $(seq 1 "$files"); do
	case $((i % 10)) in
	0) f="$site/assets/img-$i.bin"; n=60000 ;;
	1 | 2 | 3) f="$site/assets/chunk-$i.js"; n=8000 ;;
	4) f="$site/assets/style-$i.css"; n=3000 ;;
	*) f="$site/docs/page-$i.html"; n=2000 ;;
	esac
	head -c "$n" /dev/urandom | base64 -w 76 >"$f"
done
echo '<!doctype html><title>bench</title>' >"$site/index.html"
bytes=$(du -sb "$site" | cut -f1)

run() {
	local start end
	start=$(now_ms)
	"$work/ferry" publish --storage "$storage" --project bench --alias production --json "$site" >"$work/out.json" 2>"$work/err.log" ||
		{ cat "$work/err.log" >&2; exit 1; }
	end=$(now_ms)
	echo "$((end - start)) $(jq -r '.uploaded' "$work/out.json") $(jq -r '.skipped' "$work/out.json") $(jq -r '.files' "$work/out.json")"
}

read -r t1 up1 sk1 n1 < <(run)
read -r t2 up2 sk2 n2 < <(run)
cp "$work/err.log" "$work/republish.log"
read -r t3 up3 sk3 n3 < <(run)

printf 'site:       %d files, %d bytes on disk\n' "$n1" "$bytes"
printf 'publish:    %6d ms  uploaded %d, skipped %d\n' "$t1" "$up1" "$sk1"
printf 'republish:  %6d ms  uploaded %d, skipped %d\n' "$t2" "$up2" "$sk2"
printf 'again:      %6d ms  uploaded %d, skipped %d\n' "$t3" "$up3" "$sk3"
echo 'where the first republish went (its log):' >&2
grep -E 'took|listed' "$work/republish.log" | sed 's/^/  /' >&2 || true
awk -v a="$t2" -v c="$t3" -v b="$t1" 'BEGIN { printf "ratio:      republish/publish = %.3f, again %.3f (goal < 0.10)\n", a / b, c / b }'
if [ "$up2" -ne 0 ]; then
	echo "FAIL: the unchanged republish uploaded $up2 blobs (goal 0)" >&2
	exit 1
fi
