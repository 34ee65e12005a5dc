"""test_http_lifecycle.py: gatehoused process behaviour — graceful SIGTERM, SIGHUP log reopen, access log, config errors."""
import os
import select
import signal
import socket
import subprocess
import time

from helpers import GATEHOUSED, Conn, request


def test_sigterm_graceful_with_request_in_flight(gatehoused):
    d = gatehoused(sites=[('/', {'handler': 'fixed', 'body': 'slow done', 'delay_ms': 1000})])
    c = Conn(d.port, timeout=10)
    c.send('GET / HTTP/1.1\r\nHost: t\r\n\r\n')
    time.sleep(0.3)
    d.signal(signal.SIGTERM)
    time.sleep(0.2)
    # no new connections once shutting down
    try:
        s = socket.create_connection(('127.0.0.1', d.port), timeout=1)
        s.close()
        refused = False
    except OSError:
        refused = True
    assert refused
    r = c.read_response()
    assert r.status == 200 and r.body == b'slow done'
    assert r.header('Connection') == 'close'
    assert d.proc.wait(10) == 0
    assert 'stopped' in d.log()


def test_sigterm_finishes_partially_received_request(gatehoused):
    d = gatehoused(sites=[('/', {'handler': 'echo'})])
    c = Conn(d.port, timeout=10)
    c.send('POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nabc')
    time.sleep(0.2)
    d.signal(signal.SIGTERM)
    time.sleep(0.2)
    c.send('def')
    r = c.read_response()
    assert r.status == 200 and r.body.endswith(b'abcdef')
    assert d.proc.wait(10) == 0


def test_sigterm_idle_keepalive_closed(gatehoused):
    d = gatehoused()
    c = Conn(d.port)
    c.send('GET / HTTP/1.1\r\nHost: t\r\n\r\n')
    assert c.read_response().status == 200
    d.signal(signal.SIGTERM)
    assert c.is_closed()
    assert d.proc.wait(10) == 0


def test_sighup_reopens_access_log(gatehoused, tmp_path):
    log = tmp_path / 'access.log'
    d = gatehoused(server={'access_log': str(log)})
    assert request(d.port, '/one').status == 200
    # the access line is written after the response went out: wait for it
    # before rotating, as logrotate would see a finished line
    for _ in range(250):
        if log.exists() and '/one' in log.read_text():
            break
        time.sleep(0.02)
    os.rename(log, str(log) + '.1')
    d.signal(signal.SIGHUP)
    for _ in range(100):
        if 'reopened' in d.log():
            break
        time.sleep(0.02)
    assert request(d.port, '/two').status == 200
    time.sleep(0.1)
    old = open(str(log) + '.1').read()
    new = log.read_text()
    assert '"GET /one HTTP/1.1" 200 5' in old and '/two' not in old
    assert '"GET /two HTTP/1.1" 200 5' in new
    assert new.startswith('127.0.0.1 - - [')


def test_access_log_stdout(gatehoused):
    d = gatehoused(server={'access_log': '-'})
    assert request(d.port, '/x').status == 200
    ready, _, _ = select.select([d.proc.stdout], [], [], 5)
    assert ready
    line = os.read(d.proc.stdout.fileno(), 4096)
    assert b'"GET /x HTTP/1.1" 200 5\n' in line


def run_check(tmp_path, text):
    conf = tmp_path / 'bad.conf'
    conf.write_text(text)
    p = subprocess.run([GATEHOUSED, '-t', '-c', str(conf)], capture_output=True, text=True)
    return p.returncode, p.stderr, str(conf)


def test_config_check_ok(tmp_path):
    rc, err, _ = run_check(tmp_path, '[server]\nlisten = 127.0.0.1:1\nworkers = 2\n'
                           'keytab = /etc/krb5.keytab\n[site /]\nhandler = fixed\nbody = x\n')
    assert rc == 0, err
    assert 'configuration ok' in err


def test_config_errors_name_file_line_key(tmp_path):
    rc, err, f = run_check(tmp_path, '[server]\nlisten = 127.0.0.1:1\nworkerz = 2\n')
    assert rc == 1
    assert f'{f}:3:' in err and 'workerz' in err and 'unknown key' in err
    rc, err, f = run_check(tmp_path, '[server]\nlisten = 127.0.0.1:1\n\nmax_body = lots\n')
    assert rc == 1 and f'{f}:4:' in err and 'max_body' in err
    # handlers are modules now (cgi is one): a name no module has is the error
    rc, err, f = run_check(tmp_path, '[server]\nlisten = 127.0.0.1:1\n[site /a]\nhandler = nosuchmod\n')
    assert rc == 1 and f'{f}:4:' in err and 'handler' in err and 'nosuchmod' in err
    rc, err, f = run_check(tmp_path, '[server]\nworkers = 2\n')
    assert rc == 1 and 'listen' in err
    rc, err, f = run_check(tmp_path, '[server]\nlisten = 127.0.0.1:1\n[site /s]\nhandler = static\n')
    assert rc == 1 and '[site /s]' in err and 'root' in err
    rc, err, f = run_check(tmp_path, '[bogus]\nx = 1\n')
    assert rc == 1 and f'{f}:1:' in err and 'bogus' in err
    rc, err, f = run_check(tmp_path, '[server]\nthis is not ini\n')
    assert rc == 1 and f'{f}:2:' in err
    p = subprocess.run([GATEHOUSED, '-t', '-c', str(tmp_path / 'missing.conf')], capture_output=True, text=True)
    assert p.returncode == 1 and 'missing.conf' in p.stderr


def test_bad_listen_address_fails_cleanly(tmp_path):
    conf = tmp_path / 'c.conf'
    conf.write_text('[server]\nlisten = 127.0.0.1:notaport\n')
    p = subprocess.run([GATEHOUSED, '-f', '-c', str(conf)], capture_output=True, text=True, timeout=10)
    assert p.returncode == 1 and 'listen 127.0.0.1:notaport' in p.stderr
