"""test_session.py: session cookies (issue 16) — real gatehoused, real MIT realm, real clients (curl with a cookie jar, raw sockets): Negotiate, NTLM and Basic mint a cookie; cookie-only requests are served as the right user (kernel-checked: the authinfo probe and the static module's own file 200 / other's 403); every bad cookie (tampered, truncated, oversize, not base64url, unknown key, another site's, idle, expired) is the 401 flow with one log line and the server still serves; logout clears; key rotation on SIGHUP (previous key still opens, then removed: refused); an account removed or below min_uid is refused; two nodes with one key file accept each other's sessions; users' cookies never cross on shared connections.
"""
import base64
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pipeline_helpers import shared_dir, write_owned  # noqa: E402
from test_auth_http import (GATEHOUSED, UIDS, Gatehoused, Raw, basic,  # noqa: E402,F401
                            cc, client_env, free_port, gssclient, realm, still_serves)

pytestmark = [
    pytest.mark.skipif(not os.path.exists(GATEHOUSED), reason=f'{GATEHOUSED} not built'),
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root: impersonation at uids 20001-20003'),
]

FLAG_CACHED, FLAG_SESSION = 1, 2
COOKIE = 'gh_session'


def key_file(path, *keys):
    with open(path, 'w') as f:
        f.write(''.join(k + '\n' for k in keys))
    os.chmod(path, 0o600)
    return path


def new_key():
    return os.urandom(32).hex()


def sites(kf, tree):
    common = {'auth': 'negotiate ntlm basic', 'basic_over_plain_http': 'yes',
              'session': 'cookie', 'session_key_file': kf}
    return [
        ('/', dict(common, session_logout='/logout')),
        ('/files', dict(common, handler='static', root=tree, impersonate='yes')),
        ('/other', dict(common)),
        ('/idle', dict(common, session_idle='3s', session_max_age='1h')),
        ('/short', dict(common, session_idle='2', session_max_age='2')),
        ('/plain', {'auth': 'negotiate ntlm basic', 'basic_over_plain_http': 'yes'}),
    ]


@pytest.fixture(scope='module')
def tree():
    root = shared_dir('gh-sess-')
    write_owned(os.path.join(root, 'alice.txt'), 'alice secret\n', 'alice')
    write_owned(os.path.join(root, 'bob.txt'), 'bob secret\n', 'bob')
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope='module')
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp('keys')
    return key_file(str(d / 'session.key'), new_key(), new_key())


@pytest.fixture(scope='module')
def gh(realm, tree, keys, tmp_path_factory):
    d = Gatehoused(realm, tmp_path_factory.mktemp('gh'), sites(keys, tree), unix=False)
    d.start()
    yield d
    d.stop()


def set_cookies(hdrs):
    return [v for k, v in hdrs if k.lower() == 'set-cookie']


def cookie_of(hdrs):
    """The value of the one Set-Cookie of the site's cookie, and its attributes."""
    sc = set_cookies(hdrs)
    assert len(sc) == 1, hdrs
    m = re.match(COOKIE + r'=([A-Za-z0-9_-]*); (.*)$', sc[0])
    assert m, sc
    return m.group(1), m.group(2)


def mint(gh, path, authz):
    c = Raw(gh)
    try:
        st, hdrs, body = c.get(path, authz)
    finally:
        c.close()
    assert st == 200, (st, body)
    return cookie_of(hdrs)[0], body


def with_cookie(gh, path, value, extra=()):
    c = Raw(gh)
    try:
        return c.get(path, None, headers=[('Cookie', f'{COOKIE}={value}')] + list(extra))
    finally:
        c.close()


def negotiate(realm, env):
    return 'Negotiate ' + gssclient(realm, env, 'token', 'HTTP@localhost')['token']


def log_lines(gh, text):
    return [ln for ln in gh.log().splitlines() if text in ln]


