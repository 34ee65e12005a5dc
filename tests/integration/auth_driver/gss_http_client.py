#!/usr/bin/python3
"""gss_http_client.py: python-gssapi HTTP client for the auth HTTP tests (Kerberos/SPNEGO tokens, NTLM exchanges on raw sockets).

Runs in its own process so that KRB5_CONFIG / KRB5CCNAME of the test realm
apply (the caller passes the client environment). Prints one JSON object.

  token SPN [--raw] [--deleg]          a fresh initiator token (base64), for replay/expiry tests
  krb5 HOST PORT PATH SPN [--mutual]   one SPNEGO request; with --mutual the client verifies
                                       the server's mutual-auth token (gss step)
  ntlm HOST PORT PATH USER PW TARGET [--cross|--anon|--then-noheader]
                                       raw NTLM exchange on one keep-alive connection;
                                       --cross sends AUTHENTICATE on a second connection,
                                       --anon sends an anonymous AUTHENTICATE,
                                       --then-noheader adds a request with no Authorization
  spnego-ntlm HOST PORT PATH USER PW TARGET
                                       NTLM inside Negotiate (SPNEGO) with password
                                       credentials and no Kerberos ticket, on one keep-alive
                                       connection; the client checks the server's last token
"""
import base64
import json
import os
import socket
import struct
import sys

import gssapi
import gssapi.raw as graw

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from http_wire import read_response  # noqa: E402

SPNEGO = gssapi.OID.from_int_seq('1.3.6.1.5.5.2')
KRB5 = gssapi.OID.from_int_seq('1.2.840.113554.1.2.2')
NTLMSSP = gssapi.OID.from_int_seq('1.3.6.1.4.1.311.2.2.10')


class Conn:
    def __init__(self, host, port):
        self.s = socket.create_connection((host, int(port)), timeout=10)
        self.buf = b''

    def request(self, path, authz=None, extra=''):
        h = f'GET {path} HTTP/1.1\r\nHost: localhost\r\n'
        if authz:
            h += f'Authorization: {authz}\r\n'
        self.s.sendall((h + extra + '\r\n').encode())
        status, hdrs, body, self.buf = read_response(self.s, self.buf)
        return status, hdrs, body.decode('utf-8', 'replace')

    def close(self):
        self.s.close()


def www_auth(hdrs, scheme):
    for k, v in hdrs:
        if k.lower() == 'www-authenticate' and v.split(' ')[0].lower() == scheme.lower():
            parts = v.split(' ', 1)
            return base64.b64decode(parts[1]) if len(parts) > 1 else b''
    return None


def body_json(body):
    try:
        return json.loads(body)
    except ValueError:
        return {'raw': body}


def ctx_for(spn, mech, deleg=False):
    flags = [gssapi.RequirementFlag.mutual_authentication, gssapi.RequirementFlag.integrity,
             gssapi.RequirementFlag.confidentiality]
    if deleg:
        flags.append(gssapi.RequirementFlag.delegate_to_peer)
    name = gssapi.Name(spn, gssapi.NameType.hostbased_service)
    return gssapi.SecurityContext(name=name, mech=mech, flags=flags, usage='initiate')


def cmd_token(args):
    spn = args[0]
    ctx = ctx_for(spn, KRB5 if '--raw' in args else SPNEGO, '--deleg' in args)
    tok = ctx.step()
    return {'token': base64.b64encode(tok).decode()}


def cmd_krb5(args):
    host, port, path, spn = args[:4]
    ctx = ctx_for(spn, SPNEGO)
    tok = ctx.step()
    c = Conn(host, port)
    status, hdrs, body = c.request(path, 'Negotiate ' + base64.b64encode(tok).decode())
    out = {'status': status, 'body': body_json(body)}
    mutual = www_auth(hdrs, 'Negotiate')
    out['mutual_header'] = mutual is not None and len(mutual) > 0
    if '--mutual' in args:
        try:
            ctx.step(mutual)
            out['mutual_verified'] = bool(ctx.complete)
        except gssapi.exceptions.GSSError as e:
            out['mutual_verified'] = False
            out['mutual_error'] = str(e)
    c.close()
    return out


