"""test_auth_engine.py: the auth engine in-process against a real MIT realm, gss-ntlmssp, PAM (pam_matrix) and peers.

Each test runs tests/integration/auth_driver (built in the unit-test tree),
which performs real GSS initiator steps and feeds them through
gh__auth_step, printing one JSON object per engine step. DESIGN.md §2
items 1-9 and 14.
"""
import json
import os
import stat
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gh_realm import GhRealm  # noqa: E402

BUILD = os.environ.get('GH_BUILD_DIR', os.path.join(os.path.dirname(__file__), '..', '..', 'build'))
DRIVER = os.path.join(BUILD, 'tests', 'unit', 'httpapi', 'auth', 'auth_driver')

GSS_C_DELEG_FLAG, GSS_C_MUTUAL_FLAG, GSS_C_INTEG_FLAG, GSS_C_CONF_FLAG = 1, 2, 32, 16
LEVEL_IDENTIFY, LEVEL_IMPERSONATE, LEVEL_DELEGATE = 1, 2, 3
SRC_KERBEROS, SRC_NTLM, SRC_BASIC, SRC_PEER = 1, 2, 3, 4

pytestmark = [
    pytest.mark.skipif(not os.path.exists(DRIVER), reason=f'auth_driver not built ({DRIVER})'),
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root (sec layer, peer child at uid 20001)'),
]


@pytest.fixture(scope='module')
def realm():
    r = GhRealm()
    yield r
    r.close()


def drive(realm, args, user=None, env=None, check=True):
    e = realm.env()
    if user:
        e['KRB5CCNAME'] = realm.kinit(user)['KRB5CCNAME']
    e.update(env or {})
    p = subprocess.run([DRIVER] + args, env=e, capture_output=True, text=True, timeout=120)
    if check:
        assert p.returncode == 0, p.stderr + p.stdout
    out = {}
    steps = []
    for line in p.stdout.splitlines():
        d = json.loads(line)
        steps.append(d)
        out.setdefault(d['step'], d)
    return out, steps, p


# ---- item 1, 4: no header, malformed headers ----

def test_no_header_is_not_authenticated(realm):
    out, _, _ = drive(realm, ['header', '@none'])
    r = out['@none']
    assert r['verdict'] == 'DELIVER'
    assert r['status'] == 'NOT_AUTHENTICATED' and r['type'] == 'NONE' and r['token'] == 0


@pytest.mark.parametrize('value,verdict,status', [
    ('   ', 'BAD_REQUEST', None),                     # no scheme
    ('=abc', 'BAD_REQUEST', None),                    # no scheme
    ('Negotiate', 'BAD_REQUEST', None),               # empty token
    ('NTLM   ', 'BAD_REQUEST', None),                 # empty token
    ('Negotiate Zg=', 'BAD_REQUEST', None),           # bad base64 (padding)
    ('Negotiate Zh==', 'BAD_REQUEST', None),          # bad base64 (non-canonical)
    ('Negotiate ab$c', 'BAD_REQUEST', None),          # not token68
    ('Negotiate abc def', 'BAD_REQUEST', None),       # two tokens
    ('Basic Zm9v', 'BAD_REQUEST', None),              # Basic without ':'
    ('Basic OnB3', 'BAD_REQUEST', None),              # Basic with empty user
    ('Negotiate YWJjZA==', 'DELIVER', 'FAILURE'),     # garbage SPNEGO
    ('Negotiate oQcwBaADCgEC', 'DELIVER', 'FAILURE'), # negTokenResp without a context
    ('Kerberos YIIBAAYJKoZIhvcSAQICAQA=', 'DELIVER', 'FAILURE'),  # truncated AP-REQ
    ('NTLM TlRMTVNTUAAB', 'DELIVER', 'FAILURE'),      # truncated NTLM
    ('NTLM TlRMTVNTUAADAAAA', 'DELIVER', 'FAILURE'),  # AUTHENTICATE with no context
    ('NTLM AAAAAAAAAAAAAAAAAAAA', 'DELIVER', 'FAILURE'),  # garbage NTLM
    ('Bearer abc.def', 'DELIVER', 'NOT_AUTHENTICATED'),   # not ours: the app decides
])
def test_bad_input(realm, value, verdict, status):
    out, _, _ = drive(realm, ['header', value])
    r = out['header']
    assert r['verdict'] == verdict, r
    if status:
        assert r['status'] == status, r
        assert r['token'] == 0
    if status == 'FAILURE':
        assert r['sec_kind'] == 1 and r['sec_major'] != 0 and r['sec_text']


