"""Credentials sealed at rest in the metadata topic (AES-256-GCM).

Kafka clusters and subscriptions created through the admin API live in the metadata
topic, which every engine process (and whoever may read the topic) reads. Their
credential properties (:func:`engine.metadata.kafka_properties.is_secret_property`:
passwords, ``ssl.key.pem``, OAuth client secrets and private keys, JAAS configs,
schema-registry ``user:password``) are written sealed instead of in clear::

    "properties": {"bootstrap.servers": "...", "sasl.username": "app"},
    "sealed_properties": {"sasl.password": "v1.<base64url(nonce || ciphertext || tag)>"}

Each value is encrypted alone with a fresh 96-bit nonce, and authenticated together with
where it belongs (``<record key>/<property>`` as associated data), so a sealed value
cannot be moved to another cluster or property. The key is the engine's ``secrets_key``
(32 bytes, base64 or hex; or ``secrets_key_file``), set once at start-up with
:func:`configure_secrets_key`; every engine process sharing the metadata topic needs the
same key. Without a key, the admin API refuses credential properties (400 saying how to
configure one) rather than store them in clear. Records written before sealing existed
keep their credentials in ``properties`` and still load; the next change of the cluster
writes them sealed. Sensitive ``additional_headers`` of deployments
(:mod:`engine.sensitive_headers`) are sealed the same way (``sealed_additional_headers``)
when a key is configured.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from engine.metadata.errors import InvalidRequest
from engine.metadata.kafka_properties import is_secret_property

__all__ = [
    "HOW_TO_CONFIGURE",
    "SealingError",
    "configure_secrets_key",
    "parse_secrets_key",
    "require_sealing",
    "seal_properties",
    "sealing_configured",
    "unseal_properties",
]

_VERSION: Final = "v1."
_NONCE_BYTES: Final = 12

HOW_TO_CONFIGURE: Final = (
    "set the engine's secrets key: env LOGSTRATE_SECRETS_KEY, TOML secrets_key, or secrets_key_file / "
    "--secrets-key-file naming a file that holds it (32 random bytes as base64, e.g. `openssl rand -base64 32`; "
    "the same key on every engine process), or declare the cluster in the engine config under "
    "[kafka_clusters.<name>]"
)

_aead: AESGCM | None = None


class SealingError(ValueError):
    """A sealed value cannot be opened (no key, another key, or a damaged record)."""


def parse_secrets_key(text: str) -> bytes:
    """The 32-byte key from its text form: base64 (standard or URL-safe) or 64 hex digits."""
    stripped = text.strip()
    candidates: list[bytes] = []
    if len(stripped) == 64:
        try:
            candidates.append(bytes.fromhex(stripped))
        except ValueError:
            pass
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            candidates.append(decode(stripped + "=" * (-len(stripped) % 4)))
        except (binascii.Error, ValueError):
            pass
    for candidate in candidates:
        if len(candidate) == 32:
            return candidate
    raise ValueError(
        "secrets_key must be 32 random bytes written as base64 (44 characters, e.g. `openssl rand -base64 32`) "
        "or as 64 hex digits"
    )


def configure_secrets_key(key: bytes | None) -> None:
    """Use ``key`` (32 bytes) to seal and open credentials from now on; ``None``: no key."""
    global _aead
    _aead = None if key is None else AESGCM(key)


def sealing_configured() -> bool:
    """Whether a secrets key is configured."""
    return _aead is not None


def require_sealing(names: Iterable[str], what: str) -> None:
    """A 400 (:class:`InvalidRequest`) when one of ``names`` is a credential and no secrets
    key is configured: credentials are never stored in clear."""
    if _aead is not None:
        return
    secret = sorted(name for name in names if is_secret_property(name))
    if secret:
        raise InvalidRequest(
            f"{what} {secret[0]!r} is a credential, and the engine stores credentials in the metadata topic "
            f"only sealed (AES-256-GCM) with its secrets key, which is not configured: {HOW_TO_CONFIGURE}"
        )


def seal_properties(
    properties: Mapping[str, str], context: str, secret: Callable[[str], bool] = is_secret_property,
) -> tuple[dict[str, str], dict[str, str]]:
    """``(clear, sealed)``: the credentials of ``properties`` (names for which ``secret``
    holds) encrypted; ``context`` is the record key they belong to. Without a key,
    everything stays in ``clear`` (Kafka credentials cannot get here without one: the API
    refuses them; deployment headers can, see docs/SECURITY.md)."""
    clear: dict[str, str] = {}
    sealed: dict[str, str] = {}
    for name, value in properties.items():
        if _aead is None or not secret(name):
            clear[name] = value
            continue
        nonce = os.urandom(_NONCE_BYTES)
        ciphertext = _aead.encrypt(nonce, value.encode("utf-8"), f"{context}/{name}".encode())
        sealed[name] = _VERSION + base64.urlsafe_b64encode(nonce + ciphertext).decode("ascii")
    return clear, sealed


def unseal_properties(clear: Mapping[str, str], sealed: Mapping[str, str], context: str) -> dict[str, str]:
    """The properties with the sealed ones opened; :class:`SealingError` when that fails."""
    properties = dict(clear)
    if not sealed:
        return properties
    if _aead is None:
        raise SealingError(
            f"{context} holds sealed credentials ({', '.join(sorted(sealed))}) but this engine has no secrets "
            f"key; {HOW_TO_CONFIGURE}"
        )
    for name, text in sealed.items():
        if not text.startswith(_VERSION):
            raise SealingError(f"{context}: sealed property {name!r} has an unknown format")
        try:
            raw = base64.urlsafe_b64decode(text[len(_VERSION):])
            value = _aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], f"{context}/{name}".encode())
        except (binascii.Error, ValueError, InvalidTag):
            raise SealingError(
                f"{context}: sealed property {name!r} does not open with this engine's secrets key; every engine "
                "process sharing the metadata topic needs the key it was sealed with"
            ) from None
        properties[name] = value.decode("utf-8")
    return properties
