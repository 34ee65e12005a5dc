"""ad_helpers.py: gatehoused against the Samba AD DC of gh_ad_realm.py — the daemon fixture, files owned by domain users, curl and python-gssapi clients.

The daemon (fixture `ad_gh` of conftest.py, one per test module) runs in the DC's environment
(winbind NSS through nss_wrapper, the exported HTTP/localhost + HTTP/www.ad.test
keytab, no ntlm_user_file: NTLM is checked by the DC through winbind) with the sites
  /info    authinfo (the auth record as JSON)      negotiate ntlm
  /anon    authinfo                                 negotiate ntlm anonymous
  /whoami  whoami                                   negotiate ntlm
  /files   static, impersonate = yes                negotiate ntlm
  /outer   whoami, require = group:ADTEST\\gh-outer (nested: carla through gh-inner)
  /big     whoami, require = group:ADTEST\\gh-big (2,000 members: dmitri)
  /big-gid whoami, require = group:#31003 (the same group by gid)
  /cgi-bin cgi: /cgi-bin/klist prints its uid and `klist -f` of the delegated ccache
Files: /files/carla.txt (uid 21001, 0600), /files/dmitri.txt (uid 21002, 0600).
"""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gh_ad_realm import GROUPS  # noqa: E402
from pipeline_helpers import GhDaemon, curl, shared_dir  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GSSCLIENT = os.path.join(ROOT, 'tests', 'integration', 'auth_driver', 'gss_http_client.py')
LEVEL_IMPERSONATE, LEVEL_DELEGATE = 2, 3
STRICT = 'negotiate ntlm'


def ad_files(ad):
    """A 0755 directory with one 0600 file per test user, owned by that user's AD uid."""
    d = shared_dir('gh-adfiles-')
    for user in ('carla', 'dmitri'):
        p = os.path.join(d, f'{user}.txt')
        with open(p, 'w') as f:
            f.write(f'secret of {user}\n')
        os.chown(p, ad.uid(user), 100)
        os.chmod(p, 0o600)
    return d


KLIST_CGI = """#!/bin/sh
# the delegated credential as the client's CGI script sees it
printf 'Content-Type: text/plain\\r\\n\\r\\n'
echo "UID=$(id -u)"
printf 'REMOTE_USER=%s\\n' "$REMOTE_USER"
echo "KRB5CCNAME=$KRB5CCNAME"
[ -n "$KRB5CCNAME" ] && klist -f "$KRB5CCNAME" 2>&1
"""


def ad_cgi_bin():
    d = shared_dir('gh-adcgi-')
    p = os.path.join(d, 'klist')
    with open(p, 'w') as f:
        f.write(KLIST_CGI)
    os.chmod(p, 0o755)
    return d


def ad_sites(files, probe, cgi_bin):
    return [
        ('/info', {'handler': 'authinfo', 'auth': STRICT, 'probe_dir': probe}),
        ('/anon', {'handler': 'authinfo', 'auth': STRICT + ' anonymous', 'probe_dir': probe}),
        ('/whoami', {'handler': 'whoami', 'auth': STRICT}),
        ('/files', {'handler': 'static', 'root': files, 'impersonate': 'yes', 'auth': STRICT}),
        # whoami, not the daemon's built-in fixed handler: built-in handlers bypass the
        # module pipeline, so a require key on their site is ignored
        ('/outer', {'handler': 'whoami', 'auth': STRICT, 'require': 'group:ADTEST\\gh-outer'}),
        ('/big', {'handler': 'whoami', 'auth': STRICT, 'require': 'group:ADTEST\\gh-big'}),
        ('/big-gid', {'handler': 'whoami', 'auth': STRICT,
                      'require': f'group:#{GROUPS["gh-big"]}'}),
        ('/cgi-bin', {'handler': 'cgi', 'root': cgi_bin, 'auth': STRICT}),
    ]


class AdDaemon:
    """gatehoused with the AD sites; .gh is the GhDaemon (url, log, stop)."""

    def __init__(self, ad, server=None, sites=None, unix=False):
        self.ad = ad
        self.files = ad_files(ad)
        self.cgi_bin = ad_cgi_bin()
        self.probe = shared_dir('gh-adprobe-')
        os.chmod(self.probe, 0o1777)
        srv = {'keytab': ad.keytab, 'ccache_dir': ad.ccache_dir, 'min_uid': 1000,
               'max_header_bytes': '64k', 'workers': 4}
        srv.update(server or {})
        self.gh = GhDaemon(ad, sites if sites is not None else ad_sites(self.files, self.probe, self.cgi_bin),
                           server=srv, unix=unix, realm_keys=False)
        self.port = self.gh.port

    def start(self):
        self.gh.start()
        return self

    def url(self, path='/', host='localhost'):
        return f'http://{host}:{self.port}{path}'

    def log(self):
        return self.gh.log()

    def stop(self):
        rc = self.gh.stop()
        shutil.rmtree(self.files, ignore_errors=True)
        shutil.rmtree(self.probe, ignore_errors=True)
        shutil.rmtree(self.cgi_bin, ignore_errors=True)
        return rc


def negotiate(url, env, extra=None):
    """curl --negotiate with the ticket in env's KRB5CCNAME."""
    return curl(url, env=env, extra=['--negotiate', '-u', ':'] + list(extra or []))


def ntlm(url, user, password, env, extra=None):
    return curl(url, env=env, extra=['--ntlm', '-u', f'{user}:{password}'] + list(extra or []))


def body(r):
    try:
        return json.loads(r.text)
    except ValueError:
        return r.text


def gssclient(env, *args):
    p = subprocess.run(['/usr/bin/python3', GSSCLIENT] + list(args), env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)
