"""test_daemon_config.py: gatehoused configuration errors that used to pass silently (a section given twice, a one-value key given twice, an unknown section without keys), each refused with file and line(s) by `gatehoused -t`, at start and at reload (SIGHUP: the old configuration keeps serving)."""
import os
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import Conn  # noqa: E402
from pipeline_helpers import GATEHOUSED, free_port, needs_daemon, shared_dir  # noqa: E402

pytestmark = [needs_daemon]

# The good configuration: line 1 [server], 2 listen, 3 workers, 4 blank, 5 [site /a],
# 6 handler, 7 body. Each bad one appends lines from 8 on.
GOOD = '[server]\nlisten = 127.0.0.1:{port}\nworkers = 2\n\n[site /a]\nhandler = fixed\nbody = A\n'

# (id, the file (GOOD plus lines from 8 on), the line named, words of the message)
BAD = [
    ('site-twice', GOOD + '\n[site /a]\nbody = B\n', 9,
     ['[site /a]', 'section given twice', 'first at line 5']),
    ('site-twice-slash', GOOD + '\n[site /a/]\n', 9, ['[site /a]', 'given twice', 'line 5']),
    ('server-twice', GOOD + '\n[server]\nmax_body = 1k\n', 9,
     ['[server]', 'given twice', 'line 1']),
    ('handler-twice', GOOD + 'handler = echo\n', 8,
     ['[site /a] handler', 'given twice', 'first at line 6']),
    ('workers-twice', GOOD.replace('workers = 2\n', 'workers = 2\nworkers = 3\n'), 4,
     ['[server] workers', 'given twice', 'first at line 3']),
    ('misspelt-empty-section', GOOD + '\n[sight /x]\n', 9, ['[sight /x]', 'unknown section']),
    ('misspelt-section-keys', GOOD + '\n[sight /x]\nhandler = fixed\n', 9,
     ['[sight /x]', 'unknown section']),
    ('continued-one-value-key', GOOD + '  echo\n', 8,
     ['[site /a] body', 'indented line continues the key of line 7']),
    # built-in handlers skip the module pipeline: a require there was silently ignored (served everyone)
    ('require-on-fixed', GOOD + 'require = user:nobody\n', 8,
     ['[site /a] require', 'no effect with handler = fixed']),
    ('require-sub-on-echo', GOOD.replace('handler = fixed\nbody = A\n', 'handler = echo\n') +
     'require /x = deny:*\n', 7, ['[site /a] require /x', 'no effect with handler = echo']),
    ('impersonate-on-authinfo', GOOD.replace('handler = fixed\nbody = A\n', 'handler = authinfo\n') +
     'impersonate = yes\n', 7, ['[site /a] impersonate', 'no effect with handler = authinfo']),
    ('empty-site', GOOD + '\n[site /b]\n', 9, ['[site /b]', 'handler: missing']),
    # S4U (issue 14 item 5): a bad value; a site that asks for it without the service's name
    ('s4u-bad-value', GOOD + 'auth = basic\ns4u = maybe\n', 9,
     ['[site /a] s4u', "'maybe' is not no | self | proxy"]),
    ('s4u-without-principal', GOOD + 'auth = basic\ns4u = self\n', 5,
     ['[site /a] s4u needs [server] keytab and s4u_principal']),
    ('long-section-name', GOOD + '\n[site /' + 'x' * 60 + ']\nhandler = fixed\n', 9,
     ['section name longer than 49 characters']),
]


def text_of(case, port):
    return case[1].format(port=port)


def write(path, text):
    with open(path, 'w') as f:
        f.write(text)


def check_message(err, conf, line, words):
    assert f'{conf}:{line}:' in err, (line, err)
    for w in words:
        assert w in err, (w, err)


@pytest.fixture
def conf():
    d = shared_dir('gh-conf-')
    yield os.path.join(d, 'gatehouse.conf')
    import shutil
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize('case', BAD, ids=[c[0] for c in BAD])
def test_check_refuses_naming_file_and_lines(case, conf):
    write(conf, text_of(case, free_port()))
    p = subprocess.run([GATEHOUSED, '-t', '-c', conf], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 1, p.stderr
    check_message(p.stderr, conf, case[2], case[3])


@pytest.mark.parametrize('case', BAD, ids=[c[0] for c in BAD])
def test_start_refuses_naming_file_and_lines(case, conf):
    port = free_port()
    write(conf, text_of(case, port))
    p = subprocess.run([GATEHOUSED, '-f', '-c', conf], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 1, p.stderr
    check_message(p.stderr, conf, case[2], case[3])


def test_repeatable_keys_still_repeat(conf):
    port, port2 = free_port(), free_port()
    write(conf, f'[server]\nlisten = 127.0.0.1:{port}\nlisten = 127.0.0.1:{port2}\n'
                '[site /a]\nhandler = static\nroot = /tmp\nrequire = *\nrequire = valid-user\n'
                'require /x = *\nrequire /x = ?\n')
    p = subprocess.run([GATEHOUSED, '-t', '-c', conf], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0 and 'configuration ok' in p.stderr, p.stderr


def get_body(port):
    c = Conn(port)
    try:
        c.send('GET /a HTTP/1.1\r\nHost: t\r\n\r\n')
        r = c.read_response()
        return r.status, r.body
    finally:
        c.close()


def test_reload_refuses_naming_file_and_lines_and_keeps_serving(conf):
    port = free_port()
    write(conf, GOOD.format(port=port))
    errpath = conf + '.stderr'
    with open(errpath, 'wb') as err:
        proc = subprocess.Popen([GATEHOUSED, '-f', '-c', conf], stdout=subprocess.DEVNULL,
                                stderr=err)

    def log():
        with open(errpath, errors='replace') as f:
            return f.read()
    try:
        deadline = time.monotonic() + 20
        while 'ready (' not in log():
            assert proc.poll() is None and time.monotonic() < deadline, log()
            time.sleep(0.02)
        assert get_body(port) == (200, b'A')
        for case in BAD:
            if case[0] == 'long-section-name':
                continue  # same path as the others; keeps the loop short
            before = log()
            write(conf, text_of(case, port))
            proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while log().count('reload refused') == before.count('reload refused'):
                assert 'configuration reloaded' not in log()[len(before):], (case, log())
                assert time.monotonic() < deadline, (case, log())
                time.sleep(0.02)
            check_message(log()[len(before):], conf, case[2], case[3])
            assert get_body(port) == (200, b'A'), case
        # a good file is taken again
        before = log()
        write(conf, GOOD.format(port=port).replace('body = A', 'body = C'))
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while 'configuration reloaded' not in log()[len(before):]:
            assert time.monotonic() < deadline, log()
            time.sleep(0.02)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
