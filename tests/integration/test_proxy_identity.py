"""test_proxy_identity.py: the proxy's identity modes end to end with real components: a WSGI app under gunicorn on a unix socket reads SO_PEERCRED/SO_PEERGROUPS and verifies the JWT with python3-jwt; alice and bob interleaved on 64 connections in the headers, JWT (HS256, ES256) and connect-as-client modes with 0 mismatches; Kerberos to a gatehoused Negotiate + whoami upstream with the client's delegated credential (MIT realm)."""
import base64
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gh_realm import realm  # noqa: E402,F401
from helpers import Conn  # noqa: E402
from pipeline_helpers import (GHUSERS, MODULES, USERS, GhDaemon, curl, free_port,  # noqa: E402
                              needs_daemon, needs_root, shared_dir)

HERE = os.path.dirname(os.path.abspath(__file__))
GUNICORN = shutil.which('gunicorn') or '/usr/bin/gunicorn'
PROXY_SO = os.path.join(MODULES, 'proxy', 'proxy.so')
pytestmark = [needs_daemon, needs_root,
              pytest.mark.skipif(not os.path.exists(PROXY_SO), reason=f'{PROXY_SO} not built'),
              pytest.mark.skipif(not os.path.exists(GUNICORN), reason='gunicorn not installed')]
BASIC_ONLY = {'auth': 'basic', 'basic_over_plain_http': 'yes'}
BASIC_ANON = {'auth': 'basic anonymous', 'basic_over_plain_http': 'yes'}
IDENT = 'user:X-Remote-User groups:X-Remote-Groups'


def write_key(path, data):
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    os.write(fd, data)
    os.close(fd)
    return path


class App:
    """peer_app.py under gunicorn (gthread workers: keep-alive) on a unix socket anyone may
    connect to."""

    def __init__(self, keys):
        self.dir = shared_dir('gh-app-')
        self.sock = os.path.join(self.dir, 'app.sock')
        env = dict(os.environ, PYTHONPATH=os.path.join(HERE, 'proxy'), PEER_APP_AUD='app', **keys)
        env.pop('LD_PRELOAD', None)
        self.log = open(os.path.join(self.dir, 'gunicorn.log'), 'w')
        self.proc = subprocess.Popen(
            [GUNICORN, '--bind', f'unix:{self.sock}', '--umask', '0', '--workers', '1',
             '--worker-class', 'gthread', '--threads', '16', '--keep-alive', '30',
             '--backlog', '256', 'peer_app:app'],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.dir)
        for _ in range(200):
            if os.path.exists(self.sock):
                break
            time.sleep(0.05)
        assert os.path.exists(self.sock), open(self.log.name).read()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope='module')
def keys():
    d = shared_dir('gh-keys-')
    hs = write_key(os.path.join(d, 'hs256.key'), base64.b64encode(os.urandom(48)) + b'\n')
    priv = ec.generate_private_key(ec.SECP256R1())
    es = write_key(os.path.join(d, 'es256.pem'), priv.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    pub = os.path.join(d, 'es256.pub')
    with open(pub, 'wb') as f:
        f.write(priv.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo))
    yield {'hs': hs, 'es': es, 'pub': pub}
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope='module')
def app(keys):
    a = App({'PEER_APP_HS256': keys['hs'], 'PEER_APP_ES256_PUB': keys['pub']})
    yield a
    a.stop()


@pytest.fixture(scope='module')
def gh(realm, app, keys):  # noqa: F811
    up = f'unix:{app.sock}'
    base = dict(BASIC_ONLY, handler='proxy', upstream=up)
    d = GhDaemon(realm, [
        ('/hdr', dict(base, identity_headers=IDENT)),
        ('/jwt', dict(base, identity_jwt_key=keys['hs'], identity_jwt_audience='app')),
        ('/jwtes', dict(base, identity_jwt_key=keys['es'], identity_jwt_audience='app',
                        identity_jwt_alg='ES256', identity_jwt_ttl='30s')),
        ('/peer', dict(base, upstream_connect_as='client')),
        ('/anon', dict(BASIC_ANON, handler='proxy', upstream=up, identity_headers=IDENT,
                       identity_jwt_key=keys['hs'], identity_jwt_audience='app')),
        ('/peeranon', dict(BASIC_ANON, handler='proxy', upstream=up, upstream_connect_as='client')),
        ('/names', dict(base, identity_headers=IDENT + ' group-names:X-Remote-Group-Names',
                        identity_jwt_key=keys['hs'], identity_jwt_audience='app',
                        identity_jwt_group_names='yes')),
    ])
    d.start()
    yield d
    d.stop()


