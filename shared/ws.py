"""One venue's public WebSocket kept alive: subscribe, heartbeat, watchdog, reconnect.

Venue-agnostic: the feed object says what to subscribe and how to ping; its parser turns
frames into events and control items. Reconnects back off exponentially with jitter, capped,
and the backoff starts over after any connection whose subscribe was acknowledged. A failed
subscribe is an error with the venue's message. Book and ticker state start fresh on every
connection.

The client is picows: frames are handed to `on_ws_frame` straight from the socket's read
callback, without a future and a queue per message. Against websockets, in alternating runs
of benchmarks/run.py: +30 % events/s under flood on the recorded Bybit mix, and 5-13 % less
CPU at 10,000 msgs/s. When the writer falls behind, the socket stops reading until it
catches up, so the venue's TCP stream slows instead of our buffer growing; frames already
read when it paused wait, unparsed, for their turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from picows import WSError, WSInvalidURL, WSListener, WSMsgType, ws_connect

from shared.events import MarketEvent
from shared.feed import FeedStats, Pong, Resync, SubscribeResult
from shared.rest import RestError
from shared.venues.protocol import Connection, VenueError

log = logging.getLogger("arb.ws")


class SubscribeError(Exception):
    """The venue refused a subscription; the message is the venue's."""


class IdleTimeout(TimeoutError):
    """No frame arrived for the idle timeout: the socket is presumed dead."""


class PublicFeed(Protocol):
    name: str
    messages_per_s: float | None

    async def resolve_url(self, connection: Connection) -> str: ...
    def subscribe_messages(self, topics: list[str]) -> list[str]: ...
    def resubscribe_messages(self, topic: str) -> list[str]: ...
    def ping_message(self) -> str | None: ...
    def new_parser(self, stats: FeedStats | None = None): ...


class Stopped(Exception):
    """The stop event was set before the awaited work finished (it was cancelled)."""


