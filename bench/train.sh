#!/usr/bin/env bash
# Training throughput, side by side in one run on this machine:
#   - siamesed --train (the reference recipe, one epoch by default),
#   - the PyTorch peer (../shared/peers/torch_siamese.py) with the same data,
#     epochs, thread count and OPENBLAS_CORETYPE as siamesed's chosen kernel,
#   - the sgemm ceiling: OpenBLAS alone on the matrix products of a training
#     step (bench_sgemm), i.e. pairs/s if everything else were free.
# Prints pairs/s of each and the ratios. Env: THREADS (2), EPOCHS (1),
# DATA (/usr/share/datasets/fashion-mnist), BUILD (build), PEER (path), ROUNDS (3).
# Needs: scripts/install-deps.sh --bench (python3-torch).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${THREADS:-2}
epochs=${EPOCHS:-1}
data=${DATA:-/usr/share/datasets/fashion-mnist}
build=${BUILD:-build}
peer=${PEER:-$(cd .. && pwd)/shared/peers/torch_siamese.py}
py=/usr/bin/python3
[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release >/dev/null
meson compile -C "$build" siamesed bench/bench_sgemm >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

kernel=$("$build/siamesed" --version | sed -n 's/.*OpenBLAS kernel \([A-Za-z0-9]*\).*/\1/p')
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "threads $threads, epochs $epochs, OpenBLAS kernel $kernel (peer runs with OPENBLAS_CORETYPE=$kernel)"

# The host is shared and noisy: ROUNDS interleaved runs of each, medians reported.
have_peer=0
[ -f "$peer" ] && $py -c 'import torch' 2>/dev/null && have_peer=1
[ $have_peer = 1 ] || echo "peer: not available (install python3-torch: scripts/install-deps.sh --bench)"
for r in $(seq "${ROUNDS:-3}"); do
    "$build/bench/bench_sgemm" 128 "$threads" > "$tmp/ceiling.$r.json"
    "$build/siamesed" --train --data "$data" --epochs "$epochs" --threads "$threads" --json \
        --out "$tmp/m.safetensors" > "$tmp/ours.$r.json" 2> "$tmp/ours.log"
    if [ $have_peer = 1 ]; then
        OPENBLAS_CORETYPE=$kernel $py "$peer" "$data" --epochs "$epochs" --threads "$threads" \
            > "$tmp/peer.log" 2>&1
        tail -n 1 "$tmp/peer.log" > "$tmp/peer.$r.json"
    fi
done

$py - "$tmp" <<'PY'
import glob, json, os, statistics, sys
d = sys.argv[1]
runs = lambda n: [json.load(open(f)) for f in sorted(glob.glob(os.path.join(d, n + '.*.json')))]
ceil, ours, peer = runs('ceiling'), runs('ours'), runs('peer')
med = lambda xs: statistics.median(xs)
o = med([r['pairs_per_s'] for r in ours])
c = med([r['pairs_per_s'] for r in ceil])
print(f"{len(ours)} rounds; medians (all runs: pairs/s)")
print(f"{'':28s}{'pairs/s':>12s}{'test acc@0.5':>14s}   runs")
print(f"{'siamesed':28s}{o:12.0f}{ours[0]['test']['accuracy']:14.4f}   "
      + ' '.join(f"{r['pairs_per_s']:.0f}" for r in ours))
if peer:
    p = med([r['pairs_per_s'] for r in peer])
    print(f"{'pytorch peer':28s}{p:12.0f}{peer[0]['test_acc']:14.4f}   "
          + ' '.join(f"{r['pairs_per_s']:.0f}" for r in peer))
print(f"{'sgemm ceiling (' + ceil[0]['kernel'] + ')':28s}{c:12.0f}{'':14s}   "
      + ' '.join(f"{r['pairs_per_s']:.0f}" for r in ceil)
      + f"  ({med([r['gflops'] for r in ceil]):.0f} GFLOP/s)")
if peer:
    print(f"siamesed / peer:    {o / p:.2f}x")
print(f"siamesed / ceiling: {100 * o / c:.0f}%")
PY
