#!/usr/bin/env bash
# proxy-vs-nginx-tls.sh: serves the same small site over HTTPS with `ferry proxy --tls-listen` and with nginx, with
# the same certificate (ECDSA P-256, self-signed here) and files, and measures both with wrk, side by side in one
# run: keep-alive (many requests per connection) and handshake-heavy (Connection: close, one full handshake per
# request). Issue 13; the plain-HTTP comparison is proxy-vs-nginx.sh.
#
# Goal: 2 KB page with keep-alive, ferry >= 0.9x nginx requests/s.
#
# Needs: go, nginx, wrk, curl, openssl. Knobs (environment): DURATION (10s), THREADS (2), CONNECTIONS (64),
# ROUNDS (1), FERRY_PORT (18443), NGINX_PORT (18444), KEEP=1 to keep the work folder.
set -euo pipefail

DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
ROUNDS=${ROUNDS:-1}
FERRY_PORT=${FERRY_PORT:-18443}
NGINX_PORT=${NGINX_PORT:-18444}
PLAIN_PORT=${PLAIN_PORT:-18445}

for tool in go nginx wrk curl openssl; do
	command -v "$tool" >/dev/null || { echo "proxy-vs-nginx-tls: $tool is not installed (apt-get install nginx wrk curl openssl)" >&2; exit 1; }
done

cd "$(dirname "$0")/.."
work=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-tls.XXXXXX")
chmod 755 "$work"
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [[ "${KEEP:-}" != 1 ]]; then rm -rf "$work"; else echo "kept $work"; fi
}
trap cleanup EXIT

echo "== build"
go build -o "$work/ferry" .

echo "== fixture and certificate"
mkdir -p "$work/site/assets"
gen() { awk -v n="$1" -v seed="$2" 'BEGIN { srand(seed); s = ""; while (length(s) < n) s = s sprintf("%x ", int(rand() * 1e9)); print substr(s, 1, n - 1) }'; }
{ echo '<!doctype html><html><head><title>bench</title><script src="/assets/app.3f2a1b9c.js"></script></head><body><pre>'; gen 1900 1; echo '</pre></body></html>'; } >"$work/site/index.html"
{ echo '// bench'; gen 150000 2; } >"$work/site/assets/app.3f2a1b9c.js"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=web.localhost \
	-addext "subjectAltName=DNS:web.localhost,DNS:*.localhost" -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
chmod 644 "$work/key.pem"
"$work/ferry" publish --storage "file://$work/storage" --project web --alias production --json "$work/site" >/dev/null

echo "== start ferry proxy on https://127.0.0.1:$FERRY_PORT"
"$work/ferry" proxy --storage "file://$work/storage" --domain localhost --listen "127.0.0.1:$PLAIN_PORT" \
	--tls-listen "127.0.0.1:$FERRY_PORT" --tls-cert-file "$work/cert.pem" --tls-key-file "$work/key.pem" \
	--cache-dir "$work/cache" 2>"$work/proxy.log" &
ferry_pid=$!
pids+=("$ferry_pid")

echo "== start nginx on https://127.0.0.1:$NGINX_PORT"
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
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    server {
        listen 127.0.0.1:$NGINX_PORT ssl;
        ssl_certificate $work/cert.pem;
        ssl_certificate_key $work/key.pem;
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
		curl -fsS -o /dev/null --cacert "$work/cert.pem" --resolve "web.localhost:$1:127.0.0.1" "https://web.localhost:$1/" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "proxy-vs-nginx-tls: port $1 did not come up" >&2
	cat "$work/proxy.log" "$work/nginx/logs/error.log" >&2 || true
	exit 1
}
wait_up "$FERRY_PORT"
wait_up "$NGINX_PORT"
for path in / /assets/app.3f2a1b9c.js; do
	a=$(curl -fsS --cacert "$work/cert.pem" --resolve "web.localhost:$FERRY_PORT:127.0.0.1" "https://web.localhost:$FERRY_PORT$path" | sha256sum)
	b=$(curl -fsS --cacert "$work/cert.pem" --resolve "web.localhost:$NGINX_PORT:127.0.0.1" "https://web.localhost:$NGINX_PORT$path" | sha256sum)
	[[ "$a" == "$b" ]] || { echo "proxy-vs-nginx-tls: $path differs between ferry and nginx" >&2; exit 1; }
done
echo "  same bytes from both; TLS: $(curl -sS -o /dev/null -w '%{ssl_verify_result}' --cacert "$work/cert.pem" --resolve "web.localhost:$FERRY_PORT:127.0.0.1" -v "https://web.localhost:$FERRY_PORT/" 2>&1 | grep -o 'SSL connection using [^ ]* / [^ ]*' | head -1)"

cpu_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat"))); done; echo "$t"; }
hz=$(getconf CLK_TCK)

# run URL CLOSE PID...: "requests/s p99-ms cpu-us-per-request". The URL names 127.0.0.1 (the system resolver
# knows no *.localhost) and Host says web.localhost; both servers hold one certificate, whatever the SNI.
run() {
	local out rps p99 before after url=$1 close=$2
	shift 2
	local extra=()
	[[ $close == 1 ]] && extra=(-H "Connection: close")
	before=$(cpu_ticks "$@")
	out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "Host: web.localhost" "${extra[@]}" "$url")
	after=$(cpu_ticks "$@")
	if grep -q "Non-2xx" <<<"$out"; then
		echo "proxy-vs-nginx-tls: errors during the run:" >&2
		grep "Non-2xx" <<<"$out" >&2
	fi
	rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
	p99=$(awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }; print v }' <<<"$out")
	local secs=${DURATION%s}
	echo "$rps $p99 $(awk -v t=$((after - before)) -v hz="$hz" -v r="$rps" -v s="$secs" 'BEGIN { printf "%.1f", t / hz * 1e6 / (r * s) }')"
}

echo "== wrk -t$THREADS -c$CONNECTIONS -d$DURATION over TLS, $ROUNDS round(s)"
printf '%-18s %-6s %12s %10s %14s\n' run server "requests/s" "p99 ms" "CPU us/req"
results=()
for round in $(seq "$ROUNDS"); do
	for mode in small-keepalive large-keepalive small-handshake; do
		path=/ close=0
		[[ $mode == large-* ]] && path=/assets/app.3f2a1b9c.js
		[[ $mode == *-handshake ]] && close=1
		read -r n_rps n_p99 n_cpu < <(run "https://127.0.0.1:$NGINX_PORT$path" "$close" $(pgrep -P "$nginx_pid"))
		printf '%-18s %-6s %12.0f %10.2f %14s\n' "$mode" nginx "$n_rps" "$n_p99" "$n_cpu"
		read -r f_rps f_p99 f_cpu < <(run "https://127.0.0.1:$FERRY_PORT$path" "$close" "$ferry_pid")
		printf '%-18s %-6s %12.0f %10.2f %14s\n' "$mode" ferry "$f_rps" "$f_p99" "$f_cpu"
		results+=("$mode $n_rps $n_p99 $f_rps $f_p99 $n_cpu $f_cpu")
	done
done

echo "== ratios ferry/nginx (goal: small-keepalive requests/s >= 0.9)"
for r in "${results[@]}"; do
	awk '{ printf "%-18s requests/s %.2fx   p99 %.2fx   CPU per request %.2fx\n", $1, $4 / $2, ($3 > 0 ? $5 / $3 : 0), ($6 > 0 ? $7 / $6 : 0) }' <<<"$r"
done
