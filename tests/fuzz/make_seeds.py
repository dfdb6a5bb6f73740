#!/usr/bin/env python3
"""make_seeds.py — writes the synthetic part of the fuzz seed corpora.

The corpora in tests/fuzz/corpus/<target>/ start from copies of the module
fixtures (tests/data/img, safetensors, idx, request, config/siamesed.conf);
this script adds the hostile cases those lack, built by hand so that each one
is exactly the shape it names, plus request seeds in every input mode of
fuzz_request.c (first byte % 4 picks the mode). It only writes files named
below (prefix "gen-"), is deterministic, and keeps each file small.

    python3 tests/fuzz/make_seeds.py            # (re)writes the gen-* seeds
"""
import gzip
import hashlib
import json
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
CORPUS = os.path.join(HERE, "corpus")
MAX_SEED = 64 * 1024


def write(target, name, data):
    assert len(data) < MAX_SEED, (name, len(data))
    path = os.path.join(CORPUS, target, "gen-" + name)
    with open(path, "wb") as f:
        f.write(data)


# ---- images -----------------------------------------------------------------

def png_chunk(kind, payload):
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png(w, h, depth=8, ctype=0, rows=None, extra=b"", interlace=0):
    ihdr = struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, interlace)
    if rows is None:
        bpp = {0: 1, 2: 3, 4: 2, 6: 4}[ctype] * depth // 8
        rows = b"".join(b"\0" + bytes((x * 7 + y) & 255 for x in range(w * bpp)) for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra +
            png_chunk(b"IDAT", zlib.compress(rows, 9)) + png_chunk(b"IEND", b""))


def jpeg_segments(data):
    """Splits a JPEG into (marker, segment bytes) up to the first SOS, and the rest."""
    i, segs = 2, []
    while i < len(data):
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        segs.append((marker, data[i:i + 2 + length]))
        if marker == 0xDA:
            return segs, data[i + 2 + length:]
        i += 2 + length
    raise ValueError("no SOS")


