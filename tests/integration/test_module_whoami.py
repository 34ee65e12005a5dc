"""test_module_whoami.py: the whoami module in the real daemon — XML and JSON for Basic (PAM) and peer-credential clients, anonymous without a token (DESIGN.md §2 items 12, 25; seed 000)."""
import json
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gh_realm import realm  # noqa: E402,F401
from pipeline_helpers import BASIC, GHUSERS, USERS, GhDaemon, needs_daemon, needs_root  # noqa: E402

pytestmark = [needs_daemon, needs_root]


@pytest.fixture(scope='module')
def gh(realm):  # noqa: F811
    d = GhDaemon(realm, [
        ('/whoami', dict(BASIC, handler='whoami')),
        ('/peer', {'handler': 'whoami', 'auth': 'peer anonymous'}),
    ])
    d.start()
    yield d
    d.stop()


def attrs(xml):
    m = re.search(r'<user ([^>]*)/>', xml)
    assert m, xml
    return dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))


def test_xml_for_basic_user(gh):
    r = gh.get('/whoami', user='alice')
    assert r.status == 200, r
    assert r.header('Content-Type').startswith('application/xml') or \
        r.header('Content-Type').startswith('text/xml'), r
    a = attrs(r.text)
    assert a['name'] == 'alice' and a['authType'] == 'Basic'
    assert a['impersonationToken'] == 'valid'
    assert a['uid'] == str(USERS['alice'][0])
    groups = {int(g) for g in re.split(r'[ ,]+', a['groups']) if g}
    assert {USERS['alice'][1], GHUSERS} <= groups


def test_json_when_asked(gh):
    r = gh.get('/whoami', user='bob', headers={'Accept': 'application/json'})
    assert r.status == 200 and r.header('Content-Type').startswith('application/json'), r
    j = json.loads(r.body)
    assert j['name'] == 'bob' and j['authType'] == 'Basic'
    assert j['impersonationToken'] == 'valid' and j['uid'] == USERS['bob'][0]
    assert GHUSERS in j['groups'] and USERS['bob'][1] in j['groups']


def test_anonymous_has_no_token(gh):
    r = gh.get('/whoami', headers={'Accept': 'application/json'})
    assert r.status == 200, r
    j = json.loads(r.body)
    assert j['name'] == '' and j['impersonationToken'] == 'NULL' and j['uid'] is None


def test_wrong_password_is_not_a_user(gh):
    r = gh.get('/whoami', user='alice', password='wrong', headers={'Accept': 'application/json'})
    # a failed handshake on an anonymous-allowed site reaches the module as no user
    assert r.status == 200, r
    assert json.loads(r.body)['impersonationToken'] == 'NULL'


def test_peer_credentials_over_unix_socket(gh):
    r = gh.get('/peer', unix=True, as_user='carol', headers={'Accept': 'application/json'})
    assert r.status == 200, r
    j = json.loads(r.body)
    assert j['uid'] == USERS['carol'][0] and j['impersonationToken'] == 'valid'
    assert j['authType'] in ('Peer', 'peer'), j
