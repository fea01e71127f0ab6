"""One shared outgoing HTTP client per event loop (status checks, restarts, GitLab, Sentry).

Making an ``httpx.AsyncClient`` loads the CA bundle into a new SSL context: tens of
milliseconds of CPU on the event loop, per client. Fifty checks each making their own would
stall every command for a second. So the SSL context is built once, in a thread, and every
caller shares one client (and its connection pool); what differs per call (headers, timeout,
redirects) is given per request. ``trust_env=False``: the bot talks to the services as
configured, whatever proxy variables its own environment has.
"""

from __future__ import annotations

import asyncio
import ssl
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when a client is first made: `console -c help` needs neither
    import aiohttp
    import httpx

# Many checks at once against one host must not queue behind a small pool.
MAX_CONNECTIONS = 500

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[bool, httpx.AsyncClient]] = (
    weakref.WeakKeyDictionary())
_context: ssl.SSLContext | None = None
_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = (
    weakref.WeakKeyDictionary())


async def ssl_context() -> ssl.SSLContext:
    """The verifying SSL context, built once off the event loop."""
    global _context
    if _context is None:  # two first callers may both build one: harmless, and no lock
        import httpx

        _context = await asyncio.to_thread(httpx.create_ssl_context)  # tied to one loop
    return _context


async def shared_client(*, verify: bool = True) -> httpx.AsyncClient:
    """The loop's shared client (one verifying TLS, one not). Pass ``timeout=``, ``headers=``
    and ``follow_redirects=`` per request; never close it (:func:`close_all` does)."""
    loop = asyncio.get_running_loop()
    clients = _clients.setdefault(loop, {})
    client = clients.get(verify)
    if client is None or client.is_closed:
        context: ssl.SSLContext | bool = await ssl_context() if verify else False
        client = clients.get(verify)  # another task may have made it meanwhile
        if client is None or client.is_closed:
            import httpx

            limits = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=100,
                                  keepalive_expiry=30)
            client = clients[verify] = httpx.AsyncClient(
                verify=context, trust_env=False, limits=limits, follow_redirects=False)
    return client


async def close_all() -> None:
    """Close this loop's shared clients (at shutdown)."""
    clients = _clients.pop(asyncio.get_running_loop(), {})
    for client in clients.values():
        await client.aclose()
    session = _sessions.pop(asyncio.get_running_loop(), None)
    if session is not None:
        await session.close()


async def shared_session() -> aiohttp.ClientSession:
    """The loop's shared aiohttp session, for the hot path of many concurrent requests (the
    ``http`` status check): per request it costs a fraction of httpx's CPU. Pass ``ssl=``
    (:func:`ssl_context` or False), ``timeout=`` and ``allow_redirects=`` per request; proxy
    variables are ignored (``trust_env=False``)."""
    loop = asyncio.get_running_loop()
    session = _sessions.get(loop)
    if session is None or session.closed:
        import aiohttp

        session = _sessions[loop] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
            trust_env=False, auto_decompress=True)
    return session
