"""The executor as its own process, trading live at the simulator (synthetic at its Bybit, or
cross at its Bybit and OKX): what the reliability tests that kill, starve or cut it share. Its
settings, a writer of signals that carries on while Redis is down, its orderly stop, the run of
item 1 (killed at every named point, restarted each time), and the checks of what an executor
left against what the venues hold, which the order-path items use too."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import os
import re
import signal
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

from redis.exceptions import RedisError

from services.executor import facts as f
from services.executor.rebuild import rebuild
from services.ingestor.service import Ingestor
from services.sim.server import SimServer
from tests.conftest import serve_app
from tests.figures import figure, scale
from tests.live_venue import SAFETY_OFF, hold_premium
from tests.test_strategy_service import wait_for

# the order-create endpoint of each venue the simulator trades, as its journal names it (Binance's
# query and cancel share its path, but only a create names a newClientOrderId)
CREATE_PATHS = {"/v5/order/create": "bybit", "/api/v5/trade/order": "okx", "/api/v2/mix/order/place-order": "bitget",
                "/fapi/v1/order": "binance"}
CLIENT_ID_NAMES = {"bybit": "orderLinkId", "okx": "clOrdId", "bitget": "clientOid", "binance": "newClientOrderId"}


def executor_env(settings, sim_port: int | str, redis_url: str | None = None, **more: str) -> dict[str, str]:
    """The environment of `arb executor`, live at the simulator, with the safety stops off (the
    tests cause failures on purpose; tests/test_executor_safety.py checks them)."""
    env = {**os.environ, "REDIS_URL": redis_url or settings.redis_url, "REDIS_KEY_PREFIX": settings.redis_key_prefix,
           "VENUE_ENV": "sim", "SIM_PORT": str(sim_port), "SYMBOLS_TO_TRADE": ",".join(settings.symbols_to_trade),
           "EXECUTION": "live", "SIM_API_KEY": settings.sim_api_key,
           "SIM_API_SECRET": settings.sim_api_secret.get_secret_value(),
           "SIM_API_PASSPHRASE": settings.sim_api_passphrase.get_secret_value(), "LOG_LEVEL": "INFO",
           **{k.upper(): str(v) for k, v in SAFETY_OFF.items()}}
    return env | more


class Signals:
    """Signals long `legs[0]` and short `legs[1]` (synthetic when that is bybit_synthetic, else
    cross), one every `every_s` over the symbols in turn; a write Redis refuses is skipped and
    counted (`skipped`)."""

    def __init__(self, r, settings, tag: str, every_s: float = 0.2,
                 legs: tuple[str, str] = ("bybit", "bybit_synthetic")) -> None:
        self.r, self.stream, self.tag, self.every_s = r, settings.redis_key_prefix + "strategy:signals", tag, every_s
        self.symbols = list(settings.symbols_to_trade)
        self.legs, self.mode = legs, mode_of(legs)
        self.n = self.skipped = 0

    async def once(self) -> None:
        try:
            await self.r.xadd(self.stream, {
                "id": f"{self.tag}{self.n}", "mode": self.mode, "symbol": self.symbols[self.n % len(self.symbols)],
                "long_venue": self.legs[0], "short_venue": self.legs[1], "spread_bps": "50", "funding_delta_8h": "0.01",
                "confidence": "80", "depth_long_usd": "200000", "depth_short_usd": "200000",
                "created_ms": str(time.time_ns() // 1_000_000)})
            self.n += 1
        except (RedisError, OSError):
            self.skipped += 1

    async def keep_on(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            await self.once()
            await asyncio.sleep(self.every_s)


def mode_of(legs: tuple[str, str]) -> str:
    """The executor's mode for a signal's (long, short) venues."""
    return "synthetic" if legs[1].endswith("_synthetic") else "cross"


async def facts_of(r, events: str) -> list:
    return [f.from_fields({k.decode(): v.decode() for k, v in fields.items()}) for _, fields in await r.xrange(events)]


async def all_closed(r, events: str) -> bool:
    """Every trade taken is closed (False while Redis cannot say)."""
    try:
        facts = await facts_of(r, events)
    except (RedisError, OSError):
        return False
    taken = {x.trade_id for x in facts if isinstance(x, f.SignalTaken)}
    return bool(taken) and taken == {x.trade_id for x in facts if isinstance(x, f.TradeClosed)}


async def taken_one(r, events: str) -> bool:
    return any(fields.get(b"type") == b"signal_taken" for _, fields in await r.xrange(events))


async def finish(proc, r, events: str, log: Path, timeout_s: float = 30) -> None:
    """Let the open trades close (the checks afterwards say what did not), then SIGTERM: the
    executor closes the rest and must exit 0."""
    with contextlib.suppress(TimeoutError):
        await wait_for(lambda: all_closed(r, events), timeout_s=timeout_s)
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 40) == 0, log.read_text()[-3000:]


async def kill(proc) -> None:
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


def accounts(sim) -> dict[str, object]:
    """The executor's account at each venue the simulator trades (its one API key)."""
    key = next(iter(sim.gate.secrets))
    return {venue: sim.engine(venue).account(key) for venue in ("bybit", *sim.trading)}


