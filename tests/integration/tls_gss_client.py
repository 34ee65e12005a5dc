#!/usr/bin/python3
"""tls_gss_client.py: python-gssapi HTTPS client for the channel-binding tests — Kerberos (SPNEGO) and NTLM with RFC 5929 tls-server-end-point bindings right, wrong or absent, and relays of a token bound to one TLS server onto another.

Runs in its own process with the realm's client environment; prints one JSON object.

  krb5 PORT PATH CA SPN CB [--cb-cert FILE] [--raw]
  ntlm PORT PATH CA USER PW TARGET CB [--cb-cert FILE]
  relay-krb5 PORT_A PORT_B PATH CA SPN      token bound to A's channel, sent to B
  relay-ntlm PORT_A PORT_B PATH CA USER PW TARGET
                                            challenge from B, AUTHENTICATE bound to A's
                                            channel, sent to B
CB: none | right (the connection's certificate) | wrong (--cb-cert's certificate)
"""
import base64
import hashlib
import json
import os
import socket
import ssl
import sys

import gssapi
import gssapi.raw as graw

# the plain-HTTP client's connection, OIDs and header parsing
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), 'auth_driver'))
from gss_http_client import KRB5, NTLMSSP, SPNEGO, Conn, ntlm_cred, www_auth  # noqa: E402


def end_point(der):
    return b'tls-server-end-point:' + hashlib.sha256(der).digest()


def pem_der(path):
    text = open(path).read()
    first = text[:text.index('-----END CERTIFICATE-----')] + '-----END CERTIFICATE-----\n'
    return ssl.PEM_cert_to_DER_cert(first)


class TlsConn(Conn):
    """Conn over TLS (verified against ca, SNI localhost); der = the server certificate."""

    def __init__(self, port, ca):  # noqa: super().__init__ would open a plain socket
        ctx = ssl.create_default_context(cafile=ca)
        raw = socket.create_connection(('127.0.0.1', int(port)), timeout=10)
        self.s = ctx.wrap_socket(raw, server_hostname='localhost')
        self.der = self.s.getpeercert(binary_form=True)
        self.buf = b''

    def request(self, path, authz=None):
        status, hdrs, body = super().request(path, authz)
        try:
            body = json.loads(body)
        except ValueError:
            pass
        return status, hdrs, body


def bindings(mode, conn_der, args):
    if mode == 'none':
        return None
    if mode == 'right':
        data = end_point(conn_der)
    else:
        data = end_point(pem_der(args[args.index('--cb-cert') + 1]))
    return graw.ChannelBindings(application_data=data)


def krb5_ctx(spn, cb, raw=False):
    name = gssapi.Name(spn, gssapi.NameType.hostbased_service)
    return gssapi.SecurityContext(name=name, mech=KRB5 if raw else SPNEGO, usage='initiate',
                                  flags=[gssapi.RequirementFlag.mutual_authentication],
                                  channel_bindings=cb)


def ntlm_ctx(user, pw, target, cb):
    cred = ntlm_cred(user, pw)
    return gssapi.SecurityContext(name=gssapi.Name(target, gssapi.NameType.hostbased_service),
                                  mech=NTLMSSP, creds=gssapi.Credentials(cred),
                                  usage='initiate', channel_bindings=cb)


def cmd_krb5(a):
    port, path, ca, spn, mode = a[:5]
    c = TlsConn(port, ca)
    ctx = krb5_ctx(spn, bindings(mode, c.der, a), '--raw' in a)
    st, _, body = c.request(path, 'Negotiate ' + base64.b64encode(ctx.step()).decode())
    c.close()
    return {'status': st, 'body': body}


def ntlm_exchange(c, path, ctx):
    st1, hdrs, _ = c.request(path, 'NTLM ' + base64.b64encode(ctx.step()).decode())
    chal = www_auth(hdrs, 'NTLM')
    if st1 != 401 or not chal:
        return {'leg1': st1}
    st, _, body = c.request(path, 'NTLM ' + base64.b64encode(ctx.step(chal)).decode())
    return {'leg1': st1, 'status': st, 'body': body}


def cmd_ntlm(a):
    port, path, ca, user, pw, target, mode = a[:7]
    c = TlsConn(port, ca)
    out = ntlm_exchange(c, path, ntlm_ctx(user, pw, target, bindings(mode, c.der, a)))
    c.close()
    return out


def cmd_relay_krb5(a):
    pa, pb, path, ca, spn = a[:5]
    victim = TlsConn(pa, ca)   # the client believes it talks to A
    tok = krb5_ctx(spn, graw.ChannelBindings(application_data=end_point(victim.der))).step()
    victim.close()
    attacker = TlsConn(pb, ca)  # the token is relayed to B
    st, _, body = attacker.request(path, 'Negotiate ' + base64.b64encode(tok).decode())
    attacker.close()
    return {'status': st, 'body': body, 'a_der_differs': True}


def cmd_relay_ntlm(a):
    pa, pb, path, ca, user, pw, target = a[:7]
    victim = TlsConn(pa, ca)
    cb = graw.ChannelBindings(application_data=end_point(victim.der))
    victim.close()
    attacker = TlsConn(pb, ca)
    out = ntlm_exchange(attacker, path, ntlm_ctx(user, pw, target, cb))
    attacker.close()
    return out


def main():
    cmds = {'krb5': cmd_krb5, 'ntlm': cmd_ntlm, 'relay-krb5': cmd_relay_krb5,
            'relay-ntlm': cmd_relay_ntlm}
    try:
        out = cmds[sys.argv[1]](sys.argv[2:])
    except gssapi.exceptions.GSSError as e:
        out = {'client_error': str(e)}
    print(json.dumps(out))


if __name__ == '__main__':
    main()
