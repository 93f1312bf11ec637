"""Asking a service endpoint what it serves: ``GET {uri}/discover``.

The request offers every manifest version this engine reads (v4 first); the endpoint
answers in one of them and says which in its ``content-type``. The manifest is then
checked against what this engine can serve:

* service protocol versions: the endpoint's range must overlap 5..7 (else ``META0012``);
* protocol mode: ``BIDI_STREAM`` needs HTTP/2 here. An endpoint announcing it when
  discovered over HTTP/1.1 is refused (``META0014``) with advice to serve
  request/response or HTTP/2. (restate-server trusts such an endpoint and streams over
  HTTP/1.1; logstrate's invoker streams over HTTP/2 only.)

With ``http2`` (the engine setting ``invoker_http2``, on by default) discovery goes over
HTTP/2 (h2c with prior knowledge for ``http://``, TLS with ALPN ``h2`` for ``https://``)
unless the registration says ``use_http_11``, as restate-server does; an SDK under an
HTTP/2 server then announces ``BIDI_STREAM`` and is invoked in bidirectional streams.
An endpoint that does not speak HTTP/2 (it answers the h2c preface with HTTP/1.1 or
closes the connection, or its TLS ALPN does not pick ``h2``) is discovered again over
HTTP/1.1 and called request/response. restate-server does not fall back: it answers
``META0014`` ("server possibly supports only HTTP1.1, consider discovery with
--use-http1.1"); logstrate accepts what restate-server accepts and, in addition,
HTTP/1.1-only endpoints registered without ``use_http_11``. A connection that cannot be
made at all (refused, TLS handshake failed, address denied) is an error, not a fallback.

Failures are typed (:mod:`engine.metadata.errors`): unreachable, timed out, a
non-manifest answer, an invalid manifest, an incompatible endpoint. An answer that is not
a manifest is reported by its status line only: its body goes to the engine's log, never
into the API answer, so registering an internal URL cannot be used to read it.

The endpoint's address must pass the :class:`~engine.metadata.address_policy.AddressPolicy`
(link-local and cloud metadata addresses are denied by default): checked before the
request (400) and on every connection the HTTP/1.1 and HTTP/2 clients make.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import aiohttp
from yarl import URL

from engine.invoker.http2 import Http2Client, Http2Error
from engine.invoker.identity import RequestIdentity, request_identity_hint
from engine.invoker.tls import TlsTrust
from restate_protocol.errors import ProtocolError, UnsupportedProtocolVersion
from restate_protocol.versions import negotiate_version
from engine.logs import get_logger
from engine.metadata.address_policy import AddressPolicy, DeniedAddress, GuardedResolver
from engine.metadata.errors import (
    BadDiscoveryResponse,
    DiscoveryTimeout,
    EndpointUnreachable,
    IncompatibleEndpoint,
    InvalidRequest,
)
from engine.metadata.manifest import (
    MAX_MANIFEST_VERSION,
    MIN_MANIFEST_VERSION,
    EndpointManifest,
    manifest_content_type,
    manifest_version_of,
    parse_manifest,
)
from engine.metadata.model import ProtocolType

__all__ = [
    "DEFAULT_DISCOVERY_TIMEOUT_S",
    "DISCOVERY_ACCEPT",
    "DiscoveredEndpoint",
    "DiscoveryClient",
    "normalize_endpoint_uri",
]

log = get_logger(__name__)

DEFAULT_DISCOVERY_TIMEOUT_S: Final = 10.0
"""How long an endpoint may take to answer ``/discover`` (connect included)."""

DISCOVERY_ACCEPT: Final = ", ".join(
    manifest_content_type(v) for v in range(MAX_MANIFEST_VERSION, MIN_MANIFEST_VERSION - 1, -1)
)
"""The ``accept`` header of a discovery request: every manifest version we read, newest first."""

HTTP_VERSION: Final = "HTTP/1.1"
"""How logstrate talks to endpoints, spelled as the admin API reports it."""

_MAX_MANIFEST_BYTES: Final = 16 * 1024 * 1024
_BODY_EXCERPT: Final = 300
"""How much of a non-manifest answer the engine's log shows (never the API answer)."""