def basic(user):
    return base64.b64encode(f'{user}:{user}pw'.encode()).decode()


def matches(mode, user, seen):
    uid, gid = USERS[user][:2]
    if mode == '/hdr':
        # not a JWT site: the client's field passes, and is not a valid assertion
        return seen['user'] == user and seen['jwt'] == {'error': 'DecodeError'}
    if mode in ('/jwt', '/jwtes'):
        j = seen['jwt'] or {}
        # (no identity_headers here: the forged X-Remote-User passes, as any field would)
        return (j.get('sub') == user and j.get('aud') == 'app' and 'error' not in j
                and str(gid) in j.get('groups', []))
    # connect as the client: the kernel's word, groups included
    p = seen['peer']
    return p['uid'] == uid and p['gid'] == gid and set(p['groups']) <= {gid, GHUSERS} \
        and GHUSERS in p['groups']


@pytest.mark.parametrize('mode', ['/hdr', '/jwt', '/jwtes', '/peer'])
def test_alice_bob_interleaved_64_connections(gh, mode):
    """64 keep-alive client connections, alice and bob alternating, 4 rounds, each request
    with a forged X-Remote-User and X-JWT-Assertion: every request the upstream sees carries
    exactly its client's identity."""
    conns = [('alice' if i % 2 == 0 else 'bob', Conn(gh.port)) for i in range(64)]
    mismatches, total, by_conn = [], 0, {}
    for rnd in range(4):
        for i, (user, c) in enumerate(conns):
            c.send((f'GET {mode}/x?{user}-{rnd}-{i} HTTP/1.1\r\nHost: localhost\r\n'
                    f'Authorization: Basic {basic(user)}\r\nX-Remote-User: mallory\r\n'
                    f'X-JWT-Assertion: forged\r\nX_JWT_Assertion: forged\r\n\r\n').encode())
        for i, (user, c) in enumerate(conns):
            r = c.read_response()
            assert r.status == 200, (r.status, r.body)
            seen = json.loads(r.body)
            total += 1
            by_conn.setdefault(seen['conn'], set()).add(user)
            if seen['path'] != f'{mode}/x' or not matches(mode, user, seen):
                mismatches.append((user, seen))
    for _, c in conns:
        c.close()
    assert total == 256 and mismatches == [], json.dumps(mismatches[:2])
    if mode == '/peer':
        # the pool reuses connections, each for one identity only
        assert len(by_conn) < total and all(len(u) == 1 for u in by_conn.values()), by_conn


def test_group_names(gh):
    """group-names in identity_headers and identity_jwt_group_names: the token's groups by
    name, in the order of the gids, beside them; every spelling of the names' field a client
    sends is dropped first."""
    for user in ('alice', 'bob', 'alice'):
        gid = USERS[user][1]
        r = curl(gh.url('/names/x'), user=user,
                 headers={'X-Remote-Group-Names': 'wheel', 'X_Remote_Group_Names': 'root'})
        assert r.status == 200, r
        seen = json.loads(r.body)
        assert seen['group_names'] == f'{user},ghusers', seen
        assert seen['groups'] == f'{gid},{GHUSERS}', seen
        j = seen['jwt']
        assert j['sub'] == user and j['group_names'] == [user, 'ghusers'], j
        assert j['groups'] == [str(gid), str(GHUSERS)], j
    # a site without the option: no such claim
    j = json.loads(curl(gh.url('/jwt/x'), user='alice').body)['jwt']
    assert j['sub'] == 'alice' and 'group_names' not in j, j


