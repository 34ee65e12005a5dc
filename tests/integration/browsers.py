"""browsers.py: drives real headless browsers for the end-to-end tests — Firefox ESR through its Marionette protocol, Chromium through the DevTools protocol on a pipe (no driver packages).

Both run with a fresh profile that trusts the given host names for Negotiate (Firefox
`network.negotiate-auth.trusted-uris`, Chromium `--auth-server-allowlist`) and the
environment given (KRB5_CONFIG, KRB5CCNAME with the user's ticket), so they sign in
without a prompt. Each browser session:
  b = Firefox(workdir, env, hosts=['localhost']) / Chromium(...)
  page = b.get(url)            -> Page(url, status or None, text, source)
  b.screenshot(path)           PNG of the current page
  b.close()
Chromium reports the HTTP status of the main document (Network.responseReceived);
Marionette has no status, so Firefox pages carry status None (the tests read the
daemon's access log for it).
"""
import base64
import fcntl
import json
import os
import select
import shutil
import socket
import subprocess
import time

FIREFOX = shutil.which('firefox-esr') or '/usr/bin/firefox-esr'
CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'


class Page:
    def __init__(self, url, status, text, source):
        self.url, self.status, self.text, self.source = url, status, text, source

    def __repr__(self):
        return f'<Page {self.url} {self.status} {self.text[:200]!r}>'


class BrowserError(RuntimeError):
    pass


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _log_tail(path, n=30):
    try:
        with open(path, errors='replace') as f:
            return '\n'.join(f.read().splitlines()[-n:])
    except OSError:
        return ''


class Firefox:
    """firefox-esr --headless --marionette; WebDriver commands over Marionette's TCP framing
    (`LEN:JSON`, commands `[0, id, name, params]`, answers `[1, id, error, result]`)."""

    def __init__(self, workdir, env, hosts, delegate=False, timeout=60):
        self.dir = workdir
        self.profile = os.path.join(workdir, 'firefox-profile')
        self.log = os.path.join(workdir, 'firefox.log')
        os.makedirs(self.profile, exist_ok=True)
        home = os.path.join(workdir, 'home')
        os.makedirs(home, exist_ok=True)
        port = _free_port()
        prefs = {
            'network.negotiate-auth.trusted-uris': ','.join(hosts),
            'network.negotiate-auth.delegation-uris': ','.join(hosts) if delegate else '',
            'network.auth.use-sspi': False,
            'marionette.port': port,
            # a quiet fresh profile: no first-run pages, updates or telemetry
            'browser.shell.checkDefaultBrowser': False,
            'browser.startup.homepage_override.mstone': 'ignore',
            'datareporting.policy.dataSubmissionEnabled': False,
            'toolkit.telemetry.reportingpolicy.firstRun': False,
            'app.update.auto': False,
            'browser.aboutwelcome.enabled': False,
        }
        with open(os.path.join(self.profile, 'user.js'), 'w') as f:
            for k, v in prefs.items():
                f.write(f'user_pref({json.dumps(k)}, {json.dumps(v)});\n')
        e = dict(env)
        e.pop('LD_PRELOAD', None)
        e.update({'HOME': home, 'MOZ_HEADLESS': '1'})
        self.out = open(self.log, 'wb')
        self.proc = subprocess.Popen(
            [FIREFOX, '--headless', '--marionette', '--no-remote', '--profile', self.profile,
             '--window-size', '900,400', 'about:blank'],
            env=e, stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.out,
            start_new_session=True)
        self.sock, self.buf, self.id = None, b'', 0
        deadline = time.monotonic() + timeout
        while self.sock is None:
            if self.proc.poll() is not None:
                raise BrowserError(f'firefox-esr exited {self.proc.returncode}:\n'
                                   + _log_tail(self.log))
            try:
                self.sock = socket.create_connection(('127.0.0.1', port), 1)
            except OSError:
                if time.monotonic() > deadline:
                    self.close()
                    raise BrowserError('Marionette did not answer:\n' + _log_tail(self.log))
                time.sleep(0.1)
        self.sock.settimeout(timeout)
        self._read()                                   # {"marionetteProtocol": 3, ...}
        self.cmd('WebDriver:NewSession', {'capabilities': {'alwaysMatch': {
            'pageLoadStrategy': 'normal'}}})
        self.cmd('WebDriver:SetWindowRect', {'width': 900, 'height': 400})

    def _read(self):
        while b':' not in self.buf:
            self._fill()
        n, rest = self.buf.split(b':', 1)
        n = int(n)
        while len(rest) < n:
            self.buf = rest
            self._fill()
            rest = self.buf
        msg, self.buf = rest[:n], rest[n:]
        return json.loads(msg)

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise BrowserError('Marionette closed the connection:\n' + _log_tail(self.log))
        self.buf += d

    def cmd(self, name, params=None):
        self.id += 1
        data = json.dumps([0, self.id, name, params or {}]).encode()
        self.sock.sendall(str(len(data)).encode() + b':' + data)
        while True:
            m = self._read()
            if m[0] == 1 and m[1] == self.id:
                if m[2]:
                    raise BrowserError(f'{name}: {m[2]}')
                return m[3]

    def get(self, url):
        self.cmd('WebDriver:Navigate', {'url': url})
        text = self.cmd('WebDriver:ExecuteScript', {
            'script': 'return document.documentElement ? document.documentElement.textContent'
                      ' : "";', 'args': []})['value']
        source = self.cmd('WebDriver:GetPageSource')['value']
        return Page(url, None, text, source)

    def screenshot(self, path):
        png = base64.b64decode(self.cmd('WebDriver:TakeScreenshot', {'full': False})['value'])
        with open(path, 'wb') as f:
            f.write(png)
        return path

    def close(self):
        if self.sock is not None:
            try:
                self.cmd('Marionette:Quit', {'flags': ['eForceQuit']})
            except (OSError, BrowserError):
                pass
            self.sock.close()
            self.sock = None
        _end(self.proc)
        self.out.close()


