#!/usr/bin/python3
"""upstream.py: a small HTTP/1.1 upstream for test_proxy.py and test_proxy_waits.py with odd behaviours chosen by path: echo, chunked, invalid, slow, extra bytes, 1xx, redirects and cookies, close-delimited, big download, upload sink, held answers, jitter, dropped connections.

Usage: upstream.py PORT|unix:PATH  (prints 'ready' once listening). Keep-alive connections;
every request is logged to stdout as one JSON line (connection id, method, target, headers);
on a unix socket the echo carries the peer's SO_PEERCRED.
"""
import hashlib
import json
import os
import random
import select
import socket
import struct
import sys
import threading
import time

CONN_IDS = iter(range(1, 1 << 30))
LOCK = threading.Lock()


def read_head(sock, buf):
    while b'\r\n\r\n' not in buf:
        d = sock.recv(65536)
        if not d:
            return None, buf
        buf += d
    head, rest = buf.split(b'\r\n\r\n', 1)
    return head.decode('latin-1'), rest


def read_exact(sock, buf, n, sink):
    while len(buf) < n:
        sink(buf)
        n -= len(buf)
        buf = sock.recv(min(1 << 20, n))
        if not buf:
            raise EOFError
    sink(buf[:n])
    return buf[n:]


def read_body(sock, buf, hdrs, sink):
    te = hdrs.get('transfer-encoding', '')
    if 'chunked' in te.lower():
        while True:
            while b'\r\n' not in buf:
                buf += sock.recv(65536)
            line, buf = buf.split(b'\r\n', 1)
            n = int(line.split(b';')[0], 16)
            if n == 0:
                while not buf.startswith(b'\r\n'):
                    buf += sock.recv(65536)
                return buf[2:]
            buf = read_exact(sock, buf, n, sink)
            while len(buf) < 2:
                buf += sock.recv(65536)
            buf = buf[2:]
    n = int(hdrs.get('content-length', '0'))
    return read_exact(sock, buf, n, sink) if n else buf


def respond(sock, status, body=b'', headers=(), length=True):
    h = [f'HTTP/1.1 {status}']
    for k, v in headers:
        h.append(f'{k}: {v}')
    if length:
        h.append(f'Content-Length: {len(body)}')
    sock.sendall(('\r\n'.join(h) + '\r\n\r\n').encode() + body)


def peer_closed_within(sock, secs):
    """Waits up to secs for the peer to close (True), else False; bytes it sends are left."""
    deadline = time.monotonic() + secs
    while (left := deadline - time.monotonic()) > 0:
        if select.select([sock], [], [], left)[0]:
            if sock.recv(1, socket.MSG_PEEK) == b'':
                return True
            time.sleep(min(left, 0.05))
    return False


def log(info):
    with LOCK:
        sys.stdout.write(json.dumps(info) + '\n')
        sys.stdout.flush()


