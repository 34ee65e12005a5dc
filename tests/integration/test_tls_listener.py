"""test_tls_listener.py: HTTPS listeners of gatehoused — curl and Python ssl with a throwaway CA, ALPN, TLS versions, SNI, resumption, SIGHUP certificate reload, garbage and handshake timeouts, large and slow responses, pipelining, HSTS."""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import GATEHOUSED, Daemon, free_port  # noqa: E402
from helpers import Conn  # noqa: E402
from tls_pki import ScratchCA, client_context, http_get, read_response, tls_connect  # noqa: E402

pytestmark = pytest.mark.skipif(not os.path.exists(GATEHOUSED), reason=f'{GATEHOUSED} not built')


@pytest.fixture(scope='module')
def pki(tmp_path_factory):
    d = str(tmp_path_factory.mktemp('pki'))
    ca = ScratchCA(d)
    p = {'ca': ca, 'dir': d}
    p['main'] = ca.issue('main', ['localhost', 'www.gh.test'])
    p['sni'] = ca.issue('sni', ['other.gh.test', '*.wild.gh.test'], key_type='ec')
    p['combined'] = ca.issue('combined', ['combined.gh.test'], combined=True)
    p['next'] = ca.issue('next', ['localhost', 'www.gh.test'])
    return p


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp('files')
    big = os.urandom(3 * 1024 * 1024 + 17)
    (d / 'big.bin').write_bytes(big)
    (d / 'small.txt').write_text('small file\n')
    os.chmod(d, 0o755)
    return str(d), big


@pytest.fixture(scope='module')
def gh(pki, files, tmp_path_factory):
    tport, pport = free_port(), free_port()
    certdir = str(tmp_path_factory.mktemp('live'))
    # live copies: the reload test rewrites them
    live_cert = os.path.join(certdir, 'live.pem')
    live_key = os.path.join(certdir, 'live.key')
    shutil.copy(pki['main'][0], live_cert)
    shutil.copy(pki['main'][1], live_key)
    d = Daemon(server={
        'tls_cert': [live_cert, pki['sni'][0], pki['combined'][0]],
        'workers': 4,
        'tls_handshake_timeout_ms': 700,
        'hsts': 'max-age=600; includeSubDomains',
    }, sites=[
        ('/', {'handler': 'fixed', 'body': 'hello tls'}),
        ('/echo', {'handler': 'echo'}),
        ('/files', {'handler': 'static', 'root': files[0]}),
    ], listen=[f'127.0.0.1:{tport} tls', f'127.0.0.1:{pport}'],
        tmpdir=str(tmp_path_factory.mktemp('gh')))
    # tls_key pairs with the tls_cert line before it: write the file by hand
    d.write_config()
    text = open(d.conf).read().replace(
        f'tls_cert = {live_cert}\n', f'tls_cert = {live_cert}\ntls_key = {live_key}\n').replace(
        f'tls_cert = {pki["sni"][0]}\n', f'tls_cert = {pki["sni"][0]}\ntls_key = {pki["sni"][1]}\n')
    open(d.conf, 'w').write(text)
    d.tport, d.pport, d.live_cert, d.live_key = tport, pport, live_cert, live_key
    d.start()
    yield d
    d.stop()


def curl(args, check=True):
    p = subprocess.run(['curl', '-sS', '--max-time', '20'] + args, capture_output=True,
                       timeout=60)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def still_serves(gh, pki):
    s = tls_connect(gh.tport, pki['ca'].cert)
    st, _, body = http_get(s)
    s.close()
    assert st == 200 and body == b'hello tls'


def peer_der(gh, pki, name='localhost'):
    ctx = ssl.create_default_context(cafile=pki['ca'].cert)
    ctx.check_hostname = False
    raw = socket.create_connection(('127.0.0.1', gh.tport), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname=name)
    der = s.getpeercert(binary_form=True)
    s.close()
    return der


def pem_der(path):
    return ssl.PEM_cert_to_DER_cert(open(path).read().split('-----END CERTIFICATE-----')[0] +
                                    '-----END CERTIFICATE-----\n')


def test_curl_https_alpn_hsts(gh, pki):
    p = curl(['-v', '--cacert', pki['ca'].cert, f'https://localhost:{gh.tport}/'])
    err = p.stderr.decode()
    assert p.stdout == b'hello tls'
    assert 'ALPN: server accepted http/1.1' in err
    assert 'strict-transport-security: max-age=600; includesubdomains' in err.lower()


