"""test_ad_ntlm.py: NTLM checked by a real Active Directory DC (Samba AD DC, gh_ad_realm.py) — gss-ntlmssp hands the check to winbind, no ntlm_user_file: raw NTLM and NTLM inside Negotiate succeed; a wrong password, an unknown user, a disabled account, an expired password and Administrator (uid 0) each get 401 (issue 14 item 2)."""
import os
import socket
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ad_helpers import body, gssclient, ntlm  # noqa: E402
from gh_ad_realm import DISABLED, EXPIRED  # noqa: E402
from pipeline_helpers import GATEHOUSED  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not os.path.exists(GATEHOUSED), reason=f'{GATEHOUSED} not built'),
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root: impersonation of AD uids'),
]

# gss-ntlmssp's initiator wants the server's real host name as the target
TARGET = 'HTTP@' + socket.gethostname()


@pytest.fixture(scope='module')
def no_ticket(ad_realm):
    """A client environment whose ccache does not exist: NTLM only, never Kerberos."""
    return ad_realm.client_env(ad_realm.path('ccache-that-does-not-exist'))


def test_no_ntlm_user_file(ad_gh):
    with open(ad_gh.gh.conf) as f:
        assert 'ntlm_user_file' not in f.read()


def test_curl_ntlm_checked_by_the_dc(ad_gh, no_ticket):
    r = ntlm(ad_gh.url('/info'), 'ADTEST\\carla', 'Carla-Pass-1', no_ticket)
    b = body(r)
    assert r.status == 200, (r, ad_gh.log())
    assert b['status'] == 'SUCCESS' and b['type'] == 'NTLM' and b['package'] == 'NTLM', b
    assert b['token_uid'] == 21001 and b['kernel_uid'] == 21001, b
    assert set(b['token_groups']) >= {100, 31001, 31002}, b    # nested gh-outer too


def test_curl_ntlm_reads_own_file_not_others(ad_gh, no_ticket):
    r = ntlm(ad_gh.url('/files/dmitri.txt'), 'ADTEST\\dmitri', 'Dmitri-Pass-1', no_ticket)
    assert r.status == 200 and r.text == 'secret of dmitri\n', r
    r = ntlm(ad_gh.url('/files/carla.txt'), 'ADTEST\\dmitri', 'Dmitri-Pass-1', no_ticket)
    assert r.status == 403, r


def test_raw_ntlm_python_gssapi(ad_gh, no_ticket):
    out = gssclient(no_ticket, 'ntlm', '127.0.0.1', str(ad_gh.port), '/info', 'ADTEST\\dmitri',
                    'Dmitri-Pass-1', TARGET)
    assert out['leg1'] == 401 and out['status'] == 200, out
    assert out['body']['type'] == 'NTLM' and out['body']['token_uid'] == 21002, out


def test_ntlm_inside_negotiate(ad_gh, no_ticket):
    # SPNEGO with password credentials limited to NTLM: two legs on one connection,
    # the client verifies the server's final token (mechListMIC)
    out = gssclient(no_ticket, 'spnego-ntlm', '127.0.0.1', str(ad_gh.port), '/info',
                    'ADTEST\\carla', 'Carla-Pass-1', TARGET)
    assert out['legs'] == [401, 200], (out, ad_gh.log())
    assert out['complete'] and out['mech_ntlm'], out
    b = out['body']
    assert b['type'] == 'Negotiate' and b['package'] == 'NTLM', b
    assert b['token_uid'] == 21001 and b['kernel_uid'] == 21001, b


@pytest.mark.parametrize('user,password,why', [
    ('ADTEST\\carla', 'not-her-password', 'wrong password'),
    ('ADTEST\\nosuchuser', 'Whatever-1', 'unknown user'),
    (f'ADTEST\\{DISABLED}', 'Erin-Pass-1', 'disabled account'),
    (f'ADTEST\\{EXPIRED}', 'Frank-Pass-1', 'expired password'),
    ('ADTEST\\Administrator', 'Admin-Pass-1', 'uid 0 (min_uid)'),
])
def test_refused_logons_get_401(ad_gh, ad_realm, no_ticket, user, password, why):
    # raw NTLM: 401 with the challenges again, no token
    r = ntlm(ad_gh.url('/info'), user, password, no_ticket)
    assert r.status == 401, (why, r)
    assert r.header('WWW-Authenticate') is not None
    # on a site that lets the application decide, the record says FAILURE without a token
    r = ntlm(ad_gh.url('/anon'), user, password, no_ticket)
    b = body(r)
    assert r.status == 200 and b['status'] == 'FAILURE' and b['token'] == 0, (why, b)
    # NTLM inside Negotiate: 401 as well
    out = gssclient(no_ticket, 'spnego-ntlm', '127.0.0.1', str(ad_gh.port), '/info', user,
                    password, TARGET)
    assert out['status'] == 401 and not out['complete'], (why, out)


def test_dc_itself_refuses_the_bad_accounts(ad_realm):
    # the harness really made them so (the DC's own verdict through wbinfo)
    for user, pw, status in (
            (DISABLED, 'Erin-Pass-1', 'NT_STATUS_ACCOUNT_DISABLED'),
            (EXPIRED, 'Frank-Pass-1', 'NT_STATUS_PASSWORD_EXPIRED'),
            ('carla', 'not-her-password', 'NT_STATUS_WRONG_PASSWORD')):
        p = ad_realm.wbinfo('-a', f'ADTEST\\{user}%{pw}', check=False)
        assert status in p.stdout + p.stderr, (user, p.stdout, p.stderr)
    p = ad_realm.wbinfo('-a', 'ADTEST\\Administrator%Admin-Pass-1', check=False)
    assert 'plaintext password authentication succeeded' in p.stdout, p.stdout
    assert ad_realm.run(['getent', 'passwd', 'ADTEST\\administrator'],
                        env=ad_realm.env()).stdout.split(':')[2] == '0'
