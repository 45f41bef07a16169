"""One trading interface for every venue: what the executor asks of a venue, and the venue's
answers in one canonical shape.

Quantities are in base units (BTC, not contracts) and prices in the quote currency, on the
instrument's grid; symbols are canonical (`BTCUSDT`). A venue module converts at its edge:
OKX's contracts, its `BTC-USDT-SWAP`, its `clOrdId` form of the order's link id.

Answers:
- a venue that says no raises `Refused`, whose `kind` is one of `KINDS` (the executor acts on
  the kind, never on a venue's code);
- no answer (a timeout, a dropped connection, an HTTP 5xx) or an answer that does not say
  whether the order exists (OKX 50004, 51149) raises `OutcomeUnknown`: the executor looks the
  order up by its link id before anything else, and a link id can never make two orders.

The private stream's messages become `OrderUpdate`, `FillUpdate`, `PositionUpdate`,
`BalanceUpdate` and `FundingUpdate` through the venue's pure `parse_private`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import ClassVar, Literal

import aiohttp

# what a refusal means to the executor, whatever the venue's code
KINDS = (
    "insufficient_margin",  # not enough balance or margin for the order
    "duplicate",  # the client id is already taken: this is a retry of an order the venue has
    "post_only",  # a post-only order would have taken liquidity
    "below_minimum",  # under the minimum size or value, or off the lot grid
    "not_found",  # no such order (a cancel or a query)
    "too_late",  # the order is already filled or cancelled
    "timestamp",  # our clock is outside the venue's window
    "bad_signature",
    "unknown_key",  # no such key, the wrong environment's key, or a wrong passphrase
    "permission",  # the key may not do this (or not from this IP)
    "rate_limit",
    "reduce_only",  # nothing (or less) to reduce on that side
    "invalid",  # a parameter the venue refuses
    "other",
)
Kind = Literal["insufficient_margin", "duplicate", "post_only", "below_minimum", "not_found", "too_late", "timestamp",
               "bad_signature", "unknown_key", "permission", "rate_limit", "reduce_only", "invalid", "other"]
KEY_REFUSED = frozenset({"bad_signature", "unknown_key", "permission"})  # the key is wrong: no retry helps


class Refused(Exception):
    """The venue answered no: its own code and text, and what that means (`kind`)."""

    def __init__(self, venue: str, code: str, message: str, kind: Kind, path: str = "") -> None:
        super().__init__(f"{path + ': ' if path else ''}{venue} {code}: {message}")
        self.venue, self.code, self.message, self.kind = venue, code, message, kind


class OutcomeUnknown(Exception):
    """No answer, or one that does not say whether the request was carried out."""


Side = Literal["Buy", "Sell"]
Status = Literal["open", "filled", "cancelled", "rejected"]


@dataclass(frozen=True)
class OrderSpec:
    """An order to place."""

    link_id: str  # this system's id of the order; the venue's client id is made from it
    symbol: str
    side: Side
    qty: Decimal  # base units, on the instrument's lot grid
    price: Decimal | None = None  # None: a market order
    tif: Literal["GTC", "IOC", "FOK", "post_only"] = "GTC"
    reduce_only: bool = False
    position_side: Literal["long", "short"] | None = None  # hedge mode: the position it opens or closes


@dataclass(frozen=True)
class OrderUpdate:
    """What the venue says of one order now."""

    link_id: str
    order_id: str
    symbol: str
    status: Status
    filled_qty: Decimal  # cumulative, base units
    reason: str = ""  # why it was cancelled or rejected, in the venue's words
    kind: Kind | None = None  # a cancel that is a refusal (OKX's post-only cancelled at once: "post_only")


@dataclass(frozen=True)
class FillUpdate:
    link_id: str
    fill_id: str  # the venue's execution id: a fill heard twice counts once
    symbol: str
    qty: Decimal  # base units, > 0
    price: Decimal
    fee: Decimal  # paid > 0, a rebate < 0
    maker: bool
    ts_ms: int


@dataclass(frozen=True)
class PositionUpdate:
    symbol: str
    qty: Decimal  # signed base units: > 0 long
    position_side: Literal["long", "short"] | None = None  # hedge mode's side; None one-way


@dataclass(frozen=True)
class BalanceUpdate:
    currency: str
    equity: Decimal
    available: Decimal


@dataclass(frozen=True)
class FundingUpdate:
    """A funding settlement the venue booked on one position."""

    funding_id: str  # the venue's id of the ledger entry: heard twice counts once
    symbol: str
    side: Side  # the position's side: Buy long, Sell short
    amount: Decimal  # paid > 0, received < 0
    ts_ms: int


StreamUpdate = OrderUpdate | FillUpdate | PositionUpdate | BalanceUpdate | FundingUpdate


class BadRow(ValueError):
    """A row of a venue's answer or push without what its kind must hold."""


