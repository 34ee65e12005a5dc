"""test_hardening_faults.py: fault scenarios against a live gatehoused, each showing the daemon keeps serving others or stops safely — KDC unreachable, keytab deleted while running, garbage tokens and a wrong key version (FAILURE records), a PAM module that hangs (pam_timeout, bounded conversations), a revert forced to fail (fault-injection build: SIGABRT, nothing served after), a module crashing in a handler (the process dies)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gh_realm import PAM_MATRIX, GhRealm  # noqa: E402
from helpers import Conn  # noqa: E402
from pipeline_helpers import (BUILD, ROOT, USERS, GhDaemon, build_module, curl,  # noqa: E402
                              needs_daemon, needs_root, shared_dir, write_owned)

pytestmark = [needs_daemon, needs_root]

ALICE, BOB = USERS['alice'], USERS['bob']
FAULT_BUILD = os.environ.get('GH_FAULT_BUILD_DIR', '')
PAM_EXEC = '/usr/lib/x86_64-linux-gnu/security/pam_exec.so'
SANITIZER = any(os.environ.get(k) for k in ('ASAN_OPTIONS', 'TSAN_OPTIONS'))


@pytest.fixture(scope='module')
def frealm():
    """A realm of our own: these tests stop its KDC and bump key versions."""
    r = GhRealm()
    yield r
    r.close()


@pytest.fixture(scope='module')
def files():
    d = shared_dir('gh-fault-files-')
    write_owned(os.path.join(d, 'alice.txt'), 'alice data\n', 'alice', 0o600)
    write_owned(os.path.join(d, 'bob.txt'), 'bob data\n', 'bob', 0o600)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def realm_daemon(realm, files, extra_server=None, keytab_copy=True):
    """Sites: /neg and /basic (authinfo with the kernel probe), /anon (negotiate with
    anonymous: failures are delivered as records), /files (Basic, impersonated static)."""
    probe = shared_dir('gh-fault-probe-')
    os.chmod(probe, 0o1777)
    server = {'workers': 4}
    d = GhDaemon(realm, [
        ('/neg', {'auth': 'negotiate', 'handler': 'authinfo', 'probe_dir': probe}),
        ('/anon', {'auth': 'negotiate anonymous', 'handler': 'authinfo'}),
        ('/basic', {'auth': 'basic', 'basic_over_plain_http': 'yes', 'handler': 'authinfo',
                    'probe_dir': probe}),
        ('/files', {'auth': 'basic', 'basic_over_plain_http': 'yes', 'handler': 'static',
                    'root': files, 'impersonate': 'yes'}),
    ], server=server)
    if keytab_copy:
        kt = os.path.join(d.dir, 'http.keytab')
        shutil.copy(realm.keytab, kt)
        os.chmod(kt, 0o600)
        d.write(server={'keytab': kt})
        d.keytab = kt
    if extra_server:
        d.write(server=extra_server)
    d.probe = probe
    return d


def neg(d, realm, env, path='/neg', host='localhost'):
    extra = ['--negotiate', '-u', ':']
    if host != 'localhost':
        extra += ['--resolve', f'{host}:{d.port}:127.0.0.1']
    return curl(f'http://{host}:{d.port}{path}', env=env, extra=extra)


def basic(d, user, path='/basic', password=None, timeout=30):
    return curl(d.url(path), user=user, password=password, timeout=timeout)


def assert_identity(r, user):
    assert r.status == 200, r
    j = json.loads(r.body)
    uid, gid = USERS[user]
    assert j['status'] == 'SUCCESS' and j['token_user'] == user, j
    assert j['token_uid'] == uid and j.get('kernel_uid', uid) == uid, j
    return j


# ---- KDC unreachable ----

def test_kdc_unreachable_acceptance_and_basic_keep_working(frealm, files):
    """The acceptor never talks to the KDC: with the KDC stopped, a client holding a service
    ticket is still accepted, and Basic (PAM) is unaffected."""
    d = realm_daemon(frealm, files).start()
    try:
        env = frealm.kinit('alice')
        subprocess.run(['kvno', 'HTTP/localhost'], env=env, check=True, capture_output=True)
        frealm.stop_kdc()
        # the KDC really is gone: a new kinit fails
        p = subprocess.run(['kinit', 'bob@' + frealm.realm], input='bobpw\n', text=True,
                           env=dict(frealm.base_env(), KRB5CCNAME='FILE:' + frealm.path('cc_x')),
                           capture_output=True, timeout=60)
        assert p.returncode != 0
        for _ in range(3):
            j = assert_identity(neg(d, frealm, env), 'alice')
            assert j['package'] == 'Kerberos'
        assert_identity(basic(d, 'bob'), 'bob')
        r = basic(d, 'bob', path='/files/bob.txt')
        assert r.status == 200 and r.body == b'bob data\n'
        assert d.proc.poll() is None
    finally:
        frealm.start_kdc()
        d.stop()


# ---- keytab deleted while running ----

def test_keytab_deleted_while_running_keeps_in_memory_keys(frealm, files):
    """Decision: the engine copied the keys into a MEMORY keytab at start-up; the file is
    re-checked every 5 s only to merge new keys. Deleting it changes nothing until a
    restart (which then refuses to start, naming the file)."""
    d = realm_daemon(frealm, files).start()
    try:
        env = frealm.kinit('alice')
        assert_identity(neg(d, frealm, env), 'alice')
        os.unlink(d.keytab)
        time.sleep(6)  # past the 5 s re-check
        for _ in range(3):
            assert_identity(neg(d, frealm, env), 'alice')
        assert_identity(basic(d, 'bob'), 'bob')
        assert d.proc.poll() is None
        # a restart fails cleanly and names the file
        d.stop()
        d2 = realm_daemon(frealm, files)
        d2.write(server={'keytab': d.keytab})
        rc = d2.start(expect_fail=True)
        assert rc != 0 and d.keytab in d2.log(), d2.log()
        d2.stop()
    finally:
        d.stop()


# ---- gss_accept errors ----

GARBAGE = [
    'YIIBAAYGKwYBBQUCoA==',                      # SPNEGO framing, truncated
    'YAMGAQI=',                                  # 0x60 with a bogus OID
    'TlRMTVNTUAADAAAA',                          # NTLM AUTHENTICATE, truncated, no context
    'TlRMTVNTUAABAAAAAAAAAAAAAAAAAAAAAAAAAAAA',  # NTLM NEGOTIATE with zero flags
    'oYGCMIGA',                                  # negTokenResp with nothing in it
]


def test_gss_accept_errors_are_failure_records(frealm, files):
    d = realm_daemon(frealm, files).start()
    try:
        for tok in GARBAGE:
            c = Conn(d.port)
            c.send(f'GET /anon HTTP/1.1\r\nHost: localhost\r\nAuthorization: Negotiate {tok}\r\n\r\n')
            r = c.read_response()
            c.close()
            assert r.status in (200, 401, 400), (tok, r.status, r.body)
            if r.status == 200:
                j = json.loads(r.body)
                assert j['status'] in ('FAILURE', 'NOT_AUTHENTICATED'), (tok, j)
                assert j['token'] == 0, j
        # and a real client right after is fine
        env = frealm.kinit('alice')
        assert_identity(neg(d, frealm, env), 'alice')
        assert d.proc.poll() is None
    finally:
        d.stop()


def test_wrong_key_version_is_a_failure_record(frealm, files):
    """The KDC's key for HTTP/www.gh.test moves on (ktadd to another file bumps the kvno);
    the daemon's keytab has the old one: FAILURE with the GSS status, nothing served as
    anybody, HTTP/localhost still accepted."""
    d = realm_daemon(frealm, files).start()
    try:
        frealm.kadmin(f'ktadd -k {frealm.path("bumped.keytab")} HTTP/www.gh.test')
        env = frealm.kinit('alice', ccache=frealm.path('cc_kvno'))
        r = neg(d, frealm, env, path='/anon', host='www.gh.test')
        assert r.status == 200, r
        j = json.loads(r.body)
        assert j['status'] == 'FAILURE' and j['token'] == 0, j
        assert j['sec_kind'] != 0 and j['sec_major'] != 0, j
        r = neg(d, frealm, env, path='/neg', host='www.gh.test')
        assert r.status == 401, r
        assert_identity(neg(d, frealm, env), 'alice')
    finally:
        d.stop()


# ---- PAM module hanging ----

HANG = '''#!/bin/sh
# pam_exec: hang for carol only
[ "$PAM_USER" = carol ] && exec sleep 30
exit 0
'''


@pytest.fixture(scope='module')
def pam_hang(frealm):
    """A PAM service whose first module (pam_exec) hangs for carol only."""
    if not os.path.exists(PAM_EXEC):
        pytest.skip(f'{PAM_EXEC} missing')
    script = os.path.join(frealm.dir, 'pam-hang.sh')
    with open(script, 'w') as f:
        f.write(HANG)
    os.chmod(script, 0o755)
    passdb = frealm.path('hang.passdb')
    with open(passdb, 'w') as f:
        f.write(''.join(f'{u}:{u}pw:gatehouse-hang\n' for u in ('alice', 'bob', 'carol')))
    with open(os.path.join(frealm.pam_dir, 'gatehouse-hang'), 'w') as f:
        f.write(f'auth required {PAM_EXEC} quiet {script}\n'
                f'auth required {PAM_MATRIX} passdb={passdb}\n'
                f'account required {PAM_MATRIX} passdb={passdb}\n')
    yield 'gatehouse-hang'


def carol_requests(d, n):
    return [subprocess.Popen(['curl', '-sS', '-w', '\n%{http_code}', '--max-time', '20',
                              '-u', 'carol:carolpw', d.url('/basic')],
                             stdout=subprocess.PIPE, text=True) for _ in range(n)]


def outcome(procs):
    outs = [p.communicate(timeout=30)[0] for p in procs]
    return sorted(o.rsplit('\n', 1)[1] for o in outs), ' '.join(outs)


def test_pam_hang_times_out_and_others_are_served(frealm, files, pam_hang):
    """pam_timeout = 2 s, pam_max_concurrent = 3. Two hung conversations (carol) answer 503
    'timed out' after ~2 s while Negotiate, a cached Basic user and an uncached one (the
    third slot) are served at once; with the two hung helpers still alive, two more carol
    requests: one takes the last slot and times out, the other is refused at once (503,
    limit) — hung PAM never takes more than pam_max_concurrent threads; never a 401."""
    d = realm_daemon(frealm, files, extra_server={'pam_service': pam_hang, 'pam_timeout': 2,
                                                  'pam_max_concurrent': 3})
    rc, err = d.check()
    if rc != 0 and 'pam_timeout' in err:
        pytest.skip('no pam_timeout key: ' + err)
    d.start()
    try:
        env = frealm.kinit('alice')
        assert_identity(basic(d, 'bob'), 'bob')  # now in the Basic cache
        t0 = time.monotonic()
        first = carol_requests(d, 2)
        time.sleep(0.5)
        for check in (lambda: neg(d, frealm, env), lambda: basic(d, 'bob'),
                      lambda: basic(d, 'alice')):
            t1 = time.monotonic()
            r = check()
            assert time.monotonic() - t1 < 1.5
            assert_identity(r, json.loads(r.body)['token_user'])
        codes, text = outcome(first)
        took = time.monotonic() - t0
        assert codes == ['503', '503'], text
        assert text.count('operation timed out') == 2, text
        assert 1.5 < took < 8, took
        t0 = time.monotonic()
        second = carol_requests(d, 2)
        codes, text = outcome(second)
        assert codes == ['503', '503'], text
        assert text.count('operation timed out') == 1 and text.count('limit was exceeded') == 1, text
        assert time.monotonic() - t0 < 8
        assert d.proc.poll() is None
    finally:
        d.stop()


# ---- PAM backend unavailable ----

def test_pam_backend_unavailable_is_503_not_401(frealm, files):
    """A PAM stack that cannot decide (pam_matrix with its password database missing:
    PAM_AUTHINFO_UNAVAIL, like an unreachable LDAP server) answers 503, never a 401 that
    would make the browser re-prompt for a password that may be right; Negotiate is served
    meanwhile, and the daemon keeps running."""
    with open(os.path.join(frealm.pam_dir, 'gatehouse-nodb'), 'w') as f:
        f.write(f'auth required {PAM_MATRIX} passdb={frealm.path("missing.passdb")}\n'
                f'account required {PAM_MATRIX} passdb={frealm.path("missing.passdb")}\n')
    d = realm_daemon(frealm, files, extra_server={'pam_service': 'gatehouse-nodb'})
    d.start()
    try:
        r = basic(d, 'alice')
        assert r.status == 503, r
        assert not any(k.lower() == 'www-authenticate' for k, _ in r.headers), r
        r = basic(d, 'alice', password='wrong')
        assert r.status == 503, r
        env = frealm.kinit('alice')
        assert_identity(neg(d, frealm, env), 'alice')
        assert d.proc.poll() is None
    finally:
        d.stop()


# ---- revert forced to fail ----

def test_dist_unit_restarts_on_failure():
    with open(os.path.join(ROOT, 'dist', 'gatehoused.service')) as f:
        unit = f.read()
    assert 'Restart=on-failure' in unit


def fault_daemon_path():
    if not FAULT_BUILD:
        return None
    p = os.path.join(FAULT_BUILD, 'gatehoused')
    return p if os.path.exists(p) else None


def start_revert_fault_daemon(frealm, processes=1):
    """The fault build's gatehoused with GH_FAULT_REVERT=3 (its third switch back
    to base fails) serving whoami on an impersonating Basic site."""
    d = GhDaemon(frealm, [('/files', {'auth': 'basic', 'basic_over_plain_http': 'yes',
                                      'handler': 'whoami', 'impersonate': 'yes'})],
                 server={'workers': 2, 'processes': processes,
                         'module_dir': os.path.join(FAULT_BUILD, 'modules')},
                 env={'GH_FAULT_REVERT': '3'})
    import pipeline_helpers
    saved = pipeline_helpers.GATEHOUSED
    pipeline_helpers.GATEHOUSED = fault_daemon_path()
    try:
        d.start()
    finally:
        pipeline_helpers.GATEHOUSED = saved
    return d


@pytest.mark.skipif(fault_daemon_path() is None,
                    reason='needs a -Dfault_injection=true gatehoused (GH_FAULT_BUILD_DIR)')
def test_failed_revert_aborts_and_nothing_is_served_after(frealm, files):
    """GH_FAULT_REVERT=3: the third switch back to base fails inside the daemon. The
    process must abort (SIGABRT) before that request's response leaves, and serve nothing
    after it."""
    # whoami on an impersonating site: the pipeline switches the thread around the
    # handler on every request (static opens through token-scoped personalities and
    # reverts only once per thread and identity)
    d = start_revert_fault_daemon(frealm)
    try:
        auth = 'Basic ' + __import__('base64').b64encode(b'alice:alicepw').decode()
        served, failed_raw = 0, None
        for i in range(10):
            c = Conn(d.port, timeout=10)
            c.send(f'GET /files/alice.txt HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n'
                   'Connection: close\r\n\r\n')
            raw = c.read_all()
            c.close()
            if raw.startswith(b'HTTP/1.1 200') and b'name="alice"' in raw and b'uid="20001"' in raw:
                served += 1
                continue
            failed_raw = raw
            break
        assert served >= 1, 'nothing was served before the fault'
        assert failed_raw is not None, 'the injected revert failure never fired'
        # the request in flight never got a 2xx (no bytes at all: the revert precedes the send)
        assert not failed_raw.startswith(b'HTTP/1.1 2'), failed_raw[:200]
        rc = d.proc.wait(10)
        assert rc == -signal.SIGABRT, (rc, d.log()[-2000:])
        # nothing is served after: the listener is gone
        with pytest.raises(OSError):
            socket.create_connection(('127.0.0.1', d.port), timeout=2).close()
    finally:
        d.stop()


@pytest.mark.skipif(fault_daemon_path() is None,
                    reason='needs a -Dfault_injection=true gatehoused (GH_FAULT_BUILD_DIR)')
def test_failed_revert_in_a_worker_process_aborts_it_and_the_master_replaces_it(frealm, files):
    """processes = 2: the worker process whose revert fails aborts (SIGABRT) before
    the response leaves; the master logs it and starts a fresh copy, which serves
    the right user. (GH_FAULT_REVERT counts per process: the fresh copy fails its
    third revert again, later.)"""
    d = start_revert_fault_daemon(frealm, processes=2)
    auth = 'Basic ' + __import__('base64').b64encode(b'alice:alicepw').decode()

    def one():
        c = Conn(d.port, timeout=10)
        c.send(f'GET /files/alice.txt HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n'
               'Connection: close\r\n\r\n')
        raw = c.read_all()
        c.close()
        return raw
    try:
        failed_raw = None
        for i in range(20):
            raw = one()
            if raw.startswith(b'HTTP/1.1 200'):
                assert b'name="alice"' in raw and b'uid="20001"' in raw, raw[:300]
                continue
            failed_raw = raw
            break
        assert failed_raw is not None, 'the injected revert failure never fired'
        assert not failed_raw.startswith(b'HTTP/1.1 2'), failed_raw[:200]
        deadline = time.monotonic() + 15
        while 'signal 6' not in d.log() or 'starting a new one' not in d.log():
            assert time.monotonic() < deadline, d.log()[-2000:]
            time.sleep(0.05)
        assert d.proc.poll() is None, 'the master died with its worker process'
        # the daemon serves on: a fresh process answers as alice
        deadline = time.monotonic() + 15
        while True:
            raw = one()
            if raw.startswith(b'HTTP/1.1 200'):
                assert b'name="alice"' in raw and b'uid="20001"' in raw, raw[:300]
                break
            assert time.monotonic() < deadline, (raw[:200], d.log()[-2000:])
    finally:
        d.stop()


# ---- a module crashing in a handler ----

CRASH = r'''/* crashy.c: test module — its handler dereferences NULL on /crash, else answers "ok". */
#include <string.h>
#include <gatehouse/module.h>
GH_MODULE_DEFINE("crashy");
static gh_request_status_t on_exec(void *m, gh_http_context_t *ctx, gh_event_provider_t *p)
{
  gh_http_response_t *r = gh_http_context_get_response(ctx);
  const char *u = gh_http_request_get_url(gh_http_context_get_request(ctx));
  (void)m; (void)p;
  if (u && strstr(u, "boom")) {
    volatile int *null = NULL;
    *null = 1;
  }
  gh_http_response_printf(r, "ok\n");
  return GH_REQUEST_FINISH;
}
GH_MODULE_EXPORT int gh_register_module(uint32_t v, gh_module_registration_t *reg,
                                        gh_module_server_t *server)
{
  gh_module_factory_t f = {.struct_size = sizeof(f), .on_execute_request_handler = on_exec};
  (void)v; (void)server;
  int r = gh_module_registration_set_factory(reg, &f);
  return r ? r : gh_module_registration_set_handler(reg);
}
'''


def test_module_crash_kills_the_process(frealm, files, tmp_path):
    """Decision: no isolation — a handler that crashes takes the process down (SIGSEGV), so
    the worker's thread identity (the client's, mid-handler) can never be reused; the request
    gets no response, the next connection is refused, systemd restarts the service."""
    so = build_module(CRASH, 'crashy', str(tmp_path))
    d = GhDaemon(frealm, [('/c', {'auth': 'basic', 'basic_over_plain_http': 'yes',
                                  'handler': 'crashy', 'impersonate': 'yes'})],
                 server={'module': so, 'workers': 2})
    d.start()
    try:
        assert basic(d, 'alice', path='/c/fine').body == b'ok\n'
        auth = 'Basic ' + __import__('base64').b64encode(b'alice:alicepw').decode()
        c = Conn(d.port, timeout=10)
        c.send(f'GET /c/boom HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n')
        raw = c.read_all()
        c.close()
        assert not raw.startswith(b'HTTP/1.1 2'), raw[:200]
        rc = d.proc.wait(10)
        # ASan reports the SEGV and aborts (abort_on_error=1 in run-all's sanitizer runs)
        assert rc == -signal.SIGSEGV or (SANITIZER and rc == -signal.SIGABRT), \
            (rc, d.log()[-2000:])
        with pytest.raises(OSError):
            socket.create_connection(('127.0.0.1', d.port), timeout=2).close()
    finally:
        d.stop()
