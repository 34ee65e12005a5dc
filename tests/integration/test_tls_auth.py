"""test_tls_auth.py: authentication over HTTPS and Extended Protection — curl (Negotiate, NTLM, Basic, anonymous) with a test CA, python-gssapi with RFC 5929 tls-server-end-point channel bindings right/wrong/absent x legacy/medium/strict, tokens bound to one TLS server relayed to another, the allowed_spns service check.

A throwaway MIT realm (gh_realm.py) and gatehoused with three listeners: A
(TLS, certificate "main"), B (TLS, another certificate for the same name:
same host, other channel) and a plain one.
"""
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gh_realm import GhRealm  # noqa: E402
from helpers import GATEHOUSED, free_port  # noqa: E402
from tls_pki import ScratchCA, http_get, tls_connect  # noqa: E402

CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'tls_gss_client.py')
UIDS = {'alice': 20001, 'bob': 20002, 'carol': 20003}
GSS_S_BAD_BINDINGS = 4 << 16
FLAG_CBT_PRESENT, FLAG_CBT_VERIFIED, FLAG_SPN_VERIFIED = 0x100, 0x200, 0x400

pytestmark = [
    pytest.mark.skipif(not os.path.exists(GATEHOUSED), reason=f'{GATEHOUSED} not built'),
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root: impersonation'),
]

AUTH = 'negotiate ntlm anonymous'
SITES = [
    ('/', {'auth': 'negotiate ntlm basic anonymous'}),
    ('/legacy', {'auth': AUTH, 'channel_binding': 'legacy'}),
    ('/medium', {'auth': AUTH, 'channel_binding': 'medium'}),
    ('/strict', {'auth': AUTH, 'channel_binding': 'strict'}),
    ('/spn-ok', {'auth': AUTH, 'allowed_spns': 'HTTP/www.gh.test HTTP/localhost'}),
    ('/spn-other', {'auth': AUTH, 'allowed_spns': 'HTTP/other.gh.test'}),
    ('/spn-legacy', {'auth': AUTH, 'allowed_spns': 'HTTP/other.gh.test',
                     'channel_binding': 'legacy'}),
    ('/spn-strict', {'auth': AUTH, 'allowed_spns': 'HTTP/localhost',
                     'channel_binding': 'strict'}),
    ('/spn-host', {'auth': AUTH, 'allowed_spns': f'HTTP/{socket.gethostname()}'}),
    ('/basic', {'auth': 'basic'}),
    ('/open', {'handler': 'authinfo'}),
]


@pytest.fixture(scope='module')
def realm():
    r = GhRealm()
    yield r
    r.close()


@pytest.fixture(scope='module')
def pki(tmp_path_factory):
    d = tempfile.mkdtemp(prefix='gh-pki-')
    os.chmod(d, 0o755)
    ca = ScratchCA(d)
    p = {'ca': ca, 'a': ca.issue('a', ['localhost']), 'b': ca.issue('b', ['localhost'])}
    yield p
    shutil.rmtree(d, ignore_errors=True)