def test_group_names_unresolvable_is_503(gh, realm):  # noqa: F811
    """The group database cannot answer (here: its file is a directory): the request is
    refused (503, with a log line), never sent with fewer groups; the next one, with the
    database back, is served (a failure is not kept)."""
    assert curl(gh.url('/hdr/x'), user='carol').status == 200  # carol's token, in the Basic cache
    # nss_wrapper keeps its file open until that file is unlinked
    saved = realm.group + '.saved'
    shutil.copy2(realm.group, saved)
    os.unlink(realm.group)
    os.mkdir(realm.group)
    try:
        r = curl(gh.url('/names/x'), user='carol')
        log = gh.log()
    finally:
        os.rmdir(realm.group)
        shutil.copy2(saved, realm.group)
        os.unlink(saved)
    assert r.status == 503, r
    assert 'group names of carol' in log and 'never sent with fewer groups' in log, log[-2000:]
    r = curl(gh.url('/names/x'), user='carol')
    assert r.status == 200 and json.loads(r.body)['group_names'] == 'carol', r
    assert curl(gh.url('/names/x'), user='alice').status == 200


def test_anonymous_carries_no_identity(gh):
    r = curl(gh.url('/anon/x'), headers={'X-Remote-User': 'mallory', 'X-JWT-Assertion': 'forged',
                                          'X-Jwt_Assertion': 'forged'})
    seen = json.loads(r.body)
    assert r.status == 200 and seen['user'] is None and seen['jwt'] is None, seen


def test_connect_as_client_never_as_the_service(gh):
    # anonymous on a connect-as-client site: asked to sign in (the site's challenges), never
    # connected as the service
    r = curl(gh.url('/peeranon/x'))
    assert r.status == 401 and r.header('WWW-Authenticate').startswith('Basic'), r
    r = curl(gh.url('/peeranon/x'), user='alice')
    assert r.status == 200 and json.loads(r.body)['peer']['uid'] == USERS['alice'][0], r


def test_socket_permission_is_the_clients(realm, keys):  # noqa: F811
    # a socket file only alice may write: bob is refused by the kernel (403), alice served.
    # The kernel checks at connect: a pooled connection outlives a later chmod, so the file
    # is restricted from the start.
    a = App({'PEER_APP_HS256': keys['hs'], 'PEER_APP_ES256_PUB': keys['pub']})
    os.chown(a.sock, USERS['alice'][0], USERS['alice'][1])
    os.chmod(a.sock, 0o700)
    base = dict(BASIC_ONLY, handler='proxy', upstream=f'unix:{a.sock}')
    g = GhDaemon(realm, [('/peer', dict(base, upstream_connect_as='client')),
                         ('/hdr', dict(base, identity_headers=IDENT))])
    g.start()
    try:
        assert curl(g.url('/peer/x'), user='bob').status == 403
        assert curl(g.url('/peer/x'), user='alice').status == 200
        assert curl(g.url('/peer/x'), user='bob').status == 403  # alice's pooled one: not for bob
        # the service itself (no CAP_DAC_OVERRIDE) may not either: the upstream is unreachable
        assert curl(g.url('/hdr/x'), user='bob').status == 502
        errs = open(g.errpath).read()
    finally:
        g.stop()
        a.stop()
    assert 'connect as the client' in errs, errs[-2000:]


def test_impersonating_site_connects_as_the_service(realm, app):  # noqa: F811
    # impersonate = yes on a headers-mode site: the handler does not run as the client
    # (token-scoped), so the pooled connections are the service's: alice's request never
    # opens one that bob's then reuses with alice's SO_PEERCRED
    g = GhDaemon(realm, [('/imp', dict(BASIC_ONLY, handler='proxy', upstream=f'unix:{app.sock}',
                                       identity_headers=IDENT, impersonate='yes'))])
    g.start()
    try:
        seen = {}
        for user in ('alice', 'bob', 'alice', 'bob'):
            r = curl(g.url('/imp/x'), user=user)
            assert r.status == 200, r
            j = json.loads(r.body)
            assert j['user'] == user, j
            seen.setdefault(user, set()).add(j['peer']['uid'])
    finally:
        g.stop()
    uids = seen['alice'] | seen['bob']
    assert len(uids) == 1 and not uids & {USERS['alice'][0], USERS['bob'][0]}, seen


