"""Live execution at any venue: the executor's orders through the trading interface
(shared/venues/trading.py), the venue's answers as facts.

Sending (`VenueExecution.place`):
- quantity and price are on the instrument's grid (the core only makes grid multiples); the
  venue's client converts them (OKX's contracts) and refuses, unsent, what is under its minimum;
- the venue's client id is made from the order's link id, derived from the trade and leg, so a
  retry can never make a second order: a `duplicate` refusal means the venue has it, and it is
  looked up instead;
- no answer, or one that does not say (`OutcomeUnknown`): the order is looked up by its link id
  before anything else; not there, it is sent again with the same id, once; still unknown, it
  stays open, and the leg's timeout cancels it by the same id (`not_found` then proves it never
  existed);
- any other refusal closes the order as rejected with the venue's code and text.

Hearing back: the private stream's updates become facts: fills (by fill id, so a fill seen
twice counts once), and closes. Funding settlements are shared among the trades holding that
side (core.funding_reported). A close whose cumulative quantity is more than the fills heard
fetches the missing fills first, so the core never sees an order closed with fills still to
come. After a reconnect, every open order is looked up the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from decimal import Decimal

import msgspec

from services.executor import facts as f
from shared.venues.trading import (
    FillUpdate,
    FundingUpdate,
    OrderSpec,
    OrderUpdate,
    OutcomeUnknown,
    Refused,
    VenueTrading,
)

log = logging.getLogger("arb.executor.live")
LOOKUP_TRIES = 3
FUNDING_POLL_S = 60.0
POSITION_SIDE = {1: "long", 2: "short"}


def _trade_id(link_id: str) -> str:
    return link_id.split("-", 1)[0]


def order_spec(o: f.OrderPlaced) -> OrderSpec:
    """An order fact as the trading interface's order: limits rest (GTC), market orders take."""
    limit = o.order_type == "Limit"
    return OrderSpec(link_id=o.link_id, symbol=o.symbol, side=o.side, qty=o.qty, price=o.price if limit else None,
                     tif="GTC" if limit else "IOC", reduce_only=o.reduce_only,
                     position_side=POSITION_SIDE.get(o.position_idx))  # type: ignore[arg-type]


