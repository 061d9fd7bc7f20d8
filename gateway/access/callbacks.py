"""Where the gateway may send what it pushes: people's notice webhooks and integrators'
subscription endpoints.

One rule, checked when an address is set (:meth:`CallbackRule.check`) and again at every
delivery (:class:`CallbackTransport`), after the name is resolved: an address is called
only if it is public (not loopback, private, link-local, unique-local, shared, the
cloud metadata service's, unspecified, multicast or reserved) or within the configured
``callback_allowed_networks``; over ``https``, and over ``http`` only to an allowed
network. At delivery the transport resolves the name itself, refuses if any address is
not allowed, and connects to an address it checked, the name still sent as ``Host`` and
as TLS's server name (so the certificate is verified against the name): a name that
resolves differently between the check and the connection cannot lead inside.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from adapters.client import tls_context
from gateway.errors import BadRequest, Unprocessable
from gateway.settings import Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
#: The longest a name's resolution may take when an address is set.
RESOLVE_SECONDS = 5.0
_PORTS = {"http": 80, "https": 443}


class CallbackRefused(httpx.ConnectError):
    """At delivery: the address is not one the gateway may call (nothing was sent)."""


def networks(values: Iterable[str]) -> tuple[Network, ...]:
    """The networks of a configured allow-list (``127.0.0.1/32``, ``10.1.0.0/16``,
    ``::1``); a value that is not one raises ValueError."""
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values)


def _unmapped(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


async def resolve(host: str, port: int) -> list[Address]:
    """Every address ``host`` names (itself, if it is one); OSError if it resolves to
    none."""
    try:
        return [_unmapped(ipaddress.ip_address(host))]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found = dict.fromkeys(_unmapped(ipaddress.ip_address(i[4][0])) for i in infos)
    if not found:
        raise OSError("the name resolves to no address")
    return list(found)


def callback_url(value: object, what: str) -> str:
    """``value`` if it is a well-formed ``http(s)`` URL with a host, no credentials and a
    port an address can have; otherwise 400 (naming ``what``, never the value). Whether
    it may be called is :meth:`CallbackRule.check`'s."""
    if not isinstance(value, str) or len(value) > 2000:
        raise BadRequest(f"{what} must be an https URL")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError for a port out of range)
    except ValueError as exc:
        raise BadRequest(f"{what} must be an https URL") from exc
    if parts.username is not None or parts.password is not None:
        # It would be stored and shown in the clear.
        raise BadRequest(f"{what} must not hold credentials")
    if parts.scheme not in _PORTS or not parts.hostname:
        raise BadRequest(f"{what} must be an https URL")
    return value


@dataclass(frozen=True, slots=True)
class CallbackRule:
    """Which addresses the gateway may call: the public ones, and ``allowed``."""

    allowed: tuple[Network, ...] = ()

    @classmethod
    def configured(cls, settings: Settings) -> CallbackRule:
        """The rule ``callback_allowed_networks`` sets."""
        return cls(networks(settings.callback_allowed_networks))

    def _listed(self, address: Address) -> bool:
        return any(address in network for network in self.allowed)

    def permits(self, address: Address) -> bool:
        """Whether ``address`` may be called at all."""
        return self._listed(address) or (address.is_global and not address.is_multicast)

    def refusal(self, scheme: str, addresses: list[Address]) -> str | None:
        """Why a URL of ``scheme`` resolving to ``addresses`` may not be called (None:
        it may)."""
        if not addresses or not all(self.permits(a) for a in addresses):
            return "is not an address the gateway may call"
        if scheme != "https" and not all(self._listed(a) for a in addresses):
            return "must be an https URL"
        return None

    async def check(self, value: object, what: str) -> str:
        """``value`` as an address to set: malformed, 400; an address the gateway may
        not call (a name resolving to one), 422. A name that does not resolve now is
        taken: it is checked again at every delivery."""
        url = callback_url(value, what)
        parts = urlsplit(url)
        host = parts.hostname or ""
        try:
            addresses = await asyncio.wait_for(
                resolve(host, parts.port or _PORTS[parts.scheme]), RESOLVE_SECONDS
            )
        except (OSError, TimeoutError, UnicodeError):
            addresses = None
        if addresses is None:
            if parts.scheme != "https":
                raise BadRequest(f"{what} must be an https URL")
            return url
        refusal = self.refusal(parts.scheme, addresses)
        if refusal == "must be an https URL":
            raise BadRequest(f"{what} {refusal}")
        if refusal is not None:
            raise Unprocessable(f"{what} {refusal}")
        return url


class CallbackTransport(httpx.AsyncBaseTransport):
    """httpx's transport, connecting only to addresses ``rule`` permits, and to the
    very address it checked."""

    def __init__(self, rule: CallbackRule, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self._rule = rule
        self._inner = inner or httpx.AsyncHTTPTransport(verify=tls_context())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in _PORTS:
            raise CallbackRefused("not an http(s) address", request=request)
        host = url.raw_host.decode("ascii")  # as resolved and as TLS names it (IDNA)
        try:
            addresses = await resolve(host, url.port or _PORTS[url.scheme])
        except (OSError, UnicodeError) as exc:
            raise httpx.ConnectError("the name did not resolve", request=request) from exc
        if self._rule.refusal(url.scheme, addresses) is not None:
            raise CallbackRefused("not an address the gateway may call", request=request)
        # The checked address, not the name (which the pool would resolve again); the
        # name stays the Host header (set when the request was built) and TLS's SNI.
        request.extensions = {**request.extensions, "sni_hostname": host}
        failure: httpx.ConnectError | None = None
        for address in addresses:
            request.url = url.copy_with(host=str(address))
            try:
                return await self._inner.handle_async_request(request)
            except httpx.ConnectError as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def aclose(self) -> None:
        await self._inner.aclose()


def callback_client(rule: CallbackRule) -> httpx.AsyncClient:
    """The client notices and notifications are sent with: never a redirect, never a
    proxy from the environment, and only to what ``rule`` permits."""
    return httpx.AsyncClient(
        transport=CallbackTransport(rule), follow_redirects=False, trust_env=False
    )
