"""soaklib.py: the identity-leak soak set-up and run shared by bench/soak/run and tests/integration/test_hardening_soak.py — realm with 4 users, owned files, CGI, gatehoused with 20 sites (5 schemes x 4 site kinds), pre-generated Negotiate tokens, gh-soak, daemon RSS sampling."""
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'integration'))

# name: (uid, gid, password, all groups incl. primary); erin is added to the realm here
SOAK_USERS = {
    'alice': (20001, 30001, 'alicepw', [30001, 30010]),
    'bob': (20002, 30002, 'bobpw', [30002, 30010]),
    'carol': (20003, 30003, 'carolpw', [30003, 30011]),
    'erin': (20004, 30004, 'erinpw', [30004, 30011]),
}
EXTRA_USERS = {'erin': (20004, 30004, 'erinpw')}
# service-user mode: gatehoused started as root with `[server] user = ghsvc` (only
# CAP_SETUID/CAP_SETGID left); an NSS account only (no principal, no password)
SVC_USER = ('ghsvc', 20100, 30100)
EXTRA_GROUPS = ['soak:x:30011:carol,erin']
SCHEMES = {
    'neg': {'auth': 'negotiate', 'persist': 'all'},
    'negr': {'auth': 'negotiate', 'persist': 'none'},
    'ntlm': {'auth': 'ntlm'},
    'basic': {'auth': 'basic', 'basic_over_plain_http': 'yes'},
    'peer': {'auth': 'peer'},
}


def tools(build):
    b = os.path.abspath(build)
    return {'soak': os.path.join(b, 'bench', 'soak', 'gh-soak'),
            'cgi': os.path.join(b, 'bench', 'soak', 'gh-soak-cgi'),
            'gen': os.path.join(b, 'bench', 'negotiate', 'gh-negotiate-bench'),
            'daemon': os.path.join(b, 'gatehoused')}


def client_env(env=None):
    """The load tools are clients, not under test: no LeakSanitizer exit report for them."""
    e = dict(env or os.environ)
    if e.get('ASAN_OPTIONS'):
        e['ASAN_OPTIONS'] += ':detect_leaks=0'
    return e


