"""test_module_authz.py: the authz module in the real daemon — 401 anonymous, 403 denied, deny before allow, groups through is_in_role, parent before child, verbs (DESIGN.md §2 item 24)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gh_realm import realm  # noqa: E402,F401
from pipeline_helpers import BASIC, GhDaemon, needs_daemon, needs_root  # noqa: E402

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