def venue_id(venue: str, link_id: str) -> str:
    """The id the venue keeps an order by: the link id at Bybit and Binance, its letters and
    digits at OKX and Bitget (the venue's trading module says)."""
    convert = getattr(importlib.import_module(f"shared.venues.{venue}.trading"), "client_id", None)
    return convert(link_id) if convert else link_id


def venue_ids(facts: list) -> dict[str, tuple[str, str]]:
    """Each order the facts placed: link id -> (venue, the id the venue keeps it by)."""
    return {x.link_id: (x.venue, venue_id(x.venue, x.link_id)) for x in facts if isinstance(x, f.OrderPlaced)}


def venue_fills(facts: list) -> dict[tuple[str, str], Decimal]:
    """What the facts hold filled of each order, by (venue, the id the venue keeps it by)."""
    ids, fills = venue_ids(facts), {}
    for x in facts:
        if isinstance(x, f.OrderFilled):
            at = ids.get(x.link_id, ("", x.link_id))
            fills[at] = fills.get(at, Decimal(0)) + x.qty
    return fills


def venue_losses(facts: list, sim) -> list[str]:
    """Orders at a venue whose fact is missing, or whose fills the facts do not hold exactly."""
    placed, fills = set(venue_ids(facts).values()), venue_fills(facts)
    return [f"{venue}:{o.link_id}" for venue, account in accounts(sim).items() for o in account.orders.values()
            if (venue, o.link_id) not in placed
            or fills.get((venue, o.link_id), Decimal(0)) != o.filled_lots * sim.model.states[o.symbol].inst.lot]


def duplicates(sim) -> int:
    """Orders at a venue beyond the first under one client id (orderLinkId, clOrdId)."""
    return sum(len(a.orders) - len({o.link_id for o in a.orders.values()}) for a in accounts(sim).values())


def positions(sim) -> dict:
    """Every position the executor's account holds at a venue, by (venue, symbol, positionIdx),
    in lots: {} when flat."""
    return {(venue, *k): p.lots for venue, a in accounts(sim).items() for k, p in a.positions.items() if p.lots}


def open_orders(sim) -> list[str]:
    """Every order the executor's account has open at a venue, as venue:client id."""
    return [f"{venue}:{o.link_id}" for venue, a in accounts(sim).items() for o in a.open_orders()]


def facts_written(log: str) -> int:
    """The facts the executor counted as written (their MULTI/EXEC answered OK): its closing line."""
    found = re.findall(r"executor stopped: \{.*'facts': (\d+)", log)
    assert found, log[-2000:]
    return int(found[-1])


@dataclasses.dataclass
class Left:
    """What an executor left behind at the venues and in its facts: the figures every item here
    reports."""

    NAMES: ClassVar[str] = "naked legs / open orders / duplicate venue orders / events lost"
    TARGET: ClassVar[str] = "0 / 0 / 0 / 0"
    naked: dict  # positions at any venue
    resting: list[str]  # orders open at any venue
    doubled: int  # orders at a venue beyond the first under one client id
    lost: list[str]  # orders at a venue the facts do not hold, or hold other fills of
    undecided: list[str]  # signals in strategy:signals with no decision in the facts

    def text(self) -> str:
        return f"{len(self.naked)} / {len(self.resting)} / {self.doubled} / {len(self.lost) + len(self.undecided)}"

    def ok(self) -> bool:
        return not (self.naked or self.resting or self.doubled or self.lost or self.undecided)

    def check(self) -> None:
        # no naked leg: every position at every venue is flat, no order left open
        assert self.naked == {} and self.resting == [], f"left at the venues: {self.naked} {self.resting}"
        # no duplicate, none lost: each order at a venue is one the facts placed, once, its fills as
        # the facts hold them; every signal read was decided
        assert self.doubled == 0 and self.lost == [] and self.undecided == [], (
            f"{self.doubled} duplicates; orders the facts miss or misfill: {self.lost}; undecided: {self.undecided}")


