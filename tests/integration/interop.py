#!/usr/bin/python3
"""Interop: a siamesed model file is plain safetensors that numpy alone can read.

Runs interop_dump to write a model and siamesed's embedding of a 28x28 PGM,
then reads the file with nothing but the standard library and numpy (8-byte
little-endian header length, JSON header, raw little-endian F32 tensors),
recomputes the embedding from the layer list in the metadata exactly as the
equivalent PyTorch nn.Sequential would (tensors "N.weight" in PyTorch's
shapes, flatten in C,H,W order; input = pixels / 255) and checks it matches
within 1e-4: for the MLP, the cnn preset and a strided, padded CNN with 1x1
convs. Exit status 0 on success, 1 on mismatch.

usage: interop.py INTEROP_DUMP IMAGE.pgm
"""
import json, os, re, struct, subprocess, sys, tempfile
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


def conv2d(x, w, b, stride, pad):
    """x (C,H,W), w (OC,C,K,K) -> (OC,OH,OW), as torch.nn.Conv2d."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    oc, c, k, _ = w.shape
    oh, ow = (x.shape[1] - k) // stride + 1, (x.shape[2] - k) // stride + 1
    out = np.zeros((oc, oh, ow))
    for i in range(k):
        for j in range(k):
            patch = x[:, i:i + stride * oh:stride, j:j + stride * ow:stride]  # (C,OH,OW)
            out += np.einsum('oc,chw->ohw', w[:, :, i, j], patch)
    return out + b[:, None, None]


def maxpool(x, k):
    c, h, w = x.shape
    h, w = h // k, w // k
    return x[:, :h * k, :w * k].reshape(c, h, k, w, k).max(axis=(2, 4))


def forward(arch, tensors, x):
    """The nn.Sequential of a layer list on one image x (C,H,W), in float64."""
    layers, index = arch.split(','), 0
    flat = not any(t.startswith(('conv', 'pool')) for t in layers)
    x = x.reshape(-1) if flat else x
    for t in layers:
        if t.startswith('fc') and not flat:
            x, flat = x.reshape(-1), True
            index += 1  # nn.Flatten
        if t.startswith('conv'):
            m = re.fullmatch(r'conv(\d+)k(\d+)(?:s(\d+))?(?:p(\d+))?', t)
            w, b = tensors[f'{index}.weight'], tensors[f'{index}.bias']
            x = conv2d(x, w.astype(np.float64), b, int(m.group(3) or 1), int(m.group(4) or 0))
        elif t.startswith('pool'):
            x = maxpool(x, int(t[4:]))
        elif t.startswith('fc'):
            w, b = tensors[f'{index}.weight'], tensors[f'{index}.bias']
            assert w.shape == (int(t[2:]), x.shape[0]), (t, w.shape)
            x = x @ w.T.astype(np.float64) + b
        elif t == 'relu':
            x = np.maximum(x, 0.0)
        else:
            assert t.startswith('drop'), t  # inference: the identity
        index += 1
    return x


def check(dump, image, arch):
    with tempfile.TemporaryDirectory() as tmp:
        model, emb_path = os.path.join(tmp, 'm.safetensors'), os.path.join(tmp, 'e.txt')
        subprocess.run([dump, model, image, emb_path] + ([arch] if arch else []), check=True)
        meta, tensors = read_safetensors(model)
        theirs = np.loadtxt(emb_path, dtype=np.float64)
    assert meta['format'] == 'siamesed' and meta['format_version'] == '2', meta
    assert meta['input_height'] == '28' and meta['input_channels'] == '1', meta
    x = read_pgm(image).astype(np.float64)[None] / 255.0  # (C,H,W) with C = 1
    ours = forward(meta['arch'], tensors, x)
    err = float(np.max(np.abs(ours - theirs)))
    print(f'interop: {meta["arch"]}: {len(ours)}-d embedding, max |numpy - siamesed| = {err:.3g}, '
          f'{int((ours > 0).sum())} positive, fingerprint {meta["fingerprint"][:16]}')
    if ours.shape != theirs.shape or err > 1e-4 or not (ours > 0).any():
        print('interop: MISMATCH', file=sys.stderr)
        return 1
    return 0


def main():
    dump, image = sys.argv[1], sys.argv[2]
    rc = check(dump, image, None)
    rc |= check(dump, image, 'cnn')
    rc |= check(dump, image, 'conv6k3s2p1,relu,pool2,conv4k1,relu,fc20,relu,drop0.5,fc9')
    return rc


if __name__ == '__main__':
    sys.exit(main())