def decimal_field(row: dict, name: str, low: Decimal | None = Decimal(0), positive: bool = False) -> Decimal:
    """`row[name]`, a decimal string, finite and >= `low` (> 0 when `positive`); BadRow otherwise."""
    text = row.get(name)
    try:
        value = Decimal(text) if isinstance(text, str) and text.strip() else None
    except ArithmeticError:
        value = None
    if value is None or not value.is_finite() or (low is not None and value < low) or (positive and not value):
        raise BadRow(f"{name}={text!r}")
    return value


def text_field(row: dict, name: str) -> str:
    value = row.get(name)
    if not isinstance(value, str) or not value:
        raise BadRow(f"{name}={value!r}")
    return value


Skipped = list[tuple[str, str, object]]  # (what, why, the row): what a venue's parse_private left out


def read_rows(rows: list, read: Callable[[dict, Skipped], list], what: str) -> tuple[list, Skipped]:
    """Every row of a push read by `read` (its updates; it may note what it skips of a row); a row
    that is not an object, or one `read` finds malformed, is skipped as (what, why, row)."""
    out: list = []
    skipped: Skipped = []
    for row in rows:
        try:
            if not isinstance(row, dict):
                raise BadRow("not an object")
            out += read(row, skipped)
        except (BadRow, ArithmeticError) as exc:
            skipped.append((what, str(exc) or type(exc).__name__, row))
    return out, skipped


def with_fill(order: OrderUpdate, fill: Callable[[], FillUpdate | None], row: dict, skipped: Skipped) -> list:
    """An order push's updates: the fill it carries (`fill()`, None for none) and then its state.
    A malformed fill is skipped as ("fill", why, row) and the state still counts: the order's
    fills come by REST."""
    try:
        found = fill()
    except (BadRow, ArithmeticError) as exc:
        skipped.append(("fill", str(exc) or type(exc).__name__, row))
        found = None
    return [order] if found is None else [found, order]


class Budget:
    """Rolling request budgets per endpoint (pure but for the sleep): at most `limits[path]`
    requests in any `window_s`, waited for before sending.

    The window is `margin_s` longer than the venue's: a request counted here reaches the venue
    a little later, by how busy this process and the link are, so two requests counted a
    window apart can arrive closer. Bybit's reliability bursts measured 12-13 creates arriving
    within one of its seconds with no margin."""

    def __init__(self, limits: dict[str, int], default: int, window_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, margin_s: float = 0.1) -> None:
        self.limits, self.default = limits, default
        self.clock = clock
        self.window_s = window_s + margin_s
        self._sent: dict[str, deque[float]] = {}
        self._blocked_until: dict[str, float] = {}

    def delay(self, path: str) -> float:
        """Seconds to wait before `path` may be sent (0 when it may go now, and it is counted)."""
        now = self.clock()
        sent = self._sent.setdefault(path, deque())
        while sent and sent[0] <= now - self.window_s:
            sent.popleft()
        wait = self._blocked_until.get(path, 0.0) - now
        if len(sent) >= self.limits.get(path, self.default):
            wait = max(wait, sent[0] + self.window_s - now)
        if wait > 0:
            return wait
        sent.append(now)
        return 0.0

    async def admit(self, path: str) -> None:
        while (wait := self.delay(path)) > 0:
            await asyncio.sleep(wait)

    def block(self, path: str, seconds: float) -> None:
        self._blocked_until[path] = max(self._blocked_until.get(path, 0.0), self.clock() + seconds)


