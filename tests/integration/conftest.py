"""conftest.py: pytest fixtures shared by the integration tests (gatehoused runner)."""
import os
import sys

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
