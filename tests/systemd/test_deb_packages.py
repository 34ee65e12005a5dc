"""test_deb_packages.py: what `make deb` produced, checked on the host — each file in the package it belongs to, the conffiles, lintian without errors, and the example module of libgatehouse-dev building against the unpacked -dev and library packages alone."""
import glob
import os
import shutil
import subprocess
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEB_DIR = os.environ.get('GH_DEB_DIR', os.path.join(ROOT, 'build-deb'))
ARCH_LIB = 'usr/lib/x86_64-linux-gnu'


def deb(name):
    found = [p for p in glob.glob(os.path.join(DEB_DIR, f'{name}_*.deb'))]
    if len(found) != 1:
        pytest.fail(f'expected one {name}_*.deb in {DEB_DIR}, found {found}: run `make deb`',
                    pytrace=False)
    return found[0]


def contents(name):
    out = subprocess.run(['dpkg-deb', '-c', deb(name)], capture_output=True, text=True,
                         check=True).stdout
    return {line.split()[5].lstrip('.') for line in out.splitlines()}


def test_files_are_in_their_packages():
    g = contents('gatehouse')
    for f in ('/usr/sbin/gatehoused', '/lib/systemd/system/gatehoused.service',
              '/etc/pam.d/gatehouse', '/etc/gatehouse/gatehouse.conf',
              '/etc/logrotate.d/gatehouse', '/usr/lib/tmpfiles.d/gatehouse.conf',
              '/usr/share/man/man8/gatehoused.8.gz', '/usr/share/man/man5/gatehouse.conf.5.gz'):
        assert f in g, f
    for m in ('whoami', 'static', 'cgi', 'authz', 'log', 'proxy'):
        assert f'/{ARCH_LIB}/gatehouse/modules/{m}.so' in g, m
    assert not any('libgatehouse.so' in f or f.startswith('/usr/include') for f in g)
    lib = contents('libgatehouse0')
    assert f'/{ARCH_LIB}/libgatehouse.so.0' in lib
    assert not any(f.endswith('libgatehouse.so') for f in lib)
    dev = contents('libgatehouse-dev')
    for f in (f'/{ARCH_LIB}/libgatehouse.so', f'/{ARCH_LIB}/pkgconfig/gatehouse.pc',
              '/usr/include/gatehouse/module.h',
              '/usr/share/doc/libgatehouse-dev/examples/user_sample.c'):
        assert f in dev, f
    # the unit and the PAM file are dist/'s, byte for byte (the unit with meson's paths filled in)
    tmp = tempfile.mkdtemp(prefix='gh-deb-')
    try:
        subprocess.run(['dpkg-deb', '-x', deb('gatehouse'), tmp], check=True)
        for shipped, src in (('lib/systemd/system/gatehoused.service', 'dist/gatehoused.service'),
                             ('etc/pam.d/gatehouse', 'dist/gatehouse.pam'),
                             ('etc/gatehouse/gatehouse.conf', 'dist/gatehouse.conf')):
            want = open(os.path.join(ROOT, src)).read()
            want = want.replace('@sbindir@', '/usr/sbin').replace('@sysconfdir@', '/etc')
            assert open(os.path.join(tmp, shipped)).read() == want, shipped
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_conffiles_and_dependencies():
    info = subprocess.run(['dpkg-deb', '-I', deb('gatehouse'), 'conffiles'], capture_output=True,
                          text=True, check=True).stdout.split()
    assert sorted(info) == ['/etc/gatehouse/gatehouse.conf', '/etc/logrotate.d/gatehouse',
                            '/etc/pam.d/gatehouse']
    dep = subprocess.run(['dpkg-deb', '-f', deb('gatehouse'), 'Depends'], capture_output=True,
                         text=True, check=True).stdout
    assert 'adduser' in dep and 'libgatehouse0 (=' in dep, dep


def test_lintian_reports_no_errors():
    """The warnings we keep (if any) are listed in debian/README.source."""
    changes = glob.glob(os.path.join(DEB_DIR, '*.changes'))
    assert len(changes) == 1, changes
    p = subprocess.run(['lintian', '--tag-display-limit', '0', changes[0]], capture_output=True,
                       text=True)
    tags = [line for line in p.stdout.splitlines() if line[:2] in ('E:', 'W:')]
    assert not [t for t in tags if t.startswith('E:')], p.stdout
    kept = open(os.path.join(ROOT, 'debian', 'README.source')).read()
    for t in tags:
        assert t.split()[2] in kept, (t, 'a lintian warning not listed in debian/README.source')


def test_dev_package_builds_the_example_module():
    """libgatehouse-dev + libgatehouse0 unpacked in a directory: the example's Makefile finds
    the headers and the library through the packaged pkg-config file."""
    tmp = tempfile.mkdtemp(prefix='gh-dev-')
    try:
        root = os.path.join(tmp, 'root')
        for name in ('libgatehouse0', 'libgatehouse-dev'):
            subprocess.run(['dpkg-deb', '-x', deb(name), root], check=True)
        ex = os.path.join(tmp, 'example')
        shutil.copytree(os.path.join(root, 'usr/share/doc/libgatehouse-dev/examples'), ex)
        env = dict(os.environ, PKG_CONFIG_SYSROOT_DIR=root,
                   PKG_CONFIG_PATH=os.path.join(root, ARCH_LIB, 'pkgconfig'))
        p = subprocess.run(['make', '-C', ex], env=env, capture_output=True, text=True)
        assert p.returncode == 0, p.stdout + p.stderr
        assert f'-I{root}/usr/include' in p.stdout, p.stdout  # not the source tree's headers
        syms = subprocess.run(['nm', '-D', '--defined-only', os.path.join(ex, 'user_sample.so')],
                              capture_output=True, text=True, check=True).stdout
        assert 'gh_register_module' in syms and 'gh_module_abi' in syms, syms
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
