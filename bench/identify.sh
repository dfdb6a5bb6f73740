#!/usr/bin/env bash
# /identify over N (1,000,000) enrolled samples against FAISS IndexFlatL2, in one run:
#   1. bench_mkstore builds a store of N synthetic samples through store_enroll() (embeddings of
#      the Fashion-MNIST train images under the model, moved by noise: see bench/bench_mkstore.c);
#      DB=path keeps and reuses it across runs;
#   2. siamesed starts on it (THREADS workers): seconds to the first answered /healthz and to the
#      first answered /identify;
#   3. bench/identify.py: ROUNDS interleaved rounds of Q queries (Fashion-MNIST test images), each
#      by /identify?exact=1, /identify (int8 scan + exact re-rank) and FAISS IndexFlatL2 (2 OpenMP
#      threads) over the same embeddings; medians of every round and overall, the ratios, top-1
#      agreement, the daemon's RSS.
# Env: N (1000000), PER (10 samples per subject), Q (30), ROUNDS (5), THREADS (2), BUILD
# (build-release), MODEL (default: trains one epoch), DB (default: a temp file).
# Needs python3-faiss: scripts/install-deps.sh --bench.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${N:-1000000}; per=${PER:-10}; q=${Q:-30}; rounds=${ROUNDS:-5}; threads=${THREADS:-2}
build=${BUILD:-build-release}
[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release >/dev/null
meson compile -C "$build" siamesed bench/bench_mkstore >/dev/null
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

model=${MODEL:-}
if [ -z "$model" ]; then
    model=$tmp/model.safetensors
    "$build/siamesed" --train --epochs 1 --out "$model" >/dev/null 2>&1
fi
db=${DB:-$tmp/identify.db}
if [ ! -f "$db" ]; then
    echo "building $n samples into $db"
    "$build/bench/bench_mkstore" "$model" "$db" "$n" "$per"
fi

port=$(free_port)
t0=$(now)
"$build/siamesed" --listen "127.0.0.1:$port" --model "$model" --db "$db" --threads "$threads" \
    --log-level warn --train-if-missing no --max-per-ip 0 2>"$tmp/daemon.log" &
pids+=($!); dpid=$!
until curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do
    kill -0 "$dpid" 2>/dev/null || { cat "$tmp/daemon.log"; exit 1; }
    sleep 0.02
done
t_health=$(now)
curl -fs -F "image=@tests/data/img/fm0_c9.png" "http://127.0.0.1:$port/identify" >/dev/null
t_ident=$(now)
# CPU seconds the daemon used to get there (utime + stime), apart from waiting for a busy CPU.
cpu_s=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$dpid/stat")
echo "cpu:$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) ($(nproc) cores); load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "start-up: $(echo "$t_health - $t0" | bc) s to /healthz, $(echo "$t_ident - $t0" | bc) s to the first identify ($cpu_s s of CPU)"
/usr/bin/python3 bench/identify.py "$port" "$db" "$dpid" "$q" "$rounds"