async def left_behind(r, settings, sim, facts: list) -> Left:
    """Left by an executor whose facts (strategy:events) are `facts`, at the simulator `sim`."""
    decided = {x.signal_id for x in facts if isinstance(x, f.SignalTaken | f.SignalRejected)}
    undecided = [fields[b"id"].decode() for _, fields in await r.xrange(settings.redis_key_prefix + "strategy:signals")
                 if fields[b"id"].decode() not in decided]
    return Left(positions(sim), open_orders(sim), duplicates(sim), venue_losses(facts, sim), undecided)


# --- items 5 and 7: the order path under the venues' faults -------------------------------

def is_create(q) -> bool:
    """Whether a journal entry is an order create."""
    return q.path in CREATE_PATHS and (CREATE_PATHS[q.path] != "binance" or q.link_id is not None)


def dropped_answers(facts: list, journal: list, sim, trades: int, label: str = "") -> None:
    """Item 5's figures and checks: each create whose answer a venue dropped is an order the
    facts hold exactly as the venue does (fills, and closed or filled whole), and no venue holds
    an order twice or one the facts never placed. `journal` is the simulator's."""
    creates = [q for q in journal if is_create(q)]
    dropped = {(CREATE_PATHS[q.path], q.link_id) for q in creates if q.dropped}
    ids = venue_ids(facts)
    placed, fills = set(ids.values()), venue_fills(facts)
    closed = {ids[x.link_id] for x in facts if isinstance(x, f.OrderClosed) and x.link_id in ids}
    doubled = duplicates(sim) + sum(1 for venue, account in accounts(sim).items()
                                    for link_id in {o.link_id for o in account.orders.values()}
                                    if (venue, link_id) not in placed)
    resolved = 0
    for venue, link_id in dropped:
        account = accounts(sim)[venue]
        order = account.orders[account.link_ids[link_id]]
        whole = order.status == "Filled" or (venue, link_id) in closed
        resolved += fills.get((venue, link_id), Decimal(0)) == order.filled_lots * sim.model.states[
            order.symbol].inst.lot and whole
    share = 100.0 * resolved / len(dropped) if dropped else 0.0
    venues = sorted({venue for venue, _ in dropped})
    at = f" ({', '.join(f'{v} {sum(d == v for d, _ in dropped)}' for v in venues)})" if len(venues) > 1 else ""
    by = " / ".join(CLIENT_ID_NAMES[v] for v in venues) or "orderLinkId"
    figure(5, f"{label}{len(dropped)}{at} of {len(creates)} create answers dropped over {trades} trades: duplicate "
           f"orders / resolved by {by}", f"{doubled} / {share:.0f} %", "0 / 100 %", doubled == 0 and share == 100.0)
    assert dropped, "the fault dropped nothing: the test measured nothing"
    assert doubled == 0
    assert resolved == len(dropped)


