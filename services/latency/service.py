"""The exchange latency monitor: polls each venue's server time, keeps the rolling state,
writes it to `strategy:latency:{exchange}`, exports it as metrics and logs violations.

One task per venue polls every LATENCY_POLL_MS (never faster than the venue's rate limit for
that endpoint allows, e.g. 200 ms on OKX) on a fixed schedule; a poll that fails or times out
counts as an error and leaves the venue without a sample (stale once the window is empty).
A venue is logged when it turns stale, every 10 s while it stays stale, and when it recovers.
Redis being down does not stop the polling: the newest state is written once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import aiohttp
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from services.ingestor.service import venue_hosts
from shared import metrics, redis_io
from shared.latency import ExchangeLatency, LatencyWindow
from shared.rest import RestError, fetch
from shared.settings import Settings
from shared.venues import venue
from shared.venues.protocol import VenueError

log = logging.getLogger("arb.latency")
KEY = "strategy:latency:{}"
STILL_STALE_LOG_S = 10.0


class LatencyMonitor:
    def __init__(self, settings: Settings, venue_names: list[str]) -> None:
        self.settings = settings
        self.venues = {name: venue(name) for name in venue_names}
        self.hosts = {name: venue_hosts(settings, v) for name, v in self.venues.items()}
        window_ms = int(settings.latency_window_s * 1000)
        self.windows = {name: LatencyWindow(name, window_ms, settings.latency_stale_ms) for name in self.venues}
        self.states: dict[str, ExchangeLatency] = {}
        self.redis_errors = 0
        self._stale_logged: dict[str, float] = {}  # venue -> monotonic time of the last stale log line

    def interval_s(self, name: str) -> float:
        return max(self.settings.latency_poll_ms, self.venues[name].rest.TIME_POLL_MIN_MS) / 1000

    async def run(self, stop: asyncio.Event) -> dict[str, ExchangeLatency]:
        s = self.settings
        client = redis_io.client(s, socket_timeout=2, socket_connect_timeout=2)
        log.info("polling server time: %s; stale above %g ms averaged over %g s; writing %s",
                 ", ".join(f"{n} every {self.interval_s(n) * 1000:g} ms" for n in self.venues),
                 s.latency_stale_ms, s.latency_window_s, s.redis_key_prefix + KEY.format("{exchange}"))
        try:
            async with aiohttp.ClientSession() as http:
                await asyncio.gather(*(self._poll(name, http, client, stop) for name in self.venues))
        finally:
            await client.aclose()
        return self.states

    async def _poll(self, name: str, http: aiohttp.ClientSession, client: aioredis.Redis,
                    stop: asyncio.Event) -> None:
        v, window, base = self.venues[name], self.windows[name], self.hosts[name].rest
        interval = self.interval_s(name)
        timeout = aiohttp.ClientTimeout(total=min(2.0, self.settings.latency_window_s))
        key = self.settings.redis_key_prefix + KEY.format(name)
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while not stop.is_set():
            sent = time.time()
            try:
                server_ms = v.server_time_ms(await fetch(http, base, v.rest.SERVER_TIME, timeout))
            except (RestError, VenueError) as exc:  # Venue.server_time_ms raises only VenueError
                window.failed(str(exc))
            else:
                received = time.time()
                window.add(int(received * 1000), server_ms, (received - sent) * 1000)
            state = window.state(int(time.time() * 1000))
            self._log(name, state)
            self.states[name] = state
            try:  # the hash is exactly this state: a field left from an older one would mislead
                async with client.pipeline(transaction=True) as pipe:
                    await pipe.delete(key).hset(key, mapping=state.fields()).execute()
            except (RedisError, OSError) as exc:
                if not self.redis_errors:
                    log.warning("cannot write %s: %s (further failures are counted)", key, exc)
                self.redis_errors += 1
            next_at += interval
            delay = next_at - loop.time()
            if delay < 0:  # fell behind (a slow answer): skip the missed slots, keep the cadence
                next_at, delay = loop.time(), 0.0
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    def _log(self, name: str, state: ExchangeLatency) -> None:
        was = self.states.get(name)
        now = time.monotonic()
        if state.is_stale:
            if was is None or not was.is_stale:
                log.warning("%s is stale: %s", name, state.reason)
                self._stale_logged[name] = now
            elif now - self._stale_logged.get(name, 0.0) >= STILL_STALE_LOG_S:
                log.warning("%s still stale: %s (%d samples over the limit so far)", name, state.reason,
                            self.windows[name].violations)
                self._stale_logged[name] = now
        elif was is not None and was.is_stale:
            log.info("%s recovered: average latency %.0f ms", name, state.latency_ms)

    def register_metrics(self, registry) -> None:
        registry.register(metrics.CallbackCollector(self._families))

    def _families(self):
        states, windows = self.states, self.windows
        yield metrics.gauge_by("arb_exchange_latency_ms", "Rolling average of local receipt minus server time", {},
                               "venue", {n: s.latency_ms for n, s in states.items() if s.latency_ms is not None})
        yield metrics.gauge_by("arb_exchange_rtt_ms", "Rolling average round trip of the server-time request", {},
                               "venue", {n: s.rtt_ms for n, s in states.items() if s.rtt_ms is not None})
        yield metrics.gauge_by("arb_exchange_stale", "1 while the venue's latency is beyond the limit or unknown",
                               {}, "venue", {n: float(s.is_stale) for n, s in states.items()})
        yield metrics.counter_by("arb_exchange_latency_violations_total", "Server-time samples beyond the limit",
                                 {}, "venue", {n: w.violations for n, w in windows.items()})
        yield metrics.counter_by("arb_exchange_time_errors_total", "Server-time polls that failed", {}, "venue",
                                 {n: w.errors for n, w in windows.items()})