def test_short_ntlm_negotiate_is_accepted(realm):
    # curl's 32-byte NEGOTIATE (no Version field): gss-ntlmssp needs the
    # Version, the engine inserts it; the exchange goes on with a CHALLENGE
    out, _, _ = drive(realm, ['header', 'NTLM TlRMTVNTUAABAAAABoIIAAAAAAAAAAAAAAAAAAAAAAA='])
    assert out['header']['verdict'] == 'CHALLENGE', out


def test_oversize_token_is_bad_request(realm):
    out, _, _ = drive(realm, ['header', '@big:Negotiate:100000'])
    assert out['@big:Negotiate:100000']['verdict'] == 'BAD_REQUEST'
    # configurable limit: 1000 decoded bytes
    out, _, _ = drive(realm, ['header', '@big:Negotiate:2000'], env={'GH_MAX_TOKEN': '1000'})
    assert out['@big:Negotiate:2000']['verdict'] == 'BAD_REQUEST'
    # 16 KiB (large AD PAC) under the default limit is parsed (and fails as garbage)
    out, _, _ = drive(realm, ['header', '@big:Negotiate:21848'])
    assert out['@big:Negotiate:21848']['verdict'] == 'DELIVER'
    assert out['@big:Negotiate:21848']['status'] == 'FAILURE'


def test_engine_keeps_serving_after_bad_input(realm):
    out, steps, _ = drive(realm, ['header', 'Negotiate Zg=', 'NTLM TlRMTVNTUAAB', '@none'])
    assert [s['verdict'] for s in steps] == ['BAD_REQUEST', 'DELIVER', 'DELIVER']
    out, _, _ = drive(realm, ['krb5'], user='alice')
    assert out['krb5']['status'] == 'SUCCESS'


# ---- item 2: challenge order ----

def test_challenge_order(realm):
    out, _, _ = drive(realm, ['challenges'])
    assert out['challenges']['values'] == [
        'Negotiate', 'Kerberos', 'NTLM', 'Basic realm="gatehouse \\"test\\"", charset="UTF-8"']
    out, _, _ = drive(realm, ['challenges'], env={'GH_ORDER': '0x1,0x2', 'GH_SCHEMES': '0x7'})
    assert out['challenges']['values'][0].startswith('Basic realm=')
    assert out['challenges']['values'][1:] == ['NTLM', 'Negotiate']


# ---- items 5, 6, 7: Kerberos ----

def test_kerberos_success_record(realm):
    out, _, _ = drive(realm, ['krb5'], user='alice')
    r = out['krb5']
    assert r['verdict'] == 'DELIVER' and r['status'] == 'SUCCESS'
    assert r['sec_kind'] == 0 and r['sec_major'] == 0
    assert r['flags'] == 0
    assert r['type'] == 'Negotiate' and r['package'] == 'Kerberos'
    assert r['token'] == 1 and r['token_uid'] == 20001 and r['token_user'] == 'alice'
    assert r['token_level'] == LEVEL_IMPERSONATE and r['token_source'] == SRC_KERBEROS
    assert r['token_auth_name'] == 'alice@GH.TEST'
    assert r['remote_user'] == 'alice@GH.TEST' and r['local_user'] == 'alice'
    assert r['ctx_attr'] & GSS_C_MUTUAL_FLAG
    assert r['ctx_attr'] & GSS_C_INTEG_FLAG and r['ctx_attr'] & GSS_C_CONF_FLAG
    assert r['packed_len'] > 0 and r['packed_lifetime_rc'] == 0
    assert 0 < r["packed_lifetime"] <= 10 * 3600 + 600   # ticket life + clock skew
    assert r['expiry_in'] > 0
    assert r['mutual'].startswith('Negotiate ') and r['mutual_len'] == len(r['mutual'])
    assert r['mutual_header'] == r['mutual']          # item 7: server adds it
    assert r['mutual_verified'] == 1                  # the client accepts it
    # persist = ntlm (default): Kerberos is not kept on the connection
    assert out['noheader']['status'] == 'NOT_AUTHENTICATED'


def test_packed_context_is_opt_in(realm):
    # gh_auth_settings_t.packed_context off: no gss_export_sec_context
    out, _, _ = drive(realm, ['krb5'], user='alice', env={'GH_NO_PACKED': '1'})
    r = out['krb5']
    assert r['status'] == 'SUCCESS' and r['local_user'] == 'alice'
    assert r['packed_len'] == 0 and r['packed_type'] == 0


