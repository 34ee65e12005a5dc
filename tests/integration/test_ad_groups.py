"""test_ad_groups.py: Active Directory SIDs and groups from the PAC (issue 14 item 4) — the token carries the user's and group SIDs of the verified PAC (Kerberos) or of the DC (NTLM); group_source = pac maps them to gids through winbind (no NSS group enumeration), group_source = nss keeps getgrouplist; the nested group and the 2,000-member group work both ways; require = sid:...; whoami shows the SIDs."""
import os
import socket
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ad_helpers import STRICT, AdDaemon, body, negotiate, ntlm  # noqa: E402
from gh_ad_realm import GROUPS  # noqa: E402
from pipeline_helpers import GATEHOUSED  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not os.path.exists(GATEHOUSED), reason=f'{GATEHOUSED} not built'),
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root: impersonation of AD uids'),
]

JSON = ['-H', 'Accept: application/json']
PASSWORDS = {'carla': 'Carla-Pass-1', 'dmitri': 'Dmitri-Pass-1'}


def sid_of(ad, name):
    return ad.wbinfo('--name-to-sid', name).stdout.split()[0]


@pytest.fixture(scope='module')
def sids(ad_realm):
    names = {'carla': 'ADTEST\\carla', 'dmitri': 'ADTEST\\dmitri',
             'domain-users': 'ADTEST\\Domain Users'}
    names.update({g: f'ADTEST\\{g}' for g in ('gh-inner', 'gh-outer', 'gh-big')})
    return {k: sid_of(ad_realm, v) for k, v in names.items()}


@pytest.fixture(scope='module')
def gh(ad_realm, sids):
    sites = []
    for src in ('nss', 'pac'):
        base = {'auth': STRICT, 'group_source': src, 'handler': 'whoami'}
        sites += [
            (f'/{src}/whoami', dict(base)),
            (f'/{src}/outer', dict(base, require='group:ADTEST\\gh-outer')),
            (f'/{src}/big', dict(base, require=f'group:#{GROUPS["gh-big"]}')),
            (f'/{src}/sid-outer', dict(base, require=f'sid:{sids["gh-outer"]}')),
            (f'/{src}/sid-big', dict(base, require=f'sid:{sids["gh-big"]}')),
        ]
    d = AdDaemon(ad_realm, sites=sites).start()
    yield d
    d.stop()


@pytest.fixture(scope='module')
def no_ticket(ad_realm):
    return ad_realm.client_env(ad_realm.path('ccache-that-does-not-exist'))


def get(gh, ad_cc, no_ticket, mech, user, path, extra=None):
    if mech == 'kerberos':
        return negotiate(gh.url(path), ad_cc[user], extra=extra)
    return ntlm(gh.url(path), f'ADTEST\\{user}', PASSWORDS[user], no_ticket, extra=extra)


MECHS = ['kerberos', 'ntlm']


@pytest.mark.parametrize('mech', MECHS)
@pytest.mark.parametrize('src', ['nss', 'pac'])
def test_whoami_shows_sids_and_groups(gh, ad_cc, no_ticket, sids, mech, src):
    r = get(gh, ad_cc, no_ticket, mech, 'carla', f'/{src}/whoami', JSON)
    assert r.status == 200, (r, gh.log())
    w = body(r)
    # the user's SID first, then the groups': nested gh-outer through gh-inner (the DC
    # expands nesting into the PAC and into NTLM's SID list)
    assert w['sids'][0] == sids['carla'], w
    assert {sids['domain-users'], sids['gh-inner'], sids['gh-outer']} <= set(w['sids']), w
    assert sids['gh-big'] not in w['sids']
    assert set(w['groups']) >= {100, GROUPS['gh-inner'], GROUPS['gh-outer']}, w
    assert GROUPS['gh-big'] not in w['groups']


