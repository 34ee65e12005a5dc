"""test_daemon_doctor.py: gatehoused --doctor against a real MIT KDC and the Samba AD DC — each check broken on purpose (keytab missing, unreadable, without the SPN's key, stale; KDC stopped; clock skewed with libfaketime; DNS; PAM service; unsafe ccache_dir; min_uid; winbind down and its privileged pipe refused) and the healthy case, with the exit status."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gh_realm import GhRealm  # noqa: E402
from pipeline_helpers import GATEHOUSED, needs_daemon, needs_root, shared_dir  # noqa: E402

pytestmark = [needs_daemon, needs_root]

FAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1'
SVC = ('ghsvc', 998)            # a local service account for `user =` (below uid 1000)
NEGOTIATE = {'handler': 'authinfo', 'auth': 'negotiate ntlm basic',
             'basic_over_plain_http': 'yes'}


@pytest.fixture(scope='module')
def drealm():
    """An MIT realm of this module's own: the tests stop its KDC and change its keys."""
    r = GhRealm(extra_users={SVC[0]: (SVC[1], SVC[1], 'svc-unused-pw')})
    r.kadmin('addprinc -randkey HTTP/stale.gh.test')
    yield r
    r.close()


class Doctor:
    """gatehoused --doctor: .rc, .out, .lines {check: (level, text)}."""

    def __init__(self, p):
        self.rc, self.out, self.err = p.returncode, p.stdout, p.stderr
        self.lines = {}
        for line in self.out.splitlines():
            level, _, rest = line.partition(' ')
            check, _, text = rest.strip().partition(': ')
            if level in ('OK', 'INFO', 'WARN', 'FAIL'):
                assert check not in self.lines, f'two lines for {check}:\n{self.out}'
                self.lines[check] = (level, text)

    def level(self, check):
        assert check in self.lines, f'no {check} line:\n{self.out}\n{self.err}'
        return self.lines[check][0]

    def text(self, check):
        self.level(check)
        return self.lines[check][1]

    def failed(self):
        return sorted(c for c, (lv, _) in self.lines.items() if lv == 'FAIL')

    def __repr__(self):
        return f'rc {self.rc}\n{self.out}{self.err}'


