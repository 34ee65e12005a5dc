"""test_proxy.py: the proxy module in the real daemon against real upstreams (a Python HTTP/1.1 server with odd behaviours, nginx): RFC 9110 relaying, failures (502/504, each followed by a good request), responses tied to their request, identity headers and their spoofing, alice and bob interleaved on 64 connections."""
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gh_realm import realm  # noqa: E402,F401
from helpers import Conn, process_tree, rss_peaks  # noqa: E402
from pipeline_helpers import (BASIC, GhDaemon, curl, free_port, needs_daemon,  # noqa: E402
                              needs_root, shared_dir)

pytestmark = [needs_daemon, needs_root]
HERE = os.path.dirname(os.path.abspath(__file__))
# ASan's quarantine keeps freed memory: RSS bounds mean nothing under a sanitizer
SANITIZER = any(os.environ.get(k) for k in ('ASAN_OPTIONS', 'TSAN_OPTIONS'))
no_sanitizer = pytest.mark.skipif(SANITIZER, reason='RSS under a sanitizer is its own')
IDENT = 'user:X-Remote-User groups:X-Remote-Groups principal:X-Remote-Principal auth-type:X-Auth-Type'


class Upstream:
    """tests/integration/proxy/upstream.py on a TCP port or a unix socket; .requests() is
    what it received (one dict per request)."""

    def __init__(self, where=None):
        self.port = free_port() if where is None else None
        self.where = str(self.port) if where is None else where
        self.log = []
        self.proc = subprocess.Popen(['/usr/bin/python3', os.path.join(HERE, 'proxy', 'upstream.py'),
                                      self.where], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == 'ready'
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        self.closed = []
        for line in self.proc.stdout:
            d = json.loads(line)
            (self.closed.append(d['closed']) if 'closed' in d else self.log.append(d))

    def requests(self, settle=0.2):
        time.sleep(settle)
        return list(self.log)

    def last(self):
        return self.requests()[-1]

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def hdr(req, name):
    """Values of a field the upstream received, any case."""
    return [v for k, v in req['headers'] if k.lower() == name.lower()]


@pytest.fixture(scope='module')
def up():
    u = Upstream()
    yield u
    u.stop()


HOLD = []


def blackhole():
    """A listener that never accepts, its queue full: connects to it hang (SYNs dropped)."""
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    s.listen(0)
    fill = []
    for _ in range(4):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(s.getsockname())
        fill.append(c)
    time.sleep(0.2)
    HOLD.append((s, fill))
    return s


@pytest.fixture(scope='module')
def up_unix():
    d = shared_dir('gh-proxy-unix-')
    u = Upstream(f'unix:{d}/app.sock')
    yield u
    u.stop()


@pytest.fixture(scope='module')
def ws_up():
    port = free_port()
    p = subprocess.Popen(['/usr/bin/python3', os.path.join(HERE, 'proxy', 'ws_echo.py'), str(port)],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == 'ready'
    p.port = port
    yield p
    p.kill()
    p.wait()


@pytest.fixture(scope='module')
def gh(realm, up, up_unix, ws_up):  # noqa: F811
    dead = free_port()  # nothing listens there
    hole = blackhole()
    base = dict(BASIC, handler='proxy', identity_headers=IDENT)
    sites = [
        ('/app', dict(base, upstream=f'http://127.0.0.1:{up.port}/backend',
                      upstream_read_timeout='1s')),
        ('/plain', dict(base, upstream=f'http://127.0.0.1:{up.port}')),
        ('/dead', dict(base, upstream=f'http://127.0.0.1:{dead}')),
        ('/blackhole', dict(base, upstream=f'http://127.0.0.1:{hole.getsockname()[1]}', upstream_connect_timeout='300ms')),
        ('/rr', dict(base, upstream=[f'http://127.0.0.1:{dead}', f'http://127.0.0.1:{up.port}'],
                     upstream_fail_timeout='30s')),
        ('/host', dict(base, upstream=f'http://127.0.0.1:{up.port}', upstream_host='app.internal',
                       proxy_forwarded='yes', proxy_via='no', proxy_x_forwarded='no')),
        ('/unix', dict(base, upstream=f'unix:{up_unix.where[5:]}:/u')),
        ('/ws', dict(base, upstream=f'http://127.0.0.1:{ws_up.port}/', upgrade_idle_timeout='2s')),
        ('/neg', {'handler': 'proxy', 'auth': 'negotiate', 'persist': 'all',
                  'identity_headers': IDENT, 'upstream': f'http://127.0.0.1:{up.port}/n'}),
    ]
    d = GhDaemon(realm, sites)
    d.start()
    yield d
    d.stop()


def get(gh, path, **kw):
    return curl(gh.url(path), **kw)


def test_relays_request_and_strips_hop_by_hop(gh, up):
    r = get(gh, '/app/echo?q=1', user='alice',
            headers={'Connection': 'keep-alive, X-Secret', 'X-Secret': 'hop', 'Keep-Alive': '5',
                     'TE': 'trailers', 'Proxy-Authorization': 'Basic eA==', 'X-Custom': 'kept',
                     'Upgrade': 'h2c', 'Trailer': 'X-T'})
    assert r.status == 200, r.body
    seen = json.loads(r.body)
    assert seen['target'] == '/backend/echo?q=1'
    names = {k.lower() for k, _ in seen['headers']}
    for gone in ('connection', 'x-secret', 'keep-alive', 'te', 'proxy-authorization', 'upgrade',
                 'trailer', 'authorization'):
        assert gone not in names, seen['headers']
    assert hdr(seen, 'X-Custom') == ['kept']
    assert hdr(seen, 'Host') == [f'127.0.0.1:{gh.port}']
    assert hdr(seen, 'X-Forwarded-For') == ['127.0.0.1']
    assert hdr(seen, 'X-Forwarded-Proto') == ['http']
    assert hdr(seen, 'Via') == ['1.1 gatehouse']
    # the upstream's hop-by-hop fields stay on its side too; Server and Date are ours
    assert r.header('X-Up-Hop') is None and r.header('Connection') != 'keep-alive, X-Up-Hop'
    assert r.header('Server') != 'py-upstream'
    assert r.header('Via') == '1.1 gatehouse'


def test_long_request_head(gh, up):
    """A head longer than the first room the proxy gives it (request memory, then a growing
    heap copy): every field reaches the upstream whole and in order."""
    fields = {f'X-Long-{i}': chr(ord('a') + i) * (700 + 300 * i) for i in range(8)}
    r = get(gh, '/app/echo', user='alice', headers=fields)
    assert r.status == 200, r.body
    seen = json.loads(r.body)
    got = [(k, v) for k, v in seen['headers'] if k.startswith('X-Long-')]
    assert got == list(fields.items())
    assert hdr(seen, 'X-Remote-User') == ['alice'] and hdr(seen, 'Via') == ['1.1 gatehouse']


def test_host_rewrite_and_forwarded(gh, up):
    r = get(gh, '/host/echo', user='alice', headers={'Forwarded': 'for=1.2.3.4'})
    seen = json.loads(r.body)
    assert seen['target'] == '/host/echo'  # no prefix: the URL as sent
    assert hdr(seen, 'Host') == ['app.internal']
    assert hdr(seen, 'Forwarded') == [f'for=1.2.3.4, for=127.0.0.1;proto=http;host="127.0.0.1:{gh.port}"']
    assert hdr(seen, 'Via') == [] and hdr(seen, 'X-Forwarded-For') == []


def test_identity_headers(gh, up):
    r = get(gh, '/app/echo', user='alice')
    seen = json.loads(r.body)
    assert hdr(seen, 'X-Remote-User') == ['alice']
    assert hdr(seen, 'X-Remote-Principal') == ['alice']
    assert hdr(seen, 'X-Auth-Type') == ['Basic']
    assert hdr(seen, 'X-Remote-Groups')[0].split(',')[0] == '30001'


SPOOF = {'X-Remote-User': 'root', 'x-remote-user': 'root2', 'X_Remote_User': 'root3',
         'X-REMOTE_PRINCIPAL': 'admin@GH.TEST', 'x_auth_type': 'Kerberos',
         'X-Remote-Groups': '0'}


def spoof_args():
    # duplicates: two lines of the same name as well
    return [a for k, v in list(SPOOF.items()) + [('X-Remote-User', 'dup')] for a in ('-H', f'{k}: {v}')]


@pytest.mark.parametrize('who', ['alice', 'anonymous', 'badpassword'])
def test_identity_spoofing(gh, up, who):
    kw = {'user': 'alice'} if who == 'alice' else {}
    if who == 'badpassword':
        kw = {'user': 'alice', 'password': 'wrong'}
    r = get(gh, '/app/echo', extra=spoof_args(), **kw)
    if who == 'badpassword':
        # failed auth on a site that allows anonymous: served anonymously, never as a spoofer
        assert r.status in (200, 401)
        if r.status == 401:
            return
    assert r.status == 200, r.body
    seen = json.loads(r.body)
    names = [k.lower().replace('_', '-') for k, _ in seen['headers']]
    for n in ('x-remote-user', 'x-remote-principal', 'x-auth-type', 'x-remote-groups'):
        want = 1 if who == 'alice' else 0
        assert names.count(n) == want, seen['headers']
    if who == 'alice':
        assert hdr(seen, 'X-Remote-User') == ['alice']
        assert hdr(seen, 'X-Remote-Groups') != ['0']


def test_location_and_cookie_rewrite(gh, up):
    r = get(gh, '/app/redirect', user='alice')
    assert r.status == 302
    assert r.header('Location') == f'http://127.0.0.1:{gh.port}/app/there'
    cookies = [v for k, v in r.headers if k.lower() == 'set-cookie']
    assert cookies == ['a=1; Path=/app/sub; HttpOnly', 'b=2; Path=/elsewhere']


def test_chunked_response_and_upstream_hop_by_hop(gh, up):
    r = get(gh, '/app/chunked', user='alice')
    assert r.status == 200 and r.body == b'hello chunky'
    assert r.header('X-Hop') is None and r.header('Keep-Alive') is None


def test_response_head_relayed_exactly(gh, up):
    """The relayed head: the upstream's reason phrase ("OK" too), Content-Length as a number
    (leading zeros dropped, "0" kept), the Via chain with this hop, values with HT and
    padding trimmed, names with other tchar than letters, digits and '-'."""
    c = Conn(gh.port)
    for path in ('odd-head', 'ok-head'):
        c.send(f'GET /app/{path} HTTP/1.1\r\nHost: x\r\nAuthorization: {basic("alice")}\r\n\r\n'
               .encode())
    r = c.read_response()
    assert (r.status, r.reason, r.body) == (200, 'Fine Indeed', b'abc')
    assert r.header('Content-Length') == '3' and r.header('Via') == '1.0 far, 1.1 gatehouse'
    assert r.header('X-Tab') == 'a\tb' and r.header('X-Pad') == 'padded value'
    assert r.header('X_Under.score!') == 'u' and r.header('X-Empty') == ''
    assert r.header('X-Long-Value-Name-Here') == 'v' * 37
    r = c.read_response()
    assert (r.status, r.reason, r.body, r.header('Content-Length')) == (200, 'OK', b'', '0')
    c.close()


def test_close_delimited_response(gh, up):
    r = get(gh, '/app/eof', user='alice')
    assert r.status == 200 and r.body == b'until the end\n'


def test_head(gh, up):
    c = Conn(gh.port)
    c.send(f'HEAD /app/head HTTP/1.1\r\nHost: x\r\nAuthorization: {basic("alice")}\r\n\r\n'.encode())
    r = c.read_response(head=True)
    assert r.status == 200 and r.header('Content-Length') == '10'
    c.send(f'GET /app/echo HTTP/1.1\r\nHost: x\r\nAuthorization: {basic("alice")}\r\n\r\n'.encode())
    r = c.read_response()  # the connection is still in step: no body came after the HEAD head
    assert r.status == 200 and json.loads(r.body)['target'] == '/backend/echo'
    c.close()
    assert [r['method'] for r in up.requests()[-2:]] == ['HEAD', 'GET']
    r = get(gh, '/app/head', user='alice')
    assert r.body == b'0123456789'


def test_interim_responses_dropped(gh, up):
    r = get(gh, '/app/interim', user='alice')
    assert r.status == 200 and r.body == b'after interim\n'


def test_request_body_and_expect(gh, up):
    body = os.urandom(300000)
    r = get(gh, '/app/echo', user='alice', method='POST', data=body,
            headers={'Expect': '100-continue'})
    assert r.status == 200
    seen = json.loads(r.body)
    import hashlib
    assert seen['body_len'] == len(body) and seen['body_sha256'] == hashlib.sha256(body).hexdigest()
    assert hdr(seen, 'Expect') == []
    r = get(gh, '/app/echo', user='alice', method='POST', data=b'abc',
            headers={'Transfer-Encoding': 'chunked'})
    assert json.loads(r.body)['body_len'] == 3


@pytest.mark.parametrize('path,status,logged', [
    ('/dead/x', 502, 'connect: Connection refused'),
    ('/app/slow?3', 504, 'read: timed out'),
    ('/app/invalid', 502, 'invalid response'),
    ('/app/switch', 502, '101 to a request that asked for no upgrade'),
])
def test_failure_then_good(gh, up, path, status, logged):
    """Refused 502, read timeout 504 (upstream_read_timeout = 1s), an invalid response 502, an
    unasked-for 101 502: each logged with the upstream, and the next request is served."""
    r = get(gh, path, user='alice')
    assert r.status == status
    line = [x for x in gh.log().splitlines() if logged in x][-1]
    assert f'GET {path}: upstream http://127.0.0.1:' in line, line
    assert get(gh, '/app/echo', user='alice').status == 200


def test_connect_timeout_is_504_then_good(gh, up):
    t = time.monotonic()
    r = get(gh, '/blackhole/x', user='alice')
    assert r.status == 504
    assert 'connect: timed out' in gh.log()
    assert time.monotonic() - t < 5
    assert get(gh, '/app/echo', user='alice').status == 200


def basic(user):
    return 'Basic ' + base64.b64encode(f'{user}:{user}pw'.encode()).decode()


@pytest.mark.parametrize('path', ['/app/extra', '/app/extra-later'])
def test_extra_bytes_never_answer_another_request(gh, up, path):
    """An upstream that sends a second, unasked-for response: the connection is closed, and
    no later request (on this or another client connection) gets it."""
    for _ in range(5):
        r = get(gh, path, user='alice')
        assert r.status == 200 and r.body == b'first\n'
        time.sleep(0.4)
        for _ in range(3):
            r = get(gh, '/app/echo', user='bob')
            assert r.status == 200 and b'EVIL' not in r.body, r.body
            assert json.loads(r.body)['target'] == '/backend/echo'


def test_round_robin_passive_health(gh, up):
    n0 = len(up.requests(0))
    for _ in range(6):
        assert get(gh, '/rr/echo', user='alice').status == 200
    assert len(up.requests()) - n0 == 6
    assert gh.log().count(f'/rr/echo: upstream http://127.0.0.1') <= 2  # marked down once


class Slammer:
    """An upstream that accepts, reads the request head and closes: the connection ends
    before any byte of a response (a crashed or restarting application behind a socket
    that still accepts)."""

    def __init__(self):
        self.s = socket.socket()
        self.s.bind(('127.0.0.1', 0))
        self.s.listen(16)
        self.port = self.s.getsockname()[1]
        self.accepted = 0
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while True:
            try:
                c, _ = self.s.accept()
            except OSError:
                return
            self.accepted += 1
            c.settimeout(5)
            data = b''
            while b'\r\n\r\n' not in data:
                d = c.recv(4096)
                if not d:
                    break
                data += d
            c.close()

    def close(self):
        self.s.close()


def test_next_upstream_after_a_failure_before_the_response(realm, up):  # noqa: F811
    """An upstream that closes the connection before any byte of a response: a bodiless
    idempotent request goes to the next upstream line (that one is marked down as after a
    failed connect, with a log line); a POST is never sent twice (502); the server serves
    on."""
    a, b = Slammer(), Slammer()
    site = dict(BASIC, handler='proxy', upstream_fail_timeout='30s')
    d = GhDaemon(realm, [
        ('/next', dict(site, upstream=[f'http://127.0.0.1:{a.port}', f'http://127.0.0.1:{up.port}'])),
        ('/nextpost', dict(site, upstream=[f'http://127.0.0.1:{b.port}',
                                           f'http://127.0.0.1:{up.port}']))])
    d.start()
    try:
        # round-robin starts at the first line: the slammer, then the next one answers
        for _ in range(4):
            r = get(d, '/next/echo', user='alice')
            assert r.status == 200 and json.loads(r.body)['method'] == 'GET', r
        assert a.accepted == 1  # marked down: the later requests went to the good one
        assert 'closed before a response; trying the next upstream' in d.log(), d.log()[-2000:]
        # a POST (with its body) is not sent again: 502, and nothing marked down for it
        r = curl(d.url('/nextpost/echo'), user='alice', data='once')
        assert r.status == 502 and b.accepted == 1, r
        for _ in range(2):
            r = get(d, '/nextpost/echo', user='alice')
            assert r.status == 200, r
        log = d.log()
    finally:
        d.stop()
        a.close()
        b.close()
    assert log.count('trying the next upstream') == 1 + (b.accepted - 1), log[-2000:]


def test_keepalive_pool_reuses(gh, up):
    before = {r['conn'] for r in up.requests()}
    for _ in range(5):
        assert get(gh, '/plain/echo', user='alice').status == 200
    conns = [r['conn'] for r in up.requests()[-5:]]
    assert len(set(conns)) == 1 or set(conns) & before, conns


def test_nginx_upstream(realm):  # noqa: F811
    d = shared_dir('gh-proxy-nginx-')
    port = free_port()
    with open(os.path.join(d, 'index.html'), 'w') as f:
        f.write('from nginx\n')
    conf = os.path.join(d, 'nginx.conf')
    with open(conf, 'w') as f:
        f.write(f'''worker_processes 1; daemon off; pid {d}/nginx.pid; error_log {d}/error.log;
events {{ worker_connections 256; }}
http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d};
  fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};
  server {{ listen 127.0.0.1:{port}; root {d};
    location /who {{ return 200 "user=$http_x_remote_user\\n"; }} }} }}
''')
    ng = subprocess.Popen(['nginx', '-c', conf], stderr=subprocess.DEVNULL)
    gh = GhDaemon(realm, [('/ng', dict(BASIC, handler='proxy', identity_headers=IDENT,
                                        upstream=f'http://127.0.0.1:{port}/'))])
    try:
        for _ in range(50):
            try:
                socket.create_connection(('127.0.0.1', port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        gh.start()
        r = curl(gh.url('/ng/index.html'), user='bob')
        assert r.status == 200 and r.body == b'from nginx\n'
        r = curl(gh.url('/ng/who'), user='bob', headers={'X-Remote-User': 'root'})
        assert r.body == b'user=bob\n'
        r = curl(gh.url('/ng/nope'), user='bob')
        assert r.status == 404
    finally:
        gh.stop()
        ng.terminate()
        ng.wait()


def tokens(realm, user, n):  # noqa: F811
    env = realm.kinit(user)
    env.pop('LD_PRELOAD', None)
    out = subprocess.run(['/usr/bin/python3', '-c', f'''
import base64, gssapi
n = gssapi.Name("HTTP@localhost", gssapi.NameType.hostbased_service)
for _ in range({n}):
    print(base64.b64encode(gssapi.SecurityContext(name=n, usage="initiate").step()).decode())
'''], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_alice_bob_interleaved_64_connections(gh, up, realm):  # noqa: F811
    """64 keep-alive connections, alice and bob alternating, Negotiate persisted on each: every
    request the upstream sees carries exactly the identity of the connection's user."""
    toks = {'alice': tokens(realm, 'alice', 32), 'bob': tokens(realm, 'bob', 32)}
    conns = []
    for i in range(64):
        user = 'alice' if i % 2 == 0 else 'bob'
        conns.append((user, Conn(gh.port), toks[user][i // 2]))
    mismatches, total = [], 0
    for rnd in range(4):
        for i, (user, c, tok) in enumerate(conns):
            auth = f'Authorization: Negotiate {tok}\r\n' if rnd == 0 else ''
            spoof = 'X-Remote-User: mallory\r\n' if i % 3 == 0 else ''
            c.send(f'GET /neg/echo?{user}-{rnd}-{i} HTTP/1.1\r\nHost: localhost\r\n{auth}{spoof}\r\n'.encode())
        for i, (user, c, tok) in enumerate(conns):
            resp = c.read_response()
            assert resp.status == 200, (resp.status, resp.body)
            seen = json.loads(resp.body)
            total += 1
            if (seen['target'] != f'/n/echo?{user}-{rnd}-{i}' or hdr(seen, 'X-Remote-User') != [user]
                    or hdr(seen, 'X-Remote-Principal') != [f'{user}@{realm.realm}']):
                mismatches.append((user, seen['target'], seen['headers']))
    for _, c, _ in conns:
        c.close()
    assert total == 256 and mismatches == []


def test_unix_upstream(gh, up_unix):
    r = get(gh, '/unix/echo?x=1', user='bob')
    assert r.status == 200, r.body
    seen = json.loads(r.body)
    assert seen['target'] == '/u/echo?x=1' and hdr(seen, 'X-Remote-User') == ['bob']


@pytest.mark.parametrize('key,value,why', [
    ('upstream', 'ftp://x:1', 'not http://HOST:PORT'),
    ('upstream', 'http://host', 'the port is required'),
    ('upstream', 'unix:relative.sock', 'unix:/ABSOLUTE'),
    ('identity_headers', 'user:X-User nobody:X-Nobody', 'KIND:Field-Name'),
    ('identity_headers', 'user:X-User user:X-Other', 'given twice'),
    ('identity_headers', 'user:X(User)', 'not allowed in a field name'),
])
def test_bad_configuration_refused(realm, key, value, why):  # noqa: F811
    site = dict(BASIC, handler='proxy', upstream='http://127.0.0.1:1')
    site[key] = value
    d = GhDaemon(realm, [('/p', site)])
    try:
        rc, err = d.check()
        assert rc != 0 and why in err and key in err, err
    finally:
        d.stop()


def rss_growth(gh, fn):
    """(fn(), how many KiB the daemon's processes grew at most while fn ran, summed)."""
    r, peaks = rss_peaks(process_tree(gh.proc.pid), fn)
    return r, sum(peak - base for base, peak in peaks.values())


@no_sanitizer
def test_download_1gib_streams(gh, up):
    """1 GiB relayed from the upstream to the client: the daemon's RSS grows by less than
    16 MiB (the body is never buffered whole)."""
    size = 1 << 30
    get(gh, '/app/big?1048576', user='alice')  # warm the worker's buffers
    p, grew = rss_growth(gh, lambda: subprocess.run(
        ['curl', '-sS', '-u', 'alice:alicepw', '-o', '/dev/null', '-w',
         '%{http_code} %{size_download}', gh.url(f'/app/big?{size}')],
        capture_output=True, text=True, timeout=300))
    assert p.stdout == f'200 {size}', p.stderr
    assert grew < 16 * 1024, grew


def stream_upload(port, path, size, chunked, auth):
    """Sends size bytes (a repeated random MiB) as the body, Content-Length or chunked;
    returns (status, upstream's echo or body, sha256 sent)."""
    import hashlib
    block = os.urandom(1 << 20)
    h = hashlib.sha256()
    c = Conn(port, timeout=120)
    framing = 'Transfer-Encoding: chunked' if chunked else f'Content-Length: {size}'
    c.send(f'POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n{framing}\r\n\r\n'.encode())
    left = size
    while left > 0:
        piece = block[:min(left, len(block))]
        h.update(piece)
        c.send(b'%x\r\n' % len(piece) + piece + b'\r\n' if chunked else piece)
        left -= len(piece)
    if chunked:
        c.send(b'0\r\n\r\n')
    r = c.read_response()
    c.close()
    return r.status, r.body, h.hexdigest()


@no_sanitizer
def test_upload_1gib_streams(gh, up):
    """1 GiB uploaded through the proxy (Content-Length), the upstream gets every byte; the
    daemon's RSS grows by less than 16 MiB (the body is streamed, not buffered)."""
    size = 1 << 30
    stream_upload(gh.port, '/app/echo', 1 << 20, False, basic('alice'))  # warm buffers
    (status, body, sha), grew = rss_growth(
        gh, lambda: stream_upload(gh.port, '/app/echo', size, False, basic('alice')))
    assert status == 200, body
    seen = json.loads(body)
    assert seen['body_len'] == size and seen['body_sha256'] == sha
    assert grew < 16 * 1024, grew


def test_chunked_upload_streams_chunked_upstream(gh, up):
    status, body, sha = stream_upload(gh.port, '/app/echo', 5 << 20, True, basic('alice'))
    assert status == 200
    seen = json.loads(body)
    assert seen['body_len'] == 5 << 20 and seen['body_sha256'] == sha
    assert hdr(seen, 'Transfer-Encoding') == ['chunked'] and hdr(seen, 'Content-Length') == []


def test_early_hints_relayed(gh, up):
    c = Conn(gh.port)
    c.send(f'GET /app/interim HTTP/1.1\r\nHost: x\r\nAuthorization: {basic("alice")}\r\n\r\n'.encode())
    first = c.read_response(head=True)
    assert first.status == 103 and first.header('Link') == '</s.css>; rel=preload'
    final = c.read_response()
    assert final.status == 200 and final.body == b'after interim\n'
    c.close()


def test_client_gone_cancels_upstream(gh, up):
    before = gh.log().count('client gone, upstream request cancelled')
    c = Conn(gh.port)
    c.send(f'GET /plain/slow?4 HTTP/1.1\r\nHost: x\r\nAuthorization: {basic("alice")}\r\n\r\n'.encode())
    time.sleep(0.5)
    c.close()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and gh.log().count('client gone, upstream request cancelled') == before:
        time.sleep(0.1)
    assert gh.log().count('client gone, upstream request cancelled') > before, gh.log()[-2000:]
    assert get(gh, '/plain/echo', user='alice').status == 200


def test_websocket_relayed(gh, ws_up):
    import asyncio
    import websockets

    async def run():
        hdrs = {'Authorization': basic('bob'), 'X-Remote-User': 'root'}
        async with websockets.connect(f'ws://127.0.0.1:{gh.port}/ws/', extra_headers=hdrs) as ws:
            assert await ws.recv() == 'user=bob'
            for m in ('one', 'two' * 1000, 'x' * 200000):
                await ws.send(m)
                assert await ws.recv() == m
            # upgrade_idle_timeout = 2s: an idle upgraded connection is closed
            await asyncio.sleep(3)
            with pytest.raises(websockets.ConnectionClosed):
                await ws.send('late')
                await asyncio.wait_for(ws.recv(), 5)
    asyncio.run(run())
    assert get(gh, '/app/echo', user='alice').status == 200


@pytest.mark.parametrize('path', ['/app/a/../b', '/app/./x', '/app/x/%2e%2E/y', '/app/x/..',
                                  '/app/x/.%2e?q=1'])
def test_dot_segments_refused(gh, up, path):
    """The server matched the site and its rules on the normalized path: a raw path the
    upstream would resolve differently (past a require /sub rule) never goes upstream."""
    r = get(gh, path, user='alice')
    assert r.status == 400

    def dotted(t):
        return any(seg in ('.', '..') for seg in t.split('?')[0].lower().replace('%2e', '.').split('/'))
    assert not any(dotted(x['target']) for x in up.requests()), path
    assert get(gh, '/app/x.y/..z/.../echo', user='alice').status == 200


def test_timeout_after_head_closes_client(gh, up):
    """The upstream stalls in the middle of its body (read timeout 1 s): the head already went
    out, so the client connection is closed short of the announced length, never completed."""
    c = Conn(gh.port, timeout=10)
    c.send(f'GET /app/stall HTTP/1.1\r\nHost: x\r\nAuthorization: {basic("alice")}\r\n\r\n'.encode())
    head = c.read_response(head=True)
    assert head.status == 200 and head.header('Content-Length') == '100000'
    got = b''
    while True:
        try:
            d = c.s.recv(65536)
        except OSError:
            break
        if not d:
            break
        got += d
    c.close()
    assert len(c.buf) + len(got) < 100000
    assert get(gh, '/app/echo', user='alice').status == 200


def test_reload_closes_idle_upstream_connections(gh, up):
    """A reload may drop or change upstream lines: the pooled idle connections are closed (the
    upstream sees them end), and requests go on."""
    assert get(gh, '/plain/echo', user='alice').status == 200
    cid = up.requests()[-1]['conn']
    assert cid not in up.closed
    gh.reload()
    deadline = time.monotonic() + 5
    while cid not in up.closed and time.monotonic() < deadline:
        time.sleep(0.1)
    assert cid in up.closed
    assert get(gh, '/plain/echo', user='alice').status == 200


def test_reload_changes_site_keys(realm, up, up_unix):  # noqa: F811
    """The proxy reads a site's keys once per configuration and keeps them: a reload that changes
    them (identity field names, upstream, Host, Via, forwarding fields) is seen by the next
    request, and a field that became an identity field is stripped from what the client sent."""
    base = dict(BASIC, handler='proxy')
    before = dict(base, identity_headers='user:X-Who', upstream=f'http://127.0.0.1:{up.port}/one')
    after = dict(base, identity_headers='user:X-Other principal:X-Who-Principal',
                 upstream=f'unix:{up_unix.where[5:]}:/two', upstream_host='changed.example',
                 proxy_via='no', proxy_x_forwarded='no', proxy_forwarded='yes')
    d = GhDaemon(realm, [('/r', before)])
    d.start()
    try:
        spoof = {'X-Other': 'mallory', 'X-Who': 'from-client'}
        r = get(d, '/r/echo', user='alice', headers=spoof)
        seen = json.loads(r.body)
        assert seen['target'] == '/one/echo'
        assert hdr(seen, 'X-Who') == ['alice'] and hdr(seen, 'X-Other') == ['mallory']
        assert hdr(seen, 'Via') == ['1.1 gatehouse'] and hdr(seen, 'X-Forwarded-For') == ['127.0.0.1']
        assert 'configuration reloaded' in d.reload(sites=[('/r', after)])
        for user in ('alice', 'bob', 'alice'):
            r = get(d, '/r/echo', user=user, headers=spoof)
            assert r.status == 200, r.body
            seen = json.loads(r.body)
            assert seen['target'] == '/two/echo'
            assert hdr(seen, 'X-Other') == [user], seen['headers']
            assert hdr(seen, 'X-Who-Principal') == [user]
            assert hdr(seen, 'X-Who') == ['from-client']
            assert hdr(seen, 'Host') == ['changed.example']
            assert hdr(seen, 'Via') == [] and hdr(seen, 'X-Forwarded-For') == []
            assert hdr(seen, 'Forwarded') == [f'for=127.0.0.1;proto=http;host="127.0.0.1:{d.port}"']
        assert 'configuration reloaded' in d.reload(sites=[('/r', before)])
        seen = json.loads(get(d, '/r/echo', user='bob', headers=spoof).body)
        assert seen['target'] == '/one/echo' and hdr(seen, 'X-Who') == ['bob']
        assert hdr(seen, 'X-Other') == ['mallory'] and hdr(seen, 'X-Who-Principal') == []
    finally:
        d.stop()


# ---- upgraded connections on splice threads, not workers ----

@pytest.fixture(scope='module')
def gh2(realm, up, ws_up):  # noqa: F811
    """workers = 2: every upgraded connection on a worker would stop the server at the second."""
    base = dict(BASIC, handler='proxy', identity_headers=IDENT)
    ws = f'http://127.0.0.1:{ws_up.port}/'
    sites = [('/plain', dict(base, upstream=f'http://127.0.0.1:{up.port}')),
             ('/ws', dict(base, upstream=ws)),
             ('/wsmax', dict(base, upstream=ws, upgrade_max='2')),
             ('/wsimp', dict(base, upstream=ws, impersonate='yes'))]
    d = GhDaemon(realm, sites, server={'workers': 2, 'shutdown_timeout_ms': 1500})
    d.start()
    yield d
    d.proc.send_signal(signal.SIGTERM)
    d.proc.wait(30)
    log = d.log()
    d.stop()
    assert 'Sanitizer' not in log and 'runtime error' not in log, log[-4000:]


def ws_open(gh, path, user='bob'):
    import websockets
    return websockets.connect(f'ws://127.0.0.1:{gh.port}{path}', open_timeout=5,
                              extra_headers={'Authorization': basic(user)})


async def ws_echo(ws, msg):
    import asyncio
    await ws.send(msg)
    assert await asyncio.wait_for(ws.recv(), 5) == msg


async def ws_opened(gh, path, n):
    """n open WebSockets, each greeted by the upstream."""
    import asyncio
    socks = []
    for _ in range(n):
        ws = await ws_open(gh, path)
        assert await asyncio.wait_for(ws.recv(), 5) == 'user=bob'
        socks.append(ws)
    return socks


def wait_log(gh, text, count, timeout=5):
    deadline = time.monotonic() + timeout
    while gh.log().count(text) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return gh.log().count(text)


def test_websockets_hold_no_worker(gh2):
    import asyncio

    async def run():
        socks = await ws_opened(gh2, '/ws/', 6)
        # plain requests to another site, on the event loop's behalf in a thread
        r = await asyncio.to_thread(get, gh2, '/plain/echo', user='alice')
        assert r.status == 200
        late = await ws_opened(gh2, '/ws/', 1)
        for ws in socks + late:
            await ws_echo(ws, 'still here')
        for ws in socks + late:
            await ws.close()
    asyncio.run(run())
    assert wait_log(gh2, 'upgraded connection to', 7) >= 7


def test_upgrade_max_503_then_freed(gh2):
    import asyncio
    import websockets
    ended = 'proxy: /wsmax: upgraded connection to'  # this site's ends only

    async def run():
        socks = await ws_opened(gh2, '/wsmax/', 2)
        with pytest.raises(websockets.InvalidStatusCode) as e:
            await ws_opened(gh2, '/wsmax/', 1)
        assert e.value.status_code == 503
        assert 'upgrade refused (503): upgrade_max 2' in gh2.log()
        # closed by the client: the slot is free again
        before = gh2.log().count(ended)
        await socks[0].close()
        assert wait_log(gh2, ended, before + 1) == before + 1
        (third,) = await ws_opened(gh2, '/wsmax/', 1)
        await ws_echo(third, 'in')
        # closed by the upstream: that slot too
        await third.send('bye')
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(third.recv(), 5)
        assert wait_log(gh2, ended, before + 2) == before + 2
        (fourth,) = await ws_opened(gh2, '/wsmax/', 1)
        await ws_echo(fourth, 'again')
        for ws in (socks[1], fourth):
            await ws.close()
    asyncio.run(run())
    assert get(gh2, '/plain/echo', user='alice').status == 200


async def sigterm_timed(d):
    """SIGTERM to the daemon: (its exit status, seconds it took)."""
    import asyncio
    t0 = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    rc = await asyncio.to_thread(d.proc.wait, 10)
    return rc, time.monotonic() - t0


def test_sigterm_with_open_websockets(realm, ws_up):  # noqa: F811
    import asyncio
    base = dict(BASIC, handler='proxy', identity_headers=IDENT,
                upstream=f'http://127.0.0.1:{ws_up.port}/')
    d = GhDaemon(realm, [('/ws', base)], server={'workers': 2, 'shutdown_timeout_ms': 1000})
    d.start()

    async def run():
        socks = await ws_opened(d, '/ws/', 4)
        return (socks,) + await sigterm_timed(d)
    try:
        socks, rc, took = asyncio.run(run())
        log = d.log()
    finally:
        d.stop()
    assert rc == 0 and took < 6, (rc, took, log[-2000:])
    assert 'Sanitizer' not in log and 'runtime error' not in log, log[-4000:]


def test_websockets_in_worker_processes_alone(realm, up, ws_up):  # noqa: F811
    """processes = 2, workers = 1: each process serves on its main thread
    alone and starts its splice threads at its first upgrade (a thread made
    then, at base: the upgraded user is bob, the thread's kernel ids are
    the service's); open WebSockets hold no process, plain requests go on,
    SIGTERM ends them all."""
    import asyncio
    base = dict(BASIC, handler='proxy', identity_headers=IDENT)
    sites = [('/plain', dict(base, upstream=f'http://127.0.0.1:{up.port}')),
             ('/ws', dict(base, upstream=f'http://127.0.0.1:{ws_up.port}/'))]
    d = GhDaemon(realm, sites, server={'processes': 2, 'workers': 1,
                                       'shutdown_timeout_ms': 1000})
    d.start()

    def kids():
        with open(f'/proc/{d.proc.pid}/task/{d.proc.pid}/children') as f:
            return [int(x) for x in f.read().split()]

    def nthreads():
        return sorted(len(os.listdir(f'/proc/{k}/task')) for k in kids())

    async def run():
        assert nthreads() == [1, 1]
        socks = await ws_opened(d, '/ws/', 6)
        for _ in range(4):
            r = await asyncio.to_thread(get, d, '/plain/echo', user='alice')
            assert r.status == 200 and hdr(json.loads(r.body), 'X-Remote-User') == ['alice']
        for ws in socks:
            await ws_echo(ws, 'still here')
        return (nthreads(),) + await sigterm_timed(d)
    try:
        grown, rc, took = asyncio.run(run())
        log = d.log()
    finally:
        d.stop()
    assert min(grown) >= 1 and max(grown) >= 3, grown  # spawner + splices where upgraded
    assert rc == 0 and took < 6, (rc, took, log[-2000:])
    assert 'no splice thread' not in log, log[-2000:]
    assert 'Sanitizer' not in log and 'runtime error' not in log, log[-4000:]


def test_workers_default_and_warning(realm, up, gh2):  # noqa: F811
    # a proxy site and no workers key: 16 workers, no warning
    site = dict(BASIC, handler='proxy', upstream=f'http://127.0.0.1:{up.port}')
    d = GhDaemon(realm, [('/p', site)], server={'workers': None})
    d.start()
    try:
        assert ', 16 workers,' in d.log() and 'with a proxy site' not in d.log(), d.log()
        assert get(d, '/p/echo', user='alice').status == 200
    finally:
        d.stop()
    # no proxy site: one worker per CPU as before
    d = GhDaemon(realm, [('/f', {'handler': 'fixed'})], server={'workers': None})
    d.start()
    try:
        assert f', {os.cpu_count()} workers,' in d.log(), d.log()
    finally:
        d.stop()
    # workers set below 4 with a proxy site: kept, with a warning
    assert 'workers = 2 with a proxy site' in gh2.log()
    assert ', 2 workers,' in gh2.log()


def test_reload_with_open_websockets(gh2):
    import asyncio

    async def run():
        socks = await ws_opened(gh2, '/ws/', 3)
        lines = await asyncio.to_thread(gh2.reload)
        assert 'configuration reloaded' in lines, lines
        for ws in socks:
            await ws_echo(ws, 'after reload')
        (more,) = await ws_opened(gh2, '/ws/', 1)
        await ws_echo(more, 'new')
        for ws in socks + [more]:
            await ws.close()
    asyncio.run(run())
    assert get(gh2, '/plain/echo', user='alice').status == 200


def thread_uids(pid):
    """{tid: (real, effective, saved, fs uid)} of every thread of pid."""
    out = {}
    for tid in os.listdir(f'/proc/{pid}/task'):
        try:
            with open(f'/proc/{pid}/task/{tid}/status') as f:
                for line in f:
                    if line.startswith('Uid:'):
                        out[tid] = tuple(line.split()[1:])
        except OSError:
            pass
    return out


def test_splice_thread_never_impersonates(gh2):
    """On an impersonate = yes site (token-scoped for the proxy: the handler's thread is not
    switched, users who cannot be impersonated are refused) the splice of an upgraded
    connection runs on a thread at the service identity, and no thread is the client's."""
    import asyncio
    base = thread_uids(gh2.proc.pid)
    main = base[str(gh2.proc.pid)]

    async def run():
        socks = await ws_opened(gh2, '/wsimp/', 2)
        for ws in socks:
            await ws_echo(ws, 'x')
        now = thread_uids(gh2.proc.pid)
        for ws in socks:
            await ws.close()
        return now
    now = asyncio.run(run())
    assert len(now) >= len(base) + 2, (base, now)  # the two splice threads
    assert all(u == main for u in now.values()), (main, now)
