"""conftest.py: pytest fixtures shared by the integration tests (gatehoused runner, the Samba AD DC)."""
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import GATEHOUSED, Daemon  # noqa: E402


@pytest.fixture
def gatehoused(tmp_path):
    """Factory: gatehoused(server={...}, sites=[...]) starts a daemon; all are stopped at the end."""
    if not os.path.exists(GATEHOUSED):
        pytest.skip(f'{GATEHOUSED} not built')
    started = []

    def make(server=None, sites=None, listen=None, start=True):
        d = Daemon(server=server, sites=sites, tmpdir=str(tmp_path / f'd{len(started)}'), listen=listen) \
            if os.makedirs(tmp_path / f'd{len(started)}', exist_ok=True) is None else None
        started.append(d)
        return d.start() if start else d

    yield make
    for d in started:
        d.stop()


# ---- the Samba AD domain controller (gh_ad_realm.py): one per pytest run ----

_AD = {}


def _uses_ad(item):
    return 'ad_realm' in getattr(item, 'fixturenames', ())


def pytest_collection_modifyitems(session, config, items):
    """Keeps the tests that use the DC next to each other (stable order), so that the DC
    is started once and stopped as soon as the last of them is done."""
    ad = [i for i in items if _uses_ad(i)]
    if not ad or len(ad) == len(items):
        return
    first = items.index(ad[0])
    rest = [i for i in items if not _uses_ad(i)]
    items[:] = rest[:first] + ad + rest[first:]


@pytest.fixture(scope='session')
def ad_realm():
    """The throwaway AD.TEST domain controller. A DC that cannot be provisioned or started
    fails every test that uses it, with the DC's log in the message (never a skip)."""
    from gh_ad_realm import GhAdRealm
    t = time.monotonic()
    try:
        r = GhAdRealm()
    except Exception as e:  # noqa: BLE001 - the message carries the DC's log
        pytest.fail(f'the Samba AD DC did not start: {e}', pytrace=False)
    r.timings['total'] = time.monotonic() - t
    _AD['realm'] = r
    sys.stderr.write(f'\n[ad_realm] DC {r.address} ready in {r.timings["total"]:.1f} s ('
                     + ', '.join(f'{k} {v:.1f} s' for k, v in r.timings.items() if k != 'total')
                     + ')\n')
    yield r
    r.close()


@pytest.fixture(scope='module')
def ad_gh(ad_realm):
    """gatehoused with the AD sites of ad_helpers.py, one per test module."""
    from ad_helpers import AdDaemon
    d = AdDaemon(ad_realm).start()
    yield d
    d.stop()


@pytest.fixture(scope='module')
def ad_cc(ad_realm):
    """Client environments with a forwardable TGT from the Samba KDC, per user."""
    return {u: ad_realm.kinit(u) for u in ('carla', 'dmitri')}


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    """Stops the DC after the last test that needs it (not at the end of the session)."""
    r = _AD.get('realm')
    if r is not None and not r.closed and (nextitem is None or not _uses_ad(nextitem)):
        r.close()
