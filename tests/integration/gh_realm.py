#!/usr/bin/python3
"""gh_realm.py: throwaway MIT realm + nss_wrapper + pam_wrapper/pam_matrix + gss-ntlmssp users for tests.

A k5test-like harness. One GhRealm owns a temp dir with:
  - krb5.conf / kdc.conf (free loopback port), a KDB created with kdb5_util,
    principals alice/bob/carol (passwords <user>pw), dave (no local account),
    HTTP/localhost and HTTP/www.gh.test in a keytab (HTTP/other.gh.test exists
    in the KDC but not in the keytab), krb5kdc -n started and stopped;
  - nss_wrapper passwd/group files (alice 20001, bob 20002, carol 20003,
    groups 30001..30003 plus ghusers 30010 = alice,bob);
  - pam_wrapper service dir with a "gatehouse" service using pam_matrix and a
    passdb (alice, bob, carol);
  - a gss-ntlmssp user file (GH:alice:alicepw ...).

Use:
  as pytest fixtures (session scope): from gh_realm import realm  (see fixture
  at the bottom; conftest imports are not needed: `pytest_plugins` or direct
  import works);
  from scripts: `python3 tests/integration/gh_realm.py --shell` prints export
  lines and keeps the KDC running until killed (Ctrl-C or SIGTERM).

realm.env()            environment for a server process (wrappers, krb5, keytab)
realm.kinit(user, ...) returns a client environment with KRB5CCNAME set
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REALM = 'GH.TEST'
NTLM_DOMAIN = 'GH'
USERS = {
    # name: (uid, gid, password)
    'alice': (20001, 30001, 'alicepw'),
    'bob': (20002, 30002, 'bobpw'),
    'carol': (20003, 30003, 'carolpw'),
}
UNMAPPED = ('dave', 'davepw')   # in the KDC and NTLM file, no local account
SPNS = ['HTTP/localhost', 'HTTP/www.gh.test']
OTHER_SPN = 'HTTP/other.gh.test'  # in the KDC, not in the keytab
LIBDIR = '/usr/lib/x86_64-linux-gnu'
NSS_WRAPPER = LIBDIR + '/libnss_wrapper.so'
PAM_WRAPPER = LIBDIR + '/libpam_wrapper.so'
PAM_MATRIX = LIBDIR + '/pam_wrapper/pam_matrix.so'
PAM_SERVICE = 'gatehouse'


def free_port():
    """A loopback port free for both TCP and UDP (the KDC listens on both)."""
    for _ in range(50):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind(('127.0.0.1', 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(('127.0.0.1', port))
        except OSError:
            t.close()
            continue
        finally:
            u.close()
        t.close()
        return port
    raise RuntimeError('no free loopback port')


class GhRealm:
    def __init__(self, base=None, start_kdc=True, extra_users=None, extra_groups=None):
        """extra_users: {name: (uid, gid, password)} added to the KDC, NSS, PAM and NTLM
        files (a group <name> with that gid is created); extra_groups: more group-file
        lines, e.g. 'soak:x:30011:carol,erin'."""
        self.dir = tempfile.mkdtemp(prefix='gh-realm-', dir=base)
        os.chmod(self.dir, 0o755)
        self.realm = REALM
        self.ntlm_domain = NTLM_DOMAIN
        self.users = dict(USERS)
        self.users.update(extra_users or {})
        self.extra_groups = list(extra_groups or [])
        self.kdc_port = free_port()
        self.krb5_conf = self.path('krb5.conf')
        self.kdc_conf = self.path('kdc.conf')
        self.keytab = self.path('http.keytab')
        self.ntlm_user_file = self.path('ntlm.users')
        self.passwd = self.path('passwd')
        self.group = self.path('group')
        self.pam_dir = self.path('pam.d')
        self.pam_passdb = self.path('pam_matrix.passdb')
        self.rcache_dir = self.path('rcache')
        self.ccache_dir = self.path('ccaches')
        self.kdc_proc = None
        self._write_files()
        self._create_kdb()
        if start_kdc:
            self.start_kdc()

    # ---- paths and environments ----
    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def password(self, user):
        if user == UNMAPPED[0]:
            return UNMAPPED[1]
        return self.users[user][2]

    def base_env(self):
        env = dict(os.environ)
        env.update({
            'KRB5_CONFIG': self.krb5_conf,
            'KRB5_KDC_PROFILE': self.kdc_conf,
            'KRB5RCACHEDIR': self.rcache_dir,
        })
        env.pop('KRB5CCNAME', None)
        env.pop('KRB5_KTNAME', None)
        env.pop('KRB5_CLIENT_KTNAME', None)
        return env

    def env(self, preload=True):
        """Environment for a server process: krb5 profile, keytab, wrappers."""
        env = self.base_env()
        env.update({
            'GH_KEYTAB': self.keytab,
            'GH_NTLM_USER_FILE': self.ntlm_user_file,
            'GH_PAM_SERVICE': PAM_SERVICE,
            'GH_REALM': self.realm,
            'GH_REALM_DIR': self.dir,
            'GH_CCACHE_DIR': self.ccache_dir,
            'NSS_WRAPPER_PASSWD': self.passwd,
            'NSS_WRAPPER_GROUP': self.group,
            'PAM_WRAPPER': '1',
            'PAM_WRAPPER_SERVICE_DIR': self.pam_dir,
            'PAM_MATRIX_PASSWD': self.pam_passdb,
            # nss_wrapper dlopens libc with RTLD_DEEPBIND, which ASan refuses
            'NSS_WRAPPER_DISABLE_DEEPBIND': '1',
            # pam_wrapper reads this (sic) name for the same switch
            'UID_WRAPPER_DISABLE_DEEPBIND': '1',
            'PAM_WRAPPER_DISABLE_DEEPBIND': '1',
            # the server process must not pick up a client ccache by accident
            'KRB5CCNAME': 'FILE:' + self.path('server-ccache-must-not-exist'),
        })
        if preload:
            pre = [NSS_WRAPPER, PAM_WRAPPER]
            old = env.get('LD_PRELOAD')
            env['LD_PRELOAD'] = ':'.join(pre + ([old] if old else []))
        return env

    def kinit(self, user, forwardable=True, lifetime=None, ccache=None):
        """kinit user with its password; returns a client env with KRB5CCNAME."""
        env = self.base_env()
        cc = ccache or self.path(f'cc_{user}')
        env['KRB5CCNAME'] = 'FILE:' + cc
        args = ['kinit']
        if forwardable:
            args.append('-f')
        if lifetime:
            args += ['-l', str(lifetime)]
        args.append(f'{user}@{self.realm}')
        subprocess.run(args, input=self.password(user) + '\n', env=env, text=True,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return env

    def kadmin(self, query):
        return subprocess.run(['kadmin.local', '-r', self.realm, '-q', query],
                              env=self.base_env(), check=True, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout

    # ---- set-up ----
    def _write(self, name, text, mode=0o644):
        p = self.path(name)
        with open(p, 'w') as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    def _write_files(self):
        for d in (self.rcache_dir, self.pam_dir):
            os.makedirs(d, exist_ok=True)
        os.makedirs(self.ccache_dir, mode=0o700, exist_ok=True)
        r = self.realm
        self._write('krb5.conf', f"""[libdefaults]
  default_realm = {r}
  dns_lookup_kdc = false
  dns_lookup_realm = false
  dns_canonicalize_hostname = false
  rdns = false
  forwardable = true
  udp_preference_limit = 1
  default_ccache_name = FILE:{self.path('default-ccache-unused')}
