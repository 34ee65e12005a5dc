"""test_ad_identity.py: one canonical identity for Active Directory users (issue 14 item 3) — every spelling of a user (ADTEST\\carla, adtest\\carla, carla, carla@ad.test, CARLA@AD.TEST over NTLM; principals and enterprise names over Kerberos) resolves to its SID, the SID to the winbind account, and the application, `require user:` and the access log see one name in the site's name_format."""
import os
import socket
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ad_helpers import STRICT, AdDaemon, body, negotiate, ntlm  # noqa: E402
from pipeline_helpers import GATEHOUSED  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not os.path.exists(GATEHOUSED), reason=f'{GATEHOUSED} not built'),
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root: impersonation of AD uids'),
]

SPELLINGS = ['ADTEST\\carla', 'adtest\\carla', 'carla', 'carla@ad.test', 'CARLA@AD.TEST']
FORMATS = {'domain': ('domain\\user', 'ADTEST\\carla'), 'upn': ('user@realm', 'carla@AD.TEST'),
           'short': ('user', 'carla')}


@pytest.fixture(scope='module')
def gh(ad_realm):
    sites = []
    for key, (fmt, _) in FORMATS.items():
        sites.append((f'/{key}/whoami', {'handler': 'whoami', 'auth': STRICT, 'name_format': fmt}))
    sites.append(('/only-carla', {'handler': 'whoami', 'auth': STRICT,
                                  'require': 'user:ADTEST\\carla'}))
    from pipeline_helpers import shared_dir
    logdir = shared_dir('gh-adlog-')
    d = AdDaemon(ad_realm, sites=sites, server={'access_log': os.path.join(logdir, 'access.log')})
    d.access_log = os.path.join(logdir, 'access.log')
    d.start()
    yield d
    d.stop()


@pytest.fixture(scope='module')
def no_ticket(ad_realm):
    return ad_realm.client_env(ad_realm.path('ccache-that-does-not-exist'))


def whoami(r):
    assert r.status == 200, r
    return body(r)


@pytest.mark.parametrize('spelling', SPELLINGS)
@pytest.mark.parametrize('fmt', list(FORMATS))
def test_ntlm_every_spelling_one_name(gh, no_ticket, spelling, fmt):
    r = ntlm(gh.url(f'/{fmt}/whoami'), spelling, 'Carla-Pass-1', no_ticket,
             extra=['-H', 'Accept: application/json'])
    assert r.status == 200, (spelling, r, gh.log())
    w = body(r)
    assert w['name'] == FORMATS[fmt][1], (spelling, w)
    assert w['logonUser'] == 'ADTEST\\carla' and w['uid'] == 21001, w


@pytest.mark.parametrize('spelling', SPELLINGS)
def test_require_user_matches_the_canonical_account(gh, no_ticket, spelling):
    assert ntlm(gh.url('/only-carla'), spelling, 'Carla-Pass-1', no_ticket).status == 200
    assert ntlm(gh.url('/only-carla'), 'dmitri@AD.TEST', 'Dmitri-Pass-1', no_ticket).status == 403


@pytest.mark.parametrize('principal,kinit_args', [
    ('carla@AD.TEST', []), ('CARLA@AD.TEST', []), ('carla@ad.test', ['-E'])])
@pytest.mark.parametrize('fmt', list(FORMATS))
def test_kerberos_principals_one_name(gh, ad_realm, tmp_path, principal, kinit_args, fmt):
    cc = str(tmp_path / 'cc')
    env = ad_realm.client_env(cc)
    p = subprocess.run(['kinit'] + kinit_args + [principal], input='Carla-Pass-1\n', env=env,
                       text=True, capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr
    w = whoami(negotiate(gh.url(f'/{fmt}/whoami'), env, extra=['-H', 'Accept: application/json']))
    assert w['name'] == FORMATS[fmt][1], (principal, w)
    assert w['logonUser'] == 'ADTEST\\carla' and w['uid'] == 21001, w
    assert negotiate(gh.url('/only-carla'), env).status == 200


def test_access_log_has_the_canonical_name(gh, no_ticket):
    for spelling in ('adtest\\carla', 'carla@ad.test'):
        assert ntlm(gh.url('/domain/whoami'), spelling, 'Carla-Pass-1', no_ticket).status == 200
    with open(gh.access_log) as f:
        log = f.read()
    lines = [x for x in log.splitlines() if '/domain/whoami' in x and ' 200 ' in x]
    assert lines and all('carla@ad.test' not in x and 'adtest\\' not in x for x in lines), lines
    assert all('ADTEST\\carla' in x or 'ADTEST\\\\carla' in x for x in lines), lines
