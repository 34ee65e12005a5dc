"""test_daemon_install.py: `meson install --destdir` of the build puts every file gatehoused(8) lists where it belongs (binary, library, modules, systemd unit with its paths filled in, PAM service, man pages, headers, pkg-config file), and the staged gatehoused checks a configuration and serves a module's site from there with no LD_LIBRARY_PATH and no module_dir (RUNPATH and module directory relative to the binary)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pipeline_helpers import BUILD, curl, free_port, needs_daemon  # noqa: E402

pytestmark = [needs_daemon,
              pytest.mark.skipif(shutil.which('meson') is None, reason='meson not installed')]


def options():
    out = subprocess.check_output(['meson', 'introspect', BUILD, '--buildoptions'], text=True)
    return {o['name']: o['value'] for o in json.loads(out)}


def clean_env():
    env = dict(os.environ)
    for k in ('LD_LIBRARY_PATH', 'LD_PRELOAD', 'JOURNAL_STREAM', 'NOTIFY_SOCKET'):
        env.pop(k, None)
    return env


@pytest.fixture(scope='module')
def staged(tmp_path_factory):
    """(destdir, the build's install options, root of the prefix inside destdir)."""
    dest = str(tmp_path_factory.mktemp('destdir'))
    p = subprocess.run(['meson', 'install', '-C', BUILD, '--destdir', dest, '--no-rebuild',
                        '--quiet'], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    o = options()
    return dest, o, dest + o['prefix']


def under(root, *parts):
    return os.path.join(root, *parts)


def test_installed_files(staged):
    dest, o, pre = staged
    arch_lib = under(pre, o['libdir'])
    sysconf = o['sysconfdir'] if o['sysconfdir'].startswith('/') else o['prefix'] + '/' + o['sysconfdir']
    unitdir = o['systemdsystemunitdir'] or (
        None if o['prefix'] == '/usr' else o['prefix'] + '/lib/systemd/system')
    files = sorted(os.path.relpath(os.path.join(d, f), dest)
                   for d, _, fs in os.walk(dest) for f in fs)
    print('\n'.join(files))
    expect = [
        under(pre, o['sbindir'], 'gatehoused'),
        under(arch_lib, 'libgatehouse.so.0'),
        under(arch_lib, 'pkgconfig', 'gatehouse.pc'),
        under(pre, o['includedir'], 'gatehouse', 'httpapi.h'),
        under(pre, o['mandir'], 'man8', 'gatehoused.8'),
        under(pre, o['mandir'], 'man5', 'gatehouse.conf.5'),
        dest + sysconf + '/pam.d/gatehouse',
    ] + [under(arch_lib, 'gatehouse', 'modules', m + '.so')
         for m in ('whoami', 'static', 'authz', 'cgi', 'log', 'proxy')]
    if unitdir:
        expect.append(dest + unitdir + '/gatehoused.service')
    for f in expect:
        assert os.path.exists(f), (f, files)
    if unitdir:
        unit = open(dest + unitdir + '/gatehoused.service').read()
        sbin = o['prefix'] + '/' + o['sbindir']
        assert (f'ExecStart={sbin}/gatehoused -f -c {sysconf}/gatehouse/gatehouse.conf'
                in unit), unit
        assert '@sbindir@' not in unit and '@sysconfdir@' not in unit and 'Type=notify' in unit
    pam = open(dest + sysconf + '/pam.d/gatehouse').read()
    assert '@include common-auth' in pam


def test_pkg_config_file_compiles_and_links_a_program(staged, tmp_path):
    dest, o, pre = staged
    env = clean_env()
    env['PKG_CONFIG_PATH'] = under(pre, o['libdir'], 'pkgconfig')
    env['PKG_CONFIG_SYSROOT_DIR'] = dest
    flags = subprocess.check_output(['pkg-config', '--cflags', '--libs', 'gatehouse'], env=env,
                                    text=True).split()
    src = tmp_path / 'app.c'
    src.write_text('#include <gatehouse/error.h>\n#include <gatehouse/httpapi.h>\n'
                   '#include <stdio.h>\n'
                   'int main(void) { puts(gh_strerror(GH_ECONFIG)); return 0; }\n')
    exe = str(tmp_path / 'app')
    subprocess.run(['cc', str(src), '-o', exe] + flags, check=True, env=env)
    run_env = clean_env()
    run_env['LD_LIBRARY_PATH'] = under(pre, o['libdir'])  # the app has no RUNPATH of its own
    assert subprocess.check_output([exe], env=run_env, text=True) == 'invalid configuration\n'


def test_staged_gatehoused_runs_without_ld_library_path(staged, tmp_path):
    dest, o, pre = staged
    exe = under(pre, o['sbindir'], 'gatehoused')
    if o['prefix'] == '/usr':
        pytest.skip('prefix /usr: the system paths find the library, no RUNPATH is set')
    dyn = subprocess.check_output(['readelf', '-d', exe], text=True)
    assert '$ORIGIN/' in dyn and 'RUNPATH' in dyn, dyn
    port = free_port()
    conf = tmp_path / 'gatehouse.conf'
    conf.write_text(f'[server]\nlisten = 127.0.0.1:{port}\nworkers = 2\nlog = stderr\n\n'
                    '[site /w]\nhandler = whoami\n')
    env = clean_env()
    p = subprocess.run([exe, '-t', '-c', str(conf)], capture_output=True, text=True, env=env,
                       timeout=30)
    # authz is loaded whenever it is installed (rules a reload adds are enforced)
    assert p.returncode == 0 and 'configuration ok (2 modules: authz whoami)' in p.stderr, p.stderr
    err = open(tmp_path / 'err', 'wb')
    proc = subprocess.Popen([exe, '-f', '-c', str(conf)], stdout=subprocess.DEVNULL, stderr=err,
                            env=env)
    err.close()
    try:
        deadline = time.monotonic() + 20
        while 'ready (' not in (tmp_path / 'err').read_text():
            assert proc.poll() is None and time.monotonic() < deadline, \
                (tmp_path / 'err').read_text()
            time.sleep(0.02)
        maps = open(f'/proc/{proc.pid}/maps').read()
        libs = {line.split()[-1] for line in maps.splitlines()
                if 'libgatehouse' in line or '/whoami.so' in line}
        assert libs and all(lib.startswith(dest + '/') for lib in libs), libs
        r = curl(f'http://127.0.0.1:{port}/w', headers={'Accept': 'application/json'})
        assert r.status == 200, r
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
