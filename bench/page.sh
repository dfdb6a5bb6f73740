#!/usr/bin/env bash
# The web page and the HTML report, timed on this machine:
#   1. first contentful paint, DOMContentLoaded and load of "/" from a local
#      daemon in Debian's chromium (playwright-core from tests/browser), ROUNDS
#      fresh page loads, median and max, and the bytes the page transferred;
#   2. the HTML report of --train (EPOCHS epochs of the default Fashion-MNIST
#      recipe) and of --eval of that model: seconds to write it, and its size.
# Env: BUILD (build), ROUNDS (20), EPOCHS (2). Needs scripts/install-deps.sh (chromium, npm ci).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}; rounds=${ROUNDS:-20}; epochs=${EPOCHS:-2}
[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=release >/dev/null
meson compile -C "$build" siamesed tests/integration/mkmodel >/dev/null
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$build/tests/integration/mkmodel" "$tmp/m.safetensors" 1
"$build/siamesed" --listen "127.0.0.1:$port" --model "$tmp/m.safetensors" --db "$tmp/db" \
    --train-if-missing no --threads 2 2>/dev/null &
pid=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
echo "page: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1 /proc/loadavg)"
node --input-type=module - "http://127.0.0.1:$port/" "$rounds" <<'JS'
import { createRequire } from 'node:module';
const require = createRequire(process.cwd() + '/tests/browser/');
const { chromium } = require('playwright-core');
const [url, rounds] = [process.argv[2], Number(process.argv[3])];
const b = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox',
  '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'] });
const runs = [];
for (let i = 0; i < rounds; i++) {
  const ctx = await b.newContext();
  const p = await ctx.newPage();
  await p.goto(url, { waitUntil: 'load' });
  runs.push(await p.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const fcp = performance.getEntriesByName('first-contentful-paint')[0];
    const bytes = performance.getEntriesByType('resource').reduce((s, r) => s + r.transferSize,
      nav.transferSize);
    return { fcp: fcp ? fcp.startTime : NaN, dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd, bytes };
  }));
  await ctx.close();
}
await b.close();
const vals = (k) => runs.map((r) => r[k]).filter(Number.isFinite).sort((x, y) => x - y);
const med = (k) => vals(k)[Math.floor(vals(k).length / 2)];
const max = (k) => vals(k)[vals(k).length - 1];
console.log(`page: ${rounds} loads of ${url} (${vals('fcp').length} painted): first contentful paint median ${med('fcp').toFixed(0)} ms` +
  ` (max ${max('fcp').toFixed(0)}), DOMContentLoaded ${med('dcl').toFixed(0)} ms, load ` +
  `${med('load').toFixed(0)} ms, ${med('bytes')} bytes transferred (target: first paint <= 200 ms)`);
JS
echo "page: assets compiled in: $(grep -o 'page_assets_bytes = [0-9]*' "$build/src/server/page_assets.c" | grep -o '[0-9]*$') bytes (budget 204800)"
"$build/siamesed" --train --epochs "$epochs" --out "$tmp/t.safetensors" --report "$tmp/train.html" \
    --threads 2 2>"$tmp/train.log" >/dev/null
echo "report: --train --epochs $epochs: $(grep -o 'report: wrote .*' "$tmp/train.log" | sed 's|.*in |written in |'), $(stat -c %s "$tmp/train.html") bytes (target: <= 2 s, < 2 MB)"
"$build/siamesed" --eval --model "$tmp/t.safetensors" --report "$tmp/eval.html" --threads 2 \
    2>"$tmp/eval.log" >/dev/null
echo "report: --eval: $(grep -o 'report: wrote .*' "$tmp/eval.log" | sed 's|.*in |written in |'), $(stat -c %s "$tmp/eval.html") bytes"
