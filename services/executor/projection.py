"""The executor's read models in the seed's key schema, computed from its state (pure):

- `strategy:trades:active:{trade_id}`: a hash per open trade (deleted when it closes);
- `strategy:trades:closed:{trade_id}`: a hash per closed trade, kept;
- `strategy:portfolio:state`: a hash of the portfolio's figures (portfolio.py);
- `strategy:leg_out_events`: a stream, one entry per leg-out, written once it is settled (the
  trade active after its hedge filled, or the trade closed) so that it carries what the hedge
  did: `hedge_executed`, `hedge_qty`, `hedge_price`, `loss_usd`. Its id is from the settling
  fact's time (`{ts_ms}-{n}`), so a rebuild writes the very same entries;
- `strategy:metrics:daily`: a hash, one field per UTC day holding that day's figures as JSON.

Everything is text; money is exact. The same facts always give the same projections, which is
what `arb rebuild --check` verifies against Redis.

`strategy:marks` is apart: the open trades valued at the market now (`marks`), so it comes from
the prices as well as the facts. The executor replaces it every second and whenever a trade
opens or closes; a rebuild leaves it alone.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from decimal import Decimal

from services.executor import facts as f
from services.executor.core import ExecutorCore
from services.executor.portfolio import day_of
from services.executor.sizing import at_step
from services.executor.trade import ZERO, Trade


def trade_fields(trade: Trade) -> dict[str, str]:
    """A trade's hash; its average entry prices to the decimals of its limit prices (the
    venue's tick), the rest exact."""
    t = trade.taken
    out = {
        "trade_id": t.trade_id, "signal_id": t.signal_id, "mode": t.mode, "symbol": t.symbol,
        "long_exchange": t.long_venue, "short_exchange": t.short_venue, "status": trade.status,
        "harder_leg": t.harder, "qty": str(t.qty), "position_size_usd": str(t.size_usd),
        "entry_time": str(t.ts_ms), "signal_time": str(t.signal_ms), "entry_spread_bps": repr(t.entry_spread_bps),
        "funding_delta_entry": repr(t.funding_delta_8h), "projected_profit_usd": str(t.projected_profit_usd),
        "confidence": str(t.confidence), "long_held": str(trade.held["long"]), "short_held": str(trade.held["short"]),
        "fees_usd": str(trade.fees), "funding_usd": str(trade.funding), "orders": str(len(trade.orders)),
        "leg_out_events": str(len(trade.leg_outs)),
    }
    if trade.active:
        a = trade.active
        out.update(active_time=str(a.ts_ms), entry_long_price=at_step(a.long_avg, t.long_price),
                   entry_short_price=at_step(a.short_avg, t.short_price))
    if trade.leg_outs:
        lo = trade.leg_outs[0]
        out.update(leg_out_filled=lo.filled_leg, leg_out_action=lo.action, leg_out_phase=lo.phase,
                   **_hedge_fields(trade, lo))
    for order in trade.orders.values():  # each order at its venue: redis-cli HGET ... order:<link id>
        out[f"order:{order.link_id}"] = _order_text(trade, order)
    if trade.gone:
        out["closed_outside"] = "; ".join(f"{g.leg} {g.qty} at {g.price} ({g.price_source})" for g in trade.gone)
    if trade.exit:
        out.update(exit_reason=trade.exit.reason, exit_started=str(trade.exit.ts_ms),
                   exit_spread_bps=repr(trade.exit.spread_bps))
    if trade.closed:
        c = trade.closed
        out.update(outcome=c.outcome, close_reason=c.reason, exit_time=str(c.ts_ms), actual_profit_usd=str(c.pnl_usd),
                   leg_out_loss_usd=str(c.leg_out_loss_usd), price_pnl_usd=str(trade.cash))
        for leg, side in (("long", "Sell"), ("short", "Buy")):
            qty, value = trade.traded(leg, side)
            if qty:
                out[f"exit_{leg}_price"] = _average(trade, leg, qty, value)
    return out


