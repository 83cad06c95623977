"""Client IP allow-lists, as the ICAT authenticator plugins' ``ip`` option has them."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AddressChecker:
    """Accepts client addresses that fall into one of the configured networks.

    Entries are networks (``10.0.0.0/8``, ``2001:db8::/32``) or single addresses
    (``192.168.1.7``). Host bits in a network entry are ignored (``10.1.2.3/8`` means
    ``10.0.0.0/8``), as in the ICAT plugins. An IPv4 client seen as an IPv4-mapped IPv6
    address (``::ffff:10.1.2.3``) is checked as the IPv4 address.
    """

    def __init__(self, entries: Iterable[str]) -> None:
        self.networks: list[Network] = []
        for entry in entries:
            try:
                self.networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError as e:
                raise ValueError(f"{entry!r} is not an IP address or network") from e

    def allows(self, ip: str | None) -> bool:
        """True if ``ip`` is in one of the networks; an unknown or malformed ``ip`` is not."""
        if not ip:
            return False
        try:
            address = ipaddress.ip_address(ip.strip())
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in net for net in self.networks)
