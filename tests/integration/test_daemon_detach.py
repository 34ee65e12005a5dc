"""test_daemon_detach.py: a gatehoused that logs without systemd — log = syslog, and log = auto when detached, read from a test-owned /dev/log (a unix datagram socket bound over /dev/log in a private mount namespace) with facility, level and pid checked — and pid_file: written once serving, removed on exit, a stale one replaced, a live daemon's refused, a symlink never followed, the master's pid with worker processes."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import Conn  # noqa: E402
from pipeline_helpers import GATEHOUSED, free_port, needs_daemon, needs_root, shared_dir  # noqa: E402

pytestmark = [needs_daemon]

LOG_DAEMON = 3 << 3
LOG_ERR, LOG_WARNING, LOG_INFO = 3, 4, 6

# Runs "$@" in a private mount namespace whose /dev is a tmpfs holding the
# usual character devices and, as /dev/log, the test's datagram socket ($1);
# the journal's socket is hidden, so nothing else can take the lines.
PRIVATE_DEV_LOG = r'''
set -e
sock=$1; save=$2; shift 2
mount --make-rprivate /
mount --rbind /dev "$save"
mount -t tmpfs -o mode=755 tmpfs /dev
for n in null zero random urandom full; do touch /dev/$n; mount --bind "$save/$n" /dev/$n; done
touch /dev/log
mount --bind "$sock" /dev/log
if [ -d /run/systemd/journal ]; then mount -t tmpfs tmpfs /run/systemd/journal; fi
exec "$@"
'''


class SyslogSink:
    """A unix datagram socket standing in for /dev/log."""

    def __init__(self, d):
        self.path = os.path.join(d, 'log')
        self.save = os.path.join(d, 'devsave')
        os.mkdir(self.save)
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind(self.path)
        os.chmod(self.path, 0o666)
        self.lines = []

    def wrap(self, argv):
        return ['unshare', '-m', 'sh', '-ec', PRIVATE_DEV_LOG, 'sh', self.path, self.save] + argv

    def wait_for(self, pattern, timeout=15):
        """The first datagram (since the last match) matching pattern, parsed:
        (priority, pid, message)."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            for i, line in enumerate(self.lines):
                if rx.search(line):
                    del self.lines[:i + 1]
                    m = re.match(r'<(\d+)>\w{3} [ \d]\d \d\d:\d\d:\d\d gatehoused\[(\d+)\]: (.*)$',
                                 line, re.S)
                    assert m, line
                    return int(m.group(1)), int(m.group(2)), m.group(3)
            left = deadline - time.monotonic()
            assert left > 0, (pattern, self.lines)
            self.s.settimeout(left)
            try:
                self.lines.append(self.s.recv(65536).decode(errors='replace'))
            except socket.timeout:
                pass

    def close(self):
        self.s.close()


def write_conf(d, port, server_extra='', sites=None):
    conf = os.path.join(d, 'gatehouse.conf')
    with open(conf, 'w') as f:
        f.write(f'[server]\nlisten = 127.0.0.1:{port}\nworkers = 2\n{server_extra}\n'
                + (sites or '[site /a]\nhandler = fixed\nbody = A\n'))
    return conf


def get_a(port):
    c = Conn(port)
    try:
        c.send('GET /a HTTP/1.1\r\nHost: t\r\n\r\n')
        return c.read_response().status
    finally:
        c.close()


def env_without_journal():
    env = dict(os.environ)
    env.pop('JOURNAL_STREAM', None)
    env.pop('NOTIFY_SOCKET', None)
    return env


