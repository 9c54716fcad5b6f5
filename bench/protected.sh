#!/usr/bin/env bash
# protected.sh: requests/s of `ferry proxy` on a protected preview (a signed-in visitor's access cookie) against
# the same page unprotected (the project's production host, which "previews" leaves public), one after the
# other in the same run, on the same proxy (issue 16).
#
# Needs: go, wrk, curl. Knobs (environment): DURATION (10s), THREADS (2), CONNECTIONS (64), ROUNDS (2),
# FERRY_PORT (18091), KEEP=1 to keep the work folder.
set -euo pipefail

DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
ROUNDS=${ROUNDS:-2}
FERRY_PORT=${FERRY_PORT:-18091}

for tool in go wrk curl; do
	command -v "$tool" >/dev/null || { echo "protected: $tool is not installed (apt-get install wrk curl)" >&2; exit 1; }
done

cd "$(dirname "$0")/.."
work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-protected.XXXXXX")
pid=
cleanup() {
	[[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true
	wait 2>/dev/null || true
	if [[ "${KEEP:-}" != 1 ]]; then rm -rf "$work"; else echo "kept $work"; fi
}
trap cleanup EXIT

echo "== build"
go build -o "$work/ferry" .
go build -o "$work/protected" ./bench/protected

echo "== fixture: a ~2 KB page as production and as preview pr-1; previews protected"
mkdir -p "$work/site"
gen() { awk -v n="$1" -v seed="$2" 'BEGIN { srand(seed); s = ""; while (length(s) < n) s = s sprintf("%x ", int(rand() * 1e9)); print substr(s, 1, n - 1) }'; }
{ echo '<!doctype html><html><head><title>bench</title></head><body><pre>'; gen 1900 1; echo '</pre></body></html>'; } >"$work/site/index.html"
"$work/ferry" publish --storage "file://$work/storage" --project web --alias production --json "$work/site" >/dev/null 2>&1
"$work/ferry" publish --storage "file://$work/storage" --project web --alias pr-1 --json "$work/site" >/dev/null 2>&1
cookie=$("$work/protected" "file://$work/storage" web pr-1--web.localhost)

"$work/ferry" proxy --storage "file://$work/storage" --domain localhost --listen "127.0.0.1:$FERRY_PORT" \
	--cache-dir "$work/cache" 2>"$work/proxy.log" &
pid=$!
for _ in $(seq 100); do curl -fsS -o /dev/null -H "Host: web.localhost" "http://127.0.0.1:$FERRY_PORT/" 2>/dev/null && break; sleep 0.1; done

# The protected host refuses without the cookie and serves the same bytes with it.
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Host: pr-1--web.localhost" "http://127.0.0.1:$FERRY_PORT/")
[[ "$code" == 403 ]] || { echo "protected: the protected preview answered $code without a cookie, want 403" >&2; exit 1; }
a=$(curl -fsS -H "Host: web.localhost" "http://127.0.0.1:$FERRY_PORT/" | sha256sum)
b=$(curl -fsS -H "Host: pr-1--web.localhost" -H "Cookie: ferry_access=$cookie" "http://127.0.0.1:$FERRY_PORT/" | sha256sum)
[[ "$a" == "$b" ]] || { echo "protected: the protected page differs" >&2; exit 1; }
curl -fsS -o /dev/null -D - -H "Host: pr-1--web.localhost" -H "Cookie: ferry_access=$cookie" "http://127.0.0.1:$FERRY_PORT/" | grep -i '^cache-control: private' >/dev/null ||
	{ echo "protected: the protected page is not Cache-Control: private" >&2; exit 1; }

run() { # HOST [COOKIE]: requests/s
	local args=(-t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -H "Host: $1")
	[[ -n "${2:-}" ]] && args+=(-H "Cookie: ferry_access=$2")
	local out
	out=$(wrk "${args[@]}" "http://127.0.0.1:$FERRY_PORT/")
	if grep -q "Non-2xx\|Socket errors" <<<"$out"; then echo "protected: errors during the run against $1" >&2; grep "Non-2xx\|Socket errors" <<<"$out" >&2; fi
	awk '/^Requests\/sec:/ { print $2 }' <<<"$out"
}

echo "== wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS round(s)"
printf '%-6s %14s %14s %8s\n' round "public rps" "protected rps" ratio
for round in $(seq "$ROUNDS"); do
	open=$(run web.localhost)
	shut=$(run pr-1--web.localhost "$cookie")
	printf '%-6s %14.0f %14.0f %7.2fx\n' "$round" "$open" "$shut" "$(awk -v a="$shut" -v b="$open" 'BEGIN { print a / b }')"
done
