"""test_proxy_negotiate.py: the proxy's Kerberos to the upstream (modules/proxy/proxy_negotiate.c) against a real gatehoused Negotiate + whoami site in the MIT realm: the upstream sees the client, mutual authentication is checked, a wrong or unknown SPN is refused."""
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gh_realm import realm  # noqa: E402,F401
from pipeline_helpers import GhDaemon, needs_daemon, needs_root  # noqa: E402
from helpers import BUILD  # noqa: E402

GET = os.path.join(BUILD, 'modules', 'proxy-negotiate-get')
pytestmark = [needs_daemon, needs_root,
              pytest.mark.skipif(not os.path.exists(GET), reason=f'{GET} not built')]


@pytest.fixture(scope='module')
def upstream(realm):  # noqa: F811
    d = GhDaemon(realm, [('/whoami', {'handler': 'whoami', 'auth': 'negotiate'})])
    d.start()
    yield d
    d.stop()


def run(realm, user, spn, port, path='/whoami'):  # noqa: F811
    env = realm.kinit(user)
    p = subprocess.run([GET, env['KRB5CCNAME'], spn, str(port), path], env=env,
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout


@pytest.mark.parametrize('user', ['alice', 'bob'])
def test_upstream_sees_the_client(realm, upstream, user):  # noqa: F811
    rc, out = run(realm, user, 'HTTP/localhost', upstream.port)
    assert rc == 0, out
    lines = out.split('\n', 2)
    assert lines[0] == 'status 200' and lines[1] == 'mutual ok', out
    j = json.loads(lines[2])
    assert j['name'] == f'{user}@{realm.realm}' and j['authType'] == 'Negotiate', j
    assert j['impersonationToken'] == 'valid'


def test_host_based_spn(realm, upstream):  # noqa: F811
    rc, out = run(realm, 'alice', 'HTTP@localhost', upstream.port)
    assert rc == 0 and 'mutual ok' in out, out


def test_spn_not_in_the_upstreams_keytab(realm, upstream):  # noqa: F811
    # the KDC issues the ticket, the upstream cannot decrypt it: no 200, and no mutual proof
    rc, out = run(realm, 'alice', 'HTTP/other.gh.test', upstream.port)
    assert rc == 1, out
    assert 'status 200' not in out and 'mutual ok' not in out, out


def test_unknown_spn_refused_before_sending(realm, upstream):  # noqa: F811
    rc, out = run(realm, 'alice', 'HTTP/nosuch.gh.test', upstream.port)
    assert rc == 1 and out.startswith('start failed: HTTP/nosuch.gh.test'), out


def test_upstream_without_mutual_auth_refused(realm, upstream):  # noqa: F811
    # a site that answers without authenticating at all (anonymous): no token to check
    d = GhDaemon(realm, [('/anon', {'handler': 'whoami', 'auth': 'anonymous'})])
    d.start()
    try:
        rc, out = run(realm, 'alice', 'HTTP/localhost', d.port, '/anon')
    finally:
        d.stop()
    assert rc == 1 and 'status 200' in out, out
    assert 'did not authenticate itself' in out, out
