"""helpers.py: shared helpers for HTTP integration tests — free ports, a gatehoused runner with a generated config, a raw-socket HTTP client."""
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get('GH_BUILD_DIR', os.path.join(ROOT, 'build'))
GATEHOUSED = os.path.join(BUILD, 'gatehoused')


def free_port(family=socket.AF_INET, host='127.0.0.1'):
    """A TCP port that was free a moment ago on host."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Daemon:
    """gatehoused in the foreground with a generated config in a temp dir.

    server: extra [server] keys (dict; lists give repeated keys).
    sites: list of (prefix, dict of keys).
    """

    def __init__(self, server=None, sites=None, tmpdir=None, listen=None):
        self.dir = tmpdir or tempfile.mkdtemp(prefix='gh-it-')
        self.port = free_port()
        self.listen = listen if listen is not None else [f'127.0.0.1:{self.port}']
        self.server = {'workers': 2}
        self.server.update(server or {})
        self.sites = sites if sites is not None else [('/', {'handler': 'fixed', 'body': 'hello'})]
        self.conf = os.path.join(self.dir, 'gatehouse.conf')
        self.stderr_path = os.path.join(self.dir, 'stderr.log')
        self.proc = None
        self.write_config()

    def write_config(self):
        lines = ['[server]']
        for a in self.listen:
            lines.append(f'listen = {a}')
        for k, v in self.server.items():
            for one in (v if isinstance(v, list) else [v]):
                lines.append(f'{k} = {one}')
        for prefix, keys in self.sites:
            lines.append('')
            lines.append(f'[site {prefix}]')
            for k, v in keys.items():
                lines.append(f'{k} = {v}')
        with open(self.conf, 'w') as f:
            f.write('\n'.join(lines) + '\n')

    def start(self, timeout=10):
        self.stderr = open(self.stderr_path, 'wb')
        # GH_DAEMON_WRAPPER: a command prefix (make check-valgrind: valgrind ...); slower start
        wrapper = os.environ.get('GH_DAEMON_WRAPPER', '').split()
        self.proc = subprocess.Popen(wrapper + [GATEHOUSED, '-c', self.conf, '-f'],
                                     stdout=subprocess.PIPE, stderr=self.stderr)
        deadline = time.monotonic() + timeout * (6 if wrapper else 1)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f'gatehoused exited {self.proc.returncode}: {self.log()}')
            if 'ready' in self.log():
                return self
            time.sleep(0.02)
        raise RuntimeError('gatehoused did not become ready: ' + self.log())

    def log(self):
        try:
            with open(self.stderr_path, errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def url(self, path='/'):
        return f'http://127.0.0.1:{self.port}{path}'

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=15):
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.stderr.close()
        if self.proc.stdout:
            self.proc.stdout.close()
        return rc


class Response:
    def __init__(self, status, reason, headers, body, raw):
        self.status, self.reason, self.headers, self.body, self.raw = status, reason, headers, body, raw

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]


class Conn:
    """A raw HTTP/1.1 client socket: send bytes, read responses one by one."""

    def __init__(self, port=None, host='127.0.0.1', family=socket.AF_INET, unix=None, timeout=5):
        if unix:
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.settimeout(timeout)
            self.s.connect(unix)
        else:
            self.s = socket.socket(family, socket.SOCK_STREAM)
            self.s.settimeout(timeout)
            self.s.connect((host, port))
        self.buf = b''

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.s.sendall(data)
        return self

    def _fill(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError('connection closed')
        self.buf += d

    def _line(self):
        while b'\r\n' not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b'\r\n', 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def read_response(self, head=False):
        """One response; body framed by Content-Length, chunked or close."""
        start = len(self.buf)
        status_line = self._line().decode()
        _, code, *reason = status_line.split(' ', 2)
        headers = []
        while True:
            line = self._line()
            if not line:
                break
            k, v = line.decode().split(':', 1)
            headers.append((k, v.strip()))
        r = Response(int(code), reason[0] if reason else '', headers, b'', b'')
        te = r.header('Transfer-Encoding')
        cl = r.header('Content-Length')
        if head or r.status in (204, 304) or 100 <= r.status < 200:
            body = b''
        elif te and 'chunked' in te.lower():
            body = b''
            while True:
                size = int(self._line().split(b';')[0], 16)
                if size == 0:
                    while self._line():
                        pass
                    break
                body += self._exact(size)
                self._exact(2)
        elif cl is not None:
            body = self._exact(int(cl))
        else:
            body = self.read_all()
        r.body = body
        del start
        return r

    def read_all(self):
        out = self.buf
        self.buf = b''
        while True:
            try:
                d = self.s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not d:
                break
            out += d
        return out

    def is_closed(self, timeout=3):
        """True when the server closed the connection (EOF or reset) within timeout."""
        if self.buf:
            return False
        self.s.settimeout(timeout)
        try:
            return self.s.recv(1) == b''
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()


def request(port, path='/', method='GET', headers=None, body=b'', version='1.1', host='127.0.0.1'):
    """One request on a fresh connection; returns the Response."""
    c = Conn(port, host=host)
    try:
        hs = {'Host': 'test'}
        hs.update(headers or {})
        if body and 'Content-Length' not in hs:
            hs['Content-Length'] = str(len(body))
        text = f'{method} {path} HTTP/{version}\r\n' + ''.join(f'{k}: {v}\r\n' for k, v in hs.items()) + '\r\n'
        c.send(text.encode() + (body if isinstance(body, bytes) else body.encode()))
        return c.read_response(head=(method == 'HEAD'))
    finally:
        c.close()


def process_tree(pid):
    """pid and its child processes (a daemon's worker processes)."""
    kids = subprocess.run(['pgrep', '-P', str(pid)], capture_output=True, text=True).stdout.split()
    return [pid] + [int(k) for k in kids]


def rss_kb(pid):
    """VmRSS of one process in KiB (0 when it is gone)."""
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_peaks(pids, fn):
    """(fn(), {pid: (RSS before, highest RSS while fn ran)}) in KiB, sampled every 50 ms."""
    base = {p: rss_kb(p) for p in pids}
    peak = dict(base)
    done = threading.Event()

    def sample():
        while not done.is_set():
            for p in pids:
                peak[p] = max(peak[p], rss_kb(p))
            time.sleep(0.05)
    t = threading.Thread(target=sample)
    t.start()
    try:
        return fn(), {p: (base[p], peak[p]) for p in pids}
    finally:
        done.set()
        t.join()
