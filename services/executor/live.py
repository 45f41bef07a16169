"""Live execution at Bybit: the executor's orders as V5 requests, Bybit's answers as facts.

Sending (`place`):
- quantity and price are written on the instrument's grid (the core only makes grid
  multiples); an order below Bybit's minimum notional is refused here, unsent;
- the orderLinkId is the order's link id, derived from the trade and leg, so a retry can never
  make a second order: Bybit answers 110072 and the order is looked up instead;
- no answer (timeout, dropped connection): the order is looked up by its orderLinkId before
  anything else; not there, it is sent again with the same orderLinkId, once; still unknown,
  it stays open, and the leg's timeout cancels it by the same id (110001 then proves it never
  existed);
- any other refusal closes the order as rejected with Bybit's code and text.

Hearing back: the private stream's `execution` messages become fills (funding settlements,
`execType=Funding`, are shared among the trades holding that side: core.funding_reported) (by execId, so a fill seen
twice counts once), `order` messages with a final status close the order. A close whose
cumulative quantity is more than the fills heard fetches the missing executions first, so the
core never sees an order closed with fills still to come. After a reconnect, every open order
is looked up the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from decimal import Decimal

import msgspec

from services.executor import facts as f
from services.executor.sizing import Grid
from shared.venues.bybit.trading import BybitApiError, BybitTrading, BybitUnreachable

log = logging.getLogger("arb.executor.bybit")


class BadRow(ValueError):
    """A row of Bybit's (private stream or REST) without what its kind must hold."""


def _decimal(row: dict, name: str, low: Decimal | None = Decimal(0), positive: bool = False) -> Decimal:
    """`row[name]`, a decimal string, finite and >= `low` (> 0 when `positive`); BadRow otherwise."""
    text = row.get(name)
    try:
        value = Decimal(text) if isinstance(text, str) and text.strip() else None
    except ArithmeticError:
        value = None
    if value is None or not value.is_finite() or (low is not None and value < low) or (positive and not value):
        raise BadRow(f"{name}={text!r}")
    return value


def _text(row: dict, name: str) -> str:
    value = row.get(name)
    if not isinstance(value, str) or not value:
        raise BadRow(f"{name}={value!r}")
    return value
CLOSED = {"Cancelled": "cancelled", "Rejected": "rejected", "Deactivated": "cancelled",
          "PartiallyFilledCanceled": "cancelled"}
LOOKUP_TRIES = 3


def _trade_id(link_id: str) -> str:
    return link_id.split("-", 1)[0]


def order_params(o: f.OrderPlaced) -> dict:
    params = {"symbol": o.symbol, "side": o.side, "orderType": o.order_type, "qty": str(o.qty),
              "orderLinkId": o.link_id, "positionIdx": o.position_idx}
    if o.order_type == "Limit":
        params.update(price=str(o.price), timeInForce="GTC")
    else:
        params["timeInForce"] = "IOC"
    if o.reduce_only:
        params["reduceOnly"] = True
    return params