def test_plain_listener_has_no_hsts(gh):
    p = curl(['-D', '-', f'http://127.0.0.1:{gh.pport}/'])
    assert b'200 OK' in p.stdout and b'strict-transport' not in p.stdout.lower()


def test_tls_versions(gh, pki):
    for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        s = tls_connect(gh.tport, pki['ca'].cert, max_version=v)
        assert s.version() == {ssl.TLSVersion.TLSv1_2: 'TLSv1.2',
                               ssl.TLSVersion.TLSv1_3: 'TLSv1.3'}[v]
        assert http_get(s)[0] == 200
        s.close()
    # TLS 1.1 and 1.0 are refused
    p = curl(['--cacert', pki['ca'].cert, '--tlsv1.0', '--tls-max', '1.1', '--ciphers',
              'DEFAULT@SECLEVEL=0', f'https://localhost:{gh.tport}/'], check=False)
    assert p.returncode != 0
    still_serves(gh, pki)


def test_weak_cipher_refused(gh, pki):
    p = subprocess.run(['openssl', 's_client', '-connect', f'127.0.0.1:{gh.tport}', '-tls1_2',
                        '-cipher', 'AES128-SHA', '-CAfile', pki['ca'].cert],
                       input=b'', capture_output=True, timeout=20)
    assert p.returncode != 0 or b'Cipher is (NONE)' in p.stdout
    still_serves(gh, pki)


def test_sni_selects_certificate(gh, pki):
    main_der = pem_der(pki['main'][0])
    sni_der = pem_der(pki['sni'][0])
    assert peer_der(gh, pki, 'localhost') == main_der
    assert peer_der(gh, pki, 'www.gh.test') == main_der
    assert peer_der(gh, pki, 'other.gh.test') == sni_der
    assert peer_der(gh, pki, 'a.wild.gh.test') == sni_der
    assert peer_der(gh, pki, 'a.b.wild.gh.test') == main_der   # wildcard: one label only
    assert peer_der(gh, pki, 'unknown.example') == main_der     # default
    assert peer_der(gh, pki, 'combined.gh.test') == pem_der(pki['combined'][0])
    # verified end to end by curl with --resolve
    p = curl(['--cacert', pki['ca'].cert, '--resolve', f'other.gh.test:{gh.tport}:127.0.0.1',
              f'https://other.gh.test:{gh.tport}/'])
    assert p.stdout == b'hello tls'


