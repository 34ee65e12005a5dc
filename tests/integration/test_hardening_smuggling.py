"""test_hardening_smuggling.py: request-smuggling attempts (CL+TE, duplicate CL, obs-fold, bare LF, bad field names, chunk framing, HTTP/1.0 with Transfer-Encoding) get 400 and a close, the smuggled request is never served, and the same framings done right (also byte by byte) still work."""
import socket
import time

import pytest

from helpers import Conn, request

# test_http_limits.py already covers: cl_and_te_400, duplicate_cl_400 (differing), obs_fold_400,
# nul_in_header_400, te_gzip_501. These are the remaining variants.
H = 'Host: t\r\n'
SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n'

CASES_400 = [
    # Content-Length / Transfer-Encoding disagreement
    ('te_then_cl', 'POST / HTTP/1.1\r\n' + H + 'Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n' + SMUGGLED),
    ('cl_te_smuggle', 'POST / HTTP/1.1\r\n' + H + 'Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' + SMUGGLED),
    ('te_obs_folded_value', 'POST / HTTP/1.1\r\n' + H + 'Content-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n' + SMUGGLED),
    ('te_twice', 'POST / HTTP/1.1\r\n' + H + 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'),
    ('te_chunked_chunked', 'POST / HTTP/1.1\r\n' + H + 'Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n'),
    # duplicate or odd Content-Length
    ('dup_cl_zero_then_len', 'POST / HTTP/1.1\r\n' + H + f'Content-Length: 0\r\nContent-Length: {len(SMUGGLED)}\r\n\r\n' + SMUGGLED),
    ('dup_cl_same_value', 'POST / HTTP/1.1\r\n' + H + 'Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello'),
    ('cl_list', 'POST / HTTP/1.1\r\n' + H + 'Content-Length: 5, 5\r\n\r\nhello'),
    ('cl_plus_sign', 'POST / HTTP/1.1\r\n' + H + 'Content-Length: +5\r\n\r\nhello'),
    ('cl_negative', 'POST / HTTP/1.1\r\n' + H + 'Content-Length: -1\r\n\r\n'),
    ('cl_hex', 'POST / HTTP/1.1\r\n' + H + 'Content-Length: 0x5\r\n\r\nhello'),
    ('cl_overflow', 'POST / HTTP/1.1\r\n' + H + 'Content-Length: 99999999999999999999999\r\n\r\n'),
    ('cl_inner_space', 'POST / HTTP/1.1\r\n' + H + 'Content-Length: 1 0\r\n\r\n'),
    # field names must be tokens: whitespace before the colon (RFC 9112 5.1)
    ('te_space_before_colon', 'POST / HTTP/1.1\r\n' + H + 'Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n' + SMUGGLED),
    ('cl_space_before_colon', 'POST / HTTP/1.1\r\n' + H + 'Content-Length : 5\r\n\r\nhello'),
    ('space_in_field_name', 'GET / HTTP/1.1\r\n' + H + 'X Y: z\r\n\r\n'),
    ('field_without_colon', 'GET / HTTP/1.1\r\n' + H + 'NoColon\r\n\r\n'),
    # obs-fold on the first header line
    ('first_line_folded', 'GET / HTTP/1.1\r\n Host: t\r\n\r\n'),
    # bare LF / bare CR line ends
    ('bare_lf_request_line', 'GET / HTTP/1.1\n' + H + '\r\n'),
    ('bare_lf_header', 'GET / HTTP/1.1\r\nHost: t\nX-A: b\r\n\r\n'),
    ('bare_lf_everywhere', 'GET / HTTP/1.1\nHost: t\n\n'),
    ('bare_lf_ends_headers', 'GET / HTTP/1.1\r\n' + H + '\n'),
    ('bare_lf_smuggles_cl', 'GET / HTTP/1.1\r\n' + H + f'X-A: a\nContent-Length: {len(SMUGGLED)}\r\n\r\n' + SMUGGLED),
    ('bare_cr', 'GET / HTTP/1.1\r' + H + '\r\n'),
    ('cr_in_value', 'GET / HTTP/1.1\r\n' + H + 'X-A: a\rb\r\n\r\n'),
    # a bare CR where libhttp-parser ends the section / the line whatever follows
    ('bare_cr_ends_headers', 'GET / HTTP/1.1\r\n' + H + '\r' + SMUGGLED),
    ('bare_cr_ends_headers_junk', 'GET / HTTP/1.1\r\n' + H + 'X: a\r\n\r\x1f' + SMUGGLED),
    ('bare_cr_smuggles_cl', 'GET / HTTP/1.1\r\n' + H + f'X-A: a\rContent-Length: {len(SMUGGLED)}\r\n\r\n' + SMUGGLED),
    ('bare_cr_line_start', 'GET / HTTP/1.1\r\n' + H + '\rX-A: b\r\n\r\n'),
    # chunk framing
    ('chunk_bare_lf', 'POST / HTTP/1.1\r\n' + H + 'Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n'),
    ('chunk_ext_bare_lf', 'POST / HTTP/1.1\r\n' + H + 'Transfer-Encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n' + SMUGGLED),
    ('chunk_last_bare_lf', 'POST / HTTP/1.1\r\n' + H + 'Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\n\r\n' + SMUGGLED),
    ('chunk_trailer_bare_lf', 'POST / HTTP/1.1\r\n' + H + 'Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\n\r\n' + SMUGGLED),
    ('chunk_size_overflow', 'POST / HTTP/1.1\r\n' + H + 'Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff1\r\nx\r\n0\r\n\r\n'),
    ('chunk_negative', 'POST / HTTP/1.1\r\n' + H + 'Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n'),
    ('chunk_data_longer_than_size', 'POST / HTTP/1.1\r\n' + H + 'Transfer-Encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n' + SMUGGLED),
    # request line
    ('nul_in_target', 'GET /\x00 HTTP/1.1\r\n' + H + '\r\n'),
    ('junk_after_version', 'GET / HTTP/1.1 x\r\n' + H + '\r\n'),
    ('two_hosts', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'),
    # HTTP/1.0 with Transfer-Encoding: faulty framing (RFC 9112 6.1). An HTTP/1.0 intermediary
    # does not know chunked: for it the message has no body and the chunk bytes are the next
    # request. Refused (not served and closed after), so the body never reaches the application.
    ('http10_te_keep_alive', 'POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n'
     f'{len(SMUGGLED):x}\r\n' + SMUGGLED + '\r\n0\r\n\r\n' + SMUGGLED),
    ('http10_te_then_request', 'POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n'
     '0\r\n\r\n' + SMUGGLED),
    ('http10_te_host', 'POST / HTTP/1.0\r\n' + H + 'Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n'
     '0\r\n\r\n' + SMUGGLED),
    ('http10_te_with_cl', 'POST / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 5\r\n'
     'Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n' + SMUGGLED),
    ('http10_te_gzip', 'POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: gzip\r\n\r\n' + SMUGGLED),
    ('http10_get_te', 'GET / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' + SMUGGLED),
]

# The same framings, done right: must be served (no false positives from the stricter checks).
GOOD = [
    ('chunked', 'POST /c HTTP/1.1\r\n' + H + 'Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n', b'hello world'),
    ('te_tab_ows', 'POST /c HTTP/1.1\r\n' + H + 'Transfer-Encoding:\tchunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n', b'abc'),
    ('te_upper_case', 'POST /c HTTP/1.1\r\n' + H + 'TRANSFER-ENCODING: CHUNKED\r\n\r\n3\r\nabc\r\n0\r\n\r\n', b'abc'),
    ('content_length', 'POST /c HTTP/1.1\r\n' + H + 'Content-Length: 5\r\n\r\nhello', b'hello'),
    ('body_with_lf', 'POST /c HTTP/1.1\r\n' + H + 'Content-Length: 6\r\n\r\na\nb\n\nc', b'a\nb\n\nc'),
    ('chunk_data_with_lf', 'POST /c HTTP/1.1\r\n' + H + 'Transfer-Encoding: chunked\r\n\r\n4\r\n\n\n\n\n\r\n0\r\n\r\n', b'\n\n\n\n'),
    ('tokens_in_names', 'GET /c HTTP/1.1\r\n' + H + "X-a!#$%&'*+.^_`|~9: v\r\n\r\n", b'path=/c'),
    ('leading_crlf', '\r\nGET /c HTTP/1.1\r\n' + H + '\r\n', b'path=/c'),
]


@pytest.fixture
def d(gatehoused):
    return gatehoused(server={'header_timeout_ms': 2000, 'body_timeout_ms': 2000},
                      sites=[('/', {'handler': 'echo'})])


def read_until_close(s, timeout=5):
    out = b''
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            b = s.recv(65536)
        except ConnectionResetError:
            break
        except socket.timeout:
            raise AssertionError(f'server neither answered nor closed: {out[:200]!r}')
        if not b:
            break
        out += b
    return out


def send_raw(port, raw, bytewise=False):
    s = socket.create_connection(('127.0.0.1', port), timeout=5)
    try:
        data = raw.encode('latin-1')
        if bytewise:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(len(data)):
                try:
                    s.send(data[i:i + 1])
                except (BrokenPipeError, ConnectionResetError):
                    break
                time.sleep(0.001)
        else:
            s.sendall(data)
        return read_until_close(s)
    finally:
        s.close()


@pytest.mark.parametrize('name,raw', CASES_400, ids=[c[0] for c in CASES_400])
def test_smuggling_rejected(d, name, raw):
    out = send_raw(d.port, raw)
    assert out.startswith(b'HTTP/1.1 400 '), (name, out[:120])
    assert out.count(b'HTTP/1.1 ') == 1, (name, out)  # nothing after the 400
    assert b'path=/smuggled' not in out
    assert b'Connection: close' in out
    r = request(d.port, '/after')
    assert r.status == 200 and b'path=/after' in r.body


@pytest.mark.parametrize('name', ['bare_lf_header', 'bare_cr_ends_headers_junk', 'chunk_ext_bare_lf',
                                  'te_space_before_colon', 'http10_te_keep_alive',
                                  'dup_cl_zero_then_len', 'chunk_last_bare_lf'])
def test_smuggling_rejected_bytewise(d, name):
    """Split across reads (one byte per segment): the checks keep state between feeds."""
    raw = dict(CASES_400)[name]
    out = send_raw(d.port, raw, bytewise=True)
    assert out.startswith(b'HTTP/1.1 400 '), (name, out[:120])
    assert b'path=/smuggled' not in out


@pytest.mark.parametrize('name,raw,want', GOOD, ids=[g[0] for g in GOOD])
@pytest.mark.parametrize('bytewise', [False, True], ids=['whole', 'bytewise'])
def test_valid_framing_still_served(d, name, raw, want, bytewise):
    c = Conn(d.port)
    data = raw.encode('latin-1')
    if bytewise:
        c.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(data)):
            c.send(data[i:i + 1])
            time.sleep(0.0005)
    else:
        c.send(data)
    r = c.read_response()
    assert r.status == 200, (name, r.status, r.body)
    assert want in r.body, (name, r.body)
    # and the connection is still usable: a pipelined follow-up
    c.send('GET /next HTTP/1.1\r\nHost: t\r\n\r\n')
    r = c.read_response()
    assert r.status == 200 and b'path=/next' in r.body
    c.close()


def test_http10_with_te_closes(d):
    """HTTP/1.0 with Transfer-Encoding and no keep-alive: refused the same way (400, closed)."""
    out = send_raw(d.port, 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' + SMUGGLED)
    assert out.startswith(b'HTTP/1.1 400 '), out[:120]
    assert b'path=/smuggled' not in out
    assert out.count(b'HTTP/1.') == 1


def test_http10_keep_alive_without_te_still_persists(d):
    """HTTP/1.0 keep-alive without Transfer-Encoding is not affected: the connection persists."""
    c = Conn(d.port)
    c.send('GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n')
    r = c.read_response()
    assert r.status == 200 and b'path=/a' in r.body
    assert (r.header('Connection') or '').lower() == 'keep-alive', r.headers
    c.send('GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n')
    r = c.read_response()
    assert r.status == 200 and b'path=/b' in r.body
    c.close()
