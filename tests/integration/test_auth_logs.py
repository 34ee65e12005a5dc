"""test_auth_logs.py: each authentication failure cause gets its own log line an operator can act on — replay, clock skew, expired ticket, wrong key version, no key for the SPN, wrong SPN, malformed token, bad password (NTLM, Basic), unknown account (NTLM, Kerberos), account below min_uid — with the client address, the principal when known and the fix; produced with the real KDC and real clients, read from gatehoused's log."""
import base64
import math
import os
import re
import socket
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gh_realm import GhRealm  # noqa: E402
from test_auth_http import GATEHOUSED, Gatehoused, Raw, basic, client_env, gssclient  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not os.path.exists(GATEHOUSED), reason=f'{GATEHOUSED} not built'),
    pytest.mark.skipif(os.geteuid() != 0, reason='needs root (the realm harness and daemon)'),
]

SITES = [
    ('/', {'auth': 'negotiate ntlm basic anonymous', 'basic_over_plain_http': 'yes'}),
    ('/spn', {'auth': 'negotiate anonymous', 'allowed_spns': 'HTTP/www.gh.test'}),
]
LINE = re.compile(r'^gatehoused: (\w+) authentication failed from 127\.0\.0\.1:\d+ '
                  r'\(connection \d+\): (.*) \[([A-Z_]+)\]$')


@pytest.fixture(scope='module')
def lrealm():
    """Our own realm (a key version is bumped), with an account below min_uid."""
    r = GhRealm(extra_users={'lowuid': (500, 500, 'lowpw')})
    yield r
    r.close()


