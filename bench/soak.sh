#!/usr/bin/env bash
# Soak test: minutes of mixed traffic against a release-build siamesed, to show
# that it keeps answering and that its memory stays flat.
#
#   1. builds siamesed and mkmodel in $BUILD (a release build dir), compiles
#      bench/soak_load.c, writes a seeded model, starts the daemon on a free
#      port with a fresh database (--threads $THREADS, --max-per-ip 0);
#   2. runs soak_load: $CLIENTS clients x $DURATION s of verify (pair and
#      subject), identify, enroll, delete and reads (see soak_load.c);
#   3. samples the daemon's VmRSS at start, after $WARMUP s and every 10 s,
#      then stops it with SIGTERM (it must exit 0).
# Prints requests per route and status, latency percentiles, transport
# errors and 5xx (both must be 0), RSS at start / after warm-up / at the end,
# and exits non-zero if anything failed or RSS grew by more than $RSS_SLACK_KB
# after the warm-up.
#
# Env: DURATION (180), CLIENTS (16), THINK_MS (5, per client between
# requests), THREADS (2), WARMUP (30), RSS_SLACK_KB (8192), BUILD (build).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-180}; clients=${CLIENTS:-16}; think=${THINK_MS:-5}
threads=${THREADS:-2}; warmup=${WARMUP:-30}; slack=${RSS_SLACK_KB:-8192}; build=${BUILD:-build}
[ "$warmup" -lt "$duration" ] || warmup=$((duration / 4))
[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release >/dev/null
meson compile -C "$build" siamesed tests/integration/mkmodel >/dev/null
tmp=$(mktemp -d)
dpid=""; lpid=""
cleanup() {
    [ -n "$lpid" ] && kill "$lpid" 2>/dev/null || true
    [ -n "$dpid" ] && kill "$dpid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
cc -O2 -std=c17 -D_GNU_SOURCE -Wall -Wextra bench/soak_load.c -o "$tmp/soak_load" -lcurl -lpthread
"$build/tests/integration/mkmodel" "$tmp/model.safetensors" 11
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
rss() { awk '/^VmRSS/ {print $2}' "/proc/$dpid/status"; }

"$build/siamesed" --listen "127.0.0.1:$port" --model "$tmp/model.safetensors" \
    --db "$tmp/soak.db" --threads "$threads" --max-per-ip 0 --log-level warn \
    --train-if-missing no 2>"$tmp/daemon.log" &
dpid=$!
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fs "http://127.0.0.1:$port/healthz" >/dev/null || { cat "$tmp/daemon.log"; exit 1; }
rss_start=$(rss)
echo "siamesed $(git describe --always --dirty 2>/dev/null || echo '?') ($build), pid $dpid," \
     "port $port, --threads $threads; $clients clients x ${duration}s, think ${think} ms;" \
     "$(nproc) cores"

"$tmp/soak_load" "$port" "$duration" "$clients" "$think" tests/data/img >"$tmp/load.txt" &
lpid=$!
t0=$(date +%s)
samples=()
rss_warm=""
while kill -0 "$lpid" 2>/dev/null; do
    sleep 1
    el=$(( $(date +%s) - t0 ))
    if [ -z "$rss_warm" ] && [ "$el" -ge "$warmup" ]; then rss_warm=$(rss); fi
    if [ $((el % 10)) -eq 0 ]; then samples+=("${el}s:$(rss)"); fi
done
wait "$lpid"; lpid=""
rss_end=$(rss)
[ -n "$rss_warm" ] || rss_warm=$rss_end
kill -TERM "$dpid"
set +e; wait "$dpid"; dstatus=$?; set -e; dpid=""

cat "$tmp/load.txt"
echo "RSS KiB every 10 s: ${samples[*]}"
echo "RSS KiB: start $rss_start, after ${warmup}s warm-up $rss_warm, end $rss_end" \
     "(end - warm-up: $((rss_end - rss_warm)) KiB; allowed $slack)"
echo "daemon exit status after SIGTERM: $dstatus"
if grep -q "AddressSanitizer\|runtime error:" "$tmp/daemon.log"; then
    echo "sanitizer report in the daemon log:"; cat "$tmp/daemon.log"; dstatus=99
fi
grep -v " info " "$tmp/daemon.log" | head -20 || true

read -r transport server unexpected < <(sed -n \
    's/^SOAK .*transport_errors=\([0-9]*\) 5xx=\([0-9]*\) unexpected=\([0-9]*\)$/\1 \2 \3/p' \
    "$tmp/load.txt")
fail=0
[ "${transport:-1}" -eq 0 ] || { echo "FAIL: $transport transport errors"; fail=1; }
[ "${server:-1}" -eq 0 ] || { echo "FAIL: $server 5xx answers"; fail=1; }
[ "${unexpected:-1}" -eq 0 ] || { echo "FAIL: $unexpected answers other than 200/201"; fail=1; }
[ $((rss_end - rss_warm)) -le "$slack" ] || { echo "FAIL: RSS grew after the warm-up"; fail=1; }
[ "$dstatus" -eq 0 ] || { echo "FAIL: the daemon exited $dstatus on SIGTERM"; fail=1; }
[ "$fail" -eq 0 ] && echo "soak: PASS"
exit "$fail"