class BybitExecution:
    def __init__(self, trading: BybitTrading, grids: dict[tuple[str, str], Grid],
                 min_notional: dict[str, Decimal] | None = None,
                 on_sent: Callable[[f.OrderPlaced], None] | None = None) -> None:
        self.trading = trading
        self.on_sent = on_sent  # called as each create request goes out
        self.grids = grids
        self.min_notional = min_notional or {}
        self.orders: dict[str, f.OrderPlaced] = {}  # link id -> every order of this executor it has seen
        self.open: set[str] = set()  # those that may still change
        self.filled: dict[str, Decimal] = {}  # link id -> quantity of the fills reported
        self.fill_ids: set[str] = set()
        self._creating: dict[str, asyncio.Event] = {}  # link id -> set once its create has an answer
        self.funding: list[dict] = []  # funding settlements heard, for the core to share among trades
        self.bad_rows: dict[str, int] = {}  # rows skipped because they were malformed, by kind

    def _bad(self, kind: str, detail: str, row: object) -> list[f.AnyFact]:
        if kind not in self.bad_rows:
            log.warning("skipped a malformed %s row from Bybit (%s): %.200r; further ones are counted", kind, detail,
                        row)
        self.bad_rows[kind] = self.bad_rows.get(kind, 0) + 1
        return []

    def track(self, order: f.OrderPlaced) -> None:
        self.orders[order.link_id] = order
        self.open.add(order.link_id)
        self.filled.setdefault(order.link_id, Decimal(0))

    async def place(self, o: f.OrderPlaced) -> list[f.AnyFact]:
        self.track(o)
        floor = self.min_notional.get(o.symbol)
        if floor and o.price is not None and o.qty * o.price < floor and not o.reduce_only:
            return [self._closed(o.link_id, "rejected", f"below Bybit's minimum notional {floor} USDT")]
        done = self._creating[o.link_id] = asyncio.Event()
        try:
            return await self._create(o)
        finally:
            done.set()
            del self._creating[o.link_id]

    async def _create(self, o: f.OrderPlaced) -> list[f.AnyFact]:
        try:
            result = await self.trading.create_order(order_params(o),
                                                     on_send=self.on_sent and (lambda: self.on_sent(o)))
            # accepted (the private stream tells what becomes of it); the ack also times the round trip
            return [self._acked(o.link_id, str(result.get("orderId", "")))]
        except BybitApiError as exc:
            if exc.code == 110072:  # already there: this is a retry of an order Bybit has
                return await self.lookup(o.link_id) or []
            return [self._closed(o.link_id, "rejected", f"bybit {exc.code}: {exc.message}")]
        except BybitUnreachable as exc:
            log.warning("order %s: %s; looking it up by its orderLinkId", o.link_id, exc)
        found = await self.lookup(o.link_id)
        if found != []:
            return found or []  # there, or Bybit cannot be asked: the leg's timeout cancels it by id
        try:  # not there: it never arrived, so the same orderLinkId cannot make two
            await self.trading.create_order(order_params(o))
        except BybitApiError as exc:
            if exc.code != 110072:
                return [self._closed(o.link_id, "rejected", f"bybit {exc.code}: {exc.message}")]
            return await self.lookup(o.link_id) or []
        except BybitUnreachable:
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
            await self.trading.cancel_order(order.symbol, link_id)
            return []
        except BybitApiError as exc:
            found = await self.lookup(link_id)  # filled or closed meanwhile, or never there
            if found == [] and exc.code == 110001:
                return [self._closed(link_id, "cancelled", "never reached Bybit")]
            return found or []
        except BybitUnreachable as exc:
            log.warning("cancel %s: %s; the order stays open until Bybit says otherwise", link_id, exc)
            return []

    async def lookup(self, link_id: str) -> list[f.AnyFact] | None:
        """What Bybit knows of the order now, as facts (acked, its fills, closed); [] when Bybit
        has no such order; None when Bybit could not be asked."""
        order = self.orders.get(link_id)
        if order is None:
            return []
        for attempt in range(LOOKUP_TRIES):
            try:
                found = await self.trading.order(order.symbol, link_id)
                break
            except (BybitUnreachable, BybitApiError) as exc:
                log.warning("looking up %s: %s", link_id, exc)
                await asyncio.sleep(0.1 * (attempt + 1))
        else:
            return None
        if found is None:
            return []
        if not isinstance(found, dict) or found.get("orderLinkId") != link_id:
            return self._bad("order", "the lookup answered another order", found) or None
        try:
            return [self._acked(link_id, str(found.get("orderId", "")))] + await self._status(found, fetch=True)
        except BadRow as exc:
            return self._bad("order", str(exc), found) or None

    async def on_message(self, message: dict) -> list[f.AnyFact]:
        """Facts from one private-stream message; malformed rows are counted in `bad_rows` and
        skipped (a fill missed that way is fetched when its order closes)."""
        topic = message.get("topic") if isinstance(message, dict) else None
        rows = message.get("data") if isinstance(message, dict) else None
        if not isinstance(topic, str) or not isinstance(rows, list):
            return self._bad("message", "no topic or no data list", message)
        topic = topic.split(".")[0]
        out: list[f.AnyFact] = []
        for row in rows:
            try:
                out += await self._row(topic, row)
            except BadRow as exc:
                self._bad(topic, str(exc), row)
        return out

    async def _row(self, topic: str, row: object) -> list[f.AnyFact]:
        if not isinstance(row, dict):
            raise BadRow("not an object")
        link_id = row.get("orderLinkId")
        if topic == "execution" and row.get("execType") == "Funding":
            exec_id = _text(row, "execId")
            if exec_id not in self.fill_ids:
                _text(row, "symbol"), _decimal(row, "execFee", low=None)
                if row.get("side") not in ("Buy", "Sell"):
                    raise BadRow(f"side={row.get('side')!r}")
                self.fill_ids.add(exec_id)
                self.funding.append(row)
            return []
        if not isinstance(link_id, str) or link_id not in self.orders:
            return []  # not one of this executor's orders
        # a fill of an order already closed still counts: the facts hold every fill at the venue
        if topic == "execution" and row.get("execType") == "Trade":
            return self._fill(row)
        if topic == "order":
            return await self._status(row)
        return []

    async def _status(self, row: dict, fetch: bool = False) -> list[f.AnyFact]:
        """Facts from an order's state; its executions are fetched when it has fills not heard
        and it is closed (the stream's execution message may come later) or `fetch` says so."""
        link_id = _text(row, "orderLinkId")
        status = CLOSED.get(row.get("orderStatus")) if isinstance(row.get("orderStatus"), str) else None
        out: list[f.AnyFact] = []
        cum = _decimal(row, "cumExecQty") if row.get("cumExecQty") else Decimal(0)
        if (fetch or status is not None) and cum > self.filled.get(link_id, Decimal(0)):
            try:
                for e in reversed(await self.trading.executions(_text(row, "symbol"), link_id)):
                    try:
                        if isinstance(e, dict) and e.get("execType") == "Trade":
                            out += self._fill(e)
                    except BadRow as exc:
                        self._bad("execution", str(exc), e)
            except (BybitUnreachable, BybitApiError) as exc:
                log.warning("order %s: executions unavailable (%s); waiting for the stream", link_id, exc)
                return out
        if status is not None and link_id in self.open:
            reason = row.get("rejectReason") or row.get("cancelType") or ""
            out.append(self._closed(link_id, status, reason))
        elif row.get("orderStatus") == "Filled" and self.filled.get(link_id, Decimal(0)) >= self.orders[link_id].qty:
            self.open.discard(link_id)
        return out

    def _fill(self, e: dict) -> list[f.AnyFact]:
        """A Trade execution as a fill, once per execId; BadRow unless it holds a quantity and
        a price > 0 and a fee (a rebate is < 0)."""
        link_id, exec_id = _text(e, "orderLinkId"), _text(e, "execId")
        if exec_id in self.fill_ids or link_id not in self.orders:
            return []
        qty, price = _decimal(e, "execQty", positive=True), _decimal(e, "execPrice", positive=True)
        fee = _decimal(e, "execFee", low=None)
        exec_time = e.get("execTime")
        ts_ms = int(exec_time) if isinstance(exec_time, str) and exec_time.isdigit() else 0
        self.fill_ids.add(exec_id)
        self.filled[link_id] = self.filled.get(link_id, Decimal(0)) + qty
        return [f.OrderFilled(ts_ms=ts_ms, trade_id=_trade_id(link_id), link_id=link_id, fill_id=exec_id, qty=qty,
                              price=price, fee=fee, maker=e.get("isMaker") is True)]

    def _closed(self, link_id: str, status: str, reason: str) -> f.OrderClosed:
        self.open.discard(link_id)
        return f.OrderClosed(ts_ms=0, trade_id=_trade_id(link_id), link_id=link_id, status=status, reason=reason)

    def _acked(self, link_id: str, order_id: str) -> f.OrderAcked:
        return f.OrderAcked(ts_ms=0, trade_id=_trade_id(link_id), link_id=link_id, venue_order_id=order_id)