def test_engine_accepts_many_fresh_tokens(realm):
    # 300 fresh tokens through one engine in a row all succeed (replay cache,
    # pooled krb5 contexts, no export unless asked). Speed is measured by
    # bench/negotiate, never asserted here.
    out, _, _ = drive(realm, ['rate', '300'], user='alice', env={'GH_NO_PACKED': '1'})
    assert out['rate']['ok'] == 300


def test_receive_mutual_auth(realm):
    out, _, _ = drive(realm, ['krb5'], user='bob', env={'GH_RECEIVE_MUTUAL': '1'})
    r = out['krb5']
    assert r['status'] == 'SUCCESS' and r['mutual'].startswith('Negotiate ')
    assert r['mutual_header'] is None                 # the application sends it


def test_raw_kerberos_scheme(realm):
    out, _, _ = drive(realm, ['krb5', '--raw'], user='carol')
    r = out['krb5']
    assert r['status'] == 'SUCCESS' and r['type'] == 'Kerberos' and r['package'] == 'Kerberos'
    assert r['mutual'].startswith('Kerberos ') and r['mutual_verified'] == 1
    assert r['token_uid'] == 20003


def test_second_spn_in_keytab(realm):
    out, _, _ = drive(realm, ['krb5', '--spn', 'HTTP@www.gh.test'], user='alice')
    assert out['krb5']['status'] == 'SUCCESS'


def test_ticket_for_other_spn_fails(realm):
    out, _, _ = drive(realm, ['krb5', '--spn', 'HTTP@other.gh.test'], user='alice')
    r = out['krb5']
    assert r['status'] == 'FAILURE' and r['token'] == 0
    assert r['sec_kind'] == 1 and r['sec_major'] != 0 and r['sec_text']


def test_persist_all_keeps_kerberos(realm):
    out, _, _ = drive(realm, ['krb5'], user='alice', env={'GH_PERSIST': 'all'})
    n = out['noheader']
    assert n['status'] == 'SUCCESS' and n['flags'] & 1 and n['token'] == 1
    assert n['package'] == 'Kerberos' and n['token_uid'] == 20001



def short_skew_conf(realm, tmp_path):
    """A copy of the realm's krb5.conf with a 1 s clock skew (the default
    300 s would keep an expired ticket acceptable for 5 minutes)."""
    conf = tmp_path / 'krb5-skew.conf'
    text = open(realm.krb5_conf).read().replace('[libdefaults]\n', '[libdefaults]\n  clockskew = 1\n', 1)
    conf.write_text(text)
    return str(conf)


def test_expired_ticket_is_failure(realm, tmp_path):
    conf = short_skew_conf(realm, tmp_path)
    cc = str(tmp_path / 'cc_short')
    env = realm.kinit('bob', lifetime='2s', ccache=cc)
    env = {'KRB5_CONFIG': conf, 'KRB5CCNAME': env['KRB5CCNAME']}
    # control: the same set-up accepted at once works
    out, _, _ = drive(realm, ['krb5'], env=env)
    assert out['krb5']['status'] == 'SUCCESS', out
    # token made while the ticket is valid, accepted after it expired (+ skew)
    realm.kinit('bob', lifetime='2s', ccache=cc)
    out, _, _ = drive(realm, ['krb5', '--delay-ms', '4500'], env=env)
    r = out['krb5']
    assert r['verdict'] == 'DELIVER' and r['status'] == 'FAILURE', r
    assert r['token'] == 0 and r['sec_kind'] == 1 and r['sec_major'] != 0
    assert 'expired' in r['sec_text'].lower(), r['sec_text']


@pytest.mark.parametrize('raw', [False, True])
def test_replay_is_failure(realm, raw):
    out, _, _ = drive(realm, ['replay'] + (['--raw'] if raw else []), user='bob')
    assert out['first']['status'] == 'SUCCESS'
    for k in ('same_conn', 'other_conn'):
        assert out[k]['status'] == 'FAILURE', out[k]
        assert out[k]['token'] == 0 and out[k]['sec_major'] != 0


def test_unmapped_principal(realm):
    out, _, _ = drive(realm, ['krb5'], user='dave')
    r = out['krb5']
    assert r['status'] == 'FAILURE' and r['token'] == 0 and 'dave' in r['sec_text']
    out, _, _ = drive(realm, ['krb5'], user='dave', env={'GH_ALLOW_UNMAPPED': '1'})
    r = out['krb5']
    assert r['status'] == 'SUCCESS' and r['token_level'] == LEVEL_IDENTIFY
    assert r['remote_user'] == 'dave@GH.TEST' and r['local_user'] == 'nobody'


