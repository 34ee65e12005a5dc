"""test_http_core.py: gatehoused HTTP/1.1 behaviour end to end — keep-alive, pipelining, chunked upload, HEAD, HTTP/1.0, 100-continue, listeners, static files."""
import os
import socket
import subprocess
import time

import pytest

from helpers import Conn, free_port, request


ECHO = [('/', {'handler': 'echo'})]


def test_fixed_response_headers(gatehoused):
    d = gatehoused()
    r = request(d.port, '/')
    assert r.status == 200
    assert r.body == b'hello'
    assert r.header('Server').startswith('gatehouse/')
    assert r.header('Date').endswith(' GMT')
    assert r.header('Content-Length') == '5'


def test_keepalive_reuse(gatehoused):
    d = gatehoused(sites=ECHO)
    c = Conn(d.port)
    for i in range(5):
        c.send(f'GET /k{i} HTTP/1.1\r\nHost: t\r\n\r\n')
        r = c.read_response()
        assert r.status == 200
        assert f'path=/k{i}'.encode() in r.body
        assert r.header('Connection') is None
    c.close()
    # curl reuses one connection for two URLs
    p = subprocess.run(['curl', '-sv', d.url('/a'), d.url('/b')], capture_output=True, text=True)
    assert p.returncode == 0
    assert 'Re-using existing connection' in p.stderr or 'Reusing existing connection' in p.stderr


def test_100_pipelined_in_order(gatehoused):
    d = gatehoused(sites=ECHO)
    c = Conn(d.port, timeout=10)
    c.send(''.join(f'GET /p{i:03d} HTTP/1.1\r\nHost: t\r\n\r\n' for i in range(100)))
    for i in range(100):
        r = c.read_response()
        assert r.status == 200
        assert f'path=/p{i:03d}\n'.encode() in r.body, (i, r.body)
    c.close()


def test_chunked_upload(gatehoused):
    d = gatehoused(sites=ECHO)
    c = Conn(d.port)
    c.send('POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n'
           '5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer-X: y\r\n\r\n')
    r = c.read_response()
    assert r.status == 200
    assert b'body-length=12' in r.body
    assert r.body.endswith(b'hello, world')
    # the response streams its body in two sends: chunked
    assert r.header('Transfer-Encoding') == 'chunked'
    # and the connection is still usable
    c.send('GET /after HTTP/1.1\r\nHost: t\r\n\r\n')
    assert b'path=/after' in c.read_response().body
    c.close()
    # curl with a chunked upload from stdin
    p = subprocess.run(['curl', '-s', '-T', '-', '-H', 'Expect:', d.url('/curl')], input=b'x' * 70000,
                       capture_output=True)
    assert b'body-length=70000' in p.stdout


def test_content_length_upload_large(gatehoused):
    d = gatehoused(sites=ECHO)
    body = os.urandom(300000)
    r = request(d.port, '/big', method='POST', body=body)
    assert r.status == 200
    assert r.body.endswith(body)


def test_head(gatehoused, tmp_path):
    root = tmp_path / 'www'
    root.mkdir()
    (root / 'f.txt').write_text('twelve bytes')
    d = gatehoused(sites=[('/', {'handler': 'static', 'root': str(root)})])
    c = Conn(d.port)
    c.send('HEAD /f.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /f.txt HTTP/1.1\r\nHost: t\r\n\r\n')
    r = c.read_response(head=True)
    assert r.status == 200 and r.header('Content-Length') == '12' and r.body == b''
    r2 = c.read_response()
    assert r2.body == b'twelve bytes'
    c.close()


def test_http10(gatehoused):
    d = gatehoused()
    c = Conn(d.port)
    c.send('GET / HTTP/1.0\r\n\r\n')
    r = c.read_response()
    assert r.status == 200 and r.body == b'hello'
    assert r.header('Connection') == 'close'
    assert c.is_closed()
    c.close()
    c = Conn(d.port)
    c.send('GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n')
    r = c.read_response()
    assert r.header('Connection') == 'keep-alive'
    c.send('GET / HTTP/1.0\r\n\r\n')
    assert c.read_response().body == b'hello'
    c.close()
    # streamed (echo with body) to a 1.0 client: close-delimited, never chunked
    c = Conn(d.port)
    c.send('POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc')
    raw = c.read_all()
    assert b'hello' in raw
    c.close()


