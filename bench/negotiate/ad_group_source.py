#!/usr/bin/python3
"""ad_group_source.py: per-request cost of group_source = nss versus pac against a throwaway Samba AD DC (gh_ad_realm.py): N Kerberos requests re-authenticating on one curl connection, 3 rounds. Usage: bench/negotiate/ad_group_source.py [N] from the source tree, after a build in build/."""
import os, sys, time, subprocess
sys.path.insert(0, 'tests/integration')
os.environ.setdefault('GH_BUILD_DIR', os.path.abspath('build')); os.environ.setdefault('GH_SOURCE_DIR', os.path.abspath('.'))
from gh_ad_realm import GhAdRealm
from ad_helpers import AdDaemon, STRICT
N = int(sys.argv[1]) if len(sys.argv) > 1 else 200
with GhAdRealm() as ad:
    sites = [(f'/{s}', {'handler': 'whoami', 'auth': STRICT, 'group_source': s}) for s in ('nss', 'pac')]
    d = AdDaemon(ad, sites=sites).start()
    try:
        env = ad.kinit('carla')
        for rnd in range(3):
            for s in ('nss', 'pac'):
                urls = [d.url(f'/{s}')] * N
                t = time.monotonic()
                p = subprocess.run(['curl', '-s', '-w', '%{http_code}\n', '--negotiate', '-u', ':'] + urls, env=env, capture_output=True, text=True)
                dt = time.monotonic() - t
                print(f'round {rnd} {s}: {N} Kerberos requests on one connection {dt:.2f} s = '
                      f'{dt/N*1e3:.2f} ms/request, all 200: {p.stdout.count("200") >= N}')
    finally:
        d.stop()
