"""soaklib.py: the identity-leak soak set-up and run shared by bench/soak/run and tests/integration/test_hardening_soak.py — realm with 4 users, owned files, CGI, gatehoused with 20 sites (5 schemes x 4 site kinds), per-user Kerberos ccaches for Negotiate tokens made as they are sent (or pre-generated token files), gh-soak, daemon RSS (anon/file) sampling and the growth figures."""
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


def mem_kb(pid):
    """(VmRSS, anonymous, file-backed, threads) of pid in kB from /proc/PID/status and
    smaps_rollup (anonymous = heap, arenas, thread stacks; file = code and mapped files)."""
    rss = anon = threads = None
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    rss = int(line.split()[1])
                elif line.startswith('Threads:'):
                    threads = int(line.split()[1])
        with open(f'/proc/{pid}/smaps_rollup') as f:
            for line in f:
                if line.startswith('Anonymous:'):
                    anon = int(line.split()[1])
    except OSError:
        return None
    if rss is None or anon is None:
        return None
    return rss, anon, rss - anon, threads


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
        self.ccaches = {}
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

    def live_tokens(self):
        """Negotiate tokens made by gh-soak as they are sent (each user's clients from that
        user's ccache): authenticators seconds old however long the run. The ccaches hold
        a TGT (kinit as root here); each gh-soak user process reads its ccache as root, writes
        a private copy after dropping to the user and fetches the HTTP@localhost ticket into
        it once."""
        for name in SOAK_USERS:
            cc = os.path.join(self.tokdir, 'cc_' + name)
            self.realm.kinit(name, ccache=cc)
            self.ccaches[name] = cc

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
            progress=1, users=None, schemes=None, ntlm_reconnect=0, on_sample=None,
            warmup_min_s=10.0):
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
            if name in self.ccaches:
                tok = 'ccache=' + self.ccaches[name]
            elif not os.path.exists(tok):
                tok = '-'
            args += ['--user', f'{name}:{uid}:{gid}:{",".join(map(str, groups))}:{pw}:{tok}']
        samples = []
        stop = threading.Event()

        def sampler():
            t0 = time.monotonic()
            while not stop.is_set():
                m = mem_kb(self.pid)
                if m is not None:
                    samples.append((time.monotonic() - t0,) + m)
                if on_sample:
                    on_sample(time.monotonic() - t0)
                stop.wait(sample_s)

        th = threading.Thread(target=sampler, daemon=True)
        errlog = os.path.join(self.dir, 'gh-soak.err')
        th.start()
        with open(errlog, 'w') as ef:
            p = subprocess.run(args, stdout=subprocess.PIPE, stderr=ef, text=True,
                               timeout=duration + 300, env=client_env(self.realm.base_env()))
        stop.set()
        th.join()
        with open(errlog) as f:
            err = f.read()
        line = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ''
        res = dict(kv.split('=', 1) for kv in line.split() if '=' in kv)
        res['rc'] = p.returncode
        res['stderr'] = err
        res['daemon_alive'] = self.daemon.proc.poll() is None
        prog = parse_progress(err)
        try:  # the final counts close the progress list
            prog.append((float(res['seconds']), int(res['requests']), int(res['neg_tokens']),
                         int(res['ntlm_handshakes'])))
        except (KeyError, ValueError):
            pass
        res.update(rss_figures(samples, prog, warmup_min_s=warmup_min_s))
        res['samples'] = samples
        return res

    def close(self):
        try:
            self.daemon.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            if self.own_realm:
                self.realm.close()


def parse_progress(stderr):
    """gh-soak's progress lines -> [(t, requests, neg_tokens, ntlm_handshakes)]."""
    out = []
    for line in stderr.splitlines():
        if not line.startswith('progress '):
            continue
        kv = dict(x.split('=', 1) for x in line.split()[1:] if '=' in x)
        try:
            out.append((float(kv['t']), int(kv['requests']), int(kv.get('neg_tokens', 0)),
                        int(kv.get('ntlm_handshakes', 0))))
        except (KeyError, ValueError):
            pass
    return out


# The daemon's Kerberos replay cache (src/lib/httpapi/auth/auth_rcache.c): 32 shards, each an
# open-addressing table of 16-byte slots, 1024 at first, doubled when a shard reaches 3/4 load
# with nothing expired. An entry lives for the window (2 x clockskew + 60 s, at least 660 s), so
# a run shorter than that only ever fills it: the tables are bounded by the window, not by the run.
RC_SHARDS, RC_SLOT, RC_MIN_CAP = 32, 16, 1024