def rss_kb(pid):
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Soak:
    """Everything a soak run needs; close() tears it down."""

    def __init__(self, build, workers=8, realm=None, log=print, service_user=False, tls=False):
        """service_user: the daemon runs as ghsvc (started as root, drops to CAP_SETUID|CAP_SETGID);
        tls: TCP schemes go over a `tls` listener (a scratch CA, gh-soak --tls)."""
        os.environ['GH_BUILD_DIR'] = os.path.abspath(build)
        import gh_realm
        import pipeline_helpers
        self.log = log
        self.t = tools(build)
        for k, p in self.t.items():
            if not os.path.exists(p):
                raise FileNotFoundError(f'{p} not built (ninja -C {build})')
        self.own_realm = realm is None
        self.realm = realm or gh_realm.GhRealm(extra_users=EXTRA_USERS, extra_groups=EXTRA_GROUPS)
        for u in SOAK_USERS:
            if u not in self.realm.users:
                raise RuntimeError(f'realm lacks user {u} (GhRealm(extra_users=...))')
        self.dir = pipeline_helpers.shared_dir('gh-soak-')
        self.files = os.path.join(self.dir, 'files')
        self.cgi = os.path.join(self.dir, 'cgi')
        self.probe = os.path.join(self.dir, 'probe')
        self.tokdir = os.path.join(self.dir, 'tokens')
        for d, mode in ((self.files, 0o755), (self.cgi, 0o755), (self.probe, 0o1777),
                        (self.tokdir, 0o700)):
            os.makedirs(d)
            os.chmod(d, mode)
        for name, (uid, gid, _, _) in SOAK_USERS.items():
            p = os.path.join(self.files, name + '.txt')
            with open(p, 'w') as f:
                f.write(f'owner={name} uid={uid} gid={gid}\n')
            os.chown(p, uid, gid)
            os.chmod(p, 0o600)
        shutil.copy(self.t['cgi'], os.path.join(self.cgi, 'ids'))
        os.chmod(os.path.join(self.cgi, 'ids'), 0o755)
        sites = []
        for sc, auth in SCHEMES.items():
            sites.append((f'/{sc}/static', dict(auth, handler='static', root=self.files,
                                                 impersonate='yes')))
            sites.append((f'/{sc}/cgi', dict(auth, handler='cgi', root=self.cgi,
                                              impersonate='yes')))
            sites.append((f'/{sc}/who', dict(auth, handler='whoami', impersonate='no')))
            sites.append((f'/{sc}/probe', dict(auth, handler='authinfo', probe_dir=self.probe)))
        server = {'workers': workers, 'max_queue': 8192,
                  # short TTLs: NSS group lists and PAM are re-read all through the run, by
                  # many workers at once
                  'group_cache_ttl': 2, 'basic_cache_ttl': 5}
        self.mode = ('service-user' if service_user else 'root') + (' + TLS' if tls else '')
        self.tls_ca = None
        self.tls_port = None
        if tls:
            import tls_pki
            ca = tls_pki.ScratchCA(os.path.join(self.dir, 'pki'))
            cert, key = ca.issue('soak', ['localhost'])
            self.tls_ca = ca.cert
            self.tls_port = pipeline_helpers.free_port()
            # tls_key pairs with the tls_cert before it (dict order is file order)
            server.update({'listen': f'127.0.0.1:{self.tls_port} tls', 'tls_cert': cert,
                           'tls_key': key})
        if service_user:
            server['user'] = self._service_account()
        self.daemon = pipeline_helpers.GhDaemon(self.realm, sites, server=server)
        self.daemon.start()
        self.pid = self.daemon.proc.pid
        if service_user:
            with open(f'/proc/{self.pid}/status') as f:
                st = dict(line.rstrip('\n').split(':\t', 1) for line in f if ':\t' in line)
            if st['Uid'].split()[1] != str(SVC_USER[1]) or int(st['CapEff'], 16) != 0xc0:
                raise RuntimeError(f'daemon not in service-user mode: Uid {st["Uid"]} '
                                   f'CapEff {st["CapEff"]}')

    def _service_account(self):
        """ghsvc in the realm's nss_wrapper files; the files the daemon reads after dropping
        to it (NTLM user file, PAM passdb, keytab re-check) made readable by it."""
        name, uid, gid = SVC_USER
        with open(self.realm.passwd) as f:
            have = any(line.startswith(name + ':') for line in f)
        if not have:
            with open(self.realm.passwd, 'a') as f:
                f.write(f'{name}:x:{uid}:{gid}:gatehouse service:/nonexistent:/usr/sbin/nologin\n')
            with open(self.realm.group, 'a') as f:
                f.write(f'{name}:x:{gid}:\n')
        for p in (self.realm.keytab, self.realm.ntlm_user_file, self.realm.pam_passdb):
            os.chown(p, uid, gid)
        return name

    def gen_tokens(self, per_user):
        """per_user unique SPNEGO tokens for HTTP@localhost per user, generated in parallel."""
        t0 = time.monotonic()
        procs = []
        for name in SOAK_USERS:
            env = self.realm.kinit(name, ccache=os.path.join(self.tokdir, 'cc_' + name))
            out = os.path.join(self.tokdir, name + '.tok')
            procs.append(subprocess.Popen([self.t['gen'], 'gen', str(per_user), 'HTTP@localhost',
                                           out], env=client_env(env), stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True))
        for p in procs:
            o, e = p.communicate(timeout=900)
            if p.returncode != 0:
                raise RuntimeError(f'token generation failed: {o} {e}')
        self.log(f'# {per_user} tokens x {len(SOAK_USERS)} users in '
                 f'{time.monotonic() - t0:.1f} s')

    def run(self, requests, duration, conns=64, mix=None, reconnect=300, sample_s=1.0,
            progress=10, users=None, schemes=None, ntlm_reconnect=0):
        """Runs gh-soak while sampling the daemon's RSS; returns a dict of figures.
        users: the expectations handed to gh-soak (default SOAK_USERS; a wrong one must
        produce mismatches)."""
        port = self.tls_port or self.daemon.port
        args = [self.t['soak'], '--port', str(port), '--unix', self.daemon.unix,
                '--conns', str(conns), '--requests', str(requests), '--duration', str(duration),
                '--reconnect', str(reconnect), '--progress', str(progress),
                '--ntlm-target', 'HTTP@' + socket.gethostname(),
                '--ntlm-domain', self.realm.ntlm_domain]
        if self.tls_ca:
            args += ['--tls', self.tls_ca]
        if mix:
            args += ['--mix', mix]
        if schemes:
            args += ['--schemes', schemes]
        if ntlm_reconnect:
            args += ['--ntlm-reconnect', str(ntlm_reconnect)]
        for name, (uid, gid, pw, groups) in (users or SOAK_USERS).items():
            tok = os.path.join(self.tokdir, name + '.tok')
            args += ['--user', f'{name}:{uid}:{gid}:{",".join(map(str, groups))}:{pw}:'
                               f'{tok if os.path.exists(tok) else "-"}']
        samples = []
        stop = threading.Event()

        def sampler():
            t0 = time.monotonic()
            while not stop.is_set():
                r = rss_kb(self.pid)
                if r is not None:
                    samples.append((time.monotonic() - t0, r))
                stop.wait(sample_s)

        th = threading.Thread(target=sampler, daemon=True)
        errlog = os.path.join(self.dir, 'gh-soak.err')
        th.start()
        with open(errlog, 'w') as ef:
            p = subprocess.run(args, stdout=subprocess.PIPE, stderr=ef, text=True,
                               timeout=duration + 300, env=client_env())
        stop.set()
        th.join()
        with open(errlog) as f:
            err = f.read()
        line = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ''
        res = dict(kv.split('=', 1) for kv in line.split() if '=' in kv)
        res['rc'] = p.returncode
        res['stderr'] = err
        res['daemon_alive'] = self.daemon.proc.poll() is None
        res.update(rss_figures(samples))
        res['samples'] = samples
        return res

    def close(self):
        try:
            self.daemon.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            if self.own_realm:
                self.realm.close()


