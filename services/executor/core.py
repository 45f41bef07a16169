"""The executor's core (pure): signals, market events, venue reports and the time in; facts out.

Its state is the fold of its facts (`apply`). Each call decides from that state, applies what
it decided and returns it; the service writes the facts to `strategy:events` before sending
any order they describe. A restart replays the facts and calls `step`, which carries on from
where the facts left off (a deadline that passed meanwhile is acted on at once).

**Entry** (seed section 5): a signal is taken when it is fresh, confident (>= 70), its pair has
no open trade, fewer than `max_concurrent_trades` are open, and the trade is still profitable
at its actual size (sizing.py), and (live) each leg's venue's order rate leaves room for its
leg and `order_headroom` more within the venue's window (`order_rates`, else
`order_rate_per_s` in `order_rate_window_ms`): enough for a leg-out's hedges and its unwind, so a
naked leg never waits on the rate the entries used. Capital is reserved, then a
limit order on the harder leg at the far touch (buy at the ask, sell at the bid) plus
`limit_slippage_bps`, so it can take a few levels when the touch is thin. Once it has filled,
the easier leg the same way. Every order a venue closes with quantity left (an IOC rest, a partial fill) is sent
again for the rest while time remains.
- The harder leg has `leg_timeout_ms` from its first order: then it is cancelled; unfilled, the
  trade is rejected; partly filled, the trade goes on with the filled quantity when both lots
  allow it, else the filled part is closed (an unwind).
- The easier leg has `leg_timeout_ms` from the harder leg's fill: then it is cancelled, a leg-out
  is recorded and the rest is bought or sold at market (the hedge). A hedge that fails
  `hedge_attempts` times turns into the emergency close: reduce-only market orders flatten both
  legs, retried until flat: `retry_gap_ms` after an attempt, twice that after each one the venue
  refused in a row, at most `max_retry_gap_ms` (a venue that keeps saying the position is not
  there, 110017, is asked every 10 s and not five times a second).

**Positions and exits** (sections 6-7): an active trade exits when its funding delta falls below
0.005 % per 8 h, what closing at the touch would realise after the exit's taker fees reaches
90 % of its projection, its spread (short mid - long mid, over their mean) is 50 bps
(`spread_widening`) or 100 bps (`stop_loss`) above entry, or it has been held `max_hold_ms`.
Exits are reduce-only limit orders at the far touch on both legs; after `leg_timeout_ms` what
is left goes at market (a leg-out when the other leg had closed).

**Safety** (safety.py): when a stop condition holds, or the operator says so (`halt`), a
`TradingHalted` fact stops new signals; with the action `close`, every trade exits at market
as soon as it is active (pending entries finish first), as on shutdown. `resume` lifts it.

**Funding** (paper execution only; a live venue reports its own): when a venue's next funding
time moves on, each open leg there pays qty x mark x rate (a long pays a positive rate).
"""

from __future__ import annotations

import hashlib
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

import msgspec

from services.executor import facts as f
from services.executor.portfolio import Portfolio
from services.executor.safety import Safety, SafetyLimits
from services.executor.sizing import (
    Grid,
    GridError,
    Sizing,
    common_qty,
    harder_leg,
    round_price,
    trade_size_usd,
)
from services.executor.tally import Tally
from services.executor.trade import ZERO, OrderState, Trade
from services.strategy.costs import slippage_bps, taker_fee_bps
from services.strategy.state import MarketState, VenueMarket
from services.strategy.synthetic import synthetic_profit_bps
from shared.events import MarketEvent

OTHER = {"long": "short", "short": "long"}
ENTRY_SIDE = {"long": "Buy", "short": "Sell"}
LINK_CODE = {"entry": "E", "hedge": "H", "exit": "X", "unwind": "U"}  # in order link ids


class SignalIn(msgspec.Struct, frozen=True, kw_only=True):
    """A `strategy:signals` entry, as the executor reads it (other fields are ignored)."""

    id: str
    mode: str = "cross"
    symbol: str
    long_venue: str
    short_venue: str
    spread_bps: float
    funding_delta_8h: float
    confidence: int
    depth_long_usd: float
    depth_short_usd: float
    created_ms: int
    created_us: int | None = None  # when it was written, finer (latency metrics)
    source_exchange_ts_ms: int | None = None  # the venue's stamp on the market event that decided it
    source_stream: str = ""  # that event's entry: the traced path's id
    source_entry_id: str = ""
    source_receive_us: int | None = None  # its venue frame received by the ingestor (wall clock)
    source_read_us: int | None = None  # taken up by the strategy
    shard: str = ""  # a shard's worker's signal: the shard (K/N) and its lease's fencing token
    fence: int = 0


def parse_signal(fields: dict[str, str]) -> SignalIn:
    """Raises msgspec.ValidationError naming the bad or missing field."""
    return msgspec.convert(fields, SignalIn, strict=False)