def ntlm_cred(user, pw):
    name = gssapi.Name(user, gssapi.NameType.user)
    return graw.acquire_cred_with_password(name, pw.encode(), usage='initiate',
                                           mechs=[NTLMSSP]).creds


def anon_authenticate(challenge):
    flags = struct.unpack('<I', challenge[20:24])[0] if len(challenge) >= 24 else 0
    msg = bytearray(89)
    msg[0:8] = b'NTLMSSP\0'
    msg[8] = 3
    struct.pack_into('<HHI', msg, 12, 1, 1, 88)  # LM response: one zero byte
    for f in range(5):
        struct.pack_into('<HHI', msg, 20 + f * 8, 0, 0, 89)
    struct.pack_into('<I', msg, 60, (flags & ~0x40000000) | 0x00000800)
    return bytes(msg)


def cmd_ntlm(args):
    host, port, path, user, pw, target = args[:6]
    cred = ntlm_cred(user, pw)
    name = gssapi.Name(target, gssapi.NameType.hostbased_service)
    ctx = gssapi.SecurityContext(name=name, mech=NTLMSSP, creds=cred, usage='initiate')
    out = {}
    c = Conn(host, port)
    t1 = ctx.step()
    status, hdrs, body = c.request(path, 'NTLM ' + base64.b64encode(t1).decode())
    out['leg1'] = status
    chal = www_auth(hdrs, 'NTLM')
    if status != 401 or not chal:
        out['error'] = 'no challenge'
        return out
    if '--anon' in args:
        t3 = anon_authenticate(chal)
    else:
        t3 = ctx.step(chal)
    c2 = Conn(host, port) if '--cross' in args else c
    status, hdrs, body = c2.request(path, 'NTLM ' + base64.b64encode(t3).decode())
    out['status'] = status
    out['body'] = body_json(body)
    if '--then-noheader' in args:
        status, hdrs, body = c2.request(path)
        out['noheader_status'] = status
        out['noheader'] = body_json(body)
    c.close()
    if c2 is not c:
        c2.close()
    return out


def cmd_spnego_ntlm(args):
    host, port, path, user, pw, target = args[:6]
    name = gssapi.Name(target, gssapi.NameType.hostbased_service)
    # SPNEGO credentials from the password, limited to NTLM (no Kerberos AS exchange)
    cred = graw.acquire_cred_with_password(gssapi.Name(user, gssapi.NameType.user), pw.encode(),
                                           usage='initiate', mechs=[SPNEGO]).creds
    graw.set_neg_mechs(cred, [NTLMSSP])
    ctx = gssapi.SecurityContext(name=name, mech=SPNEGO, creds=cred, usage='initiate')
    out = {'legs': []}
    c = Conn(host, port)
    tok = ctx.step()
    while True:
        status, hdrs, body = c.request(path, 'Negotiate ' + base64.b64encode(tok).decode())
        out['legs'].append(status)
        srv = www_auth(hdrs, 'Negotiate')
        if status != 401 or not srv or len(out['legs']) > 4:
            break
        tok = ctx.step(srv)
    out['status'] = status
    out['body'] = body_json(body)
    try:
        if srv and not ctx.complete:
            ctx.step(srv)          # the server's final SPNEGO token (mechListMIC)
        out['complete'] = bool(ctx.complete)
        out['mech_ntlm'] = ctx.mech == NTLMSSP
    except gssapi.exceptions.GSSError as e:
        out['complete'] = False
        out['client_error'] = str(e)
    c.close()
    return out


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    fn = {'token': cmd_token, 'krb5': cmd_krb5, 'ntlm': cmd_ntlm,
          'spnego-ntlm': cmd_spnego_ntlm}[cmd]
    print(json.dumps(fn(args)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
