#!/usr/bin/python3
"""Enrolls N samples (Fashion-MNIST training images, sent as base64 PGM in
application/json) into a running siamesed: subjects of `per` samples each,
one request per subject, from 16 concurrent clients (each request answered
201 only once its transaction is durable). Prints the time taken, requests/s
and samples/s.

usage: enroll_many.py URL N [per=10]
"""
import base64, gzip, json, sys, time, urllib.request
from concurrent.futures import ThreadPoolExecutor
import numpy as np

url, n = sys.argv[1], int(sys.argv[2])
per = int(sys.argv[3]) if len(sys.argv) > 3 else 10
raw = gzip.open('/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz').read()
imgs = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)
pgm = [base64.b64encode(b'P5 28 28 255\n' + imgs[i].tobytes()).decode() for i in range(len(imgs))]


def enroll(s):
    first = s * per
    body = json.dumps({'subject': f's{s:06d}',
                       'image': [pgm[(first + j) % len(pgm)] for j in range(min(per, n - first))]})
    req = urllib.request.Request(url + '/enroll', body.encode(), {'Content-Type': 'application/json'})
    with urllib.request.urlopen(req) as r:
        assert r.status == 201, r.status


t0 = time.time()
subjects = (n + per - 1) // per
with ThreadPoolExecutor(16) as pool:
    list(pool.map(enroll, range(subjects)))
dt = time.time() - t0
print(json.dumps({'enrolled': n, 'subjects': subjects, 'seconds': round(dt, 2),
                  'enrolls_per_s': round(subjects / dt, 1), 'samples_per_s': round(n / dt, 1)}))
