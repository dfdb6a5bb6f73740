#!/usr/bin/python3
"""PyTorch import: a network built and saved by PyTorch, imported with
`siamesed --import` and served, embeds an image as PyTorch does (within 1e-4).

Builds the shared peer's Cnn (tests/../peers/torch_siamese.py: f = conv5x5x32,
ReLU, pool2, conv5x5x64, ReLU, pool2; g = fc256, ReLU, dropout, fc128) with
PyTorch's default (random, non-zero bias) initialisation and a few RMSprop
steps, writes its state_dict as safetensors the way the peer's --save does,
imports it as `--arch cnn`, serves it and POSTs an image to /embed. Also checks
that mismatched imports fail with one line. Skips (77) without python3-torch.

usage: torch_import.py SIAMESED IMAGE.pgm
"""
import json, os, socket, struct, subprocess, sys, tempfile, time, urllib.request
import numpy as np

try:
    import torch, torch.nn as nn
except ImportError:
    print('torch_import: python3-torch is not installed; skipping')
    sys.exit(77)


class Cnn(nn.Module):
    """The peer's CNN, as torch_siamese.py defines it (28x28x1)."""
    def __init__(self):
        super().__init__()
        self.f = nn.Sequential(nn.Conv2d(1, 32, 5), nn.ReLU(), nn.MaxPool2d(2),
                               nn.Conv2d(32, 64, 5), nn.ReLU(), nn.MaxPool2d(2))
        self.g = nn.Sequential(nn.Linear(64 * 4 * 4, 256), nn.ReLU(), nn.Dropout(0.1),
                               nn.Linear(256, 128))

    def forward(self, x):
        return self.g(self.f(x.view(-1, 1, 28, 28)).flatten(1))


def save_safetensors(path, model, meta):
    """As the peer writes it: u64 LE header length, JSON header, raw tensors."""
    hdr, blobs, off = {'__metadata__': meta}, [], 0
    for k, v in model.state_dict().items():
        b = v.detach().cpu().contiguous().numpy().astype('<f4').tobytes()
        hdr[k] = {'dtype': 'F32', 'shape': list(v.shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(hdr).encode()
    h += b' ' * (-len(h) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))


def read_pgm(path):
    data = open(path, 'rb').read()
    fields = [t for line in data.split(b'\n')[:4] if not line.startswith(b'#') for t in line.split()]
    assert fields[0] == b'P5' and fields[3] == b'255', fields
    w, h = int(fields[1]), int(fields[2])
    return np.frombuffer(data[-w * h:], dtype=np.uint8).reshape(h, w)


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def post_embed(port, image):
    boundary = 'siamesedtestboundary'
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="x.pgm"\r\n'
            f'Content-Type: application/octet-stream\r\n\r\n').encode() + image + \
        f'\r\n--{boundary}--\r\n'.encode()
    req = urllib.request.Request(f'http://127.0.0.1:{port}/embed', data=body, method='POST',
                                 headers={'Content-Type': f'multipart/form-data; boundary={boundary}'})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def serve_and_embed(siamesed, model, tmp, image):
    port = free_port()
    env = dict(os.environ, SIAMESED_LOG_LEVEL='warn')
    d = subprocess.Popen([siamesed, '--model', model, '--db', os.path.join(tmp, 'db.sqlite'),
                          '--listen', f'127.0.0.1:{port}', '--threads', '1'], env=env)
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=1).read()
                break
            except OSError:
                if d.poll() is not None:
                    raise SystemExit('torch_import: the daemon exited')
                time.sleep(0.05)
        info = json.loads(urllib.request.urlopen(f'http://127.0.0.1:{port}/model').read())
        return info, post_embed(port, image)
    finally:
        d.terminate()
        d.wait(10)


