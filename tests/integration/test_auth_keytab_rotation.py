"""test_auth_keytab_rotation.py: keytab rotation without one failed request — a key version appended while a Negotiate load runs serves the very next ticket (both SPNs of the realm, one process and processes = 2) while old-version tickets keep working; SIGHUP re-reads the keytab; a missing, empty, garbage or half-written keytab after start keeps the keys it had (logged)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gh_realm import GhRealm  # noqa: E402
from test_auth_http import GATEHOUSED, Gatehoused, gssclient  # noqa: E402

LOAD = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'kt_load_client.py')
SPNS = ['localhost', 'www.gh.test']
SITES = [('/', {'auth': 'negotiate', 'handler': 'fixed', 'body': 'ok'})]

pytestmark = [
    pytest.mark.skipif(not os.path.exists(GATEHOUSED), reason=f'{GATEHOUSED} not built'),
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root (the realm harness and daemon)'),
]


@pytest.fixture(scope='module')
def krealm():
    """A realm of our own: these tests bump key versions."""
    r = GhRealm()
    yield r
    r.close()


def kvno_of(env, spn):
    """The key version of the ccache's ticket for spn (fetched when not cached)."""
    p = subprocess.run(['kvno', spn], env=env, capture_output=True, text=True, check=True)
    return int(p.stdout.rsplit('kvno = ', 1)[1].split()[0])


def negotiate(d, env, spn):
    """One SPNEGO request with a fresh token for HTTP@spn: the HTTP status."""
    return gssclient(None, env, 'krb5', '127.0.0.1', str(d.port), '/', 'HTTP@' + spn)['status']


