"""test_farm_replay.py: replay protection across the nodes of a farm — three gatehoused sharing one keytab and one Redis (replay_cache = redis/unix), a token accepted by one node refused by the others, Redis stopped under load (503 + log line, recovery by itself), replay_cache_unavailable = local, AUTH from a password file, config errors with file:line, and the TLS channel-binding defence (strict) with and without Redis.

A real redis-server (Debian) is started by the tests on a unix socket (and a
loopback port for the redis:// form); the realm is gh_realm.py's.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gh_realm import GhRealm  # noqa: E402
from test_auth_http import (GATEHOUSED, UIDS, Gatehoused, Raw, basic,  # noqa: E402
                            gssclient)
from tls_pki import ScratchCA, http_get, tls_connect  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get('GH_BUILD_DIR', os.path.join(ROOT, 'build'))
REDIS = shutil.which('redis-server') or '/usr/bin/redis-server'
REPLAY_TEXT = 'Request is a replay'

pytestmark = [
    pytest.mark.skipif(not os.path.exists(GATEHOUSED), reason=f'{GATEHOUSED} not built'),
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root: impersonation at uids 20001-20003'),
]

SITES = [('/', {'auth': 'negotiate ntlm basic anonymous', 'basic_over_plain_http': 'yes'})]


class Redis:
    """redis-server in the foreground: a unix socket (0700, owner root) and optionally a
    loopback port; no persistence, so a restart forgets everything (the worst case)."""

    def __init__(self, tmp, password=None, tcp=False, bind=('127.0.0.1',)):
        self.dir = tempfile.mkdtemp(prefix='gh-redis-', dir=tmp)
        self.sock = os.path.join(self.dir, 'redis.sock')
        self.password = password
        self.bind = list(bind)
        self.port = 0
        if tcp:
            with socket.socket() as s:
                s.bind(('127.0.0.1', 0))
                self.port = s.getsockname()[1]
        self.logpath = os.path.join(self.dir, 'redis.log')
        self.proc = None

    @property
    def url(self):
        return f'unix:{self.sock}'

    @property
    def tcp_url(self):
        return f'redis://127.0.0.1:{self.port}'

    def start(self):
        args = [REDIS, '--port', str(self.port), '--bind', *self.bind, '--unixsocket', self.sock,
                '--unixsocketperm', '700', '--save', '', '--appendonly', 'no', '--dir', self.dir,
                '--logfile', self.logpath, '--daemonize', 'no']
        if self.password:
            args += ['--requirepass', self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('redis-server exited: ' + open(self.logpath).read())
            if self.cli('PING') == 'PONG':
                return self
            time.sleep(0.02)
        raise RuntimeError('redis-server did not answer')

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def cli(self, *args):
        cmd = ['redis-cli', '-s', self.sock]
        if self.password:
            cmd += ['-a', self.password, '--no-auth-warning']
        p = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=10)
        return p.stdout.strip()

    def keys(self):
        out = self.cli('--scan', '--pattern', 'gh:rc:*')
        return [k for k in out.split('\n') if k]


@pytest.fixture(scope='module')
def realm():
    r = GhRealm()
    yield r
    r.close()


@pytest.fixture(scope='module')
def cc(realm):
    return {u: realm.kinit(u) for u in UIDS}


@pytest.fixture(scope='module')
def redis(tmp_path_factory):
    r = Redis(str(tmp_path_factory.mktemp('redis')), tcp=True).start()
    yield r
    r.stop()


def node(realm, tmp, name, server, sites=SITES):
    srv = {'workers': 4}
    srv.update(server)
    return Gatehoused(realm, os.path.join(str(tmp), name), sites, server=srv, unix=False)


@pytest.fixture(scope='module')
def farm(realm, redis, tmp_path_factory):
    """Three nodes, one keytab, one Redis: A on the unix socket with two worker processes
    (connections opened after the fork), B on the unix socket, C over TCP."""
    tmp = tmp_path_factory.mktemp('farm')
    nodes = [node(realm, tmp, 'a', {'replay_cache': redis.url, 'processes': 2}),
             node(realm, tmp, 'b', {'replay_cache': redis.url}),
             node(realm, tmp, 'c', {'replay_cache': redis.tcp_url + '/0'})]
    for n in nodes:
        n.start()
    yield nodes
    for n in nodes:
        n.stop()


def ask(gh, authz):
    """One request on a new connection: (status, parsed body)."""
    c = Raw(gh)
    try:
        st, _, body = c.get('/', authz)
        return st, body
    finally:
        c.close()


def token(realm, env):
    return 'Negotiate ' + gssclient(realm, env, 'token', 'HTTP@localhost')['token']


def tokens(realm, env, n, tmp):
    """n unique SPNEGO tokens ("Negotiate <b64>" each), made before any timing (python-gssapi:
    fast whatever build is under test)."""
    out = subprocess.run(['/usr/bin/python3', '-c', f'''
import base64, gssapi
n = gssapi.Name("HTTP@localhost", gssapi.NameType.hostbased_service)
for _ in range({n}):
    print("Negotiate " + base64.b64encode(gssapi.SecurityContext(name=n, usage="initiate").step()).decode())
'''], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [ln.strip() for ln in out.stdout.splitlines() if ln.strip()]


def wait_log(gh, text, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in gh.log():
            return
        time.sleep(0.05)
    raise AssertionError(f'{text!r} not in the log: {gh.log()[-2000:]}')


def refused_as_replay(st, body):
    return (st == 200 and body['status'] == 'FAILURE' and body['token'] == 0
            and REPLAY_TEXT in body['sec_text'])


# ---- the hole, and the store that closes it ----

def test_token_accepted_by_one_node_is_refused_by_the_others(farm, realm, cc, redis,
                                                           tmp_path):
    a, b, c = farm
    for first, others, user in ((a, (b, c), 'bob'), (b, (c, a), 'alice'), (c, (a, b), 'carol')):
        tok = token(realm, cc[user])
        st, body = ask(first, tok)
        assert st == 200 and body['status'] == 'SUCCESS', body
        assert body['kernel_uid'] == UIDS[user], body
        for o in others:
            st, body = ask(o, tok)
            assert refused_as_replay(st, body), body
        # and on the node that accepted it (its own table and Redis both say so)
        assert refused_as_replay(*ask(first, tok))
    # what Redis holds: hash tags only (never the authenticator), each with the window as TTL
    keys = redis.keys()
    assert len(keys) >= 2 and all(len(k) == len('gh:rc:') + 24 for k in keys), keys
    ttl = int(redis.cli('PTTL', keys[0]))
    assert 0 < ttl <= (2 * 300 + 60) * 1000, ttl
    # Basic and NTLM do not need the store
    for n in farm:
        st, body = ask(n, basic('carol', 'carolpw'))
        assert st == 200 and body['kernel_uid'] == UIDS['carol'], body


def test_without_the_shared_store_another_node_accepts_the_replay(realm, cc, tmp_path):
    """The hole the store closes (each node its own cache): the same replay as above is
    accepted by node B. If this ever fails, the test above proves nothing."""
    a = node(realm, tmp_path, 'a', {}).start()
    b = node(realm, tmp_path, 'b', {}).start()
    try:
        tok = token(realm, cc['bob'])
        st, body = ask(a, tok)
        assert body['status'] == 'SUCCESS', body
        st, body = ask(b, tok)
        assert body['status'] == 'SUCCESS' and body['kernel_uid'] == UIDS['bob'], body
        assert refused_as_replay(*ask(a, tok))
    finally:
        a.stop()
        b.stop()


# ---- Redis goes away under load, and comes back ----

def test_redis_stopped_under_load_503_then_recovery(realm, cc, tmp_path):
    """4 clients keep sending fresh tokens to a node with two worker processes; Redis is
    stopped for ~1.5 s and started again (empty). While it is away every Negotiate request
    gets 503 (never a success, never a dropped connection) and one log line says why; once
    it is back every request succeeds again within the reconnect backoff (2 s at most)."""
    rd = Redis(str(tmp_path)).start()
    a = node(realm, tmp_path, 'a', {'replay_cache': rd.url, 'processes': 2}).start()
    toks = tokens(realm, cc['alice'], 2000, tmp_path)
    results = []          # (start time, phase, status, body)
    phase = ['up']
    stop = threading.Event()
    lock = threading.Lock()
    it = iter(toks)

    def load():
        while not stop.is_set():
            with lock:
                tok = next(it, None)
            if tok is None:
                return
            t, ph = time.monotonic(), phase[0]
            try:
                st, body = ask(a, tok)
            except (OSError, EOFError) as e:
                st, body = 0, str(e)
            if phase[0] == ph:   # the phase did not change during the request
                results.append((t, ph, st, body))
            time.sleep(0.02)

    threads = [threading.Thread(target=load) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        time.sleep(1.0)
        phase[0] = 'stopping'
        rd.stop()
        phase[0] = 'down'
        time.sleep(1.5)
        # Basic still works while Redis is away
        st, body = ask(a, basic('bob', 'bobpw'))
        assert st == 200 and body['kernel_uid'] == UIDS['bob'], body
        phase[0] = 'starting'
        rd.start()
        t_back = time.monotonic()
        phase[0] = 'back'
        time.sleep(4.0)
        stop.set()
        for t in threads:
            t.join(60)
        log = a.log()
    finally:
        stop.set()
        a.stop()
        rd.stop()
    up = [r for r in results if r[1] == 'up']
    down = [r for r in results if r[1] == 'down']
    back = [r for r in results if r[1] == 'back']
    late = [r for r in back if r[0] > t_back + 2.2]
    ok = lambda r: r[2] == 200 and r[3]['status'] == 'SUCCESS'  # noqa: E731
    assert len(up) > 10 and all(ok(r) for r in up), [r[2:] for r in up if not ok(r)][:3]
    # while down: 503 (fail closed), never a success, never a lost connection
    assert len(down) > 10 and all(r[2] == 503 for r in down), [r[2:] for r in down][:5]
    assert all('replay cache unreachable' in r[3] for r in down)
    # back: once the backoff has run out, everything succeeds again
    assert len(late) > 10 and all(ok(r) for r in late), [r[2:] for r in late if not ok(r)][:5]
    assert 'unreachable' in log and 'Negotiate/Kerberos requests are answered 503' in log, log
    assert 'reachable again' in log, log
    print(f'\nredis outage under load: {len(up)} ok before, {len(down)} x 503 while down, '
          f'{len(back)} after restart of which {sum(map(ok, back))} ok '
          f'({sum(map(ok, late))}/{len(late)} after 2.2 s)')


def test_redis_down_503_token_usable_after_recovery(realm, cc, tmp_path):
    rd = Redis(str(tmp_path)).start()
    a = node(realm, tmp_path, 'a', {'replay_cache': rd.url}).start()
    try:
        rd.stop()
        tok = token(realm, cc['carol'])
        st, body = ask(a, tok)
        assert st == 503 and 'replay cache unreachable' in body, (st, body)
        wait_log(a, 'unreachable (connect:')
        rd.start()
        deadline = time.monotonic() + 5
        while True:
            st, body = ask(a, tok)
            if st == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        # nothing was accepted with it while Redis was away: it is still good
        assert st == 200 and body['status'] == 'SUCCESS', (st, body)
        assert body['kernel_uid'] == UIDS['carol']
        wait_log(a, 'reachable again')
    finally:
        a.stop()
        rd.stop()


def test_unavailable_local_falls_back_to_the_node_cache(realm, cc, tmp_path):
    rd = Redis(str(tmp_path)).start()
    a = node(realm, tmp_path, 'a', {'replay_cache': rd.url,
                                    'replay_cache_unavailable': 'local'}).start()
    try:
        rd.stop()
        tok = token(realm, cc['alice'])
        st, body = ask(a, tok)
        assert st == 200 and body['status'] == 'SUCCESS', (st, body)
        # the node's own cache still refuses a replay on this node
        st, body = ask(a, tok)
        assert refused_as_replay(st, body), body
        wait_log(a, "checked against this node's own cache only")
        assert 'a token used on another node is NOT refused' in a.log()
        rd.start()
        tok = token(realm, cc['bob'])
        deadline = time.monotonic() + 5
        while 'reachable again' not in a.log() and time.monotonic() < deadline:
            ask(a, token(realm, cc['bob']))
            time.sleep(0.2)
        assert 'reachable again' in a.log()
        st, body = ask(a, tok)
        assert body['status'] == 'SUCCESS'
        assert rd.keys(), 'recorded in Redis again'
    finally:
        a.stop()
        rd.stop()


# ---- AUTH from a file ----

def test_password_file(realm, cc, tmp_path):
    rd = Redis(str(tmp_path), password='s3cret-farm').start()
    good = tmp_path / 'pw'
    good.write_text('s3cret-farm\n')
    good.chmod(0o600)
    bad = tmp_path / 'badpw'
    bad.write_text('wrong\n')
    a = node(realm, tmp_path, 'a', {'replay_cache': rd.url + '?db=5',
                                    'replay_cache_password_file': str(good)}).start()
    b = node(realm, tmp_path, 'b', {'replay_cache': rd.url,
                                    'replay_cache_password_file': str(bad)}).start()
    try:
        tok = token(realm, cc['alice'])
        st, body = ask(a, tok)
        assert st == 200 and body['status'] == 'SUCCESS', body
        assert rd.cli('-n', '5', 'DBSIZE') == '1' and rd.cli('DBSIZE') == '0'
        # a wrong password: fail closed, with Redis's own words in the log
        st, body = ask(b, token(realm, cc['bob']))
        assert st == 503, body
        wait_log(b, 'AUTH: WRONGPASS')
        assert 's3cret' not in a.log() + b.log()
    finally:
        a.stop()
        b.stop()
        rd.stop()


# ---- configuration errors name the file and line ----

@pytest.mark.parametrize('key,value,words', [
    ('replay_cache', 'redis://', 'bad or missing host'),
    ('replay_cache', 'redis://host:99999', 'bad port'),
    ('replay_cache', 'redis://host:6379/x', 'database number'),
    ('replay_cache', 'redis://u:pw@host', 'no password in the URL'),
    ('replay_cache', 'rediss://host', 'TLS to Redis is not supported'),
    ('replay_cache', 'unix:relative.sock', 'must be absolute'),
    ('replay_cache', 'unix:/run/r.sock?database=1', 'only ?db=N'),
    ('replay_cache', 'memcached://host', 'is not memory | file | redis://'),
    ('replay_cache_password_file', '/nonexistent/pw', "cannot read '/nonexistent/pw'"),
    ('replay_cache_password_file', '/dev/null', 'is not a regular file'),
    ('replay_cache_password_file', 'relative/pw', 'is not an absolute path'),
    ('replay_cache_unavailable', 'maybe', 'is not fail or local'),
    ('replay_cache_timeout_ms', '5', 'at least 10'),
])
def test_config_errors_name_file_and_line(tmp_path, key, value, words):
    conf = tmp_path / 'gh.conf'
    conf.write_text(f'[server]\nlisten = 127.0.0.1:1\nworkers = 2\n{key} = {value}\n\n'
                    '[site /]\nhandler = fixed\nbody = x\n')
    p = subprocess.run([GATEHOUSED, '-t', '-c', str(conf)], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode != 0
    assert f'{conf}:4:' in p.stderr and f'[server] {key}' in p.stderr, p.stderr
    assert words in p.stderr, p.stderr


def test_unreadable_password_file_is_a_config_error():
    import pathlib
    d = tempfile.mkdtemp(prefix='gh-pwfile-')   # reachable by nobody, unlike pytest's dirs
    os.chmod(d, 0o755)
    try:
        unreadable_password_file(pathlib.Path(d))
    finally:
        shutil.rmtree(d, ignore_errors=True)


def unreadable_password_file(tmp_path):
    pw = tmp_path / 'pw'
    pw.write_text('x\n')
    pw.chmod(0o000)
    conf = tmp_path / 'gh.conf'
    conf.write_text(f'[server]\nlisten = 127.0.0.1:1\nreplay_cache = unix:/run/r.sock\n'
                    f'replay_cache_password_file = {pw}\n\n[site /]\nhandler = fixed\nbody = x\n')
    # as an account that may not read it (root without CAP_DAC_OVERRIDE reads anything)
    p = subprocess.run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups',
                        GATEHOUSED, '-t', '-c', str(conf)], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode != 0
    assert f'{conf}:4:' in p.stderr and 'Permission denied' in p.stderr, p.stderr
    # empty, and two lines
    for text in ('', 'a\nb\n'):
        pw.chmod(0o600)
        pw.write_text(text)
        p = subprocess.run([GATEHOUSED, '-t', '-c', str(conf)], capture_output=True, text=True,
                           timeout=30)
        assert p.returncode != 0 and 'one line' in p.stderr, p.stderr


# ---- TLS: channel binding, the other defence ----

TLS_SITES = [('/', {'auth': 'negotiate ntlm basic anonymous', 'channel_binding': 'strict'})]


@pytest.fixture(scope='module')
def pki():
    d = tempfile.mkdtemp(prefix='gh-pki-')
    os.chmod(d, 0o755)
    ca = ScratchCA(d)
    # one name for the farm, a certificate (and key) per node, and one shared by all
    p = {'ca': ca, 'a': ca.issue('a', ['www.gh.test', 'localhost']),
         'b': ca.issue('b', ['www.gh.test', 'localhost']),
         'shared': ca.issue('shared', ['www.gh.test', 'localhost'])}
    yield p
    shutil.rmtree(d, ignore_errors=True)


def tls_node(realm, tmp, name, cert, server=None):
    port = socket.socket()
    port.bind(('127.0.0.1', 0))
    p = port.getsockname()[1]
    port.close()
    srv = {'tls_cert': cert[0], 'tls_key': cert[1]}
    srv.update(server or {})
    n = node(realm, tmp, name, srv, TLS_SITES)
    # the TLS listener in place of the plain one
    text = open(n.conf).read().replace(f'listen = 127.0.0.1:{n.port}\n',
                                       f'listen = 127.0.0.1:{p} tls\n')
    with open(n.conf, 'w') as f:
        f.write(text)
    n.port = p
    return n.start()


def bound_token(env, port, ca):
    """A Kerberos token bound (RFC 5929 tls-server-end-point) to the channel of a TLS
    connection to port, as a browser makes it; the connection is closed unused."""
    out = subprocess.run(['/usr/bin/python3', '-c', f'''
import base64, hashlib, socket, ssl, gssapi, gssapi.raw as g
ctx = ssl.create_default_context(cafile={ca!r})
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", {port})), server_hostname="localhost")
cb = g.ChannelBindings(application_data=b"tls-server-end-point:" +
                       hashlib.sha256(s.getpeercert(True)).digest())
n = gssapi.Name("HTTP@localhost", gssapi.NameType.hostbased_service)
print(base64.b64encode(gssapi.SecurityContext(name=n, usage="initiate",
      channel_bindings=cb).step()).decode())
'''], env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return 'Negotiate ' + out.stdout.strip()


def tls_ask(n, ca, authz):
    s = tls_connect(n.port, ca)
    try:
        st, _, body = http_get(s, '/', [('Authorization', authz)])
        return st, json.loads(body)
    finally:
        s.close()


def test_tls_replay_to_another_node(realm, cc, pki, tmp_path):
    """channel_binding = strict: a token bound to node A's certificate fails on node B's
    channel whatever the replay cache (per-node certificates, no Redis). With one
    certificate shared by the farm the bindings are the same on every node: then only the
    shared store refuses the replay — shown without it (accepted) and with it (refused)."""
    ca = pki['ca'].cert
    rd = Redis(str(tmp_path)).start()
    nodes = []
    try:
        # per-node certificates, each node its own cache
        a = tls_node(realm, tmp_path, 'a', pki['a'])
        b = tls_node(realm, tmp_path, 'b', pki['b'])
        nodes += [a, b]
        tok = bound_token(cc['alice'], a.port, ca)
        st, body = tls_ask(a, ca, tok)
        assert st == 200 and body['status'] == 'SUCCESS' and body['flags'] & 0x200, body
        st, body = tls_ask(b, ca, tok)
        assert body['status'] == 'FAILURE' and body['token'] == 0, body
        assert body['sec_major'] & 0xffff0000 == 4 << 16, body  # GSS_S_BAD_BINDINGS
        # one certificate for the farm, each node its own cache: the replay passes
        s1 = tls_node(realm, tmp_path, 's1', pki['shared'])
        s2 = tls_node(realm, tmp_path, 's2', pki['shared'])
        nodes += [s1, s2]
        tok = bound_token(cc['bob'], s1.port, ca)
        assert tls_ask(s1, ca, tok)[1]['status'] == 'SUCCESS'
        st, body = tls_ask(s2, ca, tok)
        assert body['status'] == 'SUCCESS' and body['kernel_uid'] == UIDS['bob'], body
        # one certificate and the shared store: refused
        r1 = tls_node(realm, tmp_path, 'r1', pki['shared'], {'replay_cache': rd.url})
        r2 = tls_node(realm, tmp_path, 'r2', pki['shared'], {'replay_cache': rd.url})
        nodes += [r1, r2]
        tok = bound_token(cc['carol'], r1.port, ca)
        assert tls_ask(r1, ca, tok)[1]['status'] == 'SUCCESS'
        st, body = tls_ask(r2, ca, tok)
        assert refused_as_replay(st, body), body
    finally:
        for n in nodes:
            n.stop()
        rd.stop()


# ---- gatehoused --doctor tries the store as a worker will ----

def doctor_line(gh):
    """Runs gatehoused --doctor on the node's configuration: (exit status, "LEVEL text") of its
    replay-cache line."""
    p = subprocess.run([GATEHOUSED, '--doctor', '-c', gh.conf], env=gh.env, capture_output=True,
                       text=True, timeout=120)
    lines = [ln for ln in p.stdout.splitlines() if ' replay-cache: ' in ln]
    assert len(lines) == 1, p.stdout + p.stderr
    level, _, text = lines[0].partition(' replay-cache: ')
    return p.returncode, f'{level.strip()} {text}'


def test_doctor_checks_the_replay_store(realm, tmp_path):
    rd = Redis(str(tmp_path), password='doc-pw', tcp=True).start()
    pw, bad = tmp_path / 'pw', tmp_path / 'bad'
    pw.write_text('doc-pw\n')
    bad.write_text('nope\n')
    for f in (pw, bad):
        f.chmod(0o600)
    good = node(realm, tmp_path, 'good', {'replay_cache': rd.url,
                                          'replay_cache_password_file': str(pw)})
    tcp = node(realm, tmp_path, 'tcp', {'replay_cache': rd.tcp_url + '/3',
                                        'replay_cache_password_file': str(pw)})
    wrong = node(realm, tmp_path, 'wrong', {'replay_cache': rd.url,
                                            'replay_cache_password_file': str(bad)})
    try:
        for gh in (good, tcp):
            rc, line = doctor_line(gh)
            assert line.startswith('OK redis ') and 'second SET NX is refused' in line, line
        # the doctor's own key is gone afterwards
        assert rd.cli('--scan', '--pattern', 'gh:doctor:*') == ''
        rc, line = doctor_line(wrong)
        assert rc == 1 and line.startswith('FAIL redis ') and 'WRONGPASS' in line, line
        assert 'nope' not in line and 'doc-pw' not in line
        # an evicting store can drop tags when full: a warning that says what to set
        rd.cli('CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lru')
        rc, line = doctor_line(good)
        assert line.startswith('WARN redis ') and 'noeviction' in line, line
        rd.stop()
        rc, line = doctor_line(good)
        assert rc == 1 and line.startswith('FAIL redis ') and '503' in line, line
        lo = node(realm, tmp_path, 'local', {'replay_cache': rd.url,
                                             'replay_cache_password_file': str(pw),
                                             'replay_cache_unavailable': 'local'})
        rc, line = doctor_line(lo)
        assert line.startswith('FAIL redis ') and 'only locally' in line, line
    finally:
        rd.stop()