class StreamRefused(Exception):
    """The venue refused the private stream itself (its login, or Binance's listenKey)."""

    def __init__(self, refusal: Refused) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal


class PrivateStream:
    """A venue's authenticated private stream kept connected: `run` until `stop`; `connected`
    is set while it is; each message goes to the callback, and `on_connected` is awaited after
    every (re)connect so the caller catches up by REST.

    A venue's stream implements `_session` (connect, log in, subscribe, read until the
    connection ends; it returns only when `stop` is set). `run` reconnects after 0.2 s doubling
    to 10 s (60 s after a refusal), back to 0.2 s after a session that lasted a minute; a
    refused key (StreamRefused of a KEY_REFUSED kind) ends it: nothing would be heard again."""

    label: ClassVar[str]  # "OKX private stream", for the log
    log: ClassVar[logging.Logger]
    key_hint: ClassVar[str] = "check the API key, secret and passphrase"  # what to look at when it is refused
    LOG_EVERY_S: ClassVar[float] = 60.0
    LASTED_S: ClassVar[float] = 60.0
    connected: asyncio.Event
    connects: int
    resync: Callable[[], Awaitable[object]] | None = None
    _logged: dict[str, float]

    async def _session(self, stop: asyncio.Event) -> None:
        raise NotImplementedError

    async def _listen(self, ws: aiohttp.ClientWebSocketResponse, stop: asyncio.Event) -> None:
        raise NotImplementedError

    # OKX and Bitget: a JSON login and subscribe answered by `event` messages, text ping/pong
    REPLY_TIMEOUT_S: ClassVar[float] = 10.0
    on_connected: Callable[[], Awaitable[None]]
    on_message: OnMessage

    async def _event(self, ws: aiohttp.ClientWebSocketResponse, early: list[object]) -> dict:
        """The next event message (login, subscribe, error); pushes before it go to `early`."""
        async with asyncio.timeout(self.REPLY_TIMEOUT_S):
            while True:
                message = await ws.receive()
                if message.type != aiohttp.WSMsgType.TEXT:
                    raise ConnectionError(f"private stream closed ({message.type.name})")
                if message.data == "pong":
                    continue
                data = json.loads(message.data)
                if isinstance(data, dict) and "event" in data:
                    return data
                early.append(data)

    async def _subscribe_and_listen(self, ws: aiohttp.ClientWebSocketResponse, stop: asyncio.Event,
                                    request: dict, channels: set[str]) -> None:
        """Send `request`, wait until every channel of `channels` is acknowledged, then: connected,
        `on_connected` awaited (the REST catch-up), the pushes that came before it delivered, and
        `_listen` until the connection ends or `stop`."""
        await ws.send_json(request)
        waiting = set(channels)
        early: list[object] = []  # pushes before every channel is acknowledged: delivered after on_connected
        while waiting:
            reply = await self._event(ws, early)
            if reply.get("event") == "error":
                raise ConnectionError(f"private stream subscribe refused: {reply.get('code')} {reply.get('msg')}")
            arg = reply.get("arg")
            if reply.get("event") == "subscribe" and isinstance(arg, dict):
                waiting.discard(arg.get("channel"))
        self.connects += 1
        self.connected.set()
        await self.on_connected()
        for message in early:
            await self.on_message(message)
        await self._listen(ws, stop)

    def _log(self, key: str, message: str, *args: object) -> None:
        """A warning at most once a minute per `key` (a failure that repeats does not flood the log)."""
        now = time.monotonic()
        if now - self._logged.get(key, -self.LOG_EVERY_S) >= self.LOG_EVERY_S:
            self._logged[key] = now
            self.log.warning(message, *args)

    async def run(self, stop: asyncio.Event) -> None:
        delay = 0.2
        while not stop.is_set():
            cap, started = 10.0, time.monotonic()
            try:
                await self._session(stop)
            except StreamRefused as exc:
                refusal = exc.refusal
                if refusal.kind in KEY_REFUSED:
                    self.log.error("%s: the login was refused, %s: %s", self.label, self.key_hint, refusal)
                    raise refusal from None
                self._log(f"refused {refusal.code}", "%s: login refused (%s); trying again", self.label, refusal)
                if refusal.kind == "timestamp" and self.resync is not None:
                    with contextlib.suppress(Exception):
                        await self.resync()
                cap = 60.0
            except aiohttp.ClientResponseError as exc:  # its text holds the URL (Binance's holds the listenKey)
                self._log(type(exc).__name__, "%s: HTTP %s %s; reconnecting", self.label, exc.status, exc.message)
            except (aiohttp.ClientError, OSError, TimeoutError, ConnectionError, ValueError, OutcomeUnknown) as exc:
                self._log(type(exc).__name__, "%s: %s; reconnecting", self.label, exc)
            self.connected.clear()
            if stop.is_set():
                return
            if time.monotonic() - started >= self.LASTED_S:
                delay = 0.2
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay * (0.5 + random.random()))
            delay = min(delay * 2, cap)


