"""Bybit's history over REST into an on-disk cache: `/v5/market/kline` and
`/v5/market/funding/history` (category linear), paginated, paced, resumable.

Bybit answers newest first (klines up to 1,000 a page, funding up to 200), so a download walks
back from the end of the range. Each page is appended to `<name>.part` as it arrives; a
download that was interrupted starts again from the oldest row already there. The finished
file is written oldest first in the loaders' format (data.py), and a later request for the
same range is read from the cache without a request.

The pace is at most `requests_per_s` (default 10; Bybit allows 600 requests per 5 s per IP on
market endpoints). A failed request is retried with backoff, up to `retries` times, before
`HistoryError` says which request failed.
"""

from __future__ import annotations

import asyncio
import csv
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

INTERVAL_MS = {"1": 60_000, "3": 180_000, "5": 300_000, "15": 900_000, "30": 1_800_000, "60": 3_600_000,
               "120": 7_200_000, "240": 14_400_000, "360": 21_600_000, "720": 43_200_000, "D": 86_400_000}
KLINE_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
FUNDING_COLUMNS = ("symbol", "fundingRateTimestamp", "time_utc", "fundingRate")


class HistoryError(Exception):
    """A download that could not complete; the message names the request and why."""


@dataclass
class Downloader:
    http: aiohttp.ClientSession
    rest_url: str
    cache_dir: Path
    requests_per_s: float = 10.0
    retries: int = 4
    progress: Callable[[float], None] | None = None  # the share of the range done, 0..1
    kline_page: int = 1000  # Bybit's most
    funding_page: int = 200
    requests: int = 0
    _last: float = 0.0

    async def _get(self, path: str, params: dict) -> list:
        for attempt in range(self.retries + 1):
            wait = self._last + 1 / self.requests_per_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last = time.monotonic()
            self.requests += 1
            try:
                async with self.http.get(f"{self.rest_url}{path}", params=params,
                                         timeout=aiohttp.ClientTimeout(total=15)) as response:
                    body = await response.json(content_type=None)
                if body.get("retCode") == 0:
                    return body["result"]["list"]
                problem = f"Bybit {body.get('retCode')}: {body.get('retMsg')}"
                if body.get("retCode") not in (10006, 10016):  # rate limit, server error: worth a retry
                    raise HistoryError(f"GET {path} {params}: {problem}")
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt < self.retries:
                await asyncio.sleep(min(8.0, 0.5 * 2 ** attempt))
        raise HistoryError(f"GET {path} {params}: {problem} (after {self.retries + 1} tries)")

    async def klines(self, symbol: str, interval: str, start_ms: int, end_ms: int) -> Path:
        """The bars with open times in [start_ms, end_ms], cached as a kline CSV."""
        if interval not in INTERVAL_MS:
            raise HistoryError(f"interval {interval!r}: one of {', '.join(INTERVAL_MS)}")

        def rows(page: list) -> list[tuple[int, list[str]]]:
            return [(int(r[0]), [_utc(int(r[0])).isoformat(sep=" "), *r[1:6]]) for r in page]

        async def page(end: int, limit: int) -> list:
            return await self._get("/v5/market/kline", {
                "category": "linear", "symbol": symbol, "interval": interval, "start": str(start_ms),
                "end": str(end), "limit": str(limit)})

        return await self._download(f"klines/{symbol}_{interval}_{start_ms}_{end_ms}.csv", KLINE_COLUMNS,
                                    start_ms, end_ms, self.kline_page, rows, page)

    async def funding(self, symbol: str, start_ms: int, end_ms: int) -> Path:
        """The settlements in [start_ms, end_ms], cached as a funding CSV."""

        def rows(page: list) -> list[tuple[int, list[str]]]:
            out = []
            for r in page:
                t = int(r["fundingRateTimestamp"])
                out.append((t, [r["symbol"], str(t), _utc(t).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                                r["fundingRate"]]))
            return out

        async def page(end: int, limit: int) -> list:
            return await self._get("/v5/market/funding/history", {
                "category": "linear", "symbol": symbol, "startTime": str(start_ms), "endTime": str(end),
                "limit": str(limit)})

        return await self._download(f"funding/{symbol}_{start_ms}_{end_ms}.csv", FUNDING_COLUMNS, start_ms, end_ms,
                                    self.funding_page, rows, page)

    async def _download(self, name: str, columns, start_ms: int, end_ms: int, limit: int, rows, page) -> Path:
        """`rows(page)` gives (time, the row as the file has it); the `.part` file holds each with
        its time in front, so a resumed download reads back exactly what it wrote."""
        if end_ms > time.time() * 1000:
            ends = _utc(end_ms)
            raise HistoryError(f"the range ends in the future ({ends:%Y-%m-%d %H:%M} UTC): the cache keeps only "
                               "finished ranges")
        path = self.cache_dir / "bybit" / name
        if path.exists():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(path.name + ".part")
        got: dict[int, list[str]] = {}
        if part.exists():  # an interrupted download: carry on below its oldest whole row
            with part.open(newline="") as file:
                got = {int(r[0]): r[1:] for r in csv.reader(file) if len(r) == len(columns) + 1 and r[0].isdigit()}
        end = min(got) - 1 if got else end_ms
        with part.open("a", newline="") as file:
            out = csv.writer(file)
            while end >= start_ms:
                fresh = [(t, r) for t, r in rows(await page(end, limit)) if start_ms <= t <= end]
                if not fresh:
                    break
                for t, r in fresh:
                    got[t] = r
                    out.writerow([t, *r])
                file.flush()
                end = min(t for t, _ in fresh) - 1
                if self.progress:
                    self.progress(min(1.0, (end_ms - end) / max(1, end_ms - start_ms)))
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w", newline="") as file:
            out = csv.writer(file)
            out.writerow(columns)
            out.writerows(got[t] for t in sorted(got))
        tmp.replace(path)
        part.unlink()
        return path


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
