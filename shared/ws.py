"""One venue's public WebSocket kept alive: subscribe, heartbeat, watchdog, reconnect.

Venue-agnostic: the feed object says what to subscribe and how to ping; its parser turns
frames into events and control items. Reconnects back off exponentially with jitter, capped,
and the backoff resets once a subscribe is acknowledged. A failed subscribe is an error with
the venue's message. Book and ticker state start fresh on every connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import websockets
from websockets.exceptions import InvalidURI, WebSocketException

from shared.events import MarketEvent
from shared.feed import FeedStats, Pong, Resync, SubscribeResult

log = logging.getLogger("arb.ws")


class SubscribeError(Exception):
    """The venue refused a subscription; the message is the venue's."""


class PublicFeed(Protocol):
    name: str
    snapshot_key_prefix: str

    @property
    def url(self) -> str: ...
    def topics(self, symbols: list[str]) -> list[str]: ...
    def subscribe_messages(self, topics: list[str]) -> list[str]: ...
    def resubscribe_messages(self, topic: str) -> list[str]: ...
    def ping_message(self) -> str: ...
    def new_parser(self, stats: FeedStats | None = None): ...


@dataclass
class SessionStats:
    connects: int = 0
    disconnects: int = 0
    subscribe_failures: int = 0
    resyncs: int = 0
    connected: bool = False
    subscribed: bool = False  # a subscribe was acknowledged on the current connection
    delays_s: deque[float] = field(default_factory=lambda: deque(maxlen=100))  # before each reconnect


@dataclass(frozen=True)
class Backoff:
    initial_s: float = 0.5
    max_s: float = 30.0

    def jittered(self, delay: float) -> float:
        return delay * (0.5 + random.random())


async def run_feed(
    feed: PublicFeed,
    symbols: list[str],
    on_events: Callable[[list[MarketEvent], int], Awaitable[None] | None],
    stop: asyncio.Event,
    *,
    feed_stats: FeedStats,
    session: SessionStats,
    ping_interval_s: float = 20.0,
    idle_timeout_s: float = 30.0,
    backoff: Backoff = Backoff(),
) -> None:
    """Stream `symbols` from `feed` until `stop` is set. `on_events(events, received_ns)` gets
    each frame's events with its `time.perf_counter_ns()` receipt time; when it returns an
    awaitable, reading pauses until it is done (backpressure to the socket)."""
    topics = feed.topics(symbols)
    delay = backoff.initial_s
    while not stop.is_set():
        try:
            async with websockets.connect(
                # no permessage-deflate: inflating every frame costs CPU on the hot path
                feed.url, ping_interval=None, open_timeout=10, close_timeout=2, max_size=2**24,
                compression=None,
            ) as ws:
                session.connects += 1
                session.connected = True
                session.subscribed = False
                log.info("%s: connected to %s, subscribing %d topics", feed.name, feed.url, len(topics))
                closer = asyncio.ensure_future(_close_on(stop, ws))
                pinger = asyncio.ensure_future(_ping(ws, feed, ping_interval_s))
                try:
                    for message in feed.subscribe_messages(topics):
                        await ws.send(message)
                    await _pump(ws, feed, on_events, feed_stats, session, idle_timeout_s)
                finally:
                    closer.cancel()
                    pinger.cancel()
        except InvalidURI:
            raise
        except (TimeoutError, OSError, WebSocketException, SubscribeError) as exc:
            if isinstance(exc, SubscribeError):
                session.subscribe_failures += 1
            if not stop.is_set():
                log.warning("%s: %s: %s; reconnecting in ~%.1fs", feed.name, type(exc).__name__, exc, delay)
        finally:
            if session.connected:
                session.connected = False
                session.disconnects += 1
            if session.subscribed:  # that connection worked: start the backoff over
                delay = backoff.initial_s
        if stop.is_set():
            break
        session.delays_s.append(delay)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), backoff.jittered(delay))
        delay = min(delay * 2, backoff.max_s)


async def _pump(ws, feed: PublicFeed, on_events, feed_stats: FeedStats, session: SessionStats,
                idle_timeout_s: float) -> None:
    """Read frames until the socket closes; a silent socket past `idle_timeout_s` raises."""
    parser = feed.new_parser(feed_stats)
    clock = time.time_ns
    perf = time.perf_counter_ns
    last = [perf()]  # receipt time of the newest frame, read by the watchdog
    watchdog = asyncio.ensure_future(_watchdog(ws, last, idle_timeout_s))
    try:
        while True:
            try:
                raw = await ws.recv()
            except websockets.ConnectionClosedOK:
                if watchdog.done():
                    raise TimeoutError(f"no message for {idle_timeout_s:g}s") from None
                return
            received_ns = last[0] = perf()
            await _handle(ws, feed, parser, raw, clock() // 1000, received_ns, on_events, session)
    finally:
        watchdog.cancel()


async def _handle(ws, feed: PublicFeed, parser, raw, receive_ts_us: int, received_ns: int, on_events,
                  session: SessionStats) -> None:
    items = parser.feed(raw, receive_ts_us)
    if not all(hasattr(item, "TYPE") for item in items):  # control items among the events
        events = []
        for item in items:
            if isinstance(item, SubscribeResult):
                if not item.success:
                    raise SubscribeError(f"subscribe refused: {item.message or 'no reason given'}")
                if not session.subscribed:
                    log.info("%s: subscribed", feed.name)
                session.subscribed = True
            elif isinstance(item, Resync):
                session.resyncs += 1
                log.warning("%s: %s: %s; resubscribing", feed.name, item.topic, item.reason)
                parser.forget(item.topic)
                for message in feed.resubscribe_messages(item.topic):
                    await ws.send(message)
            elif not isinstance(item, Pong):
                events.append(item)
        items = events
    if items and (wait := on_events(items, received_ns)) is not None:
        await wait


async def _watchdog(ws, last: list[int], idle_timeout_s: float) -> None:
    """Close the socket once no frame has arrived for `idle_timeout_s` (pongs count)."""
    limit_ns = int(idle_timeout_s * 1e9)
    while True:
        await asyncio.sleep(idle_timeout_s / 4)
        if time.perf_counter_ns() - last[0] > limit_ns:
            await ws.close(1001, "idle")
            return


async def _ping(ws, feed: PublicFeed, interval_s: float) -> None:
    with contextlib.suppress(WebSocketException, OSError):
        while True:
            await asyncio.sleep(interval_s)
            await ws.send(feed.ping_message())


async def _close_on(stop: asyncio.Event, ws) -> None:
    await stop.wait()
    await ws.close()