def test_kdc_down_acceptance_still_works(realm):
    env = realm.kinit('carol')
    subprocess.run(['kvno', 'HTTP/localhost'], env=env, check=True, capture_output=True)
    realm.stop_kdc()
    try:
        e = realm.env()
        e['KRB5CCNAME'] = env['KRB5CCNAME']
        p = subprocess.run([DRIVER, 'krb5'], env=e, capture_output=True, text=True, timeout=60)
        r = json.loads(p.stdout.splitlines()[0])
        assert r['status'] == 'SUCCESS' and r['token_uid'] == 20003
    finally:
        realm.start_kdc()


# ---- item 9: delegation ----

def test_delegation(realm):
    out, _, _ = drive(realm, ['krb5', '--deleg'], user='alice')
    r = out['krb5']
    assert r['status'] == 'SUCCESS'
    assert r['ctx_attr'] & GSS_C_DELEG_FLAG
    assert r['token_level'] == LEVEL_DELEGATE and r['token_has_deleg'] == 1
    assert r['mem_ccache'].startswith('MEMORY:gh-deleg-')
    assert r['file_rc'] == 0 and r['file_ccache'].startswith('FILE:' + realm.ccache_dir)
    assert r['file_mode'] == 0o600 and r['dir_mode'] == 0o700 and r['file_uid'] == 20001
    assert r['file_princ'] == 'alice@GH.TEST'
    after = out['after']
    assert after['file_exists'] == 0 and after['mem_alive'] == 0
    assert os.listdir(realm.ccache_dir) == []


def test_no_delegation_without_flag(realm):
    out, _, _ = drive(realm, ['krb5'], user='alice')
    assert out['krb5']['token_level'] == LEVEL_IMPERSONATE
    assert out['krb5']['token_has_deleg'] == 0


# ---- items 3, 5, 8: NTLM ----

@pytest.mark.parametrize('spnego', [False, True])
def test_ntlm_multileg_and_persistence(realm, spnego):
    out, steps, _ = drive(realm, ['ntlm', 'GH\\bob', 'bobpw'] + (['--spnego'] if spnego else []))
    assert steps[0]['verdict'] == 'CHALLENGE' and len(steps[0]['challenges']) == 1
    assert steps[0]['challenges'][0].startswith('Negotiate ' if spnego else 'NTLM ')
    final = out['leg2']
    assert final['verdict'] == 'DELIVER' and final['status'] == 'SUCCESS'
    assert final['type'] == ('Negotiate' if spnego else 'NTLM') and final['package'] == 'NTLM'
    assert final['remote_user'] == 'GH\\bob' and final['local_user'] == 'bob'
    assert final['token_uid'] == 20002 and final['token_source'] == SRC_NTLM
    assert final['packed_len'] > 0 and final['packed_lifetime_rc'] == 0
    assert final['flags'] == 0
    # later requests on the connection: cached credential
    for k in ('noheader', 'noheader2'):
        assert out[k]['status'] == 'SUCCESS' and out[k]['flags'] & 1
        assert out[k]['token_uid'] == 20002
    # a new Authorization on the persisted connection is verified (and fails)
    assert out['reauth_bad']['status'] == 'FAILURE'
    assert out['after_bad']['status'] == 'NOT_AUTHENTICATED'


def test_ntlm_persist_none(realm):
    out, _, _ = drive(realm, ['ntlm', 'GH\\alice', 'alicepw'], env={'GH_PERSIST': 'none'})
    assert out['leg2']['status'] == 'SUCCESS'
    assert out['noheader']['status'] == 'NOT_AUTHENTICATED'


@pytest.mark.parametrize('spnego', [False, True])
def test_ntlm_wrong_password(realm, spnego):
    out, _, _ = drive(realm, ['ntlm', 'GH\\bob', 'wrong'] + (['--spnego'] if spnego else []))
    assert out['leg2']['status'] == 'FAILURE' and out['leg2']['token'] == 0
    assert out['leg2']['sec_kind'] == 1 and out['leg2']['sec_major'] != 0
    assert out['noheader']['status'] == 'NOT_AUTHENTICATED'


