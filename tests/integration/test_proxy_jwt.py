"""test_proxy_jwt.py: the proxy's identity assertion (modules/proxy/proxy_jwt.c) verified by python3-jwt: HS256 and ES256 accepted with the right key, refused with a wrong key, when expired, for another audience."""
import os
import subprocess
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from helpers import BUILD

SIGN = os.path.join(BUILD, 'modules', 'proxy-jwt-sign')
AUD = 'unix:/run/app.sock'
SECRET = b'an HS256 secret of more than thirty-two bytes, for the test'


def _sign(key, sub='alice', now=None, ttl=None, groups=()):
    if not os.path.exists(SIGN):
        pytest.skip(f'{SIGN} not built')
    args = [SIGN, str(key), AUD, sub]
    if now is not None or ttl is not None or groups:
        args += [str(now if now is not None else int(time.time())), str(ttl or 0), *groups]
    r = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def _write(path, data):
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    os.write(fd, data)
    os.close(fd)
    return path


def _ec_pair(tmp_path, name):
    priv = ec.generate_private_key(ec.SECP256R1())
    pem = priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    return _write(tmp_path / name, pem), priv.public_key()


def test_hs256_verified(tmp_path):
    key = _write(tmp_path / 'hs', SECRET + b'\n')  # the final newline is not part of the secret
    tok = _sign(key, groups=('staff', 'dev ops'))
    claims = jwt.decode(tok, SECRET, algorithms=['HS256'], audience=AUD, issuer='gatehouse',
                        options={'require': ['exp', 'iat', 'sub', 'aud', 'iss', 'jti']})
    assert claims['sub'] == 'alice'
    assert claims['groups'] == ['staff', 'dev ops']
    assert claims['auth_type'] == 'Negotiate'
    assert claims['exp'] - claims['iat'] == 60
    assert jwt.get_unverified_header(tok)['alg'] == 'HS256'
    # a wrong key, another audience, and "none" are refused
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(tok, SECRET[:-1] + b'X', algorithms=['HS256'], audience=AUD)
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(tok, SECRET, algorithms=['HS256'], audience='http://other')
    with pytest.raises(jwt.InvalidAlgorithmError):
        jwt.decode(tok, SECRET, algorithms=['ES256'], audience=AUD)


def test_es256_verified(tmp_path):
    key, pub = _ec_pair(tmp_path, 'ec.pem')
    _, other = _ec_pair(tmp_path, 'other.pem')
    tok = _sign(key, sub='bob')
    claims = jwt.decode(tok, pub, algorithms=['ES256'], audience=AUD)
    assert claims['sub'] == 'bob'
    assert jwt.get_unverified_header(tok)['alg'] == 'ES256'
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(tok, other, algorithms=['ES256'], audience=AUD)


@pytest.mark.parametrize('kind', ['hs', 'es'])
def test_expired_refused(tmp_path, kind):
    if kind == 'hs':
        key, vkey, alg = _write(tmp_path / 'hs', SECRET), SECRET, 'HS256'
    else:
        key, vkey = _ec_pair(tmp_path, 'ec.pem')
        alg = 'ES256'
    # issued two minutes ago with the default 60 s lifetime
    tok = _sign(key, now=int(time.time()) - 120, ttl=60)
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(tok, vkey, algorithms=[alg], audience=AUD)
    # and a fresh one with a 5 s lifetime passes now
    tok = _sign(key, ttl=5)
    assert jwt.decode(tok, vkey, algorithms=[alg], audience=AUD)['exp'] <= time.time() + 5


def test_bad_key_files_refused(tmp_path):
    if not os.path.exists(SIGN):
        pytest.skip(f'{SIGN} not built')
    loose = _write(tmp_path / 'loose', SECRET)
    os.chmod(loose, 0o644)
    short = _write(tmp_path / 'short', b'x' * 16)
    for path, why in ((loose, 'lets others read'), (short, 'at least 32')):
        r = subprocess.run([SIGN, str(path), AUD, 'alice'], capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and why in r.stderr, r.stderr
