"""A line-by-line transcription of the official Go SDK's signer
(core/auth/signer/signer.go, Signer.Sign with SDK-HMAC-SHA256): the oracle of
the GO_SDK rows of tests/sign_vectors_spec.lua.  Run it to see it give the Go
SDK's own vectors (signer_test.go); import sign() to compute a new row.

sign(method, path, query, headers, body, ak, sk, date) takes the path and the
query values raw (not percent-encoded), the query as name -> list of values,
as the Go SDK's request builder holds them; returns the canonical request,
the signed headers and the signature."""
import hashlib, hmac

def should_escape(c):
    return not (65 <= c <= 90 or 97 <= c <= 122 or 48 <= c <= 57 or c in b'_-~.')

def escape(s):
    b = s.encode() if isinstance(s, str) else s
    return ''.join('%%%02X' % c if should_escape(c) else chr(c) for c in b)

def canonical_uri(path):
    p = '/'.join(escape(v) for v in path.split('/'))
    if len(p) == 0 or p[-1] != '/':
        p += '/'
    return p

def canonical_query(query):  # query: dict name -> list of raw values
    out = []
    for key in sorted(query, key=lambda k: k.encode()):
        for v in sorted(query[key], key=lambda v: v.encode()):
            out.append('%s=%s' % (escape(key), escape(v)))
    return '&'.join(out)

def signed_headers(headers):
    return sorted(k.lower() for k in headers if not k.lower().startswith('content-type') and '_' not in k)

def canonical_headers(headers, signed):
    lower = {}
    for k, v in headers.items():
        lower.setdefault(k.lower(), []).append(v)
    a = []
    for key in signed:
        for v in sorted(lower.get(key, [])):
            a.append(key + ':' + v.strip())
    return '\n'.join(a) + '\n'

def sign(method, path, query, headers, body, ak, sk, date):
    headers = dict(headers)
    ct = headers.get('Content-Type')
    if ct is not None and 'application/json' not in ct and 'application/bson' not in ct:
        headers['X-Sdk-Content-Sha256'] = 'UNSIGNED-PAYLOAD'
    headers['X-Sdk-Date'] = date
    sh = signed_headers(headers)
    content = headers.get('X-Sdk-Content-Sha256') or hashlib.sha256(body.encode() if isinstance(body, str) else body).hexdigest()
    cr = '\n'.join([method, canonical_uri(path), canonical_query(query), canonical_headers(headers, sh), ';'.join(sh), content])
    sts = 'SDK-HMAC-SHA256\n%s\n%s' % (date, hashlib.sha256(cr.encode()).hexdigest())
    sig = hmac.new(sk.encode(), sts.encode(), hashlib.sha256).hexdigest()
    return cr, ';'.join(sh), sig

if __name__ == '__main__':
    # the Go SDK's own vectors (signer_test.go: TestSigner_Sign, TestSigner_canonicalQueryString)
    _, sh, sig = sign('GET', '/path', {'limit': ['1']}, {'X-Sdk-Date': '20060102T150405Z', 'TEST_UNDERSCORE': 'TEST_VALUE'}, '', 'AccessKey', 'SecretKey', '20060102T150405Z')
    assert sig == '5a2ce64c865e0e6046321c6f3d5a77ba8413eeaf355c3166c03d58d02ac79624', sig
    _, sh, sig = sign('POST', '/path', {'key': ['value']}, {'X-Sdk-Date': '20060102T150405Z', 'TEST_UNDERSCORE': 'TEST_VALUE', 'Content-Type': 'application/json'}, '{"Name":"test","Id":1}\n', 'AccessKey', 'SecretKey', '20060102T150405Z')
    assert sig == 'cecc2af119b18ab70b4d094c0750f3b42c02f254903179a0fc2cc72fc9db4f59', sig
    query = canonical_query({'limit': ['1'], 'enable': ['true'], 'test': ['一 (&=?!#%.*)'], 'path': ['/tmp/123'],
                             'multi': ['1', '2', '3']})
    assert query == 'enable=true&limit=1&multi=1&multi=2&multi=3&path=%2Ftmp%2F123&test=%E4%B8%80%20%28%26%3D%3F%21%23%25.%2A%29'
    print('go_signer_oracle: gives the Go SDK signer_test.go vectors')
