#!/usr/bin/env bash
# Test pair accuracy on Fashion-MNIST with the recipe's test pairs (seed 1),
# one row per base network: the mlp recipe (20 epochs) and the cnn preset with
# its defaults (epochs, augmentation, training pairs: train_preset_defaults()
# in src/train/trainer.c).
# Prints accuracy at threshold 0.5 and at the threshold calibrated on the
# validation pairs, ROC AUC and training time. Targets: mlp >= 0.911 at 0.5;
# cnn >= 0.93 at 0.5 and >= 0.94 calibrated.
# Env: THREADS (2, as the other benchmarks and --train's one per core here; the runs are
# data-parallel, so 1 and 2 threads give different models of the same recipe), DATA,
# BUILD (build), ARCHS ("mlp cnn"),
# KEEP (a directory: the runs' logs, JSON reports and models stay there; default: removed).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${THREADS:-2}
data=${DATA:-/usr/share/datasets/fashion-mnist}
build=${BUILD:-build}
[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release >/dev/null
meson compile -C "$build" siamesed >/dev/null
if [ -n "${KEEP:-}" ]; then
    tmp=$KEEP
    mkdir -p "$tmp"
else
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); threads $threads"
for arch in ${ARCHS:-mlp cnn}; do
    "$build/siamesed" --train --data "$data" --arch "$arch" --seed 1 --threads "$threads" --json \
        --out "$tmp/$arch.safetensors" > "$tmp/$arch.json" 2> "$tmp/$arch.log"
done
/usr/bin/python3 - "$tmp" ${ARCHS:-mlp cnn} <<'PY'
import json, os, sys
d = sys.argv[1]
print(f"{'arch':6s}{'epochs':>7s}{'augment':>12s}{'lr':>8s}{'sched':>9s}{'pairs':>7s}{'wd':>6s}{'acc@0.5':>9s}{'acc@cal':>9s}{'thr':>7s}{'auc':>8s}{'train s':>9s}")
for arch in sys.argv[2:]:
    r = json.load(open(os.path.join(d, arch + '.json')))
    m = os.path.join(d, arch + '.safetensors')
    import struct
    raw = open(m, 'rb').read()
    n, = struct.unpack('<Q', raw[:8])
    tr = json.loads(json.loads(raw[8:8 + n])['__metadata__']['training'])
    aug = ('shift%d' % tr.get('augment_shift', 0) if tr.get('augment_shift') else '') + \
          (',flip' if tr.get('augment_flip') else '') + \
          (',cutout%d' % tr['augment_cutout'] if tr.get('augment_cutout') else '')
    sched = tr.get('lr_schedule', 'constant')
    t = r['test']
    print(f"{arch:6s}{tr['epochs']:7d}{aug.strip(',') or '-':>12s}{tr['lr']:8.0e}{sched:>9s}{r['pairs']:>7s}{tr.get('weight_decay', 0):6.2g}{t['accuracy']:9.4f}"
          f"{t['accuracy_calibrated']:9.4f}{r['threshold']:7.3f}{t['roc_auc']:8.4f}{tr['seconds']:9.0f}")
PY