def test_bad_key_refused_at_load(realm, app, keys):  # noqa: F811
    d = shared_dir('gh-badkey-')
    loose = write_key(os.path.join(d, 'loose.key'), b'x' * 40)
    os.chmod(loose, 0o644)
    g = GhDaemon(realm, [('/jwt', dict(BASIC_ONLY, handler='proxy', upstream=f'unix:{app.sock}',
                                       identity_jwt_key=loose))])
    rc, err = g.check()
    shutil.rmtree(d, ignore_errors=True)
    assert rc != 0 and 'identity_jwt_key' in err and 'lets others read' in err, err


# ---- Kerberos to the upstream (MIT realm, the client's delegated credential) ----

@pytest.fixture(scope='module')
def krb(realm, app):  # noqa: F811
    up = GhDaemon(realm, [('/whoami', {'handler': 'whoami', 'auth': 'negotiate'})])
    up.start()
    krb_site = {'handler': 'proxy', 'auth': 'negotiate', 'upstream_auth': 'negotiate',
                'upstream_spn': 'HTTP/localhost'}
    front = GhDaemon(realm, [('/krb', dict(krb_site, upstream=f'http://127.0.0.1:{up.port}/whoami')),
                             # an upstream that answers 200 without authenticating itself
                             ('/noproof', dict(krb_site, upstream=f'unix:{app.sock}'))])
    front.start()
    yield front, up
    front.stop()
    up.stop()


def negotiate(realm, url, user, delegate):  # noqa: F811
    env = realm.kinit(user)
    args = ['curl', '-sS', '-D', '-', '--negotiate', '-u', ':', '-H', 'Accept: application/json']
    if delegate:
        args += ['--delegation', 'always']
    p = subprocess.run(args + [url], env=env, capture_output=True, timeout=60)
    head, _, body = p.stdout.decode().partition('\r\n\r\n')
    while head.startswith('HTTP/1.1 401') and '\r\n\r\n' in body:  # curl's first leg
        head, _, body = body.partition('\r\n\r\n')
    return int(head.split()[1]), head, body


@pytest.mark.parametrize('user', ['alice', 'bob'])
def test_negotiate_with_delegated_credential(realm, krb, user):  # noqa: F811
    front, _ = krb
    status, head, body = negotiate(realm, f'http://localhost:{front.port}/krb', user, delegate=True)
    assert status == 200, (head, body)
    j = json.loads(body)
    assert j['name'] == f'{user}@{realm.realm}' and j['authType'] == 'Negotiate', j
    # the upstream's mutual token is the proxy's, never relayed as the front's own
    assert head.lower().count('www-authenticate: negotiate') <= 1, head


def test_negotiate_upstream_without_mutual_auth_is_502(realm, krb):  # noqa: F811
    front, _ = krb
    status, head, body = negotiate(realm, f'http://localhost:{front.port}/noproof', 'alice',
                                   delegate=True)
    assert status == 502, (head, body)
    assert 'did not authenticate itself' in open(front.errpath).read()


def test_negotiate_without_credential_is_502(realm, krb):  # noqa: F811
    front, _ = krb
    status, head, _ = negotiate(realm, f'http://localhost:{front.port}/krb', 'alice', delegate=False)
    assert status == 502, head
    assert 'no Kerberos credential for alice' in open(front.errpath).read(), open(front.errpath).read()[-2000:]


# ---- Kerberos to the upstream in the AD realm: S4U2Proxy for an NTLM client ----

AD_TARGET = 'HTTP/www.ad.test'  # ghsvc's own SPN, in the upstream's keytab