class LiveExecution:
    """Live execution as the service drives it: orders go to Bybit after their facts are
    written; answers, fills and closes come back through `reports`, stamped on arrival."""

    def __init__(self, core, bybit: BybitExecution) -> None:
        self.core = core
        self.bybit = bybit
        self.reports: asyncio.Queue[f.AnyFact] = asyncio.Queue()
        self._tasks: set[asyncio.Task] = set()

    def market(self, event, now_ms: int) -> list[f.AnyFact]:
        return self.core.on_market(event, now_ms)  # the service steps once per batch

    def route(self, facts: list[f.AnyFact], now_ms: int) -> list[f.AnyFact]:
        return facts  # sent by `dispatch`, once written

    def dispatch(self, facts: list[f.AnyFact]) -> None:
        for fact in facts:
            if isinstance(fact, f.OrderPlaced):
                self._spawn(self.bybit.place(fact))
            elif isinstance(fact, f.CancelRequested):
                self._spawn(self.bybit.cancel(fact.link_id))

    def _spawn(self, work) -> None:
        async def run() -> None:
            for fact in await work:
                self.reports.put_nowait(fact)

        task = asyncio.ensure_future(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def on_message(self, message: dict) -> None:
        for fact in await self.bybit.on_message(message):
            self.reports.put_nowait(fact)
        while self.bybit.funding:
            row = self.bybit.funding.pop(0)
            for fact in self.core.funding_reported("bybit", row["symbol"], row["side"], Decimal(row["execFee"]),
                                                   int(row.get("execTime") or 0)):
                self.reports.put_nowait(fact)

    async def on_connected(self) -> None:
        """(Re)connected: whatever happened to the open orders meanwhile."""
        for link_id in list(self.bybit.open):
            for fact in await self.bybit.lookup(link_id) or []:
                self.reports.put_nowait(fact)

    async def reconcile(self, now_ms: int) -> list[f.AnyFact]:
        """After a restart: each order the facts left open, as Bybit has it (never reached it:
        closed); then Bybit's positions against the open trades' (core.reconcile_positions): a leg
        Bybit no longer holds was closed outside this system and is recorded so; a position the
        facts do not explain halts new signals until the operator has looked."""
        out: list[f.AnyFact] = []
        # every report is applied before anything is decided (no step until the positions are
        # compared): an exit stepped on a leg that is in fact gone would send orders the venue refuses
        left_open = [(trade, order) for trade in self.core.trades.values() for order in trade.open_orders()]
        for trade, order in left_open:
            self.bybit.track(order.placed)
            found = await self.bybit.lookup(order.link_id)
            if found == []:
                found = [f.OrderClosed(ts_ms=now_ms, trade_id=trade.id, link_id=order.link_id, status="cancelled",
                                       reason="not at Bybit after a restart: never sent")]
            for fact in found or []:  # None: Bybit cannot be asked; the leg's timeout settles it
                out += self.core.on_report(msgspec.structs.replace(fact, ts_ms=now_ms), now_ms, then_step=False)
        while not self.reports.empty():  # fills the stream brought meanwhile count before the positions
            fact = self.reports.get_nowait()
            out += self.core.on_report(msgspec.structs.replace(fact, ts_ms=now_ms), now_ms, then_step=False)
        actual: dict[tuple[str, int], Decimal] = {}
        for p in await self.bybit.trading.positions():
            size = Decimal(p.get("size") or "0")
            if size:
                key = (p["symbol"], int(p.get("positionIdx", 0)))
                actual[key] = actual.get(key, Decimal(0)) + (size if p.get("side") == "Buy" else -size)
        gone, unexplained = self.core.reconcile_positions({"bybit": actual}, now_ms)
        if unexplained:
            log.error("Bybit holds positions the trades' facts do not explain: %s", unexplained)
            gone += self.core.halt("reconcile", "Bybit holds positions the trades' facts do not explain (opened "
                                   f"outside this system?): {unexplained}. Close them at Bybit, then `arb resume`",
                                   now_ms, action="keep")
        return out + gone

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