def colour_case(siamesed, tmp):
    """A 3-channel network on a 16x20 RGB picture: colour decoding, the HWC
    input and the conv weights' layout, served."""
    torch.manual_seed(11)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(6, 5, 1), nn.ReLU(), nn.Flatten(), nn.Linear(5 * 4 * 5, 7))
    net.eval()
    h, w = 16, 20
    rgb = (np.arange(h * w * 3, dtype=np.int64) * 7919 % 251).astype(np.uint8).reshape(h, w, 3)
    ppm = f'P6 {w} {h} 255\n'.encode() + rgb.tobytes()
    with torch.no_grad():
        x = torch.from_numpy(rgb.astype(np.float32) / 255).permute(2, 0, 1)[None]
        want = net(x).numpy()[0]
    torch_file, model = os.path.join(tmp, 'rgb.safetensors'), os.path.join(tmp, 'rgb-m.safetensors')
    save_safetensors(torch_file, net, {})
    r = subprocess.run([siamesed, '--import', torch_file, '--arch',
                        'conv6k3s2p1,relu,pool2,conv5k1,relu,fc7', '--input', f'{h}x{w}x3',
                        '--out', model], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    info, got = serve_and_embed(siamesed, model, tmp, ppm)
    assert info['input']['channels'] == 3 and info['input']['preprocess'].startswith('rgb'), info
    emb = np.array(got['embeddings'][0])
    err = float(np.max(np.abs(emb - want)))
    print(f'torch_import: colour {h}x{w}x3: {len(emb)}-d embedding, max |pytorch - siamesed| = {err:.3g}')
    return 0 if emb.shape == want.shape and err <= 1e-4 else 1


def main():
    siamesed, image_path = sys.argv[1], sys.argv[2]
    torch.manual_seed(7)
    torch.set_num_threads(1)
    net = Cnn()
    opt = torch.optim.RMSprop(net.parameters(), lr=1e-3, alpha=0.9, eps=1e-7)
    for _ in range(3):  # a few steps, so the weights are not just the initialisation
        a, b = torch.rand(8, 784), torch.rand(8, 784)
        loss = ((net(a) - net(b)) ** 2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    pixels = read_pgm(image_path)
    with torch.no_grad():
        want = net(torch.from_numpy(pixels.astype(np.float32).reshape(1, 784) / 255)).numpy()[0]
    rc = 0
    with tempfile.TemporaryDirectory() as tmp:
        torch_file, model = os.path.join(tmp, 'torch.safetensors'), os.path.join(tmp, 'm.safetensors')
        save_safetensors(torch_file, net, {'source': 'torch_import.py', 'arch': 'cnn'})
        r = subprocess.run([siamesed, '--import', torch_file, '--arch', 'cnn', '--out', model,
                            '--threshold', '0.7'], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        info, got = serve_and_embed(siamesed, model, tmp, open(image_path, 'rb').read())
        assert info['arch'] == 'conv32k5,relu,pool2,conv64k5,relu,pool2,fc256,relu,drop0.1,fc128', info
        assert info['architecture'] == 'cnn' and info['input']['channels'] == 1, info
        assert abs(info['threshold'] - 0.7) < 1e-6, info
        emb = np.array(got['embeddings'][0])
        err = float(np.max(np.abs(emb - want)))
        print(f'torch_import: {len(emb)}-d embedding, max |pytorch - siamesed| = {err:.3g}')
        if emb.shape != want.shape or err > 1e-4:
            print('torch_import: MISMATCH', file=sys.stderr)
            rc = 1
        # Mismatches are refused with one line and a non-zero exit.
        for arch, says in (('conv32k5,relu,pool2,conv64k3,relu,pool2,fc256,relu,drop0.1,fc128',
                            'wrong shape'),
                           ('mlp', 'tensors'),
                           ('conv32k5,tanh,fc2', "layer 2 'tanh'")):
            r = subprocess.run([siamesed, '--import', torch_file, '--arch', arch, '--out',
                                os.path.join(tmp, 'bad.safetensors')], capture_output=True, text=True)
            lines = r.stderr.strip().splitlines()
            if r.returncode == 0 or len(lines) != 1 or says not in lines[0] or \
                    os.path.exists(os.path.join(tmp, 'bad.safetensors')):
                print(f'torch_import: --arch {arch}: rc {r.returncode}, {r.stderr!r}', file=sys.stderr)
                rc = 1
        rc |= colour_case(siamesed, tmp)
    return rc


if __name__ == '__main__':
    sys.exit(main())