def refused_second_legs(facts: list, journal: list, trades: int, label: str = "") -> None:
    """Item 7's figures and checks: each trade whose second entry leg (and its hedges) a venue
    refused is one leg-out, its first leg unwound with one reduce-only order, and how long that
    leg was naked (its first fill to the unwind's last, both on the simulator's clock)."""
    accepted = [q for q in journal if is_create(q) and q.ret_code == 0]
    leg_outs = [x for x in facts if isinstance(x, f.LegOut) and x.phase == "entry" and x.action == "hedge"]
    unwinds = [q for q in accepted if q.link_id and q.link_id[-2] == "U"]  # <trade>-<L|S>U<n>, OKX without the -
    outcomes = Counter(x.outcome for x in facts if isinstance(x, f.TradeClosed))
    first_fill: dict[str, int] = {}
    unwound: dict[str, int] = {}
    for x in facts:
        if isinstance(x, f.OrderFilled):
            kind = x.link_id.rsplit("-", 1)[1]
            if kind.endswith("E1"):
                first_fill.setdefault(x.trade_id, x.ts_ms)
            elif kind[1] == "U":
                unwound[x.trade_id] = x.ts_ms  # its last fill
    naked_ms = sorted(unwound[t] - first_fill[t] for t in unwound)
    reduce_only = 100.0 * sum(q.reduce_only for q in unwinds) / len(unwinds) if unwinds else 0.0
    figure(7, f"{label}second leg refused in {trades} trades: leg-out events / unwinds sent reduce-only",
           f"{len(leg_outs)} / {reduce_only:.0f} % of {len(unwinds)}", f"{trades} / 100 %",
           len(leg_outs) == trades and reduce_only == 100)
    figure(7, f"{label}longest naked exposure (first leg filled -> unwound, venue clock)",
           f"{naked_ms[-1]} ms (median {naked_ms[len(naked_ms) // 2]} ms, p95 {naked_ms[int(len(naked_ms) * 0.95)]} ms)",
           "reported", True)
    assert len(leg_outs) == trades and outcomes == {"emergency_closed": trades}
    assert len(unwinds) == trades and reduce_only == 100.0
    assert len(naked_ms) == trades


# --- item 1: SIGKILL at the named points (shared/failpoints.py) ---------------------------

POINTS = {"signal_read": 0.02, "before_write": 0.01, "after_write": 0.01, "after_leg1": 0.08, "after_leg2": 0.08,
          "before_ack": 0.01}


def points_for(start: int) -> dict[str, float]:
    """The first starts die each at one point in turn, the first time they reach it (so every
    point is met whatever the draws); later ones at every point, at random."""
    names = list(POINTS)
    return {names[start]: 1.0} if start < len(names) else POINTS


