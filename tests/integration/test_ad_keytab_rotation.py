"""test_ad_keytab_rotation.py: keytab rotation the Active Directory way against the Samba AD DC (gh_ad_realm.py) — the service account's password changes on the DC and `samba-tool domain exportkeytab` writes the new keys over the old keytab while Kerberos requests keep coming: none fails (clients holding tickets of the old key version and clients with new tickets), and the daemon is not restarted (issue 14 item 6)."""
import os
import re
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ad_helpers import AdDaemon, gssclient  # noqa: E402
from pipeline_helpers import GATEHOUSED  # noqa: E402
from test_auth_http import Raw  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not os.path.exists(GATEHOUSED), reason=f'{GATEHOUSED} not built'),
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root: impersonation of AD uids'),
]

# an account of its own, so that its new key version touches no other test's keytab
ACCOUNT, HOST = 'ghrot', 'rot.ad.test'
SPN = f'HTTP/{HOST}'
TARGET = f'HTTP@{HOST}'


def samba_tool(ad, *args):
    return ad.run(['samba-tool'] + list(args) + ['-s', ad.smb_conf], env=ad.base_env())


def kvno_of(ad, env):
    """The key version of the service ticket the client's ccache gets for SPN."""
    p = ad.run(['kvno', f'{SPN}@{ad.realm}'], env=env)
    return int(re.search(r'kvno = (\d+)', p.stdout).group(1))


@pytest.fixture
def rot_account(ad_realm):
    ad = ad_realm
    samba_tool(ad, 'user', 'create', ACCOUNT, '--random-password')
    try:
        samba_tool(ad, 'user', 'setexpiry', ACCOUNT, '--noexpiry')
        samba_tool(ad, 'spn', 'add', SPN, ACCOUNT)
        ad.run(['ldbmodify', '-H', ad.sam_ldb], input=(
            f'dn: CN={ACCOUNT},CN=Users,DC=ad,DC=test\nchangetype: modify\n'
            'replace: msDS-SupportedEncryptionTypes\nmsDS-SupportedEncryptionTypes: 24\n'))
        kt = ad.path('rot.keytab')
        samba_tool(ad, 'domain', 'exportkeytab', kt, f'--principal={SPN}')
        yield kt
    finally:
        samba_tool(ad, 'user', 'delete', ACCOUNT)


def test_password_change_and_export_over_the_keytab_under_load(ad_realm, rot_account, tmp_path):
    ad = ad_realm
    d = AdDaemon(ad, server={'keytab': rot_account},
                 sites=[('/info', {'handler': 'authinfo', 'auth': 'negotiate',
                                   'probe_dir': str(tmp_path)})])
    os.chmod(tmp_path, 0o1777)
    d.start()
    try:
        # clients that already hold a service ticket of the old key version
        old = {u: ad.kinit(u, ccache=str(tmp_path / f'cc_{u}')) for u in ('carla', 'dmitri')}
        kv_old = kvno_of(ad, old['carla'])
        assert kvno_of(ad, old['dmitri']) == kv_old
        results, stop = [], threading.Event()

        def one(user, env):
            tok = gssclient(env, 'token', TARGET)['token']
            c = Raw(d.gh)
            try:
                st, _, b = c.get('/info', 'Negotiate ' + tok)
            finally:
                c.close()
            results.append((user, st, b.get('status') if isinstance(b, dict) else b))

        def load(user):
            while not stop.is_set():
                one(user, old[user])

        threads = [threading.Thread(target=load, args=(u,)) for u in old]
        for t in threads:
            t.start()
        try:
            time.sleep(1)
            # the AD way: a new password for the service account, then its keys exported
            # over the keytab the daemon reads (the DC's own tools, the DC running)
            samba_tool(ad, 'user', 'setpassword', ACCOUNT, '--random-password')
            samba_tool(ad, 'domain', 'exportkeytab', rot_account, f'--principal={SPN}')
            # a client that gets its ticket now gets the new key version at once
            new = ad.kinit('carla', ccache=str(tmp_path / 'cc_new'))
            kv_new = kvno_of(ad, new)
            assert kv_new == kv_old + 1, (kv_old, kv_new)
            for _ in range(5):
                one('carla-new', new)
            time.sleep(1)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        failed = [r for r in results if r[1] != 200 or r[2] != 'SUCCESS']
        assert not failed, (failed, d.log())
        assert sum(1 for r in results if r[0] != 'carla-new') >= 10, results
        assert sum(1 for r in results if r[0] == 'carla-new') == 5, results
        assert re.search(r'keytab \S+ re-read \([^)]*\): [1-9]\d* new key', d.log()), d.log()
        # the old tickets still work after the rotation (keys are only ever added)
        one('carla', old['carla'])
        assert results[-1][1:] == (200, 'SUCCESS'), (results[-1], d.log())
    finally:
        d.stop()