async def unless_stopped(awaitable, stop: asyncio.Event):
    """The result of `awaitable`, or Stopped (and the work cancelled) if `stop` comes first:
    a venue that never answers must not hold up a shutdown."""
    work = asyncio.ensure_future(awaitable)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((work, stopping), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not work.done():
        work.cancel()
        raise Stopped()
    return work.result()


@dataclass
class SessionStats:
    connects: int = 0
    disconnects: int = 0
    subscribe_failures: int = 0
    resyncs: int = 0
    pauses: int = 0  # times reading stopped until the writer caught up
    pings: int = 0
    connected: bool = False
    subscribed: bool = False  # a subscribe was acknowledged on the current connection
    delays_s: deque[float] = field(default_factory=lambda: deque(maxlen=100))  # before each reconnect


@dataclass(frozen=True)
class Backoff:
    initial_s: float = 0.5
    max_s: float = 30.0

    def jittered(self, delay: float) -> float:
        return delay * (0.5 + random.random())


OnEvents = Callable[[list[MarketEvent], int], "asyncio.Future | None"]


async def run_feed(
    feed: PublicFeed,
    connection: Connection,
    on_events: OnEvents,
    stop: asyncio.Event,
    *,
    feed_stats: FeedStats,
    session: SessionStats,
    ping_interval_s: float | None = 20.0,
    idle_timeout_s: float = 30.0,
    backoff: Backoff = Backoff(),
) -> None:
    """Stream one of `feed`'s connections until `stop` is set. `on_events(events, received_ns)`
    gets each frame's events with its `time.perf_counter_ns()` receipt time; when it returns a
    future, the socket stops reading until that future is done (backpressure). With
    `ping_interval_s` None the venue pings and we only answer (picows replies to ping frames)."""
    delay = backoff.initial_s
    while not stop.is_set():
        session.subscribed = False
        try:
            await _session(feed, connection, on_events, stop, feed_stats, session, ping_interval_s,
                           idle_timeout_s)
        except WSInvalidURL:
            raise
        except (TimeoutError, OSError, WSError, SubscribeError, RestError, VenueError) as exc:
            if isinstance(exc, SubscribeError):
                session.subscribe_failures += 1
            if not stop.is_set():
                log.warning("%s/%s: %s: %s; reconnecting in ~%.1fs", feed.name, connection.label,
                            type(exc).__name__, exc, delay)
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


async def _session(feed: PublicFeed, connection: Connection, on_events: OnEvents, stop: asyncio.Event,
                   feed_stats: FeedStats, session: SessionStats, ping_interval_s: float | None,
                   idle_timeout_s: float) -> None:
    """One connection, from connect to disconnect; raises why it ended, unless asked to stop
    or closed by the venue."""
    listener = _FeedListener(feed, feed.new_parser(feed_stats), on_events, session)
    try:
        url = await unless_stopped(feed.resolve_url(connection), stop)
    except Stopped:
        return
    transport, _ = await ws_connect(lambda: listener, url, websocket_handshake_timeout=10, max_frame_size=1 << 24)
    session.connects += 1
    session.connected = True
    log.info("%s: connected to %s, subscribing %d topics", feed.name, url.partition("?")[0],  # no token
             len(connection.topics))
    helpers = [
        asyncio.ensure_future(_close_on(stop, transport)),
        asyncio.ensure_future(_watchdog(transport, listener, idle_timeout_s)),
    ]
    if ping_interval_s:
        helpers.append(asyncio.ensure_future(_ping(transport, feed, ping_interval_s, session)))
    helpers.append(asyncio.ensure_future(_subscribe(transport, feed, connection.topics)))
    try:
        await transport.wait_disconnected()  # re-raises what on_ws_frame raised
    finally:
        for task in helpers:
            task.cancel()
        await listener.drain()
    if listener.error is not None:
        raise listener.error
    if listener.idle and not stop.is_set():
        raise IdleTimeout(f"no message for {idle_timeout_s:g}s")
    if not stop.is_set():
        log.warning("%s: the venue closed the connection", feed.name)


class _FeedListener(WSListener):
    """Parses each frame as it is read and hands its events on (picows calls it).

    Pausing the socket stops further reads, but picows still delivers every frame of the chunk
    it has already read, and under a flood that chunk grows to megabytes (picows doubles its
    read buffer whenever a read fills it): tens of thousands of frames. So while paused, frames
    are held as they came, unparsed, and handed on one by one once the writer has room; the
    writer's buffer never grows past its mark by more than one frame's events."""

    def __init__(self, feed: PublicFeed, parser, on_events: OnEvents, session: SessionStats) -> None:
        super().__init__()
        self.feed = feed
        self.parser = parser
        self.on_events = on_events
        self.session = session
        self.last_ns = time.perf_counter_ns()  # receipt of the newest frame, for the watchdog
        self.idle = False
        self.held: deque[tuple[bytes, int, int]] | None = None  # while paused: (payload, receipt ns, us)
        self.error: BaseException | None = None  # raised while handing held frames on

    @property
    def paused(self) -> bool:
        return self.held is not None

    def on_ws_frame(self, transport, frame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
            received_ns = self.last_ns = time.perf_counter_ns()
            payload, received_us = frame.get_payload_as_bytes(), time.time_ns() // 1000
            if self.held is not None:  # read before the pause took effect: waits its turn
                self.held.append((payload, received_ns, received_us))
            else:
                self._handle(transport, payload, received_ns, received_us)
        elif kind is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def _handle(self, transport, payload: bytes, received_ns: int, received_us: int) -> bool:
        """Parse one frame and hand its events on; False when the writer asked to wait (paused)."""
        items = self.parser.feed(payload, received_us)
        if not all(hasattr(item, "TYPE") for item in items):  # control items among the events
            items = self._control(transport, items)
        if items and (room := self.on_events(items, received_ns)) is not None:
            self._pause(transport, room)
            return False
        return True

    def _control(self, transport, items: list) -> list[MarketEvent]:
        events = []
        for item in items:
            if isinstance(item, SubscribeResult):
                if not item.success:
                    raise SubscribeError(f"subscribe refused: {item.message or 'no reason given'}")
                if not self.session.subscribed:
                    log.info("%s: subscribed", self.feed.name)
                self.session.subscribed = True
            elif isinstance(item, Resync):
                self.session.resyncs += 1
                log.warning("%s: %s: %s; resubscribing", self.feed.name, item.topic, item.reason)
                self.parser.forget(item.topic)
                for message in self.feed.resubscribe_messages(item.topic):
                    transport.send(WSMsgType.TEXT, message.encode())
            elif not isinstance(item, Pong):
                events.append(item)
        return events

    def _pause(self, transport, room: asyncio.Future) -> None:
        if self.held is None:
            self.held = deque()
            self.session.pauses += 1
            transport.underlying_transport.pause_reading()
        room.add_done_callback(lambda _: self._resume(transport))

    def _resume(self, transport) -> None:
        """The writer has room: hand on the held frames until it asks to wait again, then read."""
        held = self.held
        if held is None:  # the connection ended and `drain` took them: reading stays paused
            return
        try:
            while held:
                if not self._handle(transport, *held.popleft()):
                    return  # paused again; called back once there is room
        except Exception as exc:  # what on_ws_frame would have raised: ends the session
            self.error = exc
            transport.disconnect()
            return
        self.held = None
        if not transport.is_disconnected:  # a property in picows
            self.last_ns = time.perf_counter_ns()  # the watchdog counts silence from here, not from the pause
            transport.underlying_transport.resume_reading()

    async def drain(self) -> None:
        """At the end of a connection: what was held is handed on as the writer makes room
        (nothing received is lost; control frames no longer matter)."""
        held, self.held = self.held, None
        while held:
            payload, received_ns, received_us = held.popleft()
            events = [item for item in self.parser.feed(payload, received_us) if hasattr(item, "TYPE")]
            if events and (room := self.on_events(events, received_ns)) is not None:
                await room


async def _watchdog(transport, listener: _FeedListener, idle_timeout_s: float) -> None:
    """Disconnect once no frame has arrived for `idle_timeout_s` (pongs count)."""
    limit_ns = int(idle_timeout_s * 1e9)
    while True:
        await asyncio.sleep(idle_timeout_s / 4)
        if time.perf_counter_ns() - listener.last_ns > limit_ns and not listener.paused:
            listener.idle = True
            transport.disconnect()
            return


async def _ping(transport, feed: PublicFeed, interval_s: float, session: SessionStats) -> None:
    while not transport.is_disconnected:
        await asyncio.sleep(interval_s)
        transport.send(WSMsgType.TEXT, feed.ping_message().encode())
        session.pings += 1


async def _subscribe(transport, feed: PublicFeed, topics: list[str]) -> None:
    """The subscribe requests, at most `feed.messages_per_s` a second (the venue's cap on
    what a client sends on one connection, pings included, with room left for them)."""
    gap_s = 1 / feed.messages_per_s if feed.messages_per_s else 0.0
    for i, message in enumerate(feed.subscribe_messages(topics)):
        if i and gap_s:
            await asyncio.sleep(gap_s)
        transport.send(WSMsgType.TEXT, message.encode())


async def _close_on(stop: asyncio.Event, transport) -> None:
    await stop.wait()
    transport.send_close()
    transport.disconnect()