def doctor(realm, tmp, server=None, sites=None, env=None, listen=None, timeout=120):
    """Writes a configuration (the realm's keys unless server overrides them) and runs the doctor."""
    srv = {'keytab': realm.keytab, 'ntlm_user_file': realm.ntlm_user_file,
           'pam_service': 'gatehouse', 'ccache_dir': realm.ccache_dir, 'min_uid': 1000}
    srv.update(server or {})
    lines = ['[server]'] + [f'listen = {a}' for a in (listen or ['127.0.0.1:18443'])]
    lines += [f'{k} = {v}' for k, v in srv.items() if v is not None]
    for prefix, keys in (sites or [('/', NEGOTIATE)]):
        lines += ['', f'[site {prefix}]'] + [f'{k} = {v}' for k, v in keys.items()]
    conf = os.path.join(tmp, 'doctor.conf')
    with open(conf, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    e = realm.env()
    e.update(env or {})
    p = subprocess.run([GATEHOUSED, '--doctor', '-c', conf], env=e, capture_output=True,
                       text=True, timeout=timeout)
    return Doctor(p)


@pytest.fixture
def tmp():
    d = shared_dir('gh-doctor-')
    yield d
    shutil.rmtree(d, ignore_errors=True)


# ---- the healthy configuration ----

def test_healthy_configuration_passes_every_check(drealm, tmp):
    d = doctor(drealm, tmp)
    assert d.rc == 0, d
    assert d.failed() == [], d
    for check in ('config', 'identity', 'keytab', 'spn HTTP/localhost', 'dns localhost',
                  'ccache_dir', 'engine', 'kdc', 'clock', 'selftest HTTP/localhost', 'pam',
                  'min_uid'):
        assert d.level(check) == 'OK', (check, d)
    assert 'HTTP/localhost@GH.TEST kvno' in d.text('keytab')
    assert 'aes256-cts-hmac-sha1-96' in d.text('keytab')
    assert '127.0.0.1:' in d.text('kdc')
    # the end-to-end test went through the engine and verified the AP-REP
    assert 'accepted by the auth engine' in d.text('selftest HTTP/localhost')
    assert 'mutual-authentication answer verifies' in d.text('selftest HTTP/localhost')
    # NTLM has a user file here: winbind is not needed
    assert d.level('winbind') == 'INFO', d
    assert d.out.splitlines()[-1].startswith('doctor: ') and ' 0 FAIL' in d.out.splitlines()[-1]


def test_usage_errors(drealm, tmp):
    p = subprocess.run([GATEHOUSED, '--doctor', '-t', '-c', '/nonexistent'], capture_output=True,
                       text=True)
    assert p.returncode == 2, p
    p = subprocess.run([GATEHOUSED, '--doctor', '-c', os.path.join(tmp, 'missing.conf')],
                       capture_output=True, text=True)
    assert p.returncode == 1 and p.stdout.startswith('FAIL config: '), p


# ---- keytab ----

def test_missing_keytab_fails(drealm, tmp):
    d = doctor(drealm, tmp, server={'keytab': os.path.join(tmp, 'no.keytab')})
    assert d.rc == 1, d
    assert d.level('keytab') == 'FAIL' and 'No such file or directory' in d.text('keytab'), d
    assert 'fix: export' in d.text('keytab')
    assert d.level('engine') == 'FAIL', d           # gatehoused would not start either
    assert d.level('selftest') == 'INFO', d


def test_keytab_unreadable_by_the_service_user(drealm, tmp):
    kt = os.path.join(tmp, 'root-only.keytab')
    shutil.copy(drealm.keytab, kt)
    os.chmod(kt, 0o600)                             # root's: the service user cannot read it
    d = doctor(drealm, tmp, server={'keytab': kt, 'user': SVC[0], 'ntlm_user_file': None},
               sites=[('/', {'handler': 'authinfo', 'auth': 'negotiate'})])
    assert d.rc == 1, d
    assert d.level('identity') == 'OK' and 'ghsvc' in d.text('identity'), d
    assert d.level('keytab') == 'FAIL', d
    assert 'Permission denied (as ghsvc)' in d.text('keytab'), d
    assert 'chmod 0640' in d.text('keytab')
    # the fix from the line works
    os.chown(kt, 0, SVC[1])
    os.chmod(kt, 0o640)
    d = doctor(drealm, tmp, server={'keytab': kt, 'user': SVC[0], 'ntlm_user_file': None},
               sites=[('/', {'handler': 'authinfo', 'auth': 'negotiate'})])
    assert d.level('keytab') == 'OK' and 'readable by ghsvc' in d.text('keytab'), d
    assert d.level('selftest HTTP/localhost') == 'OK', d


def test_world_readable_keytab_warns(drealm, tmp):
    kt = os.path.join(tmp, 'open.keytab')
    shutil.copy(drealm.keytab, kt)
    os.chmod(kt, 0o644)
    d = doctor(drealm, tmp, server={'keytab': kt})
    assert d.rc == 0, d
    assert d.level('keytab') == 'WARN', d
    assert 'every local user can read' in d.text('keytab') and 'chmod o-r' in d.text('keytab')


def test_rc4_only_keytab_warns(drealm, tmp):
    """A keytab with only an RC4 key (an AD service account without
    msDS-SupportedEncryptionTypes exports that)."""
    kt = os.path.join(tmp, 'rc4.keytab')
    subprocess.run(['ktutil'], input='addent -password -p HTTP/localhost@GH.TEST -k 2 -e '
                   f'arcfour-hmac\nsome-password\nwkt {kt}\nquit\n', text=True, check=True,
                   capture_output=True, env=drealm.base_env())
    d = doctor(drealm, tmp, server={'keytab': kt})
    assert d.level('keytab') == 'WARN', d
    assert 'only RC4/DES keys' in d.text('keytab') and 'msDS-SupportedEncryptionTypes' in \
        d.text('keytab'), d
    # the KDC has AES keys for the name: the engine can never use this key
    assert d.level('kdc') == 'FAIL' or d.level('selftest HTTP/localhost') == 'FAIL', d


def test_keytab_without_the_spn_key(drealm, tmp):
    """A keytab of another name only: no key for HTTP/localhost, the name clients use."""
    kt = os.path.join(tmp, 'other.keytab')
    drealm.kadmin(f'ktadd -norandkey -k {kt} HTTP/other.gh.test')
    d = doctor(drealm, tmp, server={'keytab': kt})
    assert d.rc == 1, d
    assert d.level('spn HTTP/localhost') == 'FAIL', d
    assert 'no key for HTTP/localhost' in d.text('spn HTTP/localhost')
    assert 'ktadd' in d.text('spn HTTP/localhost')   # the fix names the command
    assert d.level('keytab') == 'OK' and 'HTTP/other.gh.test@GH.TEST' in d.text('keytab')
    assert d.level('selftest') == 'INFO', d            # no host name has a key


def test_stale_keytab_after_a_key_change(drealm, tmp):
    """The KDC's key changed after the keytab was written (a password change): the AS
    exchange with the old key and the service ticket's kvno both say so."""
    kt = os.path.join(tmp, 'stale.keytab')
    drealm.kadmin(f'ktadd -norandkey -k {kt} HTTP/localhost')
    drealm.kadmin(f'ktadd -k {kt} HTTP/stale.gh.test')
    good = doctor(drealm, tmp, server={'keytab': kt},
                  sites=[('/', dict(NEGOTIATE, allowed_spns='HTTP/localhost HTTP/stale.gh.test'))])
    assert good.level('selftest HTTP/stale.gh.test') == 'OK', good
    drealm.kadmin('cpw -randkey HTTP/stale.gh.test')       # the KDC moves on, the file does not
    d = doctor(drealm, tmp, server={'keytab': kt},
               sites=[('/', dict(NEGOTIATE, allowed_spns='HTTP/localhost HTTP/stale.gh.test'))])
    assert d.rc == 1, d
    assert d.level('kdc') == 'FAIL', d
    assert "refused the keytab's key for HTTP/stale.gh.test@GH.TEST" in d.text('kdc'), d
    t = d.text('selftest HTTP/stale.gh.test')
    assert d.level('selftest HTTP/stale.gh.test') == 'FAIL', d
    kvno_now = int(t.split('with kvno ')[1].split()[0])
    assert f'holds kvno {kvno_now - 1}' in t, d
    assert 'export it again' in t
    # the other name still works end to end
    assert d.level('selftest HTTP/localhost') == 'OK', d


# ---- KDC and clock ----

def test_kdc_stopped(drealm, tmp):
    drealm.stop_kdc()
    try:
        d = doctor(drealm, tmp)
    finally:
        drealm.start_kdc()
    assert d.rc == 1, d
    assert d.level('kdc') == 'FAIL', d
    assert 'Cannot contact any KDC' in d.text('kdc'), d
    assert 'kdc = ' in d.text('kdc') and drealm.krb5_conf in d.text('kdc')
    assert d.level('clock') == 'INFO' and d.level('selftest') == 'INFO', d
    # and back
    assert doctor(drealm, tmp).rc == 0


def faketime_env(drealm, offset):
    assert os.path.exists(FAKETIME), f'{FAKETIME} missing: run scripts/install-deps (faketime)'
    return {'LD_PRELOAD': FAKETIME + ':' + drealm.env()['LD_PRELOAD'], 'FAKETIME': offset,
            'FAKETIME_DONT_FAKE_MONOTONIC': '1'}


def test_clock_skew_fails_and_the_selftest_shows_it(drealm, tmp):
    """libfaketime moves this host's clock (only in the doctor's process) an hour back: the
    KDC's answer gives the offset, and the engine refuses the ticket as a real server would."""
    d = doctor(drealm, tmp, env=faketime_env(drealm, '-1h'))
    assert d.rc == 1, d
    assert d.level('clock') == 'FAIL', d
    secs = int(d.text('clock').split(' s ')[0].split()[-1])
    assert 3590 <= secs <= 3610 and 'behind' in d.text('clock'), d
    assert d.level('selftest HTTP/localhost') == 'FAIL', d
    assert 'Ticket not yet valid' in d.text('selftest HTTP/localhost'), d
    d = doctor(drealm, tmp, env=faketime_env(drealm, '+1h'))
    assert d.level('clock') == 'FAIL' and 'ahead of' in d.text('clock'), d
    assert 'Clock skew too great' in d.text('selftest HTTP/localhost'), d


def test_small_clock_drift_warns(drealm, tmp):
    d = doctor(drealm, tmp, env=faketime_env(drealm, '+150'))
    assert d.level('clock') == 'WARN', d
    assert d.level('selftest HTTP/localhost') == 'OK', d    # still within clockskew
    assert d.rc == 0, d


# ---- DNS ----

def test_dns_reverse_name_without_a_key_warns(drealm, tmp):
    """nss_wrapper's hosts file: www.gh.test resolves to an address whose reverse name is
    web1.gh.test, for which the keytab has no key (what MIT clients with rdns ask for)."""
    hosts = os.path.join(tmp, 'hosts')
    with open(hosts, 'w') as f:
        f.write('192.0.2.10 web1.gh.test www.gh.test\n127.0.0.1 localhost\n')
    d = doctor(drealm, tmp, env={'NSS_WRAPPER_HOSTS': hosts},
               sites=[('/', dict(NEGOTIATE, allowed_spns='HTTP/www.gh.test HTTP/localhost'))])
    assert d.level('spn HTTP/www.gh.test') == 'OK', d
    assert d.level('dns www.gh.test') == 'WARN', d
    assert 'web1.gh.test' in d.text('dns www.gh.test'), d
    assert d.level('dns localhost') == 'OK', d
    d = doctor(drealm, tmp, sites=[('/', dict(NEGOTIATE, allowed_spns='HTTP/nowhere.invalid'))])
    assert d.level('dns nowhere.invalid') == 'WARN', d
    assert 'does not resolve' in d.text('dns nowhere.invalid')


def test_pinned_service_principal_warns_for_other_names(drealm, tmp):
    d = doctor(drealm, tmp, server={'service_principal': 'HTTP@localhost'},
               sites=[('/', dict(NEGOTIATE, allowed_spns='HTTP/localhost HTTP/www.gh.test'))])
    assert d.level('spn HTTP/localhost') == 'OK', d
    assert d.level('spn HTTP/www.gh.test') == 'WARN', d
    assert 'accepts tickets for HTTP/localhost only' in d.text('spn HTTP/www.gh.test'), d
    assert 'service_principal = HTTP ' in d.text('spn HTTP/www.gh.test'), d
    assert d.level('selftest HTTP/localhost') == 'OK', d
    assert 'selftest HTTP/www.gh.test' not in d.lines, d


def test_ipv6_loopback_listener_is_localhost(drealm, tmp):
    d = doctor(drealm, tmp, listen=['[::1]:18443'])
    assert d.level('spn HTTP/localhost') == 'OK', d
    assert d.rc == 0, d


# ---- PAM ----

def test_missing_pam_service(drealm, tmp):
    d = doctor(drealm, tmp, server={'pam_service': 'gh-no-such-service'})
    assert d.rc == 1, d
    assert d.level('pam') == 'FAIL', d
    assert "'other'" in d.text('pam') and 'gh-no-such-service' in d.text('pam'), d
    # Basic not offered: not checked
    d = doctor(drealm, tmp, server={'pam_service': 'gh-no-such-service'},
               sites=[('/', {'handler': 'authinfo', 'auth': 'negotiate'})])
    assert d.level('pam') == 'INFO' and d.rc == 0, d


def test_pam_service_naming_a_missing_module(drealm, tmp):
    svc = os.path.join(drealm.pam_dir, 'gh-doctor-broken')
    with open(svc, 'w') as f:
        f.write('auth required pam_gh_does_not_exist.so\naccount required pam_permit.so\n')
    try:
        d = doctor(drealm, tmp, server={'pam_service': 'gh-doctor-broken'})
    finally:
        os.unlink(svc)
    assert d.level('pam') == 'FAIL', d
    assert 'line 1: pam_gh_does_not_exist.so' in d.text('pam'), d


# ---- ccache_dir ----

def test_unsafe_ccache_dir(drealm, tmp):
    open_dir = os.path.join(tmp, 'open')
    os.mkdir(open_dir)
    os.chmod(open_dir, 0o777)                       # world-writable, not sticky
    d = doctor(drealm, tmp, server={'ccache_dir': open_dir})
    assert d.rc == 1, d
    assert d.level('ccache_dir') == 'FAIL' and 'without the sticky bit' in d.text('ccache_dir'), d
    assert d.level('engine') == 'FAIL', d            # the daemon refuses it too
    assert os.stat(open_dir).st_mode & 0o7777 == 0o777    # the doctor changed nothing
    theirs = os.path.join(tmp, 'theirs')
    os.mkdir(theirs, 0o1733)
    os.chown(theirs, 20001, 20001)                  # alice's
    d = doctor(drealm, tmp, server={'ccache_dir': theirs})
    assert d.level('ccache_dir') == 'FAIL' and 'owned by uid 20001' in d.text('ccache_dir'), d
    link = os.path.join(tmp, 'link')
    os.symlink(drealm.ccache_dir, link)
    d = doctor(drealm, tmp, server={'ccache_dir': link})
    assert d.level('ccache_dir') == 'FAIL' and 'symlinks' in d.text('ccache_dir'), d


def test_root_ccache_dir_clients_cannot_use_warns(drealm, tmp):
    """Root's 0755 directory with a service user: safe, but no delegation to CGI."""
    kt = os.path.join(tmp, 'svc.keytab')
    shutil.copy(drealm.keytab, kt)
    os.chown(kt, SVC[1], SVC[1])
    cdir = os.path.join(tmp, 'rootdir')
    os.mkdir(cdir, 0o755)
    d = doctor(drealm, tmp, server={'keytab': kt, 'user': SVC[0], 'ntlm_user_file': None,
                                    'ccache_dir': cdir},
               sites=[('/', {'handler': 'authinfo', 'auth': 'negotiate'})])
    assert d.level('ccache_dir') == 'WARN' and 'mode 1733' in d.text('ccache_dir'), d
    assert d.rc == 0, d


# ---- min_uid ----

def test_min_uid_refusing_local_accounts_warns(drealm, tmp):
    d = doctor(drealm, tmp, server={'min_uid': 20002})
    assert d.level('min_uid') == 'WARN', d
    assert 'alice 20001' in d.text('min_uid') and '1 refused' in d.text('min_uid'), d
    assert d.rc == 0, d                              # a warning, not a failure
    d = doctor(drealm, tmp, server={'min_uid': 100})
    assert d.level('min_uid') == 'WARN' and 'system accounts' in d.text('min_uid'), d


# ---- Active Directory: winbind (the session's Samba DC) ----

def ad_doctor(ad, tmp, server=None, env=None, sites=None):
    srv = {'keytab': ad.keytab, 'ccache_dir': ad.ccache_dir, 'min_uid': 1000}
    srv.update(server or {})
    lines = ['[server]', 'listen = 127.0.0.1:18444']
    lines += [f'{k} = {v}' for k, v in srv.items() if v is not None]
    for prefix, keys in (sites or [('/', {'handler': 'authinfo', 'auth': 'negotiate ntlm'})]):
        lines += ['', f'[site {prefix}]'] + [f'{k} = {v}' for k, v in keys.items()]
    conf = os.path.join(tmp, 'doctor-ad.conf')
    with open(conf, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    e = ad.env()
    e.update(env or {})
    return Doctor(subprocess.run([GATEHOUSED, '--doctor', '-c', conf], env=e,
                                 capture_output=True, text=True, timeout=180))


def test_ad_healthy_with_a_user_ticket(ad_realm, tmp):
    """With the invoker's ticket (an SPN is no logon name in AD, so the keytab cannot get
    one) the self-test is a real user's logon, mapped through winbind."""
    cc = ad_realm.kinit('carla', ccache=os.path.join(tmp, 'cc_carla'))
    d = ad_doctor(ad_realm, tmp, env={'KRB5CCNAME': cc['KRB5CCNAME']})
    assert d.rc == 0, d
    assert d.failed() == [], d
    assert d.level('kdc') == 'OK' and 'Active Directory' in d.text('kdc'), d
    t = d.text('selftest HTTP/localhost')
    assert d.level('selftest HTTP/localhost') == 'OK' and 'carla@AD.TEST' in t, d
    assert 'as ADTEST\\carla' in t, d
    assert d.level('winbind') == 'OK' and 'domain ADTEST (ad.test)' in d.text('winbind'), d
    assert d.level('winbind-pipe') == 'OK', d
    assert d.level('min_uid') == 'OK' and 'domain ADTEST' in d.text('min_uid'), d
    assert 'ADTEST\\administrator' in d.text('min_uid')     # uid 0: always refused


def test_ad_without_a_ticket_the_selftest_says_what_to_do(ad_realm, tmp):
    d = ad_doctor(ad_realm, tmp)
    assert d.level('selftest') == 'WARN' and 'kinit' in d.text('selftest'), d
    assert d.rc == 0, d


def test_ad_privileged_pipe_refused_to_the_service_user(ad_realm, tmp):
    """user = gatehouse, not in the group of winbind's privileged pipe directory: NTLM would
    fail for everyone; the doctor says so, and passes once the group is right."""
    from gh_ad_realm import SERVICE_UID
    kt = os.path.join(tmp, 'svc.keytab')
    shutil.copy(ad_realm.keytab, kt)
    os.chown(kt, SERVICE_UID, SERVICE_UID)
    os.chmod(kt, 0o600)
    server = {'user': 'gatehouse', 'keytab': kt}
    d = ad_doctor(ad_realm, tmp, server=server)
    assert d.rc == 1, d
    assert d.level('winbind') == 'OK', d
    assert d.level('winbind-pipe') == 'FAIL', d
    assert 'refuses gatehouse (uid 990)' in d.text('winbind-pipe'), d
    assert 'usermod -aG' in d.text('winbind-pipe'), d
    priv = os.path.join(ad_realm.dc, 'state', 'winbindd_privileged')
    st = os.stat(priv)
    os.chown(priv, st.st_uid, SERVICE_UID)           # the fix: the service's group
    try:
        d = ad_doctor(ad_realm, tmp, server=server)
    finally:
        os.chown(priv, st.st_uid, st.st_gid)
    assert d.level('winbind-pipe') == 'OK', d
    assert d.rc == 0, d


def test_ad_min_uid_refusing_domain_users_warns(ad_realm, tmp):
    d = ad_doctor(ad_realm, tmp, server={'min_uid': 21002})
    assert d.level('min_uid') == 'WARN', d
    assert 'ADTEST\\carla uid 21001' in d.text('min_uid'), d


def test_ad_winbind_down(ad_realm, tmp):
    """The whole DC away (Samba exits with its winbindd): winbind fails, and so does the
    KDC; both come back with the DC."""
    ad_realm.stop()
    try:
        d = ad_doctor(ad_realm, tmp)
    finally:
        ad_realm.start()
    assert d.rc == 1, d
    assert d.level('winbind') == 'FAIL' and 'does not answer' in d.text('winbind'), d
    assert 'answered 503 until it is back' in d.text('winbind'), d
    assert d.level('winbind-pipe') == 'INFO', d
    assert d.level('kdc') == 'FAIL', d
    d = ad_doctor(ad_realm, tmp)
    assert d.level('winbind') == 'OK' and d.level('kdc') == 'OK', d


def test_ad_winbind_hung_is_a_bounded_fail(ad_realm, tmp):
    """winbindd alive but not answering (SIGSTOP): libwbclient would wait forever; the doctor
    asks from a helper thread, gives up after 5 s and says to restart it."""
    pids = [p for p in ad_realm.dc_pids()
            if b'winbindd' in open(f'/proc/{p}/cmdline', 'rb').read().split(b'\0')[0]]
    assert pids, ad_realm.dc_pids()
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    try:
        t = time.monotonic()
        d = ad_doctor(ad_realm, tmp)
        took = time.monotonic() - t
    finally:
        for p in pids:
            os.kill(p, signal.SIGCONT)
    assert d.rc == 1 and d.level('winbind') == 'FAIL', d
    assert 'does not answer within 5 s (hung)' in d.text('winbind'), d
    assert 'restart winbind' in d.text('winbind'), d
    assert took < 40, took
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        d = ad_doctor(ad_realm, tmp)
        if d.level('winbind') == 'OK':
            break
        time.sleep(1)
    assert d.level('winbind') == 'OK', d


def test_ad_ntlm_with_user_file_skips_winbind(ad_realm, tmp):
    users = os.path.join(tmp, 'ntlm.users')
    with open(users, 'w') as f:
        f.write('ADTEST:someone:pw\n')
    d = ad_doctor(ad_realm, tmp, server={'ntlm_user_file': users})
    assert d.level('winbind') == 'INFO' and 'ntlm_user_file' in d.text('winbind'), d
