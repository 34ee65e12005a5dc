"""test_module_log.py: the log module in the real daemon — one Combined Log Format line per request with the authenticated user (as authenticated, readable: GH\\alice, alice@GH.TEST, alice), reopened on SIGHUP (log rotation)."""
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gh_realm import realm  # noqa: E402,F401
from pipeline_helpers import (BASIC, CLF_RE, GhDaemon, curl, needs_daemon, needs_root,  # noqa: E402
                              shared_dir)

pytestmark = [needs_daemon, needs_root]


def wait_lines(path, n, timeout=5):
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        if os.path.exists(path):
            lines = open(path).read().splitlines()
            if len(lines) >= n:
                break
        time.sleep(0.02)
    return lines


@pytest.fixture
def gh(realm):  # noqa: F811
    logdir = shared_dir('gh-log-')
    d = GhDaemon(realm, [('/w', dict(BASIC, handler='whoami')),
                         ('/n', {'handler': 'whoami', 'auth': 'ntlm'}),
                         ('/k', {'handler': 'whoami', 'auth': 'negotiate'})],
                 server={'access_log': os.path.join(logdir, 'access.log')})
    d.start()
    d.logfile = os.path.join(logdir, 'access.log')
    yield d
    d.stop()
    import shutil
    shutil.rmtree(logdir, ignore_errors=True)


def test_combined_log_format_with_user(gh):
    gh.get('/w/x?y=1', user='alice', headers={'Referer': 'http://ref/', 'User-Agent': 'ua-test'})
    gh.get('/w/anon')
    lines = wait_lines(gh.logfile, 2)
    assert len(lines) == 2, lines
    m = CLF_RE.match(lines[0])
    assert m, lines[0]
    addr, user, _, reqline, status, size, ref, ua = m.groups()
    assert addr == '127.0.0.1' and user == 'alice'
    assert reqline == 'GET /w/x?y=1 HTTP/1.1' and status == '200' and int(size) > 0
    assert ref == 'http://ref/' and ua == 'ua-test'
    m = CLF_RE.match(lines[1])
    assert m and m.group(2) == '-', lines[1]


def test_client_cannot_forge_lines(gh):
    gh.get('/w/', user='bob', headers={'User-Agent': 'x" 200 1 "\\nfake'})
    lines = wait_lines(gh.logfile, 1)
    assert len(lines) == 1 and CLF_RE.match(lines[0]), lines


def test_sighup_reopens(gh):
    gh.get('/w/one', user='alice')
    assert len(wait_lines(gh.logfile, 1)) == 1
    os.rename(gh.logfile, gh.logfile + '.1')
    gh.reload()
    gh.get('/w/two', user='bob')
    lines = wait_lines(gh.logfile, 1)
    assert len(lines) == 1 and '/w/two' in lines[0] and ' bob ' in lines[0], lines
    assert '/w/one' in open(gh.logfile + '.1').read()


def test_user_field_is_the_name_as_authenticated_and_readable(gh, realm):  # noqa: F811
    """NTLM's DOMAIN\\user is written as it is (no \\x5c), Negotiate's principal and
    Basic's name too: the REMOTE_USER of each scheme."""
    assert gh.get('/n/', user='GH\\alice', password='alicepw', extra=['--ntlm']).status == 200
    env = realm.kinit('bob')
    r = curl(f'http://localhost:{gh.port}/k/', env=env, extra=['--negotiate', '-u', ':'])
    assert r.status == 200, r
    assert gh.get('/w/', user='carol').status == 200
    lines = wait_lines(gh.logfile, 3)
    users = [CLF_RE.match(line).group(2) for line in lines]
    assert users == ['GH\\alice', f'bob@{realm.realm}', 'carol'], lines
