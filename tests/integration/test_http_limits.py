"""test_http_limits.py: every bad input gets its exact status from the server (and a close where stated), and the server keeps answering."""
import socket
import time

import pytest

from helpers import Conn, request

LIMITS = {
    'max_uri': 256,
    'max_header_bytes': 1024,
    'max_header_count': 10,
    'max_body': 1000,
    'header_timeout_ms': 700,
    'body_timeout_ms': 700,
    'keepalive_timeout_ms': 700,
}


@pytest.fixture
def d(gatehoused):
    return gatehoused(server=LIMITS, sites=[('/', {'handler': 'echo'})])


def still_serving(d):
    r = request(d.port, '/ok')
    assert r.status == 200 and b'path=/ok' in r.body


def expect_error(d, raw, status, closed=True):
    c = Conn(d.port)
    c.send(raw)
    r = c.read_response()
    assert r.status == status, (raw[:80], r.status, r.body)
    assert r.body.startswith(f'{status} '.encode())
    if closed:
        assert r.header('Connection') == 'close'
        assert c.is_closed()
    c.close()
    still_serving(d)
    return r


H = 'Host: t\r\n'

CASES = [
    ('uri_too_long_414', 'GET /' + 'a' * 300 + ' HTTP/1.1\r\n' + H + '\r\n', 414),
    ('header_count_431', 'GET / HTTP/1.1\r\n' + H + ''.join(f'X-{i}: v\r\n' for i in range(12)) + '\r\n', 431),
    ('header_bytes_431', 'GET / HTTP/1.1\r\n' + H + 'X-Big: ' + 'v' * 1100 + '\r\n\r\n', 431),
    ('body_cl_413', 'POST / HTTP/1.1\r\n' + H + 'Content-Length: 1001\r\n\r\n', 413),
    ('body_chunked_413', 'POST / HTTP/1.1\r\n' + H + 'Transfer-Encoding: chunked\r\n\r\n'
     + ('100\r\n' + 'x' * 256 + '\r\n') * 4 + '0\r\n\r\n', 413),
    ('garbage_400', '\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03 not http\r\n\r\n', 400),
    ('bad_request_line_400', 'GET/ HTTP/1.1\r\n' + H + '\r\n', 400),
    ('missing_host_400', 'GET / HTTP/1.1\r\n\r\n', 400),
    ('cl_and_te_400', 'POST / HTTP/1.1\r\n' + H + 'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400),
    ('duplicate_cl_400', 'POST / HTTP/1.1\r\n' + H + 'Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!', 400),
    ('obs_fold_400', 'GET / HTTP/1.1\r\n' + H + 'X-A: one\r\n  two\r\n\r\n', 400),
    ('nul_in_header_400', 'GET / HTTP/1.1\r\n' + H + 'X-A: a\x00b\r\n\r\n', 400),
    ('bad_escape_400', 'GET /a%zz HTTP/1.1\r\n' + H + '\r\n', 400),
    ('dotdot_above_root_400', 'GET /../etc/passwd HTTP/1.1\r\n' + H + '\r\n', 400),
    ('te_gzip_501', 'POST / HTTP/1.1\r\n' + H + 'Transfer-Encoding: gzip\r\n\r\n', 501),
    ('te_gzip_chunked_501', 'POST / HTTP/1.1\r\n' + H + 'Transfer-Encoding: gzip, chunked\r\n\r\n', 501),
    ('expect_unknown_417', 'POST / HTTP/1.1\r\n' + H + 'Expect: magic\r\nContent-Length: 1\r\n\r\nx', 417),
    ('http2_version_505', 'GET / HTTP/2.0\r\n' + H + '\r\n', 505),
]


@pytest.mark.parametrize('name,raw,status', CASES, ids=[c[0] for c in CASES])
def test_bad_input(d, name, raw, status):
    expect_error(d, raw.encode('latin-1'), status)


def test_limits_are_inclusive(d):
    # exactly at the limits is fine
    r = request(d.port, '/' + 'a' * 255)
    assert r.status == 200
    r = request(d.port, '/', method='POST', body=b'b' * 1000)
    assert r.status == 200 and r.body.endswith(b'b' * 1000)


def test_error_after_good_request_on_same_connection(d):
    c = Conn(d.port)
    c.send('GET /first HTTP/1.1\r\nHost: t\r\n\r\nGET /' + 'x' * 300 + ' HTTP/1.1\r\nHost: t\r\n\r\n')
    assert c.read_response().status == 200
    r = c.read_response()
    assert r.status == 414
    assert c.is_closed()


def test_header_timeout_408(d):
    c = Conn(d.port)
    c.send('GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ')
    t0 = time.monotonic()
    for _ in range(3):  # slowloris: trickling bytes does not extend the deadline
        time.sleep(0.2)
        c.send('a')
    r = c.read_response()
    assert r.status == 408
    assert time.monotonic() - t0 < 3
    assert c.is_closed()
    still_serving(d)


def test_body_timeout_408(d):
    c = Conn(d.port)
    c.send('POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc')
    r = c.read_response()
    assert r.status == 408
    assert c.is_closed()
    still_serving(d)


def test_idle_keepalive_timeout_closes(d):
    c = Conn(d.port)
    c.send('GET / HTTP/1.1\r\nHost: t\r\n\r\n')
    assert c.read_response().status == 200
    t0 = time.monotonic()
    assert c.is_closed(timeout=3)
    assert 0.4 < time.monotonic() - t0 < 2.5
    # and a fresh connection with no bytes at all is closed silently too
    c2 = Conn(d.port)
    assert c2.read_all() == b''


def test_max_connections_refused(gatehoused):
    d = gatehoused(server={'max_connections': 3})
    held = []
    for _ in range(3):
        c = Conn(d.port)
        c.send('GET / HTTP/1.1\r\nHost: t\r\n\r\n')
        assert c.read_response().status == 200
        held.append(c)
    c4 = Conn(d.port)
    raw = c4.read_all()
    assert raw.startswith(b'HTTP/1.1 503 ')
    assert b'Connection: close' in raw
    c4.close()
    held.pop().close()
    time.sleep(0.3)
    assert request(d.port, '/').status == 200
    for c in held:
        c.close()