@pytest.fixture(scope='module')
def ad_proxy(ad_realm):
    from ad_helpers import AdDaemon
    from gh_ad_realm import SERVICE
    ad = ad_realm

    def samba_tool(*args):
        return ad.run(['samba-tool'] + list(args) + ['-s', ad.smb_conf], env=ad.base_env())
    # on the DC: protocol transition, and constrained delegation to AD_TARGET
    samba_tool('delegation', 'for-any-protocol', SERVICE, 'on')
    samba_tool('delegation', 'add-service', SERVICE, AD_TARGET)
    kt = ad.path('proxy-s4u.keytab')  # with the account's own name (AD issues TGTs to it)
    shutil.copyfile(ad.keytab, kt)
    os.chmod(kt, 0o600)
    samba_tool('domain', 'exportkeytab', kt, f'--principal={SERVICE}')
    up = AdDaemon(ad, sites=[('/whoami', {'handler': 'whoami', 'auth': 'negotiate'})]).start()
    echo_port = free_port()  # the tests' echo upstream: what the application receives
    echo = subprocess.Popen(['/usr/bin/python3', os.path.join(HERE, 'proxy', 'upstream.py'),
                             str(echo_port)], stdout=subprocess.PIPE, text=True)
    assert echo.stdout.readline().strip() == 'ready'
    site = {'handler': 'proxy', 'auth': 'ntlm', 'upstream': f'http://127.0.0.1:{up.port}/whoami',
            'upstream_auth': 'negotiate', 'upstream_spn': AD_TARGET}
    front = AdDaemon(ad, server={'keytab': kt, 's4u_principal': f'{SERVICE}@{ad.realm}'},
                     sites=[('/s4u', dict(site, s4u='proxy', s4u_targets=AD_TARGET)),
                            ('/nos4u', site),
                            ('/names', {'handler': 'proxy', 'auth': 'ntlm',
                                        'upstream': f'http://127.0.0.1:{echo_port}/',
                                        'identity_headers': 'groups:X-Remote-Groups '
                                                            'group-names:X-Remote-Group-Names'})]
                     ).start()
    yield front
    front.stop()
    up.stop()
    echo.kill()
    echo.wait()
    samba_tool('delegation', 'del-service', SERVICE, AD_TARGET)
    samba_tool('delegation', 'for-any-protocol', SERVICE, 'off')


def test_ad_s4u_to_a_negotiate_upstream(ad_realm, ad_proxy):
    from ad_helpers import ntlm
    env = ad_realm.client_env(ad_realm.path('ccache-that-does-not-exist'))
    r = ntlm(ad_proxy.url('/s4u'), 'ADTEST\\carla', 'Carla-Pass-1', env,
             extra=['-H', 'Accept: application/json'])
    assert r.status == 200, (r, ad_proxy.log())
    j = json.loads(r.text)
    # the upstream authenticated carla by Kerberos, from the S4U2Proxy ticket
    # (an AD user's name is DOMAIN\\user by default, name_format)
    assert j['authType'] == 'Negotiate' and j['name'] == 'ADTEST\\carla', j
    assert j['uid'] == 21001, j
    # the same user on a site without S4U: no credential, 502 and a log line
    r = ntlm(ad_proxy.url('/nos4u'), 'ADTEST\\carla', 'Carla-Pass-1', env)
    assert r.status == 502, r
    assert 'no Kerberos credential for' in ad_proxy.log(), ad_proxy.log()[-2000:]


def test_ad_group_names(ad_realm, ad_proxy):
    """An AD user's groups by name through winbind (nested groups included), in the order
    of the gids, one name per gid."""
    from ad_helpers import ntlm
    from gh_ad_realm import GROUPS
    env = ad_realm.client_env(ad_realm.path('ccache-that-does-not-exist'))
    r = ntlm(ad_proxy.url('/names/echo'), 'ADTEST\\carla', 'Carla-Pass-1', env)
    assert r.status == 200, (r, ad_proxy.log())
    fields = {k.lower(): v for k, v in json.loads(r.text)['headers']}
    gids = fields['x-remote-groups'].split(',')
    names = fields['x-remote-group-names'].split(',')
    assert len(names) == len(gids), fields
    by_gid = dict(zip(gids, names))
    # winbind's names (measured: 'ADTEST\\domain users,ADTEST\\gh-inner,ADTEST\\gh-outer')
    for gid, g in ((100, 'domain users'), (GROUPS['gh-inner'], 'gh-inner'),
                   (GROUPS['gh-outer'], 'gh-outer')):
        assert by_gid[str(gid)].lower() in (g, f'adtest\\{g}'), fields
