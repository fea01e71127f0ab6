"""An httpx transport on aiohttp: the driver's REST calls without httpcore's per-call cost.

mattermostautodriver builds an ``httpx.AsyncClient`` and accepts a ``transport`` option. httpx's
default transport (httpcore + anyio + h11) costs about 1.5 ms of CPU per call here; aiohttp's
client (C HTTP parser, plain asyncio streams), which the bot already runs for its HTTP server and
the websocket, does the same call for a fraction of that (numbers in ``docs/mattermost.md``).
The driver, its request building and its error mapping stay as they are; only the bytes move
through aiohttp. Errors are raised as the httpx exceptions the driver and the adapter expect.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
from functools import lru_cache

import aiohttp
import httpx


@lru_cache(maxsize=64)
def env_proxy(scheme: str, host: str) -> str | None:
    """The proxy the environment (``HTTPS_PROXY``, ``NO_PROXY``, ...) names for a server.

    Looked up once per server: aiohttp's ``trust_env`` would ask a thread on every request.
    """
    if urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies().get(scheme)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """``httpx.AsyncClient(transport=AiohttpTransport())``; one aiohttp session, made lazily."""

    def __init__(self, *, verify: bool = True, limit: int = 100) -> None:
        self.verify = verify
        self.limit = limit
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            context: ssl.SSLContext | bool = True
            if not self.verify:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=context, limit=self.limit),
                cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps the cookies (driver policy)
                auto_decompress=False, skip_auto_headers=("User-Agent",))
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout") or {}
        timeout = aiohttp.ClientTimeout(
            total=None, connect=timeouts.get("pool"), sock_connect=timeouts.get("connect"),
            sock_read=timeouts.get("read"))
        body = await request.aread()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        try:
            async with self._client().request(
                    request.method, str(request.url), headers=headers,
                    data=body or None, allow_redirects=False, timeout=timeout,
                    proxy=env_proxy(request.url.scheme, request.url.host)) as response:
                content = await response.read()
                status = response.status
                received = list(response.raw_headers)
        except TimeoutError as exc:
            raise httpx.ReadTimeout(f"no answer within the deadline: {exc}",
                                    request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise httpx.RemoteProtocolError(f"{type(exc).__name__}: {exc}",
                                            request=request) from exc
        return httpx.Response(status, headers=received, content=content, request=request)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            await asyncio.sleep(0)  # let aiohttp close its connections
