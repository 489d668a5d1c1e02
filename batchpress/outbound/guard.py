"""Which addresses outbound requests may reach.

Users name the hosts we fetch from, so a URL could otherwise point the worker at the database, the cloud metadata
endpoint (169.254.169.254) or anything else only reachable from inside. Every address a host resolves to is checked,
in every spelling ``getaddrinfo`` accepts (``2130706433``, ``0177.0.0.1``, ``0x7f.1``, ``127.1``, ``::ffff:127.0.0.1``).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import urllib.parse
from dataclasses import dataclass, field

import httpx

from batchpress.config import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = ("http", "https")
# The characters of the IPv4 shorthands inet_aton (and so getaddrinfo) accepts: 127.1, 0x7f.1, 0177.0.0.1, 2130706433.
_INET_ATON_FORM = re.compile(r"[0-9a-fA-FxX.]+")
_PRIVATE = (
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("172.16.0.0/12"),
    ipaddress.ip_network("192.168.0.0/16"),
    ipaddress.ip_network("fc00::/7"),
    ipaddress.ip_network("fec0::/10"),
)
_CARRIER_GRADE_NAT = ipaddress.ip_network("100.64.0.0/10")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")
_ROUTES_TO_EMBEDDED = ("an IPv4-mapped form", "a NAT64 form")


class OutboundBlocked(httpx.RequestError):
    """The URL points somewhere outbound requests may not go. Raised before any connection; never worth retrying."""

    def __init__(self, message: str) -> None:
        super().__init__(f"blocked: {message}")


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    allow_private_networks: bool = False
    # Host names (lower case, no trailing dot) that may resolve to internal addresses.
    allow_hosts: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundPolicy:
        hosts = (_normal_host(host) for host in settings.outbound_allow_hosts.split(","))
        return cls(settings.allow_private_networks, frozenset(host for host in hosts if host))

    def check_scheme(self, scheme: str) -> None:
        if scheme not in ALLOWED_SCHEMES:
            raise OutboundBlocked(f"only http and https URLs are allowed, not {scheme or 'one without a scheme'!r}")

    def check_url(self, url: str) -> None:
        """Refuse a URL early by what it says: its scheme, and a host that is an internal address in any spelling,
        including ones httpx would reject as invalid (``0177.0.0.1``). Host names are checked when connecting."""
        parts = urllib.parse.urlsplit(url)
        self.check_scheme(parts.scheme.lower())
        try:
            host, port = parts.hostname, parts.port
        except ValueError:
            return  # not a URL httpx will accept either
        if host and literal_address(host) is not None:
            self.addresses(host, port or 0)

    def addresses(self, host: str, port: int) -> list[IPAddress]:
        """Every address ``host`` stands for, all of them checked: the caller connects to these and nothing else."""
        literal = literal_address(host)
        found = [literal] if literal is not None else resolve(host, port)
        if self.allow_private_networks or _normal_host(host) in self.allow_hosts:
            return found
        for address in found:
            kind = internal_kind(address)
            if kind is None:
                continue
            if literal is not None and _is_standard_literal(host):
                what = f"{host} is {kind}"
            elif literal is not None:
                what = f"{host} means {address}, {kind}"
            else:
                what = f"{host} resolves to {address}, {kind}"
            hint = "set BATCHPRESS_ALLOW_PRIVATE_NETWORKS=true"
            if literal is None:
                hint += " or list the host in BATCHPRESS_OUTBOUND_ALLOW_HOSTS"
            raise OutboundBlocked(f"{what} ({hint} to allow)")
        return found


def literal_address(host: str) -> IPAddress | None:
    """The address a host that is an IP literal stands for, read the way ``getaddrinfo`` reads it; None for names."""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _INET_ATON_FORM.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def resolve(host: str, port: int) -> list[IPAddress]:
    """All the IPv4 and IPv6 addresses of ``host``, in the resolver's order; raises ``socket.gaierror``."""
    found: list[IPAddress] = []
    for family, _, _, _, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = ipaddress.ip_address(sockaddr[0])
        if address not in found:
            found.append(address)
    return found


def internal_kind(address: IPAddress) -> str | None:
    """Why ``address`` is not a public internet address ("a loopback address", ...), or None when it is one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            form, ipv4 = embedded
            kind = internal_kind(ipv4)
            if kind is not None:
                return f"{form} of {ipv4}, {kind}"
            if form in _ROUTES_TO_EMBEDDED:
                # A DNS64 resolver answers like this for every IPv4-only host, and the mapped form is plain IPv4.
                return None
        if address in _LOCAL_NAT64:
            return "a local-use NAT64 address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address in _CARRIER_GRADE_NAT:
        return "a carrier-grade NAT address"
    if any(address in network for network in _PRIVATE):
        return "a private address"
    if address in _THIS_NETWORK:
        return "a 'this network' address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "a special-purpose (non-public) address"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 one carries by design (and reaches it through), with the name of the scheme."""
    if address.ipv4_mapped is not None:
        return "an IPv4-mapped form", address.ipv4_mapped
    if address in _IPV4_COMPATIBLE and not (address.is_unspecified or address.is_loopback):
        return "an IPv4-compatible form", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _NAT64:
        return "a NAT64 form", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return "a 6to4 form", address.sixtofour
    if address.teredo is not None:
        return "a Teredo form", address.teredo[1]
    return None


def _is_standard_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _normal_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()
