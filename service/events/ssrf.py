"""Where a webhook may send (contract §9): never to this machine or a private network,
unless `HEARME_WEBHOOK_ALLOW_PRIVATE=true`.

The host is resolved, every address it resolves to is checked, and the delivery then
connects to the checked address itself (`Target.address`), sending the URL's host in
the Host header and as the TLS server name: no second lookup happens between the check
and the connection, so a DNS answer that changes in between (rebinding) cannot redirect
the request. Redirects are never followed (`service.events.delivery`).
"""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from service.errors import invalid_field

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(ValueError):
    """A URL that may not be delivered to; the message says why."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # as written in the URL (for Host and SNI)
    port: int
    address: str  # the checked IP address to connect to
    path: str  # path and query


def forbidden(address: Address) -> str | None:
    """Why an address is refused, or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private or address.is_reserved or address.is_unspecified:
        return "a private or reserved address"
    if isinstance(address, ipaddress.IPv4Address) and address in ipaddress.ip_network(
        "100.64.0.0/10"
    ):
        return "a shared (carrier-grade NAT) address"
    return None


def parse(url: str) -> tuple[str, str, int, str]:
    """Scheme, host, port and path of an http(s) URL, or Refused."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused(f"not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise Refused("the URL must be http or https")
    if not parts.hostname:
        raise Refused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise Refused("the URL may not carry credentials")
    if parts.fragment:
        raise Refused("the URL may not have a fragment")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path


def resolve(url: str, *, allow_private: bool) -> Target:
    """The URL's host, resolved and checked; Refused names the problem."""
    scheme, host, port, path = parse(url)
    try:
        addresses: list[Address] = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise Refused(f"the host {host!r} does not resolve") from exc
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise Refused(f"the host {host!r} does not resolve")
    if not allow_private:
        for address in addresses:
            why = forbidden(address)
            if why is not None:
                raise Refused(f"the host {host!r} is or resolves to {why} ({address})")
    return Target(scheme, host, port, str(addresses[0]), path)


def check_url(url: str, *, allow_private: bool) -> None:
    """422 naming `url` for a URL that may not be delivered to."""
    try:
        resolve(url, allow_private=allow_private)
    except Refused as exc:
        raise invalid_field(("url",), str(exc)) from exc