def handle(sock, cid, method, target, fields, hdrs, body_info):
    path = target.split('?')[0]
    info = {'conn': cid, 'method': method, 'target': target, 'headers': fields, **body_info}
    if sock.family == socket.AF_UNIX:
        info['peer'] = struct.unpack('3i', sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    log(info)
    me = f'http://{hdrs.get("host", "")}'
    if path.endswith('/invalid'):
        sock.sendall(b'HTTP/1.1 2x0 Nope\r\nContent-Length: 0\r\n\r\n')
        return False
    if path.endswith('/slow'):
        time.sleep(float(target.split('?')[1]) if '?' in target else 3)
        respond(sock, '200 OK', b'late\n')
        return True
    if path.endswith('/hold'):
        # the echo after SECS (hold?SECS&...), unless the peer closes first
        if peer_closed_within(sock, float(target.split('?')[1].split('&')[0])):
            return False
    if path.endswith('/jitter'):
        time.sleep(random.uniform(0, 0.05))
    if path.endswith('/drop-next'):
        echo(sock, info)
        return 'drop-next'  # the next request on this connection is not answered
    if path.endswith('/bye-idle'):
        echo(sock, info)
        time.sleep(0.2)
        return False  # closed while idle in the proxy's pool
    if path.endswith('/switch'):
        sock.sendall(b'HTTP/1.1 101 Switching Protocols\r\nUpgrade: evil\r\nConnection: upgrade\r\n\r\nraw')
        return False
    if path.endswith('/stall'):
        sock.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n' + b'y' * 70000)
        time.sleep(3)
        return False
    if path.endswith('/extra'):
        # an answer, then a second one nobody asked for (a smuggled response)
        sock.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nfirst\n'
                     b'HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nEVIL!\n')
        return True
    if path.endswith('/extra-later'):
        respond(sock, '200 OK', b'first\n')
        time.sleep(0.3)
        sock.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nEVIL!\n')
        return True
    if path.endswith('/interim'):
        sock.sendall(b'HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n'
                     b'HTTP/1.1 100 Continue\r\n\r\n')
        respond(sock, '200 OK', b'after interim\n')
        return True
    if path.endswith('/redirect'):
        pre = target.rsplit('/redirect', 1)[0]
        respond(sock, '302 Found', b'', [('Location', f'{me}{pre}/there'),
                                         ('Set-Cookie', f'a=1; Path={pre}/sub; HttpOnly'),
                                         ('Set-Cookie', 'b=2; Path=/elsewhere')])
        return True
    if path.endswith('/chunked'):
        sock.sendall(b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n'
                     b'Connection: X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\n\r\n'
                     b'5\r\nhello\r\n7\r\n chunky\r\n0\r\n\r\n')
        return True
    if path.endswith('/odd-head'):
        # a head the relay must copy exactly: its own reason, a length with leading
        # zeros, a Via chain, a value with HT and padding, names beyond letters
        sock.sendall(b'HTTP/1.1 200 Fine Indeed\r\nContent-Length: 003\r\nVia: 1.0 far\r\n'
                     b'X-Tab: a\tb\r\nX-Pad:  \t padded value \t \r\nX_Under.score!: u\r\n'
                     b'X-Empty:\r\nX-Long-Value-Name-Here: ' + b'v' * 37 + b'\r\n\r\nabc')
        return True
    if path.endswith('/ok-head'):
        sock.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n')
        return True
    if path.endswith('/eof'):
        sock.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end\n')
        return False
    if path.endswith('/head'):
        respond(sock, '200 OK', b'' if method == 'HEAD' else b'0123456789',
                length=False, headers=[('Content-Length', '10')])
        return True
    if path.endswith('/big'):
        n = int(target.split('?')[1])
        sock.sendall(f'HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n'.encode())
        block = b'x' * (1 << 20)
        while n > 0:
            sock.sendall(block[:min(n, len(block))])
            n -= min(n, len(block))
        return True
    echo(sock, info)
    return True


def echo(sock, info):
    respond(sock, '200 OK', json.dumps(info).encode(),
            [('Content-Type', 'application/json'), ('Connection', 'keep-alive, X-Up-Hop'),
             ('X-Up-Hop', 'no'), ('Server', 'py-upstream')])


def serve(sock):
    with LOCK:
        cid = next(CONN_IDS)
    buf = b''
    dropping = False
    try:
        while True:
            head, buf = read_head(sock, buf)
            if head is None:
                return
            lines = head.split('\r\n')
            method, target, _ = lines[0].split(' ', 2)
            fields = [tuple(x.split(': ', 1)) for x in lines[1:]]
            hdrs = {k.lower(): v for k, v in fields}
            h = hashlib.sha256()
            count = [0]

            def sink(b):
                count[0] += len(b)
                h.update(b)
            buf = read_body(sock, buf, hdrs, sink)
            info = {'body_len': count[0], 'body_sha256': h.hexdigest()}
            if dropping:  # as an upstream whose keep-alive timer fired just then
                log({'conn': cid, 'dropped': True, 'target': target})
                return
            done = handle(sock, cid, method, target, fields, hdrs, info)
            dropping = done == 'drop-next'
            if not done:
                return
    except (OSError, EOFError, ValueError):
        pass
    finally:
        sock.close()
        with LOCK:
            sys.stdout.write(json.dumps({'closed': cid}) + '\n')
            sys.stdout.flush()


def main():
    where = sys.argv[1]
    if where.startswith('unix:'):
        s = socket.socket(socket.AF_UNIX)
        path = where[5:]
        if os.path.exists(path):
            os.unlink(path)
        s.bind(path)
        os.chmod(path, 0o666)
    else:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(('127.0.0.1', int(where)))
    s.listen(256)
    print('ready', flush=True)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


if __name__ == '__main__':
    main()
