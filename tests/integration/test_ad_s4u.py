"""test_ad_s4u.py: S4U against the Samba AD DC (gh_ad_realm.py) — a user signed in with NTLM gets a Kerberos credential obtained by gatehoused with the service's keytab Basic or as a Unix peer (S4U2Self, then S4U2Proxy to a target the DC allows), in the request's delegated ccache, so a CGI script running as the user holds a ticket for the target; a target the DC does not allow is left out with a log line and the request is still served (issue 14 item 5)."""
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ad_helpers import AdDaemon, ntlm  # noqa: E402
from gh_realm import PAM_MATRIX, PAM_WRAPPER  # noqa: E402
from gh_ad_realm import SERVICE  # noqa: E402
from pipeline_helpers import GATEHOUSED, curl, shared_dir  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not os.path.exists(GATEHOUSED), reason=f'{GATEHOUSED} not built'),
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root: impersonation of AD uids'),
]

ALLOWED = 'host/dc1.ad.test'        # in ghsvc's msDS-AllowedToDelegateTo (the fixture)
REFUSED = 'HOST/DC1'                # an SPN of the DC too, but not allowed

CGI = """#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
echo "UID=$(id -u)"
echo "KRB5CCNAME=$KRB5CCNAME"
[ -n "$KRB5CCNAME" ] || exit 0
klist "$KRB5CCNAME" 2>&1
echo "KVNO: $(kvno -c "$KRB5CCNAME" %s@AD.TEST 2>&1)"
""" % ALLOWED


def samba_tool(ad, *args):
    return ad.run(['samba-tool'] + list(args) + ['-s', ad.smb_conf], env=ad.base_env())


@pytest.fixture(scope='module')
def s4u_gh(ad_realm):
    ad = ad_realm
    # on the DC: protocol transition, and constrained delegation to ALLOWED only
    samba_tool(ad, 'delegation', 'for-any-protocol', SERVICE, 'on')
    samba_tool(ad, 'delegation', 'add-service', SERVICE, ALLOWED)
    # the keytab with the account's own name: AD issues TGTs to it, not to its SPNs
    kt = ad.path('s4u.keytab')
    with open(ad.keytab, 'rb') as f, open(kt, 'wb') as g:
        g.write(f.read())
    os.chmod(kt, 0o600)
    samba_tool(ad, 'domain', 'exportkeytab', kt, f'--principal={SERVICE}')
    cgi = shared_dir('gh-s4ucgi-')
    with open(os.path.join(cgi, 'creds'), 'w') as f:
        f.write(CGI)
    os.chmod(os.path.join(cgi, 'creds'), 0o755)
    site = {'handler': 'cgi', 'root': cgi, 'auth': 'ntlm'}
    sites = [('/proxy', dict(site, s4u='proxy', s4u_targets=ALLOWED)),
             ('/self', dict(site, s4u='self')),
             ('/refused', dict(site, s4u='proxy', s4u_targets=REFUSED)),
             ('/none', dict(site)),
             # Basic: the password checked by PAM (pam_matrix through pam_wrapper here; on a
             # real host pam_winbind or pam_sss), the account an AD user through winbind
             ('/basic', dict(site, auth='basic', basic_over_plain_http='yes', s4u='proxy',
                             s4u_targets=ALLOWED)),
             ('/peer', dict(site, auth='peer', s4u='proxy', s4u_targets=ALLOWED))]
    pam_dir = ad.path('s4u-pam.d')
    os.makedirs(pam_dir, exist_ok=True)
    passdb = ad.path('s4u-pam_matrix.passdb')
    with open(passdb, 'w') as f:
        f.write('carla:Carla-Pass-1:gatehouse\n')
    with open(os.path.join(pam_dir, 'gatehouse'), 'w') as f:
        f.write(f'auth required {PAM_MATRIX} passdb={passdb}\n'
                f'account required {PAM_MATRIX} passdb={passdb}\n')
    d = AdDaemon(ad, server={'keytab': kt, 's4u_principal': f'{SERVICE}@{ad.realm}',
                             'pam_service': 'gatehouse'}, sites=sites, unix=True)
    d.gh.env.update({'PAM_WRAPPER': '1', 'PAM_WRAPPER_SERVICE_DIR': pam_dir,
                     'PAM_MATRIX_PASSWD': passdb, 'PAM_WRAPPER_DISABLE_DEEPBIND': '1',
                     'UID_WRAPPER_DISABLE_DEEPBIND': '1'})
    d.gh.env['LD_PRELOAD'] = PAM_WRAPPER + ':' + d.gh.env['LD_PRELOAD']
    d.start()
    yield d
    d.stop()
    samba_tool(ad, 'delegation', 'del-service', SERVICE, ALLOWED)
    samba_tool(ad, 'delegation', 'for-any-protocol', SERVICE, 'off')