@dataclass(frozen=True)
class ExecConfig:
    mode: str = "cross"  # or synthetic: both legs on `synthetic_venue`
    synthetic_venue: str = "bybit"
    hedge_mode_venues: frozenset[str] = frozenset()  # positionIdx 1 (long) / 2 (short) there
    paper: bool = True  # settle funding from market data
    starting_capital: Decimal = Decimal(20_000)
    max_concurrent_trades: int = 3
    confidence_min: int = 70
    signal_max_age_ms: int = 2_000
    leg_timeout_ms: int = 500
    limit_slippage_bps: float = 5.0  # how far past the far touch a limit order may take (Property 5's cap)
    order_attempts: int = 5  # per leg and purpose, for limit orders closed with quantity left
    hedge_attempts: int = 3
    cancel_retry_ms: int = 1_000  # a cancel not answered in this long is sent again
    retry_gap_ms: int = 200  # between emergency-close attempts; doubled per refusal in a row
    max_retry_gap_ms: int = 10_000
    funding_exit_8h: float = 0.00005
    profit_target_share: float = 0.9
    widening_bps: float = 50.0
    stop_loss_bps: float = 100.0
    max_hold_ms: int = 8 * 3_600_000
    sizing: Sizing = field(default_factory=Sizing)  # ESTIMATED_POSITION_SIZE, MAX_TRADE_RISK, POSITION_SIZE_LIMIT
    order_rate_per_s: int | None = None  # a venue's order-create limit; None: no limit (paper)
    order_headroom: int = 4  # orders kept free at each venue for a leg-out: its 3 hedges and the unwind
    # Bybit's second plus the margin of the client's budget (shared.venues.trading.Budget)
    order_rate_window_ms: int = 1_100
    # per venue (count, window ms) where it differs from the above (OKX: 60 in 2 s)
    order_rates: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    safety: SafetyLimits = field(default_factory=SafetyLimits)


def trade_id_for(signal_id: str) -> str:
    """12 hex digits from the signal id: the same signal always makes the same trade id, so a
    redelivered signal finds its trade and every order link id is stable across restarts."""
    return hashlib.sha256(signal_id.encode()).hexdigest()[:12]


def _refused_in_a_row(orders: list[OrderState]) -> int:
    """How many of the last orders (in placement order) the venue refused, back to one it did not."""
    n = 0
    for order in reversed(orders):
        if order.closed_status != "rejected":
            break
        n += 1
    return n


def _dec(x: float) -> Decimal:
    return Decimal(repr(x))


