"""test_module_static.py: the static module in the real daemon, impersonating the client as root — real files owned by alice and bob, the kernel decides (403/404), listing as the client, ETag/304, Range 206/416, traversal refused, a root reached through a symlink."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gh_realm import realm  # noqa: E402,F401
from pipeline_helpers import (BASIC, GhDaemon, needs_daemon, needs_root, shared_dir,  # noqa: E402
                              write_owned, USERS)

pytestmark = [needs_daemon, needs_root]
DATA = ''.join(chr(ord('a') + i % 26) for i in range(1000))


@pytest.fixture(scope='module')
def tree():
    root = shared_dir('gh-static-')
    write_owned(os.path.join(root, 'alice.txt'), 'alice secret\n', 'alice')
    write_owned(os.path.join(root, 'bob.txt'), 'bob secret\n', 'bob')
    write_owned(os.path.join(root, 'public.txt'), DATA, None, 0o644)
    for user in ('alice', 'bob'):
        d = os.path.join(root, f'{user}-dir')
        os.mkdir(d)
        write_owned(os.path.join(d, f'{user}-only.txt'), 'x', user)
        os.chown(d, *USERS[user])
        os.chmod(d, 0o700)
    outside = shared_dir('gh-outside-')
    write_owned(os.path.join(outside, 'o.txt'), 'outside\n', None, 0o644)
    os.symlink(os.path.join(outside, 'o.txt'), os.path.join(root, 'escape'))
    os.symlink('public.txt', os.path.join(root, 'inside-link'))
    # a root configured through a symlink (deploy "current -> release" style)
    os.symlink(root, root + '-link')
    yield root
    os.unlink(root + '-link')
    import shutil
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(outside, ignore_errors=True)


@pytest.fixture(scope='module')
def gh(realm, tree):  # noqa: F811
    d = GhDaemon(realm, [
        ('/files', dict(BASIC, handler='static', root=tree, impersonate='yes', listing='yes')),
        ('/plain', {'handler': 'static', 'root': tree}),  # served as the service (root)
        ('/linked', dict(BASIC, handler='static', root=tree + '-link', impersonate='yes')),
    ])
    d.start()
    yield d
    d.stop()


def test_alice_reads_her_file(gh):
    r = gh.get('/files/alice.txt', user='alice')
    assert r.status == 200 and r.body == b'alice secret\n', r
    assert r.header('Content-Type').startswith('text/plain')


def test_alice_gets_403_on_bobs_file(gh):
    assert gh.get('/files/bob.txt', user='alice').status == 403
    assert gh.get('/files/bob.txt', user='bob').body == b'bob secret\n'
    # the same file through a site that does not impersonate: served as root, which keeps no
    # CAP_DAC_OVERRIDE (DESIGN.md §3) — bob's 0600 file is refused like in service-user
    # mode; a world-readable one is served
    assert gh.get('/plain/bob.txt').status == 403
    assert gh.get('/plain/public.txt').status == 200


def test_missing_is_404(gh):
    assert gh.get('/files/nope.txt', user='alice').status == 404


def test_anonymous_on_impersonating_site_is_401(gh):
    r = gh.get('/files/public.txt')
    assert r.status == 401, r
    assert r.header('WWW-Authenticate').startswith('Basic')


def test_listing_is_impersonated(gh):
    r = gh.get('/files/alice-dir/', user='alice')
    assert r.status == 200 and b'alice-only.txt' in r.body, r
    assert gh.get('/files/bob-dir/', user='alice').status == 403
    r = gh.get('/files/', user='alice')
    assert r.status == 200 and b'bob.txt' in r.body and b'alice-dir/' in r.body


def test_etag_304(gh):
    r = gh.get('/files/public.txt', user='alice')
    etag, lm = r.header('ETag'), r.header('Last-Modified')
    assert r.status == 200 and etag and lm
    r2 = gh.get('/files/public.txt', user='alice', headers={'If-None-Match': etag})
    assert r2.status == 304 and r2.body == b'' and r2.header('ETag') == etag
    r3 = gh.get('/files/public.txt', user='alice', headers={'If-Modified-Since': lm})
    assert r3.status == 304


def test_range_206_and_416(gh):
    r = gh.get('/files/public.txt', user='alice', headers={'Range': 'bytes=10-19'})
    assert r.status == 206 and r.body == DATA[10:20].encode(), r
    assert r.header('Content-Range') == f'bytes 10-19/{len(DATA)}'
    r = gh.get('/files/public.txt', user='alice', headers={'Range': 'bytes=-5'})
    assert r.status == 206 and r.body == DATA[-5:].encode()
    r = gh.get('/files/public.txt', user='alice', headers={'Range': 'bytes=5000-6000'})
    assert r.status == 416 and r.header('Content-Range') == f'bytes */{len(DATA)}'


def test_traversal_refused(gh):
    # dot segments above the root and their encoded forms: refused by the core (400)
    for p in ('/files/../../etc/passwd', '/files/%2e%2e/%2e%2e/etc/passwd',
              '/files/..%2f..%2fetc/passwd', '/files/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd'):
        r = gh.get(p, user='alice')
        assert r.status in (400, 403, 404) and b'root:' not in r.body, (p, r)
    # a symlink out of the root: refused even though alice could read the target
    r = gh.get('/files/escape', user='alice')
    assert r.status == 403 and b'outside' not in r.body, r
    # a symlink inside the root is fine
    assert gh.get('/files/inside-link', user='alice').body == DATA.encode()


def test_root_through_symlink(gh):
    # the opens fall back to root + openat2 beneath it: same answers, repeatedly
    for _ in range(3):
        assert gh.get('/linked/public.txt', user='alice').body == DATA.encode()
        assert gh.get('/linked/alice.txt', user='alice').body == b'alice secret\n'
        assert gh.get('/linked/alice.txt', user='bob').status == 403
        assert gh.get('/linked/inside-link', user='alice').body == DATA.encode()
        r = gh.get('/linked/escape', user='alice')
        assert r.status == 403 and b'outside' not in r.body, r
        assert gh.get('/linked/nope.txt', user='alice').status == 404
    # and the direct root still takes symlinks inside, refuses those out, on
    # the same worker threads after the linked root's hint
    assert gh.get('/files/inside-link', user='alice').body == DATA.encode()
    assert gh.get('/files/escape', user='alice').status == 403
    assert gh.get('/files/bob-dir/bob-only.txt', user='alice').status == 403
    assert gh.get('/files/bob-dir/bob-only.txt', user='bob').body == b'x'


def test_method_not_allowed(gh):
    r = gh.get('/files/alice.txt', user='alice', method='DELETE')
    assert r.status == 405 and 'GET' in r.header('Allow')