class VenueExecution:
    """One venue's orders of this executor: what was sent, what is open, the fills heard."""

    def __init__(self, trading: VenueTrading, on_sent: Callable[[f.OrderPlaced], None] | None = None) -> None:
        self.trading = trading
        self.venue = trading.venue
        self.on_sent = on_sent  # called as each create request goes out
        self.orders: dict[str, f.OrderPlaced] = {}  # link id -> every order of this executor it has seen
        self.open: set[str] = set()  # those that may still change
        self.filled: dict[str, Decimal] = {}  # link id -> quantity of the fills reported
        self.fill_ids: set[tuple[str, str]] = set()  # (symbol, id): OKX numbers trades per instrument
        self._creating: dict[str, asyncio.Event] = {}  # link id -> set once its create has an answer
        self.funding: list[FundingUpdate] = []  # settlements heard, for the core to share among trades
        self.bad_rows: dict[str, int] = {}  # rows skipped because they were malformed, by kind

    def _bad(self, kind: str, detail: str, row: object) -> None:
        if kind not in self.bad_rows:
            log.warning("skipped a malformed %s row from %s (%s): %.200r; further ones are counted", kind, self.venue,
                        detail, row)
        self.bad_rows[kind] = self.bad_rows.get(kind, 0) + 1

    def track(self, order: f.OrderPlaced) -> None:
        self.orders[order.link_id] = order
        self.open.add(order.link_id)
        self.filled.setdefault(order.link_id, Decimal(0))

    def _refused(self, link_id: str, exc: Refused) -> f.OrderClosed:
        return self._closed(link_id, "rejected", exc.message if exc.code == "min_notional" else
                            f"{exc.venue} {exc.code}: {exc.message}")

    async def place(self, o: f.OrderPlaced) -> list[f.AnyFact]:
        self.track(o)
        done = self._creating[o.link_id] = asyncio.Event()
        try:
            return await self._create(o)
        finally:
            done.set()
            del self._creating[o.link_id]

    async def _create(self, o: f.OrderPlaced) -> list[f.AnyFact]:
        spec = order_spec(o)
        try:
            order_id = await self.trading.place(spec, on_send=self.on_sent and (lambda: self.on_sent(o)))
            # accepted (the private stream tells what becomes of it); the ack also times the round trip
            return [self._acked(o.link_id, order_id)]
        except Refused as exc:
            if exc.kind == "duplicate":  # already there: this is a retry of an order the venue has
                return await self.lookup(o.link_id) or []
            return [self._refused(o.link_id, exc)]
        except OutcomeUnknown as exc:
            log.warning("order %s: %s; looking it up by its client id", o.link_id, exc)
        found = await self.lookup(o.link_id)
        if found != []:
            return found or []  # there, or the venue cannot be asked: the leg's timeout cancels it by id
        if self.trading.ids_reusable:  # the first may still arrive and finish, freeing the id for a second
            return []  # so it stays open: the leg's timeout cancels it by id, and a new order follows
        try:  # not there: it never arrived, so the same client id cannot make two
            await self.trading.place(spec)
        except Refused as exc:
            if exc.kind != "duplicate":
                return [self._refused(o.link_id, exc)]
            return await self.lookup(o.link_id) or []
        except OutcomeUnknown:
            pass
        return []

    async def cancel(self, link_id: str) -> list[f.AnyFact]:
        order = self.orders.get(link_id)
        if order is None:
            return []
        if link_id not in self.open:  # closed here, yet asked again: its close may not have reached the core
            self.open.add(link_id)  # so that the lookup reports the close again (the core ignores a repeat)
            return await self.lookup(link_id) or []
        if link_id in self._creating:  # its create has no answer yet: a cancel now could not find it
            await self._creating[link_id].wait()
            if link_id not in self.open:
                return []
        try:
            await self.trading.cancel(order.symbol, link_id)
            return []
        except Refused as exc:
            found = await self.lookup(link_id)  # filled or closed meanwhile, or never there
            if found == [] and exc.kind in ("not_found", "too_late"):
                return [self._closed(link_id, "cancelled", f"never reached {self.venue}")]
            return found or []
        except OutcomeUnknown as exc:
            log.warning("cancel %s: %s; the order stays open until %s says otherwise", link_id, exc, self.venue)
            return []

    async def lookup(self, link_id: str) -> list[f.AnyFact] | None:
        """What the venue knows of the order now, as facts (acked, its fills, closed); [] when
        the venue has no such order; None when it could not be asked."""
        order = self.orders.get(link_id)
        if order is None:
            return []
        for attempt in range(LOOKUP_TRIES):
            try:
                found = await self.trading.order(order.symbol, link_id)
                break
            except (OutcomeUnknown, Refused, ValueError) as exc:
                log.warning("looking up %s at %s: %s", link_id, self.venue, exc)
                await asyncio.sleep(0.1 * (attempt + 1))
        else:
            return None
        if found is None:
            return []
        if found.link_id != link_id:
            self._bad("order", "the lookup answered another order", found)
            return None
        return [self._acked(link_id, found.order_id)] + await self._status(found, fetch=True)

    async def on_message(self, message: object) -> list[f.AnyFact]:
        """Facts from one private-stream message; malformed rows are counted in `bad_rows` and
        skipped (a fill missed that way is fetched when its order closes)."""
        updates, skipped = self.trading.parse_private(message)
        for kind, why, row in skipped:
            self._bad(kind, why, row)
        out: list[f.AnyFact] = []
        for update in updates:
            if isinstance(update, FundingUpdate):
                if ("funding", update.funding_id) not in self.fill_ids:
                    self.fill_ids.add(("funding", update.funding_id))
                    self.funding.append(update)
            elif not isinstance(update, FillUpdate | OrderUpdate) or update.link_id not in self.orders:
                continue  # a position or balance, or not one of this executor's orders
            elif isinstance(update, FillUpdate):  # a fill of an order closed already still counts
                out += self._fill(update)
            else:
                out += await self._status(update)
        return out

    async def _status(self, update: OrderUpdate, fetch: bool = False) -> list[f.AnyFact]:
        """Facts from an order's state; its fills are fetched when it has fills not heard and it
        is closed (the stream's fill may come later) or `fetch` says so."""
        link_id = update.link_id
        closed = update.status in ("cancelled", "rejected")
        out: list[f.AnyFact] = []
        if (fetch or closed) and update.filled_qty > self.filled.get(link_id, Decimal(0)):
            try:
                for fill in await self.trading.fills(update.symbol or self.orders[link_id].symbol, link_id):
                    out += self._fill(fill)
            except (OutcomeUnknown, Refused, ValueError) as exc:
                log.warning("order %s: fills unavailable at %s (%s); waiting for the stream", link_id, self.venue, exc)
                return out
        if closed and link_id in self.open:
            reason = update.reason if update.kind is None else f"{update.kind}: {update.reason}"
            out.append(self._closed(link_id, update.status, reason))
        elif update.status == "filled" and self.filled.get(link_id, Decimal(0)) >= self.orders[link_id].qty:
            self.open.discard(link_id)
        return out

    def _fill(self, fill: FillUpdate) -> list[f.AnyFact]:
        if fill.link_id not in self.orders:
            return []
        key = (self.orders[fill.link_id].symbol, fill.fill_id)
        if key in self.fill_ids:
            return []
        self.fill_ids.add(key)
        self.filled[fill.link_id] = self.filled.get(fill.link_id, Decimal(0)) + fill.qty
        return [f.OrderFilled(ts_ms=fill.ts_ms, trade_id=_trade_id(fill.link_id), link_id=fill.link_id,
                              fill_id=fill.fill_id, qty=fill.qty, price=fill.price, fee=fill.fee, maker=fill.maker)]

    def _closed(self, link_id: str, status: str, reason: str) -> f.OrderClosed:
        self.open.discard(link_id)
        return f.OrderClosed(ts_ms=0, trade_id=_trade_id(link_id), link_id=link_id, status=status, reason=reason)

    def _acked(self, link_id: str, order_id: str) -> f.OrderAcked:
        return f.OrderAcked(ts_ms=0, trade_id=_trade_id(link_id), link_id=link_id, venue_order_id=order_id)