@pytest.fixture(scope='module')
def gh(lrealm, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('logs')
    # clockskew = 1 s: a token a few seconds old is skewed, a 2 s ticket expires at once
    conf = tmp / 'krb5-skew.conf'
    conf.write_text(open(lrealm.krb5_conf).read().replace(
        '[libdefaults]\n', '[libdefaults]\n  clockskew = 1\n', 1))
    d = Gatehoused(lrealm, tmp / 'd', SITES, unix=False, server={'workers': 2},
                   env={'KRB5_CONFIG': str(conf)})
    d.start()
    yield d
    d.stop()


def failure_line(d, send):
    """Runs send(); returns (scheme, message, cause) of the failure line it logged."""
    before = len([x for x in d.log().splitlines() if LINE.match(x)])
    send()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [x for x in d.log().splitlines() if LINE.match(x)]
        if len(lines) > before:
            assert len(lines) == before + 1, lines[before:]
            return LINE.match(lines[before]).groups()
        time.sleep(0.02)
    raise AssertionError('no failure line: ' + d.log())


def negotiate(d, tok, path='/'):
    def send():
        c = Raw(d)
        st, _, body = c.get(path, 'Negotiate ' + tok)
        c.close()
        assert st == 200 and body['status'] == 'FAILURE', body
    return send


def token(realm, env, spn):
    return gssclient(realm, env, 'token', 'HTTP@' + spn)['token']


def test_each_cause_has_its_own_line(gh, lrealm):
    alice = lrealm.kinit('alice')
    # made now, sent at the end: by then past the 1 s skew, and past the ticket's end
    skewed = token(lrealm, alice, 'localhost')
    t_short = time.time()
    short = lrealm.kinit('bob', lifetime='2s', ccache=lrealm.path('cc_short'))
    expired = token(lrealm, short, 'localhost')

    # replay: the same token twice
    tok = token(lrealm, alice, 'localhost')
    c = Raw(gh)
    assert c.get('/', 'Negotiate ' + tok)[2]['status'] == 'SUCCESS'
    c.close()
    scheme, msg, cause = failure_line(gh, negotiate(gh, tok))
    assert (scheme, cause) == ('Negotiate', 'REPLAY'), msg
    assert msg.startswith('replayed Kerberos token') and 'client alice@GH.TEST' in msg, msg
    assert 'service HTTP/localhost@GH.TEST' in msg and 'fix: ' in msg, msg
    assert 'Unspecified GSS failure' not in msg, msg

    # malformed: random bytes under Negotiate
    junk = base64.b64encode(os.urandom(48)).decode()
    scheme, msg, cause = failure_line(gh, negotiate(gh, junk))
    assert cause == 'MALFORMED_TOKEN' and msg.startswith('malformed token'), msg
    assert 'replay check' not in msg, msg

    # a ticket for a service principal the keytab has no key for
    scheme, msg, cause = failure_line(gh, negotiate(gh, token(lrealm, alice, 'other.gh.test')))
    assert cause == 'NO_KEY', msg
    assert 'no key for HTTP/other.gh.test@GH.TEST' in msg and 'ktadd' in msg, msg

    # a service name the site does not accept (allowed_spns)
    scheme, msg, cause = failure_line(gh, negotiate(gh, token(lrealm, alice, 'localhost'), '/spn'))
    assert cause == 'WRONG_SPN' and 'service HTTP/localhost@GH.TEST' in msg, msg
    assert 'allowed_spns' in msg, msg

    # a principal without a local account, and one below min_uid
    dave = lrealm.kinit('dave')
    scheme, msg, cause = failure_line(gh, negotiate(gh, token(lrealm, dave, 'localhost')))
    assert cause == 'UNKNOWN_ACCOUNT' and 'client dave@GH.TEST' in msg, msg
    assert 'auth_to_local' in msg and 'allow_unmapped' in msg, msg
    low = lrealm.kinit('lowuid')
    scheme, msg, cause = failure_line(gh, negotiate(gh, token(lrealm, low, 'localhost')))
    assert cause == 'ACCOUNT_REFUSED' and 'client lowuid@GH.TEST' in msg, msg
    assert 'min_uid' in msg, msg

    # NTLM: a wrong password, a user the user file does not know
    def ntlm(user, pw):
        def send():
            out = gssclient(lrealm, client_env(lrealm), 'ntlm', '127.0.0.1', str(gh.port), '/',
                            user, pw, 'HTTP@' + socket.gethostname())
            assert out['body']['status'] == 'FAILURE', out
        return send
    scheme, msg, cause = failure_line(gh, ntlm('GH\\alice', 'wrong'))
    assert (scheme, cause) == ('NTLM', 'BAD_PASSWORD') and 'client GH\\alice' in msg, msg
    scheme, msg, cause = failure_line(gh, ntlm('GH\\zed', 'whatever'))
    assert (scheme, cause) == ('NTLM', 'UNKNOWN_ACCOUNT') and 'client GH\\zed' in msg, msg
    assert 'ntlm_user_file' in msg and 'No such file' not in msg.split('[')[0], msg

    # Basic: a wrong password
    def basic_bad():
        c = Raw(gh)
        assert c.get('/', basic('carol', 'nope'))[2]['status'] == 'FAILURE'
        c.close()
    scheme, msg, cause = failure_line(gh, basic_bad)
    assert (scheme, cause) == ('Basic', 'BAD_PASSWORD') and 'client carol' in msg, msg

    # a key version the keytab lacks: the KDC's key moved on (ktadd to another
    # file), the daemon's keytab did not
    lrealm.kadmin(f'ktadd -k {lrealm.path("elsewhere.keytab")} HTTP/www.gh.test')
    bob = lrealm.kinit('bob')
    scheme, msg, cause = failure_line(gh, negotiate(gh, token(lrealm, bob, 'www.gh.test')))
    assert cause == 'WRONG_KVNO', msg
    assert re.search(r'the ticket has key version (\d+); the keytab holds version \d+ of '
                     r'HTTP/www\.gh\.test@GH\.TEST \(all older: the keytab is behind', msg), msg

    # clock skew and an expired ticket (the tokens made at the start). MIT
    # counts whole seconds: the ticket (end = auth time + 2 s, the auth time
    # at most a second after t_short) is expired once now - 1 s > its end
    time.sleep(max(0.0, math.floor(t_short) + 5.05 - time.time()))
    scheme, msg, cause = failure_line(gh, negotiate(gh, skewed))
    assert cause == 'CLOCK_SKEW' and 'client alice@GH.TEST' in msg, msg
    assert re.search(r"the client's clock is \d+ s behind this server's", msg), msg
    assert 'NTP' in msg, msg
    scheme, msg, cause = failure_line(gh, negotiate(gh, expired))
    assert cause == 'TICKET_EXPIRED' and 'client bob@GH.TEST' in msg, msg
    assert re.search(r'it expired at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, \d+ s ago', msg), msg
    assert 'kinit' in msg, msg
