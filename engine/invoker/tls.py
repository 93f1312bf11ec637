"""TLS client settings for calls to deployments (``https://`` endpoints).

Certificates are verified, against the system's trusted CAs (as restate-server does with
its native roots) plus, with the setting ``invoker_tls_ca_file``, the CA certificates of
one PEM bundle: the way to trust a private CA or a self-signed endpoint certificate
without touching the system store. The same trust applies to discovery and invocations,
over HTTP/1.1 and HTTP/2.

Each client gets its own :class:`ssl.SSLContext`: the HTTP/2 client offers ALPN ``h2``
only, the HTTP/1.1 clients ``http/1.1``, and a context's ALPN list is shared by every
connection made with it.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Final

from engine.errors import ConfigError

__all__ = ["SETTING", "TlsTrust"]

SETTING: Final = "invoker_tls_ca_file"


class TlsTrust:
    """The trusted CAs for deployments: the system's, plus an optional PEM bundle.

    Raises:
        ConfigError: the bundle is missing, unreadable, or holds no certificate
            (checked once, when constructed); the message names the setting.
    """

    __slots__ = ("ca_file",)

    def __init__(self, ca_file: Path | None = None) -> None:
        self.ca_file = ca_file
        if ca_file is not None:
            self.context(["h2"])  # fail at start-up, not at the first https call

    def context(self, alpn: list[str]) -> ssl.SSLContext:
        """A new verifying client context offering ``alpn``."""
        context = ssl.create_default_context()
        if self.ca_file is not None:
            where = f"{SETTING} ({self.ca_file})"
            try:
                data = self.ca_file.read_text(encoding="ascii", errors="replace")
            except FileNotFoundError:
                raise ConfigError(f"{where}: the file does not exist") from None
            except OSError as exc:
                raise ConfigError(f"{where}: cannot read the file: {exc.strerror}") from None
            if "-----BEGIN CERTIFICATE-----" not in data:
                raise ConfigError(f"{where}: no PEM certificate (-----BEGIN CERTIFICATE-----) in the file")
            try:
                context.load_verify_locations(cadata=data)
            except ssl.SSLError as exc:
                raise ConfigError(f"{where}: not a readable PEM CA bundle: {exc.reason or exc}") from None
        context.set_alpn_protocols(alpn)
        return context

    def http11(self) -> ssl.SSLContext:
        """For aiohttp clients (discovery over HTTP/1.1, request/response attempts)."""
        return self.context(["http/1.1"])

    def http2(self) -> ssl.SSLContext:
        """For :class:`engine.invoker.http2.Http2Client`."""
        return self.context(["h2"])

    def __repr__(self) -> str:
        return f"TlsTrust(ca_file={str(self.ca_file) if self.ca_file else None!r})"
