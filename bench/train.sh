#!/usr/bin/env bash
# Training throughput, side by side in one run on this machine:
#   - siamesed --train (the reference recipe, one epoch by default),
#   - the PyTorch peer (../shared/peers/torch_siamese.py) with the same data,
#     epochs, thread count and OPENBLAS_CORETYPE as siamesed's chosen kernel,
#   - the sgemm ceiling: OpenBLAS alone on the matrix products of a training
#     step (bench_sgemm), i.e. pairs/s if everything else were free.
# Prints pairs/s of each and the ratios. Env: THREADS (2), EPOCHS (1),
# DATA (/usr/share/datasets/fashion-mnist), BUILD (build), PEER (path).
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

"$build/bench/bench_sgemm" 128 "$threads" > "$tmp/ceiling.json"
"$build/siamesed" --train --data "$data" --epochs "$epochs" --threads "$threads" --json \
    --out "$tmp/m.safetensors" > "$tmp/ours.json" 2> "$tmp/ours.log"
if [ -f "$peer" ] && $py -c 'import torch' 2>/dev/null; then
    OPENBLAS_CORETYPE=$kernel $py "$peer" "$data" --epochs "$epochs" --threads "$threads" \
        > "$tmp/peer.log" 2>&1
    tail -n 1 "$tmp/peer.log" > "$tmp/peer.json"
else
    echo "peer: not available (install python3-torch: scripts/install-deps.sh --bench)"
    echo '{}' > "$tmp/peer.json"
fi

$py - "$tmp" <<'PY'
import json, sys, os
d = sys.argv[1]
load = lambda n: json.load(open(os.path.join(d, n)))
ceil, ours, peer = load('ceiling.json'), load('ours.json'), load('peer.json')
o = ours['pairs_per_s']
print(f"{'':28s}{'pairs/s':>12s}{'test acc@0.5':>14s}")
print(f"{'siamesed':28s}{o:12.0f}{ours['test']['accuracy']:14.4f}")
if peer:
    print(f"{'pytorch peer':28s}{peer['pairs_per_s']:12.0f}{peer['test_acc']:14.4f}")
print(f"{'sgemm ceiling (' + ceil['kernel'] + ')':28s}{ceil['pairs_per_s']:12.0f}"
      f"{'':>6s}({ceil['gflops']:.0f} GFLOP/s)")
if peer:
    print(f"siamesed / peer:    {o / peer['pairs_per_s']:.2f}x")
print(f"siamesed / ceiling: {100 * o / ceil['pairs_per_s']:.0f}%")
PY