@dataclass
class ExecutorCore:
    config: ExecConfig
    grids: dict[tuple[str, str], Grid]  # (venue, symbol) -> its order grid
    market: MarketState = field(default_factory=MarketState)
    trades: dict[str, Trade] = field(default_factory=dict)  # not closed
    closed: dict[str, Trade] = field(default_factory=dict)
    by_link: dict[str, Trade] = field(default_factory=dict)
    signals_seen: set[str] = field(default_factory=set)
    funding_ids: set[str] = field(default_factory=set)  # the venues' ledger entries counted (FundingPaid.source_id)
    rejections: Counter[str] = field(default_factory=Counter)
    fences: dict[str, int] = field(default_factory=dict)  # strategy shard -> the newest lease that signalled
    delisted: set[tuple[str, str]] = field(default_factory=set)  # (venue, symbol) no longer listed: trades exit
    halted: str = ""  # why new signals are refused (a safety stop, a fill after a close, shutting down)
    closing: str = ""  # the exit reason every trade gets as soon as it is active ("": none)

    def __post_init__(self) -> None:
        self.portfolio = Portfolio(self.config.starting_capital)
        self.safety = Safety(self.config.safety)
        self.tally = Tally()
        self._order_times: dict[str, deque[int]] = {}  # venue -> when each recent order there was placed (ms)
        self.stopped: f.TradingHalted | None = None  # the halt in force
        self._wake: int | None = None
        self._funding: dict[tuple[str, str], tuple[int, float | None, float | None]] = {}

    # ------------------------------------------------------------------ the fold

    def apply(self, fact: f.AnyFact) -> None:
        self.portfolio.apply(fact)
        self.safety.apply(fact)
        self.tally.apply(fact)
        match fact:
            case f.TradingHalted():
                self.stopped, self.halted = fact, f"{fact.reason}: {fact.detail}"
                self.closing = "emergency_stop" if fact.action == "close" else self.closing
                return
            case f.TradingResumed():
                self.stopped, self.halted, self.closing = None, "", ""
                return
            case f.SignalTaken():
                self.signals_seen.add(fact.signal_id)
                self.trades[fact.trade_id] = Trade(fact)
                return
            case f.SignalRejected():
                self.signals_seen.add(fact.signal_id)
                self.rejections[fact.reason] += 1
                return
        trade = self.trades.get(fact.trade_id) or self.closed.get(fact.trade_id)
        if trade is None:
            raise f.FactError(f"{type(fact).__name__} for unknown trade {fact.trade_id}")
        trade.apply(fact)
        if isinstance(fact, f.FundingPaid) and fact.source_id:
            self.funding_ids.add(fact.source_id)
        if isinstance(fact, f.OrderPlaced):
            self.by_link[fact.link_id] = trade
            times = self._order_times.setdefault(fact.venue, deque())
            times.append(fact.ts_ms)
            window = self._order_rate(fact.venue)
            while window and times[0] <= fact.ts_ms - window[1]:  # the window's only
                times.popleft()
        elif isinstance(fact, f.TradeClosed):
            self.closed[trade.id] = self.trades.pop(trade.id)

    def _emit(self, out: list[f.AnyFact], fact: f.AnyFact) -> f.AnyFact:
        self.apply(fact)
        out.append(fact)
        return fact

    # ------------------------------------------------------------------ inputs

    def on_market(self, event: MarketEvent, now_ms: int) -> list[f.AnyFact]:
        market = self.market.apply(event)
        if not self.config.paper or event.TYPE != "ticker":
            return []
        return self._settle_funding(market, now_ms)

    def on_signal(self, signal: SignalIn, now_ms: int) -> list[f.AnyFact]:
        """The facts of taking or rejecting `signal`; nothing for one already handled."""
        if signal.id in self.signals_seen:
            return []
        out: list[f.AnyFact] = []
        reason, detail = self._take(signal, now_ms, out)
        if reason:
            self._emit(out, f.SignalRejected(ts_ms=now_ms, signal_id=signal.id, symbol=signal.symbol, reason=reason,
                                             detail=detail))
        return out + self.step(now_ms)

    def on_report(self, fact: f.AnyFact, now_ms: int, then_step: bool = True) -> list[f.AnyFact]:
        """A venue's report (OrderAcked, OrderFilled, OrderClosed, FundingPaid), then what follows
        (unless `then_step` is False: a restart settles every report and the positions first)."""
        trade = self.by_link.get(getattr(fact, "link_id", "")) or self.trades.get(fact.trade_id)
        if trade is None or (isinstance(fact, f.OrderFilled) and fact.fill_id in trade.fill_ids):
            return []  # an order this executor does not know, or a fill seen before
        if isinstance(fact, f.OrderClosed) and not trade.orders[fact.link_id].open:
            return []
        if isinstance(fact, f.OrderAcked) and trade.orders[fact.link_id].venue_order_id:
            return []  # acked already (the REST answer and a lookup can both say so)
        out: list[f.AnyFact] = []
        self._emit(out, fact)
        if isinstance(fact, f.OrderFilled) and trade.closed is not None:  # a venue fill after the close
            self.halted = (f"trade {trade.id} was closed, then its order {fact.link_id} filled {fact.qty}: "
                           f"its position at {trade.orders[fact.link_id].placed.venue} needs a manual check")
        return out + self.step(now_ms) if then_step else out

    def funding_reported(self, venue: str, symbol: str, side: str, amount: Decimal, now_ms: int,
                         source_id: str | None = None) -> list[f.AnyFact]:
        """A venue's funding settlement on its whole `side` position in `symbol` (paid > 0), as
        FundingPaid reports for the open trades holding that side there, shared by quantity; the
        last takes the remainder, so the parts add up to the venue's figure exactly."""
        sign = 1 if side == "Buy" else -1
        holders = [(t, leg, abs(t.held[leg])) for t in self.trades.values() if t.taken.symbol == symbol
                   for leg in ("long", "short") if self._venue(t, leg) == venue and t.held[leg] * sign > 0]
        total = sum((q for _, _, q in holders), ZERO)
        out: list[f.AnyFact] = []
        left = amount
        for i, (trade, leg, qty) in enumerate(holders):
            part = left if i == len(holders) - 1 else (amount * qty / total).quantize(Decimal("1E-12"))
            left -= part
            out.append(f.FundingPaid(ts_ms=now_ms, trade_id=trade.id, leg=leg, amount=part, source_id=source_id))
        return out

    def reconcile_positions(self, positions: dict[str, dict[tuple[str, int], Decimal]],
                            now_ms: int) -> tuple[list[f.AnyFact], str]:
        """Each venue's positions, venue -> (symbol, position idx) -> signed size, against the open
        trades' legs there (a venue not named is not checked, nor a position a holder still has
        orders open on: their fills are still to come). Where a venue holds less than the
        facts, the difference was closed outside this system: a PositionGone per leg (the newest
        trades' first), priced at a fresh touch, or at the leg's entry price; then a trade left
        flat closes (`closed_outside`), an active one exits what it still holds at market (that
        leg is naked), and a pending one unwinds. Returns the facts and what cannot be explained
        that way ('' when nothing): a venue holding more than the facts, the other side, or
        trades on both sides netted in one position."""
        holders: dict[tuple[str, str, int], list[tuple[Trade, str]]] = {}
        for trade in self.trades.values():
            for leg in ("long", "short"):
                venue = self._venue(trade, leg)
                if venue in positions and trade.held[leg]:
                    idx = (1 if leg == "long" else 2) if venue in self.config.hedge_mode_venues else 0
                    holders.setdefault((venue, trade.taken.symbol, idx), []).append((trade, leg))
        there = {(venue, *key): size for venue, held in positions.items() for key, size in held.items() if size}
        out: list[f.AnyFact] = []
        unexplained = []
        for key in sorted(set(holders) | set(there)):
            if any(trade.open_orders(leg) for trade, leg in holders.get(key, [])):
                continue
            venue, symbol, idx = key
            expected = sum((t.held[leg] for t, leg in holders.get(key, [])), ZERO)
            actual = there.get(key, ZERO)
            if actual == expected:
                continue
            signs = {t.held[leg] > 0 for t, leg in holders.get(key, [])}
            if actual * expected < 0 or abs(actual) > abs(expected) or len(signs) > 1:
                # more than the facts hold, the other side, or trades on both sides netted in one
                # position: which leg went cannot be told
                unexplained.append(f"{symbol} idx {idx}: facts {expected}, {venue} {actual}")
                continue
            missing = abs(expected) - abs(actual)
            for trade, leg in reversed(holders[key]):
                qty = min(missing, abs(trade.held[leg]))
                if qty:
                    missing -= qty
                    price, source = self._gone_price(trade, leg, now_ms)
                    self._emit(out, f.PositionGone(
                        ts_ms=now_ms, trade_id=trade.id, leg=leg, qty=qty, price=price, price_source=source,
                        detail=f"{venue} holds {actual} {symbol} (idx {idx}), the facts {expected}"))
        for trade in {fact.trade_id: self.trades[fact.trade_id] for fact in out}.values():
            if trade.flat and not trade.open_orders():
                self._close(trade, "closed", "closed_outside", now_ms, out)
            elif trade.status == "active":
                self._start_exit(trade, "closed_outside", now_ms, out)
            elif trade.status == "pending" and not self._unwinding(trade):
                gone = trade.gone[-1].leg
                self._start_unwind(trade, "entry", OTHER[gone], now_ms, now_ms, out)
        return out + self.step(now_ms), "; ".join(unexplained)

    def _gone_price(self, trade: Trade, leg: str, now_ms: int) -> tuple[Decimal, str]:
        """What a leg that vanished is taken to have closed at: its closing side's touch, when
        the quote is fresh (`signal_max_age_ms`; after a long stop the newest one is old), else
        the average price it was entered at (no price PnL)."""
        m = self.market.get(self._venue(trade, leg), trade.taken.symbol)
        fresh = m is not None and now_ms - m.top_ts_ms <= self.config.signal_max_age_ms
        touch = (m.bid if leg == "long" else m.ask) if fresh else None
        if touch:
            return _dec(touch), "touch"
        orders = [o for o in trade.legs(leg, "entry", "hedge") if o.filled]
        value, qty = sum((o.value for o in orders), ZERO), sum((o.filled for o in orders), ZERO)
        return (value / qty if qty else trade.taken.long_price if leg == "long" else trade.taken.short_price), "entry"

    def shutdown(self, now_ms: int) -> list[f.AnyFact]:
        """Exit every active trade (pending ones finish their entry first, then exit too)."""
        self.halted = self.halted or "shutting down"
        self.closing = self.closing or "shutdown"
        return self.step(now_ms)

    def halt(self, reason: str, detail: str, now_ms: int, action: str | None = None) -> list[f.AnyFact]:
        """Stop taking signals (nothing if already halted); with the action `close`, every trade
        exits at market."""
        if self.stopped is not None:
            return []
        out: list[f.AnyFact] = []
        self._emit(out, f.TradingHalted(ts_ms=now_ms, reason=reason, detail=detail,
                                        action=action or self.config.safety.on_stop))
        return out + self.step(now_ms)

    def resume(self, now_ms: int, by: str = "operator") -> list[f.AnyFact]:
        """Lift a halt (nothing if none is in force)."""
        if self.stopped is None:
            return []
        out: list[f.AnyFact] = []
        self._emit(out, f.TradingResumed(ts_ms=now_ms, by=by))
        return out + self.step(now_ms)

    def next_deadline_ms(self) -> int | None:
        """When `step` next has something to do with no new input (None: nothing waits)."""
        return self._wake

    # ------------------------------------------------------------------ entry

    def _venues(self, signal: SignalIn) -> tuple[str, str]:
        if self.config.mode == "synthetic":
            return self.config.synthetic_venue, self.config.synthetic_venue
        return signal.long_venue, signal.short_venue

    def _take(self, s: SignalIn, now_ms: int, out: list) -> tuple[str, str]:
        c = self.config
        if s.shard:  # a newer owner of the shard has signalled: the older one's signals are void
            newest = self.fences.setdefault(s.shard, s.fence)
            if s.fence < newest:
                return "fenced", f"shard {s.shard}'s lease {s.fence} was taken over (lease {newest})"
            self.fences[s.shard] = s.fence
        if self.halted:
            return "halted", self.halted
        if {(v, s.symbol) for v in self._venues(s)} & self.delisted:
            return "delisted", f"{s.symbol} is no longer listed on a venue of the pair"
        if s.mode != c.mode:
            return "mode", f"a {s.mode} signal, this executor trades {c.mode}"
        if now_ms - s.created_ms > c.signal_max_age_ms:
            return "stale_signal", f"{now_ms - s.created_ms} ms old"
        if s.confidence < c.confidence_min:
            return "confidence", f"{s.confidence} < {c.confidence_min}"
        if len(self.trades) >= c.max_concurrent_trades:
            return "max_concurrent", f"{len(self.trades)} trades open"
        if why := self._rate_room(self._venues(s), now_ms):
            return "rate_limit", why
        if any(t.taken.symbol == s.symbol and t.taken.signal_long_venue == s.long_venue
               and t.taken.signal_short_venue == s.short_venue for t in self.trades.values()):
            return "pair_active", ""
        long_venue, short_venue = self._venues(s)
        grids = self.grids.get((long_venue, s.symbol)), self.grids.get((short_venue, s.symbol))
        if None in grids:
            return "no_instrument", f"no order grid for {s.symbol} on {long_venue if grids[0] is None else short_venue}"
        long_m, short_m = self.market.get(long_venue, s.symbol), self.market.get(short_venue, s.symbol)
        if not (long_m and long_m.ask and short_m and short_m.bid):
            return "no_market", "no quote yet on a leg's venue"
        p = self.portfolio
        available = p.available
        size = trade_size_usd(s.spread_bps, s.funding_delta_8h, s.long_venue, s.short_venue, available,
                              p.starting_capital + p.cumulative_pnl, min(s.depth_long_usd, s.depth_short_usd),
                              c.sizing, c.stop_loss_bps)
        if size < c.sizing.floor_usd:
            return "too_small", f"${size} of ${available} available"
        long_price = self._limit(long_m.ask, grids[0].tick, "Buy")
        short_price = self._limit(short_m.bid, grids[1].tick, "Sell")
        try:
            qty = common_qty(size, (long_price + short_price) / 2, *grids)
        except GridError as exc:
            return "grid", str(exc)
        if c.mode == "synthetic":  # the strategy's own projection at this size (synthetic.py)
            profit = size * _dec(synthetic_profit_bps(s.spread_bps, float(size))) / 10_000
        else:
            fees = 2 * (taker_fee_bps(s.long_venue) + taker_fee_bps(s.short_venue))
            slippage = 2 * (slippage_bps(float(size), s.depth_long_usd) + slippage_bps(float(size), s.depth_short_usd))
            profit = size * _dec(s.spread_bps - fees + s.funding_delta_8h * 10_000 - slippage) / 10_000
        if profit <= 0:
            return "unprofitable_at_size", f"${profit:.2f} at ${size}"
        taken = self._emit(out, f.SignalTaken(
            ts_ms=now_ms, signal_id=s.id, trade_id=trade_id_for(s.id), mode=c.mode, symbol=s.symbol,
            long_venue=long_venue, short_venue=short_venue, signal_long_venue=s.long_venue,
            signal_short_venue=s.short_venue, harder=harder_leg(long_venue, short_venue), qty=qty,
            size_usd=size, long_price=long_price, short_price=short_price, entry_spread_bps=s.spread_bps,
            funding_delta_8h=s.funding_delta_8h, projected_profit_usd=profit.quantize(Decimal("0.01")),
            confidence=s.confidence, signal_ms=s.created_ms,
            source=f"{s.source_stream} {s.source_entry_id}" if s.source_entry_id else None,
            frame_us=s.source_receive_us))
        trade = self.trades[taken.trade_id]
        price = long_price if taken.harder == "long" else short_price
        self._place(trade, taken.harder, "entry", qty, now_ms, out, price=price)
        return "", ""

    # ------------------------------------------------------------------ orders

    def _order_rate(self, venue: str) -> tuple[int, int] | None:
        """(orders, window ms) `venue` allows; None: no limit (paper)."""
        c = self.config
        if venue in c.order_rates:
            return c.order_rates[venue]
        return None if c.order_rate_per_s is None else (c.order_rate_per_s, c.order_rate_window_ms)

    def _rate_room(self, venues: tuple[str, str], now_ms: int) -> str:
        """Why a trade on `venues` would not fit their order rates (its legs, and room left at each
        for a leg-out's orders); '' when it fits."""
        for venue in dict.fromkeys(venues):
            rate = self._order_rate(venue)
            if rate is None:
                continue
            limit, window_ms = rate
            times = self._order_times.get(venue, deque())
            while times and times[0] <= now_ms - window_ms:
                times.popleft()
            if len(times) + venues.count(venue) + self.config.order_headroom > limit:
                return f"{len(times)} orders at {venue} in the last {window_ms} ms; the limit is {limit}"
        return ""

    def _venue(self, trade: Trade, leg: str) -> str:
        return trade.taken.long_venue if leg == "long" else trade.taken.short_venue

    def _place(self, trade: Trade, leg: str, purpose: str, qty: Decimal, now_ms: int, out: list,
               price: Decimal | None = None, side: str | None = None, market: bool = False) -> None:
        """An order on `leg`: hedges, unwinds and `market=True` at market; otherwise a limit at
        `price`, or at the leg's far touch now (at market when there is no quote)."""
        venue, symbol = self._venue(trade, leg), trade.taken.symbol
        side = side or (ENTRY_SIDE[leg] if purpose in ("entry", "hedge") else ENTRY_SIDE[OTHER[leg]])
        market = market or purpose in ("hedge", "unwind")
        m = self.market.get(venue, symbol)
        touch = (m.ask if side == "Buy" else m.bid) if m else None
        if not market and price is None:
            if touch:
                price = self._limit(touch, self.grids[venue, symbol].tick, side)
            else:
                market = True
        hedged = venue in self.config.hedge_mode_venues
        link_id = f"{trade.id}-{leg[0].upper()}{LINK_CODE[purpose]}{len(trade.orders) + 1}"
        self._emit(out, f.OrderPlaced(
            ts_ms=now_ms, trade_id=trade.id, link_id=link_id, leg=leg, purpose=purpose, venue=venue, symbol=symbol,
            side=side, order_type="Market" if market else "Limit",
            qty=qty, price=None if market else price, reduce_only=purpose in ("exit", "unwind"),
            position_idx=(1 if leg == "long" else 2) if hedged else 0, touch=_dec(touch) if touch else None))

    def _limit(self, touch: float, tick: Decimal, side: str) -> Decimal:
        """A limit price `limit_slippage_bps` through the far touch, on the tick grid (rounded
        back towards the touch): it takes the levels within that, and rests for the rest."""
        through = _dec(self.config.limit_slippage_bps) / 10_000
        return round_price(_dec(touch) * (1 + through if side == "Buy" else 1 - through), tick, side)

    def _cancel_open(self, trade: Trade, orders: list[OrderState], now_ms: int, out: list) -> None:
        """Cancel limit orders now; a market order (which a venue fills or cancels at once) only
        if it is still open `leg_timeout_ms` after it was sent, so its outcome gets settled. A
        cancel with no answer after `cancel_retry_ms` is asked again, then at doubling gaps up to
        `max_retry_gap_ms` (the venue answers a cancel of an order it no longer holds by saying
        what became of it): no order waits for ever on an answer that was lost."""
        for order in orders:
            if not order.open:
                continue
            if order.cancel_requested:  # asked again, at doubling gaps up to max_retry_gap_ms
                gap = self.config.cancel_retry_ms << min(order.cancels - 1, 20)
                due = order.cancel_ms + min(gap, self.config.max_retry_gap_ms)
            else:
                due = order.placed.ts_ms + (self.config.leg_timeout_ms if order.placed.order_type == "Market" else 0)
            if now_ms >= due:
                self._emit(out, f.CancelRequested(ts_ms=now_ms, trade_id=trade.id, link_id=order.link_id))
            else:
                self._wait_until(due)

    def _wait_until(self, deadline: int) -> None:
        self._wake = deadline if self._wake is None else min(self._wake, deadline)

    # ------------------------------------------------------------------ the state machine

    def step(self, now_ms: int) -> list[f.AnyFact]:
        """Everything the open trades should do at `now_ms`, applied; then a safety stop if a
        condition holds, and what the open trades do about it."""
        out: list[f.AnyFact] = []
        self._wake = None
        self._step_trades(now_ms, out)
        if self.stopped is None and (stop := self.safety.check(now_ms)):
            self._emit(out, f.TradingHalted(ts_ms=now_ms, reason=stop[0], detail=stop[1],
                                            action=self.config.safety.on_stop))
            self._wake = None
            self._step_trades(now_ms, out)
        return out

    def _step_trades(self, now_ms: int, out: list) -> None:
        for trade in list(self.trades.values()):
            for _ in range(8):  # a decision can enable the next at the same instant
                n = len(out)
                if trade.status == "pending":
                    self._step_entry(trade, now_ms, out)
                elif trade.status == "active":
                    self._step_active(trade, now_ms, out)
                elif trade.status == "exiting":
                    self._step_exit(trade, now_ms, out)
                if len(out) == n or trade.status == "closed":
                    break

    def _close(self, trade: Trade, outcome: str, reason: str, now_ms: int, out: list) -> None:
        pnl = trade.pnl()
        loss = max(-pnl, ZERO) if outcome == "emergency_closed" else trade.leg_out_loss()
        self._emit(out, f.TradeClosed(ts_ms=now_ms, trade_id=trade.id, outcome=outcome, reason=reason, pnl_usd=pnl,
                                      fees_usd=trade.fees, funding_usd=trade.funding, leg_out_loss_usd=loss,
                                      size_usd=trade.taken.size_usd))

    def _unwinding(self, trade: Trade) -> bool:
        return any(lo.action == "unwind" for lo in trade.leg_outs)

    def _step_unwind(self, trade: Trade, now_ms: int, out: list) -> None:
        """Emergency close: reduce-only market orders until both legs are flat."""
        if trade.open_orders():
            self._cancel_open(trade, trade.open_orders(), now_ms, out)
            return
        if trade.flat:
            self._close(trade, "emergency_closed", "leg_out_unwound", now_ms, out)
            return
        unwinds = trade.legs("long", "unwind") + trade.legs("short", "unwind")
        if unwinds:
            last = max(o.placed.ts_ms for o in unwinds)
            refused = max(_refused_in_a_row(trade.legs(leg, "unwind")) for leg in ("long", "short"))
            gap = min(self.config.retry_gap_ms << min(refused, 20), self.config.max_retry_gap_ms)
            if now_ms < last + gap:
                self._wait_until(last + gap)
                return
        for leg in ("long", "short"):
            held = trade.held[leg]
            if held:
                self._place(trade, leg, "unwind", abs(held), now_ms, out, side="Sell" if held > 0 else "Buy")

    def _start_unwind(self, trade: Trade, phase: str, filled_leg: str, filled_at: int, now_ms: int, out: list) -> None:
        self._emit(out, f.LegOut(ts_ms=now_ms, trade_id=trade.id, phase=phase, filled_leg=filled_leg,
                                 unfilled_leg=OTHER[filled_leg], filled_at_ms=filled_at, action="unwind"))

    def _step_entry(self, trade: Trade, now_ms: int, out: list) -> None:
        if self._unwinding(trade):
            return self._step_unwind(trade, now_ms, out)
        c, t = self.config, trade.taken
        hard, easy = t.harder, OTHER[t.harder]
        hard_orders = trade.legs(hard, "entry")
        hard_filled = trade.filled(hard, "entry")
        hard_deadline = hard_orders[0].placed.ts_ms + c.leg_timeout_ms
        if not trade.legs(easy):  # the harder leg's phase
            if trade.open_orders(hard):
                if now_ms >= hard_deadline:
                    self._cancel_open(trade, trade.open_orders(hard), now_ms, out)
                else:
                    self._wait_until(hard_deadline)
                return
            if hard_filled >= t.qty:
                return self._place(trade, easy, "entry", hard_filled, now_ms, out)
            last = hard_orders[-1]
            if (now_ms < hard_deadline and last.closed_status == "cancelled" and not last.cancel_requested
                    and len(hard_orders) < c.order_attempts):
                return self._place(trade, hard, "entry", t.qty - hard_filled, now_ms, out)  # the rest, again
            if not hard_filled:
                reason = "harder_leg_rejected" if last.closed_status == "rejected" else "harder_leg_timeout"
                return self._close(trade, "rejected", reason, now_ms, out)
            if self._tradeable(trade, hard_filled):
                return self._place(trade, easy, "entry", hard_filled, now_ms, out)  # a smaller trade
            filled_at = max(o.done_ms or now_ms for o in hard_orders)
            return self._start_unwind(trade, "entry", hard, filled_at, now_ms, out)
        # the easier leg's phase: its target is what the harder leg holds
        target = abs(trade.held[hard])
        easy_filled = abs(trade.held[easy])
        hard_done = max(o.done_ms or now_ms for o in hard_orders)
        if easy_filled >= target:
            if easy_filled > target:  # a cancel raced a fill: take the excess off
                if trade.open_orders(easy):  # once: the order taking it off (or a late entry) settles first
                    return self._cancel_open(trade, trade.open_orders(easy), now_ms, out)
                return self._place(trade, easy, "unwind", easy_filled - target, now_ms, out,
                                   side=ENTRY_SIDE[hard])
            return self._activate(trade, now_ms, out)
        open_easy = trade.open_orders(easy)
        leg_out = next((lo for lo in trade.leg_outs if lo.phase == "entry"), None)
        if leg_out is None:
            deadline = hard_done + c.leg_timeout_ms
            refused = not open_easy and trade.legs(easy, "entry")[-1].closed_status == "rejected"
            if now_ms >= deadline or refused:
                self._emit(out, f.LegOut(ts_ms=now_ms, trade_id=trade.id, phase="entry", filled_leg=hard,
                                         unfilled_leg=easy, filled_at_ms=hard_done, action="hedge"))
                return self._cancel_open(trade, open_easy, now_ms, out)
            if not open_easy and trade.attempts(easy, "entry") < c.order_attempts:
                return self._place(trade, easy, "entry", target - easy_filled, now_ms, out)  # the rest, again
            self._wait_until(deadline)
            return
        if open_easy:
            return self._cancel_open(trade, open_easy, now_ms, out)
        if trade.attempts(easy, "hedge") < c.hedge_attempts:
            return self._place(trade, easy, "hedge", target - easy_filled, now_ms, out)
        self._start_unwind(trade, "entry", hard, hard_done, now_ms, out)  # the hedge failed: emergency close

    def _tradeable(self, trade: Trade, qty: Decimal) -> bool:
        t = trade.taken
        grids = self.grids[t.long_venue, t.symbol], self.grids[t.short_venue, t.symbol]
        return all(qty % g.lot == 0 and qty >= g.min_qty for g in grids)

    def _activate(self, trade: Trade, now_ms: int, out: list) -> None:
        long_orders = trade.legs("long", "entry", "hedge")
        short_orders = trade.legs("short", "entry", "hedge")

        def avg(orders: list[OrderState]) -> Decimal:
            qty = sum((o.filled for o in orders), ZERO)
            return sum((o.value for o in orders), ZERO) / qty

        self._emit(out, f.TradeActive(ts_ms=now_ms, trade_id=trade.id, long_qty=trade.held["long"],
                                      short_qty=-trade.held["short"], long_avg=avg(long_orders),
                                      short_avg=avg(short_orders)))

    # ------------------------------------------------------------------ positions and exits

    def _markets(self, trade: Trade) -> tuple[VenueMarket | None, VenueMarket | None]:
        t = trade.taken
        return self.market.get(t.long_venue, t.symbol), self.market.get(t.short_venue, t.symbol)

    def spread_bps(self, trade: Trade) -> float | None:
        """Short mid - long mid over their mean, in bps (synthetic mode: the signal's spread, held)."""
        if self.config.mode == "synthetic":
            return trade.taken.entry_spread_bps
        long_m, short_m = self._markets(trade)
        if not (long_m and short_m and long_m.mid and short_m.mid):
            return None
        a, b = long_m.mid, short_m.mid
        return (b - a) / ((a + b) / 2) * 10_000

    def unrealised_pnl(self, trade: Trade) -> Decimal | None:
        """PnL if both legs closed now at their touch (long sells at the bid, short buys at the ask)."""
        long_m, short_m = self._markets(trade)
        if not (long_m and long_m.bid and short_m and short_m.ask):
            return None
        return trade.pnl() + trade.held["long"] * _dec(long_m.bid) + trade.held["short"] * _dec(short_m.ask)

    def exit_value(self, trade: Trade) -> Decimal | None:
        """What the trade would realise if both legs closed now at the touch, after the exit's
        taker fees (None without a quote on a leg)."""
        pnl = self.unrealised_pnl(trade)
        if pnl is None:
            return None
        long_m, short_m = self._markets(trade)
        fees = (abs(trade.held["long"]) * _dec(long_m.bid) * _dec(taker_fee_bps(trade.taken.long_venue))
                + abs(trade.held["short"]) * _dec(short_m.ask) * _dec(taker_fee_bps(trade.taken.short_venue)))
        return pnl - fees / 10_000

    def exit_reason(self, trade: Trade, now_ms: int) -> str | None:
        c, t = self.config, trade.taken
        if {(self._venue(trade, "long"), t.symbol), (self._venue(trade, "short"), t.symbol)} & self.delisted:
            return "delisted"
        if now_ms - trade.active.ts_ms >= c.max_hold_ms:
            return "max_hold"
        spread = self.spread_bps(trade)
        if spread is not None:
            if spread >= t.entry_spread_bps + c.stop_loss_bps:
                return "stop_loss"
            if spread >= t.entry_spread_bps + c.widening_bps:
                return "spread_widening"
        # what closing now would realise: the mark less the exit's taker fees, which the projection
        # counts too (else the exit fires 90 % of the way to a target the fees then take back)
        pnl, target = self.exit_value(trade), t.projected_profit_usd * _dec(c.profit_target_share)
        if pnl is not None and target > 0 and pnl >= target:
            return "profit_target"
        long_m, short_m = self._markets(trade)
        if (c.mode == "cross" and long_m and short_m and long_m.funding_8h is not None
                and short_m.funding_8h is not None and short_m.funding_8h - long_m.funding_8h < c.funding_exit_8h):
            return "funding_converged"
        return None

    def _step_active(self, trade: Trade, now_ms: int, out: list) -> None:
        reason = self.closing or self.exit_reason(trade, now_ms)
        if reason:
            self._start_exit(trade, reason, now_ms, out)
        else:
            self._wait_until(trade.active.ts_ms + self.config.max_hold_ms)

    def _start_exit(self, trade: Trade, reason: str, now_ms: int, out: list) -> None:
        spread = self.spread_bps(trade)
        self._emit(out, f.ExitStarted(ts_ms=now_ms, trade_id=trade.id, reason=reason,
                                      spread_bps=round(spread, 4) if spread is not None else 0.0))
        naked = reason in ("emergency_stop", "closed_outside")  # at market: no waiting on a limit
        for leg in ("long", "short"):
            if trade.held[leg]:
                self._place(trade, leg, "exit", abs(trade.held[leg]), now_ms, out, market=naked)

    def _step_exit(self, trade: Trade, now_ms: int, out: list) -> None:
        if self._unwinding(trade):
            return self._step_unwind(trade, now_ms, out)
        c = self.config
        if trade.flat and not trade.open_orders():
            return self._close(trade, "closed", trade.exit.reason, now_ms, out)
        deadline = trade.exit.ts_ms + c.leg_timeout_ms
        if now_ms < deadline:
            for leg in ("long", "short"):
                if trade.held[leg] and not trade.open_orders(leg) and trade.attempts(leg, "exit") < c.order_attempts:
                    self._place(trade, leg, "exit", abs(trade.held[leg]), now_ms, out)
            self._wait_until(deadline)
            return
        if trade.open_orders():
            return self._cancel_open(trade, trade.open_orders(), now_ms, out)
        flat = [leg for leg in ("long", "short") if not trade.held[leg]]
        # a leg-out: one leg's exit filled and the other's did not (not a leg that vanished outside)
        if len(flat) == 1 and trade.legs(flat[0], "exit") and not any(lo.phase == "exit" for lo in trade.leg_outs):
            done = max((o.done_ms or now_ms) for o in trade.legs(flat[0], "exit"))
            self._emit(out, f.LegOut(ts_ms=now_ms, trade_id=trade.id, phase="exit", filled_leg=flat[0],
                                     unfilled_leg=OTHER[flat[0]], filled_at_ms=done, action="hedge"))
        markets = [o for o in trade.orders.values() if o.placed.purpose == "exit" and o.placed.order_type == "Market"]
        if len(markets) >= 2 * c.hedge_attempts:
            return self._start_unwind(trade, "exit", flat[0] if flat else "long", now_ms, now_ms, out)
        for leg in ("long", "short"):
            held = trade.held[leg]
            if held:
                self._place(trade, leg, "exit", abs(held), now_ms, out, market=True)

    # ------------------------------------------------------------------ funding (paper)

    def _settle_funding(self, market: VenueMarket, now_ms: int) -> list[f.AnyFact]:
        key = (market.venue, market.symbol)
        before = self._funding.get(key)
        self._funding[key] = (market.next_funding_ts_ms or 0, market.funding_rate, market.mark or market.mid)
        if before is None or not before[0] or (market.next_funding_ts_ms or 0) <= before[0]:
            return []
        settled_at, rate, mark = before
        if rate is None or not mark:
            return []
        out: list[f.AnyFact] = []
        for trade in list(self.trades.values()):
            if trade.taken.symbol != market.symbol or trade.taken.ts_ms >= settled_at:
                continue
            for leg in ("long", "short"):
                held = trade.held[leg]
                if held and self._venue(trade, leg) == market.venue and trade.funding_settled.get(leg, 0) < settled_at:
                    self._emit(out, f.FundingPaid(ts_ms=settled_at, trade_id=trade.id, leg=leg,
                                                  amount=held * _dec(mark) * _dec(rate)))
        return out
