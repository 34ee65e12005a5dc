"""test_module_authz.py: the authz module in the real daemon — 401 anonymous, 403 denied, deny before allow, groups through is_in_role (large groups, NSS failures, peer_groups), parent before child, verbs (DESIGN.md §2 items 24, 26)."""
import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gh_realm import realm  # noqa: E402,F401
from pipeline_helpers import BASIC, GhDaemon, curl, needs_daemon, needs_root, shared_dir  # noqa: E402

pytestmark = [needs_daemon, needs_root]


@pytest.fixture(scope='module')
def gh(realm):  # noqa: F811
    d = GhDaemon(realm, [
        ('/valid', dict(BASIC, handler='whoami', require='valid-user')),
        # bob is allowed by name but ghusers (alice, bob) is denied: deny wins
        ('/deny-first', dict(BASIC, handler='whoami', require='user:bob user:carol deny:group:ghusers')),
        ('/group', dict(BASIC, handler='whoami', require='group:ghusers')),
        ('/tree', dict(BASIC, handler='whoami', require=['valid-user'],
                       **{'require /admin': 'deny:user:alice'})),
        ('/verbs', dict(BASIC, handler='whoami', require='valid-user deny:*:DELETE')),
        ('/anon-ok', dict(BASIC, handler='whoami', require='* deny:user:bob')),
    ])
    d.start()
    yield d
    d.stop()


def test_anonymous_gets_401_with_challenge(gh):
    r = gh.get('/valid')
    assert r.status == 401, r
    assert r.header('WWW-Authenticate').startswith('Basic')
    assert gh.get('/valid', user='carol').status == 200


def test_deny_before_allow(gh):
    assert gh.get('/deny-first', user='bob').status == 403
    assert gh.get('/deny-first', user='alice').status == 403
    assert gh.get('/deny-first', user='carol').status == 200


def test_group_through_is_in_role(gh):
    assert gh.get('/group', user='alice').status == 200
    assert gh.get('/group', user='bob').status == 200
    assert gh.get('/group', user='carol').status == 403


def test_parent_then_child(gh):
    assert gh.get('/tree/x', user='alice').status == 200
    assert gh.get('/tree/admin', user='alice').status == 403
    assert gh.get('/tree/admin/deeper', user='alice').status == 403
    assert gh.get('/tree/admin', user='bob').status == 200


def test_verbs(gh):
    assert gh.get('/verbs', user='alice').status == 200
    assert gh.get('/verbs', user='alice', method='DELETE').status == 403


def test_star_allows_anonymous_but_deny_still_applies(gh):
    assert gh.get('/anon-ok').status == 200
    assert gh.get('/anon-ok', user='alice').status == 200
    assert gh.get('/anon-ok', user='bob').status == 403


# ---- group rules against large groups and a failing NSS (DESIGN.md §2 item 26) ----
# carol is the last member of each group, after the fillers; alice is in none.
# A Basic or Negotiate token gets carol's groups from NSS; a peer token gets
# the kernel's, so the peer client runs with these gids.
BIG_GROUPS = {'members10': (40010, 10), 'members2k': (40020, 2000), 'members20k': (40030, 20000)}
GROUP_AUTH = {'auth': 'negotiate basic peer anonymous', 'basic_over_plain_http': 'yes'}
SCHEMES = ('basic', 'negotiate', 'peer')


def write_group_file(realm, path, mode=0o644):  # noqa: F811
    """The realm's group file plus BIG_GROUPS, for NSS_WRAPPER_GROUP."""
    with open(realm.group) as f:
        lines = [f.read().rstrip('\n')]
    for name, (gid, n) in BIG_GROUPS.items():
        lines.append(f'{name}:x:{gid}:' + ','.join([f'm{i:05d}' for i in range(n - 1)] + ['carol']))
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    os.chmod(path, mode)
    return path