def gen_img():
    # Many small tEXt chunks before IDAT, and one iTXt whose text inflates 1000x.
    text = b"".join(png_chunk(b"tEXt", b"Comment\0" + b"x" * 8) for _ in range(1500))
    write("img", "png-text-chunk-flood.png", png(8, 8, extra=text))
    itxt = png_chunk(b"iTXt", b"XML:com.adobe.xmp\0\1\0\0\0" + zlib.compress(b"A" * 4000000, 9))
    write("img", "png-itxt-bomb.png", png(8, 8, extra=itxt))
    # IDAT that inflates far past what the declared 16x16 gray image needs.
    bomb = zlib.compress(b"\0" * 8000000, 9)
    ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 0, 0, 0, 0))
    write("img", "png-idat-bomb.png", b"\x89PNG\r\n\x1a\n" + ihdr + png_chunk(b"IDAT", bomb) +
          png_chunk(b"IEND", b""))
    # Legal shapes the fixtures lack: 1-bit gray, 16-bit gray+alpha, 2048x1 and 1x2048.
    write("img", "png-gray1.png", png(13, 5, depth=1, ctype=0,
                                       rows=b"".join(b"\0\xa5\x5a" for _ in range(5))))
    write("img", "png-ga16.png", png(5, 4, depth=16, ctype=4))
    write("img", "png-wide-2048x1.png", png(2048, 1))
    write("img", "png-tall-1x2048.png", png(1, 2048))
    # Declared dimensions at and past the fuzzer's 2048x2048 / 4 Mpx limits.
    ok = png(8, 8)
    write("img", "png-ihdr-2049x1.png", ok[:16] + struct.pack(">II", 2049, 1) + ok[24:])
    write("img", "png-ihdr-zero.png", ok[:16] + struct.pack(">II", 0, 8) + ok[24:])
    write("img", "png-no-iend.png", ok[:-12])
    # The fast PNG path: every filter type, colour, three IDATs (one empty),
    # ancillary chunks around them; and an RGBA file cut into IDATs of 7 bytes.
    def filtered(w, h, bpp):
        return b"".join(bytes([y % 5]) + bytes((x * 13 + y * 7) & 255 for x in range(w * bpp))
                        for y in range(h))
    z = zlib.compress(filtered(9, 10, 3), 9)
    idats = png_chunk(b"IDAT", z[:20]) + png_chunk(b"IDAT", b"") + png_chunk(b"IDAT", z[20:])
    ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", 9, 10, 8, 2, 0, 0, 0))
    write("img", "png-fast-rgb-filters-idats.png", b"\x89PNG\r\n\x1a\n" + ihdr +
          png_chunk(b"tEXt", b"a\0b") + idats + png_chunk(b"tIME", b"\0" * 7) +
          png_chunk(b"IEND", b""))
    z = zlib.compress(filtered(6, 5, 4), 9)
    ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", 6, 5, 8, 6, 0, 0, 0))
    write("img", "png-fast-rgba-small-idats.png", b"\x89PNG\r\n\x1a\n" + ihdr +
          b"".join(png_chunk(b"IDAT", z[i:i + 7]) for i in range(0, len(z), 7)) +
          png_chunk(b"IEND", b""))
    write("img", "png-fast-ga-filters.png", png(7, 6, ctype=4, rows=filtered(7, 6, 2)))
    # PGM/PPM: comments everywhere, 16-bit, maxval 1, sample over maxval, huge header numbers.
    write("img", "pgm-comments.pgm", b"P5 #c\n3#c\n 2 #c\n255\n" + bytes(range(6)))
    write("img", "ppm-16bit-max.ppm", b"P6\n2 1\n65535\n" + b"\xff\xff" * 6)
    write("img", "pgm-maxval1.pgm", b"P5\n4 1\n1\n\0\1\1\0")
    write("img", "pgm-over-maxval.pgm", b"P5\n2 1\n10\n\5\11")
    write("img", "pgm-huge-numbers.pgm", b"P5\n99999999999999999999 1\n255\n\0")
    write("img", "ppm-trailing.ppm", b"P6\n1 1\n255\n\1\2\3\4")
    # Progressive JPEG with hundreds of scans: the first (DC) scan of a real
    # progressive file repeated, so the header is sane and only the scan count is
    # hostile (libjpeg merely warns about a repeated scan).
    prog = open(os.path.join(ROOT, "tests", "data", "img", "progressive.jpg"), "rb").read()
    sos_at = [i for i in range(len(prog) - 1) if prog[i] == 0xFF and prog[i + 1] == 0xDA]
    nxt = [i for i in range(sos_at[0] + 2, len(prog) - 1)
           if prog[i] == 0xFF and prog[i + 1] not in (0x00,) and not 0xD0 <= prog[i + 1] <= 0xD7]
    first = prog[sos_at[0]:nxt[0]]
    many = prog[:nxt[0]] + first * 299 + b"\xff\xd9"
    write("img", "jpeg-hundreds-of-scans.jpg", many)
    base = open(os.path.join(ROOT, "tests", "data", "img", "baseline.jpg"), "rb").read()
    segs, _ = jpeg_segments(base)
    write("img", "jpeg-headers-only.jpg", b"\xff\xd8" + b"".join(s for _, s in segs))
    write("img", "jpeg-cut-in-half.jpg", base[:len(base) // 2])
    # A SOF claiming 2048x2048 (at the limit) over a tiny baseline scan.
    out = bytearray(base)
    for m, s in segs:
        if m in (0xC0, 0xC2):
            at = base.index(s) + 5
            out[at:at + 4] = struct.pack(">HH", 2048, 2048)
    write("img", "jpeg-sof-2048-tiny-data.jpg", bytes(out))


# ---- request bodies ---------------------------------------------------------

B64_PNG = None


def req(mode, header, body):
    """A fuzz_request.c input: mode byte, then (modes 1 and 3) a header line."""
    head = bytes([mode])
    if mode in (1, 3):
        head += header + b"\n"
    return head + body


def mp_part(boundary, name, data, filename=None, ctype=None, nl=b"\r\n"):
    disp = b'Content-Disposition: form-data; name="' + name + b'"'
    if filename is not None:
        disp += b'; filename="' + filename + b'"'
    head = b"--" + boundary + nl + disp + nl
    if ctype:
        head += b"Content-Type: " + ctype + nl
    return head + nl + data + nl


def gen_request():
    img = png(4, 4)
    b = b"XyZzy"
    body = (mp_part(b, b"a", img, b"a.png", b"image/png") + mp_part(b, b"b", img, b"b.png") +
            mp_part(b, b"threshold", b"0.5") + b"--" + b + b"--\r\n")
    write("request", "mp-fixed-verify.req", req(0, None, body))
    enrol = b"preamble\r\n" + b"".join(mp_part(b, b"image", img) for _ in range(3))
    enrol += mp_part(b, b"subject", b"alice") + mp_part(b, b"metadata", b'{"k":1}')
    write("request", "mp-fixed-enrol.req", req(0, None, enrol + b"--" + b + b"--"))
    write("request", "mp-fixed-empty-form.req", req(0, None, b"--XyZzy--\r\n"))
    write("request", "mp-fixed-truncated.req", req(0, None, body[:len(body) * 2 // 3]))
    lf = (mp_part(b, b"image", img, nl=b"\n") + mp_part(b, b"k", b"3", nl=b"\n") +
          b"--" + b + b"--\n")
    write("request", "mp-fixed-lf.req", req(0, None, lf))
    many = b"".join(mp_part(b, b"image", b"x") for _ in range(300)) + b"--" + b + b"--"
    write("request", "mp-fixed-too-many-parts.req", req(0, None, many))
    hdrs = (b"--XyZzy\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(20)) +
            b'Content-Disposition: form-data; name="k"\r\n\r\n1\r\n--XyZzy--')
    write("request", "mp-fixed-many-headers.req", req(0, None, hdrs))
    long_line = (b'--XyZzy\r\nContent-Disposition: form-data; name="k"; x="' + b"y" * 1100 +
                 b'"\r\n\r\n1\r\n--XyZzy--')
    write("request", "mp-fixed-long-header.req", req(0, None, long_line))
    esc = (b'--XyZzy\r\nContent-Disposition: form-data; name="s"; filename="a\\"b\\\\c"\r\n\r\n'
           b"\xc3\xa9t\xc3\xa9\r\n--XyZzy--")
    write("request", "mp-fixed-escaped-filename.req", req(0, None, esc))
    bad_utf8 = mp_part(b, b"subject", b"\xed\xa0\x80") + b"--XyZzy--"
    write("request", "mp-fixed-bad-utf8.req", req(0, None, bad_utf8))
    # Boundary from the input: quoted, with bchars, 70 long, with a NUL in it.
    qb = b"'()+_,-./:=? x"
    body_q = mp_part(qb, b"image", img) + b"--" + qb + b"--"
    write("request", "mp-boundary-quoted.req", req(1, b'"' + qb + b'"', body_q))
    lb = b"b" * 70
    write("request", "mp-boundary-70.req", req(1, lb, mp_part(lb, b"k", b"1") + b"--" + lb + b"--"))
    nb = b"ab\0cd"
    write("request", "mp-boundary-nul.req", req(1, nb, mp_part(nb, b"k", b"1") + b"--" + nb + b"--"))
    write("request", "mp-boundary-nul-prefix.req",
          req(1, nb, mp_part(b"ab", b"k", b"1") + b"--ab--"))
    write("request", "mp-boundary-params.req",
          req(1, b'XyZzy; charset=utf-8; boundary=dup', body))
    # JSON bodies in mode 2 (depth 32) and with their header in mode 3 (depth 1000).
    global B64_PNG
    import base64
    B64_PNG = base64.b64encode(img)
    doc = (b'{"a":"' + B64_PNG + b'","b":"data:image/png;base64,' + base64.urlsafe_b64encode(img)
           .rstrip(b"=") + b'","threshold":0.5,"subject":"al\\u00e9","metadata":{"x":[1,2,{"y":null}]},'
           b'"k":3,"keep":true,"none":null}')
    write("request", "json-verify.req", req(2, None, doc))
    enrol = b'{"subject":"bob","image":["' + b'","'.join([B64_PNG] * 3) + b'"],"image2":[]}'
    write("request", "json-enrol-array.req", req(2, None, enrol))
    write("request", "json-ct-charset.req", req(3, b"application/json; charset=\"UTF-8\"", doc))
    write("request", "json-ct-latin1.req", req(3, b"application/json; charset=latin1", doc))
    write("request", "json-deep-33.req", req(2, None, b'{"x":' + b"[" * 32 + b"]" * 32 + b"}"))
    write("request", "json-deep-1000.req",
          req(3, b"application/json", b'{"x":' + b"[" * 999 + b"]" * 999 + b"}"))
    write("request", "json-deep-1001-objects.req",
          req(3, b"application/json", b'{"x":' + b'{"y":' * 1000 + b"1" + b"}" * 1000 + b"}"))
    write("request", "json-dup-nested.req", req(2, None, b'{"m":{"k":1,"k":2}}'))
    write("request", "json-u0000.req", req(2, None, b'{"subject":"a\\u0000b"}'))
    write("request", "json-bad-b64.req", req(2, None, b'{"image":"abc$"}'))
    write("request", "json-b64-len1.req", req(2, None, b'{"image":"abcde"}'))
    write("request", "json-data-url-no-base64.req", req(2, None, b'{"a":"data:image/png,AAAA"}'))
    write("request", "json-huge-number.req", req(2, None, b'{"k":1e999,"t":-1e400}'))
    write("request", "json-many-values.req",
          req(2, None, b'{"x":[' + b",".join(b"0" for _ in range(1400)) + b"]}"))
    write("request", "json-trailing.req", req(2, None, b'{"k":1} {"k":2}'))
    write("request", "json-surrogates.req", req(2, None, b'{"s":"\\ud800\\udc00\\ud800"}'))
    write("request", "ct-junk.req", req(3, b"text/plain", b"hello"))
    write("request", "ct-multipart-mixed.req", req(3, b"multipart/mixed; boundary=XyZzy", body))
    write("request", "ct-two-boundaries.req",
          req(3, b"multipart/form-data; boundary=a; boundary=b", b"--a--"))
    write("request", "query-ints.req", req(1, b"-9223372036854775808", b""))
    for src in sorted(os.listdir(os.path.join(ROOT, "tests", "data", "request"))):
        if not src.endswith(".req"):
            continue
        raw = open(os.path.join(ROOT, "tests", "data", "request", src), "rb").read()
        header, _, rest = raw.partition(b"\n")
        write("request", "mode3-" + src, req(3, header, rest))
        if header.startswith(b"application/json") and len(raw) < MAX_SEED - 2:
            write("request", "mode2-" + src, req(2, None, rest))


# ---- safetensors ------------------------------------------------------------

MODEL_PREPROCESS = "gray-rec601,alpha-over-black,resize-area-or-bilinear,scale-1/255"


def safetensors(tensors, meta=None, fingerprint=True, header=None, pad=True):
    """tensors: list of (name, shape, float list)."""
    data, entries, off = b"", {}, 0
    for name, shape, vals in tensors:
        blob = struct.pack("<%df" % len(vals), *vals)
        entries[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(blob)]}
        data += blob
        off += len(blob)
    md = dict(meta or {})
    if fingerprint:
        md["fingerprint"] = hashlib.sha256(data).hexdigest()
    if md:
        entries = {"__metadata__": md, **entries}
    text = header if header is not None else json.dumps(entries, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def tiny_model_tensors(dims=(4, 3, 2)):
    out = []
    for layer in range(len(dims) - 1):
        i, o = dims[layer], dims[layer + 1]
        out.append(("dense.%d.weight" % layer, [o, i], [0.01 * (k + 1) for k in range(o * i)]))
        out.append(("dense.%d.bias" % layer, [o], [0.0] * o))
    return out


def tiny_model_meta(**over):
    meta = {"format": "siamesed", "format_version": "1", "architecture": "mlp",
            "layers": "4,3,2", "activation": "relu", "dropout": "0", "input_height": "2",
            "input_width": "2", "input_channels": "1", "preprocess": MODEL_PREPROCESS,
            "embedding_size": "2", "margin": "1", "threshold": "0.5",
            "training": '{"dataset":"seed","epochs":1}'}
    meta.update(over)
    return meta


MODEL_PREPROCESS_RGB = "rgb-hwc,alpha-over-black,resize-area-or-bilinear,scale-1/255"


def v2_meta(spec, h, w, c, emb, **over):
    meta = {"format": "siamesed", "format_version": "2", "architecture": "custom", "arch": spec,
            "input_height": str(h), "input_width": str(w), "input_channels": str(c),
            "input_layout": "hwc", "preprocess": MODEL_PREPROCESS_RGB if c == 3 else MODEL_PREPROCESS,
            "embedding_size": str(emb), "margin": "1", "threshold": "0.5", "training": "{}"}
    meta.update(over)
    return meta


def v2_conv_tensors(c=1):
    """The tensors of conv2k3,relu,pool3,fc2 on 5x5xc: conv to 3x3x2, pool to
    1x1x2, flatten, fc (nn.Sequential indices 0 and 4)."""
    w = [0.01 * (k % 7 - 3) for k in range(2 * c * 9)]
    return [("0.weight", [2, c, 3, 3], w), ("0.bias", [2], [0.1, -0.1]),
            ("4.weight", [2, 2], [0.5, -0.5, 0.25, 1.0]), ("4.bias", [2], [0.0, 0.1])]


def gen_safetensors_v2():
    """Version-2 files: a layer list in the metadata, PyTorch names, colour."""
    arch = "conv2k3,relu,pool3,fc2"
    write("safetensors", "model-v2-conv.st", safetensors(v2_conv_tensors(1), v2_meta(arch, 5, 5, 1, 2)))
    write("safetensors", "model-v2-rgb.st", safetensors(v2_conv_tensors(3), v2_meta(arch, 5, 5, 3, 2)))
    write("safetensors", "model-v2-strided.st",
          safetensors([("0.weight", [2, 1, 3, 3], [0.1] * 18), ("0.bias", [2], [0, 0]),
                       ("3.weight", [3, 18], [0.01] * 54), ("3.bias", [3], [0, 0, 0])],
                      v2_meta("conv2k3s2p1,relu,fc3", 5, 6, 1, 3)))
    for name, over in (("bad-arch", {"arch": "conv2k3,tanh,fc2"}),
                       ("arch-does-not-fit", {"arch": "conv2k9,fc2"}),
                       ("arch-conv-after-fc", {"arch": "fc2,conv2k1"}),
                       ("arch-no-fc", {"arch": "conv2k3"}),
                       ("arch-long", {"arch": ",".join(["relu"] * 40) + ",fc2"}),
                       ("channels-2", {"input_channels": "2"}),
                       ("layout-chw", {"input_layout": "chw"}),
                       ("preprocess-gray-for-rgb", {"input_channels": "3"}),
                       ("version-3", {"format_version": "3"})):
        write("safetensors", "model-v2-%s.st" % name,
              safetensors(v2_conv_tensors(1), v2_meta(arch, 5, 5, 1, 2, **over)))
    wrong = v2_conv_tensors(1)
    wrong[0] = ("0.weight", [2, 1, 9], wrong[0][2])
    write("safetensors", "model-v2-wrong-shape.st", safetensors(wrong, v2_meta(arch, 5, 5, 1, 2)))


def gen_safetensors_ops():
    """Version-2 files with an operating-point table (docs/model-format.md)."""
    arch = "conv2k3,relu,pool3,fc2"
    good = ('{"source":"validation","positives":3,"negatives":4,"threshold":[0,0.5,1.25],'
            '"false_accepts":[0,1,4],"false_rejects":[3,1,0]}')
    bad = {"not-monotone": good.replace("[0,1,4]", "[0,4,1]"),
           "counts-over": good.replace("[0,1,4]", "[0,1,5]"),
           "thresholds-down": good.replace("[0,0.5,1.25]", "[0,1.25,0.5]"),
           "short-arrays": good.replace("[3,1,0]", "[3,1]"),
           "not-json": good[:-7]}
    write("safetensors", "model-v2-ops.st",
          safetensors(v2_conv_tensors(1), v2_meta(arch, 5, 5, 1, 2, operating_points=good)))
    for name, ops in bad.items():
        write("safetensors", "model-v2-ops-%s.st" % name,
              safetensors(v2_conv_tensors(1), v2_meta(arch, 5, 5, 1, 2, operating_points=ops)))


def gen_safetensors():
    t = tiny_model_tensors()
    write("safetensors", "model-tiny.st", safetensors(t, tiny_model_meta()))
    write("safetensors", "model-tiny-training-nested.st",
          safetensors(t, tiny_model_meta(training='{"a":' * 40 + "1" + "}" * 40)))
    write("safetensors", "model-bad-layers.st", safetensors(t, tiny_model_meta(layers="4,3,,2")))
    write("safetensors", "model-big-arch-tiny-file.st",
          safetensors(t, tiny_model_meta(layers="65536,4096,4096,4096,4096,4096,4096,4096,2",
                                         input_height="256", input_width="256")))
    nan = [("dense.0.weight", [3, 4], [float("nan")] * 12)] + t[1:]
    write("safetensors", "model-nan-weight.st", safetensors(nan, tiny_model_meta()))
    write("safetensors", "model-embedding-mismatch.st",
          safetensors(t, tiny_model_meta(embedding_size="3")))
    gen_safetensors_v2()
    gen_safetensors_ops()
    write("safetensors", "scalar-and-empty.st",
          safetensors([("s", [], [1.5]), ("e", [0, 7], []), ("f", [2, 0, 3], [])]))
    write("safetensors", "four-dims.st", safetensors([("t", [1, 2, 1, 2], [1, 2, 3, 4])]))
    write("safetensors", "five-dims.st", safetensors([("t", [1, 1, 1, 1, 1], [1])]))
    write("safetensors", "huge-dims.st",
          safetensors([], header=b'{"t":{"dtype":"F32","shape":[2147483647,2147483647,'
                                 b'2147483647,2147483647],"data_offsets":[0,4]}}'))
    write("safetensors", "offset-2p53.st",
          safetensors([], header=b'{"t":{"dtype":"F32","shape":[1],'
                                 b'"data_offsets":[9007199254740992,9007199254740996]}}'))
    write("safetensors", "header-len-huge.st", struct.pack("<Q", 2 ** 63 + 5) + b"{}")
    write("safetensors", "header-len-past-end.st", struct.pack("<Q", 1000) + b"{}      ")
    write("safetensors", "header-deep.st", safetensors([], header=b"[" * 2000 + b"]" * 2000))
    write("safetensors", "header-deep-meta.st",
          safetensors([], header=b'{"__metadata__":{"a":' + b"[" * 900 + b"]" * 900 + b"}}"))
    write("safetensors", "header-dup-tensor.st",
          safetensors([], header=b'{"t":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},'
                                 b'"t":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}'))
    write("safetensors", "header-case-keys.st",
          safetensors([], header=b'{"t":{"DTYPE":"F32","shape":[0],"data_offsets":[0,0]}}'))
    write("safetensors", "header-float-offsets.st",
          safetensors([], header=b'{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4.0000001]}}'))
    write("safetensors", "header-nul.st", struct.pack("<Q", 8) + b"{}\0     ")
    write("safetensors", "header-bad-utf8.st", struct.pack("<Q", 8) + b'{"\xc0\x80":1}')
    write("safetensors", "many-zero-tensors.st",
          safetensors([("z%d" % i, [0], []) for i in range(600)]))
    overlap = (b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
               b'"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}')
    write("safetensors", "overlap.st", safetensors([], header=overlap) + b"\0" * 12)
    write("safetensors", "fingerprint-upper.st",
          safetensors([("t", [1], [2.0])], {"fingerprint": hashlib.sha256(
              struct.pack("<f", 2.0)).hexdigest().upper()}, fingerprint=False))


# ---- IDX --------------------------------------------------------------------

def idx(dims, payload):
    return struct.pack(">BBBB", 0, 0, 8, len(dims)) + b"".join(struct.pack(">I", d) for d in dims) + payload


def gen_idx():
    write("idx", "images-1MiB-declared-empty.idx", idx([16, 256, 256], b""))
    write("idx", "images-over-1MiB.idx", idx([17, 256, 256], b""))
    write("idx", "labels-int-max.idx", idx([0x7FFFFFFF], b""))
    write("idx", "labels-past-int-max.idx", idx([0x80000000], b""))
    write("idx", "images-1x1x1.idx", idx([1, 1, 1], b"\x80"))
    write("idx", "labels-gz.idx", gzip.compress(idx([5], b"\1\2\3\4\5"), mtime=0))
    # Gzip bombs: 1 MiB of payload (the cap) and a declared 1 MiB that inflates further.
    write("idx", "images-gz-1MiB.idx", gzip.compress(idx([16, 256, 256], b"\0" * (1 << 20)), mtime=0))
    write("idx", "images-gz-overlong.idx",
          gzip.compress(idx([1, 4, 4], b"\0" * 4000000), mtime=0))
    two = gzip.compress(idx([2], b"\1"), mtime=0) + gzip.compress(b"\2", mtime=0)
    write("idx", "labels-gz-two-members.idx", two)
    good = gzip.compress(idx([3], b"abc"), mtime=0)
    write("idx", "labels-gz-bad-crc.idx", good[:-8] + b"\0\0\0\0" + good[-4:])
    write("idx", "labels-gz-trailing-junk.idx", good + b"junk")
    write("idx", "gz-magic-only.idx", b"\x1f\x8b")
    write("idx", "empty.idx", b"")


# ---- config -----------------------------------------------------------------

def gen_config():
    c = {
        "all-types.conf": b'listen "[::1]:8080"\nthreads 2\nmax_body 16M\nkeep_images yes\n'
                          b'lr 0.001\noptimizer adam\nhidden 256,128,64\nseed 18446744073709551615\n'
                          b'api_keys "aaaaaaaaaaaaaaaa:read,bbbbbbbbbbbbbbbb:write"\n'
                          b'model "/tmp/m o#del.st" # comment\ntest_data ""\nlog_level debug\n',
        "crlf.conf": b"threads 2\r\nmax_body 1G\r\n",
        "unterminated-quote.conf": b'model "abc\n',
        "bad-escape.conf": b'model "a\\n"\n',
        "escapes.conf": b'model "a\\"b\\\\c"\n',
        "unknown-key.conf": b"lissten 1.2.3.4:80\n",
        "duplicate-key.conf": b"threads 1\nthreads 2\n",
        "no-value.conf": b"threads\n",
        "text-after-value.conf": b"threads 1 2\n",
        "size-overflow.conf": b"max_body 99999999999999999999G\n",
        "size-suffixes.conf": b"max_body 1k\n",
        "int-overflow.conf": b"threads 99999999999999999999999\n",
        "float-forms.conf": b"lr 1e-5\nmargin 0x1p-2\ndropout nan\n",
        "float-inf.conf": b"lr inf\n",
        "hidden-long.conf": b"hidden " + b",".join(b"1" for _ in range(40)) + b"\n",
        "hidden-empty-item.conf": b"hidden 1,,2\n",
        "api-keys-bad.conf": b'api_keys "short:read,aaaaaaaaaaaaaaaa:admin"\n',
        "api-keys-dup.conf": b'api_keys "aaaaaaaaaaaaaaaa:read,aaaaaaaaaaaaaaaa:write"\n',
        "listen-forms.conf": b"listen [fe80::1%eth0]:0\n",
        "listen-bad-port.conf": b"listen localhost:65536\n",
        "tls-half.conf": b"tls_cert /x.pem\n",
        "nul-byte.conf": b"threads 1\n\0\n",
        "long-line.conf": b"model " + b"a" * 5000 + b"\n",
        "only-comments.conf": b"# a\n   # b\n\n\t\n",
        "no-final-newline.conf": b"threads 3",
        "bool-forms.conf": b"keep_images ON\njson 0\ntrain_if_missing True\n",
        "control-char.conf": b'model "a\x01b"\n',
    }
    for name, text in c.items():
        write("config", name, text)


def gen_png():
    # fuzz_png's own format: w-1, h-1, depth, colour type, interlace, flags;
    # then chunks as type, 2-byte length, data ("ZZZZ" data is zlib'ed into an IDAT).
    def rec(kind, data):
        return kind + struct.pack(">H", len(data)) + data

    def rows(w, h, bpp):
        return b"".join(bytes([y % 5]) + bytes((x * 11 + y * 3) & 255 for x in range(w * bpp))
                        for y in range(h))
    write("png", "gray-28.fz", bytes([27, 27, 8, 0, 0, 0]) + rec(b"ZZZZ", rows(28, 28, 1)) +
          rec(b"IEND", b""))
    z = zlib.compress(rows(9, 7, 3), 9)
    write("png", "rgb-split-idat.fz", bytes([8, 6, 8, 2, 0, 0]) + rec(b"tEXt", b"k\0v") +
          rec(b"IDAT", z[:9]) + rec(b"IDAT", z[9:]) + rec(b"IEND", b""))
    write("png", "rgba-bad-crc.fz", bytes([4, 4, 8, 6, 0, 1]) +
          rec(b"ZZZZ", rows(5, 5, 4)) + rec(b"IEND", b"\x80"))
    write("png", "ga-trns.fz", bytes([5, 3, 8, 4, 0, 0]) + rec(b"tRNS", b"\0\1") +
          rec(b"ZZZZ", rows(6, 4, 2)) + rec(b"IEND", b""))
    # A 256-byte window: over the whole of a 14x14 image (taken), and short of
    # a 28x28 one whose lower half repeats the upper (libpng refuses it).
    half = rows(14, 7, 1)
    write("png", "gray-small-window.fz", bytes([13, 13, 8, 0, 0, 0]) +
          rec(b"ZZZa", half + half) + rec(b"IEND", b""))
    half = bytes(b for r in range(14) for b in [0] + [(x * 11 + r * 3) & 255 for x in range(28)])
    write("png", "gray-window-too-small.fz", bytes([27, 27, 8, 0, 0, 0]) +
          rec(b"ZZZa", half + half) + rec(b"IEND", b""))
    write("png", "gray-interlaced.fz", bytes([7, 7, 8, 0, 1, 0]) + rec(b"ZZZZ", rows(8, 15, 1)) +
          rec(b"IEND", b""))


if __name__ == "__main__":
    for target in ("img", "png", "request", "safetensors", "idx", "config"):
        os.makedirs(os.path.join(CORPUS, target), exist_ok=True)
    gen_img()
    gen_png()
    gen_request()
    gen_safetensors()
    gen_idx()
    gen_config()