@pytest.mark.parametrize('spnego', [False, True])
def test_ntlm_leg_on_other_connection_fails(realm, spnego):
    out, _, _ = drive(realm, ['ntlm-cross', 'GH\\carol', 'carolpw'] + (['--spnego'] if spnego else []))
    assert out['leg1_a']['verdict'] == 'CHALLENGE'
    assert out['leg2_b']['status'] == 'FAILURE' and out['leg2_b']['token'] == 0
    assert out['leg2_a']['status'] == 'SUCCESS'   # its own connection still finishes


def test_ntlm_anonymous_is_failure(realm):
    out, _, _ = drive(realm, ['ntlm-anon'])
    assert out['anon']['verdict'] == 'DELIVER'
    assert out['anon']['status'] == 'FAILURE' and out['anon']['token'] == 0


def test_ntlm_unknown_user(realm):
    out, _, _ = drive(realm, ['ntlm', 'GH\\mallory', 'x'])
    assert out['leg2']['status'] == 'FAILURE'


def test_ntlm_keep_domain_maps_to_full_name(realm):
    out, _, _ = drive(realm, ['ntlm', 'GH\\bob', 'bobpw'], env={'GH_NTLM_KEEP_DOMAIN': '1'})
    # no local account "GH\bob": FAILURE naming it
    assert out['leg2']['status'] == 'FAILURE' and 'GH\\bob' in out['leg2']['sec_text']


# ---- Basic (PAM) ----

def test_basic_success_and_wrong_password(realm):
    out, _, _ = drive(realm, ['basic', 'alice', 'alicepw'])
    r = out['basic']
    assert r['status'] == 'SUCCESS' and r['type'] == 'Basic' and r['package'] == 'Basic'
    assert r['token_uid'] == 20001 and r['token_source'] == SRC_BASIC
    out, _, _ = drive(realm, ['basic', 'alice', 'nope'])
    r = out['basic']
    assert r['status'] == 'FAILURE' and r['sec_kind'] == 2 and r['sec_major'] != 0
    assert 'PAM' in r['sec_text']
    out, _, _ = drive(realm, ['basic', 'mallory', 'x'])
    assert out['basic']['status'] == 'FAILURE'


def drive_ttl_2s_password_changed(realm, tmp_path, args):
    """Runs the driver with a 2 s Basic cache TTL; after step 0 bob's PAM
    password changes, after step 1 the TTL runs out. Returns the steps."""
    passdb = realm.pam_passdb
    orig = open(passdb).read()
    hook = tmp_path / 'between.sh'
    hook.write_text(f"""#!/bin/sh
if [ "$1" = 0 ]; then sed -i 's/^bob:bobpw:/bob:changed:/' {passdb}; fi
if [ "$1" = 1 ]; then sleep 3; fi
""")
    hook.chmod(0o755)
    try:
        _, steps, _ = drive(realm, args,
                            env={'GH_BASIC_TTL': '2', 'GH_DRIVER_BETWEEN': str(hook)})
    finally:
        open(passdb, 'w').write(orig)
    return steps


def test_basic_success_cache_ttl(realm, tmp_path):
    """Within the TTL a changed PAM password is not consulted; after it, PAM decides."""
    steps = drive_ttl_2s_password_changed(realm, tmp_path, ['basic', 'bob', 'bobpw', '3'])
    assert [s['status'] for s in steps] == ['SUCCESS', 'SUCCESS', 'FAILURE']


def test_basic_cache_keeps_the_token_and_never_serves_a_wrong_password(realm):
    """A cached success hands out the token built at the PAM success (same
    token id, a new handle each time, closed by the receiver without harm);
    a wrong password after it is still a PAM FAILURE; another user gets their
    own token."""
    # the cache is direct-mapped with a random salt: with the default 1,024
    # entries alice's and bob's keys share a slot once in 1,024 runs (bob's
    # entry then replaces alice's and step 7 is a miss; seen in CI); 65,536
    # make that once in 65,536
    _, steps, _ = drive(realm, ['basicseq', 'alice:alicepw', 'alice:alicepw', 'alice:wrong',
                                'alice:alicepw', 'alice:alicepw ', 'bob:bobpw', 'bob:bobpw',
                                'alice:alicepw'], env={'GH_BASIC_ENTRIES': '65536'})
    st = [s['status'] for s in steps]
    assert st == ['SUCCESS', 'SUCCESS', 'FAILURE', 'SUCCESS', 'FAILURE', 'SUCCESS', 'SUCCESS',
                  'SUCCESS']
    a, b = steps[0], steps[5]
    assert a['token_uid'] == 20001 and a['token_user'] == 'alice'
    assert a['token_source'] == SRC_BASIC and a['token_level'] == LEVEL_IMPERSONATE
    assert b['token_uid'] == 20002 and b['token_user'] == 'bob'
    # hits: the very token of the PAM success (the driver closed every
    # handle it got, twice, and the cached token survived)
    assert steps[1]['token_id'] == steps[3]['token_id'] == steps[7]['token_id'] == a['token_id']
    assert steps[6]['token_id'] == b['token_id'] != a['token_id']
    for i in (2, 4):
        assert steps[i]['token'] == 0 and steps[i]['sec_kind'] == 2  # PAM said no
    for s in steps:
        if s['status'] == 'SUCCESS':
            assert s['remote_user'] == s['token_user'] == s['local_user']