@dataclass(frozen=True)
class DiscoveredEndpoint:
    """A successfully discovered endpoint that this engine can invoke."""

    uri: str
    """The normalized endpoint URI."""
    manifest: EndpointManifest
    sdk_version: str | None
    """The endpoint's ``x-restate-server`` header (SDK name and version), if it sent one."""
    http_version: str = HTTP_VERSION


def normalize_endpoint_uri(uri: str) -> str:
    """Check that ``uri`` is an absolute http(s) URI and give it a path (``/`` if none).

    Restate prints ``http://host:9080`` back as ``http://host:9080/``; two spellings of
    the same endpoint compare equal after this.

    Raises:
        InvalidRequest: not an absolute http or https URI.
    """
    try:
        url = URL(uri)
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(f"The request field 'uri' is invalid. Reason: {exc}") from None
    if not url.is_absolute() or url.scheme not in ("http", "https") or not url.host:
        raise InvalidRequest(
            f"The request field 'uri' is invalid. Reason: {uri!r} is not an absolute http:// or https:// URI; "
            "give the endpoint's full address, e.g. http://localhost:9080"
        )
    if url.query_string or url.fragment:
        raise InvalidRequest(
            f"The request field 'uri' is invalid. Reason: {uri!r} has a query or fragment; "
            "an endpoint URI is scheme, host, port and an optional path prefix"
        )
    if url.raw_path == "/":
        # yarl prints an empty path as nothing; Restate prints it as "/".
        url = url.with_path("/")
    return str(url)


def _discover_url(uri: str) -> str:
    return uri.rstrip("/") + "/discover"