def _order_text(trade: Trade, order) -> str:
    """'okx Sell 0.015 Limit 65300.0 entry (short); venue id 6000...; filled 0.015 @ 65336.6; filled'."""
    p = order.placed
    price = f"Limit {p.price}" if p.price is not None else "Market"
    filled = f"filled {order.filled} @ {_average(trade, p.leg, order.filled, order.value)}" if order.filled else \
        "filled 0"
    state = order.closed_status or ("open" if order.open else "filled")
    return (f"{p.venue} {p.side} {p.qty} {price} {p.purpose} ({p.leg}); venue id {order.venue_order_id or '-'}; "
            f"{filled}; {state}")


def _average(trade: Trade, leg: str, qty: Decimal, value: Decimal) -> str:
    """The average price value / qty, to the decimals of the leg's limit price (its venue's tick)."""
    return at_step(value / qty, trade.taken.long_price if leg == "long" else trade.taken.short_price)


def close_text(trade: Trade) -> str:
    """A closed trade's account, so that its PnL can be checked by hand: what each leg bought and
    sold (quantity @ average price), the cash that made, the fees and funding, and the projection."""
    t, c = trade.taken, trade.closed
    legs = []
    for leg, first, then in (("long", "Buy", "Sell"), ("short", "Sell", "Buy")):
        moves = [f"{'bought' if side == 'Buy' else 'sold'} {qty} @ {_average(trade, leg, qty, value)}"
                 for side in (first, then) for qty, value in [trade.traded(leg, side)] if qty]
        legs.append(f"{leg} {' then '.join(moves) or 'nothing'}")
    gone = f" ({len(trade.gone)} closed outside)" if trade.gone else ""
    return (f"{'; '.join(legs)}{gone}: sells - buys {trade.cash} - fees {trade.fees} - funding {trade.funding} "
            f"= PnL {c.pnl_usd} USD (projected {t.projected_profit_usd}); leg-out loss {c.leg_out_loss_usd}")


def portfolio_fields(core: ExecutorCore) -> dict[str, str]:
    """`strategy:portfolio:state`: the portfolio's figures, and whether trading is halted and why."""
    halt = core.stopped
    return {**core.portfolio.summary(), "trading": "halted" if halt else "on",
            "halt_reason": halt.reason if halt else "", "halt_detail": halt.detail if halt else "",
            "halted_ms": str(halt.ts_ms) if halt else ""}


def marks(core: ExecutorCore, now_ms: int) -> dict[str, str]:
    """`strategy:marks`: for each open trade its spread now (`{id}:spread_bps`) and its PnL if both
    legs closed now at the touch (`{id}:unrealised_pnl_usd`, exact; fees and funding paid so far
    included); their sum, and the equity: starting capital + closed PnL + that sum. A trade with
    no price on a venue yet is counted in `unpriced_trades` and left out of the sum."""
    out = {"ts_ms": str(now_ms), "open_trades": str(len(core.trades))}
    total, unpriced = ZERO, 0
    for tid, trade in core.trades.items():
        if (spread := core.spread_bps(trade)) is not None:
            out[f"{tid}:spread_bps"] = f"{spread:.2f}"
        if (pnl := core.unrealised_pnl(trade)) is None:
            unpriced += 1
            continue
        out[f"{tid}:unrealised_pnl_usd"] = str(pnl)
        total += pnl
    p = core.portfolio
    out.update(unrealised_pnl_usd=str(total), equity_usd=str(p.starting_capital + p.cumulative_pnl + total),
               unpriced_trades=str(unpriced))
    return out


def _daily_json(core: ExecutorCore, day: str) -> str:
    return json.dumps({k: str(v) for k, v in asdict(core.portfolio.daily[day]).items()}, sort_keys=True)


