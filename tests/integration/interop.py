#!/usr/bin/python3
"""Interop: a siamesed model file is plain safetensors that numpy alone can read.

Runs interop_dump to write a model and siamesed's embedding of a 28x28 PGM,
then reads the file with nothing but the standard library and numpy (8-byte
little-endian header length, JSON header, raw little-endian F32 tensors),
recomputes the embedding (dense + ReLU per layer, input = pixels / 255) and
checks it matches within 1e-4. Exit status 0 on success, 1 on mismatch.

usage: interop.py INTEROP_DUMP IMAGE.pgm
"""
import json, os, struct, subprocess, sys, tempfile
import numpy as np


def read_safetensors(path):
    with open(path, 'rb') as f:
        data = f.read()
    (n,) = struct.unpack('<Q', data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop('__metadata__', {})
    base = 8 + n
    tensors = {}
    for name, t in header.items():
        assert t['dtype'] == 'F32', t
        begin, end = t['data_offsets']
        tensors[name] = np.frombuffer(data[base + begin:base + end], dtype='<f4').reshape(t['shape'])
    return meta, tensors


def read_pgm(path):
    with open(path, 'rb') as f:
        data = f.read()
    fields, pos = [], 0
    while len(fields) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b'#':
            pos = data.index(b'\n', pos)
            continue
        start = pos
        while not data[pos:pos + 1].isspace():
            pos += 1
        fields.append(data[start:pos])
    assert fields[0] == b'P5' and int(fields[3]) == 255, fields
    w, h = int(fields[1]), int(fields[2])
    return np.frombuffer(data[pos + 1:pos + 1 + w * h], dtype=np.uint8).reshape(h, w)


def main():
    dump, image = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        model, emb_path = os.path.join(tmp, 'm.safetensors'), os.path.join(tmp, 'e.txt')
        subprocess.run([dump, model, image, emb_path], check=True)
        meta, tensors = read_safetensors(model)
        theirs = np.loadtxt(emb_path, dtype=np.float64)
    layers = [int(v) for v in meta['layers'].split(',')]
    assert meta['format'] == 'siamesed' and meta['input_height'] == '28', meta
    x = read_pgm(image).astype(np.float64).reshape(1, -1) / 255.0
    assert x.shape[1] == layers[0]
    for l in range(len(layers) - 1):
        w, b = tensors[f'dense.{l}.weight'], tensors[f'dense.{l}.bias']
        assert w.shape == (layers[l + 1], layers[l]) and b.shape == (layers[l + 1],)
        x = np.maximum(x @ w.T.astype(np.float64) + b, 0.0)
    ours = x[0]
    err = float(np.max(np.abs(ours - theirs)))
    print(f'interop: {len(ours)}-d embedding, max |numpy - siamesed| = {err:.3g}, '
          f'{int((ours > 0).sum())} active units, fingerprint {meta["fingerprint"][:16]}')
    if ours.shape != theirs.shape or err > 1e-4 or not (ours > 0).any():
        print('interop: MISMATCH', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
