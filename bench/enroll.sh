#!/usr/bin/env bash
# Durable enroll throughput over HTTP: siamesed on an empty store, bench/enroll_load.c (C,
# libcurl keep-alive; the Python bench/enroll_many.py is the client-bound alternative) enrolls
# N Fashion-MNIST images (PER per request, one subject each) from CLIENTS (16) concurrent
# clients, ROUNDS times on fresh stores; then the store's commits vs writes from /metrics (group commit: many
# writes share one fsync'ed transaction). Env: N (100000), PER (10), ROUNDS (3), THREADS (16:
# HTTP workers; each waits for its commit, so fewer workers than clients caps the group size),
# BUILD (build-release), MODEL (default: a random-weight model from mkmodel; enroll cost does
# not depend on the weights).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${N:-100000}; per=${PER:-10}; rounds=${ROUNDS:-3}; threads=${THREADS:-16}; clients=${CLIENTS:-16}
build=${BUILD:-build-release}
[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release >/dev/null
meson compile -C "$build" siamesed tests/integration/mkmodel bench/enroll_load >/dev/null
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
model=${MODEL:-$tmp/model.safetensors}
[ -f "$model" ] || "$build/tests/integration/mkmodel" "$model" 1
echo "cpu:$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) ($(nproc) cores); load: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$rounds"); do
    port=$(free_port)
    "$build/siamesed" --listen "127.0.0.1:$port" --model "$model" --db "$tmp/enroll$r.db" \
        --threads "$threads" --log-level warn --train-if-missing no --max-per-ip 0 \
        2>"$tmp/daemon$r.log" &
    pids+=($!); dpid=$!
    until curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do sleep 0.05; done
    "$build/bench/enroll_load" "http://127.0.0.1:$port" "$n" "$per" "$clients"
    curl -fs "http://127.0.0.1:$port/metrics" | grep -E '^siamesed_(store_commits_total|store_writes_total|enrolled_samples) ' || \
        curl -fs "http://127.0.0.1:$port/metrics" | grep -E 'store_commits_total|store_writes_total|enrolled_samples' | grep -v '^#'
    # The daemon's CPU per sample (utime + stime): what the load costs apart from a busy host.
    awk -v hz="$(getconf CLK_TCK)" -v n="$n" \
        '{printf "daemon CPU %.1f s, %.0f us per sample\n", ($14 + $15) / hz, ($14 + $15) / hz / n * 1e6}' \
        "/proc/$dpid/stat"
    kill "$dpid"; wait "$dpid" 2>/dev/null || true
done
