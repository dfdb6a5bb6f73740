#!/usr/bin/env bash
# CNN training and embedding throughput, side by side in one run on this machine:
#   - bench_cnn: the large-sgemm peak (2048^3) with THREADS threads, and one
#     training step of the cnn preset timed alone, data-parallel over THREADS
#     as --train runs it (FLOPs per pair, GFLOP/s, fraction of the peak), the
#     model time of one /verify (two 28x28 images through a served model's
#     path) and batch embedding;
#   - siamesed --train --arch cnn for EPOCHS epochs;
#   - the PyTorch peer (../shared/peers/torch_siamese.py --arch cnn) with the
#     same data, epochs, threads and OPENBLAS_CORETYPE as siamesed's kernel.
# Prints pairs/s of each, the ratio, the fraction of the sgemm peak, and
# embeddings/s of both. Goal: siamesed >= 2.5x the peer, embed >= the peer's.
# Env: THREADS (2), EPOCHS (1), DATA (/usr/share/datasets/fashion-mnist),
# BUILD (build), PEER (path; default ../shared/peers/torch_siamese.py beside
# the clone), ROUNDS (1), CONV (siamesed's --conv-backend: auto = oneDNN f32,
# or bf16, im2col, onednn). Needs python3-torch for the peer.
# Do not run it while the machine is busy: every figure is a time.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${THREADS:-2}
epochs=${EPOCHS:-1}
data=${DATA:-/usr/share/datasets/fashion-mnist}
build=${BUILD:-build}
peer=${PEER:-$(cd .. && pwd)/shared/peers/torch_siamese.py}
conv=${CONV:-auto}
py=/usr/bin/python3
[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release >/dev/null
meson compile -C "$build" siamesed bench/bench_cnn >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

kernel=$("$build/siamesed" --version | sed -n 's/.*OpenBLAS kernel \([A-Za-z0-9]*\).*/\1/p')
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "cnn preset, threads $threads, epochs $epochs, conv backend $conv, OpenBLAS kernel $kernel (peer: OPENBLAS_CORETYPE=$kernel)"
have_peer=0
[ -f "$peer" ] && $py -c 'import torch' 2>/dev/null && have_peer=1
[ $have_peer = 1 ] || echo "peer: not available (python3-torch, $peer)"
for r in $(seq "${ROUNDS:-1}"); do
    "$build/bench/bench_cnn" cnn 128 "$threads" 5 "$conv" > "$tmp/step.$r.json"
    "$build/siamesed" --train --data "$data" --arch cnn --epochs "$epochs" --threads "$threads" \
        --conv-backend "$conv" --json --out "$tmp/m.safetensors" > "$tmp/ours.$r.json" 2> "$tmp/ours.log"
    if [ $have_peer = 1 ]; then
        OPENBLAS_CORETYPE=$kernel $py "$peer" "$data" --arch cnn --epochs "$epochs" \
            --threads "$threads" > "$tmp/peer.log" 2>&1
        tail -n 1 "$tmp/peer.log" > "$tmp/peer.$r.json"
    fi
done

$py - "$tmp" <<'PY'
import glob, json, os, statistics, sys
d = sys.argv[1]
runs = lambda n: [json.load(open(f)) for f in sorted(glob.glob(os.path.join(d, n + '.*.json')))]
step, ours, peer = runs('step'), runs('ours'), runs('peer')
med = statistics.median
o = med([r['pairs_per_s'] for r in ours])
s = step[0]
peak = med([r['sgemm_peak_gflops'] for r in step])
mflop = s['mflop_per_pair']
print(f"sgemm peak (2048^3, {s['threads']} threads): {peak:.0f} GFLOP/s; one pair = {mflop:.1f} MFLOP"
      f" -> limit {peak * 1e3 / mflop:.0f} pairs/s (f32; bf16 kernels can pass it)")
print(f"{'':24s}{'pairs/s':>10s}{'of peak':>9s}{'test acc@0.5':>14s}{'embed/s':>10s}")
print(f"{'siamesed --train':24s}{o:10.0f}{o * mflop / 1e3 / peak:9.0%}{ours[0]['test']['accuracy']:14.4f}"
      f"{med([r['embed_per_s'] for r in step]):10.0f}")
print(f"{'siamesed step alone':24s}{med([r['pairs_per_s_step'] for r in step]):10.0f}"
      f"{med([r['fraction_of_peak'] for r in step]):9.0%}")
if peer:
    p = med([r['pairs_per_s'] for r in peer])
    print(f"{'pytorch peer':24s}{p:10.0f}{p * mflop / 1e3 / peak:9.0%}{peer[0]['test_acc']:14.4f}"
          f"{med([r['embed_per_s'] for r in peer]):10.0f}")
    print(f"siamesed / peer: {o / p:.2f}x (goal 2.5x)")
print(f"/verify model time (2 images, 1 thread): {s['verify_model_ms']:.3f} ms (goal 1 ms)")
each = lambda rs, k: ' '.join(f"{r[k]:.0f}" for r in rs)
print(f"every round: siamesed --train [{each(ours, 'pairs_per_s')}], step alone "
      f"[{each(step, 'pairs_per_s_step')}], peer [{each(peer, 'pairs_per_s')}], "
      f"sgemm peak [{each(step, 'sgemm_peak_gflops')}] GFLOP/s")
PY
