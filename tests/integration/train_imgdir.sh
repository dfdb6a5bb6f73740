#!/usr/bin/env bash
# siamesed --train on a user's own image directory, end to end through the
# command line: an imbalanced tree (one class of 8 beside six of 40), a
# non-image file and a broken image in it, unseen test classes; then a tree
# with train/ and no test/. Checks what the summary says and the exit codes.
#   train_imgdir.sh SIAMESED
set -euo pipefail
bin=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

pgm() { # pgm FILE: a random 8x8 binary PGM
    { printf 'P5\n8 8\n255\n'; head -c 64 /dev/urandom; } >"$1"
}
tree=$work/shoes
for c in boot coat dress rare sandal shirt trouser; do
    n=40
    [ "$c" = rare ] && n=8
    mkdir -p "$tree/train/$c"
    for i in $(seq 1 "$n"); do pgm "$tree/train/$c/$i.pgm"; done
done
for c in bag sneaker; do
    mkdir -p "$tree/test/$c"
    for i in $(seq 1 20); do pgm "$tree/test/$c/$i.pgm"; done
done
echo "not an image" >"$tree/train/coat/README.txt"
printf '\x89PNG\r\n\x1a\nbroken' >"$tree/train/coat/zz-broken.png"

# Without --skip-bad-images the broken file stops training, by name.
if "$bin" --train --data "$tree" --out "$work/m.safetensors" --epochs 1 --threads 1 \
    >"$work/out" 2>"$work/err"; then
    fail "a broken image did not stop training"
fi
grep -q 'zz-broken.png' "$work/err" || fail "the error does not name the file: $(cat "$work/err")"
[ ! -e "$work/m.safetensors" ] || fail "a model was written"

"$bin" --train --data "$tree" --out "$work/m.safetensors" --epochs 1 --threads 1 \
    --skip-bad-images >"$work/out" 2>"$work/err" || fail "training failed: $(cat "$work/err")"
e=$work/err
grep -q "train      $tree/train: 248 images, 7 classes (skipped: 1 non-image file, 1 unreadable image)" "$e" ||
    fail "train split line: $(cat "$e")"
grep -q "test       $tree/test: 40 images, 2 classes" "$e" || fail "test split line: $(cat "$e")"
grep -q "2 of its classes are not in train" "$e" || fail "unseen classes: $(cat "$e")"
grep -Eq '  rare +6 +2 +0$' "$e" || fail "the class row of rare: $(cat "$e")"
grep -Eq '  sneaker +0 +0 +20$' "$e" || fail "the class row of sneaker: $(cat "$e")"
grep -q "pairs      train: all" "$e" || fail "pairing: $(cat "$e")"
# At least 90% of the training images are in pairs (here: all of them).
used=$(sed -n 's/.* \([0-9]*\) of \([0-9]*\) images in pairs.*/\1 \2/p' "$e" | head -1)
read -r u n <<<"$used"
[ -n "$u" ] && [ $((u * 10)) -ge $((n * 9)) ] || fail "images in pairs: '$used'"
grep -q "warn  small classes (fewer than 10 training images): 'rare' 8" "$e" ||
    fail "no small-class warning: $(cat "$e")"
grep -q "warn  1 image did not decode" "$e" || fail "no skipped-image warning"
! grep -q "warn  .*'\(bag\|sneaker\|boot\)'" "$e" || fail "a class absent from a split was warned about"
grep -q "^pairs: train all, test keras" "$work/out" || fail "final report: $(cat "$work/out")"
"$bin" --eval --model "$work/m.safetensors" --data "$tree" --skip-bad-images --threads 1 \
    >"$work/out" 2>"$e" || fail "--eval: $(cat "$e")"
grep -q "^pairs: train all, test keras" "$work/out" || fail "--eval report: $(cat "$work/out")"

# --pairs keras: the recipe's pairs, cut to the smallest class.
"$bin" --train --data "$tree" --out "$work/k.safetensors" --epochs 1 --threads 1 \
    --skip-bad-images --pairs keras >"$work/out" 2>"$e" || fail "keras: $(cat "$e")"
grep -q "pairs      train: keras (the recipe's), 70 pairs" "$e" || fail "keras pairs: $(cat "$e")"

# train/ without test/: accepted, and said to have no test split.
rm -rf "$tree/test"
"$bin" --train --data "$tree" --out "$work/t.safetensors" --epochs 1 --threads 1 \
    --skip-bad-images >"$work/out" 2>"$e" || fail "train/ only: $(cat "$e")"
grep -q "test       none" "$e" || fail "no test split not said: $(cat "$e")"
echo "train_imgdir: ok"