def group_sites():
    sites = [('/valid', dict(GROUP_AUTH, handler='whoami', require='valid-user'))]
    for g in list(BIG_GROUPS) + ['no-such-group']:
        sites.append((f'/deny-{g}', dict(GROUP_AUTH, handler='whoami',
                                         require=f'valid-user deny:group:{g}')))
        sites.append((f'/allow-{g}', dict(GROUP_AUTH, handler='whoami', require=f'group:{g}')))
    # an undecided group rule next to rules that settle some requests anyway
    sites.append(('/mixed-deny', dict(GROUP_AUTH, handler='whoami',
                                      require='valid-user deny:group:members2k deny:user:alice')))
    sites.append(('/mixed-allow', dict(GROUP_AUTH, handler='whoami',
                                       require='group:members2k user:alice')))
    return sites


class Clients:
    """One request as a realm user through Basic, Negotiate (curl
    --negotiate with a ticket) or peer credentials (curl on the unix socket
    running as the user)."""

    def __init__(self, realm, d, ccdir):  # noqa: F811
        self.d = d
        self.env = {u: realm.kinit(u, ccache=os.path.join(ccdir, f'cc_{u}')) for u in ('alice', 'carol')}

    def status(self, scheme, user, path):
        if scheme == 'basic':
            return self.d.get(path, user=user).status
        if scheme == 'negotiate':
            return curl(f'http://localhost:{self.d.port}{path}', extra=['--negotiate', '-u', ':'],
                        env=self.env[user]).status
        gids = [gid for gid, _ in BIG_GROUPS.values()] if user == 'carol' else []
        return self.d.get(path, unix=True, as_user=user, groups=gids).status


def group_daemon(realm, mode):  # noqa: F811
    tmp = shared_dir('gh-groups-')
    path = write_group_file(realm, os.path.join(tmp, 'group'), mode)
    d = GhDaemon(realm, group_sites(), env={'NSS_WRAPPER_GROUP': path})
    d.start()
    return d, Clients(realm, d, tmp), tmp


@pytest.fixture(scope='module')
def big(realm):  # noqa: F811
    d, c, tmp = group_daemon(realm, 0o644)
    yield d, c
    d.stop()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope='module')
def nss_down(realm):  # noqa: F811
    """NSS_WRAPPER_GROUP is unreadable: the workers (no CAP_DAC_OVERRIDE)
    get EACCES from every group lookup."""
    d, c, tmp = group_daemon(realm, 0o000)
    yield d, c
    d.stop()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize('scheme', SCHEMES)
@pytest.mark.parametrize('group', list(BIG_GROUPS))
def test_deny_group_of_any_size(big, scheme, group):
    """deny:group: denies a member whatever the size of the group (a
    2,000-member group used to overflow a fixed NSS buffer: 200)."""
    d, c = big
    assert c.status(scheme, 'carol', f'/deny-{group}') == 403
    assert c.status(scheme, 'alice', f'/deny-{group}') == 200


@pytest.mark.parametrize('scheme', SCHEMES)
@pytest.mark.parametrize('group', list(BIG_GROUPS))
def test_allow_group_of_any_size(big, scheme, group):
    d, c = big
    assert c.status(scheme, 'carol', f'/allow-{group}') == 200
    assert c.status(scheme, 'alice', f'/allow-{group}') == 403


def test_unknown_group_is_not_a_member_and_logged(big):
    d, c = big
    assert c.status('basic', 'carol', '/deny-no-such-group') == 200
    assert c.status('basic', 'carol', '/allow-no-such-group') == 403
    assert "no group named 'no-such-group'" in d.log(), d.log()


@pytest.mark.parametrize('scheme', SCHEMES)
def test_nss_failure_never_admits(nss_down, scheme):
    """An NSS error on a group rule is "could not decide": 503 through a
    deny rule and through an allow rule, for members and non-members alike;
    rules without groups are unaffected."""
    d, c = nss_down
    for user in ('carol', 'alice'):
        assert c.status(scheme, user, '/valid') == 200
        for g in BIG_GROUPS:
            assert c.status(scheme, user, f'/deny-{g}') == 503, (user, g, d.log()[-2000:])
            assert c.status(scheme, user, f'/allow-{g}') == 503, (user, g)