class LiveExecution:
    """Live execution as the service drives it: orders go to their venue after their facts are
    written; answers, fills and closes come back through `reports`, stamped on arrival."""

    def __init__(self, core, venues: dict[str, VenueExecution]) -> None:
        self.core = core
        self.venues = venues
        self.reports: asyncio.Queue[f.AnyFact] = asyncio.Queue()
        self._tasks: set[asyncio.Task] = set()

    def market(self, event, now_ms: int) -> list[f.AnyFact]:
        return self.core.on_market(event, now_ms)  # the service steps once per batch

    def route(self, facts: list[f.AnyFact], now_ms: int) -> list[f.AnyFact]:
        return facts  # sent by `dispatch`, once written

    def _venue_of(self, link_id: str) -> VenueExecution | None:
        trade = self.core.by_link.get(link_id)
        order = trade.orders.get(link_id) if trade else None
        return self.venues.get(order.placed.venue) if order else None

    def dispatch(self, facts: list[f.AnyFact]) -> None:
        for fact in facts:
            if isinstance(fact, f.OrderPlaced):
                venue = self.venues.get(fact.venue)
                if venue is None:  # the core trades only the venues it was given grids for
                    self.reports.put_nowait(f.OrderClosed(ts_ms=0, trade_id=fact.trade_id, link_id=fact.link_id,
                                                          status="rejected", reason=f"no live trading at {fact.venue}"))
                else:
                    self._spawn(venue.place(fact))
            elif isinstance(fact, f.CancelRequested) and (venue := self._venue_of(fact.link_id)) is not None:
                self._spawn(venue.cancel(fact.link_id))

    def _spawn(self, work) -> None:
        async def run() -> None:
            try:
                for fact in await work:
                    self.reports.put_nowait(fact)
            except asyncio.CancelledError:
                raise
            except Exception:  # the order stays open: its leg's timeout looks it up and cancels it by id
                log.exception("an order request failed unexpectedly")

        task = asyncio.ensure_future(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def on_message(self, venue: str, message: object) -> None:
        """One private-stream message. A failure here is logged and the message skipped (an order
        it was about is looked up when it closes or the stream reconnects): it must never end
        the stream, whose silence would leave fills unheard."""
        execution = self.venues[venue]
        try:
            for fact in await execution.on_message(message):
                self.reports.put_nowait(fact)
            self._funding(execution, execution.funding)
        except Exception:
            execution.bad_rows["failed"] = execution.bad_rows.get("failed", 0) + 1
            log.exception("%s: a private-stream message could not be handled: %.300r", venue, message)
        finally:
            execution.funding.clear()

    def _funding(self, execution: VenueExecution, paid: list[FundingUpdate]) -> None:
        """Settlements as FundingPaid reports, each ledger entry once (across restarts too)."""
        for update in paid:
            if update.funding_id in self.core.funding_ids:
                continue
            self.core.funding_ids.add(update.funding_id)
            for fact in self.core.funding_reported(execution.venue, update.symbol, update.side, update.amount,
                                                   update.ts_ms, source_id=update.funding_id):
                self.reports.put_nowait(fact)

    async def poll_funding(self, stop: asyncio.Event, every_s: float = FUNDING_POLL_S) -> None:
        """The funding ledger of each venue whose stream does not report funding (OKX's bills),
        read every `every_s` while trades are open: the funding the venue booked is what the
        trades are charged, each entry once. The first read goes back to the oldest open trade."""
        since: dict[str, int] = {}
        while not stop.is_set():
            if self.core.trades:
                oldest = min(t.taken.ts_ms for t in self.core.trades.values())
                for name, execution in self.venues.items():
                    if execution.trading.funding_on_stream:
                        continue
                    try:
                        paid = await execution.trading.funding_payments(since.get(name, oldest))
                    except (OutcomeUnknown, Refused, ValueError) as exc:
                        log.warning("%s: funding ledger unavailable (%s); read again in %.0f s", name, exc, every_s)
                        continue
                    except Exception:  # never the end of the polling: the next read may work
                        log.exception("%s: reading the funding ledger failed; read again in %.0f s", name, every_s)
                        continue
                    self._funding(execution, paid)
                    if paid:
                        since[name] = max(p.ts_ms for p in paid)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)

    async def on_connected(self, venue: str) -> None:
        """(Re)connected: whatever happened to the venue's open orders meanwhile."""
        execution = self.venues[venue]
        for link_id in list(execution.open):
            try:
                for fact in await execution.lookup(link_id) or []:
                    self.reports.put_nowait(fact)
            except Exception:  # as on_message: never the stream's end (the leg's timeout asks again)
                log.exception("%s: looking up %s after a reconnect failed", venue, link_id)

    async def reconcile(self, now_ms: int) -> list[f.AnyFact]:
        """After a restart: each order the facts left open, as its venue has it (never reached
        it: closed); then every venue's positions against the open trades' (core.reconcile_positions):
        a leg a venue no longer holds was closed outside this system and is recorded so; a position
        the facts do not explain halts new signals until the operator has looked."""
        out: list[f.AnyFact] = []
        # every report is applied before anything is decided (no step until the positions are
        # compared): an exit stepped on a leg that is in fact gone would send orders the venue refuses
        left_open = [(trade, order) for trade in self.core.trades.values() for order in trade.open_orders()]
        for trade, order in left_open:
            execution = self.venues.get(order.placed.venue)
            if execution is None:
                continue
            execution.track(order.placed)
            found = await execution.lookup(order.link_id)
            if found == []:
                found = [f.OrderClosed(ts_ms=now_ms, trade_id=trade.id, link_id=order.link_id, status="cancelled",
                                       reason=f"not at {execution.venue} after a restart: never sent")]
            for fact in found or []:  # None: the venue cannot be asked; the leg's timeout settles it
                out += self.core.on_report(msgspec.structs.replace(fact, ts_ms=now_ms), now_ms, then_step=False)
        while not self.reports.empty():  # fills the stream brought meanwhile count before the positions
            fact = self.reports.get_nowait()
            out += self.core.on_report(msgspec.structs.replace(fact, ts_ms=now_ms), now_ms, then_step=False)
        actual: dict[str, dict[tuple[str, int], Decimal]] = {}
        for name, execution in self.venues.items():
            held = actual[name] = {}
            for p in await execution.trading.positions():
                key = (p.symbol, {"long": 1, "short": 2}.get(p.position_side or "", 0))
                held[key] = held.get(key, Decimal(0)) + p.qty
        gone, unexplained = self.core.reconcile_positions(actual, now_ms)
        if unexplained:
            log.error("the venues hold positions the trades' facts do not explain: %s", unexplained)
            gone += self.core.halt("reconcile", "a venue holds positions the trades' facts do not explain (opened "
                                   f"outside this system?): {unexplained}. Close them at the venue, then `arb resume`",
                                   now_ms, action="keep")
        return out + gone

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
