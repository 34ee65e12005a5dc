"""nspawn.py: a cached Debian 12 root file system (debootstrap) booted with systemd-nspawn --boot, systemd as PID 1 inside, entered with nsenter (see ../shared/notes/systemd-nspawn.md)."""
import fcntl
import glob
import hashlib
import os
import shutil
import subprocess
import time

SUITE = 'bookworm'
# What the tests need inside, and nothing else (minbase): systemd as PID 1, curl with GSS-API, an
# MIT KDC and its admin tools, the runtime libraries of the .debs that minbase lacks (dpkg -i runs
# offline: the container has no network), adduser for the postinst, logrotate for its config.
INCLUDE = ['systemd', 'systemd-sysv', 'dbus', 'procps', 'curl', 'adduser', 'logrotate',
           'krb5-kdc', 'krb5-admin-server', 'krb5-user', 'libhttp-parser2.9', 'libinih1',
           'libwbclient0', 'libhiredis0.14', 'libjwt0']
# Units of the included packages that would only slow the boot or fail it (no realm yet).
MASK = ['krb5-admin-server.service', 'apt-daily.timer', 'apt-daily-upgrade.timer',
        'e2scrub_all.timer', 'e2scrub_reap.service', 'fstrim.timer', 'dpkg-db-backup.timer',
        'logrotate.timer', 'cron.service', 'systemd-timesyncd.service']
DISABLE = ['krb5-kdc.service']  # started by the tests once they have made the realm
CACHE = os.environ.get('GH_SYSTEMD_CACHE', '/var/cache/gatehouse-test')
ROOTFS_FORMAT = 1  # bump when the preparation below changes


class SetupError(Exception):
    """Why the container could not be made or booted (the test fails with this text)."""


def apt_mirror():
    """The Debian archive this machine's apt already uses (GH_DEBIAN_MIRROR overrides)."""
    if os.environ.get('GH_DEBIAN_MIRROR'):
        return os.environ['GH_DEBIAN_MIRROR']
    for path in ['/etc/apt/sources.list'] + sorted(glob.glob('/etc/apt/sources.list.d/*.list')):
        try:
            lines = open(path).read().splitlines()
        except OSError:
            continue
        for line in lines:
            f = line.split('#')[0].split()
            if len(f) >= 3 and f[0] == 'deb':
                f = [x for x in f if not x.startswith('[')]
                if len(f) >= 3 and f[2] == SUITE:
                    return f[1]
    for path in sorted(glob.glob('/etc/apt/sources.list.d/*.sources')):
        try:
            stanzas = open(path).read().split('\n\n')
        except OSError:
            continue
        for st in stanzas:
            fields = {}
            for line in st.splitlines():
                if ':' in line and not line.startswith(('#', ' ')):
                    k, v = line.split(':', 1)
                    fields[k.strip().lower()] = v.split()
            if 'deb' in fields.get('types', []) and SUITE in fields.get('suites', []) \
                    and fields.get('uris'):
                return fields['uris'][0]
    raise SetupError('no "%s" Debian source in /etc/apt/sources.list{,.d}: set GH_DEBIAN_MIRROR'
                     % SUITE)


def rootfs(log=print):
    """The cached tree, built on first use (about a minute): CACHE/rootfs-bookworm-<key>."""
    mirror = apt_mirror()
    key = hashlib.sha256(repr((SUITE, mirror, INCLUDE, MASK, DISABLE, ROOTFS_FORMAT))
                         .encode()).hexdigest()[:12]
    final = os.path.join(CACHE, f'rootfs-{SUITE}-{key}')
    if os.path.exists(os.path.join(final, '.gatehouse-ready')):
        return final
    if shutil.which('debootstrap') is None:
        raise SetupError('debootstrap is not installed (scripts/install-deps installs it)')
    os.makedirs(CACHE, exist_ok=True)
    with open(os.path.join(CACHE, '.lock'), 'w') as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)  # parallel runs: one builds, the others wait
        if os.path.exists(os.path.join(final, '.gatehouse-ready')):
            return final
        tmp = f'{final}.tmp{os.getpid()}'
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(final, ignore_errors=True)
        t0 = time.monotonic()
        cmd = ['debootstrap', '--variant=minbase', '--include=' + ','.join(INCLUDE), SUITE,
               tmp, mirror]
        log(f'debootstrap: building {final} from {mirror} (cached for the next runs)')
        # dpkg without an fsync per file (the tree is only used once it is complete and
        # synced below): about a fifth less time; security-mac and downgrade are dpkg's defaults
        env = dict(os.environ, DPKG_FORCE='unsafe-io,security-mac,downgrade')
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           errors='replace', timeout=900, env=env)
        if p.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise SetupError(f'{" ".join(cmd)} failed ({p.returncode}):\n{p.stdout[-3000:]}')
        for args in (['mask'] + MASK, ['disable'] + DISABLE):
            p = subprocess.run(['systemctl', '--root=' + tmp, '--quiet'] + args,
                               capture_output=True, text=True)
            if p.returncode != 0:
                raise SetupError(f'systemctl --root {args}: {p.stderr}')
        # apt's caches and lists are 150 MB the tests never use
        for pat in ('var/cache/apt/archives/*.deb', 'var/cache/apt/*.bin', 'var/lib/apt/lists/*_*'):
            for f in glob.glob(os.path.join(tmp, pat)):
                os.unlink(f)
        os.sync()
        open(os.path.join(tmp, '.gatehouse-ready'), 'w').close()
        os.rename(tmp, final)
        log(f'debootstrap: done in {time.monotonic() - t0:.0f} s')
        # older trees (another key) are not needed any more
        for old in glob.glob(os.path.join(CACHE, f'rootfs-{SUITE}-*')):
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
    return final