def test_nss_failure_other_rules_still_decide(nss_down, big):
    """Three-valued: a deny rule that surely matches still gives 403, an
    allow rule that surely matches still admits; only a request whose answer
    hangs on the undecided rule gets 503."""
    d, c = nss_down
    assert c.status('basic', 'alice', '/mixed-deny') == 403
    assert c.status('basic', 'carol', '/mixed-deny') == 503
    assert c.status('basic', 'alice', '/mixed-allow') == 200
    assert c.status('basic', 'carol', '/mixed-allow') == 503
    # the same sites with NSS working
    d, c = big
    assert c.status('basic', 'alice', '/mixed-deny') == 403
    assert c.status('basic', 'carol', '/mixed-deny') == 403
    assert c.status('basic', 'alice', '/mixed-allow') == 200
    assert c.status('basic', 'carol', '/mixed-allow') == 200


def test_nss_failure_log_names_group_and_error(nss_down):
    d, c = nss_down
    assert c.status('basic', 'carol', '/deny-members2k') == 503
    lines = [ln for ln in d.log().splitlines() if "'members2k'" in ln]
    assert lines and 'Permission denied' in lines[-1], d.log()[-2000:]


# ---- peer_groups = kernel | nss (issue 12 item 10) ----
@pytest.fixture(scope='module')
def peer_nss(realm):  # noqa: F811
    tmp = shared_dir('gh-groups-')
    path = write_group_file(realm, os.path.join(tmp, 'group'))
    d = GhDaemon(realm, group_sites(), server={'peer_groups': 'nss'},
                 env={'NSS_WRAPPER_GROUP': path})
    d.start()
    yield d
    d.stop()
    shutil.rmtree(tmp, ignore_errors=True)


def test_peer_groups_are_the_kernels_by_default(big):
    """A peer is what its process holds (SO_PEERGROUPS), not what NSS lists:
    carol without the gid is not a member, alice holding it is."""
    d, _ = big
    assert d.get('/allow-members10', unix=True, as_user='carol').status == 403
    assert d.get('/deny-members10', unix=True, as_user='carol').status == 200
    assert d.get('/allow-members10', unix=True, as_user='alice', groups=[40010]).status == 200


def test_peer_groups_nss(peer_nss):
    """peer_groups = nss: a peer's groups come from NSS, as for Basic and
    Negotiate, whatever its process holds."""
    d = peer_nss
    assert d.get('/allow-members10', unix=True, as_user='carol').status == 200
    assert d.get('/deny-members2k', unix=True, as_user='carol').status == 403
    assert d.get('/deny-members20k', unix=True, as_user='carol', groups=[40030]).status == 403
    assert d.get('/allow-members10', unix=True, as_user='alice', groups=[40010]).status == 403
    assert d.get('/deny-members10', unix=True, as_user='alice', groups=[40010]).status == 200


def test_peer_groups_bad_value_is_refused(realm):  # noqa: F811
    d = GhDaemon(realm, [('/', {'handler': 'whoami'})], server={'peer_groups': 'both'})
    try:
        rc, err = d.check()
    finally:
        d.stop()
    assert rc != 0 and 'peer_groups' in err and "'both' is not kernel or nss" in err, err


def test_reload_changes_require_rules(realm):  # noqa: F811
    """The rules are read once per site and configuration: a reload that changes them (site and
    sub-path lines, a sub path added) takes effect on the next request, on every worker."""
    d = GhDaemon(realm, [
        ('/r', dict(BASIC, handler='whoami', require='user:alice', **{'require /a': 'deny:user:alice'})),
    ])
    d.start()
    try:
        for _ in range(4):  # every worker builds its view of the old rules
            assert d.get('/r/x', user='alice').status == 200
            assert d.get('/r/x', user='bob').status == 403
            assert d.get('/r/a/y', user='alice').status == 403
            assert d.get('/r/ab', user='alice').status == 200
        d.reload([('/r', dict(BASIC, handler='whoami', require='user:bob',
                               **{'require /b': 'deny:user:bob'}))])
        for _ in range(4):
            assert d.get('/r/x', user='alice').status == 403
            assert d.get('/r/x', user='bob').status == 200
            assert d.get('/r/a/y', user='bob').status == 200
            assert d.get('/r/b', user='bob').status == 403
            assert d.get('/r/b/', user='bob').status == 403
    finally:
        d.stop()
