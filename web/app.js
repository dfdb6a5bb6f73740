/*
 * app.js: the page siamesed serves at "/". It calls the same JSON API as any
 * client (POST /verify, /enroll, /identify; GET and DELETE /subjects...),
 * sending the API key from #api-key (kept in sessionStorage) as a Bearer
 * token, and shows the API's own error message when a call fails. No inline
 * script, nothing from another origin: the Content-Security-Policy forbids it.
 * Everything the API returns is written with textContent, never as HTML.
 */
'use strict';

const KEY_STORE = 'siamesed.apiKey';
const state = { threshold: null, margin: null, cursor: null };

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function apiKey() {
  return sessionStorage.getItem(KEY_STORE) || '';
}

/* One API call: resolves to the parsed JSON body, or throws an Error whose
 * message is the API's error message (or what went wrong on the way). */
async function api(method, path, body) {
  const headers = {};
  if (apiKey()) headers.Authorization = 'Bearer ' + apiKey();
  let res;
  try {
    res = await fetch(path, { method, headers, body, cache: 'no-store' });
  } catch (e) {
    throw new Error('cannot reach the daemon (' + e.message + ')');
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
  if (!res.ok) {
    const msg = data && data.error && data.error.message ? data.error.message
      : 'HTTP ' + res.status + ' ' + res.statusText;
    const err = new Error(msg);
    err.status = res.status;
    throw err;
  }
  return data;
}

function showError(target, err) {
  target.replaceChildren(el('p', { class: 'error', role: 'alert', text: 'Error: ' + err.message }));
}

async function busy(button, fn) {
  button.disabled = true;
  try { await fn(); } finally { button.disabled = false; }
}

/* ---- tabs ---- */
function showTab() {
  const name = (location.hash || '#verify').slice(1);
  const page = document.querySelector(`section[data-page="${name}"]`) ? name : 'verify';
  for (const s of document.querySelectorAll('section[data-page]')) s.hidden = s.dataset.page !== page;
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.tab === page) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (page === 'subjects') loadSubjects(true);
}

/* ---- drop zones: a dropped file lands in the zone's file input ---- */
function setupDrop(zone) {
  const input = zone.querySelector('input[type=file]');
  const img = zone.querySelector('img');
  const preview = () => {
    const f = input.files[0];
    if (img && f) {
      if (img.src) URL.revokeObjectURL(img.src);
      img.src = URL.createObjectURL(f);
      img.hidden = false;
    }
    zone.querySelector('span').textContent = input.files.length > 1
      ? input.files.length + ' files' : (f ? f.name : zone.querySelector('span').textContent);
  };
  input.addEventListener('change', preview);
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    if (e.dataTransfer.files.length) {
      input.files = e.dataTransfer.files;
      preview();
    }
  });
}

/* ---- the model ---- */
async function loadModel() {
  const info = $('#model-info');
  try {
    const m = await api('GET', '/model');
    state.threshold = m.threshold;
    state.margin = m.margin;
    const input = m.input || {};
    const layers = m.layers ? m.layers.join(', ') : m.arch;
    info.textContent = `${m.architecture || 'network'} (${layers}), input ${input.width}x` +
      `${input.height}x${input.channels || 1}, embedding ${m.embedding_size}. Two images closer ` +
      `than ${fmt(m.threshold)} are judged the same; training pushed different ones at least ` +
      `${fmt(m.margin)} apart.`;
    const test = m.training && (m.training.test || m.training.validation);
    if (test && typeof test.accuracy_calibrated === 'number') {
      info.textContent += ` On its ${m.training.test ? 'test' : 'validation'} pairs that ` +
        `threshold was right ${(100 * test.accuracy_calibrated).toFixed(1)}% of the time` +
        (typeof test.roc_auc === 'number' ? ` (ROC AUC ${test.roc_auc.toFixed(3)}).` : '.');
    }
  } catch (e) {
    info.textContent = 'Model unavailable: ' + e.message;
  }
}

function fmt(x) {
  return typeof x === 'number' ? x.toFixed(4) : String(x);
}

