"""test_daemon_processes.py: gatehoused worker processes ([server] processes = N): requests served by several processes as the right users, one Kerberos replay cache for all of them, a dead worker process replaced, SIGHUP reaching every process, SIGTERM stopping them all, bad values refused."""
import os
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pipeline_helpers import GhDaemon, build_module, shared_dir, write_owned  # noqa: E402
from test_auth_http import (GATEHOUSED, SITES, UIDS, Gatehoused, Raw, basic,  # noqa: E402,F401
                            cc, gssclient, realm)

pytestmark = [
    pytest.mark.skipif(not os.path.exists(GATEHOUSED), reason=f'{GATEHOUSED} not built'),
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root: impersonation at uids 20001-20003'),
]


def children(pid):
    try:
        with open(f'/proc/{pid}/task/{pid}/children') as f:
            return sorted(int(x) for x in f.read().split())
    except OSError:
        return []


def wait_children(pid, n, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = children(pid)
        if len(kids) == n:
            return kids
        time.sleep(0.05)
    raise AssertionError(f'{pid} has children {children(pid)}, expected {n}')


def owner(conn, kids):
    """The worker process holding the server end of a TCP connection."""
    lport = conn.s.getsockname()[1]
    rport = conn.s.getpeername()[1]
    inode = None
    with open('/proc/net/tcp') as f:
        for line in f.readlines()[1:]:
            p = line.split()
            if (int(p[1].split(':')[1], 16) == rport and int(p[2].split(':')[1], 16) == lport):
                inode = p[9]
    assert inode is not None
    for k in kids:
        for fd in os.listdir(f'/proc/{k}/fd'):
            try:
                if os.readlink(f'/proc/{k}/fd/{fd}') == f'socket:[{inode}]':
                    return k
            except OSError:
                pass
    return None


def basic_ok(c, user='carol'):
    st, _, body = c.get('/', basic(user, user + 'pw'))
    assert st == 200 and body['kernel_uid'] == UIDS[user], body


def conns_on_two_processes(d, kids, check=basic_ok, tries=200):
    """Opens connections (each serving one request, checked) until two are
    held by different worker processes; returns them with their owners."""
    seen = {}
    for _ in range(tries):
        c = Raw(d)
        check(c)
        o = owner(c, kids)
        assert o in kids
        if o not in seen:
            seen[o] = c
            if len(seen) == 2:
                (p1, c1), (p2, c2) = seen.items()
                return c1, p1, c2, p2
        else:
            c.close()
    raise AssertionError(f'{tries} connections, all held by {list(seen)}')


# workers = 1: each worker process serves on its main thread alone
# (gh_server_serve: no I/O thread, no worker thread)
@pytest.fixture(params=[2, 1], ids=['threads', 'alone'])
def gh3(realm, tmp_path, request):
    d = Gatehoused(realm, tmp_path, SITES, server={'processes': 3, 'workers': request.param})
    d.start()
    yield d
    d.stop()


def threads(pid):
    return len(os.listdir(f'/proc/{pid}/task'))


def test_served_by_several_processes_as_the_right_users(gh3):
    kids = wait_children(gh3.proc.pid, 3)
    c1, p1, c2, p2 = conns_on_two_processes(gh3, kids)
    assert p1 != p2
    for c in (c1, c2):
        for user in ('alice', 'bob', 'alice'):
            st, _, body = c.get('/', basic(user, user + 'pw'))
            assert st == 200 and body['status'] == 'SUCCESS', body
            assert body['kernel_uid'] == UIDS[user], body
        c.close()
    assert 'master process' in gh3.log() and gh3.log().count('ready (') == 3


def test_worker_process_alone_is_one_thread(realm, tmp_path, cc):
    """processes = 2, workers = 1: each worker process is a single thread
    (the main thread accepts, reads and runs every request), before and
    after Negotiate, Basic (PAM runs on a helper thread that ends) and
    peer requests, every one as the right user."""
    d = Gatehoused(realm, tmp_path, SITES, server={'processes': 2, 'workers': 1})
    d.start()
    try:
        kids = wait_children(d.proc.pid, 2)
        assert [threads(k) for k in kids] == [1, 1]
        assert d.log().count('serving alone on its main thread') == 2, d.log()
        c1, p1, c2, p2 = conns_on_two_processes(d, kids)
        for c in (c1, c2):
            for user in ('alice', 'bob', 'carol'):
                st, _, body = c.get('/', basic(user, user + 'pw'))
                assert st == 200 and body['kernel_uid'] == UIDS[user], body
            tok = gssclient(realm, cc['bob'], 'token', 'HTTP@localhost')['token']
            st, _, body = c.get('/', 'Negotiate ' + tok)
            assert st == 200 and body['kernel_uid'] == UIDS['bob'], body
            c.close()
        c = Raw(d, unix=True)
        st, _, body = c.get('/')
        c.close()
        assert st == 200 and body['type'] == 'Peer', body
        deadline = time.monotonic() + 10  # the PAM helper threads have ended
        while [threads(k) for k in kids] != [1, 1]:
            assert time.monotonic() < deadline, [threads(k) for k in kids]
            time.sleep(0.05)
    finally:
        d.stop()


def test_replay_refused_across_processes(gh3, realm, cc):
    """The replay cache is shared: a Kerberos AP-REQ accepted by one worker
    process is a replay in every other one."""
    kids = wait_children(gh3.proc.pid, 3)
    c1, p1, c2, p2 = conns_on_two_processes(gh3, kids)
    tok = gssclient(realm, cc['bob'], 'token', 'HTTP@localhost')['token']
    _, _, b1 = c1.get('/', 'Negotiate ' + tok)
    _, _, b2 = c2.get('/', 'Negotiate ' + tok)
    assert b1['status'] == 'SUCCESS' and b1['kernel_uid'] == UIDS['bob'], b1
    assert b2['status'] == 'FAILURE' and b2['token'] == 0 and b2['sec_major'] != 0, b2
    # and the other way round, with a fresh token
    tok = gssclient(realm, cc['alice'], 'token', 'HTTP@localhost')['token']
    _, _, b3 = c2.get('/', 'Negotiate ' + tok)
    _, _, b4 = c1.get('/', 'Negotiate ' + tok)
    assert b3['status'] == 'SUCCESS' and b3['kernel_uid'] == UIDS['alice'], b3
    assert b4['status'] == 'FAILURE' and b4['token'] == 0, b4
    # both processes still serve
    for c in (c1, c2):
        st, _, body = c.get('/', basic('carol', 'carolpw'))
        assert st == 200 and body['kernel_uid'] == UIDS['carol'], body
        c.close()


def kill_until_replaced(master, kids, timeout=15):
    """SIGKILLs worker process kids[0] and waits until the master runs as
    many children again, none of them the dead one."""
    os.kill(kids[0], signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = children(master)
        if len(now) == len(kids) and kids[0] not in now:
            return now
        time.sleep(0.05)
    raise AssertionError(f'children now {children(master)}, were {kids}')


def test_dead_worker_process_is_replaced(gh3):
    kids = wait_children(gh3.proc.pid, 3)
    kill_until_replaced(gh3.proc.pid, kids)
    assert f'worker process {kids[0]} was killed by signal 9' in gh3.log(), gh3.log()
    assert 'starting a new one' in gh3.log()
    # every process serves, the new one included
    new = [k for k in children(gh3.proc.pid) if k not in kids]
    assert len(new) == 1
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        c = Raw(gh3)
        st, _, body = c.get('/', basic('alice', 'alicepw'))
        assert st == 200 and body['kernel_uid'] == UIDS['alice'], body
        o = owner(c, children(gh3.proc.pid))
        c.close()
        if o == new[0]:
            break
    else:
        raise AssertionError('the new worker process never served a connection')
    # the unix listener survived the death (only the master owns its file)
    assert os.path.exists(gh3.unix)
    c = Raw(gh3, unix=True)
    st, _, body = c.get('/')
    c.close()
    assert st == 200 and body['type'] == 'Peer', body


@pytest.mark.parametrize('workers', [2, 1], ids=['threads', 'alone'])
def test_sighup_reaches_every_process_and_sigterm_stops_them_all(workers):
    a, b = shared_dir('gh-pa-'), shared_dir('gh-pb-')
    write_owned(os.path.join(a, 'x.txt'), 'from A\n', None, 0o644)
    write_owned(os.path.join(b, 'x.txt'), 'from B\n', None, 0o644)
    d = GhDaemon(None, [('/', {'handler': 'static', 'root': a})], unix=False,
                 server={'processes': 2, 'workers': workers})
    log = ''
    try:
        d.start()
        kids = wait_children(d.proc.pid, 2)

        def from_a(c):
            st, _, body = c.get('/x.txt')
            assert st == 200 and body == 'from A\n', (st, body)
        c1, p1, c2, p2 = conns_on_two_processes(d, kids, from_a)
        out = d.reload([('/', {'handler': 'static', 'root': b})])
        deadline = time.monotonic() + 15
        while not all(f'gatehoused[{k}]: configuration reloaded' in d.log() for k in kids):
            assert time.monotonic() < deadline, d.log()
            time.sleep(0.05)
        assert 'SIGHUP: the worker processes reload' in d.log(), out
        for c in (c1, c2):  # same connections, new configuration in both processes
            st, _, body = c.get('/x.txt')
            assert st == 200 and body == 'from B\n', (st, body)
            c.close()
        assert children(d.proc.pid) == kids  # reloaded in place, not restarted
        d.proc.send_signal(signal.SIGTERM)
        rc = d.proc.wait(30)
    finally:
        log = d.log()
        d.stop()
    assert rc == 0, log
    for k in kids:
        assert not os.path.exists(f'/proc/{k}'), f'worker process {k} outlived the master'
    assert 'stopping the worker processes' in log and 'stopped' in log, log


@pytest.mark.parametrize('value', ['0', '-1', 'two', '257', '1.5', ''])
def test_bad_processes_value_refused(realm, tmp_path, value):
    d = Gatehoused(realm, tmp_path, SITES, server={'processes': value})
    p = subprocess.run([GATEHOUSED, '-t', '-c', d.conf], env=d.env, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode != 0
    assert '[server] processes:' in p.stderr and 'auto or a number from 1 to 256' in p.stderr, \
        p.stderr


def test_processes_auto_accepted(realm, tmp_path):
    d = Gatehoused(realm, tmp_path, SITES, server={'processes': 'auto'})
    p = subprocess.run([GATEHOUSED, '-t', '-c', d.conf], env=d.env, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr


DIES_AT_START = r'''/* diesatstart.c: test module whose start crashes the process. */
#include <unistd.h>
#include <gatehouse/module.h>
GH_MODULE_DEFINE("diesatstart");
static gh_global_status_t on_start(void *d, gh_module_server_t *s)
{ (void)d; (void)s; _exit(3); }
GH_MODULE_EXPORT int gh_register_module(uint32_t v, gh_module_registration_t *reg,
                                        gh_module_server_t *server)
{
  gh_global_module_t g = {.struct_size = sizeof(g), .on_start = on_start};
  (void)v; (void)server;
  return gh_module_registration_set_global(reg, &g);
}
'''


def test_worker_process_failing_at_start_stops_the_daemon():
    """A worker process that dies right after its start, again and again,
    is a broken set-up: the master gives up (exit 1) instead of looping."""
    d = GhDaemon(None, [('/', {'handler': 'whoami'})], unix=False,
                 server={'processes': 2, 'workers': 1})
    try:
        so = build_module(DIES_AT_START, 'diesatstart', d.dir)
    except Exception as e:  # no compiler
        pytest.skip(f'cannot build the test module: {e}')
    d.write(server={'module': so})
    try:
        rc = d.start(expect_fail=True, timeout=30)
        log = d.log()
    finally:
        d.stop()
    assert rc == 1, log
    assert 'exited with status 3; starting a new one' in log, log
    assert 'failure in a row' in log and 'stopping' in log, log