OnMessage = Callable[[object], Awaitable[None]]


_NOT_ALNUM = re.compile(r"[^0-9A-Za-z]")
_EXECUTOR_ID = re.compile(r"[0-9a-f]{12}[A-Z]{2}[0-9]+")  # a link id (services/executor/core.py) without its '-'


def alnum_client_id(link_id: str, venue: str) -> str:
    """The client id of a venue that takes 1-32 letters and digits (OKX's clOrdId, Bitget's
    clientOid): the link id's letters and digits (`a1b2c3d4e5f6-LE1` -> `a1b2c3d4e5f6LE1`)."""
    made = _NOT_ALNUM.sub("", link_id)
    if not 0 < len(made) <= 32:
        raise ValueError(f"link id {link_id!r} makes no {venue} client id (1-32 letters and digits): {made!r}")
    return made


class AlnumClientIds:
    """Client ids of letters and digits, and the way back to the link id they were made from:
    as this client made it, else in the executor's form (a trade id of 12 hex digits, '-', the
    order's code: what a restarted client meets), else the client id itself."""

    venue: ClassVar[str]
    _links: dict[str, str]  # client id -> link id

    def client_id(self, link_id: str) -> str:
        made = alnum_client_id(link_id, self.venue)
        self._links[made] = link_id
        return made

    def link_id(self, client_id: str) -> str:
        if client_id in self._links:
            return self._links[client_id]
        if _EXECUTOR_ID.fullmatch(client_id):
            return f"{client_id[:12]}-{client_id[12:]}"
        return client_id