[realms]
  {r} = {{
    kdc = 127.0.0.1:{self.kdc_port}
    auth_to_local = RULE:[1:$1@$0](^.*@{r.replace('.', '[.]')}$)s/@.*//
    auth_to_local = DEFAULT
  }}
[domain_realm]
  localhost = {r}
  .gh.test = {r}
  gh.test = {r}
""")
        self._write('kdc.conf', f"""[kdcdefaults]
  kdc_listen = 127.0.0.1:{self.kdc_port}
  kdc_tcp_listen = 127.0.0.1:{self.kdc_port}
[realms]
  {r} = {{
    database_name = {self.path('principal')}
    key_stash_file = {self.path('stash')}
    acl_file = {self.path('kadm5.acl')}
    supported_enctypes = aes256-cts:normal aes128-cts:normal
    max_life = 10h
    max_renewable_life = 1d
  }}
[logging]
  kdc = FILE:{self.path('kdc.log')}
""")
        self._write('kadm5.acl', '')
        pw = ['root:x:0:0:root:/root:/bin/sh',
              'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin']
        gr = ['root:x:0:', 'nogroup:x:65534:']
        for name, (uid, gid, _) in self.users.items():
            pw.append(f'{name}:x:{uid}:{gid}:{name.title()}:/home/{name}:/bin/sh')
            gr.append(f'{name}:x:{gid}:')
        gr.append('ghusers:x:30010:alice,bob')
        gr += self.extra_groups
        self._write('passwd', '\n'.join(pw) + '\n')
        self._write('group', '\n'.join(gr) + '\n')
        self._write('pam_matrix.passdb', ''.join(
            f'{n}:{p}:{PAM_SERVICE}\n' for n, (_, _, p) in self.users.items()))
        self._write(os.path.join('pam.d', PAM_SERVICE),
                    f'auth required {PAM_MATRIX} passdb={self.pam_passdb}\n'
                    f'account required {PAM_MATRIX} passdb={self.pam_passdb}\n')
        lines = [f'{self.ntlm_domain}:{n}:{p}' for n, (_, _, p) in self.users.items()]
        lines.append(f'{self.ntlm_domain}:{UNMAPPED[0]}:{UNMAPPED[1]}')
        self._write('ntlm.users', '\n'.join(lines) + '\n', 0o600)

    def _run(self, args, **kw):
        return subprocess.run(args, env=self.base_env(), check=True, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)

    def _create_kdb(self):
        self._run(['kdb5_util', 'create', '-s', '-r', self.realm, '-P', 'master-pw-' + self.realm])
        for name in list(self.users) + [UNMAPPED[0]]:
            self.kadmin(f'addprinc -pw {self.password(name)} {name}')
        for spn in SPNS + [OTHER_SPN]:
            self.kadmin(f'addprinc -randkey {spn}')
        self.kadmin(f'ktadd -k {self.keytab} ' + ' '.join(SPNS))
        os.chmod(self.keytab, 0o600)

    def start_kdc(self):
        if self.kdc_proc:
            return
        log = open(self.path('krb5kdc.out'), 'a')
        self.kdc_proc = subprocess.Popen(['krb5kdc', '-n', '-r', self.realm],
                                         env=self.base_env(), stdout=log, stderr=log,
                                         start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.kdc_proc.poll() is not None:
                raise RuntimeError('krb5kdc exited; see ' + self.path('krb5kdc.out'))
            try:
                with socket.create_connection(('127.0.0.1', self.kdc_port), 0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError('krb5kdc did not start listening')

    def stop_kdc(self):
        if self.kdc_proc:
            self.kdc_proc.terminate()
            try:
                self.kdc_proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kdc_proc.kill()
                self.kdc_proc.wait()
            self.kdc_proc = None

    def close(self, keep=False):
        self.stop_kdc()
        if not keep and not os.environ.get('GH_KEEP_REALM'):
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


try:
    import pytest

    @pytest.fixture(scope='session')
    def realm():
        r = GhRealm()
        yield r
        r.close()
except ImportError:  # pragma: no cover - scripts without pytest
    pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--shell', action='store_true',
                    help='print export lines, keep the KDC running until killed')
    ap.add_argument('--dir', help='parent directory for the realm dir')
    args = ap.parse_args()
    r = GhRealm(base=args.dir)
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    try:
        env = r.env()
        keys = ['KRB5_CONFIG', 'KRB5_KDC_PROFILE', 'KRB5RCACHEDIR', 'GH_KEYTAB',
                'GH_NTLM_USER_FILE', 'GH_PAM_SERVICE', 'GH_REALM', 'GH_REALM_DIR',
                'GH_CCACHE_DIR', 'NSS_WRAPPER_PASSWD', 'NSS_WRAPPER_GROUP', 'PAM_WRAPPER',
                'PAM_WRAPPER_SERVICE_DIR', 'PAM_MATRIX_PASSWD']
        for k in keys:
            print(f"export {k}='{env[k]}'")
        print(f"export GH_SERVER_LD_PRELOAD='{NSS_WRAPPER}:{PAM_WRAPPER}'")
        print(f"# kdc pid {r.kdc_proc.pid} on 127.0.0.1:{r.kdc_port}; users: "
              + ', '.join(f'{u}/{r.password(u)}' for u in r.users)
              + f"; kinit: KRB5CCNAME=FILE:{r.dir}/cc_alice kinit alice")
        sys.stdout.flush()
        if args.shell:
            while not stop:
                try:
                    time.sleep(0.5)
                except KeyboardInterrupt:
                    break
    finally:
        r.close(keep=not args.shell)
    return 0


if __name__ == '__main__':
    sys.exit(main())
