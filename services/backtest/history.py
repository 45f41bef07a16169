"""Bybit's history over REST into an on-disk cache: `/v5/market/kline` and
`/v5/market/funding/history` (category linear), paginated, paced, resumable.

Bybit answers newest first (klines up to 1,000 a page, funding up to 200), so a download walks
back from the end of the range. Each page is appended to `<name>.part` as it arrives; a
download that was interrupted starts again from the oldest row already there. The finished
file is written oldest first in the loaders' format (data.py), and a later request for the
same range is read from the cache without a request.

The instruments lists are saved as the venues answer them, for `instruments.load_instruments`:
Bybit's `/v5/market/instruments-info?category=linear` paged by `cursor` (1,000 a page) and
merged into one body, and Binance's `/fapi/v1/exchangeInfo`. They are today's lists, not a
range: each call fetches them again and replaces the file.

The pace is at most `requests_per_s` (default 10; Bybit allows 600 requests per 5 s per IP on
market endpoints). A failed request is retried with backoff, up to `retries` times, before
`HistoryError` says which request failed.
"""

from __future__ import annotations

import asyncio
import csv
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from services.backtest.instruments import InstrumentError, load_instruments

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
    instruments_page: int = 1000  # Bybit's most
    requests: int = 0
    _last: float = 0.0

    async def _get(self, path: str, params: dict) -> list:
        return (await self._request(path, params, _bybit_problem))["result"]["list"]

    async def _request(self, path: str, params: dict, problem_of) -> dict:
        """The answer's JSON body; `problem_of(status, body)` says what is wrong with an answer
        (None: nothing) and whether it is worth a retry."""
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
                judged = problem_of(response.status, body)
                if judged is None:
                    return body
                problem, retry = judged
                if not retry:
                    raise HistoryError(f"GET {path} {params}: {problem}")
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt < self.retries:
                await asyncio.sleep(min(8.0, 0.5 * 2 ** attempt))
        raise HistoryError(f"GET {path} {params}: {problem} (after {self.retries + 1} tries)")

    async def bybit_instruments(self) -> Path:
        """Bybit's linear instruments, every page merged into one instruments-info body, saved
        as `bybit/instruments_linear.json`."""
        rows: list = []
        cursors: set[str] = set()
        params = {"category": "linear", "limit": str(self.instruments_page)}
        while True:
            body = await self._request("/v5/market/instruments-info", params, _bybit_problem)
            result = body.get("result")
            if not isinstance(result, dict) or not isinstance(result.get("list"), list):
                raise HistoryError(f"GET /v5/market/instruments-info {params}: no result.list in the answer")
            rows += result["list"]
            cursor = result.get("nextPageCursor") or ""
            if not cursor:
                break
            if cursor in cursors:
                raise HistoryError(f"GET /v5/market/instruments-info: the cursor {cursor!r} came back again")
            cursors.add(cursor)
            params = {**params, "cursor": cursor}
        body["result"] = {**body["result"], "list": rows, "nextPageCursor": ""}
        return self._save("bybit/instruments_linear.json", body)

    async def binance_exchange_info(self) -> Path:
        """Binance USD-M's `/fapi/v1/exchangeInfo` as it answers, saved as `binance/exchangeInfo.json`."""
        body = await self._request("/fapi/v1/exchangeInfo", {}, _binance_problem)
        return self._save("binance/exchangeInfo.json", body)

    def _save(self, name: str, body: dict) -> Path:
        path = self.cache_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(body, indent=1))
        try:
            load_instruments(tmp)  # what is saved is what the backtest can read
        except InstrumentError as exc:
            tmp.unlink()
            raise HistoryError(str(exc).replace(str(tmp), f"the answer for {path}", 1)) from None
        tmp.replace(path)
        if self.progress:
            self.progress(1.0)
        return path

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


def _bybit_problem(status: int, body) -> tuple[str, bool] | None:
    """Bybit answers its errors with HTTP 200 and a retCode; 10006 (rate limit) and 10016
    (server error) are worth a retry."""
    code = body.get("retCode") if isinstance(body, dict) else None
    if code == 0:
        return None
    if code is None:
        return f"HTTP {status}: not a Bybit answer", status == 429 or status >= 500
    return f"Bybit {code}: {body.get('retMsg')}", code in (10006, 10016)


def _binance_problem(status: int, body) -> tuple[str, bool] | None:
    """Binance answers errors with an HTTP status and {code, msg}; 429 and 418 (rate limits)
    and 5xx are worth a retry."""
    if status == 200 and isinstance(body, dict):
        return None
    detail = f" {body.get('code')}: {body.get('msg')}" if isinstance(body, dict) else ""
    return f"Binance HTTP {status}{detail}", status in (418, 429) or status >= 500


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
