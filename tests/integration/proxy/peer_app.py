"""peer_app.py: WSGI upstream for test_proxy_identity.py (run by gunicorn on a unix socket): reports the connection's SO_PEERCRED/SO_PEERGROUPS, the identity headers and the JWT as python3-jwt verified it."""
import json
import os
import socket
import struct

import jwt

SO_PEERGROUPS = getattr(socket, 'SO_PEERGROUPS', 59)
HS_KEY = os.environ.get('PEER_APP_HS256')      # file with the HS256 secret
ES_PUB = os.environ.get('PEER_APP_ES256_PUB')  # file with the ES256 public key
AUD = os.environ.get('PEER_APP_AUD')


def read(path, strip=False):
    with open(path, 'rb') as f:
        data = f.read()
    return data.rstrip(b'\n') if strip else data


def peer(sock):
    pid, uid, gid = struct.unpack('3i', sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    raw = sock.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, 1024)  # Python's limit: 256 groups
    return uid, gid, sorted(struct.unpack(f'{len(raw) // 4}I', raw))


def verify(token):
    if not token:
        return None
    try:
        alg = jwt.get_unverified_header(token)['alg']
        key = read(HS_KEY, strip=True) if alg == 'HS256' else read(ES_PUB)
        return jwt.decode(token, key, algorithms=[alg], audience=AUD)
    except jwt.PyJWTError as e:
        return {'error': type(e).__name__}


def app(environ, start_response):
    sock = environ['gunicorn.socket']
    uid, gid, groups = peer(sock)
    body = json.dumps({
        'peer': {'uid': uid, 'gid': gid, 'groups': groups},
        'conn': f'{os.getpid()}-{id(sock)}',
        'user': environ.get('HTTP_X_REMOTE_USER'),
        'groups': environ.get('HTTP_X_REMOTE_GROUPS'),
        'group_names': environ.get('HTTP_X_REMOTE_GROUP_NAMES'),
        'jwt': verify(environ.get('HTTP_X_JWT_ASSERTION')),
        'authorization': environ.get('HTTP_AUTHORIZATION'),
        'path': environ.get('PATH_INFO'),
    }).encode()
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', str(len(body)))])
    return [body]
