"""Request identity: loading the signing key, and tokens exactly as restate-server makes them.

The tokens are checked by the official SDK's own verifier (``restate-sdk``'s
``PyIdentityVerifier``, the one ``identity_keys`` configures), and against
restate-server's test vector (its ``request_identity/v1.rs``: that PEM key's public key
is ``publickeyv1_AfQwmw...``).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from restate._internal import IdentityVerificationException, PyIdentityVerifier

from engine.config import load_config
from engine.errors import ConfigError
from engine.invoker.identity import JWT_HEADER, SCHEME_HEADER, RequestIdentity, base58
from engine.invoker.request import build_headers
from tests.engine.invoker.driver import new_task

RESTATE_TEST_KEY = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIPe++4ZTPQDF81otpoU/mOGHC2vOAVp9WbiCblvn3nXO
-----END PRIVATE KEY-----
"""
RESTATE_TEST_PUBLIC_KEY = "publickeyv1_AfQwmwfgEZhrWpvv8N52SHpRtZqGGaFr4AZN6qtYWSiY"


def write_pem(path: Path, key: object = None) -> Path:
    key = key or ed25519.Ed25519PrivateKey.generate()
    assert hasattr(key, "private_bytes")
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


def _segment(token: str, index: int) -> dict[str, object]:
    part = token.split(".")[index]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def test_restate_servers_test_key_gives_its_public_key(tmp_path: Path) -> None:
    (tmp_path / "k.pem").write_bytes(RESTATE_TEST_KEY)
    identity = RequestIdentity.from_pem_file(tmp_path / "k.pem")
    assert identity.public_key == RESTATE_TEST_PUBLIC_KEY
    # The private key is never shown.
    assert repr(identity) == f"RequestIdentity({RESTATE_TEST_PUBLIC_KEY})"


def test_token_has_restate_servers_header_and_claims(tmp_path: Path) -> None:
    (tmp_path / "k.pem").write_bytes(RESTATE_TEST_KEY)
    identity = RequestIdentity.from_pem_file(tmp_path / "k.pem")
    token = identity.token("/invoke/foo", now=1_721_662_649)
    header_b64 = token.split(".")[0]
    # Byte for byte the header of a token restate-server signed with this key (the one in
    # sdk-shared-core's request_identity tests).
    assert header_b64 == (
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSIsImtpZCI6InB1YmxpY2tleXYxX0FmUXdtd2ZnRVpocldwdnY4TjUyU0hwUnRacUdHYUZyNEFaTjZxdFlXU2lZIn0"
    )
    assert _segment(token, 0) == {"typ": "JWT", "alg": "EdDSA", "kid": RESTATE_TEST_PUBLIC_KEY}
    assert _segment(token, 1) == {"aud": "/invoke/foo", "exp": 1_721_662_709, "iat": 1_721_662_649, "nbf": 1_721_662_589}


def test_the_official_sdk_accepts_our_tokens_for_their_path_only(tmp_path: Path) -> None:
    identity = RequestIdentity.from_pem_file(write_pem(tmp_path / "k.pem"))
    verifier = PyIdentityVerifier([identity.public_key])
    invoke = identity.headers("/invoke/Greeter/greet")
    assert invoke[SCHEME_HEADER] == "v1"
    verifier.verify(list(invoke.items()), "/invoke/Greeter/greet")
    # An endpoint mounted under a prefix: the SDK strips it before comparing the audience.
    verifier.verify(list(invoke.items()), "/prefix/invoke/Greeter/greet")
    verifier.verify(list(identity.headers("/discover").items()), "/discover")
    with pytest.raises(IdentityVerificationException, match="InvalidAudience"):
        verifier.verify(list(invoke.items()), "/invoke/Greeter/other")
    with pytest.raises(IdentityVerificationException, match="missing header"):
        verifier.verify([], "/discover")
    other = RequestIdentity.from_pem_file(write_pem(tmp_path / "other.pem"))
    with pytest.raises(IdentityVerificationException):
        verifier.verify(list(other.headers("/discover").items()), "/discover")


def test_expired_token_is_refused_by_the_sdk(tmp_path: Path) -> None:
    identity = RequestIdentity.from_pem_file(write_pem(tmp_path / "k.pem"))
    stale = {SCHEME_HEADER: "v1", JWT_HEADER: identity.token("/discover", now=time.time() - 120)}
    with pytest.raises(IdentityVerificationException, match="Expired"):
        PyIdentityVerifier([identity.public_key]).verify(list(stale.items()), "/discover")


def test_attempt_headers_are_signed_for_the_invoke_path(tmp_path: Path) -> None:
    identity = RequestIdentity.from_pem_file(write_pem(tmp_path / "k.pem"))
    task = new_task("http://svc:9080/prefix/", "Greeter", "greet", "in")
    assert SCHEME_HEADER not in build_headers(task)  # no key: unsigned, as restate-server
    headers = build_headers(task, identity)
    assert _segment(headers[JWT_HEADER], 1)["aud"] == "/invoke/Greeter/greet"
    PyIdentityVerifier([identity.public_key]).verify(list(headers.items()), "/prefix/invoke/Greeter/greet")


def test_base58_keeps_leading_zeros() -> None:
    assert base58(b"") == ""
    assert base58(b"\0\0\x01") == "112"
    assert base58(b"hello world") == "StV1DL6CwTryKyV"


def test_setting_comes_from_env(tmp_path: Path) -> None:
    path = write_pem(tmp_path / "k.pem")
    cfg = load_config(env={"LOGSTRATE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE": str(path)})
    assert cfg.request_identity_private_key_pem_file == path
    assert load_config(env={}).request_identity_private_key_pem_file is None


def _rsa() -> object:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        (b"not a pem file", "expected exactly one PEM block"),
        (RESTATE_TEST_KEY + RESTATE_TEST_KEY, "found 2"),
        (b"-----BEGIN PRIVATE KEY-----\nbm9wZQ==\n-----END PRIVATE KEY-----\n", "not a readable PEM private key"),
        ("ec", "the key is EC (secp256r1), but request identity needs an ed25519 key"),
        ("rsa", "the key is RSA, but request identity needs an ed25519 key"),
        ("encrypted", "encrypted"),
    ],
    ids=["missing", "no-pem", "two-keys", "garbage", "ec", "rsa", "encrypted"],
)
def test_key_loading_errors_name_the_setting(tmp_path: Path, content: object, message: str) -> None:
    path = tmp_path / "key.pem"
    if content == "ec":
        write_pem(path, ec.generate_private_key(ec.SECP256R1()))
    elif content == "rsa":
        write_pem(path, _rsa())
    elif content == "encrypted":
        path.write_bytes(
            ed25519.Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"pw"),
            )
        )
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        RequestIdentity.from_pem_file(path)
    assert f"request_identity_private_key_pem_file ({path})" in str(err.value)
    assert message in str(err.value)


def test_serve_with_a_bad_key_fails_at_start_naming_the_setting(tmp_path: Path) -> None:
    # Before any Kafka: the key is checked first, so no broker is needed here.
    missing = tmp_path / "nope.pem"
    result = subprocess.run(
        [sys.executable, "-m", "engine", "serve", "--data-dir", str(tmp_path / "d"),
         "--request-identity-private-key-pem-file", str(missing), "--log-format", "json"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert f"request_identity_private_key_pem_file ({missing}): the file does not exist" in result.stderr