def test_basic_cache_ttl_drops_the_token(realm, tmp_path):
    """After the TTL the entry (and its token) is gone: PAM runs again and a
    new token is built."""
    hook = tmp_path / 'between.sh'
    hook.write_text('#!/bin/sh\nif [ "$1" = 1 ]; then sleep 2.2; fi\n')
    hook.chmod(0o755)
    _, steps, _ = drive(realm, ['basicseq', 'alice:alicepw', 'alice:alicepw', 'alice:alicepw'],
                        env={'GH_BASIC_TTL': '1', 'GH_DRIVER_BETWEEN': str(hook)})
    assert [s['status'] for s in steps] == ['SUCCESS'] * 3
    assert steps[2]['token_id'] != steps[0]['token_id']
    assert steps[2]['token_uid'] == 20001


def test_basic_memo_same_header_same_connection(realm):
    """The same Basic header again on a connection is answered from the
    connection's memo (no decode, no hash) with the cached token; a different
    header (wrong password, another user) takes the full path: PAM says no
    to the wrong one, and the memo does not survive it."""
    _, steps, _ = drive(realm, ['basicconn', 'alice:alicepw', 'alice:alicepw', 'alice:alicepw',
                                'alice:wrong', 'alice:alicepw', 'alice:alicepw', 'bob:bobpw',
                                'bob:bobpw', 'alice:alicepw'])
    st = [s['status'] for s in steps]
    assert st == ['SUCCESS', 'SUCCESS', 'SUCCESS', 'FAILURE', 'SUCCESS', 'SUCCESS', 'SUCCESS',
                  'SUCCESS', 'SUCCESS']
    memo = [s['memo_hits'] for s in steps]
    # 0: PAM; 1, 2: memo; 3: PAM failure; 4: full path (cache hit); 5: memo;
    # 6: bob, full path; 7: memo; 8: alice again, full path (cache hit)
    assert memo == [0, 1, 2, 2, 2, 3, 3, 4, 4]
    assert steps[3]['token'] == 0 and steps[3]['sec_kind'] == 2  # PAM said no
    a, b = steps[0], steps[6]
    for i in (1, 2, 4, 5, 8):
        assert steps[i]['token_id'] == a['token_id'] and steps[i]['token_uid'] == 20001
        assert steps[i]['remote_user'] == steps[i]['local_user'] == 'alice'
    assert steps[7]['token_id'] == b['token_id'] != a['token_id']
    assert steps[7]['token_uid'] == 20002 and steps[7]['remote_user'] == 'bob'


def test_basic_memo_expired_entry_asks_pam(realm, tmp_path):
    """The memo only stands for a valid cache entry: after the TTL the same
    header on the same connection goes to PAM again (which now refuses the
    old password)."""
    steps = drive_ttl_2s_password_changed(
        realm, tmp_path, ['basicconn', 'bob:bobpw', 'bob:bobpw', 'bob:bobpw'])
    assert [s['status'] for s in steps] == ['SUCCESS', 'SUCCESS', 'FAILURE']
    assert [s['memo_hits'] for s in steps] == [0, 1, 1]


def test_basic_memo_replaced_entry_asks_pam(realm, tmp_path):
    """A one-slot cache: bob's success (another connection) replaces alice's
    entry, so alice's memo no longer stands for anything and her next
    request on her connection goes to PAM (which refuses the password changed
    meanwhile)."""
    passdb = realm.pam_passdb
    orig = open(passdb).read()
    hook = tmp_path / 'between.sh'
    hook.write_text(f"""#!/bin/sh
if [ "$1" = 1 ]; then sed -i 's/^alice:alicepw:/alice:changed:/' {passdb}; fi
""")
    hook.chmod(0o755)
    try:
        _, steps, _ = drive(realm, ['basicconn', 'alice:alicepw', 'alice:alicepw', '+bob:bobpw',
                                    'alice:alicepw'],
                            env={'GH_BASIC_ENTRIES': '1', 'GH_DRIVER_BETWEEN': str(hook)})
    finally:
        open(passdb, 'w').write(orig)
    assert [s['status'] for s in steps] == ['SUCCESS', 'SUCCESS', 'SUCCESS', 'FAILURE']
    assert [s['memo_hits'] for s in steps] == [0, 1, 1, 1]


