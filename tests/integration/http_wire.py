"""http_wire.py: the one HTTP/1.1 response reader of the tests' hand-made clients (test_auth_http
Raw, test_farm Conn, auth_driver/gss_http_client Conn): a head and a Content-Length body off a
keep-alive socket, whatever follows kept for the next response."""


def read_response(sock, buf):
    """(status, [(name, value)], body bytes, rest of buf) of the next response on sock;
    EOFError when the peer closes first."""
    while b'\r\n\r\n' not in buf:
        d = sock.recv(65536)
        if not d:
            raise EOFError('closed before a response')
        buf += d
    head, buf = buf.split(b'\r\n\r\n', 1)
    lines = head.decode('latin-1').split('\r\n')
    status = int(lines[0].split()[1])
    hdrs = [tuple(x.split(': ', 1)) for x in lines[1:]]
    clen = int(next((v for k, v in hdrs if k.lower() == 'content-length'), '0'))
    while len(buf) < clen:
        d = sock.recv(65536)
        if not d:
            raise EOFError('closed inside a body')
        buf += d
    return status, hdrs, buf[:clen], buf[clen:]