@pytest.mark.parametrize('mech', MECHS)
@pytest.mark.parametrize('src', ['nss', 'pac'])
def test_nested_and_2000_member_groups(gh, ad_cc, no_ticket, mech, src):
    assert get(gh, ad_cc, no_ticket, mech, 'carla', f'/{src}/outer').status == 200, gh.log()
    assert get(gh, ad_cc, no_ticket, mech, 'dmitri', f'/{src}/outer').status == 403
    r = get(gh, ad_cc, no_ticket, mech, 'dmitri', f'/{src}/big')
    assert r.status == 200 and 'uid="21002"' in r.text, (r, gh.log())
    assert get(gh, ad_cc, no_ticket, mech, 'carla', f'/{src}/big').status == 403


@pytest.mark.parametrize('mech', MECHS)
def test_require_sid(gh, ad_cc, no_ticket, mech):
    assert get(gh, ad_cc, no_ticket, mech, 'carla', '/pac/sid-outer').status == 200, gh.log()
    assert get(gh, ad_cc, no_ticket, mech, 'dmitri', '/pac/sid-outer').status == 403
    assert get(gh, ad_cc, no_ticket, mech, 'dmitri', '/nss/sid-big').status == 200
    assert get(gh, ad_cc, no_ticket, mech, 'carla', '/nss/sid-big').status == 403


def test_pac_groups_are_exactly_the_mapped_sids(gh, ad_cc, ad_realm):
    # group_source = pac: the gids are the PAC's group SIDs through winbind, nothing from
    # getgrouplist: the domain groups, and the ExtraSid S-1-18-1 ("authentication
    # authority asserted identity"), which winbind maps to an id as Windows puts it in
    # the token; nss: getgrouplist, the domain groups only
    pac = body(negotiate(gh.url('/pac/whoami'), ad_cc['carla'], extra=JSON))
    nss = body(negotiate(gh.url('/nss/whoami'), ad_cc['carla'], extra=JSON))
    asserted = int(ad_realm.wbinfo('--sid-to-gid', 'S-1-18-1').stdout.split()[0])
    domain = {100, GROUPS['gh-inner'], GROUPS['gh-outer']}
    assert sorted(pac['groups']) == sorted(domain | {asserted}), pac
    assert set(nss['groups']) == domain, nss
    assert 'S-1-18-1' in pac['sids'] and 'S-1-18-1' in nss['sids']


@pytest.fixture
def gh_nocache(ad_realm):
    # no cached answers (accounts, group lists, SID identities): every request asks winbind
    sites = [(f'/{src}/whoami', {'auth': STRICT, 'group_source': src, 'handler': 'whoami'})
             for src in ('nss', 'pac')]
    d = AdDaemon(ad_realm, sites=sites,
                 server={'group_cache_ttl': 0, 'name_map_cache_ttl': 0}).start()
    yield d
    d.stop()


def test_winbind_down_is_503_and_recovers(gh, gh_nocache, ad_cc, ad_realm):
    # a Kerberos ticket is checked with the keytab alone, but the SID's account and the
    # PAC's gids need winbind: without it and without a cached answer the request is 503
    # (the server's failure, not the client's), never a token with fewer groups; within
    # the caches' TTL the answer winbind gave before is served (the shared daemon `gh`);
    # back with winbind, no restart
    env = ad_cc['carla']
    for src in ('pac', 'nss'):
        assert negotiate(gh.url(f'/{src}/whoami'), env).status == 200
    assert negotiate(gh_nocache.url('/pac/whoami'), env).status == 200
    ad_realm.stop()
    try:
        for src in ('pac', 'nss'):
            r = negotiate(gh_nocache.url(f'/{src}/whoami'), env)
            assert r.status == 503, (src, r, gh_nocache.log())
            # cached a moment ago: the same answer while the TTLs last (name_map_cache_ttl
            # 5 s, group_cache_ttl 60 s), then 503; never another user or a 401
            r = negotiate(gh.url(f'/{src}/whoami'), env)
            assert r.status in (200, 503), (src, r, gh.log())
            assert r.status == 503 or 'uid="21001"' in r.text, (src, r, gh.log())
    finally:
        ad_realm.start()
    deadline = time.monotonic() + 30
    while True:
        r = negotiate(gh.url('/pac/whoami'), env)
        if r.status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert r.status == 200 and 'groups="100,31001,31002' in r.text, (r, gh.log())
