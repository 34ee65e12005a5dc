#!/usr/bin/python3
"""gh_ad_realm.py: a throwaway Samba Active Directory domain (AD.TEST) on a private loopback address for the AD tests.

GhAdRealm, beside GhRealm (gh_realm.py, an MIT realm), owns a temp dir with:
  - a domain provisioned by `samba-tool domain provision --targetdir` (realm AD.TEST,
    NetBIOS domain ADTEST, --use-rfc2307, no DNS backend) whose DC binds only one
    address 127.88.X.Y picked at random (Samba's ports 88, 135, 464, 49152-49154 are
    fixed, so several DCs on one host need several addresses: one per pytest run);
    `server services = rpc, kdc, winbindd`, `samba -i -M single`;
  - accounts written offline into sam.ldb before the DC starts (SamDB from
    python3-samba, and ldbadd of an LDIF for the bulk users; 2,000 `samba-tool` calls
    would take minutes):
      carla 21001, dmitri 21002      users (password <Name>-Pass-1, rfc2307 uids, gid 100)
      erin 21003                     disabled account
      frank 21004                    password expired (pwdLastSet 60 days ago, domain
                                     maximum 42 days: UF_PASSWORD_EXPIRED)
      Administrator                  uid 0 on the DC (min_uid refuses it)
      gh-inner 31001 = carla; gh-outer 31002 = gh-inner (nested)
      gh-big 31003 = dmitri + gh-big-a (1,000 users) + gh-big-b (999 users): 2,000
                     members once winbind expands the nesting. Samba 4.17's winbindd on
                     a DC asks samr_LookupRids for all direct members of a group in one
                     call, and the call is limited to 1,000 rids: a group with more
                     direct members fails (NT_STATUS_RPC_BAD_STUB_DATA) and aborts
                     winbind's whole group enumeration, which nss_wrapper's
                     getgrouplist depends on.
      ghsvc                          service account: SPNs HTTP/localhost and
                                     HTTP/www.ad.test, AES only
                                     (msDS-SupportedEncryptionTypes = 24), trusted for
                                     delegation (what `samba-tool delegation
                                     for-any-service ghsvc on` sets)
    and the keytab of both SPNs exported (samba-tool domain exportkeytab's code);
  - a local service account `gatehouse` (uid 990) for daemons started with `user =`;
  - winbind for the host's NSS without touching /etc: nss_wrapper in module mode
    (libnss_winbind.so.2) with SELFTEST_WINBINDD_SOCKET_DIR pointing at the DC's
    private socket (Samba honours it only when nss_wrapper is preloaded); passwd and
    group files with root/nobody only, so `carla` and `ADTEST\\carla` resolve through
    winbind (`winbind enum groups` and `winbind expand groups = 2` make nss_wrapper's
    enumerating getgrouplist see the domain groups, nested ones included).

A DC provisioned and populated once is kept under /var/tmp (see _template_path) and
copied by later runs: about 1 s instead of 10-40 s.

Use:
  from tests: the session fixture `ad_realm` of conftest.py (one DC per pytest run; the
  tests that use it run together and the DC stops after the last), `ad_gh` (gatehoused
  with the AD sites of ad_helpers.py) and `ad_cc` (tickets for carla and dmitri);
  ad.env()             environment of a server process (krb5.conf, wrappers, winbind)
  ad.client_env(cc)    environment of a client (krb5.conf, KRB5CCNAME, no wrappers)
  ad.kinit(user)       a client env with a ticket (forwardable) in a ccache of its own
  ad.log_tail()        the DC's logs, for failure messages
  ad.stop(); ad.start()  the whole DC, winbind included, away and back (~1 s): Samba's
                       root process exits when its winbindd dies, so winbind cannot be
                       stopped alone; SIGSTOP to winbindd (ad.dc_pids()) hangs it instead
  from a shell: `/usr/bin/python3 tests/integration/gh_ad_realm.py --shell` prints export
  lines and keeps the DC running until killed.
If the DC cannot be provisioned or started, the constructor raises RuntimeError with the
DC's logs; the AD tests then fail (never skip) with that message.
"""
import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REALM = 'AD.TEST'
DOMAIN = 'ADTEST'
DNS_DOMAIN = 'ad.test'
BASE_DN = 'DC=ad,DC=test'
ADMIN_PASSWORD = 'Admin-Pass-1'
USERS = {
    # name: (uid, password); primary gid 100 (Domain Users)
    'carla': (21001, 'Carla-Pass-1'),
    'dmitri': (21002, 'Dmitri-Pass-1'),
    'erin': (21003, 'Erin-Pass-1'),     # disabled
    'frank': (21004, 'Frank-Pass-1'),   # password expired
}
DISABLED, EXPIRED = 'erin', 'frank'
DOMAIN_USERS_GID = 100
GROUPS = {'gh-inner': 31001, 'gh-outer': 31002, 'gh-big': 31003, 'gh-big-a': 31004,
          'gh-big-b': 31005}
