#!/usr/bin/env bash
# Runs the README's "Using it" examples against a fresh daemon and prints each
# command with its output, so the README can quote real answers:
#   scripts/readme-examples.sh [BUILD_DIR] [MODEL]
# BUILD_DIR defaults to build; MODEL to a model trained here by the daemon on
# first start (the packaged Fashion-MNIST, ~30 s). The images are three 28x28
# Fashion-MNIST test samples: x.png and y.png are trousers, z.png a boot.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
bin=$root/$build/siamesed
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
cp "$root/tests/data/img/fm2_c1.png" "$work/x.png"
cp "$root/tests/data/img/fm3_c1.png" "$work/y.png"
cp "$root/tests/data/img/fm0_c9.png" "$work/z.png"
port=18480
model_args=()
if [ -n "${2:-}" ]; then model_args=(--model "$(realpath "$2")"); fi
cd "$work"
"$bin" --listen "127.0.0.1:$port" "${model_args[@]}" --db "$work/siamesed.db" \
    >"$work/daemon.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
    curl -s "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/daemon.log"; exit 1; }
    sleep 0.5
done
# Prints a command as the README shows it (port 8080, quoted URL), then its
# answer, each line prefixed "# ".
run() {
    echo "    $1" | sed -E "s|\"\\\$u/([^\"]*)\"|'http://127.0.0.1:8080/\1'|g"
    (eval "$1"; echo) 2>&1 | sed '/^$/d; s/^/    # /'
}
u=http://127.0.0.1:$port
run 'curl -s -F a=@x.png -F b=@y.png "$u/verify"'
run 'curl -s -F a=@x.png -F b=@z.png "$u/verify"'
run 'curl -s -H "Content-Type: application/json" -d "{\"a\":\"$(base64 -w0 x.png)\",\"b\":\"$(base64 -w0 y.png)\"}" "$u/verify"'
run 'curl -s -F subject=alice -F image=@x.png -F image=@y.png "$u/enroll"'
run 'curl -s -F subject=bob -F image=@z.png "$u/enroll"'
run 'curl -s -F subject=alice -F image=@y.png "$u/verify"'
run 'curl -s -F image=@z.png -F k=2 "$u/identify"'
run 'curl -s -F image=@x.png "$u/embed"'
run 'curl -s "$u/subjects?limit=50"'
run 'curl -s "$u/subjects/alice"'
run 'curl -s -X DELETE "$u/subjects/alice/samples/1"'
run 'curl -s -X DELETE "$u/subjects/bob"'
run 'curl -s "$u/model"'
run 'curl -s "$u/healthz"'
run 'curl -s "$u/page/settings"'
run 'curl -s -F a=@x.png "$u/verify"'
run 'curl -s "$u/metrics" | head -3'