class Chromium:
    """chromium --headless=new --remote-debugging-pipe: DevTools commands as NUL-terminated
    JSON on fds 3 (to the browser) and 4 (from it), one page target in flat session mode."""

    def __init__(self, workdir, env, hosts, timeout=60):
        self.dir = workdir
        self.profile = os.path.join(workdir, 'chromium-profile')
        self.log = os.path.join(workdir, 'chromium.log')
        os.makedirs(self.profile, exist_ok=True)
        # On Linux Chromium uses GSSAPI only once this Local State pref is true, and it is
        # false in a new profile: the first Negotiate challenge would fail
        # (ERR_UNSUPPORTED_AUTH_SCHEME). Seeded as a browser that has seen one would have it.
        with open(os.path.join(self.profile, 'Local State'), 'w') as f:
            json.dump({'net': {'received_http_auth_negotiate_headers': True}}, f)
        home = os.path.join(workdir, 'home')
        os.makedirs(home, exist_ok=True)
        e = dict(env)
        e.pop('LD_PRELOAD', None)
        e['HOME'] = home
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()

        def fds():
            # move both ends above 4 first: either may itself be fd 3 or 4
            a = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.out = open(self.log, 'wb')
        # --no-sandbox: Chromium's sandbox refuses to run as root
        self.proc = subprocess.Popen(
            [CHROMIUM, '--headless=new', '--no-sandbox', '--remote-debugging-pipe',
             f'--user-data-dir={self.profile}', '--auth-server-allowlist=' + ','.join(hosts),
             '--no-first-run', '--no-default-browser-check', '--disable-gpu',
             '--window-size=900,400', 'about:blank'],
            env=e, stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.out,
            preexec_fn=fds, pass_fds=(3, 4), start_new_session=True)
        os.close(to_child_r)
        os.close(from_child_w)
        self.buf, self.id, self.events, self.timeout = b'', 0, [], timeout
        self.session = None
        t = self.cmd('Target.createTarget', {'url': 'about:blank'})['targetId']
        self.session = self.cmd('Target.attachToTarget', {'targetId': t, 'flatten': True},
                                browser=True)['sessionId']
        self.cmd('Page.enable')
        self.cmd('Network.enable')

    def _msg(self, deadline):
        while b'\0' not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError('no answer from Chromium:\n' + _log_tail(self.log))
            r, _, _ = select.select([self.from_child], [], [], left)
            if r:
                d = os.read(self.from_child, 1 << 20)
                if not d:
                    raise BrowserError(f'Chromium closed its pipe (exit {self.proc.poll()}):\n'
                                       + _log_tail(self.log))
                self.buf += d
        m, self.buf = self.buf.split(b'\0', 1)
        return json.loads(m)

    def cmd(self, method, params=None, browser=False):
        self.id += 1
        m = {'id': self.id, 'method': method, 'params': params or {}}
        if self.session and not browser:
            m['sessionId'] = self.session
        os.write(self.to_child, json.dumps(m).encode() + b'\0')
        deadline = time.monotonic() + self.timeout
        while True:
            r = self._msg(deadline)
            if r.get('id') == self.id:
                if 'error' in r:
                    raise BrowserError(f'{method}: {r["error"]}')
                return r.get('result', {})
            self.events.append(r)

    def _wait_event(self, method, deadline):
        while True:
            for i, e in enumerate(self.events):
                if e.get('method') == method:
                    return self.events.pop(i)
            self.events.append(self._msg(deadline))

    def get(self, url):
        self.events = []
        nav = self.cmd('Page.navigate', {'url': url})
        if nav.get('errorText'):
            raise BrowserError(f'{url}: {nav["errorText"]}\n' + _log_tail(self.log))
        deadline = time.monotonic() + self.timeout
        self._wait_event('Page.loadEventFired', deadline)
        status = None
        for e in self.events:
            if (e.get('method') == 'Network.responseReceived'
                    and e['params'].get('type') == 'Document'):
                status = e['params']['response']['status']
        text = self.cmd('Runtime.evaluate', {
            'expression': 'document.documentElement ? document.documentElement.textContent'
                          ' : ""', 'returnByValue': True})['result'].get('value', '')
        source = self.cmd('Runtime.evaluate', {
            'expression': 'document.documentElement ? document.documentElement.outerHTML : ""',
            'returnByValue': True})['result'].get('value', '')
        return Page(url, status, text, source)

    def screenshot(self, path):
        png = base64.b64decode(self.cmd('Page.captureScreenshot', {'format': 'png'})['data'])
        with open(path, 'wb') as f:
            f.write(png)
        return path

    def close(self):
        try:
            self.cmd('Browser.close', browser=True)
        except (OSError, BrowserError):
            pass
        for fd in (self.to_child, self.from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        _end(self.proc)
        self.out.close()


def _end(proc, timeout=10):
    """Waits for the browser, then ends its process group (its helper processes)."""
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, 15)
    except ProcessLookupError:
        return
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