def _cgroup_dirs(name):
    """One cgroup per container in the name=systemd and unified hierarchies (or the single
    cgroup2 tree), so parallel containers never share one /payload."""
    base = '/sys/fs/cgroup'
    if os.path.exists(os.path.join(base, 'cgroup.controllers')):
        return [os.path.join(base, name)]
    return [os.path.join(base, h, name) for h in ('systemd', 'unified')
            if os.path.isdir(os.path.join(base, h))]


class Container:
    """systemd-nspawn --boot of `root` (volatile overlay: the cached tree stays untouched),
    private network, `binds` = {host dir: container dir} read-only."""

    def __init__(self, root, binds, logdir):
        self.root, self.binds = root, binds
        self.name = f'gh{os.getpid()}'
        self.cgroups = _cgroup_dirs(f'gatehouse-nspawn-{os.getpid()}')
        self.log_path = os.path.join(logdir, 'nspawn-boot.log')
        self.proc = None
        self.leader = None

    def boot_log(self, n=4000):
        try:
            return open(self.log_path, errors='replace').read()[-n:]
        except OSError:
            return ''

    def start(self, timeout=60):
        if shutil.which('systemd-nspawn') is None:
            raise SetupError('systemd-nspawn is not installed (systemd-container, '
                             'scripts/install-deps)')
        for d in self.cgroups:
            os.makedirs(d, exist_ok=True)
        procs = [os.path.join(d, 'cgroup.procs') for d in self.cgroups]

        def enter_cgroups():
            for p in procs:
                with open(p, 'w') as f:
                    f.write(str(os.getpid()))

        cmd = ['systemd-nspawn', '-D', self.root, '-M', self.name, '--boot',
               '--register=no', '--keep-unit', '--console=read-only', '--private-network',
               '--volatile=overlay']
        cmd += [f'--bind-ro={h}:{c}' for h, c in self.binds.items()]
        log = open(self.log_path, 'w')
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=enter_cgroups)
        log.close()
        deadline = time.monotonic() + timeout
        while self.leader is None:
            if self.proc.poll() is not None:
                raise SetupError(f'systemd-nspawn exited ({self.proc.returncode}) before '
                                 f'systemd started:\n{self.boot_log()}')
            if time.monotonic() > deadline:
                raise SetupError(f'no systemd under systemd-nspawn after {timeout} s:\n'
                                 f'{self.boot_log()}')
            self.leader = self._child_systemd()
            time.sleep(0.05)
        sock = f'/proc/{self.leader}/root/run/systemd/private'
        while not os.path.exists(sock):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SetupError(f'systemd in the container never opened {sock}:\n'
                                 f'{self.boot_log()}')
            time.sleep(0.05)
        p = self.sh('systemctl is-system-running --wait', check=False, timeout=timeout)
        state = p.stdout.strip()
        if state != 'running':
            failed = self.sh('systemctl --failed --no-legend --no-pager', check=False).stdout
            raise SetupError(f'the container booted to "{state}", not "running"; failed '
                             f'units:\n{failed}\n{self.boot_log()}')
        return self

    def _child_systemd(self):
        for pid in os.listdir('/proc'):
            if not pid.isdigit():
                continue
            try:
                st = open(f'/proc/{pid}/status').read()
            except OSError:
                continue
            f = dict(line.split(':\t', 1) for line in st.splitlines() if ':\t' in line)
            if f.get('PPid', '').strip() == str(self.proc.pid) and \
                    f.get('Name', '').strip() == 'systemd':
                return int(pid)
        return None

    def sh(self, script, check=True, timeout=120, input=None):
        """Runs `sh -c script` inside (all the container's namespaces, a clean environment)."""
        cmd = ['nsenter', '-t', str(self.leader), '-a', 'env', '-i',
               'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
               'LANG=C.UTF-8', 'HOME=/root', 'sh', '-c', script]
        p = subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, errors='replace', timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f'in the container: {script}\nexit {p.returncode}\n'
                                 f'stdout: {p.stdout[-3000:]}\nstderr: {p.stderr[-3000:]}')
        return p

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # nspawn asks the container's systemd to power off
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(10)
        for d in self.cgroups:
            for sub, _, _ in sorted(os.walk(d), key=lambda w: -w[0].count('/')):
                try:
                    os.rmdir(sub)
                except OSError:
                    pass