class DiscoveryClient:
    """Runs discovery requests; one HTTP connection pool, closed by :meth:`close`.

    With ``identity`` every discovery request is signed (audience ``/discover``), as
    restate-server does, so endpoints with ``identity_keys`` answer it. ``tls`` says which
    CAs verify ``https://`` endpoints (default: the system's).
    """

    def __init__(
        self,
        *,
        timeout_s: float = DEFAULT_DISCOVERY_TIMEOUT_S,
        identity: RequestIdentity | None = None,
        http2: bool = False,
        policy: AddressPolicy | None = None,
        tls: TlsTrust | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self.tls = tls or TlsTrust()
        self.identity = identity
        self.http2 = http2
        self.policy = policy or AddressPolicy()
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        """Close the connection pool (idempotent)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        # Created lazily: a ClientSession belongs to the event loop it was made in.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                connector=aiohttp.TCPConnector(resolver=GuardedResolver(self.policy), ssl=self.tls.http11()),
            )
        return self._session

    async def discover(
        self,
        uri: str,
        *,
        additional_headers: Mapping[str, str] | None = None,
        use_http_11: bool = False,
    ) -> DiscoveredEndpoint:
        """Fetch, parse and check the manifest of the endpoint at ``uri``.

        ``additional_headers`` go with the request (API keys and the like).
        ``use_http_11`` discovers over HTTP/1.1 only (otherwise HTTP/2 first, with
        ``http2``; see the module docstring).

        Raises:
            InvalidRequest: ``uri`` is not an absolute http(s) URI, or its address is denied.
            EndpointUnreachable, DiscoveryTimeout, BadDiscoveryResponse: no usable answer.
            InvalidManifest: the manifest is malformed.
            IncompatibleEndpoint: the endpoint cannot be served by this engine.
        """
        uri = normalize_endpoint_uri(uri)
        await self._check_address(URL(uri))
        url = _discover_url(uri)
        headers = {**(additional_headers or {}), "accept": DISCOVERY_ACCEPT}
        if self.identity is not None:
            headers.update(self.identity.headers("/discover"))
        bound = log.bind(endpoint=uri)
        if self.http2 and not use_http_11:
            answer = await self._discover_h2(url, headers)
            if answer is not None:
                status, content_type, body, sdk_version = answer
                bound.debug("discovery answered over HTTP/2", status=status, content_type=content_type)
                return _check(uri, url, status, content_type, body, sdk_version, self.identity, http2=True)
        try:
            # No redirects: the registered URI must be the endpoint itself, since invocations
            # go to it directly.
            async with self._client().get(url, headers=headers, allow_redirects=False) as response:
                body = await response.content.read(_MAX_MANIFEST_BYTES + 1)
                status = response.status
                content_type = response.headers.get("content-type")
                sdk_version = response.headers.get("x-restate-server")
        except asyncio.TimeoutError:
            raise DiscoveryTimeout(
                f"{url} did not answer the discovery request within {self.timeout_s:g}s; "
                "check that the endpoint is up and not blocked, then register it again"
            ) from None
        except aiohttp.ServerDisconnectedError:
            raise EndpointUnreachable(
                f"{url} closed the connection without answering over HTTP/1.1; "
                + self._http2_only_hint(use_http_11)
            ) from None
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, DeniedAddress):
                raise InvalidRequest(f"The request field 'uri' is invalid. Reason: {exc.os_error}") from None
            raise EndpointUnreachable(
                f"cannot reach {url}: {exc}; check the URI, that the endpoint is running and "
                "that this engine can reach it (additional_headers carry any credentials it needs)"
            ) from None
        except aiohttp.ClientOSError as exc:
            raise EndpointUnreachable(
                f"cannot reach {url}: {exc}; check the URI, that the endpoint is running and "
                "that this engine can reach it (additional_headers carry any credentials it needs)"
            ) from None
        except aiohttp.ClientError as exc:
            raise BadDiscoveryResponse(
                f"{url} did not answer with valid HTTP/1.1 ({exc}); " + self._http2_only_hint(use_http_11)
            ) from None
        bound.debug("discovery answered", status=status, content_type=content_type, sdk=sdk_version)
        if not 200 <= status < 300:
            excerpt = body[:_BODY_EXCERPT].decode("utf-8", errors="replace").strip()
            bound.warning("discovery answered with an error", status=status, body_excerpt=excerpt)
        return _check(uri, url, status, content_type, body, sdk_version, self.identity, http2_on=self.http2)

    def _http2_only_hint(self, use_http_11: bool) -> str:
        if self.http2 and use_http_11:
            return "if the endpoint serves HTTP/2 only, register it without use_http_11"
        if self.http2:
            return "the endpoint did not answer over HTTP/2 either; check that it is a Restate service endpoint"
        return (
            "this engine calls endpoints over HTTP/1.1 only (invoker_http2 is off): serve the endpoint over "
            "HTTP/1.1 in request/response mode, or turn invoker_http2 on"
        )

    async def _discover_h2(
        self, url: str, headers: Mapping[str, str]
    ) -> tuple[int, str | None, bytes, str | None] | None:
        """``GET /discover`` over HTTP/2; ``None`` when the endpoint does not speak it."""
        client = Http2Client(
            connect_timeout_s=self.timeout_s, resolver=GuardedResolver(self.policy), ssl_context=self.tls.http2()
        )
        try:
            async with asyncio.timeout(self.timeout_s):
                stream = await client.open_stream(url, headers, method="GET")
                await stream.end()
                status, response_headers = await stream.response()
                body = bytearray()
                while chunk := await stream.read():
                    body += chunk
                    if len(body) > _MAX_MANIFEST_BYTES:
                        break
        except TimeoutError:
            raise DiscoveryTimeout(
                f"{url} did not answer the discovery request over HTTP/2 within {self.timeout_s:g}s; "
                "check that the endpoint is up, or register it with use_http_11: true"
            ) from None
        except Http2Error as exc:
            if isinstance(exc.__cause__, DeniedAddress):
                raise InvalidRequest(f"The request field 'uri' is invalid. Reason: {exc.__cause__}") from None
            if str(exc).startswith("cannot connect"):
                raise EndpointUnreachable(
                    f"cannot reach {url}: {exc}; check the URI, that the endpoint is running and "
                    "that this engine can reach it"
                ) from None
            log.info("endpoint does not speak HTTP/2; discovering over HTTP/1.1", url=url, error=str(exc))
            return None
        finally:
            await client.close()
        head = dict(response_headers)
        return status, head.get("content-type"), bytes(body), head.get("x-restate-server")

    async def _check_address(self, url: URL) -> None:
        """400 for a denied address: the host itself when it is an IP, else every address it
        resolves to now (the connector checks again on connect: DNS can change)."""
        host = url.raw_host or ""
        reason = self.policy.reason(host)
        if reason is None:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, url.port or 80, type=socket.SOCK_STREAM
                )
            except OSError:
                return  # unresolvable: the request itself fails with a clear "cannot reach"
            reason = next((r for r in (self.policy.reason(str(info[4][0])) for info in infos) if r), None)
            if reason is not None:
                reason = f"{host} resolves to an address the engine does not call: {reason}"
        if reason is not None:
            raise InvalidRequest(f"The request field 'uri' is invalid. Reason: {reason}")


def _check(
    uri: str,
    url: str,
    status: int,
    content_type: str | None,
    body: bytes,
    sdk_version: str | None,
    identity: RequestIdentity | None = None,
    *,
    http2: bool = False,
    http2_on: bool = False,
) -> DiscoveredEndpoint:
    """``http2``: the answer came over HTTP/2; ``http2_on``: the engine could have used it."""
    if status == 401:
        raise BadDiscoveryResponse(
            f"{url} answered HTTP 401 Unauthorized: {request_identity_hint(identity)}"
        )
    if status == 415:
        raise IncompatibleEndpoint(
            f"{url} supports none of the endpoint manifest versions logstrate reads "
            f"(v{MIN_MANIFEST_VERSION} to v{MAX_MANIFEST_VERSION}): HTTP 415; "
            "use an SDK version that supports one of them (the answer's body is in the engine log)"
        )
    if not 200 <= status < 300:
        raise BadDiscoveryResponse(
            f"{url} answered HTTP {status}; is this the URI of a Restate service endpoint? "
            "(the answer's body is in the engine log)"
        )
    version = manifest_version_of(content_type)
    if version is None:
        raise BadDiscoveryResponse(
            f"{url} answered with content type {(content_type or '')[:100]!r}, not an endpoint manifest "
            f"({manifest_content_type(MAX_MANIFEST_VERSION)}); is this the URI of a Restate service endpoint?"
        )
    if not MIN_MANIFEST_VERSION <= version <= MAX_MANIFEST_VERSION:
        raise IncompatibleEndpoint(
            f"{url} answered with endpoint manifest v{version}, but logstrate reads "
            f"v{MIN_MANIFEST_VERSION} to v{MAX_MANIFEST_VERSION} and asked for those only"
        )
    if len(body) > _MAX_MANIFEST_BYTES:
        raise BadDiscoveryResponse(f"{url} answered with a manifest larger than {_MAX_MANIFEST_BYTES} bytes")
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadDiscoveryResponse(f"{url} answered with a manifest that is not valid JSON: {exc}") from None
    manifest = parse_manifest(version, document)
    try:
        negotiate_version(manifest.min_protocol_version, manifest.max_protocol_version)
    except (UnsupportedProtocolVersion, ProtocolError) as exc:
        raise IncompatibleEndpoint(f"{uri}: {exc}", restate_code="META0012") from None
    if manifest.protocol_type is ProtocolType.BIDI_STREAM and http2:
        return DiscoveredEndpoint(uri=uri, manifest=manifest, sdk_version=sdk_version, http_version="HTTP/2.0")
    if manifest.protocol_type is ProtocolType.BIDI_STREAM:
        advice = (
            "register it without use_http_11 so that it is discovered (and streamed to) over HTTP/2, or configure "
            "the SDK to serve request/response"
            if http2_on
            else "logstrate invokes endpoints over HTTP/1.1 in request/response mode here (invoker_http2 is off), "
            "so configure the SDK to serve request/response (e.g. serve it over HTTP/1.1), or turn invoker_http2 on"
        )
        raise IncompatibleEndpoint(
            f"{uri} announces protocolMode BIDI_STREAM, but discovery went over HTTP/1.1, over which logstrate "
            f"cannot stream; {advice}",
            restate_code="META0014",
        )
    return DiscoveredEndpoint(uri=uri, manifest=manifest, sdk_version=sdk_version)
