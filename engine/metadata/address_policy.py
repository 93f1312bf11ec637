"""Which network addresses the engine may call as service endpoints.

``POST /deployments`` makes the engine send HTTP requests to an address an API caller
chooses (discovery now, invocations later). Without a policy that is a server-side
request forgery: the cloud metadata services (``169.254.169.254`` and friends) answer
anyone on the host, with credentials. So endpoint addresses are checked against a deny
list (``deployment_deny_networks``, by default link-local IPv4/IPv6 and the metadata
addresses of the big clouds) and an allow list that takes precedence
(``deployment_allow_networks``, empty by default). Loopback and private networks stay
allowed: that is where endpoints usually run.

Host names are checked by what they resolve to, at registration (a 400 naming the
address) and again on every connection (:class:`GuardedResolver`), so a name that
resolves to an allowed address at registration and to a denied one later (DNS
rebinding) still never reaches it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

__all__ = ["DEFAULT_DENY_NETWORKS", "AddressPolicy", "DeniedAddress", "GuardedResolver", "parse_networks"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_DENY_NETWORKS: Final = (
    "169.254.0.0/16",  # IPv4 link-local: AWS/GCP/Azure/OpenStack metadata at 169.254.169.254
    "fe80::/10",  # IPv6 link-local
    "fd00:ec2::254/128",  # AWS instance metadata over IPv6
    "100.100.100.200/32",  # Alibaba Cloud metadata
    "168.63.129.16/32",  # Azure wire server
    "0.0.0.0/32",  # "this host" (reaches local services on Linux)
    "::/128",
)
"""Denied unless allowed: link-local networks and cloud metadata services."""


class DeniedAddress(OSError):
    """An endpoint address the policy denies; the message says how to allow it."""


def parse_networks(values: Iterable[str], setting: str) -> tuple[Network, ...]:
    """``["169.254.0.0/16", "10.1.2.3"]`` as networks; raises ``ValueError`` naming ``setting``."""
    networks: list[Network] = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"{setting}: {value!r} is not an IP network ({exc}); write e.g. 169.254.0.0/16") from None
    return tuple(networks)


@dataclass(frozen=True)
class AddressPolicy:
    """Deny and allow lists of networks; an address in an allowed network is always allowed."""

    deny: tuple[Network, ...] = parse_networks(DEFAULT_DENY_NETWORKS, "deployment_deny_networks")
    allow: tuple[Network, ...] = ()

    @classmethod
    def from_settings(cls, deny: Sequence[str], allow: Sequence[str]) -> AddressPolicy:
        return cls(parse_networks(deny, "deployment_deny_networks"), parse_networks(allow, "deployment_allow_networks"))

    def reason(self, address: str) -> str | None:
        """Why the engine may not connect to ``address`` (an IP literal), or ``None``."""
        try:
            ip: Address = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return None  # not an IP: checked once resolved
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self.allow):
            return None
        denied = next((net for net in self.deny if ip in net), None)
        if denied is None:
            return None
        return (
            f"the address {ip} is in {denied}, which the engine does not call (link-local and cloud metadata "
            "addresses are denied by default); if this endpoint really lives there, the operator adds the "
            "network to deployment_allow_networks in the engine config"
        )

    def check(self, address: str) -> None:
        reason = self.reason(address)
        if reason is not None:
            raise DeniedAddress(reason)


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that fails the connection (:class:`DeniedAddress`) when a host
    name resolves to any address the policy denies, so no connection goes there."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            self._policy.check(result["host"])
        return results

    async def close(self) -> None:
        await self._inner.close()