@pytest.mark.parametrize('version', [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_session_resumption(gh, pki, version):
    ctx = client_context(pki['ca'].cert, version)
    s = tls_connect(gh.tport, None, ctx=ctx)
    assert http_get(s)[0] == 200   # TLS 1.3: the ticket arrives with the first read
    sess = s.session
    s.close()
    assert sess is not None
    s2 = tls_connect(gh.tport, None, session=sess, ctx=ctx)
    assert http_get(s2)[0] == 200
    assert s2.session_reused
    s2.close()


def test_keepalive_and_pipelining(gh, pki):
    s = tls_connect(gh.tport, pki['ca'].cert)
    for _ in range(5):
        assert http_get(s)[2] == b'hello tls'
    req = b'GET / HTTP/1.1\r\nHost: x\r\n\r\n'
    s.sendall(req * 3)
    for _ in range(3):
        assert read_response(s)[2] == b'hello tls'
    s.close()


def test_large_file_and_slow_reader(gh, pki, files):
    p = curl(['--cacert', pki['ca'].cert, f'https://localhost:{gh.tport}/files/big.bin'])
    assert p.stdout == files[1]
    # a slow reader: the worker hands the rest to the I/O thread
    p = curl(['--cacert', pki['ca'].cert, '--limit-rate', '4M',
              f'https://localhost:{gh.tport}/files/big.bin'])
    assert p.stdout == files[1]
    # range and several files on one connection
    p = curl(['--cacert', pki['ca'].cert, '-r', '100-199',
              f'https://localhost:{gh.tport}/files/big.bin'])
    assert p.stdout == files[1][100:200]
    p = curl(['--cacert', pki['ca'].cert, f'https://localhost:{gh.tport}/files/small.txt',
              f'https://localhost:{gh.tport}/files/big.bin'])
    assert p.stdout == b'small file\n' + files[1]


def test_stalled_reader_does_not_block_others(gh, pki, files):
    s = tls_connect(gh.tport, pki['ca'].cert)
    s.sendall(b'GET /files/big.bin HTTP/1.1\r\nHost: x\r\n\r\n')
    time.sleep(0.3)  # never read: the response stays with the I/O thread
    for _ in range(5):
        still_serves(gh, pki)
    c = Conn.__new__(Conn)
    c.s, c.buf = s, b''
    r = c.read_response()
    s.close()
    assert r.status == 200 and r.body == files[1]


def test_post_body_and_100_continue(gh, pki):
    body = b'x' * 200000
    p = curl(['--cacert', pki['ca'].cert, '-H', 'Expect: 100-continue', '--data-binary', '@-',
              f'https://localhost:{gh.tport}/echo'], check=False) if False else None
    del p
    path = os.path.join(gh.dir, 'post.bin')
    open(path, 'wb').write(body)
    p = curl(['-v', '--cacert', pki['ca'].cert, '-H', 'Expect: 100-continue', '--data-binary',
              '@' + path, f'https://localhost:{gh.tport}/echo'])
    assert b'x' * 1000 in p.stdout
    assert 'HTTP/1.1 100 Continue' in p.stderr.decode()


def test_concurrent_clients(gh, pki):
    errors = []

    def worker():
        try:
            s = tls_connect(gh.tport, pki['ca'].cert)
            for _ in range(30):
                st, _, b = http_get(s)
                if st != 200 or b != b'hello tls':
                    errors.append((st, b))
            s.close()
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
    ts = [threading.Thread(target=worker) for _ in range(16)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors


def log_has(gh, text, timeout=3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in gh.log():
            return True
        time.sleep(0.05)
    return False


def test_plain_http_to_tls_port(gh, pki):
    s = socket.create_connection(('127.0.0.1', gh.tport), timeout=5)
    s.sendall(b'GET / HTTP/1.1\r\nHost: x\r\n\r\n')
    got = b''
    while True:
        d = s.recv(4096)
        if not d:
            break
        got += d
    s.close()
    assert got.startswith(b'HTTP/1.1 400') and b'plain HTTP sent to TLS port' in got
    assert log_has(gh, 'handshake failed: http request (plain HTTP sent to a TLS port)')
    still_serves(gh, pki)


@pytest.mark.parametrize('garbage', [
    b'\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03' + b'\x00' * 20,   # truncated ClientHello
    b'\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00',                       # nonsense handshake
    os.urandom(3000),
    b'\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10' + b'\x00' * 37,   # SSLv2 hello
], ids=['truncated-hello', 'nonsense-handshake', 'random', 'sslv2-hello'])
def test_garbage_then_close(gh, pki, garbage):
    s = socket.create_connection(('127.0.0.1', gh.tport), timeout=5)
    t0 = time.monotonic()
    try:
        s.sendall(garbage)
        s.shutdown(socket.SHUT_WR)   # the server may have closed already
        while s.recv(4096):
            pass
    except (ConnectionResetError, BrokenPipeError, OSError):
        pass
    s.close()
    assert time.monotonic() - t0 < 3
    still_serves(gh, pki)


def test_truncated_hello_times_out(gh, pki):
    before = gh.log().count('handshake timeout')
    s = socket.create_connection(('127.0.0.1', gh.tport), timeout=5)
    s.sendall(b'\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03')   # and then nothing
    idle = socket.create_connection(('127.0.0.1', gh.tport), timeout=5)  # sends nothing at all
    t0 = time.monotonic()
    for c in (s, idle):
        try:
            assert c.recv(100) == b''
        except ConnectionResetError:
            pass
    took = time.monotonic() - t0
    s.close()
    idle.close()
    assert 0.4 < took < 3, took
    assert log_has(gh, 'handshake timeout')
    assert gh.log().count('handshake timeout') >= before + 2
    still_serves(gh, pki)


def test_many_garbage_connections_log_is_rate_limited(gh, pki):
    before = gh.log().count('plain HTTP sent')
    socks = []
    for _ in range(60):
        s = socket.create_connection(('127.0.0.1', gh.tport), timeout=5)
        s.sendall(b'GET / HTTP/1.0\r\n\r\n')
        socks.append(s)
    time.sleep(0.5)
    for s in socks:
        s.close()
    time.sleep(1.1)   # next second: the next line brings the count of suppressed ones
    s = socket.create_connection(('127.0.0.1', gh.tport), timeout=5)
    s.sendall(b'GET / HTTP/1.0\r\n\r\n')
    s.close()
    logged = gh.log().count('plain HTTP sent') - before
    assert logged < 60
    assert log_has(gh, 'similar messages suppressed', timeout=4)
    still_serves(gh, pki)


def test_sighup_reloads_certificate(gh, pki):
    old = pem_der(pki['main'][0])
    new = pem_der(pki['next'][0])
    assert peer_der(gh, pki) == old
    # an established connection keeps working across the reload
    keep = tls_connect(gh.tport, pki['ca'].cert)
    assert http_get(keep)[0] == 200
    shutil.copy(pki['next'][0], gh.live_cert)
    shutil.copy(pki['next'][1], gh.live_key)
    gh.signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while peer_der(gh, pki) != new and time.monotonic() < deadline:
        time.sleep(0.05)
    assert peer_der(gh, pki) == new
    assert http_get(keep)[0] == 200
    keep.close()
    # a broken certificate: logged, the current one stays
    with open(gh.live_cert, 'w') as f:
        f.write('-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n')
    gh.signal(signal.SIGHUP)
    assert log_has(gh, 'TLS certificates not reloaded, current ones kept', timeout=5)
    assert f'certificate {gh.live_cert}' in gh.log()
    assert peer_der(gh, pki) == new
    # a key that does not match: same
    shutil.copy(pki['main'][0], gh.live_cert)   # key is still next's
    gh.signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while gh.log().count('current ones kept') < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert 'key values mismatch' in gh.log() or 'key does not match' in gh.log()
    assert peer_der(gh, pki) == new
    still_serves(gh, pki)
    # put it back for the other tests
    shutil.copy(pki['main'][0], gh.live_cert)
    shutil.copy(pki['main'][1], gh.live_key)
    gh.signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while peer_der(gh, pki) != old and time.monotonic() < deadline:
        time.sleep(0.05)
    assert peer_der(gh, pki) == old


# ---- configuration errors ----

def run_check(tmp_path, text):
    conf = tmp_path / 'g.conf'
    conf.write_text(text)
    p = subprocess.run([GATEHOUSED, '-c', str(conf), '-f'], capture_output=True, timeout=20)
    return p.returncode, p.stderr.decode()


def test_missing_certificate_names_the_file(tmp_path):
    port = free_port()
    rc, err = run_check(tmp_path, f'[server]\nlisten = 127.0.0.1:{port} tls\n'
                                  f'tls_cert = /nonexistent/cert.pem\n[site /]\nhandler = fixed\n')
    assert rc != 0 and 'certificate /nonexistent/cert.pem' in err, err


def test_tls_without_certificate(tmp_path):
    port = free_port()
    rc, err = run_check(tmp_path, f'[server]\nlisten = 127.0.0.1:{port} tls\n'
                                  '[site /]\nhandler = fixed\n')
    assert rc != 0 and 'tls needs a certificate' in err, err


@pytest.mark.parametrize('line,text', [
    ('127.0.0.1:1 tsl', "unknown listen option 'tsl'"),
    ('127.0.0.1:1 cert=/x', 'cert= needs the tls option'),
    ('unix:/tmp/x.sock tls cert=/x', 'tls is for TCP listeners'),
    ('127.0.0.1:1 tls key=/x', 'give it after its cert=FILE'),
])
def test_bad_listen_options(tmp_path, line, text):
    rc, err = run_check(tmp_path, f'[server]\nlisten = {line}\n[site /]\nhandler = fixed\n')
    assert rc != 0 and text in err, err


def test_tls_key_without_cert(tmp_path):
    rc, err = run_check(tmp_path, '[server]\nlisten = 127.0.0.1:1\ntls_key = /x\n'
                                  '[site /]\nhandler = fixed\n')
    assert rc != 0 and 'belongs to the tls_cert line before it' in err, err


def test_per_listener_certificate(pki, tmp_path):
    port = free_port()
    d = Daemon(listen=[f'127.0.0.1:{port} tls cert={pki["sni"][0]} key={pki["sni"][1]}'],
               tmpdir=str(tmp_path))
    d.start()
    try:
        ctx = ssl.create_default_context(cafile=pki['ca'].cert)
        raw = socket.create_connection(('127.0.0.1', port), timeout=5)
        s = ctx.wrap_socket(raw, server_hostname='other.gh.test')
        assert http_get(s)[2] == b'hello'
        s.close()
    finally:
        assert d.stop() == 0
