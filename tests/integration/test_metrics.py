"""test_metrics.py: handler = metrics on gatehoused with two worker processes — every scrape valid for promtool, counters (requests by site and code, latency histogram, auth attempts and failure causes, replays, impersonations, connections, worker processes) moving by the right amounts summed over both processes, a worker killed (SIGKILL) counted as a restart with no counter going down, Redis replay store errors, session cookies minted / accepted / refused by reason, metrics_allow (403), GET only, config errors."""
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_auth_http import (GATEHOUSED, UIDS, Gatehoused, Raw, basic,  # noqa: E402,F401
                            cc, gssclient, realm)
from test_daemon_processes import kill_until_replaced, owner, wait_children  # noqa: E402

PROMTOOL = shutil.which('promtool')

pytestmark = [
    pytest.mark.skipif(not os.path.exists(GATEHOUSED), reason=f'{GATEHOUSED} not built'),
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root: impersonation at uids 20001-20003'),
    pytest.mark.skipif(PROMTOOL is None,
                       reason='promtool missing (Debian package prometheus: scripts/install-deps)'),
]

SITES = [
    ('/metrics', {'handler': 'metrics'}),
    ('/app', {'auth': 'negotiate basic anonymous', 'basic_over_plain_http': 'yes'}),
    ('/strict', {'auth': 'negotiate basic', 'basic_over_plain_http': 'yes'}),
    ('/hello', {'handler': 'fixed', 'body': 'hello'}),
    ('/scrape-from-10', {'handler': 'metrics', 'metrics_allow': '10.0.0.0/8 unix'}),
]

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@pytest.fixture(scope='module')
def gh(realm, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('ghm')
    kf = tmp / 'session.key'
    kf.write_text(os.urandom(32).hex() + '\n')
    kf.chmod(0o600)
    sess = ('/sess', {'auth': 'basic', 'basic_over_plain_http': 'yes', 'session': 'cookie',
                      'session_key_file': str(kf)})
    d = Gatehoused(realm, tmp, SITES + [sess], server={'processes': 2, 'workers': 2})
    d.start()
    wait_children(d.proc.pid, 2)
    yield d
    d.stop()


def parse(text):
    """{(name, ((label, value), ...)): float}, and {name: type}."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith('# TYPE '):
            _, _, name, typ = line.split(' ', 3)
            types[name] = typ
            continue
        if not line or line.startswith('#'):
            continue
        m = SAMPLE.match(line)
        assert m, line
        labels = tuple(sorted(LABEL.findall(m.group(2) or '')))
        key = (m.group(1), labels)
        assert key not in samples, f'duplicate sample {line}'
        samples[key] = float(m.group(3))
    return samples, types


def promtool_ok(text):
    r = subprocess.run([PROMTOOL, 'check', 'metrics'], input=text.encode(), capture_output=True,
                       timeout=30)
    assert r.returncode == 0, (r.stdout + r.stderr).decode() + '\n' + text


def scrape(gh, conn=None, path='/metrics'):
    """One scrape (on conn, or a new connection), validated by promtool."""
    c = conn or Raw(gh)
    st, hdrs, body = c.get(path)
    if conn is None:
        c.close()
    assert st == 200, (st, body)
    ctype = dict((k.lower(), v) for k, v in hdrs)['content-type']
    assert ctype.startswith('text/plain; version=0.0.4'), ctype
    promtool_ok(body)
    return parse(body)[0]


def v(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before, after, name, **labels):
    return v(after, name, **labels) - v(before, name, **labels)


def req(site, code):
    return ('gatehouse_http_requests_total', {'site': site, 'code': code})


def conns_on_both(gh, kids, tries=200):
    """Two keep-alive connections held by different worker processes."""
    seen = {}
    for _ in range(tries):
        c = Raw(gh)
        st, _, _ = c.get('/hello')
        assert st == 200
        o = owner(c, kids)
        assert o in kids
        if o not in seen:
            seen[o] = c
            if len(seen) == 2:
                return list(seen.values()), tries
        else:
            c.close()
    raise AssertionError(f'{tries} connections, all on {list(seen)}')


def test_counters_move_by_the_right_amounts_summed_over_both_processes(gh, realm, cc):
    kids = wait_children(gh.proc.pid, 2)
    before = scrape(gh)
    (c1, c2), _ = conns_on_both(gh, kids)
    # on process 1: a 404 (no site), a 401 (no credential), Basic success, Basic wrong password
    st, _, _ = c1.get('/nope')
    assert st == 404
    st, _, _ = c1.get('/strict')
    assert st == 401
    st, _, b = c1.get('/app', basic('alice', 'alicepw'))
    assert st == 200 and b['status'] == 'SUCCESS' and b['kernel_uid'] == UIDS['alice'], b
    st, _, b = c1.get('/app', basic('alice', 'wrong'))
    assert st == 200 and b['status'] == 'FAILURE', b
    # on process 2: Negotiate success, the same token again (a replay), a malformed Basic
    tok = gssclient(realm, cc['bob'], 'token', 'HTTP@localhost')['token']
    st, _, b = c2.get('/app', 'Negotiate ' + tok)
    assert st == 200 and b['status'] == 'SUCCESS' and b['kernel_uid'] == UIDS['bob'], b
    st, _, b = c2.get('/app', 'Negotiate ' + tok)
    assert st == 200 and b['status'] == 'FAILURE', b
    st, _, _ = c2.get('/strict', 'Basic !!!')
    assert st == 400
    for _ in range(3):
        assert c2.get('/hello')[0] == 200
    # a scrape through either process sees both processes' counts
    a1, a2 = scrape(gh, c1), scrape(gh, c2)
    for after in (a1, a2):
        d = lambda name, **lb: delta(before, after, name, **lb)  # noqa: E731
        assert d('gatehouse_http_requests_total', site='(none)', code='404') == 1
        assert d('gatehouse_http_requests_total', site='/strict', code='401') == 1
        assert d('gatehouse_http_requests_total', site='/strict', code='400') == 1
        assert d('gatehouse_http_requests_total', site='/app', code='200') == 4
        assert d('gatehouse_auth_attempts_total', scheme='basic', outcome='success') == 1
        assert d('gatehouse_auth_attempts_total', scheme='basic', outcome='failure') == 1
        assert d('gatehouse_auth_failures_total', scheme='basic', reason='BAD_PASSWORD') == 1
        assert d('gatehouse_auth_attempts_total', scheme='basic', outcome='malformed') == 1
        assert d('gatehouse_auth_attempts_total', scheme='negotiate', outcome='success') == 1
        assert d('gatehouse_auth_attempts_total', scheme='negotiate', outcome='failure') == 1
        assert d('gatehouse_auth_failures_total', scheme='negotiate', reason='REPLAY') == 1
        assert d('gatehouse_auth_replays_refused_total') == 1
        # the authinfo handler impersonates each successful client once
        assert d('gatehouse_impersonations_total') == 2
        assert d('gatehouse_http_request_duration_seconds_count', site='/app') == 4
        assert d('gatehouse_http_request_duration_seconds_bucket', site='/app', le='+Inf') == 4
        assert d('gatehouse_http_request_duration_seconds_sum', site='/app') > 0
        assert v(after, 'gatehouse_worker_processes') == 2
        assert v(after, 'gatehouse_connections_active') >= 2  # c1 and c2 are open
    # /hello: 3 on c2, plus one per connection opened to find the pair (at least 2)
    hello = delta(before, a2, 'gatehouse_http_requests_total', site='/hello', code='200')
    assert hello >= 5
    assert delta(before, a2, 'gatehouse_connections_total') >= 2
    # the first scrape through c1 counted in /metrics before the second one
    assert delta(a1, a2, 'gatehouse_http_requests_total', site='/metrics', code='200') == 1
    c1.close()
    c2.close()


def counters(samples, types):
    """The samples that must never go down: counters and histogram series."""
    out = {}
    for (name, labels), val in samples.items():
        base = re.sub(r'_(bucket|sum|count)$', '', name)
        if types.get(name) == 'counter' or types.get(base) == 'histogram':
            out[(name, labels)] = val
    return out


def test_worker_killed_counts_a_restart_and_no_counter_goes_down(gh):
    kids = wait_children(gh.proc.pid, 2)
    for _ in range(10):
        assert Raw(gh).get('/hello')[0] == 200
    c = Raw(gh)
    st, _, text = c.get('/metrics')
    c.close()
    assert st == 200
    promtool_ok(text)
    before = counters(*parse(text))
    kill_until_replaced(gh.proc.pid, kids)
    # the master counts the restart when it forks; the new worker answers once started
    for _ in range(100):
        st, _, text = Raw(gh).get('/metrics')
        samples, types = parse(text)
        if st == 200 and v(samples, 'gatehouse_worker_processes') == 2:
            break
        time.sleep(0.05)
    promtool_ok(text)
    assert v(samples, 'gatehouse_worker_restarts_total') - \
        before.get(('gatehouse_worker_restarts_total', ()), 0) == 1
    assert v(samples, 'gatehouse_worker_processes') == 2
    after = counters(samples, types)
    went_down = {k: (before[k], after.get(k)) for k in before if after.get(k, -1) < before[k]}
    assert not went_down, went_down
    # the dead process's /hello requests are still in the sum
    assert v(samples, 'gatehouse_http_requests_total', site='/hello', code='200') >= 10


def test_metrics_allow_and_method(gh):
    c = Raw(gh)
    st, _, body = c.get('/scrape-from-10')  # from 127.0.0.1: not in 10.0.0.0/8
    assert st == 403 and 'metrics_allow' in body, (st, body)
    c.close()
    u = Raw(gh, unix=True)  # "unix" is in its list, and loopback's default names it too
    st, _, body = u.get('/scrape-from-10')
    assert st == 200 and 'gatehouse_http_requests_total' in body
    assert scrape(gh, u) is not None
    u.close()
    c = Raw(gh)
    c.s.sendall(b'POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n')
    head = c.s.recv(4096).decode('latin-1')
    assert head.startswith('HTTP/1.1 405') and '\r\nAllow: GET\r\n' in head, head
    c.close()


@pytest.mark.parametrize('site,want', [
    ({'handler': 'fixed', 'metrics_allow': 'any'}, 'metrics_allow: only for handler = metrics'),
    ({'handler': 'metrics', 'metrics_allow': '300.1.1.1'}, "'300.1.1.1' is not loopback"),
    ({'handler': 'metrics', 'metrics_allow': '10.0.0.0/33'}, "'10.0.0.0/33' is not loopback"),
])
def test_config_errors(realm, tmp_path, site, want):
    d = Gatehoused(realm, tmp_path, [('/m', site)])
    r = subprocess.run([GATEHOUSED, '-t', '-c', d.conf], env=d.env, capture_output=True,
                       timeout=30)
    assert r.returncode != 0 and want in r.stderr.decode(), r.stderr.decode()
    shutil.rmtree(d.probe, ignore_errors=True)
    shutil.rmtree(d.sockdir, ignore_errors=True)


def test_replay_store_errors_and_503_counted(realm, cc, tmp_path):
    """Redis gone: the failed call is a replay-cache error, the request an auth
    step with outcome error and a 503 of its site."""
    from test_farm_replay import SITES as FARM_SITES, Redis, ask, node, token
    rd = Redis(str(tmp_path)).start()
    a = node(realm, tmp_path, 'a', {'replay_cache': rd.url},
             sites=FARM_SITES + [('/metrics', {'handler': 'metrics'})]).start()
    try:
        st, body = ask(a, token(realm, cc['alice']))
        assert st == 200 and body['status'] == 'SUCCESS', (st, body)
        before = scrape(a)
        assert v(before, 'gatehouse_replay_cache_errors_total') == 0
        rd.stop()
        st, body = ask(a, token(realm, cc['carol']))
        assert st == 503 and 'replay cache unreachable' in body, (st, body)
        after = scrape(a)
        assert delta(before, after, 'gatehouse_replay_cache_errors_total') >= 1
        assert delta(before, after, 'gatehouse_auth_attempts_total', scheme='negotiate',
                     outcome='error') == 1
        assert delta(before, after, 'gatehouse_http_requests_total', site='/', code='503') == 1
        assert v(after, 'gatehouse_worker_processes') == 1
    finally:
        a.stop()
        rd.stop()


def test_session_cookies_minted_accepted_refused(gh):
    """The session counters move through the session path's one decision point, summed
    over both processes: a Basic logon mints, the cookie on three new connections is
    accepted three times, a changed byte is refused as invalid, garbage as malformed."""
    before = scrape(gh)
    c = Raw(gh)
    st, hdrs, b = c.get('/sess', basic('alice', 'alicepw'))
    c.close()
    assert st == 200 and b['status'] == 'SUCCESS', b
    sc = [v for k, v in hdrs if k.lower() == 'set-cookie']
    assert len(sc) == 1 and sc[0].startswith('gh_session='), hdrs
    value = sc[0].split(';', 1)[0].split('=', 1)[1]
    tampered = value[:20] + ('A' if value[20] != 'A' else 'B') + value[21:]
    for cookie, want in ((value, 200), (value, 200), (value, 200), (tampered, 401),
                         ('!!not-base64!!', 401)):
        c = Raw(gh)
        st, _, b = c.get('/sess', headers=[('Cookie', f'gh_session={cookie}')])
        c.close()
        assert st == want, (cookie, st, b)
        if want == 200:
            assert b['status'] == 'SUCCESS' and b['kernel_uid'] == UIDS['alice'], b
    after = scrape(gh)
    assert delta(before, after, 'gatehouse_sessions_minted_total') == 1
    assert delta(before, after, 'gatehouse_sessions_accepted_total') == 3
    assert delta(before, after, 'gatehouse_sessions_refused_total', reason='invalid') == 1
    assert delta(before, after, 'gatehouse_sessions_refused_total', reason='malformed') == 1
