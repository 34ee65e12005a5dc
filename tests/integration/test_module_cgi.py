"""test_module_cgi.py: the cgi module in the real daemon — the script runs as the client (real, effective, saved, fs ids and groups from /proc/self/status), CGI variables, the script's own directory as working directory (entered as the client), body streamed in, timeout kills the child (DESIGN.md §2 item 19)."""
import os
import shutil
import subprocess
import sys
import threading
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
# The delegated ccache as the script (the client) sees it; then it publishes the path and
# waits (up to 10 s) for the test to say it has tried the ccache as another user.
DELEG = r'''#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
echo "UID=$(id -u)"
echo "KRB5CCNAME=$KRB5CCNAME"
cc=${KRB5CCNAME#FILE:}
if [ -n "$KRB5CCNAME" ]; then
  echo "FILE_STAT=$(stat -c '%u %a' "$cc" 2>&1)"
  echo "DIR_STAT=$(stat -c '%u %a' "$(dirname "$cc")" 2>&1)"
  if klist -s "$KRB5CCNAME"; then echo "KLIST=ok"; else echo "KLIST=fail"; fi
  echo "PRINCIPAL=$(klist "$KRB5CCNAME" 2>/dev/null | sed -n 's/^Default principal: //p')"
  pids="$(dirname "$SCRIPT_FILENAME")/../pids"
  if [ -n "$QUERY_STRING" ]; then
    echo "$cc" > "$pids/$QUERY_STRING.path"
    i=0
    while [ ! -e "$pids/$QUERY_STRING.done" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
  fi
fi
'''
# Where the script runs (RFC 3875 7.2: its own directory) and what relative paths reach from there.
PWD = r'''#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
echo "PWD=$(pwd -P)"
echo "DATA=$(cat data.txt 2>&1)"
echo "SUB=$(cat sub/more.txt 2>&1)"
echo "UP=$(cat ../up.txt 2>&1)"
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
    write_owned(os.path.join(bin_, 'deleg'), DELEG, None, 0o755)
    write_owned(os.path.join(bin_, 'bobs'), IDS, 'bob', 0o700)  # only bob may run it
    # app/pwd reads files next to it, below it and above it (relative paths)
    app = os.path.join(bin_, 'app')
    os.makedirs(os.path.join(app, 'sub'), 0o755)
    write_owned(os.path.join(app, 'pwd'), PWD, None, 0o755)
    write_owned(os.path.join(app, 'data.txt'), 'next to the script\n', None, 0o644)
    write_owned(os.path.join(app, 'sub', 'more.txt'), 'below the script\n', None, 0o644)
    write_owned(os.path.join(bin_, 'up.txt'), 'above the script\n', None, 0o644)
    write_owned(os.path.join(bin_, 'data.txt'), 'the site root, not the script directory\n', None, 0o644)
    # a directory the service (root without CAP_DAC_OVERRIDE: the owner) and bob's group may
    # enter, alice may not, holding a script anybody could run
    bobdir = os.path.join(bin_, 'bobdir')
    os.mkdir(bobdir)
    os.chown(bobdir, 0, USERS['bob'][1])
    os.chmod(bobdir, 0o710)
    write_owned(os.path.join(bobdir, 'pwd'), PWD, None, 0o755)
    write_owned(os.path.join(bobdir, 'data.txt'), 'bob only\n', 'bob', 0o600)
    write_owned(os.path.join(bin_, 'badinterp'), '#!/nonexistent/sh\necho never\n', None, 0o755)
    # created by the daemon (1733: clients make their private directories in it)
    ccdir = os.path.join(base, 'ccaches')
    d = GhDaemon(realm, [('/cgi-bin', dict(BASIC, handler='cgi', root=bin_, cgi_timeout=2)),
                         ('/krb', {'handler': 'cgi', 'root': bin_, 'auth': 'negotiate'})],
                 server={'ccache_dir': ccdir})
    d.start()
    d.base, d.ccdir, d.bin = base, ccdir, bin_
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


@pytest.mark.parametrize('path', ['/cgi-bin/app/pwd', '/cgi-bin/app/pwd/extra/path?x=1'])
def test_script_runs_in_its_own_directory(gh, path):
    """RFC 3875 7.2 (and Apache): the working directory is the script's, whatever the PATH_INFO;
    relative paths resolve from there, not from the daemon's or the site root's directory."""
    r = gh.get(path, user='alice')
    assert r.status == 200, r
    v = parse(r.text)
    assert v['PWD'] == os.path.realpath(os.path.join(gh.bin, 'app')), r.text
    assert v['DATA'] == 'next to the script', r.text
    assert v['SUB'] == 'below the script', r.text
    assert v['UP'] == 'above the script', r.text


def test_script_directory_entered_as_the_client(gh):
    """The chdir happens as the client, after the identity switch: a directory only bob may
    enter is bob's working directory, and alice is refused (403) with a log line naming it."""
    r = gh.get('/cgi-bin/bobdir/pwd', user='bob')
    assert r.status == 200, r
    v = parse(r.text)
    assert v['PWD'] == os.path.realpath(os.path.join(gh.bin, 'bobdir')), r.text
    assert v['DATA'] == 'bob only', r.text
    before = gh.log().count('cgi: ')
    r = gh.get('/cgi-bin/bobdir/pwd', user='alice')
    assert r.status == 403, r
    deadline = time.monotonic() + 5
    while gh.log().count('cgi: ') == before and time.monotonic() < deadline:
        time.sleep(0.05)
    line = [ln for ln in gh.log().splitlines() if 'bobdir/pwd' in ln and 'as alice' in ln]
    assert line and 'bobdir' in line[-1] and 'denied' in line[-1].lower(), gh.log()[-2000:]


def test_script_that_cannot_start_is_500_with_a_log_line(gh):
    """A failure in the child that is not the kernel refusing the client (here execve ENOENT:
    the interpreter is missing) is the server's: 500, and the log names script, client,
    directory and error."""
    r = gh.get('/cgi-bin/badinterp', user='carol')
    assert r.status == 500, r
    deadline = time.monotonic() + 5
    while 'badinterp' not in gh.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    line = [ln for ln in gh.log().splitlines() if 'badinterp' in ln and 'as carol' in ln]
    assert line and f'in {gh.bin}' in line[-1] and 'No such file' in line[-1], gh.log()[-2000:]


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


# ---- delegated credentials: a FILE ccache made, read and removed as the client ----

SVC_UID, SVC_GID = 20100, 30100


def deleg_request(d, realm, tag):  # noqa: F811
    """curl --negotiate --delegation always to the deleg script; while the script (alice)
    waits, bob tries to read the ccache and to list ccache_dir. Returns (result, ccache path,
    bob's outcome)."""
    env = realm.kinit('alice', forwardable=True)
    pids = os.path.join(d.base, 'pids')
    box = {}

    def run():
        box['r'] = curl(f'http://localhost:{d.port}/krb/deleg?{tag}', env=env,
                        extra=['--negotiate', '-u', ':', '--delegation', 'always'])
    t = threading.Thread(target=run)
    t.start()
    path_file = os.path.join(pids, tag + '.path')
    cc, other = None, None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and t.is_alive():
        if os.path.exists(path_file):
            text = open(path_file).read()
            if text.endswith('\n'):
                cc = text.strip()
                break
        time.sleep(0.05)
    if cc:
        bob = USERS['bob']
        p = subprocess.run(['/bin/sh', '-c', 'cat "$1" >/dev/null 2>&1 && echo READ || echo DENIED;'
                            ' ls "$2" >/dev/null 2>&1 && echo LISTED || echo NOLIST;'
                            ' ls "$(dirname "$1")" >/dev/null 2>&1 && echo DIRLISTED || echo NODIR',
                            'sh', cc, d.ccdir], user=bob[0], group=bob[1], extra_groups=[],
                           capture_output=True, text=True, timeout=10)
        other = p.stdout.split()
    open(os.path.join(pids, tag + '.done'), 'w').close()
    t.join(30)
    return box.get('r'), cc, other


def check_delegation(d, realm, tag):  # noqa: F811
    r, cc, other = deleg_request(d, realm, tag)
    assert r is not None and r.status == 200, (r, d.log())
    v = parse(r.text)
    alice = USERS['alice'][0]
    assert v['UID'] == str(alice), r.text
    assert v['KRB5CCNAME'] == 'FILE:' + cc and cc.startswith(d.ccdir + '/'), r.text
    # the ccache is the client's own: file 0600 and its private directory 0700, owner alice
    assert v['FILE_STAT'] == f'{alice} 600', r.text
    assert v['DIR_STAT'] == f'{alice} 700', r.text
    assert v['KLIST'] == 'ok' and v['PRINCIPAL'] == 'alice@' + realm.realm, r.text
    # another user can neither read it, nor list its directory, nor list ccache_dir
    assert other == ['DENIED', 'NOLIST', 'NODIR'], other
    # the request is over: file and directory are gone
    deadline = time.monotonic() + 5
    while os.path.exists(os.path.dirname(cc)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(cc) and not os.path.exists(os.path.dirname(cc))
    assert os.listdir(d.ccdir) == []
    st = os.stat(d.ccdir)
    assert st.st_mode & 0o7777 == 0o1733, oct(st.st_mode)


def test_delegated_ccache_is_the_clients_and_removed_root_mode(gh, realm):  # noqa: F811
    # root mode: every thread holds only CAP_SETUID/CAP_SETGID (no CHOWN, no DAC_OVERRIDE)
    for tid in os.listdir(f'/proc/{gh.proc.pid}/task'):
        st = dict(line.split(':', 1) for line in open(f'/proc/{gh.proc.pid}/task/{tid}/status'))
        assert st['Uid'].split() == ['0'] * 4
        for k in ('CapPrm', 'CapEff', 'CapBnd'):
            assert int(st[k], 16) == 0xc0, (tid, k, st[k])
    check_delegation(gh, realm, 'root')
    assert 'ccache' not in gh.log(), gh.log()   # no cleanup failure logged


@pytest.fixture(scope='module')
def gh_svc(realm, gh):  # noqa: F811
    """The daemon started as root with [server] user = ghsvc (only CAP_SETUID/CAP_SETGID):
    keytab and ccache_dir belong to ghsvc."""
    base = shared_dir('gh-cgi-svc-')
    shutil.copytree(os.path.join(gh.base, 'bin'), os.path.join(base, 'bin'), symlinks=True)
    os.mkdir(os.path.join(base, 'pids'))
    os.chmod(os.path.join(base, 'pids'), 0o1777)
    pw, gr = os.path.join(base, 'passwd'), os.path.join(base, 'group')
    with open(pw, 'w') as f:
        f.write(open(realm.passwd).read() + f'ghsvc:x:{SVC_UID}:{SVC_GID}:svc:/:/bin/false\n')
    with open(gr, 'w') as f:
        f.write(open(realm.group).read() + f'ghsvc:x:{SVC_GID}:\n')
    kt = os.path.join(base, 'http.keytab')
    shutil.copy(realm.keytab, kt)
    os.chown(kt, SVC_UID, SVC_GID)
    os.chmod(kt, 0o600)
    ccdir = os.path.join(base, 'ccaches')
    os.mkdir(ccdir, 0o700)
    os.chown(ccdir, SVC_UID, SVC_GID)
    d = GhDaemon(realm, [('/krb', {'handler': 'cgi', 'root': os.path.join(base, 'bin'),
                                   'auth': 'negotiate'})],
                 server={'user': 'ghsvc', 'keytab': kt, 'ntlm_user_file': None,
                         'ccache_dir': ccdir},
                 env={'NSS_WRAPPER_PASSWD': pw, 'NSS_WRAPPER_GROUP': gr})
    d.start()
    d.base, d.ccdir = base, ccdir
    yield d
    d.stop()
    shutil.rmtree(base, ignore_errors=True)


def test_delegated_ccache_is_the_clients_and_removed_service_user_mode(gh_svc, realm):  # noqa: F811
    st = [line for line in open(f'/proc/{gh_svc.proc.pid}/status') if line.startswith('Uid')]
    assert st[0].split()[1:] == [str(SVC_UID)] * 4, st
    check_delegation(gh_svc, realm, 'svc')
    assert 'ccache' not in gh_svc.log(), gh_svc.log()


@pytest.mark.parametrize('case', ['world-writable', 'group-writable', 'other-owner', 'symlink'])
def test_unsafe_ccache_dir_refused_at_start(realm, case):  # noqa: F811
    base = shared_dir('gh-cgi-ccdir-')
    ccdir = os.path.join(base, 'ccaches')
    if case == 'symlink':
        os.mkdir(os.path.join(base, 'real'), 0o700)
        os.chmod(os.path.join(base, 'real'), 0o1733)
        os.symlink(os.path.join(base, 'real'), ccdir)
    else:
        os.mkdir(ccdir)
        os.chmod(ccdir, {'world-writable': 0o777, 'group-writable': 0o770,
                         'other-owner': 0o1733}[case])
        if case == 'other-owner':
            os.chown(ccdir, *USERS['bob'][:2])
    d = GhDaemon(realm, [('/krb', {'handler': 'fixed', 'body': 'x', 'auth': 'negotiate'})],
                 server={'ccache_dir': ccdir})
    try:
        assert d.start(expect_fail=True) != 0
        log = d.log()
        assert f'ccache_dir {ccdir}:' in log, log
        assert {'world-writable': 'without the sticky bit', 'group-writable': 'without the sticky bit',
                'other-owner': f'owned by uid {USERS["bob"][0]}',
                'symlink': 'not a directory'}[case] in log, log
        # refused, never "repaired"
        assert os.lstat(ccdir).st_mode & 0o7777 != 0o1733 or case in ('other-owner', 'symlink')
    finally:
        shutil.rmtree(base, ignore_errors=True)
