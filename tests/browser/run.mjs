/*
 * run.mjs: the browser tests. Debian's chromium, driven by playwright-core,
 * against the real siamesed on a loopback port: the page at "/" (verify,
 * bulk enroll, subjects, identify, delete; then the same with API keys on)
 * and an HTML training report opened from disk. Every page must keep the
 * browser console free of errors; screenshots of each page are written to
 * OUT_DIR/screenshots and their paths printed.
 *
 * usage: node run.mjs SIAMESED MKMODEL SOURCE_ROOT OUT_DIR [FASHION_MNIST_DIR]
 * Exits 77 (meson's "skipped") when there is no chromium, or outside CI when
 * playwright-core was never installed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { createServer } from 'node:net';
import path from 'node:path';

const [siamesed, mkmodel, srcRoot, outDir] = process.argv.slice(2);
const FMNIST = process.argv[6] || '/usr/share/datasets/fashion-mnist';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
if (!existsSync(CHROMIUM)) {
  console.log(`SKIP: no chromium at ${CHROMIUM} (scripts/install-deps.sh installs it)`);
  process.exit(77);
}
let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  /* Only a tree that never ran scripts/install-deps.sh (a Docker build stage
   * copies the script alone) lacks it; CI runs that script, so there it fails. */
  const msg = 'playwright-core is missing: run scripts/install-deps.sh (npm ci in tests/browser)';
  if (process.env.CI) {
    console.error(msg);
    process.exit(1);
  }
  console.log('SKIP: ' + msg);
  process.exit(77);
}

const work = path.join(outDir, 'browser-work');
const shots = path.join(outDir, 'screenshots');
const img = (n) => path.join(srcRoot, 'tests/data/img', n);
const IMAGES = ['fm0_c9.png', 'fm2_c1.png', 'fm3_c1.png'].map(img);
const WRITE_KEY = 'writekey-0123456789abcdef';
const READ_KEY = 'readkey-0123456789abcdef';
/* Chromium's flags known to work on these machines (no network, no sandbox). */
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let browser;
const daemons = [];

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(out)
      : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}:\n${out}`))));
  });
}

/* Starts siamesed on a free port with extra flags; resolves to its base URL. */
async function startDaemon(name, extra) {
  const dir = path.join(work, name);
  mkdirSync(dir, { recursive: true });
  const model = path.join(dir, 'model.safetensors');
  await run(mkmodel, [model, '7']);
  const port = await freePort();
  const proc = spawn(siamesed, ['--listen', `127.0.0.1:${port}`, '--model', model,
    '--db', path.join(dir, 'db.sqlite'), '--train-if-missing', 'no', '--threads', '2', ...extra],
  { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (d) => { log += d; });
  daemons.push(proc);
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    if (proc.exitCode !== null) throw new Error(`siamesed exited ${proc.exitCode}:\n${log}`);
    try {
      if ((await fetch(base + '/healthz')).ok) return base;
    } catch (e) { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`siamesed did not start:\n${log}`);
}

/* A new page that records console errors, page errors and every request. */
async function openPage(url) {
  const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
  page.errors = [];
  page.requests = [];
  page.on('console', (m) => { if (m.type() === 'error') page.errors.push(m.text()); });
  page.on('pageerror', (e) => page.errors.push('pageerror: ' + e.message));
  page.on('request', (r) => page.requests.push(r.url()));
  page.on('dialog', (d) => d.accept());
  const res = await page.goto(url);
  return { page, res };
}

/* The console errors other than the refused API calls a test provoked on purpose. */
function unexpectedErrors(page, allowedStatuses = []) {
  return page.errors.filter((t) => !allowedStatuses.some((s) =>
    t.includes(`Failed to load resource: the server responded with a status of ${s}`)));
}

async function shot(page, name) {
  const file = path.join(shots, name + '.png');
  await page.screenshot({ path: file, fullPage: true });
  console.log(`# screenshot: ${file}`);
}

async function apiVerify(base, a, b, key) {
  const form = new FormData();
  form.append('a', new Blob([readFileSync(a)]), path.basename(a));
  form.append('b', new Blob([readFileSync(b)]), path.basename(b));
  const headers = key ? { Authorization: 'Bearer ' + key } : {};
  return (await fetch(base + '/verify', { method: 'POST', body: form, headers })).json();
}