BIG_MEMBERS = 2000          # gh-big, counted after expansion
BULK_UID = 40000            # ghm0000.. get uids 40000..
SERVICE = 'ghsvc'
SERVICE_USER, SERVICE_UID = 'gatehouse', 990      # local account (nss_wrapper files)
SPNS = ['HTTP/localhost', 'HTTP/www.ad.test']
DC_PORTS = [88, 135, 464, 49152, 49153, 49154]
LIBDIR = '/usr/lib/x86_64-linux-gnu'
NSS_WRAPPER = LIBDIR + '/libnss_wrapper.so'
NSS_WINBIND = LIBDIR + '/libnss_winbind.so.2'
TEMPLATE_MAX_AGE = 30 * 86400
PY = '/usr/bin/python3'     # Debian's python, which has the samba bindings


def _address_free(addr):
    for port in DC_PORTS:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            s = socket.socket(socket.AF_INET, kind)
            try:
                s.bind((addr, port))
            except OSError:
                return False
            finally:
                s.close()
    return True


def pick_address():
    """A 127.88.X.Y address on which none of the DC's fixed ports is taken."""
    rnd = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(50):
        addr = f'127.88.{rnd.randint(1, 254)}.{rnd.randint(1, 254)}'
        if _address_free(addr):
            return addr
    raise RuntimeError('no free 127.88.X.Y address for a Samba DC')