async def sigkill_trading(settings, r, tmp_path: Path, legs: tuple[str, str], trades: int, symbols: list[str],
                          label: str = "") -> None:
    """Item 1 with the legs at `legs` (long, short): an executor subprocess trading live at the
    simulator is killed at the named points, restarted at once each time, until `trades` are
    taken; the last start is not killed and is stopped with SIGTERM. Then its figures and checks:
    no position or open order at any venue, no client id twice at a venue, every order and fill
    at the venues in the facts, every signal decided, the ledger the replay of the facts.

    Cross legs trade long `legs[0]` and short `legs[1]`, held 60 bps above with funding 0.5 %
    above (no funding or spread exit): each trade closes at its maximum hold."""
    mode, venues = mode_of(legs), [v for v in legs if not v.endswith("_synthetic")]
    log_path = tmp_path / "executor.log"
    log = log_path.open("ab")
    key, secret = settings.sim_api_key, settings.sim_api_secret.get_secret_value()
    server = SimServer(symbols, seed=5, step_ms=10, api_keys={key: secret},
                       api_passphrases={key: settings.sim_api_passphrase.get_secret_value()})
    if mode == "cross":
        hold_premium(server, symbols, legs[1], legs[0], 60, 3600)
    async with serve_app(server.app()) as base:
        settings = settings.model_copy(update={"sim_port": int(base.rsplit(":", 1)[1]), "symbols_to_trade": symbols})
        hold = {"SYNTHETIC_HOLD_S": "0.4"} if mode == "synthetic" else {"EXIT_MAX_HOLD_S": "0.4",
                                                                         "EXECUTOR_VENUES": ",".join(venues)}
        env = executor_env(settings, settings.sim_port, MAX_CONCURRENT_TRADES="3", **hold)
        stop = asyncio.Event()
        feeds = [asyncio.ensure_future(Ingestor(settings, venue, symbols).run(stop)) for venue in venues]
        events = settings.redis_key_prefix + "strategy:events"
        signals = Signals(r, settings, "s", legs=legs)
        recovery_s: list[float] = []

        async def start(points: dict[str, float], seed: int):
            """A new executor, once it has decided a signal (or died trying): reading again."""
            failpoints = ",".join(f"{k}={v}" for k, v in points.items())
            last = await r.xrevrange(events, count=1)
            after = last[0][0] if last else b"0-0"
            started = time.monotonic()
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "services.cli", "executor", "--mode", mode, stderr=log,
                env={**env, "ARB_FAILPOINTS": failpoints, "ARB_FAILPOINT_SEED": str(seed)})
            while proc.returncode is None and not await _decided_after(r, events, after):
                assert time.monotonic() - started < 30, log_path.read_text()[-3000:]
                await signals.once()  # at the same pace as ever: a start meets no flood of its own
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 0.15)
            if proc.returncode is None:
                recovery_s.append(time.monotonic() - started)
            return proc

        restarts, proc = 0, None
        try:
            await wait_for(lambda: _quoted(r, settings.redis_key_prefix, venues))
            proc = await start(points_for(0), 0)
            deadline = time.monotonic() + scale(240, 1200)
            while (done := await _taken(r, events)) < trades:
                assert time.monotonic() < deadline, (f"{done} of {trades} trades by the deadline; open: "
                                                     f"{await _open_trades(r, events)}; the executor's log ends:\n"
                                                     f"{log_path.read_text()[-2000:]}")
                if proc.returncode is not None:  # killed at a point: start again at once
                    assert proc.returncode == -signal.SIGKILL, log_path.read_text()[-3000:]
                    restarts += 1
                    proc = await start(points_for(restarts), restarts)
                await signals.once()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 0.15)
            await kill(proc)
            proc = await start({}, 0)  # the last one is not killed: it closes what is open and stops
            await finish(proc, r, events, log_path)
        finally:
            stop.set()
            await asyncio.gather(*feeds)
            if proc is not None:
                await kill(proc)

    kills = Counter(line.split()[1].rstrip(":") for line in log_path.read_text().splitlines()
                    if line.startswith("failpoint "))
    facts = await facts_of(r, events)
    taken = [x for x in facts if isinstance(x, f.SignalTaken)]
    left = await left_behind(r, settings, server, facts)
    recovery = sorted(recovery_s[1:])
    p95 = recovery[int(len(recovery) * 0.95)] if recovery else 0.0
    figure(1, f"{label}{restarts} SIGKILLs ({', '.join(f'{k} {v}' for k, v in sorted(kills.items()))}) over "
           f"{len(taken)} trades: {Left.NAMES}", left.text(), Left.TARGET, left.ok())
    figure(1, f"{label}restart to its first signal decided, p95 (a new Python process: imports, replay, reconcile)",
           f"{p95:.2f} s (max {recovery[-1] if recovery else 0:.2f} s)", "reported", True)
    assert len(taken) >= trades and restarts >= 5, "too few trades or kills to mean anything"
    assert set(kills) == set(POINTS), f"not every point was reached: {kills}"
    assert {x.venue for x in facts if isinstance(x, f.OrderPlaced)} == set(venues)
    left.check()
    assert {x.trade_id for x in facts if isinstance(x, f.TradeClosed)} == {x.trade_id for x in taken}
    # the ledger is the replay of the facts
    assert (await rebuild(settings, mode, write=False)).differences == []
    pnl = sum((x.pnl_usd for x in facts if isinstance(x, f.TradeClosed)), Decimal(0))
    state = await r.hgetall(settings.redis_key_prefix + "strategy:portfolio:state")
    assert Decimal(state[b"cumulative_pnl"].decode()) == pnl
    assert Decimal(state[b"available_capital"].decode()) == Decimal(20_000) + pnl


async def _quoted(r, prefix: str, venues: list[str]) -> bool:
    """Each venue's books are in md:books."""
    seen = {fields.get(b"venue") for _, fields in await r.xrevrange(prefix + "md:{0}:books", count=200)}
    return {v.encode() for v in venues} <= seen


async def _open_trades(r, events: str) -> str:
    """The facts of every trade not closed, one per line: what a stuck run is stuck on."""
    facts = await facts_of(r, events)
    closed = {x.trade_id for x in facts if isinstance(x, f.TradeClosed)}
    return "\n".join(repr(x) for x in facts if getattr(x, "trade_id", None) and x.trade_id not in closed)


async def _taken(r, events: str) -> int:
    return sum(1 for _, fields in await r.xrange(events) if fields.get(b"type") == b"signal_taken")


async def _decided_after(r, events: str, after: bytes) -> bool:
    """A signal decided (taken or rejected) in strategy:events after the entry `after`."""
    return any(fields.get(b"type") in (b"signal_taken", b"signal_rejected")
               for _, fields in await r.xrange(events, b"(" + after, "+"))
