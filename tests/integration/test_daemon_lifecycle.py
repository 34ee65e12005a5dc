"""test_daemon_lifecycle.py: gatehoused SIGHUP reload (pipeline config swap on open connections, refused reloads, restart-only keys), sd_notify messages, privilege drop to a service user."""
import os
import signal
import socket
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gh_realm import realm  # noqa: E402,F401
from helpers import Conn  # noqa: E402
from pipeline_helpers import (BASIC, GhDaemon, needs_daemon, needs_root, shared_dir,  # noqa: E402
                              write_owned)

pytestmark = [needs_daemon]


def roots():
    a, b = shared_dir('gh-ra-'), shared_dir('gh-rb-')
    write_owned(os.path.join(a, 'x.txt'), 'from A\n', None, 0o644)
    write_owned(os.path.join(b, 'x.txt'), 'from B\n', None, 0o644)
    return a, b


def get(conn, path):
    conn.send(f'GET {path} HTTP/1.1\r\nHost: t\r\n\r\n')
    return conn.read_response()


def test_reload_swaps_config_without_dropping_connections():
    a, b = roots()
    d = GhDaemon(None, [('/s', {'handler': 'static', 'root': a}),
                        ('/w', {'handler': 'whoami'})], unix=False)
    try:
        d.start()
        c = Conn(d.port)
        assert get(c, '/s/x.txt').body == b'from A\n'
        out = d.reload([('/s', {'handler': 'static', 'root': b}),
                        ('/w', {'handler': 'whoami', 'require': '*'})])
        assert 'configuration reloaded' in out, out
        # same TCP connection, new configuration
        r = get(c, '/s/x.txt')
        assert r.status == 200 and r.body == b'from B\n'
        assert get(c, '/w').status == 200
        c.close()
    finally:
        d.stop()


def test_refused_reload_keeps_the_old_config():
    a, b = roots()
    d = GhDaemon(None, [('/s', {'handler': 'static', 'root': a})], unix=False)
    try:
        d.start()
        out = d.reload([('/s', {'handler': 'nosuchmod', 'root': b})])
        assert 'reload refused' in out and f'{d.conf}:' in out and 'nosuchmod' in out, out
        c = Conn(d.port)
        assert get(c, '/s/x.txt').body == b'from A\n'
        c.close()
        out = d.reload([('/s', {'handler': 'static', 'root': a})], server={'workers': 3})
        assert 'workers' in out and 'restart' in out, out
        assert d.proc.poll() is None
    finally:
        d.stop()


def test_sd_notify_ready_reloading_stopping():
    a, _ = roots()
    sdir = shared_dir('gh-notify-')
    path = os.path.join(sdir, 'notify.sock')
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(10)
    d = GhDaemon(None, [('/s', {'handler': 'static', 'root': a})], unix=False,
                 env={'NOTIFY_SOCKET': path})
    try:
        d.start()
        msgs = [s.recv(4096).decode()]
        assert 'READY=1' in msgs[0]
        d.proc.send_signal(signal.SIGHUP)
        m1, m2 = s.recv(4096).decode(), s.recv(4096).decode()
        assert 'RELOADING=1' in m1 and 'MONOTONIC_USEC=' in m1, m1
        assert 'READY=1' in m2
        d.proc.send_signal(signal.SIGTERM)
        assert 'STOPPING=1' in s.recv(4096).decode()
        assert d.proc.wait(15) == 0
    finally:
        d.stop()
        s.close()


def status_fields(pid):
    out = {}
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            k, v = line.split(':', 1)
            out[k] = v.split()
    return out


@needs_root
def test_privilege_drop_to_service_user(realm):  # noqa: F811
    root = shared_dir('gh-drop-')
    write_owned(os.path.join(root, 'alice.txt'), 'alice secret\n', 'alice')
    write_owned(os.path.join(root, 'bob.txt'), 'bob secret\n', 'bob')
    # a service account next to the realm's users (nobody is the anonymous
    # account, which the sec layer refuses as the service)
    pw, gr = os.path.join(root, 'passwd'), os.path.join(root, 'group')
    with open(pw, 'w') as f:
        f.write(open(realm.passwd).read() + 'ghsvc:x:998:998:gatehouse:/:/bin/false\n')
    with open(gr, 'w') as f:
        f.write(open(realm.group).read() + 'ghsvc:x:998:\n')
    # Basic only: the keytab and NTLM file are root's 0600 files in the realm
    d = GhDaemon(realm, [('/f', dict(BASIC, handler='static', root=root, impersonate='yes'))],
                 server={'user': 'ghsvc', 'pam_service': 'gatehouse', 'min_uid': 1000},
                 realm_keys=False, env={'NSS_WRAPPER_PASSWD': pw, 'NSS_WRAPPER_GROUP': gr})
    try:
        d.start()
        st = status_fields(d.proc.pid)
        assert st['Uid'] == ['998'] * 4 and st['Gid'] == ['998'] * 4, st
        # only CAP_SETUID (7) and CAP_SETGID (6) stay, locked, no new privileges
        assert int(st['CapEff'][0], 16) == 0xc0 and int(st['CapPrm'][0], 16) == 0xc0, st
        assert int(st['CapBnd'][0], 16) & ~0xc0 & ~(1 << 8) == 0, st  # + SETPCAP dropped later
        assert st['NoNewPrivs'] == ['1']
        assert d.get('/f/alice.txt', user='alice').body == b'alice secret\n'
        assert d.get('/f/bob.txt', user='alice').status == 403
    finally:
        d.stop()
        import shutil
        shutil.rmtree(root, ignore_errors=True)


@needs_root
def test_privilege_drop_unknown_user_refuses_to_start():
    a, _ = roots()
    d = GhDaemon(None, [('/s', {'handler': 'static', 'root': a})], unix=False,
                 server={'user': 'no-such-user-gh'})
    try:
        assert d.start(expect_fail=True) != 0
        assert 'no-such-user-gh' in d.log() and 'privilege drop failed' in d.log(), d.log()
    finally:
        d.stop()


def test_sigterm_exits_zero_and_logs():
    a, _ = roots()
    d = GhDaemon(None, [('/s', {'handler': 'static', 'root': a})], unix=False,
                 server={'log': 'stderr'})
    d.start()
    assert 'log to stderr' in d.log()
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(15) == 0
    time.sleep(0.05)
    assert 'stopped' in d.log()
    d.stop()
