"""pipeline_helpers.py: helpers for the module and daemon tests — gatehoused with the realm's environment and the build's modules, curl as a realm user, file trees owned by realm users."""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get('GH_BUILD_DIR', os.path.join(ROOT, 'build'))
GATEHOUSED = os.path.join(BUILD, 'gatehoused')
MODULES = os.path.join(BUILD, 'modules')
# name: (uid, primary gid); ghusers (30010) = alice, bob
USERS = {'alice': (20001, 30001), 'bob': (20002, 30002), 'carol': (20003, 30003)}
GHUSERS = 30010

# make check-valgrind: gatehoused runs under memcheck (GH_DAEMON_WRAPPER); timing checks skip
UNDER_VALGRIND = bool(os.environ.get('GH_UNDER_VALGRIND'))
needs_daemon = pytest.mark.skipif(not os.path.exists(GATEHOUSED), reason=f'{GATEHOUSED} not built')
needs_root = pytest.mark.skipif(
    os.geteuid() != 0,
    reason='needs root: the daemon impersonates realm users (uids 20001-20003) and the tests '
           'chown files to them')
BASIC = {'auth': 'basic anonymous', 'basic_over_plain_http': 'yes'}


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def shared_dir(prefix='gh-pl-'):
    """A 0755 directory under /tmp (pytest's tmp dirs are 0700 root: the
    impersonated users could not reach anything inside)."""
    d = tempfile.mkdtemp(prefix=prefix, dir='/tmp')
    os.chmod(d, 0o755)
    return d


def write_owned(path, text, user=None, mode=0o600):
    """A file owned by a realm user (root when user is None)."""
    with open(path, 'w') as f:
        f.write(text)
    if user:
        uid, gid = USERS[user]
        os.chown(path, uid, gid)
    os.chmod(path, mode)
    return path


class Result:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    @property
    def text(self):
        return self.body.decode('utf-8', 'replace')

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def __repr__(self):
        return f'<Result {self.status} {self.headers} {self.body[:300]!r}>'


def curl(url, user=None, password=None, unix=None, as_user=None, method=None, data=None,
         headers=None, extra=None, env=None, timeout=30, groups=None):
    """curl once; Basic auth with user/password (password defaults to the
    realm's <user>pw); over a unix socket with unix=PATH; run as a realm
    user (peer credentials) with as_user=NAME, with the supplementary gids
    `groups` (none by default)."""
    args = ['curl', '-sS', '--path-as-is', '-D', '-', '--max-time', str(timeout)]
    if user:
        args += ['-u', f'{user}:{password if password is not None else user + "pw"}']
    if unix:
        args += ['--unix-socket', unix]
    if method:
        args += ['-X', method]
    if data is not None:
        args += ['--data-binary', '@-']
    for k, v in (headers or {}).items():
        args += ['-H', f'{k}: {v}']
    args += list(extra or []) + [url]
    kw = {}
    if as_user:
        uid, gid = USERS[as_user]
        kw = {'user': uid, 'group': gid, 'extra_groups': list(groups or [])}
    e = dict(env or os.environ)
    e.pop('LD_PRELOAD', None)
    p = subprocess.run(args, input=data if isinstance(data, bytes) else (data or '').encode(),
                       capture_output=True, timeout=timeout + 10, env=e, **kw)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    # the last head is the answer (100 Continue, 401 legs)
    pos = 0
    while True:
        end = out.index(b'\r\n\r\n', pos)
        head, body = out[pos:end].decode('latin-1'), out[end + 4:]
        if not body.startswith(b'HTTP/1.'):
            break
        pos = end + 4
    lines = head.split('\r\n')
    status = int(lines[0].split()[1])
    hdrs = [tuple(x.split(': ', 1)) for x in lines[1:] if ': ' in x]
    return Result(status, hdrs, body)