class Load:
    """kt_load_client.py in the background: fresh tokens from env's ccache for HTTP@spn."""

    def __init__(self, d, env, spn, tmp, tag):
        self.stop_file = str(tmp / f'stop-{tag}')
        self.p = subprocess.Popen(['/usr/bin/python3', LOAD, '127.0.0.1', str(d.port), '/',
                                   'HTTP@' + spn, self.stop_file], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def result(self):
        open(self.stop_file, 'w').close()
        out, err = self.p.communicate(timeout=60)
        assert self.p.returncode == 0, err
        return json.loads(out)


def keytab_lines(d):
    return [x for x in d.log().splitlines() if 'auth: keytab ' in x]


def hup(d, n_lines=1, timeout=10):
    """SIGHUP; returns the n_lines new 'auth: keytab' lines it produced."""
    before = len(keytab_lines(d))
    d.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = keytab_lines(d)
        if len(lines) >= before + n_lines:
            return lines[before:]
        time.sleep(0.02)
    raise AssertionError('no keytab line after SIGHUP: ' + d.log())


@pytest.mark.parametrize('processes', [1, 2])
def test_new_kvno_under_load_no_request_fails(krealm, tmp_path, processes):
    d = Gatehoused(krealm, tmp_path / 'd', SITES, unix=False,
                   server={'workers': 4, 'processes': processes if processes > 1 else None,
                           'ntlm_user_file': None})
    d.start()
    loads = []
    try:
        # a load per SPN with the current key version (tickets fetched now,
        # used from the ccache for the whole test)
        old_kvno = {}
        for spn in SPNS:
            env = krealm.kinit('alice', ccache=str(tmp_path / f'cc_old_{spn}'))
            old_kvno[spn] = kvno_of(env, 'HTTP/' + spn)
            loads.append(('old', spn, Load(d, env, spn, tmp_path, f'old-{spn}')))
        time.sleep(0.5)
        for spn in SPNS:
            # kadmin ktadd: a new random key in the KDC (kvno + 1), appended to the keytab
            krealm.kadmin(f'ktadd -k {krealm.keytab} HTTP/{spn}')
            env = krealm.kinit('bob', ccache=str(tmp_path / f'cc_new_{spn}'))
            assert kvno_of(env, 'HTTP/' + spn) == old_kvno[spn] + 1
            # the very next ticket for the new version is served
            assert negotiate(d, env, spn) == 200, d.log()
            rotated = time.time()
            loads.append(('new', spn, Load(d, env, spn, tmp_path, f'new-{spn}')))
        time.sleep(1.0)
        results = [(kind, spn, load.result()) for kind, spn, load in loads]
    finally:
        for _, _, load in loads:
            if load.p.poll() is None:
                load.p.kill()
                load.p.wait()
        try:
            if processes > 1 and d.proc.poll() is None:
                # SIGHUP reaches every worker process: each re-reads its keytab
                lines = hup(d, n_lines=2)
                assert all('re-read: no new keys' in x for x in lines), lines
                assert len({x.split(']')[0] for x in lines}) == 2, lines  # two pids
        finally:
            d.stop()
    for kind, spn, r in results:
        assert r['n_failed'] == 0, (kind, spn, r, d.log())
        assert r['ok'] > 0, (kind, spn, r)
        if kind == 'old':  # the old key version kept working after the rotation
            assert r['last_ok'] > rotated, (spn, r, rotated)
    assert 'a ticket found no key' in d.log() or 'periodic check' in d.log(), d.log()


def test_sighup_rereads_and_a_bad_keytab_keeps_the_keys(krealm, tmp_path):
    kt = tmp_path / 'http.keytab'
    shutil.copy(krealm.keytab, kt)
    os.chmod(kt, 0o600)
    d = Gatehoused(krealm, tmp_path / 'd', SITES, unix=False,
                   server={'keytab': str(kt), 'ntlm_user_file': None, 'workers': 2})
    d.start()
    try:
        alice = krealm.kinit('alice', ccache=str(tmp_path / 'cc_alice'))
        assert negotiate(d, alice, 'localhost') == 200
        assert 're-read: no new keys' in hup(d)[0]
        # SIGHUP merges a new key version before any ticket asks for it
        krealm.kadmin(f'ktadd -k {kt} HTTP/localhost')
        line = hup(d)[0]
        assert 're-read: 2 new keys (HTTP/localhost@GH.TEST kvno' in line, line
        bob = krealm.kinit('bob', ccache=str(tmp_path / 'cc_bob'))
        assert negotiate(d, bob, 'localhost') == 200
        assert 'a ticket found no key' not in d.log(), d.log()
        good = kt.read_bytes()
        held = line.rsplit(', ', 1)[1].split()[0]
        # a file that cannot be read keeps every key, and says so
        for label, content, text in [('garbage', b'not a keytab at all', 'not re-read: '),
                                     ('empty', b'', 'the file is empty'),
                                     ('no entries', b'\x05\x02', 'no keys in it'),
                                     ('missing', None, 'No such file or directory')]:
            if content is None:
                kt.unlink()
            else:
                kt.write_bytes(content)
            line = hup(d)[0]
            assert text in line and f'keeping the {held} keys already loaded' in line, \
                (label, line)
            assert negotiate(d, alice, 'localhost') == 200, label
            assert negotiate(d, bob, 'localhost') == 200, label
        # caught half-written: the old keys plus a new version of HTTP/www.gh.test
        # whose second entry (aes128) is cut short; no SIGHUP: the ticket for the
        # new version makes the engine read the changed file, whose complete
        # entries (aes256: the ticket's enctype) are taken
        extra = tmp_path / 'extra.keytab'
        krealm.kadmin(f'ktadd -k {extra} HTTP/www.gh.test')
        entries = extra.read_bytes()[2:]                # after the format version
        n1 = int.from_bytes(entries[:4], 'big', signed=True)
        kt.write_bytes(good + entries[:4 + n1] + entries[4 + n1:4 + n1 + 20])
        carol = krealm.kinit('carol', ccache=str(tmp_path / 'cc_carol'))
        assert negotiate(d, carol, 'www.gh.test') == 200, d.log()
        assert 're-read (a ticket found no key): 1 new key (HTTP/www.gh.test@GH.TEST' \
            in d.log(), d.log()
        assert negotiate(d, alice, 'localhost') == 200
        assert negotiate(d, bob, 'localhost') == 200
        assert d.proc.poll() is None
    finally:
        d.stop()