def test_basic_memo_cache_off(realm):
    """No success cache, no memo: every request asks PAM."""
    _, steps, _ = drive(realm, ['basicconn', 'alice:alicepw', 'alice:alicepw'],
                        env={'GH_BASIC_TTL': '0'})
    assert [s['status'] for s in steps] == ['SUCCESS'] * 2
    assert [s['memo_hits'] for s in steps] == [0, 0]
    assert steps[0]['token_id'] != steps[1]['token_id']


def test_basic_cache_off(realm):
    _, steps, _ = drive(realm, ['basicseq', 'alice:alicepw', 'alice:alicepw'],
                        env={'GH_BASIC_TTL': '0'})
    assert [s['status'] for s in steps] == ['SUCCESS'] * 2
    assert steps[0]['token_id'] != steps[1]['token_id']


def test_basic_cache_unmapped_user_is_not_kept(realm):
    """A PAM user without a local account: with allow_unmapped an IDENTIFY
    token for the unmapped account, rebuilt per request (it depends on the
    site), never cached as the user's token."""
    passdb = realm.pam_passdb
    orig = open(passdb).read()
    try:
        with open(passdb, 'a') as f:
            f.write('ghost:ghostpw:gatehouse\n')
        _, steps, _ = drive(realm, ['basicseq', 'ghost:ghostpw', 'ghost:ghostpw'],
                            env={'GH_ALLOW_UNMAPPED': '1'})
    finally:
        open(passdb, 'w').write(orig)
    assert [s['status'] for s in steps] == ['SUCCESS'] * 2
    for s in steps:
        assert s['token_level'] == LEVEL_IDENTIFY and s['local_user'] == 'nobody'
    assert steps[0]['token_id'] != steps[1]['token_id']


def test_name_map_cache_hits(realm):
    _, steps, _ = drive(realm, ['krb5seq', '4'], user='alice')
    assert [s['status'] for s in steps] == ['SUCCESS'] * 4
    assert all(s['local_user'] == 'alice' and s['token_uid'] == 20001 for s in steps)
    assert [(s['nmap_misses'], s['nmap_hits']) for s in steps] == [(1, 0), (1, 1), (1, 2), (1, 3)]
    # off
    _, steps, _ = drive(realm, ['krb5seq', '2'], user='alice', env={'GH_NAME_MAP_TTL': '0'})
    assert [s['local_user'] for s in steps] == ['alice', 'alice']
    assert steps[-1]['nmap_hits'] == 0


def test_name_map_cache_never_mixes_principals(realm):
    """alice and bob in turn through one engine: each gets their own account."""
    cc_a = realm.kinit('alice')['KRB5CCNAME']
    cc_b = realm.kinit('bob')['KRB5CCNAME']
    _, steps, _ = drive(realm, ['krb5seq', '6'], env={'GH_CCACHES': f'{cc_a},{cc_b}'})
    assert [s['status'] for s in steps] == ['SUCCESS'] * 6
    assert [s['remote_user'] for s in steps] == ['alice@GH.TEST', 'bob@GH.TEST'] * 3
    assert [s['local_user'] for s in steps] == ['alice', 'bob'] * 3
    assert [s['token_uid'] for s in steps] == [20001, 20002] * 3
    assert steps[-1]['nmap_hits'] == 4


def test_name_map_cache_ttl(realm, tmp_path):
    hook = tmp_path / 'between.sh'
    # TTL 3 s: whole seconds, so an entry may expire up to 1 s early; the first two steps
    # must fall inside it even under a sanitizer on a busy machine (TTL 1 failed once in a
    # fresh-clone CI run under ASan: step 1 was a miss), the last one well after it
    hook.write_text('#!/bin/sh\nif [ "$1" = 1 ]; then sleep 4.2; fi\n')
    hook.chmod(0o755)
    _, steps, _ = drive(realm, ['krb5seq', '3'], user='alice',
                        env={'GH_NAME_MAP_TTL': '3', 'GH_DRIVER_BETWEEN': str(hook)})
    assert [s['local_user'] for s in steps] == ['alice'] * 3
    # 0: miss, 1: hit, 2 (after the TTL): miss again
    assert [(s['nmap_misses'], s['nmap_hits']) for s in steps] == [(1, 0), (1, 1), (2, 1)]