class GhAdRealm:
    def __init__(self, base=None, start=True):
        self.dir = tempfile.mkdtemp(prefix='gh-adrealm-', dir=base)
        os.chmod(self.dir, 0o755)
        self.realm, self.domain = REALM, DOMAIN
        self.users = dict(USERS)
        self.groups = dict(GROUPS)
        self.dc = self.path('dc')
        self.smb_conf = os.path.join(self.dc, 'etc', 'smb.conf')
        self.sam_ldb = os.path.join(self.dc, 'private', 'sam.ldb')
        self.winbind_dir = os.path.join(self.dc, 'winbindd')
        self.krb5_conf = self.path('krb5.conf')
        self.keytab = self.path('http.keytab')
        self.passwd = self.path('passwd')
        self.group = self.path('group')
        self.rcache_dir = self.path('rcache')
        self.ccache_dir = self.path('ccaches')
        self.ntlm_user_file = None     # NTLM is checked by the DC through winbind
        self.samba_out = self.path('samba.out')
        self.proc = None
        self.closed = False
        self.timings = {}
        try:
            self.address = pick_address()
            self._write_files()
            t = time.monotonic()
            if not self._from_template():
                self._provision()
                self.timings['provision'] = time.monotonic() - t
                t = time.monotonic()
                self._populate()
                self.timings['populate'] = time.monotonic() - t
                self._save_template()
            else:
                self.timings['template copy'] = time.monotonic() - t
            if start:
                self.start()
        except Exception:
            self.stop()
            raise

    # ---- paths and environments ----
    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def password(self, user):
        if user.lower() == 'administrator':
            return ADMIN_PASSWORD
        return self.users[user][1]

    def uid(self, user):
        return self.users[user][0]

    def base_env(self):
        env = dict(os.environ)
        for k in ('KRB5CCNAME', 'KRB5_KTNAME', 'KRB5_CLIENT_KTNAME', 'LD_PRELOAD'):
            env.pop(k, None)
        env.update({'KRB5_CONFIG': self.krb5_conf, 'KRB5RCACHEDIR': self.rcache_dir})
        return env

    def wrapper_env(self, env):
        """nss_wrapper in module mode over libnss_winbind, talking to this DC's winbindd."""
        env.update({
            'NSS_WRAPPER_PASSWD': self.passwd,
            'NSS_WRAPPER_GROUP': self.group,
            'NSS_WRAPPER_MODULE_SO_PATH': NSS_WINBIND,
            'NSS_WRAPPER_MODULE_FN_PREFIX': 'winbind',
            'SELFTEST_WINBINDD_SOCKET_DIR': self.winbind_dir,
            # nss_wrapper dlopens libc with RTLD_DEEPBIND, which ASan refuses
            'NSS_WRAPPER_DISABLE_DEEPBIND': '1',
        })
        old = os.environ.get('LD_PRELOAD')
        env['LD_PRELOAD'] = ':'.join([NSS_WRAPPER] + ([old] if old else []))
        return env

    def env(self):
        """Environment for a server process (gatehoused): krb5, winbind NSS."""
        env = self.wrapper_env(self.base_env())
        env.update({
            'GH_KEYTAB': self.keytab,
            'GH_REALM': self.realm,
            'GH_REALM_DIR': self.dir,
            'GH_CCACHE_DIR': self.ccache_dir,
            # the server process must not pick up a client ccache by accident
            'KRB5CCNAME': 'FILE:' + self.path('server-ccache-must-not-exist'),
        })
        return env

    def client_env(self, ccache=None):
        env = self.base_env()
        if ccache:
            env['KRB5CCNAME'] = 'FILE:' + ccache
        return env

    def kinit(self, user, forwardable=True, ccache=None):
        """kinit user@AD.TEST with its password; returns a client env with KRB5CCNAME."""
        cc = ccache or self.path(f'cc_{user.lower()}')
        env = self.client_env(cc)
        args = ['kinit'] + (['-f'] if forwardable else []) + [f'{user}@{self.realm}']
        p = subprocess.run(args, input=self.password(user) + '\n', env=env, text=True,
                           capture_output=True, timeout=30)
        if p.returncode != 0:
            raise RuntimeError(f'kinit {user}: {p.stderr.strip()}\n{self.log_tail()}')
        return env

    def run(self, args, env=None, check=True, timeout=120, **kw):
        p = subprocess.run(args, env=env or self.base_env(), text=True, capture_output=True,
                           timeout=timeout, **kw)
        if check and p.returncode != 0:
            raise RuntimeError(f'{" ".join(args)} exited {p.returncode}:\n{p.stdout}{p.stderr}'
                               f'\n{self.log_tail()}')
        return p

    def wbinfo(self, *args, check=True):
        return self.run(['wbinfo'] + list(args), env=self.wrapper_env(self.base_env()),
                        check=check, timeout=30)

    def log_tail(self, lines=40):
        """The last lines of the DC's own output and of its log files."""
        out = []
        files = [self.samba_out] + sorted(
            os.path.join(self.dc, f) for f in (os.listdir(self.dc) if os.path.isdir(self.dc)
                                               else []) if f.startswith('log.'))
        for f in files:
            try:
                with open(f, errors='replace') as fh:
                    text = fh.read().splitlines()[-lines:]
            except OSError:
                continue
            if text:
                out.append(f'---- {f}\n' + '\n'.join(text))
        return '\n'.join(out) or '(no DC log)'

    # ---- set-up ----
    def _write(self, name, text, mode=0o644):
        with open(self.path(name), 'w') as f:
            f.write(text)
        os.chmod(self.path(name), mode)

    def _write_files(self):
        os.makedirs(self.rcache_dir, exist_ok=True)
        os.makedirs(self.ccache_dir, mode=0o700, exist_ok=True)
        self._write('krb5.conf', f"""[libdefaults]
  default_realm = {REALM}
  dns_lookup_kdc = false
  dns_lookup_realm = false
  dns_canonicalize_hostname = false
  rdns = false
  forwardable = true
  udp_preference_limit = 1
  default_ccache_name = FILE:{self.path('default-ccache-unused')}
[realms]
  {REALM} = {{
    kdc = {self.address}
    admin_server = {self.address}
    auth_to_local = RULE:[1:{DOMAIN}\\$1@$0](^.*@AD[.]TEST$)s/@.*//
    auth_to_local = DEFAULT
  }}
[domain_realm]
  localhost = {REALM}
  .{DNS_DOMAIN} = {REALM}
  {DNS_DOMAIN} = {REALM}
""")
        # root, nobody and a local service account for `user =`; every other name goes to
        # winbind
        self._write('passwd', 'root:x:0:0:root:/root:/bin/sh\n'
                    'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n'
                    f'{SERVICE_USER}:x:{SERVICE_UID}:{SERVICE_UID}:gatehoused:/nonexistent:'
                    '/usr/sbin/nologin\n')
        self._write('group', f'root:x:0:\nnogroup:x:65534:\n{SERVICE_USER}:x:{SERVICE_UID}:\n')

    def _provision(self):
        d = self.dc
        opts = {
            'interfaces': f'{self.address}/8', 'bind interfaces only': 'yes',
            'pid directory': f'{d}/run', 'log file': f'{d}/log.%m', 'log level': '1',
            'winbindd socket directory': self.winbind_dir, 'ncalrpc dir': f'{d}/ncalrpc',
            'ntp signd socket directory': f'{d}/ntp_signd',
            'server services': 'rpc, kdc, winbindd',
            'winbind enum groups': 'yes', 'winbind expand groups': '2',
        }
        args = ['samba-tool', 'domain', 'provision', f'--realm={REALM}', f'--domain={DOMAIN}',
                '--server-role=dc', '--dns-backend=NONE', '--host-name=dc1',
                f'--adminpass={ADMIN_PASSWORD}', f'--targetdir={d}', '--use-rfc2307']
        args += [f'--option={k}={v}' for k, v in opts.items()]
        p = subprocess.run(args, env=self.base_env(), text=True, capture_output=True,
                           timeout=300)
        with open(self.path('provision.log'), 'w') as f:
            f.write(p.stdout + p.stderr)
        if p.returncode != 0:
            raise RuntimeError(f'samba-tool domain provision exited {p.returncode}:\n'
                               + (p.stdout + p.stderr)[-4000:])

    def _populate(self):
        self._write('bulk.ldif', bulk_ldif())
        self.run([PY, os.path.abspath(__file__), '--populate', self.dir], timeout=300)

    # ---- the provisioned, populated DC kept for the next runs ----
    # Provisioning and the 2,000 bulk users take 10-40 s on 2 loaded cores; the DC's files
    # hold no absolute path but smb.conf's, so a copy of a DC that was never started is
    # reused, with smb.conf's directory and address rewritten. The template is keyed by
    # this file and the Samba version, and rebuilt after 30 days (the domain's passwords
    # expire after 42). GH_AD_FRESH=1 provisions anew; GH_AD_TEMPLATE_DIR moves it.
    def _template_path(self):
        h = hashlib.sha256()
        with open(os.path.abspath(__file__), 'rb') as f:
            h.update(f.read())
        h.update(subprocess.run(['samba', '-V'], capture_output=True).stdout)
        root = os.environ.get('GH_AD_TEMPLATE_DIR', '/var/tmp')
        return os.path.join(root, f'gatehouse-ad-dc-{h.hexdigest()[:16]}')

    def _from_template(self):
        if os.environ.get('GH_AD_FRESH'):
            return False
        tpl = self._template_path()
        try:
            with open(os.path.join(tpl, 'template.json')) as f:
                meta = json.load(f)
        except (OSError, ValueError):
            return False
        if time.time() - meta['created'] > TEMPLATE_MAX_AGE:
            shutil.rmtree(tpl, ignore_errors=True)
            return False
        subprocess.run(['cp', '-a', os.path.join(tpl, 'dc'), self.dc], check=True)
        shutil.copy2(os.path.join(tpl, 'http.keytab'), self.keytab)
        with open(self.smb_conf) as f:
            conf = f.read()
        conf = conf.replace(meta['dir'] + '/', self.dir + '/').replace(
            f'interfaces = {meta["address"]}/8', f'interfaces = {self.address}/8')
        with open(self.smb_conf, 'w') as f:
            f.write(conf)
        return True

    def _save_template(self):
        if os.environ.get('GH_AD_FRESH'):
            return
        tpl = self._template_path()
        parent, me = os.path.dirname(tpl), os.path.basename(tpl)
        for old in os.listdir(parent):     # templates of other versions, unused for a day
            p = os.path.join(parent, old)
            if (old.startswith('gatehouse-ad-dc-') and not old.startswith(me)
                    and time.time() - os.path.getmtime(p) > 86400):
                shutil.rmtree(p, ignore_errors=True)
        tmp = tempfile.mkdtemp(prefix=os.path.basename(tpl) + '.tmp-', dir=os.path.dirname(tpl))
        try:
            subprocess.run(['cp', '-a', self.dc, os.path.join(tmp, 'dc')], check=True)
            shutil.copy2(self.keytab, os.path.join(tmp, 'http.keytab'))
            with open(os.path.join(tmp, 'template.json'), 'w') as f:
                json.dump({'dir': self.dir, 'address': self.address, 'created': time.time()}, f)
            os.chmod(tmp, 0o700)
            os.rename(tmp, tpl)        # another run may have saved one first: keep that
        except OSError:
            pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def start(self, timeout=60):
        """samba -i; ready when winbindd answers, the KDC issues a ticket and the DC
        checks an NTLM password."""
        if self.proc is not None:
            return
        out = open(self.samba_out, 'ab')
        self.proc = subprocess.Popen(['samba', '-i', '-M', 'single', '-s', self.smb_conf],
                                     env=self.base_env(), stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=out, start_new_session=True)
        out.close()
        t = time.monotonic()
        deadline = t + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f'samba exited {self.proc.returncode} at start:\n'
                                   + self.log_tail())
            if self.wbinfo('-p', check=False).returncode == 0 and self._kdc_open():
                break
            if time.monotonic() > deadline:
                raise RuntimeError('samba not ready (wbinfo -p, KDC port) after '
                                   f'{timeout} s:\n' + self.log_tail())
            time.sleep(0.1)
        self.timings['start'] = time.monotonic() - t
        # the two paths the tests depend on, checked once here for a clear message
        self.kinit('carla', ccache=self.path('cc_start_check'))
        self.wbinfo('-a', f'{DOMAIN}\\carla%{self.password("carla")}')

    def _kdc_open(self):
        try:
            with socket.create_connection((self.address, 88), 0.2):
                return True
        except OSError:
            return False

    def dc_pids(self):
        """Processes of this DC: samba's tree, and winbindd, which runs in a session of
        its own (found by this DC's smb.conf on its command line)."""
        pids = []
        for p in os.listdir('/proc'):
            if not p.isdigit():
                continue
            try:
                with open(f'/proc/{p}/cmdline', 'rb') as f:
                    cmd = f.read()
                with open(f'/proc/{p}/stat') as f:
                    pgid = int(f.read().rsplit(')', 1)[1].split()[2])
            except (OSError, ValueError, IndexError):
                continue
            if self.smb_conf.encode() in cmd or (self.proc and pgid == self.proc.pid):
                pids.append(int(p))
        return pids

    def stop(self):
        """SIGTERM to samba (it stops its winbindd), SIGKILL to what is left after 15 s.
        start() may follow (e.g. a test that takes winbind away and brings it back)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        deadline = time.monotonic() + 5
        while True:
            left = [p for p in self.dc_pids() if p != self.proc.pid]
            if not left:
                break
            if time.monotonic() > deadline:
                for p in left:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                deadline = time.monotonic() + 5
            time.sleep(0.05)
        self.proc = None

    def close(self, keep=False):
        if self.closed:
            return
        self.closed = True
        self.stop()
        if not keep and not os.environ.get('GH_KEEP_REALM'):
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def bulk_names():
    """The 1,999 bulk users: gh-big-a holds the first 1,000, gh-big-b the rest."""
    return [f'ghm{i:04d}' for i in range(BIG_MEMBERS - 1)]


def bulk_ldif():
    """Bulk users (disabled, no password) and the two halves of gh-big, for ldbadd."""
    names = bulk_names()
    out = []
    for i, n in enumerate(names):
        out.append(f'dn: CN={n},CN=Users,{BASE_DN}\nobjectClass: user\nsAMAccountName: {n}\n'
                   f'userAccountControl: 514\nuidNumber: {BULK_UID + i}\n'
                   f'gidNumber: {DOMAIN_USERS_GID}\n')
    for g, part in (('gh-big-a', names[:1000]), ('gh-big-b', names[1000:])):
        out.append(f'dn: CN={g},CN=Users,{BASE_DN}\nobjectClass: group\nsAMAccountName: {g}\n'
                   f'gidNumber: {GROUPS[g]}\n'
                   + ''.join(f'member: CN={n},CN=Users,{BASE_DN}\n' for n in part))
    return '\n'.join(out)


def populate(realm_dir):
    """Runs in a child /usr/bin/python3 (samba bindings): writes the accounts into the
    provisioned sam.ldb while the DC is down, then exports the service keytab."""
    import ldb
    from samba import dsdb
    from samba.auth import system_session
    from samba.credentials import Credentials
    from samba.net import Net
    from samba.param import LoadParm
    from samba.samdb import SamDB
    import samba.dckeytab  # noqa: F401 (adds Net.export_keytab)

    dc = os.path.join(realm_dir, 'dc')
    lp = LoadParm()
    lp.load(os.path.join(dc, 'etc', 'smb.conf'))
    sam = os.path.join(dc, 'private', 'sam.ldb')
    db = SamDB(url=sam, lp=lp, session_info=system_session())

    def modify(dn, **attrs):
        m = ldb.Message(ldb.Dn(db, dn))
        for k, (flag, v) in attrs.items():
            m[k] = ldb.MessageElement(v, flag, k)
        db.modify(m)

    R = ldb.FLAG_MOD_REPLACE
    # simple passwords allowed; maximum age stays at the default 42 days (frank)
    modify(BASE_DN, pwdProperties=(R, '0'), pwdHistoryLength=(R, '0'), minPwdAge=(R, '0'))
    for name, (uid, pw) in USERS.items():
        db.newuser(name, pw, uidnumber=uid, gidnumber=DOMAIN_USERS_GID, nisdomain='adtest',
                   unixhome=f'/home/{name}', loginshell='/bin/sh')
    for g in ('gh-inner', 'gh-outer', 'gh-big'):
        db.newgroup(g, gidnumber=GROUPS[g], nisdomain='adtest')
    db.disable_account(f'(sAMAccountName={DISABLED})')
    p = subprocess.run(['ldbadd', '-H', sam, os.path.join(realm_dir, 'bulk.ldif')],
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError('ldbadd: ' + p.stdout + p.stderr)
    db.add_remove_group_members('gh-inner', ['carla'])
    db.add_remove_group_members('gh-outer', ['gh-inner'])
    db.add_remove_group_members('gh-big', ['dmitri', 'gh-big-a', 'gh-big-b'])
    # frank's password was set 60 days ago: pwdLastSet accepts only 0 and -1 through the
    # DC's modules, so it is written into the domain partition's backend directly
    raw = ldb.Ldb(url='tdb://' + os.path.join(dc, 'private', 'sam.ldb.d',
                                             f'{BASE_DN.upper()}.ldb'))
    m = ldb.Message(ldb.Dn(raw, f'CN={EXPIRED},CN=Users,{BASE_DN}'))
    nt_time = int((time.time() + 11644473600) * 10**7) - 60 * 86400 * 10**7
    m['pwdLastSet'] = ldb.MessageElement(str(nt_time), R, 'pwdLastSet')
    raw.modify(m)
    del raw
    db = SamDB(url=sam, lp=lp, session_info=system_session())
    r = db.search(base=f'CN={EXPIRED},CN=Users,{BASE_DN}', scope=ldb.SCOPE_BASE,
                  attrs=['msDS-User-Account-Control-Computed'])
    if not int(r[0]['msDS-User-Account-Control-Computed'][0]) & dsdb.UF_PASSWORD_EXPIRED:
        raise RuntimeError(f'{EXPIRED}: password not expired')
    # the service account: two SPNs, AES keys only, trusted for delegation
    db.newuser(SERVICE, 'Svc-' + os.urandom(12).hex())
    db.setexpiry(f'(sAMAccountName={SERVICE})', 0, no_expiry_req=True)
    modify(f'CN={SERVICE},CN=Users,{BASE_DN}',
           servicePrincipalName=(ldb.FLAG_MOD_ADD, SPNS),
           **{'msDS-SupportedEncryptionTypes': (R, '24')})
    db.toggle_userAccountFlags(f'(sAMAccountName={SERVICE})', dsdb.UF_TRUSTED_FOR_DELEGATION,
                               on=True)
    net = Net(Credentials(), lp)
    keytab = os.path.join(realm_dir, 'http.keytab')
    for spn in SPNS:
        net.export_keytab(keytab=keytab, principal=spn)
    os.chmod(keytab, 0o600)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--shell', action='store_true',
                    help='print export lines, keep the DC running until killed')
    ap.add_argument('--dir', help='parent directory for the realm dir')
    ap.add_argument('--populate', metavar='REALM_DIR', help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.populate:
        populate(args.populate)
        return 0
    t = time.monotonic()
    r = GhAdRealm(base=args.dir)
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    try:
        env = r.env()
        for k in ('KRB5_CONFIG', 'KRB5RCACHEDIR', 'GH_KEYTAB', 'GH_REALM', 'GH_REALM_DIR',
                  'GH_CCACHE_DIR', 'NSS_WRAPPER_PASSWD', 'NSS_WRAPPER_GROUP',
                  'NSS_WRAPPER_MODULE_SO_PATH', 'NSS_WRAPPER_MODULE_FN_PREFIX',
                  'SELFTEST_WINBINDD_SOCKET_DIR'):
            print(f"export {k}='{env[k]}'")
        print(f"export GH_SERVER_LD_PRELOAD='{NSS_WRAPPER}'")
        print(f'# DC pid {r.proc.pid} on {r.address}; ready in {time.monotonic() - t:.1f} s '
              f'({", ".join(f"{k} {v:.1f} s" for k, v in r.timings.items())}); users: '
              + ', '.join(f'{u}/{r.password(u)}' for u in r.users)
              + f'; kinit: KRB5CCNAME=FILE:{r.dir}/cc_carla kinit carla')
        sys.stdout.flush()
        if args.shell:
            while not stop:
                try:
                    time.sleep(0.5)
                except KeyboardInterrupt:
                    break
    finally:
        r.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