class VenueTrading:
    """A venue's trading client. Symbols are canonical and quantities in base units at this
    interface; each venue converts to its own at the edge. Every call raises `Refused` or
    `OutcomeUnknown` as described at the top."""

    venue: ClassVar[str]
    order_rate: ClassVar[tuple[int, float]]  # (order creates, per seconds) the venue allows
    # a client id may be used again once its order is finished (OKX): an order whose create had no
    # answer and that the venue does not have yet is not sent again, as the first may still arrive
    ids_reusable: ClassVar[bool] = False
    # its private stream reports every funding settlement (Bybit): its ledger is not read as well
    funding_on_stream: ClassVar[bool] = False

    @classmethod
    def for_account(cls, http, rest_url: str, ws_url: str, credentials: tuple[str, ...], instruments: list,
                    demo: bool, **options) -> VenueTrading:
        """The client of one account: `credentials` are the key, the secret (and the passphrase
        where the venue has one), `instruments` the venue's (shared.instruments), `options` the
        venue's own settings (Bitget's demo product type, Binance's recvWindow)."""
        raise NotImplementedError

    async def prepare(self) -> None:
        """Load what the client needs before its first order (minimum order values, which
        contracts a demo lists); nothing by default."""

    def client_id(self, link_id: str) -> str:
        """The venue's client order id for this link id (the same every time)."""
        return link_id

    async def sync_time(self) -> int:
        """The venue's clock minus ours, in ms, measured now and used to sign."""
        raise NotImplementedError

    async def place(self, spec: OrderSpec, on_send: Callable[[], None] | None = None) -> str:
        """The venue's order id once it accepted the order (what becomes of it comes later)."""
        raise NotImplementedError

    async def cancel(self, symbol: str, link_id: str) -> None:
        raise NotImplementedError

    async def order(self, symbol: str, link_id: str) -> OrderUpdate | None:
        """The order as the venue has it now, or None when it has no such order."""
        raise NotImplementedError

    async def fills(self, symbol: str, link_id: str) -> list[FillUpdate]:
        raise NotImplementedError

    async def open_orders(self) -> list[OrderUpdate]:
        raise NotImplementedError

    async def positions(self) -> list[PositionUpdate]:
        raise NotImplementedError

    async def balance(self) -> BalanceUpdate:
        raise NotImplementedError

    async def ensure_position_mode(self, symbols: list[str]) -> None:
        """Put the account (or these symbols) in the position mode this client trades in."""
        raise NotImplementedError

    async def position_mode(self) -> tuple[bool, str]:
        """Whether the account trades in this client's position mode, or will be put in it at
        start (`ensure_position_mode`), and what was seen (for `arb validate`)."""
        raise NotImplementedError

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        raise NotImplementedError

    async def fee_rates(self, symbol: str) -> tuple[Decimal, Decimal]:
        """(maker, taker) as fractions of the value traded."""
        raise NotImplementedError

    async def funding_payments(self, since_ms: int) -> list[FundingUpdate]:
        """The venue's ledger of funding settled since `since_ms`, oldest first."""
        raise NotImplementedError

    async def key_problems(self) -> list[str]:
        """What makes the API key unsafe to trade with (it may withdraw, ...); empty when fine."""
        raise NotImplementedError

    # ------------------------------------------------------------------ for the venues' clients

    def _read(self, rows: object, read: Callable[[dict], object], what: str) -> list:
        """Each row of an answer read by `read`; a malformed one is logged and left out."""
        out = []
        for row in rows if isinstance(rows, list) else []:
            try:
                out.append(read(row if isinstance(row, dict) else {}))
            except (BadRow, ArithmeticError) as exc:
                logging.getLogger(f"arb.{self.venue}").warning("%s: a row skipped (%s): %s", what, exc, row)
        return out

    async def _with_held_sides(self, rows: list[dict], symbol_of: Callable[[dict], str | None],
                               read: Callable[[dict, Side], FundingUpdate], what: str) -> list[FundingUpdate]:
        """Funding ledger rows that name no position side (OKX's bills without `posSide`, Bitget's
        bills, Binance's income), each read with the one side held at its symbol now, oldest
        first. With none or both sides held it is "Buy" (UNSURE: the ledger cannot tell; a
        warning says so). Positions are asked once, and only when there is a row."""
        held: dict[str, set[Side]] | None = None
        out = []
        for row in rows:
            if held is None:
                held = {}
                for p in await self.positions():
                    if p.qty:
                        held.setdefault(p.symbol, set()).add("Buy" if p.qty > 0 else "Sell")
            symbol = symbol_of(row)
            sides = held.get(symbol, set()) if symbol else set()
            side: Side = next(iter(sides)) if len(sides) == 1 else "Buy"
            if len(sides) != 1:
                logging.getLogger(f"arb.{self.venue}").warning(
                    "%s: funding on %s, the position side is unknown (%s held); taken as Buy", what,
                    symbol or row, sorted(sides) or "none")
            out += self._read([row], lambda r, s=side: read(r, s), what)
        return sorted(out, key=lambda f: (f.ts_ms, f.funding_id))

    def key_checked(self) -> str:
        """What `key_problems` finding nothing means, as `arb validate` says it."""
        return "it may trade, may not withdraw, and is bound to an IP"

    def parse_private(self, message: object) -> tuple[list[StreamUpdate], list[tuple[str, str, object]]]:
        """A private-stream message as updates, and the rows skipped as malformed (kind, why, row)."""
        raise NotImplementedError

    def private_stream(self, on_message: OnMessage, on_connected: Callable[[], Awaitable[None]]) -> PrivateStream:
        raise NotImplementedError
