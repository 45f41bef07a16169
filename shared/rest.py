"""Public REST calls to a venue over aiohttp: one request, a bounded wait, a clear error."""

from __future__ import annotations

import aiohttp

from shared.venues.protocol import RestCall

TIMEOUT = aiohttp.ClientTimeout(total=10)


class RestError(Exception):
    """A REST call that did not return a usable 2xx body; the text says which and why."""


async def fetch(http: aiohttp.ClientSession, base: str, call: RestCall,
                timeout: aiohttp.ClientTimeout = TIMEOUT) -> bytes:
    """The body of `call` against `base`; raises RestError for transport failures and HTTP
    errors (with the start of the venue's answer)."""
    url = base + call.path
    try:
        async with http.request(call.method, url, params=call.params or None, json=call.json,
                                timeout=timeout) as response:
            body = await response.read()
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise RestError(f"{call.method} {url}: {type(exc).__name__}: {exc}") from None
    if response.status >= 400:
        raise RestError(f"{call.method} {url}: HTTP {response.status}: {body[:200]!r}")
    return body
