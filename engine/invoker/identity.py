"""Request identity: signing every request to a deployment, as restate-server does.

An SDK endpoint configured with ``identity_keys`` accepts only requests that carry a
token signed by one of those keys. The engine signs with an ed25519 private key read
from a PKCS#8 PEM file (setting ``request_identity_private_key_pem_file``); the SDK is
given the matching public key as ``publickeyv1_<base58 of the 32 raw key bytes>``,
which the engine logs at start-up.

Each request (one per invocation attempt, and each discovery) gets two headers:

* ``x-restate-signature-scheme: v1``
* ``x-restate-jwt-v1: <compact JWS>``: header ``{"typ":"JWT","alg":"EdDSA","kid":<public key>}``,
  claims ``{"aud":<request path>,"exp":now+60,"iat":now,"nbf":now-60}`` in whole Unix
  seconds. The audience is the path relative to the deployment (``/discover``,
  ``/invoke/{service}/{handler}``): SDKs strip any prefix the endpoint is mounted under
  before comparing.

Without a key nothing is added (restate-server sends no scheme header either; SDKs with
no ``identity_keys`` ignore the headers).
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Final

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine.errors import ConfigError

__all__ = [
    "JWT_HEADER",
    "PUBLIC_KEY_PREFIX",
    "SCHEME_HEADER",
    "SETTING",
    "RequestIdentity",
    "base58",
    "request_identity_hint",
]

SETTING: Final = "request_identity_private_key_pem_file"
SCHEME_HEADER: Final = "x-restate-signature-scheme"
JWT_HEADER: Final = "x-restate-jwt-v1"
SCHEME_V1: Final = "v1"
PUBLIC_KEY_PREFIX: Final = "publickeyv1_"

#: Seconds subtracted for ``nbf`` and added for ``exp`` (restate-server's leeway).
LEEWAY_S: Final = 60

_B58_ALPHABET: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58(data: bytes) -> str:
    """Base58 with the Bitcoin alphabet (what ``publickeyv1_`` keys use); leading zero bytes become '1'."""
    number = int.from_bytes(data, "big")
    digits: list[str] = []
    while number:
        number, rest = divmod(number, 58)
        digits.append(_B58_ALPHABET[rest])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(digits))


def _kind(key: object) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return f"EC ({key.curve.name})"
    return type(key).__name__.removesuffix("PrivateKey").lstrip("_") or "not ed25519"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class RequestIdentity:
    """A loaded signing key; :meth:`headers` signs one request. Never prints the key."""

    __slots__ = ("_key", "_prefix", "public_key")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.public_key: str = PUBLIC_KEY_PREFIX + base58(raw)
        """The key to give SDKs as ``identity_keys`` (``publickeyv1_...``); it is also the token's ``kid``."""
        # The JOSE header is the same for every token: encode it once.
        header = json.dumps({"typ": "JWT", "alg": "EdDSA", "kid": self.public_key}, separators=(",", ":"))
        self._prefix = _b64url(header.encode()) + "."

    @classmethod
    def from_pem_file(cls, path: Path) -> RequestIdentity:
        """Read a PKCS#8 PEM ed25519 private key (``openssl genpkey -algorithm ed25519``).

        Raises:
            ConfigError: the file is missing or unreadable, is not exactly one PEM block,
                or holds no unencrypted ed25519 private key; the message names the setting.
        """
        where = f"{SETTING} ({path})"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"{where}: the file does not exist") from None
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read the file: {exc.strerror}") from None
        blocks = data.count(b"-----BEGIN ")
        if blocks != 1:
            raise ConfigError(
                f"{where}: expected exactly one PEM block (-----BEGIN PRIVATE KEY-----), found {blocks}"
            )
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except TypeError:
            raise ConfigError(f"{where}: the private key is encrypted; give an unencrypted PKCS#8 key") from None
        except (ValueError, UnsupportedAlgorithm):
            # The library's message may quote parts of the file; say only what is wrong.
            raise ConfigError(
                f"{where}: not a readable PEM private key; create one with "
                "`openssl genpkey -algorithm ed25519 -out private.pem`"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(
                f"{where}: the key is {_kind(key)}, "
                "but request identity needs an ed25519 key (`openssl genpkey -algorithm ed25519`)"
            )
        return cls(key)

    def token(self, path: str, now: float | None = None) -> str:
        """The compact JWS for a request to ``path`` (``/discover``, ``/invoke/S/h``)."""
        iat = int(time.time() if now is None else now)
        claims = (
            f'{{"aud":{json.dumps(path)},"exp":{iat + LEEWAY_S},"iat":{iat},"nbf":{max(iat - LEEWAY_S, 0)}}}'
        )
        signing_input = self._prefix + _b64url(claims.encode())
        return signing_input + "." + _b64url(self._key.sign(signing_input.encode("ascii")))

    def headers(self, path: str) -> dict[str, str]:
        """The two headers that sign a request to ``path``."""
        return {SCHEME_HEADER: SCHEME_V1, JWT_HEADER: self.token(path)}

    def __repr__(self) -> str:
        return f"RequestIdentity({self.public_key})"


def request_identity_hint(identity: RequestIdentity | None) -> str:
    """What a 401 from an SDK endpoint most likely means, and what to do about it."""
    if identity is None:
        return (
            "the endpoint requires request identity (SDK identity_keys) and this engine signs no requests; "
            f"set {SETTING} to the ed25519 private key whose public key the endpoint lists"
        )
    return (
        "the endpoint requires request identity and rejected this engine's signature; add this engine's "
        f"public key {identity.public_key} to the endpoint's identity_keys"
    )