def wait_log(gh, text, count=1, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(log_lines(gh, text)) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f'{text!r} x{count} not in the log: {gh.log()[-3000:]}')


def curl_jar(args, env, jar):
    p = subprocess.run(['curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', '-c', jar, '-b',
                        jar, '--max-time', '20'] + args, env=env, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    return int(p.stdout)


def curl_json(args, env, jar):
    p = subprocess.run(['curl', '-sS', '-b', jar, '-c', jar, '--max-time', '20'] + args, env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    import json
    return json.loads(p.stdout)


# ---- minting and using ----

def test_negotiate_then_cookie_only(gh, realm, cc):
    c = Raw(gh)
    st, hdrs, body = c.get('/', negotiate(realm, cc['alice']))
    c.close()
    assert st == 200 and body['status'] == 'SUCCESS' and body['flags'] & FLAG_SESSION == 0
    value, attrs = cookie_of(hdrs)
    assert 'Path=/;' in attrs and 'HttpOnly' in attrs and 'SameSite=Lax' in attrs
    assert 'Secure' not in attrs                         # a plain-HTTP listener
    max_age = int(re.search(r'Max-Age=(\d+)', attrs).group(1))
    assert 8 * 3600 - 5 <= max_age <= 8 * 3600           # the default; the ticket lives 24 h
    assert 'alice' not in base64.urlsafe_b64decode(value + '==').decode('latin-1')
    # cookie only, on a new connection: alice, as the kernel sees it
    st, hdrs, body = with_cookie(gh, '/', value)
    assert st == 200, body
    assert body['status'] == 'SUCCESS' and body['flags'] == FLAG_SESSION
    assert body['type'] == 'Negotiate' and body['package'] == 'Kerberos'
    assert body['remote_user'] == 'alice@GH.TEST' and body['local_user'] == 'alice'
    assert body['kernel_uid'] == UIDS['alice'] and body['token_uid'] == UIDS['alice']
    assert body['mutual'] is None and body['expiry'] > time.time()
    assert body['token_level'] == 2                      # IMPERSONATE: no delegated credential
    assert set_cookies(hdrs) == []                       # fresh: no refresh yet


def test_expiry_capped_by_the_ticket(gh, realm):
    env = realm.kinit('bob', lifetime='10m', ccache=os.path.join(realm.path(), 'cc-bob-short'))
    value, body = mint(gh, '/', negotiate(realm, env))
    st, hdrs, body2 = with_cookie(gh, '/', value)
    assert st == 200 and body2['flags'] == FLAG_SESSION
    # the GSS context's lifetime: the ticket's end plus the acceptor's clock-skew allowance
    assert body2['expiry'] <= body['expiry'] <= time.time() + 600 + 300 + 5


def test_static_own_file_and_other_users(gh, realm, cc):
    value, _ = mint(gh, '/files/alice.txt', negotiate(realm, cc['alice']))
    st, _, body = with_cookie(gh, '/files/alice.txt', value)
    assert st == 200 and body == 'alice secret\n'
    st, _, _ = with_cookie(gh, '/files/bob.txt', value)
    assert st == 403                                     # the kernel said no to alice
    bvalue, _ = mint(gh, '/files/bob.txt', basic('bob', 'bobpw'))
    st, _, body = with_cookie(gh, '/files/bob.txt', bvalue)
    assert st == 200 and body == 'bob secret\n'


def test_basic_and_ntlm_mint_with_curl(gh, realm, cc, tmp_path):
    env = client_env(realm)
    for user, args in (('carol', ['-u', 'carol:carolpw']),
                       ('bob', ['--ntlm', '-u', 'GH\\bob:bobpw']),
                       ('alice', ['--negotiate', '-u', ':'])):
        jar = str(tmp_path / f'{user}.jar')
        e = cc['alice'] if user == 'alice' else env
        first = curl_json(args + [gh.url('/')], e, jar)
        assert first['status'] == 'SUCCESS' and first['flags'] & FLAG_SESSION == 0
        assert COOKIE in open(jar).read()
        # the jar alone, no credentials
        body = curl_json([gh.url('/')], env, jar)
        assert body['status'] == 'SUCCESS' and body['flags'] == FLAG_SESSION, body
        assert body['local_user'] == user and body['kernel_uid'] == UIDS[user]
        assert body['type'] == {'carol': 'Basic', 'bob': 'NTLM', 'alice': 'Negotiate'}[user]


def test_no_cookie_on_a_site_without_sessions_nor_for_another_site(gh, realm, cc):
    c = Raw(gh)
    st, hdrs, _ = c.get('/plain', basic('carol', 'carolpw'))
    c.close()
    assert st == 200 and set_cookies(hdrs) == []
    value, _ = mint(gh, '/', basic('carol', 'carolpw'))
    n = len(log_lines(gh, 'refused'))
    st, _, _ = with_cookie(gh, '/other', value)          # sealed for site "/"
    assert st == 401
    wait_log(gh, 'on site /other refused: tampered', 1)
    assert len(log_lines(gh, 'refused')) == n + 1


# ---- bad cookies: no cookie, the 401 flow, one log line, still serving ----

def forged(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b'=').decode()


BAD = [
    ('tampered', lambda v: v[:20] + ('A' if v[20] != 'A' else 'B') + v[21:], 'tampered'),
    ('truncated', lambda v: v[:28], 'truncated'),
    ('cut-tag', lambda v: v[:(len(v) // 4 - 1) * 4], 'tampered'),
    # a last character with non-zero unused bits ('B' = 000001)
    ('bits', lambda v: v[:-1] + 'B' if len(v) % 4 else v + 'B', 'not base64url'),
    ('oversize', lambda v: 'A' * 1100, 'oversize'),
    ('base64', lambda v: v[:10] + '+/' + v[12:], 'not base64url'),
    ('padding', lambda v: v + '==', 'not base64url'),
    ('unknown-key', lambda v: forged(b'\x01' + os.urandom(len(v) * 3 // 4 - 1)),
     'sealed with a key not in session_key_file'),
    ('version', lambda v: forged(b'\x07' + os.urandom(80)), 'unknown format version'),
]


@pytest.mark.parametrize('name,mangle,cause', BAD, ids=[b[0] for b in BAD])
def test_bad_cookie_is_no_cookie(gh, name, mangle, cause):
    value, _ = mint(gh, '/', basic('alice', 'alicepw'))
    n = len(log_lines(gh, cause))
    st, hdrs, body = with_cookie(gh, '/', mangle(value))
    assert st == 401, (st, body)
    assert any(k.lower() == 'www-authenticate' for k, _ in hdrs)
    wait_log(gh, cause, n + 1)
    time.sleep(0.1)
    assert len(log_lines(gh, cause)) == n + 1            # one line per refusal
    still_serves(gh)
    # the good cookie still opens
    assert with_cookie(gh, '/', value)[2]['local_user'] == 'alice'


def test_idle_and_expired(gh):
    ivalue, _ = mint(gh, '/idle', basic('bob', 'bobpw'))
    svalue, _ = mint(gh, '/short', basic('bob', 'bobpw'))
    st, hdrs, body = with_cookie(gh, '/idle', ivalue)
    assert st == 200 and body['flags'] == FLAG_SESSION
    # each use after a quarter of the idle time refreshes the cookie (sliding); times in
    # the cookie are whole seconds: the margins below allow for that
    time.sleep(1.1)
    st, hdrs, body = with_cookie(gh, '/idle', ivalue)
    assert st == 200
    fresh, attrs = cookie_of(hdrs)
    assert fresh != ivalue and 'Path=/idle' in attrs
    time.sleep(1.0)
    assert with_cookie(gh, '/idle', fresh)[0] == 200     # used at most 2 s ago: alive
    time.sleep(3.1)
    assert with_cookie(gh, '/idle', fresh)[0] == 401     # unused for more than 3 s
    wait_log(gh, 'on site /idle refused: idle')
    assert with_cookie(gh, '/short', svalue)[0] == 401   # max_age 2 s
    wait_log(gh, 'on site /short refused: expired')
    still_serves(gh)


def test_logout_clears(gh, realm, tmp_path):
    jar = str(tmp_path / 'jar')
    env = client_env(realm)
    assert curl_json(['-u', 'carol:carolpw', gh.url('/')], env, jar)['status'] == 'SUCCESS'
    assert curl_json([gh.url('/')], env, jar)['flags'] == FLAG_SESSION
    c = Raw(gh)
    value = re.search(COOKIE + r'\t(\S+)', open(jar).read()).group(1)
    st, hdrs, body = c.get('/logout', None, headers=[('Cookie', f'{COOKIE}={value}')])
    c.close()
    assert st == 200
    assert set_cookies(hdrs) == [f'{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax']
    assert curl_jar([gh.url('/logout')], env, jar) == 200
    assert COOKIE not in open(jar).read()                # curl dropped it
    assert curl_jar([gh.url('/')], env, jar) == 401


# ---- users never cross ----

def test_users_cookies_never_cross_on_shared_connections(gh):
    values = {u: mint(gh, '/', basic(u, u + 'pw'))[0] for u in UIDS}
    errors = []

    def client(i):
        rnd = random.Random(i)
        c = Raw(gh)
        try:
            for _ in range(60):
                u = rnd.choice(list(UIDS))
                st, _, body = c.get('/', None, headers=[('Cookie', f'a=b; {COOKIE}={values[u]}')])
                if st != 200 or body['local_user'] != u or body['kernel_uid'] != UIDS[u]:
                    errors.append((u, st, body))
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
        finally:
            c.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_authorization_wins_over_cookie(gh, realm, cc):
    avalue, _ = mint(gh, '/', basic('alice', 'alicepw'))
    c = Raw(gh)
    st, hdrs, body = c.get('/', basic('bob', 'bobpw'), headers=[('Cookie', f'{COOKIE}={avalue}')])
    c.close()
    assert st == 200 and body['local_user'] == 'bob' and body['flags'] & FLAG_SESSION == 0
    assert cookie_of(hdrs)[0] != avalue                  # bob's own session


# ---- key rotation, accounts, two nodes ----

def node(realm, tmp, name, kf, server=None, env=None):
    s = [('/', {'auth': 'negotiate ntlm basic', 'basic_over_plain_http': 'yes',
                'session': 'cookie', 'session_key_file': kf})]
    return Gatehoused(realm, os.path.join(str(tmp), name), s, server=server, env=env,
                      unix=False).start()


@pytest.mark.parametrize('procs', [1, 2])
def test_rotation_on_sighup(realm, tmp_path, procs):
    """Key rotation by SIGHUP; with processes = 2 each worker process re-reads the file (the
    requests below land on either)."""
    k1, k2, k3 = new_key(), new_key(), new_key()
    kf = key_file(str(tmp_path / 'k'), k1)
    gh = node(realm, tmp_path, 'rot', kf, server={'processes': procs} if procs > 1 else None)
    reread = 'session keys re-read from 1 file'
    try:
        old, _ = mint(gh, '/', basic('alice', 'alicepw'))
        # rotate: k2 current, k1 previous; nobody is logged out
        key_file(kf, k2, k1)
        gh.proc.send_signal(signal.SIGHUP)
        wait_log(gh, reread, procs)
        for _ in range(4):
            assert with_cookie(gh, '/', old)[2]['local_user'] == 'alice'
        new, _ = mint(gh, '/', basic('bob', 'bobpw'))
        # a broken file keeps the keys
        with open(kf, 'w') as f:
            f.write('nonsense\n')
        gh.proc.send_signal(signal.SIGHUP)
        wait_log(gh, 'its keys are kept', procs)
        for _ in range(4):
            assert with_cookie(gh, '/', old)[0] == 200
        # k1 retired: its cookies are refused, k2's still open
        key_file(kf, k3, k2)
        gh.proc.send_signal(signal.SIGHUP)
        wait_log(gh, reread, 2 * procs)
        for _ in range(4):
            assert with_cookie(gh, '/', old)[0] == 401
            assert with_cookie(gh, '/', new)[2]['local_user'] == 'bob'
        wait_log(gh, 'sealed with a key not in session_key_file')
    finally:
        gh.stop()


def test_two_nodes_share_sessions_and_check_accounts(realm, tmp_path, cc):
    """Node A mints; node B (same key file, same site) accepts. B has min_uid 20002 and a
    passwd file without carol, and no account cache: alice and carol are refused there."""
    kf = key_file(str(tmp_path / 'k'), new_key())
    passwd = str(tmp_path / 'passwd')
    with open(realm.passwd) as f:
        open(passwd, 'w').write(''.join(ln for ln in f if not ln.startswith('carol:')))
    a = node(realm, tmp_path, 'a', kf)
    b = node(realm, tmp_path, 'b', kf, server={'min_uid': 20002, 'group_cache_ttl': 0},
             env={'NSS_WRAPPER_PASSWD': passwd})
    try:
        vals = {'alice': mint(a, '/', negotiate(realm, cc['alice']))[0],
                'bob': mint(a, '/', negotiate(realm, cc['bob']))[0],
                'carol': mint(a, '/', basic('carol', 'carolpw'))[0]}
        st, _, body = with_cookie(b, '/', vals['bob'])
        assert st == 200 and body['flags'] == FLAG_SESSION and body['kernel_uid'] == UIDS['bob']
        for u in ('alice', 'carol'):
            assert with_cookie(a, '/', vals[u])[0] == 200
            assert with_cookie(b, '/', vals[u])[0] == 401
            wait_log(b, f'refused for {u}: the account no longer exists or is refused')
        still_serves(b, 'bob')
    finally:
        a.stop()
        b.stop()


@pytest.mark.parametrize('keys_text,mode,err', [
    ('short\n', 0o600, 'line 1 is not 64 hex digits'),
    (None, 0o644, 'mode 0644'),
    ('missing', 0o600, 'No such file'),
    ('owner', 0o600, 'owned by uid 20001'),
    ('big', 0o600, 'two keys take 130'),
])
def test_key_file_errors_at_start(realm, tmp_path, keys_text, mode, err):
    kf = str(tmp_path / 'k')
    if keys_text != 'missing':
        with open(kf, 'w') as f:
            f.write({None: new_key() + '\n', 'owner': new_key() + '\n',
                     'big': '#' * 600}.get(keys_text, keys_text))
        os.chmod(kf, mode)
        if keys_text == 'owner':
            os.chown(kf, UIDS['alice'], -1)
    s = [('/', {'auth': 'basic', 'basic_over_plain_http': 'yes', 'session': 'cookie',
                'session_key_file': kf})]
    gh = Gatehoused(realm, str(tmp_path / 'gh'), s, unix=False)
    assert gh.start(expect_fail=True) != 0
    assert err in gh.log() and 'session_key_file' in gh.log(), gh.log()
    gh.stop()


CONF_ERRORS = [
    ('no-key-file', {'session': 'cookie'}, 'session = cookie needs session_key_file'),
    ('bad-value', {'session': 'yes'}, "'yes' is not cookie | off"),
    ('idle-over-max', {'session': 'cookie', 'session_max_age': '10m', 'session_idle': '1h'},
     'session_idle (3600 s) is longer than session_max_age (600 s)'),
    ('logout-outside', {'session': 'cookie', 'session_logout': '/elsewhere/logout'},
     'session_logout /elsewhere/logout is not under the site /app'),
    ('duration', {'session_idle': '5 min'}, 'is not a duration'),
    ('zero', {'session_max_age': '0'}, 'is not a duration'),
    ('cookie-name', {'session_cookie': 'a;b'}, 'is not a cookie name'),
    ('secure', {'session_secure': 'maybe'}, "'maybe' is not always | tls"),
    ('peer-only', {'auth': 'peer', 'session': 'cookie'}, 'needs a scheme that mints sessions'),
]


@pytest.mark.parametrize('name,keys,err', CONF_ERRORS, ids=[c[0] for c in CONF_ERRORS])
def test_check_refuses_session_keys(realm, tmp_path, keys, name, err):
    kf = key_file(str(tmp_path / 'k'), new_key())
    site = {'auth': 'basic', 'handler': 'authinfo', 'session_key_file': kf}
    if name == 'no-key-file':
        del site['session_key_file']
    site.update(keys)
    conf = str(tmp_path / 'gatehouse.conf')
    with open(conf, 'w') as f:
        f.write('[server]\nlisten = 127.0.0.1:1\n\n[site /app]\n' +
                ''.join(f'{k} = {v}\n' for k, v in site.items()))
    p = subprocess.run([GATEHOUSED, '-t', '-c', conf], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and err in p.stderr and f'{conf}:' in p.stderr, p.stderr
    # the same file with the key's mode opened up: named with the key file's line
    if name == 'bad-value':
        os.chmod(kf, 0o604)
        site['session'] = 'cookie'
        with open(conf, 'w') as f:
            f.write('[server]\nlisten = 127.0.0.1:1\n\n[site /app]\n' +
                    ''.join(f'{k} = {v}\n' for k, v in site.items()))
        p = subprocess.run([GATEHOUSED, '-t', '-c', conf], capture_output=True, text=True,
                           timeout=30)
        assert p.returncode == 1 and f'{conf}:7:' in p.stderr and 'mode 0604' in p.stderr, \
            p.stderr


def test_secure_on_tls_listeners_and_when_forced(realm, tmp_path):
    import json
    import tempfile
    from tls_pki import ScratchCA, http_get, tls_connect
    d = tempfile.mkdtemp(prefix='gh-pki-')
    os.chmod(d, 0o755)
    ca = ScratchCA(d)
    cert, key = ca.issue('a', ['localhost'])
    kf = key_file(str(tmp_path / 'k'), new_key())
    tport = free_port()
    common = {'auth': 'basic', 'basic_over_plain_http': 'yes', 'session': 'cookie',
              'session_key_file': kf}
    gh = Gatehoused(realm, str(tmp_path / 'gh'),
                    [('/', common), ('/forced', dict(common, session_secure='always'))],
                    server={'listen': f'127.0.0.1:{tport} tls', 'tls_cert': cert,
                            'tls_key': key}, unix=False).start()
    try:
        s = tls_connect(tport, ca.cert)
        st, hdrs, _ = http_get(s, '/', [('Authorization', basic('bob', 'bobpw'))])
        value, attrs = cookie_of(hdrs)
        assert st == 200 and attrs.endswith('HttpOnly; SameSite=Lax; Secure'), attrs
        st, hdrs, body = http_get(s, '/', [('Cookie', f'{COOKIE}={value}')])
        body = json.loads(body)
        assert st == 200 and body['flags'] == FLAG_SESSION and body['kernel_uid'] == UIDS['bob']
        s.close()
        # plain HTTP: Secure only where forced
        assert 'Secure' not in cookie_of(Raw(gh).get('/', basic('bob', 'bobpw'))[1])[1]
        assert cookie_of(Raw(gh).get('/forced', basic('bob', 'bobpw'))[1])[1].endswith('; Secure')
    finally:
        gh.stop()
        shutil.rmtree(d, ignore_errors=True)