def wait_gone(pid, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        try:  # our child: reap it
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass
        time.sleep(0.02)
    raise AssertionError(f'pid {pid} still running')


def read_pid(path, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                text = f.read()
            if text.endswith('\n'):
                return int(text)
        except FileNotFoundError:
            pass
        time.sleep(0.02)
    raise AssertionError(f'{path} not written')


@pytest.fixture
def tdir():
    d = shared_dir('gh-detach-')
    yield d
    shutil.rmtree(d, ignore_errors=True)


@needs_root
def test_log_syslog_facility_daemon_levels_and_pid(tdir):
    sink = SyslogSink(tdir)
    port = free_port()
    conf = write_conf(tdir, port, 'log = syslog')
    proc = subprocess.Popen(sink.wrap([GATEHOUSED, '-f', '-c', conf]), env=env_without_journal(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pri, pid, msg = sink.wait_for(r'ready \(')
        assert pri == LOG_DAEMON | LOG_INFO and pid == proc.pid, (pri, pid, msg)
        assert 'log to syslog' in msg
        assert get_a(port) == 200
        # a refused reload is an error, a restart-only change a warning
        with open(conf, 'a') as f:
            f.write('[sight /x]\n')
        proc.send_signal(signal.SIGHUP)
        pri, pid, msg = sink.wait_for(r'reload refused')
        assert pri == LOG_DAEMON | LOG_ERR and pid == proc.pid, (pri, msg)
        assert f'{conf}:8: [sight /x]' in msg, msg
        write_conf(tdir, port, 'log = syslog\nmax_body = 2k')
        proc.send_signal(signal.SIGHUP)
        pri, _, msg = sink.wait_for(r'max_body: changed')
        assert pri == LOG_DAEMON | LOG_WARNING, (pri, msg)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        sink.wait_for(r'stopped')
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sink.close()


@needs_root
def test_detached_auto_logs_to_syslog_and_pid_file_finds_it(tdir):
    sink = SyslogSink(tdir)
    port = free_port()
    pidf = os.path.join(tdir, 'gh.pid')
    conf = write_conf(tdir, port, f'pid_file = {pidf}')  # log = auto (default)
    p = subprocess.run(sink.wrap([GATEHOUSED, '-c', conf]), env=env_without_journal(),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr  # the parent returns once detached
    pid = None
    try:
        pid = read_pid(pidf)
        pri, spid, msg = sink.wait_for(r'ready \(')
        assert spid == pid and pri == LOG_DAEMON | LOG_INFO and 'log to syslog' in msg, msg
        assert get_a(port) == 200
        assert os.stat(pidf).st_mode & 0o777 == 0o644
        os.kill(pid, signal.SIGTERM)
        sink.wait_for(r'stopped')
        wait_gone(pid)
        assert not os.path.exists(pidf)
        pid = None
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        sink.close()


def start_fg(conf, errpath):
    err = open(errpath, 'wb')
    proc = subprocess.Popen([GATEHOUSED, '-f', '-c', conf], stdout=subprocess.DEVNULL,
                            stderr=err, env=env_without_journal())
    err.close()
    deadline = time.monotonic() + 20
    while True:
        with open(errpath, errors='replace') as f:
            log = f.read()
        if 'ready (' in log:
            return proc
        assert proc.poll() is None and time.monotonic() < deadline, log
        time.sleep(0.02)


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(15)


def test_pid_file_written_once_serving_and_removed_on_exit(tdir):
    pidf = os.path.join(tdir, 'gh.pid')
    port = free_port()
    conf = write_conf(tdir, port, f'pid_file = {pidf}\nlog = stderr')
    proc = start_fg(conf, os.path.join(tdir, 'err'))
    try:
        with open(pidf) as f:  # present when "ready" is logged
            assert f.read() == f'{proc.pid}\n'
        assert not [n for n in os.listdir(tdir) if n.endswith('.tmp')]
        assert get_a(port) == 200
    finally:
        assert stop(proc) == 0
    assert not os.path.exists(pidf)


@pytest.mark.parametrize('holder', ['dead', 'not-gatehoused', 'garbage'])
def test_stale_pid_file_is_replaced(tdir, holder):
    pidf = os.path.join(tdir, 'gh.pid')
    if holder == 'dead':
        p = subprocess.Popen(['true'])
        p.wait()
        text = f'{p.pid}\n'
    elif holder == 'not-gatehoused':
        text = f'{os.getpid()}\n'  # alive, but python
    else:
        text = 'not a pid'
    with open(pidf, 'w') as f:
        f.write(text)
    conf = write_conf(tdir, free_port(), f'pid_file = {pidf}\nlog = stderr')
    proc = start_fg(conf, os.path.join(tdir, 'err'))
    try:
        with open(pidf) as f:
            assert f.read() == f'{proc.pid}\n'
    finally:
        assert stop(proc) == 0
    assert not os.path.exists(pidf)


def test_live_daemon_holding_the_pid_file_refuses_a_second(tdir):
    pidf = os.path.join(tdir, 'gh.pid')
    conf = write_conf(tdir, free_port(), f'pid_file = {pidf}\nlog = stderr')
    first = start_fg(conf, os.path.join(tdir, 'err'))
    try:
        # another port, same pid file: refused before binding, on stderr
        conf2 = os.path.join(tdir, 'second.conf')
        shutil.copy(write_conf(tdir, free_port(), f'pid_file = {pidf}\nlog = syslog'), conf2)
        p = subprocess.run([GATEHOUSED, '-f', '-c', conf2], capture_output=True, text=True,
                           timeout=30, env=env_without_journal())
        assert p.returncode == 1, p.stderr
        assert f'pid_file {pidf}: gatehoused is already running as pid {first.pid}' in p.stderr
        with open(pidf) as f:
            assert f.read() == f'{first.pid}\n'
        assert first.poll() is None
    finally:
        assert stop(first) == 0
    assert not os.path.exists(pidf)


def test_pid_file_symlink_is_not_followed(tdir):
    target = os.path.join(tdir, 'precious')
    with open(target, 'w') as f:
        f.write('keep\n')
    pidf = os.path.join(tdir, 'gh.pid')
    os.symlink(target, pidf)
    conf = write_conf(tdir, free_port(), f'pid_file = {pidf}\nlog = stderr')
    p = subprocess.run([GATEHOUSED, '-f', '-c', conf], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 1 and f'pid_file {pidf}: cannot read' in p.stderr, p.stderr
    with open(target) as f:
        assert f.read() == 'keep\n'


def test_pid_file_names_the_master_with_worker_processes(tdir):
    pidf = os.path.join(tdir, 'gh.pid')
    port = free_port()
    conf = write_conf(tdir, port, f'pid_file = {pidf}\nlog = stderr\nprocesses = 2')
    errpath = os.path.join(tdir, 'err')
    err = open(errpath, 'wb')
    proc = subprocess.Popen([GATEHOUSED, '-f', '-c', conf], stdout=subprocess.DEVNULL, stderr=err)
    err.close()
    try:
        assert read_pid(pidf) == proc.pid
        deadline = time.monotonic() + 20
        while open(errpath, errors='replace').read().count('ready (') < 2:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        assert get_a(port) == 200
        with open(pidf) as f:  # the worker processes leave it alone
            assert f.read() == f'{proc.pid}\n'
    finally:
        assert stop(proc) == 0
    assert not os.path.exists(pidf)


def test_pid_file_must_be_absolute(tdir):
    conf = write_conf(tdir, free_port(), 'pid_file = gh.pid')
    p = subprocess.run([GATEHOUSED, '-t', '-c', conf], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and f'{conf}:4: [server] pid_file' in p.stderr, p.stderr


def test_detached_start_that_fails_after_the_detach_exits_1(tdir):
    # the pid file's directory does not exist: found when the file is written, once the daemon
    # serves, i.e. after the detach; the starter used to exit 0 before the daemon was ready
    conf = write_conf(tdir, free_port(), 'pid_file = /nonexistent-gh-dir/gh.pid')
    p = subprocess.run([GATEHOUSED, '-c', conf], env=env_without_journal(), capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert 'stopped before it was ready' in p.stderr, p.stderr


def test_detached_start_returns_once_serving(tdir):
    # the starter exits 0 only after READY: the first request right after it is served
    port = free_port()
    pidf = os.path.join(tdir, 'gh.pid')
    for extra in ('', '\nprocesses = 2'):
        conf = write_conf(tdir, port, f'pid_file = {pidf}{extra}')
        p = subprocess.run([GATEHOUSED, '-c', conf], env=env_without_journal(),
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        pid = read_pid(pidf)
        try:
            assert get_a(port) == 200
        finally:
            os.kill(pid, signal.SIGTERM)
            wait_gone(pid)
