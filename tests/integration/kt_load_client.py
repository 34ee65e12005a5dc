#!/usr/bin/python3
"""kt_load_client.py: a Negotiate load loop for the keytab tests — a fresh SPNEGO token per request from the ccache's service ticket, until a stop file appears; prints a JSON summary.

  kt_load_client.py HOST PORT PATH SPN STOPFILE [REQUESTS_PER_CONNECTION]

Runs in its own process so that the caller's KRB5_CONFIG / KRB5CCNAME
apply. Every answer but 200 counts as a failure (with the time and status).
A new connection every REQUESTS_PER_CONNECTION requests (default 10), so
that with worker processes every process gets some of the load.
"""
import base64
import json
import os
import socket
import sys
import time

import gssapi

SPNEGO = gssapi.OID.from_int_seq('1.3.6.1.5.5.2')


class Conn:
    def __init__(self, host, port):
        self.s = socket.create_connection((host, int(port)), timeout=10)
        self.buf = b''

    def get(self, path, authz):
        self.s.sendall(f'GET {path} HTTP/1.1\r\nHost: localhost\r\n'
                       f'Authorization: {authz}\r\n\r\n'.encode())
        while b'\r\n\r\n' not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise EOFError('closed')
            self.buf += d
        head, self.buf = self.buf.split(b'\r\n\r\n', 1)
        lines = head.decode('latin-1').split('\r\n')
        clen = 0
        for line in lines[1:]:
            k, _, v = line.partition(':')
            if k.strip().lower() == 'content-length':
                clen = int(v)
        while len(self.buf) < clen:
            d = self.s.recv(65536)
            if not d:
                raise EOFError('closed')
            self.buf += d
        self.buf = self.buf[clen:]
        return int(lines[0].split()[1])

    def close(self):
        self.s.close()


def main():
    host, port, path, spn, stop = sys.argv[1:6]
    per_conn = int(sys.argv[6]) if len(sys.argv) > 6 else 10
    name = gssapi.Name(spn, gssapi.NameType.hostbased_service)
    ok, failed, first_ok, last_ok = 0, [], None, None
    conn, used = None, 0
    while not os.path.exists(stop):
        ctx = gssapi.SecurityContext(name=name, mech=SPNEGO, usage='initiate')
        tok = base64.b64encode(ctx.step()).decode()
        try:
            if conn is None or used >= per_conn:
                if conn:
                    conn.close()
                conn, used = Conn(host, port), 0
            used += 1
            status = conn.get(path, 'Negotiate ' + tok)
        except (OSError, EOFError) as e:
            failed.append(f'{time.time():.3f} {e!r}')
            conn = None
            continue
        if status == 200:
            ok += 1
            last_ok = time.time()
            first_ok = first_ok or last_ok
        else:
            failed.append(f'{time.time():.3f} status {status}')
    print(json.dumps({'ok': ok, 'n_failed': len(failed), 'failed': failed[:20],
                      'first_ok': first_ok, 'last_ok': last_ok}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
