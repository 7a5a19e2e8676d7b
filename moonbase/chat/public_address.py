"""Which addresses a media URL may be fetched from: unicast, global, and not a
door into another network.

An allowlist, not ``ipaddress``'s ``is_global`` alone: on Python 3.11 that
admits multicast, and for IPv6 the translation and tunnelling ranges whose
packets land on IPv4 hosts (NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``,
Teredo ``2001::/32``), the deprecated site-local ``fec0::/10`` and
IPv4-compatible ``::a.b.c.d``. IPv6 is allowed only inside global unicast
``2000::/3``, less those.
"""

from __future__ import annotations

import ipaddress

_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
_TUNNELS_V6 = tuple(
    ipaddress.ip_network(net)
    for net in ("64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32")
)


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public(address.ipv4_mapped)
        return (
            address in _GLOBAL_UNICAST_V6
            and address.is_global
            and not any(address in net for net in _TUNNELS_V6)
        )
    return (
        address.is_global
        and not address.is_multicast
        and not address.is_reserved
        and address != ipaddress.IPv4Address("255.255.255.255")
    )
