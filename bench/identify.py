#!/usr/bin/python3
"""The /identify measurements of bench/identify.sh against a running siamesed.

Queries: the first Q Fashion-MNIST test images, sent as base64 PGM in JSON.
Each query's embedding comes from POST /embed, so FAISS (IndexFlatL2 over the
very embeddings the store holds, read from the SQLite file) searches the same
vector. ROUNDS interleaved rounds: in each, every query is searched by
/identify?exact=1, /identify (int8 scan + exact re-rank) and FAISS, in that
order per query. Prints every round's medians, then the overall medians,
the ratios, the top-1 agreements and the daemon's memory.

usage: identify.py PORT DB PID [Q=30] [ROUNDS=5] [K=5]
"""
import base64, gzip, http.client, json, sqlite3, statistics, sys, time
import numpy as np
import faiss

port, db, pid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
Q = int(sys.argv[4]) if len(sys.argv) > 4 else 30
ROUNDS = int(sys.argv[5]) if len(sys.argv) > 5 else 5
K = int(sys.argv[6]) if len(sys.argv) > 6 else 5

conn = http.client.HTTPConnection('127.0.0.1', port)


def post(path, body):
    conn.request('POST', path, json.dumps(body), {'Content-Type': 'application/json'})
    r = conn.getresponse()
    data = r.read()
    assert r.status == 200, (r.status, data[:200])
    return json.loads(data)


raw = gzip.open('/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz').read()
imgs = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)[:Q]
pgm = [base64.b64encode(b'P5 28 28 255\n' + im.tobytes()).decode() for im in imgs]
queries = np.array([post('/embed', {'image': p})['embeddings'][0] for p in pgm], np.float32)

t0 = time.time()
con = sqlite3.connect(f'file:{db}?mode=ro', uri=True)
rows = con.execute('SELECT subject_id, embedding FROM samples ORDER BY id').fetchall()
subjects = [r[0] for r in rows]
xb = np.frombuffer(b''.join(r[1] for r in rows), np.float32).reshape(len(rows), -1)
del rows
faiss.omp_set_num_threads(2)
index = faiss.IndexFlatL2(xb.shape[1])
index.add(xb)
load_s = time.time() - t0

exact, approx, fss = [[] for _ in range(ROUNDS)], [[] for _ in range(ROUNDS)], [[] for _ in range(ROUNDS)]
agree = agree_faiss = total = 0
for r in range(ROUNDS):
    for i, p in enumerate(pgm):
        body = {'image': p, 'k': K}
        t = time.perf_counter(); e = post('/identify?exact=1', body); exact[r].append(time.perf_counter() - t)
        t = time.perf_counter(); a = post('/identify', body); approx[r].append(time.perf_counter() - t)
        t = time.perf_counter(); _, I = index.search(queries[i:i + 1], K); fss[r].append(time.perf_counter() - t)
        top = e['matches'][0]['subject']
        agree += a['matches'][0]['subject'] == top
        agree_faiss += subjects[I[0][0]] == top
        total += 1

ms = lambda v: round(1e3 * statistics.median(v), 2)
status = dict(l.split(':', 1) for l in open(f'/proc/{pid}/status') if ':' in l)
kb = lambda key: int(status[key].split()[0])
n, d = xb.shape
out = {
    'samples': n, 'dim': d, 'queries': Q, 'rounds': ROUNDS, 'k': K,
    'exact_ms_rounds': [ms(x) for x in exact],
    'int8_rerank_ms_rounds': [ms(x) for x in approx],
    'faiss_flat_l2_ms_rounds': [ms(x) for x in fss],
    'exact_ms': ms(sum(exact, [])), 'int8_rerank_ms': ms(sum(approx, [])),
    'faiss_flat_l2_ms': ms(sum(fss, [])),
    'top1_agree_int8_vs_exact': round(agree / total, 4),
    'top1_agree_faiss_vs_exact': round(agree_faiss / total, 4),
    'rss_mb': round(kb('VmRSS') / 1024, 1), 'peak_rss_mb': round(kb('VmHWM') / 1024, 1),
    'raw_f32_mb': round(n * d * 4 / 2**20, 1), 'int8_copy_mb': round(n * d / 2**20, 1),
    'faiss_load_s': round(load_s, 1),
}
out['exact_over_faiss'] = round(out['exact_ms'] / out['faiss_flat_l2_ms'], 3)
out['int8_over_faiss'] = round(out['int8_rerank_ms'] / out['faiss_flat_l2_ms'], 3)
out['rss_over_raw_plus_int8'] = round(out['rss_mb'] / (out['raw_f32_mb'] + out['int8_copy_mb']), 3)
print(json.dumps(out))
