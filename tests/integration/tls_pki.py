"""tls_pki.py: a throwaway test CA and server certificates made with the openssl CLI, and TLS client helpers for the TLS integration tests."""
import hashlib
import os
import socket
import ssl
import subprocess

import http_wire


def _run(args, cwd):
    subprocess.run(args, cwd=cwd, check=True, capture_output=True)


class ScratchCA:
    """A CA in dir; issue() makes a key + certificate signed by it."""

    def __init__(self, dir):
        self.dir = dir
        os.makedirs(dir, exist_ok=True)
        self.key = os.path.join(dir, 'ca.key')
        self.cert = os.path.join(dir, 'ca.pem')
        _run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', self.key,
              '-out', self.cert, '-days', '2', '-subj', '/CN=gatehouse test CA',
              '-addext', 'basicConstraints=critical,CA:TRUE',
              '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir)
        self.serial = 1000

    def issue(self, name, dns, key_type='rsa:2048', combined=False, md='sha256'):
        """Returns (cert_path, key_path); combined: key appended to the cert file."""
        self.serial += 1
        key = os.path.join(self.dir, f'{name}.key')
        csr = os.path.join(self.dir, f'{name}.csr')
        crt = os.path.join(self.dir, f'{name}.pem')
        ext = os.path.join(self.dir, f'{name}.ext')
        with open(ext, 'w') as f:
            f.write('subjectAltName=' + ','.join('DNS:' + d for d in dns) + '\n'
                    'extendedKeyUsage=serverAuth\n')
        if key_type.startswith('ec'):
            _run(['openssl', 'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
                  '-nodes', '-keyout', key, '-out', csr, '-subj', f'/CN={dns[0]}'], self.dir)
        else:
            _run(['openssl', 'req', '-newkey', key_type, '-nodes', '-keyout', key, '-out', csr,
                  '-subj', f'/CN={dns[0]}'], self.dir)
        _run(['openssl', 'x509', '-req', '-in', csr, '-CA', self.cert, '-CAkey', self.key,
              '-set_serial', str(self.serial), '-days', '2', '-out', crt, '-extfile', ext,
              f'-{md}'], self.dir)
        if combined:
            with open(crt, 'a') as f, open(key) as k:
                f.write(k.read())
            return crt, None
        return crt, key


def client_context(ca, max_version=None):
    ctx = ssl.create_default_context(cafile=ca)
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


def tls_connect(port, ca, server_hostname='localhost', session=None, max_version=None,
                timeout=10, ctx=None):
    ctx = ctx or client_context(ca, max_version)
    raw = socket.create_connection(('127.0.0.1', port), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname=server_hostname, session=session)


def end_point(der):
    """RFC 5929 tls-server-end-point application data for an RSA/ECDSA-SHA256 certificate."""
    return b'tls-server-end-point:' + hashlib.sha256(der).digest()


def http_get(s, path='/', headers=(), host='localhost'):
    """One request on an open (TLS) socket; returns (status, headers dict-list, body bytes)."""
    h = f'GET {path} HTTP/1.1\r\nHost: {host}\r\n'
    for k, v in headers:
        h += f'{k}: {v}\r\n'
    s.sendall((h + '\r\n').encode())
    return read_response(s)


class _Buf:
    pass


def read_response(s, state=None):
    """(status, headers, body) of the next response on s (http_wire's reader; what follows
    is kept on the socket for the next call)."""
    status, hdrs, body, rest = http_wire.read_response(s, getattr(s, '_gh_buf', b''))
    try:
        s._gh_buf = rest
    except AttributeError:
        pass
    return status, hdrs, body