before(async () => {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(shots, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
});

after(async () => {
  if (browser) await browser.close();
  for (const d of daemons) d.kill('SIGTERM');
});

let open;

test('the page loads with a strict CSP, its favicon and no console errors', async () => {
  const base = await startDaemon('open', []);
  open = base;
  const { page, res } = await openPage(base + '/');
  assert.equal(res.status(), 200);
  const csp = res.headers()['content-security-policy'];
  assert.match(csp, /default-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  await page.waitForFunction(() => /closer than \d/.test(document.querySelector('#model-info').textContent));
  assert.equal((await fetch(base + '/favicon.svg')).status, 200);
  const paint = await page.evaluate(() => {
    const e = performance.getEntriesByName('first-contentful-paint')[0];
    return e ? e.startTime : null;
  });
  console.log(`# first contentful paint: ${paint === null ? 'n/a' : paint.toFixed(0) + ' ms'}`);
  assert.ok(page.requests.every((u) => u.startsWith(base)), page.requests.join('\n'));
  assert.ok(page.requests.some((u) => u.endsWith('/favicon.svg')), 'the favicon was requested');
  assert.deepEqual(unexpectedErrors(page), []);
  await shot(page, 'verify-empty');
  await page.close();
});

test('verify two images (one dropped): the verdict and distance the API gives, on a scale', async () => {
  const { page } = await openPage(open + '/#verify');
  await page.setInputFiles('#verify-a', IMAGES[0]);
  /* Image B by drag and drop: a drop event carrying the file lands it in #verify-b. */
  const bytes = [...readFileSync(IMAGES[1])];
  await page.evaluate((b) => {
    const dt = new DataTransfer();
    dt.items.add(new File([new Uint8Array(b)], 'fm2_c1.png', { type: 'image/png' }));
    document.querySelector('label[for="verify-b"]').dispatchEvent(
      new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  }, bytes);
  assert.equal(await page.evaluate(() => document.querySelector('#verify-b').files[0].name), 'fm2_c1.png');
  await page.click('#verify-submit');
  await page.waitForSelector('#verify-result .verdict');
  const text = await page.textContent('#verify-result');
  const want = await apiVerify(open, IMAGES[0], IMAGES[1]);
  assert.ok(text.includes(`verdict "${want.verdict}"`), text);
  assert.ok(text.includes(want.distance.toFixed(4)), `${text} lacks ${want.distance}`);
  assert.equal(await page.locator('#verify-result svg.scale').count(), 1);
  const curl = await page.textContent('#verify-curl');
  assert.match(curl, /curl -s -F 'a=@fm0_c9.png' -F 'b=@fm2_c1.png' http:\/\/127.0.0.1:\d+\/verify/);
  assert.deepEqual(unexpectedErrors(page), []);
  await shot(page, 'verify-result');
  /* An image that is not one: the API's message, not a blank page. */
  await page.setInputFiles('#verify-b', { name: 'notes.png', mimeType: 'image/png',
    buffer: Buffer.from('not an image at all') });
  await page.click('#verify-submit');
  await page.waitForSelector('#verify-result .error');
  assert.match(await page.textContent('#verify-result'), /Error: b #1: /);
  assert.deepEqual(unexpectedErrors(page, [422]), []);
  await page.close();
});

test('bulk-enroll three images, see the subject listed, identify it, delete it', async () => {
  const { page } = await openPage(open + '/#enroll');
  await page.fill('#enroll-subject', 'alice');
  await page.setInputFiles('#enroll-images', IMAGES);
  await page.fill('#enroll-metadata', '{"name":"Alice"}');
  await page.click('#enroll-submit');
  await page.waitForFunction(() => /3 of 3 images enrolled/.test(
    document.querySelector('#enroll-result').textContent));
  const items = await page.locator('#enroll-result li').allTextContents();
  for (const f of ['fm0_c9.png', 'fm2_c1.png', 'fm3_c1.png'])
    assert.ok(items.some((t) => t.startsWith(f + ': enrolled as sample')), items.join('\n'));
  await shot(page, 'enroll-result');

  await page.click('nav a[data-tab="subjects"]');
  const row = page.locator('#subjects [data-subject="alice"]');
  await row.waitFor();
  assert.match(await row.textContent(), /alice 3 samples/);
  await row.locator('summary').click();
  await row.locator('pre.meta').waitFor();
  assert.match(await row.locator('pre.meta').textContent(), /"name":"Alice"/);
  assert.equal(await row.locator('button[data-sample]').count(), 3);
  await shot(page, 'subjects');
  /* Delete one sample from the page: the API and the list both say 2. */
  await row.locator('button[data-sample]').last().click();
  await page.waitForFunction(() =>
    document.querySelectorAll('#subjects [data-subject="alice"] button[data-sample]').length === 2);
  assert.match(await row.textContent(), /alice 2 samples/);
  assert.equal((await (await fetch(open + '/subjects/alice')).json()).sample_count, 2);

  await page.click('nav a[data-tab="identify"]');
  await page.setInputFiles('#identify-image', IMAGES[0]);
  await page.click('#identify-submit');
  await page.waitForSelector('#identify-result table');
  const found = await page.textContent('#identify-result');
  assert.match(found, /^alice is the closest subject under the threshold/);
  assert.match(await page.textContent('#identify-result tr[data-subject="alice"]'), /^alice0\.00\d\dsame$/);
  await shot(page, 'identify-result');

  await page.click('nav a[data-tab="subjects"]');
  await row.waitFor();
  await row.locator('button', { hasText: 'Delete subject' }).click();
  await row.waitFor({ state: 'detached' });
  assert.equal((await fetch(open + '/subjects/alice')).status, 404);
  await page.click('nav a[data-tab="identify"]');
  await page.click('#identify-submit');
  await page.waitForFunction(() => /^Unknown/.test(document.querySelector('#identify-result').textContent));
  await shot(page, 'identify-unknown');
  assert.deepEqual(unexpectedErrors(page), []);
  await page.close();
});

test('subjects come 20 to a page; "Next page" shows the rest', async () => {
  const img0 = readFileSync(IMAGES[0]);
  for (let i = 0; i < 21; i++) {
    const form = new FormData();
    form.append('subject', `p${String(i).padStart(2, '0')}`);
    form.append('image', new Blob([img0]), 'a.png');
    assert.ok((await fetch(open + '/enroll', { method: 'POST', body: form })).ok);
  }
  const { page } = await openPage(open + '/#subjects');
  await page.locator('#subjects [data-subject="p19"]').waitFor();
  assert.equal(await page.locator('#subjects > li').count(), 20);
  await page.click('#subjects-more');
  await page.locator('#subjects [data-subject="p20"]').waitFor();
  assert.equal(await page.locator('#subjects > li').count(), 21);
  assert.ok(await page.locator('#subjects-more').isHidden());
  for (let i = 0; i < 21; i++)
    await fetch(`${open}/subjects/p${String(i).padStart(2, '0')}`, { method: 'DELETE' });
  assert.deepEqual(unexpectedErrors(page), []);
  await page.close();
});

test('verdict_only: verdicts without distances, on verify and identify', async () => {
  const base = await startDaemon('verdicts', ['--verdict-only', 'yes']);
  const { page } = await openPage(base + '/');
  await page.setInputFiles('#verify-a', IMAGES[0]);
  await page.setInputFiles('#verify-b', IMAGES[0]);
  await page.click('#verify-submit');
  await page.waitForSelector('#verify-result .verdict');
  assert.match(await page.textContent('#verify-result'), /^Same \(verdict "same"\): this daemon gives verdicts only/);
  assert.equal(await page.locator('#verify-result svg').count(), 0);
  await page.click('nav a[data-tab="enroll"]');
  await page.fill('#enroll-subject', 'carol');
  await page.setInputFiles('#enroll-images', IMAGES.slice(0, 1));
  await page.click('#enroll-submit');
  await page.waitForFunction(() => /1 of 1 images enrolled/.test(
    document.querySelector('#enroll-result').textContent));
  await page.click('nav a[data-tab="identify"]');
  await page.setInputFiles('#identify-image', IMAGES[0]);
  await page.click('#identify-submit');
  await page.waitForSelector('#identify-result table');
  assert.match(await page.textContent('#identify-result tr[data-subject="carol"]'), /^carol—same$/);
  assert.deepEqual(unexpectedErrors(page), []);
  await page.close();
});

test('with API keys on: refused without a key, works with one, read keys may not write', async () => {
  const base = await startDaemon('keys', ['--api-keys', `${READ_KEY}:read,${WRITE_KEY}:write`]);
  const { page } = await openPage(base + '/');
  await page.waitForSelector('#auth-note:not([hidden])');
  assert.deepEqual(unexpectedErrors(page), [], 'loading the page needs no key');
  await shot(page, 'keys-needed');
  await page.setInputFiles('#verify-a', IMAGES[0]);
  await page.setInputFiles('#verify-b', IMAGES[1]);
  await page.click('#verify-submit');
  await page.waitForSelector('#verify-result .error');
  assert.match(await page.textContent('#verify-result'), /missing or malformed Authorization/);

  await page.fill('#api-key', WRITE_KEY);
  await page.press('#api-key', 'Tab');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('siamesed.apiKey')), WRITE_KEY);
  assert.ok(await page.locator('#auth-note').isHidden(), 'the note goes once a key is given');
  await page.click('#verify-submit');
  await page.waitForSelector('#verify-result .verdict');
  const want = await apiVerify(base, IMAGES[0], IMAGES[1], READ_KEY);
  assert.ok((await page.textContent('#verify-result')).includes(want.distance.toFixed(4)));
  assert.match(await page.textContent('#verify-curl'), /Authorization: Bearer \$SIAMESED_KEY/);
  await page.waitForFunction(() => /closer than \d/.test(document.querySelector('#model-info').textContent));

  await page.click('nav a[data-tab="enroll"]');
  await page.fill('#enroll-subject', 'bob');
  await page.setInputFiles('#enroll-images', IMAGES);
  await page.click('#enroll-submit');
  await page.waitForFunction(() => /3 of 3 images enrolled/.test(
    document.querySelector('#enroll-result').textContent));
  await page.click('nav a[data-tab="subjects"]');
  await page.locator('#subjects [data-subject="bob"]').waitFor();

  await page.fill('#api-key', READ_KEY);
  await page.press('#api-key', 'Tab');
  await page.click('nav a[data-tab="enroll"]');
  await page.click('#enroll-submit');
  await page.waitForFunction(() => /0 of 3 images enrolled/.test(
    document.querySelector('#enroll-result').textContent));
  assert.match(await page.textContent('#enroll-result'), /this API key may only read/);
  await shot(page, 'keys-read-only');
  assert.deepEqual(unexpectedErrors(page, [401, 403]), []);
  await page.close();
});

/* A small image-directory dataset (PGM files) cut from Fashion-MNIST's test
 * IDX files: perClass[0] training and perClass[1] test images of each class,
 * in directories named after the classes. */
function writeDataset(dir, perClass) {
  const names = ['t-shirt', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker',
    'bag', 'ankle-boot'];
  const images = gunzipSync(readFileSync(path.join(FMNIST, 't10k-images-idx3-ubyte.gz')));
  const labels = gunzipSync(readFileSync(path.join(FMNIST, 't10k-labels-idx1-ubyte.gz')));
  const seen = new Array(10).fill(0);
  for (let i = 0; i < labels.length - 8; i++) {
    const c = labels[8 + i], k = seen[c]++;
    if (k >= perClass[0] + perClass[1]) continue;
    const split = k < perClass[0] ? 'train' : 'test';
    const d = path.join(dir, split, names[c]);
    mkdirSync(d, { recursive: true });
    const px = images.subarray(16 + i * 784, 16 + (i + 1) * 784);
    writeFileSync(path.join(d, `${i}.pgm`), Buffer.concat([Buffer.from('P5\n28 28\n255\n'), px]));
  }
}

/* Opens a report from disk; checks it fetched nothing and logged no error. */
async function checkReport(file, json, epochs, name) {
  const { page } = await openPage('file://' + file);
  const fetched = page.requests.filter((u) => !u.startsWith('data:') && u !== 'file://' + file);
  assert.deepEqual(fetched, [], 'the report fetched nothing');
  for (const id of ['chart-loss', 'chart-val-acc', 'chart-hist', 'chart-roc', 'chart-acc', 'chart-pca'])
    assert.equal(await page.locator(`svg#${id}`).count(), 1, `${name}: svg#${id}`);
  assert.equal(await page.locator('#chart-loss circle').count(), epochs);
  assert.ok(await page.locator('#chart-pca circle').count() >= 2000, 'at least 2000 embeddings');
  assert.equal(await page.locator('#roc-eer').count(), 1);
  assert.equal(await page.locator('#chart-roc .tar-at-far').count(), 2);
  assert.ok(await page.locator('#false-accepts .pair-card').count() > 0);
  assert.ok(await page.locator('#false-rejects .pair-card img').count() > 0);
  /* The metrics table holds the numbers --json printed. */
  const header = await page.locator('#metrics-table tr').first().locator('th').allTextContents();
  for (const split of ['train', 'test']) {
    const cells = await page.locator(`#metrics-table tr[data-split="${split}"] td`).allTextContents();
    header.slice(1).forEach((key, i) =>
      assert.deepEqual(JSON.parse(cells[i + 1]), json[split][key], `${name} ${split} ${key}`));
  }
  const size = statSync(file).size;
  console.log(`# ${name}: ${file} ${(size / 1024).toFixed(0)} KB`);
  assert.ok(size < 2 << 20);
  assert.deepEqual(unexpectedErrors(page), []);
  await shot(page, name);
  await page.close();
}

test('--train and --eval write a report that opens offline, charts present, no errors', async () => {
  const dir = path.join(work, 'report');
  writeDataset(path.join(dir, 'data'), [80, 220]);
  const model = path.join(dir, 'model.safetensors');
  const common = ['--data', path.join(dir, 'data'), '--threads', '2', '--json'];
  const trained = await run(siamesed, ['--train', ...common, '--out', model, '--epochs', '3',
    '--report', path.join(dir, 'train.html')]);
  const trainJson = JSON.parse(trained.split('\n').find((l) => l.startsWith('{"model"')));
  await checkReport(path.join(dir, 'train.html'), trainJson, 3, 'report-train');
  const evaluated = await run(siamesed, ['--eval', ...common, '--model', model,
    '--report', path.join(dir, 'eval.html')]);
  const evalJson = JSON.parse(evaluated.split('\n').find((l) => l.startsWith('{"model"')));
  await checkReport(path.join(dir, 'eval.html'), evalJson, 3, 'report-eval');
});