@pytest.fixture(scope='module')
def no_ticket(ad_realm):
    return ad_realm.client_env(ad_realm.path('ccache-that-does-not-exist'))


def test_ntlm_user_gets_a_ticket_to_the_allowed_target(s4u_gh, no_ticket):
    r = ntlm(s4u_gh.url('/proxy/creds'), 'ADTEST\\carla', 'Carla-Pass-1', no_ticket)
    assert r.status == 200, (r, s4u_gh.log())
    out = r.text
    assert 'UID=21001' in out and 'KRB5CCNAME=FILE:' in out, (out, s4u_gh.log())
    assert 'Default principal: carla@AD.TEST' in out, out
    assert f'{ALLOWED}@AD.TEST' in out, out
    assert f'KVNO: {ALLOWED}@AD.TEST: kvno = ' in out, out
    # never the service's own TGT: the user must not be able to act as the service
    assert 'krbtgt/' not in out, out


def test_self_gives_the_evidence_ticket_only(s4u_gh, no_ticket):
    r = ntlm(s4u_gh.url('/self/creds'), 'ADTEST\\dmitri', 'Dmitri-Pass-1', no_ticket)
    assert r.status == 200, (r, s4u_gh.log())
    out = r.text
    assert 'UID=21002' in out and 'Default principal: dmitri@AD.TEST' in out, out
    assert f'{SERVICE}@AD.TEST' in out and ALLOWED not in out.split('KVNO')[0], out
    assert 'krbtgt/' not in out, out


def test_target_not_allowed_is_left_out_and_logged(s4u_gh, no_ticket):
    before = len(s4u_gh.log())
    r = ntlm(s4u_gh.url('/refused/creds'), 'ADTEST\\carla', 'Carla-Pass-1', no_ticket)
    assert r.status == 200, (r, s4u_gh.log())
    assert 'UID=21001' in r.text and REFUSED not in r.text.split('KVNO')[0], r.text
    log = s4u_gh.log()[before:]
    assert f's4u: S4U2Proxy to {REFUSED} for carla refused' in log, log


def test_no_s4u_no_credential(s4u_gh, no_ticket):
    r = ntlm(s4u_gh.url('/none/creds'), 'ADTEST\\carla', 'Carla-Pass-1', no_ticket)
    assert r.status == 200 and 'UID=21001' in r.text and 'KRB5CCNAME=\n' in r.text, r.text


def test_basic_user_gets_a_ticket_to_the_allowed_target(s4u_gh, ad_realm):
    r = curl(s4u_gh.url('/basic/creds'), env=ad_realm.client_env(),
             extra=['-u', 'carla:Carla-Pass-1'])
    assert r.status == 200, (r, s4u_gh.log())
    out = r.text
    assert 'UID=21001' in out and 'Default principal: carla@AD.TEST' in out, (out, s4u_gh.log())
    assert f'KVNO: {ALLOWED}@AD.TEST: kvno = ' in out, out
    assert 'krbtgt/' not in out, out


def test_unix_peer_gets_a_ticket_to_the_allowed_target(s4u_gh, ad_realm):
    # a local process running as the AD user carla (uid 21001), over the unix socket
    os.chmod(os.path.dirname(s4u_gh.gh.unix), 0o755)
    env = ad_realm.client_env()
    env.pop('LD_PRELOAD', None)
    args = ['curl', '-sS', '--max-time', '20', '--unix-socket', s4u_gh.gh.unix,
            'http://localhost/peer/creds']
    p = subprocess.run(args, capture_output=True, text=True, timeout=30, env=env,
                       user=21001, group=100, extra_groups=[])
    out = p.stdout
    assert p.returncode == 0 and 'UID=21001' in out, (p, s4u_gh.log())
    assert 'Default principal: carla@AD.TEST' in out, (out, s4u_gh.log())
    assert f'KVNO: {ALLOWED}@AD.TEST: kvno = ' in out, out
    assert 'krbtgt/' not in out, out


def test_ntlm_connection_persisted_identity_gets_its_own_ticket(s4u_gh, no_ticket):
    # curl authenticates the first request; the second on the same connection carries no
    # Authorization and is served as the identity persisted on the connection (persist = ntlm)
    r = ntlm(s4u_gh.url('/proxy/creds'), 'ADTEST\\carla', 'Carla-Pass-1', no_ticket,
             extra=['-o', '/dev/stdout', s4u_gh.url('/proxy/creds?second')])
    out = r.text
    assert out.count(f'KVNO: {ALLOWED}@AD.TEST: kvno = ') == 2, (out, s4u_gh.log())
    ccs = [ln for ln in out.splitlines() if ln.startswith('KRB5CCNAME=FILE:')]
    assert len(ccs) == 2 and ccs[0] != ccs[1], ccs
