#!/usr/bin/env python3
"""api_schema.py — every route's reply against docs/openapi.yaml.

Starts the real siamesed (a model from mkmodel, a fresh database) on a free
loopback port, calls every route of the API once with valid input (and a
few routes with bad input, for the Error schema), and checks each JSON reply
against the schema the document gives for that path, method and status:
every member the reply holds is declared (so a renamed field fails), every
required member is present, and types match. Every JSON body ends with a
newline.

usage: api_schema.py SIAMESED MKMODEL OPENAPI_YAML IMAGE_DIR
"""
import json, os, socket, subprocess, sys, tempfile, time, urllib.error, urllib.request
import yaml

SIAMESED, MKMODEL, SPEC, IMAGES = sys.argv[1:5]
DOC = yaml.safe_load(open(SPEC))
failures = []


def resolve(node):
    while isinstance(node, dict) and '$ref' in node:
        ref = node['$ref']
        assert ref.startswith('#/'), ref
        node = DOC
        for part in ref[2:].split('/'):
            node = node[part]
    return node


TYPES = {'object': dict, 'array': list, 'string': str, 'boolean': bool}


def check(value, schema, where):
    """Appends to failures every way value breaks schema (for oneOf, the
    alternative it breaks least)."""
    global failures
    schema = resolve(schema)
    alternatives = schema.get('oneOf') or schema.get('anyOf')
    if alternatives:
        outer, best = failures, None
        for alt in alternatives:
            failures = []
            check(value, alt, where)
            if best is None or len(failures) < len(best):
                best = failures
        failures = outer + best
        return
    if value is None:
        if not schema.get('nullable') and schema.get('type') != 'null':
            failures.append(f'{where}: null, but not nullable')
        return
    if schema.get('type') == 'null':
        failures.append(f'{where}: {value!r}, want null')
        return
    t = schema.get('type')
    if t in ('number', 'integer'):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            failures.append(f'{where}: {value!r} is not a {t}')
        return
    if t in TYPES and not isinstance(value, TYPES[t]):
        failures.append(f'{where}: {type(value).__name__}, want {t}')
        return
    if 'enum' in schema and value not in schema['enum']:
        failures.append(f'{where}: {value!r} not in {schema["enum"]}')
    if t == 'array':
        for i, v in enumerate(value):
            check(v, schema.get('items', {}), f'{where}[{i}]')
    if t == 'object':
        props = schema.get('properties', {})
        for k in schema.get('required', []):
            if k not in value:
                failures.append(f'{where}: required member "{k}" missing')
        for k, v in value.items():
            if k not in props:
                if schema.get('additionalProperties', False) is False and props:
                    failures.append(f'{where}: member "{k}" is not in the schema '
                                    f'({", ".join(props)})')
                continue
            check(v, props[k], f'{where}.{k}')


def schema_of(path, method, status):
    op = DOC['paths'][path][method.lower()]
    resp = resolve(op['responses'][str(status)])
    return resp['content']['application/json']['schema']


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def multipart(fields):
    b = 'XyZzyApiSchema'
    out = b''
    for name, value in fields:
        head = f'--{b}\r\nContent-Disposition: form-data; name="{name}"'
        if isinstance(value, bytes):
            out += (head + f'; filename="{name}.png"\r\nContent-Type: image/png\r\n\r\n').encode()
            out += value + b'\r\n'
        else:
            out += (head + '\r\n\r\n' + value + '\r\n').encode()
    return out + f'--{b}--\r\n'.encode(), f'multipart/form-data; boundary={b}'


def call(port, method, url, fields=None):
    body, ctype = multipart(fields) if fields is not None else (None, None)
    rq = urllib.request.Request(f'http://127.0.0.1:{port}{url}', data=body, method=method)
    if ctype:
        rq.add_header('Content-Type', ctype)
    try:
        with urllib.request.urlopen(rq, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def expect(port, method, url, template, status, fields=None):
    """Calls the route and checks the reply against the schema of template."""
    got, raw = call(port, method, url, fields)
    where = f'{method} {url} -> {got}'
    if got != status:
        failures.append(f'{where}: want {status}: {raw[:300]!r}')
        return None
    if not raw.endswith(b'\n'):
        failures.append(f'{where}: the body does not end with a newline')
    reply = json.loads(raw)
    check(reply, schema_of(template, method, status), where)
    return reply


def main():
    tmp = tempfile.mkdtemp(prefix='siamesed-api-')
    model, db = os.path.join(tmp, 'm.safetensors'), os.path.join(tmp, 'd.db')
    subprocess.run([MKMODEL, model, '7'], check=True)
    port = free_port()
    log = open(os.path.join(tmp, 'daemon.log'), 'w')
    d = subprocess.Popen([SIAMESED, '--listen', f'127.0.0.1:{port}', '--model', model, '--db', db,
                          '--train-if-missing', 'no', '--threads', '2'], stdout=log, stderr=log)
    try:
        for _ in range(600):
            try:
                if call(port, 'GET', '/healthz')[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        img = open(os.path.join(IMAGES, 'fm0_c9.png'), 'rb').read()
        img2 = open(os.path.join(IMAGES, 'fm2_c1.png'), 'rb').read()
        expect(port, 'GET', '/healthz', '/healthz', 200)
        expect(port, 'GET', '/model', '/model', 200)
        expect(port, 'POST', '/verify', '/verify', 200, [('a', img), ('b', img2)])
        e = expect(port, 'POST', '/enroll', '/enroll', 201,
                   [('subject', 'alice'), ('image', img), ('image', img2),
                    ('metadata', '{"name":"Alice","n":[1,2.5]}')])
        expect(port, 'POST', '/verify', '/verify', 200, [('subject', 'alice'), ('image', img)])
        expect(port, 'POST', '/embed', '/embed', 200, [('image', img), ('image', img2)])
        expect(port, 'POST', '/identify', '/identify', 200, [('image', img), ('k', '3')])
        expect(port, 'GET', '/subjects?limit=10', '/subjects', 200)
        expect(port, 'GET', '/subjects/alice?limit=1', '/subjects/{id}', 200)
        sample = e['samples'][0].get('sample', 1) if e and e.get('samples') else 1
        expect(port, 'DELETE', f'/subjects/alice/samples/{sample}',
               '/subjects/{id}/samples/{sample}', 200)
        expect(port, 'DELETE', '/subjects/alice', '/subjects/{id}', 200)
        expect(port, 'GET', '/page/settings', '/page/settings', 200)
        # Errors share one schema.
        expect(port, 'GET', '/subjects/nobody', '/subjects/{id}', 404)
        expect(port, 'POST', '/embed', '/embed', 400, [('images', img)])
        expect(port, 'GET', '/subjects?limit=0', '/subjects', 400)
    finally:
        d.terminate()
        d.wait(30)
    for f in failures:
        print('api_schema:', f)
    print(f'api_schema: {len(failures)} mismatches')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