def rcache_bytes(tokens):
    """Expected bytes of the replay cache's tables after `tokens` authenticators (all inside the
    window), the shards' counts binomial(tokens, 1/32) (normal approximation)."""
    if tokens <= 0:
        return 0
    import math
    p = 1.0 / RC_SHARDS
    mu, sd = tokens * p, math.sqrt(tokens * p * (1 - p)) or 1.0
    cap, exp_cap = RC_MIN_CAP, float(RC_MIN_CAP)
    while cap < (1 << 19):
        trigger = cap * 3 // 4  # the insert that finds n + 1 > 3/4 cap doubles the table
        pr = 0.5 * math.erfc((trigger - 0.5 - mu) / (sd * math.sqrt(2)))
        if pr < 1e-6:
            break
        exp_cap += pr * cap
        cap *= 2
    return int(RC_SHARDS * RC_SLOT * exp_cap)


NTLM_LEAK_BYTES = 6 * 1024  # gss-ntlmssp 1.2, per accepted handshake (security.md, open items)


def rss_figures(samples, progress=None, warmup_frac=0.1, warmup_min_s=10.0):
    """Warm-up = the first 10 % of the requests (from gh-soak's progress lines; 10 % of the
    time without them), and at least the first 10 s (256 connections opening, every worker's
    arena and buffers reaching their working size). Baseline = the RSS sampled when warm-up ended, final = the last sample,
    peak = the highest after warm-up; growth in percent. Also the RSS at every 10 % of the
    requests, and what the two known bounded/foreign growths account for between warm-up and
    the end: the Kerberos replay cache filling (tokens in that span) and gss-ntlmssp's leak
    (handshakes in that span)."""
    if len(samples) < 5:
        return {'rss_samples': len(samples)}
    progress = progress or []
    total_req = progress[-1][1] if progress else 0

    def time_at(frac):
        if not progress or total_req == 0:
            return samples[-1][0] * frac
        want = total_req * frac
        prev = (0.0, 0, 0, 0)
        for p in progress:
            if p[1] >= want:
                span = p[1] - prev[1]
                return prev[0] + (p[0] - prev[0]) * ((want - prev[1]) / span if span else 1)
            prev = p
        return progress[-1][0]

    def at(t):
        after = [x for x in samples if x[0] >= t]
        return after[0] if after else samples[-1]

    def progress_at(t):
        best = (0.0, 0, 0, 0)
        for p in progress:
            if p[0] <= t + 0.5:
                best = p
        return best

    tw = min(max(time_at(warmup_frac), warmup_min_s), samples[-1][0] * 0.8)
    base = at(tw)
    fin = samples[-1]
    after = [x[1] for x in samples if x[0] >= tw]
    b, f = base[1], fin[1]
    pw, pe = progress_at(tw), (progress[-1] if progress else (0.0, 0, 0, 0))
    rc_kb = (rcache_bytes(pe[2]) - rcache_bytes(pw[2])) // 1024
    ntlm_kb = max(0, pe[3] - pw[3]) * NTLM_LEAK_BYTES // 1024
    curve = [at(time_at(i / 10))[1] for i in range(11)]
    curve[0] = samples[0][1]
    return {'rss_samples': len(samples), 'rss_start_kb': samples[0][1],
            'warmup_s': round(tw, 1), 'warmup_requests': pw[1],
            'rss_baseline_kb': b, 'rss_final_kb': f, 'rss_peak_kb': max(after),
            'anon_baseline_kb': base[2], 'anon_final_kb': fin[2],
            'file_baseline_kb': base[3], 'file_final_kb': fin[3],
            'rss_growth_pct': round((f / b - 1) * 100, 2),
            'rss_peak_growth_pct': round((max(after) / b - 1) * 100, 2),
            'rcache_tokens_warm': pw[2], 'rcache_tokens_end': pe[2], 'rcache_growth_kb': rc_kb,
            'ntlm_handshakes_after_warmup': max(0, pe[3] - pw[3]), 'ntlm_leak_kb': ntlm_kb,
            'rss_growth_net_pct': round(((f - rc_kb - ntlm_kb) / b - 1) * 100, 2),
            'rss_curve_kb': ','.join(str(c) for c in curve)}
