#!/usr/bin/env bash
# bench/audit.sh — label audit on deliberately noisy labels (issue 10).
#
# Makes an IDX copy of Fashion-MNIST's training set with FLIP (default 2 %)
# of its labels changed at random to another class (seeded), trains on that
# noisy copy itself (a user has no clean one), audits it with
# `siamesed --audit`, and prints precision at N (N = the number flipped) and
# the ROC AUC of the audit score against "was flipped", for each of ARCHS.
#
#   bench/audit.sh [BUILD_DIR]      (default build-bench; configured if missing)
#   ARCHS="mlp cnn" MLP_EPOCHS=20 CNN_EPOCHS=1 FLIP=0.02 SEED=1 KEEP=0 bench/audit.sh
#
# The CNN takes minutes per epoch on a busy 2-core machine (one epoch: 9 min
# wall at load 20 on an AMD EPYC), and one epoch already audits well
# (precision at N 0.83), so CNN_EPOCHS defaults to 1. Chance precision is FLIP.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-bench}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
ARCHS=${ARCHS:-mlp cnn}
MLP_EPOCHS=${MLP_EPOCHS:-20}
CNN_EPOCHS=${CNN_EPOCHS:-1}
FLIP=${FLIP:-0.02}
SEED=${SEED:-1}
PY=/usr/bin/python3

[ -d "$BUILD" ] || meson setup "$BUILD" --buildtype=release >/dev/null
meson compile -C "$BUILD" siamesed >/dev/null
BIN="$BUILD/siamesed"
WORK=$(mktemp -d /tmp/fashion-noisy.XXXXXX) # "fashion" in the path: category names
# KEEP=1 keeps the noisy copy, the models and the audits (the path is printed).
if [ "${KEEP:-0}" = 1 ]; then echo "audit: keeping $WORK"; else trap 'rm -rf "$WORK"' EXIT; fi

"$PY" - "$DATA" "$WORK" "$FLIP" "$SEED" <<'PYEOF'
import gzip, os, random, sys
src, dst, flip, seed = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
def read(name):
    for n in (name, name + '.gz'):
        p = os.path.join(src, n)
        if os.path.exists(p):
            return (gzip.open if n.endswith('.gz') else open)(p, 'rb').read(), p
    sys.exit('no %s in %s' % (name, src))
labels, _ = read('train-labels-idx1-ubyte')
head, y = labels[:8], bytearray(labels[8:])
rng = random.Random(seed)
idx = sorted(rng.sample(range(len(y)), round(flip * len(y))))
for i in idx:
    y[i] = rng.choice([c for c in range(10) if c != y[i]])
open(os.path.join(dst, 'train-labels-idx1-ubyte'), 'wb').write(head + bytes(y))
_, img = read('train-images-idx3-ubyte')
os.symlink(img, os.path.join(dst, os.path.basename(img)))
for n in ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'):
    _, p = read(n)
    os.symlink(p, os.path.join(dst, os.path.basename(p)))
open(os.path.join(dst, 'flipped.txt'), 'w').write('\n'.join(map(str, idx)) + '\n')
print('audit: flipped %d of %d labels (seed %d)' % (len(idx), len(y), seed))
PYEOF

echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for arch in $ARCHS; do
    epochs=$MLP_EPOCHS
    [ "$arch" = cnn ] && epochs=$CNN_EPOCHS
    t0=$(date +%s)
    "$BIN" --train --data "$WORK" --out "$WORK/$arch.safetensors" --arch "$arch" \
        --epochs "$epochs" >"$WORK/$arch-train.log" 2>&1 ||
        { tail -5 "$WORK/$arch-train.log"; exit 1; }
    t1=$(date +%s)
    "$BIN" --audit --model "$WORK/$arch.safetensors" --data "$WORK" --top 1000000 --json \
        >"$WORK/$arch-audit.json"
    t2=$(date +%s)
    "$PY" - "$WORK/$arch-audit.json" "$WORK/flipped.txt" "$arch" "$epochs" \
        "$((t1 - t0))" "$((t2 - t1))" <<'PYEOF'
import json, sys
rows = json.load(open(sys.argv[1]))['suspects']
flipped = set(int(l) for l in open(sys.argv[2]) if l.strip())
n = len(flipped)
top = [r['index'] for r in rows[:n]]
prec = sum(i in flipped for i in top) / n
# ROC AUC of the score against "was flipped" (ties count half).
pos = sorted(r['score'] for r in rows if r['index'] in flipped)
neg = sorted(r['score'] for r in rows if r['index'] not in flipped)
import bisect
auc = sum(bisect.bisect_left(neg, s) + 0.5 * (bisect.bisect_right(neg, s) - bisect.bisect_left(neg, s))
          for s in pos) / (len(pos) * len(neg))
print('%-4s epochs %-3s precision@%d %.3f  roc_auc %.4f  (train %s s, audit %s s)'
      % (sys.argv[3], sys.argv[4], n, prec, auc, sys.argv[5], sys.argv[6]))
PYEOF
done
