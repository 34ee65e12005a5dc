"""test_module_cgi.py: the cgi module in the real daemon — the script runs as the client (real, effective, saved, fs ids and groups from /proc/self/status), CGI variables, body streamed in, timeout kills the child (DESIGN.md §2 item 19)."""
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gh_realm import realm  # noqa: E402,F401
from pipeline_helpers import (BASIC, GHUSERS, USERS, GhDaemon, curl, needs_daemon,  # noqa: E402
                              needs_root, shared_dir, write_owned)

pytestmark = [needs_daemon, needs_root]

IDS = r'''#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
grep -E '^(Uid|Gid|Groups):' /proc/self/status
echo "REMOTE_USER=$REMOTE_USER"
echo "AUTH_TYPE=$AUTH_TYPE"
echo "LOGON_USER=$LOGON_USER"
echo "REQUEST_METHOD=$REQUEST_METHOD"
echo "CONTENT_LENGTH=$CONTENT_LENGTH"
echo "PATH_INFO=$PATH_INFO"
echo "QUERY_STRING=$QUERY_STRING"
echo "KRB5CCNAME=$KRB5CCNAME"
cc=${KRB5CCNAME#FILE:}
[ -n "$KRB5CCNAME" ] && [ -r "$cc" ] && echo "CCACHE_OWNER=$(stat -c %u "$cc")"
echo "BODY=$(cat)"
'''
SLOW = r'''#!/bin/sh
echo $$ > "$(dirname "$SCRIPT_FILENAME")/../pids/slow.pid"
exec sleep 30
printf 'Content-Type: text/plain\r\n\r\nlate\n'
'''
STATUS = r'''#!/bin/sh
printf 'Status: 201 Created\r\nX-Made-By: cgi\r\nContent-Type: text/plain\r\n\r\nmade\n'
'''


@pytest.fixture(scope='module')
def gh(realm):  # noqa: F811
    base = shared_dir('gh-cgi-')
    bin_ = os.path.join(base, 'bin')
    os.mkdir(bin_, 0o755)
    os.mkdir(os.path.join(base, 'pids'), 0o1777)
    os.chmod(os.path.join(base, 'pids'), 0o1777)
    write_owned(os.path.join(bin_, 'ids'), IDS, None, 0o755)
    write_owned(os.path.join(bin_, 'slow'), SLOW, None, 0o755)
    write_owned(os.path.join(bin_, 'status'), STATUS, None, 0o755)
    write_owned(os.path.join(bin_, 'bobs'), IDS, 'bob', 0o700)  # only bob may run it
    ccdir = os.path.join(base, 'ccaches')
    os.mkdir(ccdir)
    os.chmod(ccdir, 0o711)
    d = GhDaemon(realm, [('/cgi-bin', dict(BASIC, handler='cgi', root=bin_, cgi_timeout=2)),
                         ('/krb', {'handler': 'cgi', 'root': bin_, 'auth': 'negotiate'})],
                 # clients must be able to traverse ccache_dir to reach their own 0700 dir
                 server={'ccache_dir': ccdir})
    d.start()
    d.base = base
    yield d
    d.stop()
    import shutil
    shutil.rmtree(base, ignore_errors=True)


def parse(text):
    out = {}
    for line in text.splitlines():
        if ':' in line and line.split(':')[0] in ('Uid', 'Gid', 'Groups'):
            k, v = line.split(':', 1)
            out[k] = v.split()
        elif '=' in line:
            k, v = line.split('=', 1)
            out[k] = v
    return out


def test_script_runs_as_the_client(gh):
    r = gh.get('/cgi-bin/ids/extra/path?q=1', user='alice')
    assert r.status == 200, r
    v = parse(r.text)
    uid, gid = USERS['alice']
    assert v['Uid'] == [str(uid)] * 4, r.text     # real, effective, saved, fs
    assert v['Gid'] == [str(gid)] * 4, r.text
    assert sorted(int(g) for g in v['Groups']) == sorted({gid, GHUSERS}), r.text
    assert v['REMOTE_USER'] == 'alice' and v['AUTH_TYPE'] == 'Basic'
    assert v['LOGON_USER'] == 'alice'
    assert v['PATH_INFO'] == '/extra/path' and v['QUERY_STRING'] == 'q=1'


def test_body_streamed_in(gh):
    body = 'x' * 5000 + 'END'
    r = gh.get('/cgi-bin/ids', user='bob', data=body)
    v = parse(r.text)
    assert r.status == 200 and v['REQUEST_METHOD'] == 'POST', r
    assert v['CONTENT_LENGTH'] == str(len(body)) and v['BODY'] == body
    assert v['Uid'] == [str(USERS['bob'][0])] * 4


def test_output_headers_parsed(gh):
    r = gh.get('/cgi-bin/status', user='carol')
    assert r.status == 201 and r.header('X-Made-By') == 'cgi' and r.body == b'made\n', r


def test_kernel_refuses_script_of_another_user(gh):
    assert gh.get('/cgi-bin/bobs', user='alice').status == 403
    assert gh.get('/cgi-bin/bobs', user='bob').status == 200


def test_anonymous_never_runs_a_script(gh):
    assert gh.get('/cgi-bin/ids').status == 401


def test_missing_script_404(gh):
    assert gh.get('/cgi-bin/nope', user='alice').status == 404


def test_timeout_kills_the_child(gh):
    t0 = time.monotonic()
    r = gh.get('/cgi-bin/slow', user='alice')
    assert r.status == 504, r
    assert time.monotonic() - t0 < 10
    pid = int(open(os.path.join(gh.base, 'pids', 'slow.pid')).read())
    deadline = time.monotonic() + 5
    while os.path.exists(f'/proc/{pid}') and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f'/proc/{pid}'), 'the timed-out script is still running'
    assert 'killed after' in gh.log()


def test_delegated_ticket_in_krb5ccname(gh, realm):  # noqa: F811
    env = realm.kinit('alice', forwardable=True)
    r = curl(f'http://localhost:{gh.port}/krb/ids', env=env,
             extra=['--negotiate', '-u', ':', '--delegation', 'always'])
    assert r.status == 200, r
    v = parse(r.text)
    assert v['REMOTE_USER'].startswith('alice') and v['LOGON_USER'] == 'alice'
    assert v['KRB5CCNAME'].startswith('FILE:'), r.text
    # the script (running as alice) can read its ccache: the file is hers
    assert v.get('CCACHE_OWNER') == str(USERS['alice'][0]), r.text
    # without delegation there is no KRB5CCNAME
    r = curl(f'http://localhost:{gh.port}/krb/ids', env=env, extra=['--negotiate', '-u', ':'])
    assert parse(r.text)['KRB5CCNAME'] == ''