/* ---- verify ---- */
/* An SVG scale from 0 to max(margin, distance) with the threshold marked. */
function distanceScale(distance, threshold, margin) {
  const ns = 'http://www.w3.org/2000/svg';
  const top = Math.max(margin || 1, threshold * 2, distance) * 1.05;
  const W = 520, x = (v) => 10 + (W - 20) * Math.min(v, top) / top;
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} 64`);
  svg.setAttribute('class', 'scale');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', `distance ${fmt(distance)} against threshold ${fmt(threshold)}`);
  const add = (tag, a, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(a)) e.setAttribute(k, v);
    if (text) e.textContent = text;
    svg.append(e);
  };
  add('rect', { x: x(0), y: 22, width: x(threshold) - x(0), height: 12, fill: '#009E73', opacity: 0.35 });
  add('rect', { x: x(threshold), y: 22, width: x(top) - x(threshold), height: 12, fill: '#D55E00', opacity: 0.25 });
  add('line', { x1: x(threshold), x2: x(threshold), y1: 14, y2: 42, stroke: '#000', 'stroke-dasharray': '3 2' });
  add('text', { x: x(threshold), y: 56, 'text-anchor': 'middle', 'font-size': 11 }, 'threshold ' + fmt(threshold));
  add('text', { x: x(0), y: 12, 'font-size': 11 }, '0 (same)');
  add('circle', { cx: x(distance), cy: 28, r: 7, fill: '#0072B2', stroke: '#fff', 'stroke-width': 2 });
  add('text', { x: x(distance), y: 12, 'text-anchor': 'middle', 'font-size': 11, 'font-weight': 700 }, fmt(distance));
  return svg;
}

function curlFor(path, fields) {
  const auth = apiKey() ? " -H 'Authorization: Bearer $SIAMESED_KEY'" : '';
  const quote = (s) => "'" + s.replace(/'/g, "'\\''") + "'";
  const parts = fields.map(([k, f]) => ` -F ${quote(k + '=@' + f.name)}`).join('');
  return `curl -s${auth}${parts} ${location.origin}${path}`;
}

async function verify(ev) {
  ev.preventDefault();
  const out = $('#verify-result');
  const a = $('#verify-a').files[0], b = $('#verify-b').files[0];
  if (!a || !b) {
    showError(out, new Error('choose two images first'));
    return;
  }
  const body = new FormData();
  body.append('a', a);
  body.append('b', b);
  await busy($('#verify-submit'), async () => {
    try {
      const r = await api('POST', '/verify', body);
      const word = el('span', { class: 'verdict ' + r.verdict,
        text: r.verdict === 'same' ? 'Same' : 'Different' });
      if (typeof r.distance === 'number') {
        out.replaceChildren(el('p', {}, word, ` (verdict "${r.verdict}"): distance ` +
          `${fmt(r.distance)} ${r.distance < r.threshold ? '<' : '≥'} threshold ${fmt(r.threshold)}`),
        distanceScale(r.distance, r.threshold, r.margin));
      } else { /* verdict_only: the daemon keeps distances to itself */
        out.replaceChildren(el('p', {}, word, ` (verdict "${r.verdict}"): this daemon gives ` +
          'verdicts only, not distances'));
      }
      $('#verify-curl').textContent = curlFor('/verify', [['a', a], ['b', b]]);
      $('#verify-curl-box').hidden = false;
    } catch (e) {
      showError(out, e);
    }
  });
}

/* ---- enroll: one request per file, so each file gets its own result ---- */
async function enroll(ev) {
  ev.preventDefault();
  const out = $('#enroll-result');
  const subject = $('#enroll-subject').value.trim();
  const files = [...$('#enroll-images').files];
  const metadata = $('#enroll-metadata').value.trim();
  out.replaceChildren();
  if (!subject || !files.length) {
    out.append(el('li', { class: 'error', text: 'Error: give a subject id and at least one image' }));
    return;
  }
  await busy($('#enroll-submit'), async () => {
    let ok = 0;
    for (const [i, f] of files.entries()) {
      const body = new FormData();
      body.append('subject', subject);
      body.append('image', f);
      if (metadata && i === 0) body.append('metadata', metadata);
      const li = el('li', { 'data-file': f.name, text: f.name + ': enrolling…' });
      out.append(li);
      try {
        const r = await api('POST', '/enroll', body);
        const ids = (r.samples || []).map((s) => s.sample).join(', ');
        li.textContent = `${f.name}: enrolled as sample ${ids} (${r.sample_count} in all)`;
        ok++;
      } catch (e) {
        li.textContent = `${f.name}: Error: ${e.message}`;
        li.className = 'error';
      }
    }
    out.append(el('li', { text: `${ok} of ${files.length} images enrolled for ${subject}` }));
  });
}

/* ---- subjects ---- */
async function loadSubjects(fresh) {
  const list = $('#subjects'), status = $('#subjects-status');
  if (fresh) state.cursor = null;
  const q = '/subjects?limit=20' + (state.cursor ? '&cursor=' + encodeURIComponent(state.cursor) : '');
  try {
    const r = await api('GET', q);
    if (fresh) list.replaceChildren();
    for (const s of r.subjects || []) list.append(subjectItem(s));
    state.cursor = r.next_cursor || null;
    $('#subjects-more').hidden = !state.cursor;
    status.textContent = list.children.length ? '' : 'No subjects enrolled yet.';
    status.className = 'result';
  } catch (e) {
    status.textContent = 'Error: ' + e.message;
    status.className = 'result error';
  }
}

function subjectItem(s) {
  const li = el('li', { 'data-subject': s.subject });
  const del = el('button', { type: 'button', class: 'danger', text: 'Delete subject' });
  del.addEventListener('click', () => removeSubject(s.subject, li));
  const details = el('details', {}, el('summary', { text: 'samples and metadata' }));
  details.addEventListener('toggle', () => { if (details.open) loadSamples(s.subject, details); });
  li.append(el('b', { text: s.subject }),
    el('span', { class: 'count', text: ` ${s.sample_count} sample${s.sample_count === 1 ? '' : 's'} ` }),
    el('span', { class: 'meta', text: 'since ' + s.created_at + ' ' }), del, details);
  return li;
}

/* The subject's metadata and samples, page by page (limit 50), each sample
 * with its delete button. */
async function loadSamples(id, details, cursor) {
  if (!cursor) details.querySelectorAll('div, pre, p').forEach((n) => n.remove());
  details.querySelectorAll('button.more').forEach((n) => n.remove());
  const box = details.querySelector('div.samples') || el('div', { class: 'samples' });
  try {
    const r = await api('GET', '/subjects/' + encodeURIComponent(id) + '?limit=50' +
      (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''));
    if (!cursor) {
      details.append(el('pre', { class: 'meta', text: `${r.sample_count} samples; metadata: ` +
        JSON.stringify(r.metadata) }));
      details.append(box);
    }
    for (const smp of r.samples || []) {
      const b = el('button', { type: 'button', class: 'danger', 'data-sample': String(smp.sample),
        title: 'enrolled ' + smp.created_at, text: `delete sample ${smp.sample}` });
      b.addEventListener('click', () => removeSample(id, smp.sample, details));
      box.append(b);
    }
    if (r.next_cursor) {
      const more = el('button', { type: 'button', class: 'more', text: 'more samples' });
      more.addEventListener('click', () => loadSamples(id, details, r.next_cursor));
      details.append(more);
    }
  } catch (e) {
    details.append(el('p', { class: 'error', text: 'Error: ' + e.message }));
  }
}

async function removeSubject(id, li) {
  if (!confirm(`Delete subject ${id} and all its samples?`)) return;
  try {
    await api('DELETE', '/subjects/' + encodeURIComponent(id));
    li.remove();
    $('#subjects-status').textContent = `Deleted ${id}.`;
  } catch (e) {
    $('#subjects-status').textContent = 'Error: ' + e.message;
    $('#subjects-status').className = 'result error';
  }
}

async function removeSample(id, sample, details) {
  try {
    const r = await api('DELETE', `/subjects/${encodeURIComponent(id)}/samples/${sample}`);
    if (!r.sample_count) {
      loadSubjects(true);
      return;
    }
    const li = details.closest('li');
    li.querySelector('.count').textContent = ` ${r.sample_count} sample${r.sample_count === 1 ? '' : 's'} `;
    loadSamples(id, details);
  } catch (e) {
    details.append(el('p', { class: 'error', text: 'Error: ' + e.message }));
  }
}

/* ---- identify ---- */
async function identify(ev) {
  ev.preventDefault();
  const out = $('#identify-result');
  const f = $('#identify-image').files[0];
  if (!f) {
    showError(out, new Error('choose an image first'));
    return;
  }
  const body = new FormData();
  body.append('image', f);
  body.append('k', $('#identify-k').value || '5');
  await busy($('#identify-submit'), async () => {
    try {
      const r = await api('POST', '/identify', body);
      const matches = r.matches || [];
      const under = matches.filter((m) => m.verdict === 'same');
      const head = under.length
        ? el('p', {}, el('span', { class: 'verdict same', text: under[0].subject }),
          ` is the closest subject under the threshold ${fmt(r.threshold)}`)
        : el('p', {}, el('span', { class: 'verdict unknown', text: 'Unknown' }),
          `: no enrolled subject is closer than the threshold ${fmt(r.threshold)}`);
      const rows = matches.map((m) => el('tr', { 'data-subject': m.subject },
        el('td', { text: m.subject }),
        el('td', { text: typeof m.distance === 'number' ? fmt(m.distance) : '—' }),
        el('td', { text: m.verdict })));
      out.replaceChildren(head, matches.length
        ? el('table', {}, el('tr', {}, el('th', { text: 'subject' }), el('th', { text: 'distance' }),
          el('th', { text: 'verdict' })), ...rows) : '');
    } catch (e) {
      showError(out, e);
    }
  });
}

/* ---- start ---- */
async function start() {
  const key = $('#api-key');
  key.value = apiKey();
  key.addEventListener('input', () => {
    if (key.value) sessionStorage.setItem(KEY_STORE, key.value.trim());
    else sessionStorage.removeItem(KEY_STORE);
  });
  key.addEventListener('change', () => {
    if (apiKey()) $('#auth-note').hidden = true;
    loadModel();
    showTab();
  });
  $('#key-form').addEventListener('submit', (e) => e.preventDefault());
  document.querySelectorAll('.drop').forEach(setupDrop);
  $('#verify-form').addEventListener('submit', verify);
  $('#enroll-form').addEventListener('submit', enroll);
  $('#identify-form').addEventListener('submit', identify);
  $('#subjects-refresh').addEventListener('click', () => loadSubjects(true));
  $('#subjects-more').addEventListener('click', () => loadSubjects(false));
  window.addEventListener('hashchange', showTab);
  let auth = false;
  try { auth = (await api('GET', '/page/settings')).auth_required; } catch (e) { auth = false; }
  $('#auth-note').hidden = !auth || !!apiKey();
  if (!auth || apiKey()) loadModel();
  else $('#model-info').textContent = 'Enter the API key to see the model.';
  showTab();
}

document.addEventListener('DOMContentLoaded', start);
