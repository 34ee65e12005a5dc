"""test_daemon_demo.py: `make demo` end to end — scripts/demo --check starts the realm and gatehoused and runs every command it prints (kinit + curl --negotiate, curl -u, cgi)."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pipeline_helpers import BUILD, ROOT, free_port, needs_daemon, needs_root  # noqa: E402

pytestmark = [needs_daemon, needs_root]


def test_demo_commands_work():
    p = subprocess.run(['/usr/bin/python3', os.path.join(ROOT, 'scripts', 'demo'), '--check',
                        '--port', str(free_port()), '--build', BUILD],
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    assert 'all commands answered as expected' in p.stdout
    assert 'export KRB5_CONFIG=' in p.stdout and 'kinit alice@GH.TEST' in p.stdout
    assert p.stdout.count('[ok]') >= 10
