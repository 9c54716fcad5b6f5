#!/usr/bin/env bash
# proxy-vs-nginx.sh: serves the same small site with `ferry proxy` and with nginx on loopback, and measures both
# with wrk, one after the other in the same run (issue 2, DESIGN.md "Performance notes").
#
# Goals: small file (~2 KB) ferry >= 1.0x nginx requests/s; 150 KB file >= 0.8x; p99 <= 2x nginx's; the proxy's
# RSS within --cache-bytes + 64 MiB.
#
# Needs: go, nginx, wrk, curl. Knobs (environment): DURATION (10s), THREADS (2), CONNECTIONS (64),
# ROUNDS (1: each round measures both servers on both files), CACHE_BYTES (268435456), FERRY_PORT (18081),
# NGINX_PORT (18082), KEEP=1 to keep the work folder.
set -euo pipefail

DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
ROUNDS=${ROUNDS:-1}
CACHE_BYTES=${CACHE_BYTES:-268435456}
FERRY_PORT=${FERRY_PORT:-18081}
NGINX_PORT=${NGINX_PORT:-18082}

for tool in go nginx wrk curl; do
	command -v "$tool" >/dev/null || { echo "proxy-vs-nginx: $tool is not installed (apt-get install nginx wrk curl)" >&2; exit 1; }
done

cd "$(dirname "$0")/.."
work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench.XXXXXX")
chmod 755 "$work" # nginx workers drop to an unprivileged user when started as root
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [[ "${KEEP:-}" != 1 ]]; then rm -rf "$work"; else echo "kept $work"; fi
}
trap cleanup EXIT

echo "== build"
go build -o "$work/ferry" .

echo "== fixture"
mkdir -p "$work/site/assets"
# Deterministic text of a given size: a ~2 KB page and a ~150 KB script with a hashed (immutable) name.
gen() { awk -v n="$1" -v seed="$2" 'BEGIN { srand(seed); s = ""; while (length(s) < n) s = s sprintf("%x ", int(rand() * 1e9)); print substr(s, 1, n - 1) }'; }
{ echo '<!doctype html><html><head><title>bench</title><script src="/assets/app.3f2a1b9c.js"></script></head><body><pre>'; gen 1900 1; echo '</pre></body></html>'; } >"$work/site/index.html"
{ echo '// bench'; gen 150000 2; } >"$work/site/assets/app.3f2a1b9c.js"
ls -l "$work/site/index.html" "$work/site/assets/app.3f2a1b9c.js" | awk '{ print "  " $5 " bytes  " $9 }'
"$work/ferry" publish --storage "file://$work/storage" --project web --alias production --json "$work/site"

echo "== start ferry proxy on 127.0.0.1:$FERRY_PORT"
"$work/ferry" proxy --storage "file://$work/storage" --domain localhost \
	--listen "127.0.0.1:$FERRY_PORT" --cache-bytes "$CACHE_BYTES" --cache-dir "$work/cache" 2>"$work/proxy.log" &
ferry_pid=$!
pids+=("$ferry_pid")

echo "== start nginx on 127.0.0.1:$NGINX_PORT"
mkdir -p "$work/nginx/logs" "$work/nginx/tmp"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
    types { text/html html; text/javascript js; }
    default_type application/octet-stream;
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    open_file_cache max=1000 inactive=60s;
    open_file_cache_valid 60s;
    client_body_temp_path $work/nginx/tmp/body;
    proxy_temp_path $work/nginx/tmp/proxy;
    fastcgi_temp_path $work/nginx/tmp/fastcgi;
    uwsgi_temp_path $work/nginx/tmp/uwsgi;
    scgi_temp_path $work/nginx/tmp/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $work/site;
        location / { }
    }
}
EOF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/logs/error.log" &
nginx_pid=$!
pids+=("$nginx_pid")

wait_up() {
	for _ in $(seq 100); do
		curl -fsS -o /dev/null -H "Host: $2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "proxy-vs-nginx: $1 did not come up" >&2
	cat "$work/proxy.log" "$work/nginx/logs/error.log" >&2 || true
	exit 1
}
wait_up "http://127.0.0.1:$FERRY_PORT/" web.localhost
wait_up "http://127.0.0.1:$NGINX_PORT/" web.localhost

# Same bytes from both servers (and warm ferry's caches).
for path in / /assets/app.3f2a1b9c.js; do
	a=$(curl -fsS -H "Host: web.localhost" "http://127.0.0.1:$FERRY_PORT$path" | sha256sum)
	b=$(curl -fsS "http://127.0.0.1:$NGINX_PORT$path" | sha256sum)
	[[ "$a" == "$b" ]] || { echo "proxy-vs-nginx: $path differs between ferry and nginx" >&2; exit 1; }
done

# cpu_ticks PID...: user+system CPU ticks the processes used so far.
cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat"))); done; echo "$t"; }
hz=$(getconf CLK_TCK)

# run NAME URL PID...: prints "requests/s p99-ms cpu-us-per-request". CPU per request is what the server's
# processes used, which is steadier than requests/s on a machine shared with other work.
run() {
	local out rps p99 before after name=$1 url=$2
	shift 2
	before=$(cpu_ticks "$@")
	out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Host: web.localhost" "$url")
	after=$(cpu_ticks "$@")
	if grep -q "Non-2xx\|Socket errors" <<<"$out"; then
		echo "proxy-vs-nginx: $name: errors during the run:" >&2
		grep "Non-2xx\|Socket errors" <<<"$out" >&2
	fi
	rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
	p99=$(awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }; print v }' <<<"$out")
	local secs=${DURATION%s}
	echo "$rps $p99 $(awk -v t=$((after - before)) -v hz="$hz" -v r="$rps" -v s="$secs" 'BEGIN { printf "%.1f", t / hz * 1e6 / (r * s) }')"
}

echo "== wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS round(s)"
printf '%-8s %-6s %12s %10s %14s\n' file server "requests/s" "p99 ms" "CPU us/req"
results=()
for round in $(seq "$ROUNDS"); do
	for file in small large; do
		path=/
		[[ $file == large ]] && path=/assets/app.3f2a1b9c.js
		read -r n_rps n_p99 n_cpu < <(run nginx "http://127.0.0.1:$NGINX_PORT$path" $(pgrep -P "$nginx_pid"))
		printf '%-8s %-6s %12.0f %10.2f %14s\n' "$file" nginx "$n_rps" "$n_p99" "$n_cpu"
		read -r f_rps f_p99 f_cpu < <(run ferry "http://127.0.0.1:$FERRY_PORT$path" "$ferry_pid")
		printf '%-8s %-6s %12.0f %10.2f %14s\n' "$file" ferry "$f_rps" "$f_p99" "$f_cpu"
		results+=("$file $n_rps $n_p99 $f_rps $f_p99 $n_cpu $f_cpu")
	done
done

echo "== ratios ferry/nginx (goal: small rps >= 1.0, large rps >= 0.8, p99 <= 2.0)"
for r in "${results[@]}"; do
	awk '{ printf "%-6s requests/s %.2fx   p99 %.2fx   CPU per request %.2fx\n", $1, $4 / $2, ($3 > 0 ? $5 / $3 : 0), ($6 > 0 ? $7 / $6 : 0) }' <<<"$r"
done

rss_kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$ferry_pid/status")
limit_kb=$(( (CACHE_BYTES + 64 * 1024 * 1024) / 1024 ))
echo "== ferry proxy RSS $((rss_kb / 1024)) MiB (goal: <= --cache-bytes + 64 MiB = $((limit_kb / 1024)) MiB)"