def rss_figures(samples, warmup_frac=0.2, window_frac=0.1):
    """Warm-up = the first 20 % of the run. Baseline = median RSS of the 10 % after it,
    final = median of the last 10 %, peak = max after warm-up; growth in percent."""
    if len(samples) < 5:
        return {'rss_samples': len(samples)}
    total = samples[-1][0]
    w0, w1 = total * warmup_frac, total * (warmup_frac + window_frac)
    base = [r for t, r in samples if w0 <= t <= w1] or [samples[len(samples) // 5][1]]
    last = [r for t, r in samples if t >= total * (1 - window_frac)] or [samples[-1][1]]
    after = [r for t, r in samples if t >= w0]
    b, f = statistics.median(base), statistics.median(last)
    curve = []
    for i in range(11):
        t = total * i / 10
        curve.append(min(samples, key=lambda s: abs(s[0] - t))[1])
    return {'rss_samples': len(samples), 'rss_start_kb': samples[0][1],
            'rss_baseline_kb': int(b), 'rss_final_kb': int(f), 'rss_peak_kb': max(after),
            'rss_growth_pct': round((f / b - 1) * 100, 2),
            'rss_peak_growth_pct': round((max(after) / b - 1) * 100, 2),
            'rss_curve_kb': ','.join(str(c) for c in curve)}