class Projector:
    """Turns each batch of facts into the writes that bring the read models up to date."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self._leg_out_id = (-1, -1)

    def key(self, name: str) -> str:
        return f"{self.prefix}strategy:{name}"

    def leg_out_id(self, ts_ms: int) -> str:
        ms, n = self._leg_out_id
        self._leg_out_id = (ts_ms, 0) if ts_ms > ms else (ms, n + 1)
        return "%d-%d" % self._leg_out_id

    def writes(self, core: ExecutorCore, facts: list[f.AnyFact]) -> list[tuple]:
        """Redis commands (argument tuples) for the state after `facts`."""
        touched: dict[str, None] = {}
        days: dict[str, None] = {}
        cmds: list[tuple] = []
        for fact in facts:
            tid = getattr(fact, "trade_id", None)
            if tid is not None:
                touched[tid] = None
            if isinstance(fact, f.LegOut | f.TradeClosed | f.SignalRejected):
                days[day_of(fact.ts_ms)] = None
            for leg_out in settled_leg_outs(core, fact):
                cmds.append(("XADD", self.key("leg_out_events"), self.leg_out_id(fact.ts_ms),
                             *_flat(_leg_out_fields(core, leg_out))))
        for tid in touched:
            trade = core.trades.get(tid) or core.closed.get(tid)
            if trade is None:
                continue
            if trade.closed:
                cmds.append(("DEL", self.key(f"trades:active:{tid}")))
                cmds.append(("HSET", self.key(f"trades:closed:{tid}"), *_flat(trade_fields(trade))))
            else:
                cmds.append(("HSET", self.key(f"trades:active:{tid}"), *_flat(trade_fields(trade))))
        if facts:
            cmds.append(("HSET", self.key("portfolio:state"), *_flat(portfolio_fields(core))))
        for day in days:
            cmds.append(("HSET", self.key("metrics:daily"), day, _daily_json(core, day)))
        return cmds

    def everything(self, core: ExecutorCore, leg_outs: list[tuple[int, f.LegOut]]) -> dict[str, object]:
        """Every read model, key -> hash (dict) or stream (list of (id, fields)), as a rebuild
        computes it from all the facts; `leg_outs` (settled at ms, leg-out) in the order settled."""
        self._leg_out_id = (-1, -1)
        out: dict[str, object] = {}
        for trade in list(core.trades.values()) + list(core.closed.values()):
            state = "closed" if trade.closed else "active"
            out[self.key(f"trades:{state}:{trade.id}")] = trade_fields(trade)
        if core.portfolio.last_fact_ms:
            out[self.key("portfolio:state")] = portfolio_fields(core)
        if leg_outs:
            out[self.key("leg_out_events")] = [(self.leg_out_id(ms), _leg_out_fields(core, lo)) for ms, lo in leg_outs]
        if core.portfolio.daily:
            out[self.key("metrics:daily")] = {day: _daily_json(core, day) for day in core.portfolio.daily}
        return out


def settled_leg_outs(core: ExecutorCore, fact: f.AnyFact) -> list[f.LegOut]:
    """The leg-outs `fact` settles (after the core applied it): an entry leg-out when its trade
    goes active (the hedge filled); any other when its trade closes."""
    if not isinstance(fact, f.TradeActive | f.TradeClosed):
        return []
    trade = core.trades.get(fact.trade_id) or core.closed.get(fact.trade_id)
    if trade is None:
        return []
    if isinstance(fact, f.TradeActive):
        return [lo for lo in trade.leg_outs if lo.phase == "entry"]
    return [lo for lo in trade.leg_outs if not (lo.phase == "entry" and trade.active)]


def _hedge_fields(trade: Trade, leg_out: f.LegOut) -> dict[str, str]:
    """What the leg-out's hedge did: quantity, average price (to the leg's tick) and the loss."""
    hedges = trade.hedges(leg_out)
    qty, value = sum((o.filled for o in hedges), ZERO), sum((o.value for o in hedges), ZERO)
    if leg_out.action == "unwind":
        loss = trade.closed.leg_out_loss_usd if trade.closed else None
    else:
        loss = trade.leg_out_loss(leg_out.phase)
    return {"hedge_executed": "true" if qty else "false", "hedge_qty": str(qty),
            "hedge_price": _average(trade, leg_out.unfilled_leg, qty, value) if qty else "",
            "loss_usd": "" if loss is None else str(loss)}


def _leg_out_fields(core: ExecutorCore, fact: f.LegOut) -> dict[str, str]:
    trade = core.trades.get(fact.trade_id) or core.closed[fact.trade_id]
    fields = f.to_fields(fact)
    fields.pop("v")
    fields.pop("type")
    fields.update(symbol=trade.taken.symbol, long_exchange=trade.taken.long_venue,
                  short_exchange=trade.taken.short_venue, **_hedge_fields(trade, fact))
    return fields


def _flat(fields: dict[str, str]) -> list[str]:
    return [x for pair in fields.items() for x in pair]