def test_name_map_follows_auth_to_local_change(realm, tmp_path):
    """A cached mapping is dropped as soon as krb5.conf changes: a new
    auth_to_local rule applies to the next request (TTL long)."""
    conf = realm.krb5_conf
    orig = open(conf).read()
    changed = orig.replace('    auth_to_local = RULE:',
                           '    auth_to_local = RULE:[1:$1@$0](^alice@GH[.]TEST$)s/.*/bob/\n'
                           '    auth_to_local = RULE:', 1)
    assert changed != orig
    (tmp_path / 'changed.conf').write_text(changed)
    (tmp_path / 'orig.conf').write_text(orig)
    hook = tmp_path / 'between.sh'
    # after request 1: the new rule; after request 3: the old one again.
    # Sleep past the second: libkrb5 itself re-reads a profile at most once
    # per second, and so does the engine's check.
    hook.write_text(f"""#!/bin/sh
if [ "$1" = 1 ]; then cat {tmp_path}/changed.conf > {conf}; sleep 1.2; fi
if [ "$1" = 3 ]; then cat {tmp_path}/orig.conf > {conf}; sleep 1.2; fi
""")
    hook.chmod(0o755)
    try:
        _, steps, _ = drive(realm, ['krb5seq', '6'], user='alice',
                            env={'GH_NAME_MAP_TTL': '3600', 'GH_DRIVER_BETWEEN': str(hook)})
    finally:
        open(conf, 'w').write(orig)
    assert [s['status'] for s in steps] == ['SUCCESS'] * 6
    assert [s['local_user'] for s in steps] == ['alice', 'alice', 'bob', 'bob', 'alice', 'alice']
    assert [s['token_uid'] for s in steps] == [20001, 20001, 20002, 20002, 20001, 20001]
    assert steps[1]['nmap_hits'] == 1 and steps[-1]['nmap_flushes'] == 2


def test_principal_without_account_fails_every_time(realm):
    """dave@GH.TEST maps to "dave" (that mapping may be cached) but has no
    local account: the account is looked up on every request, never cached."""
    _, steps, _ = drive(realm, ['krb5seq', '3'], user='dave')
    assert [s['status'] for s in steps] == ['FAILURE'] * 3
    assert all(s['token'] == 0 and 'dave' in s['sec_text'] for s in steps)


# ---- peers, item 14 ----

def test_peer_credentials(realm):
    out, _, _ = drive(realm, ['peer'])
    r = out['peer']
    assert r['status'] == 'SUCCESS' and r['type'] == 'Peer' and r['package'] == 'Peer'
    assert r['token_uid'] == 20001 and r['token_source'] == SRC_PEER


# ---- engine start-up ----

def test_missing_keytab_names_the_file(realm, tmp_path):
    missing = str(tmp_path / 'no-such.keytab')
    out, _, p = drive(realm, ['engine'], env={'GH_KEYTAB': missing}, check=False)
    assert p.returncode == 1
    assert out['engine']['ok'] == 0 and out['engine']['error'] == 'GH_ECONFIG'
    assert missing in out['engine']['message']
    assert 'No such file' in out['engine']['message']


def test_garbage_keytab_names_the_file(realm, tmp_path):
    bad = tmp_path / 'garbage.keytab'
    bad.write_bytes(b'\x05\x02garbage')
    out, _, p = drive(realm, ['krb5'], user='alice', env={'GH_KEYTAB': str(bad)}, check=False)
    e = out.get('engine')
    if e is not None:   # refused at start-up
        assert str(bad) in e['message']
    else:               # or the first acceptance fails closed
        assert out['krb5']['status'] == 'FAILURE'


def test_missing_ntlm_user_file_names_the_file(realm, tmp_path):
    missing = str(tmp_path / 'ntlm.users')
    out, _, p = drive(realm, ['engine'], env={'GH_NTLM_USER_FILE': missing}, check=False)
    assert p.returncode == 1 and missing in out['engine']['message']


def test_no_secret_files_left(realm):
    assert os.listdir(realm.ccache_dir) == []
    st = os.stat(realm.ccache_dir)
    # set to 1733 by the engine: clients create their private directories in it
    assert stat.S_IMODE(st.st_mode) == 0o1733