class Gh:
    def __init__(self, realm, pki, tmp):
        self.dir = str(tmp)
        self.pa, self.pb, self.pp = free_port(), free_port(), free_port()
        self.probe = tempfile.mkdtemp(prefix='gh-probe-')
        os.chmod(self.probe, 0o1777)
        lines = ['[server]',
                 f'listen = 127.0.0.1:{self.pa} tls',
                 f'listen = 127.0.0.1:{self.pb} tls cert={pki["b"][0]} key={pki["b"][1]}',
                 f'listen = 127.0.0.1:{self.pp}',
                 f'tls_cert = {pki["a"][0]}', f'tls_key = {pki["a"][1]}',
                 'workers = 4', f'keytab = {realm.keytab}',
                 f'ntlm_user_file = {realm.ntlm_user_file}', 'pam_service = gatehouse',
                 f'ccache_dir = {realm.ccache_dir}', 'min_uid = 1000']
        for prefix, keys in SITES:
            keys = dict(keys)
            keys.setdefault('handler', 'authinfo')
            keys['probe_dir'] = self.probe
            lines += ['', f'[site {prefix}]'] + [f'{k} = {v}' for k, v in keys.items()]
        self.conf = os.path.join(self.dir, 'gh.conf')
        with open(self.conf, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        self.errpath = os.path.join(self.dir, 'stderr.log')
        self.err = open(self.errpath, 'wb')
        self.proc = subprocess.Popen([GATEHOUSED, '-c', self.conf, '-f'], env=realm.env(),
                                     stdout=subprocess.DEVNULL, stderr=self.err)
        deadline = time.monotonic() + 15
        while 'ready' not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError('gatehoused: ' + self.log())
            time.sleep(0.02)

    def log(self):
        with open(self.errpath, errors='replace') as f:
            return f.read()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.err.close()
        shutil.rmtree(self.probe, ignore_errors=True)


@pytest.fixture(scope='module')
def gh(realm, pki, tmp_path_factory):
    d = Gh(realm, pki, tmp_path_factory.mktemp('gh'))
    yield d
    d.stop()


@pytest.fixture(scope='module')
def cc(realm):
    return {u: realm.kinit(u) for u in UIDS}


def client_env(realm, extra=None):
    e = realm.base_env()
    e.pop('LD_PRELOAD', None)
    e.update(extra or {})
    return e


def gss(env, *args):
    p = subprocess.run(['/usr/bin/python3', CLIENT] + [str(a) for a in args], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def curl(args, env):
    p = subprocess.run(['curl', '-sS', '-D', '-', '--max-time', '20'] + args, env=env,
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode('utf-8', 'replace')
    heads = [b for b in out.split('\r\n\r\n') if b.startswith('HTTP/')]
    head = heads[-1]
    body = out[out.rindex(head) + len(head) + 4:]
    status = int(head.split('\r\n')[0].split()[1])
    try:
        body = json.loads(body)
    except ValueError:
        pass
    return status, head, body


def basic(user, pw):
    return 'Basic ' + base64.b64encode(f'{user}:{pw}'.encode()).decode()


def still_serves(gh, pki):
    s = tls_connect(gh.pa, pki['ca'].cert)
    st, _, body = http_get(s, '/basic', [('Authorization', basic('carol', 'carolpw'))])
    s.close()
    body = json.loads(body)
    assert st == 200 and body['status'] == 'SUCCESS' and body['token_uid'] == UIDS['carol']


def ntlm_target():
    return 'HTTP@' + socket.gethostname()


# ---- curl over HTTPS, every scheme ----

def test_curl_https_negotiate(gh, realm, pki, cc):
    st, head, body = curl(['--cacert', pki['ca'].cert, '--negotiate', '-u', ':',
                           f'https://localhost:{gh.pa}/'], cc['alice'])
    assert st == 200 and body['status'] == 'SUCCESS' and body['package'] == 'Kerberos'
    assert body['token_uid'] == UIDS['alice']
    # curl 7.88 sends no channel bindings: medium serves it, unverified
    assert body['flags'] & (FLAG_CBT_PRESENT | FLAG_CBT_VERIFIED) == 0
    assert 'WWW-Authenticate: Negotiate ' in head   # mutual auth


def test_curl_https_ntlm(gh, realm, pki):
    st, _, body = curl(['--cacert', pki['ca'].cert, '--ntlm', '-u', 'GH\\bob:bobpw',
                        f'https://localhost:{gh.pa}/'], client_env(realm))
    assert st == 200 and body['status'] == 'SUCCESS' and body['package'] == 'NTLM'
    assert body['token_uid'] == UIDS['bob']


def test_curl_https_basic_without_plain_override(gh, realm, pki):
    st, head, body = curl(['--cacert', pki['ca'].cert, '-u', 'carol:carolpw',
                           f'https://localhost:{gh.pa}/basic'], client_env(realm))
    assert st == 200 and body['status'] == 'SUCCESS' and body['token_uid'] == UIDS['carol']
    # over plain HTTP the same site offers no Basic at all
    st, head, _ = curl([f'http://127.0.0.1:{gh.pp}/basic'], client_env(realm))
    assert st == 401 and 'Basic' not in head
    st, head, _ = curl(['--cacert', pki['ca'].cert, f'https://localhost:{gh.pa}/basic'],
                       client_env(realm))
    assert st == 401 and 'WWW-Authenticate: Basic realm=' in head


def test_curl_https_anonymous(gh, realm, pki):
    st, _, body = curl(['--cacert', pki['ca'].cert, f'https://localhost:{gh.pa}/'],
                       client_env(realm))
    assert st == 200 and body['status'] == 'NOT_AUTHENTICATED'
    st, _, body = curl(['--cacert', pki['ca'].cert, f'https://localhost:{gh.pa}/open'],
                       client_env(realm))
    assert st == 200 and body['auth_enabled'] == 0


def test_curl_negotiate_strict_refused(gh, realm, pki, cc):
    st, head, body = curl(['--cacert', pki['ca'].cert, '--negotiate', '-u', ':',
                           f'https://localhost:{gh.pa}/strict'], cc['alice'])
    assert st == 200 and body['status'] == 'FAILURE' and body['token'] == 0
    assert 'channel binding required' in body['sec_text']
    still_serves(gh, pki)


# ---- python-gssapi: bindings right / wrong / absent x legacy / medium / strict ----

KRB_MATRIX = [
    # level, bindings, status, flags expected
    ('legacy', 'right', 'SUCCESS', 0),
    ('legacy', 'wrong', 'SUCCESS', 0),
    ('legacy', 'none', 'SUCCESS', 0),
    ('medium', 'right', 'SUCCESS', FLAG_CBT_PRESENT | FLAG_CBT_VERIFIED),
    ('medium', 'wrong', 'FAILURE', None),
    ('medium', 'none', 'SUCCESS', 0),
    ('strict', 'right', 'SUCCESS', FLAG_CBT_PRESENT | FLAG_CBT_VERIFIED),
    ('strict', 'wrong', 'FAILURE', None),
    ('strict', 'none', 'FAILURE', None),
]


@pytest.mark.parametrize('mech', ['spnego', 'raw-krb5'])
@pytest.mark.parametrize('level,cb,want,flags', KRB_MATRIX)
def test_kerberos_channel_binding(gh, realm, pki, cc, level, cb, want, flags, mech):
    extra = ['--raw'] if mech == 'raw-krb5' else []
    out = gss(cc['bob'], 'krb5', gh.pa, f'/{level}', pki['ca'].cert, 'HTTP@localhost', cb,
              '--cb-cert', pki['b'][0], *extra)
    body = out['body']
    assert out['status'] == 200 and body['status'] == want, out
    if want == 'SUCCESS':
        assert body['token_uid'] == UIDS['bob'] and body['package'] == 'Kerberos'
        assert body['flags'] & 0x700 == flags, body
    else:
        assert body['token'] == 0
        if cb == 'wrong':
            assert body['sec_major'] & 0xffff0000 == GSS_S_BAD_BINDINGS, body
            assert body['flags'] & FLAG_CBT_PRESENT
        else:
            assert 'channel binding required' in body['sec_text']
    still_serves(gh, pki) if want == 'FAILURE' else None


NTLM_MATRIX = [
    ('legacy', 'right', 'SUCCESS', 0),
    ('legacy', 'wrong', 'SUCCESS', 0),
    ('legacy', 'none', 'SUCCESS', 0),
    ('medium', 'right', 'SUCCESS', FLAG_CBT_PRESENT | FLAG_CBT_VERIFIED),
    ('medium', 'wrong', 'FAILURE', None),
    ('medium', 'none', 'SUCCESS', 0),
    ('strict', 'right', 'SUCCESS', FLAG_CBT_PRESENT | FLAG_CBT_VERIFIED),
    ('strict', 'wrong', 'FAILURE', None),
    ('strict', 'none', 'FAILURE', None),
]


@pytest.mark.parametrize('level,cb,want,flags', NTLM_MATRIX)
def test_ntlm_channel_binding(gh, realm, pki, level, cb, want, flags):
    out = gss(client_env(realm), 'ntlm', gh.pa, f'/{level}', pki['ca'].cert, 'GH\\alice',
              'alicepw', ntlm_target(), cb, '--cb-cert', pki['b'][0])
    assert out.get('leg1') == 401, out
    body = out['body']
    assert out['status'] == 200 and body['status'] == want, out
    if want == 'SUCCESS':
        assert body['token_uid'] == UIDS['alice'] and body['package'] == 'NTLM'
        assert body['flags'] & 0x700 == flags, body
    else:
        assert body['token'] == 0
        if cb == 'wrong':
            assert body['flags'] & FLAG_CBT_PRESENT
        else:
            assert 'channel binding required' in body['sec_text']
        still_serves(gh, pki)


def test_bindings_ignored_on_plain_http(gh, realm, cc):
    """No TLS, nothing to bind: strict does not apply (service binding does)."""
    from helpers import Conn
    tok = subprocess.run(['/usr/bin/python3', '-c',
                          'import gssapi,base64;n=gssapi.Name("HTTP@localhost",'
                          'gssapi.NameType.hostbased_service);'
                          'print(base64.b64encode(gssapi.SecurityContext(name=n,usage="initiate")'
                          '.step()).decode())'], env=cc['carol'], capture_output=True,
                         text=True, timeout=30).stdout.strip()
    c = Conn(gh.pp)
    c.send(f'GET /strict HTTP/1.1\r\nHost: localhost\r\nAuthorization: Negotiate {tok}\r\n\r\n')
    r = c.read_response()
    c.close()
    body = json.loads(r.body)
    assert body['status'] == 'SUCCESS' and body['flags'] & 0x300 == 0


# ---- a token bound to one TLS channel, relayed onto another ----

def test_kerberos_token_relayed_to_other_channel_fails(gh, realm, pki, cc):
    # the same relay against a legacy site succeeds: that is what EPA prevents
    out = gss(cc['alice'], 'relay-krb5', gh.pa, gh.pb, '/legacy', pki['ca'].cert,
              'HTTP@localhost')
    assert out['body']['status'] == 'SUCCESS'
    for level in ('medium', 'strict'):
        out = gss(cc['alice'], 'relay-krb5', gh.pa, gh.pb, f'/{level}', pki['ca'].cert,
                  'HTTP@localhost')
        body = out['body']
        assert body['status'] == 'FAILURE' and body['token'] == 0, out
        assert body['sec_major'] & 0xffff0000 == GSS_S_BAD_BINDINGS, body
    # and bound to B, sent to B: fine
    out = gss(cc['alice'], 'relay-krb5', gh.pb, gh.pb, '/strict', pki['ca'].cert,
              'HTTP@localhost')
    assert out['body']['status'] == 'SUCCESS' and out['body']['flags'] & FLAG_CBT_VERIFIED
    still_serves(gh, pki)


def test_ntlm_relayed_to_other_channel_fails(gh, realm, pki):
    out = gss(client_env(realm), 'relay-ntlm', gh.pa, gh.pb, '/legacy', pki['ca'].cert,
              'GH\\bob', 'bobpw', ntlm_target())
    assert out['body']['status'] == 'SUCCESS', out
    for level in ('medium', 'strict'):
        out = gss(client_env(realm), 'relay-ntlm', gh.pa, gh.pb, f'/{level}', pki['ca'].cert,
                  'GH\\bob', 'bobpw', ntlm_target())
        assert out['body']['status'] == 'FAILURE' and out['body']['token'] == 0, out
    still_serves(gh, pki)


def test_captured_negotiate_token_replayed_on_another_connection(gh, realm, pki, cc):
    """A Negotiate token that succeeded on one TLS connection, replayed on
    another connection: refused (replay cache), and on another channel
    (bad bindings)."""
    env = cc['carol']
    # capture: the client's own request on connection 1 (right bindings)
    tok = subprocess.run(['/usr/bin/python3', '-c', f'''
import base64, hashlib, socket, ssl, gssapi, gssapi.raw as g
ctx = ssl.create_default_context(cafile={pki["ca"].cert!r})
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", {gh.pa})), server_hostname="localhost")
cb = g.ChannelBindings(application_data=b"tls-server-end-point:" +
                       hashlib.sha256(s.getpeercert(True)).digest())
n = gssapi.Name("HTTP@localhost", gssapi.NameType.hostbased_service)
print(base64.b64encode(gssapi.SecurityContext(name=n, usage="initiate",
      channel_bindings=cb).step()).decode())
'''], env=env, capture_output=True, text=True, timeout=30).stdout.strip()
    assert tok
    authz = [('Authorization', 'Negotiate ' + tok)]
    s1 = tls_connect(gh.pa, pki['ca'].cert)
    b1 = json.loads(http_get(s1, '/strict', authz)[2])
    s1.close()
    assert b1['status'] == 'SUCCESS' and b1['flags'] & FLAG_CBT_VERIFIED
    s2 = tls_connect(gh.pa, pki['ca'].cert)     # same server, new connection
    b2 = json.loads(http_get(s2, '/strict', authz)[2])
    s2.close()
    assert b2['status'] == 'FAILURE' and b2['token'] == 0
    s3 = tls_connect(gh.pb, pki['ca'].cert)     # other channel
    b3 = json.loads(http_get(s3, '/strict', authz)[2])
    s3.close()
    assert b3['status'] == 'FAILURE' and b3['token'] == 0
    still_serves(gh, pki)


# ---- service binding (allowed_spns) ----

def test_allowed_spns_kerberos(gh, realm, pki, cc):
    out = gss(cc['bob'], 'krb5', gh.pa, '/spn-ok', pki['ca'].cert, 'HTTP@localhost', 'none')
    assert out['body']['status'] == 'SUCCESS'
    assert out['body']['flags'] & FLAG_SPN_VERIFIED
    out = gss(cc['bob'], 'krb5', gh.pa, '/spn-ok', pki['ca'].cert, 'HTTP@www.gh.test', 'none')
    assert out['body']['status'] == 'SUCCESS' and out['body']['flags'] & FLAG_SPN_VERIFIED
    out = gss(cc['bob'], 'krb5', gh.pa, '/spn-other', pki['ca'].cert, 'HTTP@localhost', 'none')
    assert out['body']['status'] == 'FAILURE'
    assert 'not in allowed_spns' in out['body']['sec_text'], out
    out = gss(cc['bob'], 'krb5', gh.pa, '/spn-legacy', pki['ca'].cert, 'HTTP@localhost', 'none')
    assert out['body']['status'] == 'SUCCESS'   # legacy: no checks at all
    still_serves(gh, pki)


def test_allowed_spns_ntlm(gh, realm, pki):
    """gss-ntlmssp names the service in MsvAvTargetName (HTTP/<its target host>)."""
    def run(path):
        return gss(client_env(realm), 'ntlm', gh.pa, path, pki['ca'].cert, 'GH\\alice',
                   'alicepw', ntlm_target(), 'right')['body']
    body = run('/spn-host')
    assert body['status'] == 'SUCCESS' and body['flags'] & FLAG_SPN_VERIFIED, body
    assert body['flags'] & FLAG_CBT_VERIFIED
    for path in ('/spn-ok', '/spn-strict'):
        body = run(path)
        assert body['status'] == 'FAILURE' and body['token'] == 0
        assert f'HTTP/{socket.gethostname()} is not in allowed_spns' in body['sec_text'], body
    still_serves(gh, pki)


def test_bad_channel_binding_key(tmp_path):
    conf = tmp_path / 'g.conf'
    conf.write_text(f'[server]\nlisten = 127.0.0.1:{free_port()}\n[site /]\nhandler = fixed\n'
                    'channel_binding = sometimes\n')
    p = subprocess.run([GATEHOUSED, '-c', str(conf), '-t'], capture_output=True, timeout=20)
    assert p.returncode != 0 and b'not legacy | medium | strict' in p.stderr