class GhDaemon:
    """gatehoused -f with a generated config, the realm's server environment
    (nss_wrapper users, pam_wrapper, keytab) and the build's modules.

    sites: list of (prefix, {key: value or [values]}).
    server: extra [server] keys. sections: {'module static': {...}} extra sections.
    """

    def __init__(self, realm, sites, server=None, sections=None, env=None, unix=True,
                 module_dir=MODULES, realm_keys=True):
        self.realm = realm
        self.dir = shared_dir('gh-daemon-')
        self.port = free_port()
        self.unix = os.path.join(self.dir, 'gh.sock') if unix else None
        self.conf = os.path.join(self.dir, 'gatehouse.conf')
        self.errpath = os.path.join(self.dir, 'stderr.log')
        self.sites, self.sections = sites, sections or {}
        self.server = {'workers': 4}
        if module_dir:
            self.server['module_dir'] = module_dir
        if realm and realm_keys:
            self.server.update({'keytab': realm.keytab, 'ntlm_user_file': realm.ntlm_user_file,
                                'pam_service': 'gatehouse', 'ccache_dir': realm.ccache_dir,
                                'min_uid': 1000})
        self.server.update(server or {})
        self.env = realm.env() if realm else dict(os.environ)
        self.env.update(env or {})
        self.proc = None
        self.err = None
        self.write()

    def write(self, sites=None, server=None, sections=None):
        if sites is not None:
            self.sites = sites
        if server is not None:
            self.server.update(server)
        if sections is not None:
            self.sections = sections
        lines = ['[server]', f'listen = 127.0.0.1:{self.port}']
        if self.unix:
            lines.append(f'listen = unix:{self.unix}')

        def keys(d):
            for k, v in d.items():
                if v is None:
                    continue
                for one in (v if isinstance(v, list) else [v]):
                    lines.append(f'{k} = {one}')
        keys(self.server)
        for prefix, ks in self.sites:
            lines += ['', f'[site {prefix}]']
            keys(ks)
        for name, ks in self.sections.items():
            lines += ['', f'[{name}]']
            keys(ks)
        with open(self.conf, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        return self.conf

    def check(self):
        """gatehoused -t: (exit code, stderr)."""
        p = subprocess.run([GATEHOUSED, '-t', '-c', self.conf], env=self.env,
                           capture_output=True, text=True, timeout=30)
        return p.returncode, p.stderr

    def start(self, expect_fail=False, timeout=20):
        self.err = open(self.errpath, 'wb')
        # GH_DAEMON_WRAPPER: a command prefix (make check-valgrind: valgrind ...); slower start
        wrapper = os.environ.get('GH_DAEMON_WRAPPER', '').split()
        self.proc = subprocess.Popen(wrapper + [GATEHOUSED, '-f', '-c', self.conf], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=self.err)
        deadline = time.monotonic() + timeout * (6 if wrapper else 1)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if expect_fail:
                    return self.proc.returncode
                raise RuntimeError(f'gatehoused exited {self.proc.returncode}: {self.log()}')
            if 'ready (' in self.log():
                if expect_fail:
                    raise RuntimeError('gatehoused started: ' + self.log())
                return self
            time.sleep(0.02)
        raise RuntimeError('gatehoused not ready: ' + self.log())

    def log(self):
        try:
            with open(self.errpath, errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def reload(self, sites=None, server=None, sections=None, timeout=10):
        """Rewrites the config and sends SIGHUP; returns the log lines the reload produced."""
        self.write(sites, server, sections)
        before = self.log()
        n = before.count('configuration reloaded') + before.count('reload refused')
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.log()
            if now.count('configuration reloaded') + now.count('reload refused') > n:
                return now[len(before):]
            time.sleep(0.02)
        raise RuntimeError('no reload message: ' + self.log())

    def url(self, path='/'):
        return f'http://127.0.0.1:{self.port}{path}'

    def get(self, path, **kw):
        if kw.get('unix'):
            kw['unix'] = self.unix
            return curl(f'http://localhost{path}', **kw)
        return curl(self.url(path), **kw)

    def stop(self):
        rc = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                # valgrind's leak check at exit takes a while
                rc = self.proc.wait(90 if UNDER_VALGRIND else 15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
        if self.err:
            self.err.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        return rc


CLF_RE = re.compile(r'^(\S+) - (\S+) \[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] '
                    r'"([^"]*)" (\d{3}) (\d+|-) "([^"]*)" "([^"]*)"$')


def build_module(src_text, name, tmpdir):
    """Compiles a module .so against the source tree's headers (cc -shared)."""
    c = os.path.join(tmpdir, name + '.c')
    so = os.path.join(tmpdir, name + '.so')
    with open(c, 'w') as f:
        f.write(src_text)
    inc = os.path.join(ROOT, 'include')
    subprocess.run(['cc', '-shared', '-fPIC', '-std=gnu11', '-I', inc, '-I', BUILD, '-o', so, c],
                   check=True, capture_output=True, text=True)
    return so