def test_connection_close(gatehoused):
    d = gatehoused()
    c = Conn(d.port)
    c.send('GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')
    r = c.read_response()
    assert r.status == 200 and r.header('Connection') == 'close'
    assert c.is_closed()


def test_expect_100_continue(gatehoused):
    d = gatehoused(sites=ECHO)
    c = Conn(d.port)
    c.send('PUT /e HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n')
    interim = c.read_response()
    assert interim.status == 100
    c.send('data')
    r = c.read_response()
    assert r.status == 200 and r.body.endswith(b'data')
    c.close()
    p = subprocess.run(['curl', '-sv', '-H', 'Expect: 100-continue', '--data-binary', 'y' * 2000,
                        d.url('/c')], capture_output=True, text=True)
    assert '< HTTP/1.1 100 Continue' in p.stderr
    assert 'body-length=2000' in p.stdout


def test_ipv6_and_unix_listeners(gatehoused, tmp_path):
    try:
        port6 = free_port(socket.AF_INET6, '::1')
    except OSError:
        pytest.skip('no IPv6 loopback')
    sock = str(tmp_path / 'gh.sock')
    port4 = free_port()
    d = gatehoused(listen=[f'127.0.0.1:{port4}', f'[::1]:{port6}', f'unix:{sock}'], sites=ECHO)
    p = subprocess.run(['curl', '-s', f'http://[::1]:{port6}/six'], capture_output=True)
    assert b'path=/six' in p.stdout
    p = subprocess.run(['curl', '-s', '--unix-socket', sock, 'http://local/unix?x=1'], capture_output=True)
    assert b'path=/unix\nquery=x=1' in p.stdout
    assert oct(os.stat(sock).st_mode & 0o777) == '0o666'
    del d


def test_static_files(gatehoused, tmp_path):
    root = tmp_path / 'www'
    (root / 'sub').mkdir(parents=True)
    (root / 'empty').mkdir()
    (root / 'index.html').write_text('<h1>hi</h1>')
    (root / 'sub' / 'index.html').write_text('sub index')
    (root / 'a.css').write_text('body{}')
    (root / 'data.bin').write_bytes(os.urandom(200000))
    os.symlink('/etc/passwd', root / 'escape')
    d = gatehoused(sites=[('/', {'handler': 'static', 'root': str(root)}),
                          ('/files', {'handler': 'static', 'root': str(root / 'sub')})])
    r = request(d.port, '/')
    assert r.status == 200 and r.body == b'<h1>hi</h1>' and r.header('Content-Type').startswith('text/html')
    assert request(d.port, '/a.css').header('Content-Type') == 'text/css'
    r = request(d.port, '/data.bin')
    assert r.body == (root / 'data.bin').read_bytes()
    assert r.header('Content-Type') == 'application/octet-stream'
    assert request(d.port, '/missing').status == 404
    assert request(d.port, '/empty/').status == 403
    r = request(d.port, '/sub')
    assert r.status == 301 and r.header('Location') == '/sub/'
    assert request(d.port, '/files/').body == b'sub index'
    assert request(d.port, '/escape').status in (403, 404)
    assert request(d.port, '/%2e%2e/%2e%2e/etc/passwd').status == 400
    assert request(d.port, '/', method='POST', body=b'x').status == 405


def test_large_static_file_slow_reader(gatehoused, tmp_path):
    """A response bigger than the socket buffers: the worker hands the tail to the I/O thread."""
    root = tmp_path / 'www'
    root.mkdir()
    data = os.urandom(24 << 20)
    (root / 'big').write_bytes(data)
    d = gatehoused(sites=[('/', {'handler': 'static', 'root': str(root)})])
    c = Conn(d.port, timeout=20)
    c.send('GET /big HTTP/1.1\r\nHost: t\r\n\r\nGET /big HTTP/1.1\r\nHost: t\r\n\r\n')
    time.sleep(1)  # the socket buffers fill up before the client reads
    assert c.read_response().body == data
    assert c.read_response().body == data
    c.close()
