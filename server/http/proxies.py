"""The client's address, through reverse proxies pgbell is told to trust.

Behind a proxy every request comes from the proxy's address, which would
make the login throttle one budget for everybody. PGBELL_TRUSTED_PROXIES
lists the proxies (addresses or networks); for a request from one of them,
the client is the rightmost X-Forwarded-For entry that is not itself a
trusted proxy. X-Forwarded-For from anyone else is ignored: a client can
write any header it likes.
"""

from __future__ import annotations

import ipaddress

from aiohttp import web

from pgbell.config import Network
from pgbell.http import keys


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(request: web.BaseRequest) -> str:
    remote = request.remote or ""
    try:
        app = request.app
    except (AttributeError, AssertionError):
        # a request aiohttp refused before routing it (malformed HTTP) has no
        # app: the access logger still asks for its address
        return remote
    networks = app[keys.SETTINGS].trusted_proxies
    if not networks or not _trusted(remote, networks):
        return remote
    chain = [a.strip() for h in request.headers.getall("X-Forwarded-For", []) for a in h.split(",")]
    for address in reversed([a for a in chain if a]):
        if not _trusted(address, networks):
            return address[:64]
    return remote
