"""What every venue's signed REST client shares (OKX, Bitget, Binance): the venue's clock as
measured against ours, the request counters and the timeout. Each venue's client signs,
sends and reads its own answers."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

import aiohttp

from shared.venues.trading import OutcomeUnknown


class SignedRest:
    time_path: ClassVar[str]  # the venue's server-time endpoint

    def __init__(self, http: aiohttp.ClientSession, rest_url: str, clock: Callable[[], float] = time.time,
                 timeout_s: float = 5.0) -> None:
        self.http = http
        self.rest_url = rest_url.rstrip("/")
        self.clock = clock
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.offset_ms = 0  # the venue's clock minus ours
        self.counts: dict[str, int] = {}

    def server_ms(self, body: bytes) -> int:
        """The venue's clock in its answer to `time_path`."""
        raise NotImplementedError

    def now_ms(self) -> int:
        """The venue's clock as we reckon it."""
        return int(self.clock() * 1000) + self.offset_ms

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    async def sync_time(self) -> int:
        """Measure the venue's clock against ours (the midpoint of the round trip); the offset in ms.
        OutcomeUnknown when it does not answer with one."""
        sent = self.clock()
        try:
            async with self.http.get(f"{self.rest_url}{self.time_path}", timeout=self.timeout) as response:
                body = await response.read()
            server_ms = self.server_ms(body)
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError, LookupError, TypeError) as exc:
            raise OutcomeUnknown(f"GET {self.time_path}: {type(exc).__name__}: {exc}") from None
        received = self.clock()
        self.offset_ms = server_ms - int((sent + received) / 2 * 1000)
        return self.offset_ms
