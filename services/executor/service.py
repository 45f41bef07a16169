"""`arb executor`: strategy:signals -> trades, every fact in strategy:events, read models kept.

On start it reads every fact of `strategy:events` into the core (the state is their fold),
reconciles with the venue (paper: resting orders did not survive, so they are closed and the
trades carry on), and only then reads. One consumer of the group `executor` reads the signal
stream and the md:* streams together; each batch goes through the core, and its facts are
written in one MULTI/EXEC with the read models they change, before the entries are acked. A
batch that could not be written is held and retried; nothing more is read meanwhile.

Waiting is bounded by the core's next deadline, so a leg's timeout is acted on when it falls
due, not at the next market event. On stop it takes no more signals, exits the active trades
(`SHUTDOWN_TIMEOUT_S` at most), and says what is still open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter

import aiohttp
import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from services.executor import facts as f
from services.executor.core import ExecConfig, ExecutorCore, parse_signal
from services.executor.paper import PaperVenue, market_event, restart, route
from services.executor.projection import Projector
from services.executor.sizing import Grid
from services.ingestor.service import load_symbols, venue_hosts
from shared import metrics
from shared.bus import ConsumerGroup, Entry
from shared.codec import CodecError, from_fields
from shared.instruments import Instrument
from shared.metrics import LatencyHistogram
from shared.resp import RedisReplyError, RespConnection, pack_command
from shared.rest import RestError
from shared.settings import Settings
from shared.venues import venue
from shared.venues.protocol import NoSuchEnvironment, VenueError

log = logging.getLogger("arb.executor")
GROUP = "executor"
REPLAY_CHUNK = 5_000


def grid_of(inst: Instrument) -> Grid | None:
    """The order grid in base units, or None for an instrument without one (or inverse)."""
    if inst.tick is None or inst.lot is None or inst.inverse:
        return None
    lot = inst.lot * inst.contract_size
    return Grid(inst.tick, lot, max(lot, (inst.min_size or 0) * inst.contract_size))


def exec_config(s: Settings, mode: str) -> ExecConfig:
    hold_s = s.synthetic_hold_s if mode == "synthetic" else s.exit_max_hold_s
    return ExecConfig(mode=mode, synthetic_venue=s.synthetic_venue, paper=s.execution == "paper",
                      hedge_mode_venues=frozenset({s.synthetic_venue}) if mode == "synthetic" and
                      s.execution == "live" else frozenset(),
                      starting_capital=s.starting_capital, max_concurrent_trades=s.max_concurrent_trades,
                      leg_timeout_ms=s.leg_timeout_ms, signal_max_age_ms=s.signal_max_age_ms,
                      max_hold_ms=int(hold_s * 1000))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class ExecutorService:
    def __init__(self, settings: Settings, mode: str = "cross", consumer: str = "executor-1",
                 grids: dict[tuple[str, str], Grid] | None = None) -> None:
        if settings.execution != "paper":
            raise NotImplementedError("live execution is not wired into the service yet; use EXECUTION=paper")
        self.settings = s = settings
        self.core = ExecutorCore(exec_config(s, mode), dict(grids or {}))
        self.paper = PaperVenue(self.core.market)
        self.projector = Projector(s.redis_key_prefix)
        p = s.redis_key_prefix
        self.signal_stream = p + s.stream_signals
        self.events_stream = p + s.stream_events
        self.md = list(s.md_streams().values())
        self.consumer = consumer
        self._grids_given = grids is not None
        self.counts: Counter[str] = Counter()
        self.order_latency = LatencyHistogram()  # signal created -> its first order sent
        self._unwritten: list[f.AnyFact] = []
        self._acks: dict[str, list[str]] = {}
        self.ready = asyncio.Event()  # replayed and reconciled: reading

    # ------------------------------------------------------------------ start

    async def load_grids(self, stop: asyncio.Event) -> None:
        """Order grids of every instrument on EXECUTOR_VENUES (venues that do not answer are
        logged, and their signals rejected as no_instrument)."""
        async with aiohttp.ClientSession() as http:
            for name in self.settings.executor_venues:
                v = venue(name)
                try:
                    symbols = await asyncio.wait_for(load_symbols(v, venue_hosts(self.settings, v), http), 15)
                except (RestError, VenueError, NoSuchEnvironment, TimeoutError) as exc:
                    log.warning("%s: no instruments list (%s); its signals will be rejected", name, exc)
                    continue
                for inst in symbols.by_symbol.values():
                    grid = grid_of(inst)
                    if grid is not None:
                        self.core.grids[name, inst.symbol] = grid
                if stop.is_set():
                    return

    async def replay(self, client: aioredis.Redis) -> int:
        """Every fact of the events stream into the core; how many."""
        n, start = 0, "-"
        while True:
            chunk = await client.xrange(self.events_stream, start, "+", count=REPLAY_CHUNK)
            for _, fields in chunk:
                fact = f.from_fields(fields)
                self.core.apply(fact)
                if isinstance(fact, f.LegOut):
                    self.projector.leg_out_id(fact)  # the next leg-out entry id follows on
                n += 1
            if len(chunk) < REPLAY_CHUNK:
                return n
            start = "(" + chunk[-1][0]

    # ------------------------------------------------------------------ run

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        client = aioredis.Redis.from_url(s.redis_url, socket_timeout=5, socket_connect_timeout=5,
                                         decode_responses=True)
        fast, writes = RespConnection(s.redis_url, encoding="utf-8"), RespConnection(s.redis_url, encoding="utf-8")
        try:
            if not self._grids_given:
                await self.load_grids(stop)
            n = await self.replay(client)
            p = self.core.portfolio
            log.info("executor (%s, %s): %d facts replayed; %d trades open, available $%s, cumulative PnL $%s",
                     self.core.config.mode, s.execution, n, len(self.core.trades), p.available, p.cumulative_pnl)
            await ConsumerGroup(client, GROUP, self.consumer, [self.signal_stream], start_id="0").ensure()
            await ConsumerGroup(client, GROUP, self.consumer, self.md, start_id="$").ensure()
            reader = ConsumerGroup(client, GROUP, self.consumer, [self.signal_stream, *self.md], fast=fast)
            market_only = ConsumerGroup(client, GROUP, self.consumer, self.md, fast=fast)
            self._unwritten += restart(self.core, self.paper, _now_ms())
            await self._write(writes)
            self.ready.set()
            while not stop.is_set():
                await self._step(reader, writes)
            await self._shutdown(market_only, writes)
        finally:
            await client.aclose()
            for conn in (fast, writes):
                await conn.close()
        log.info("executor stopped: %s", dict(self.counts))

    async def _shutdown(self, reader: ConsumerGroup, writes: RespConnection) -> None:
        if self.core.trades:
            log.info("closing %d open trades before stopping", len(self.core.trades))
        self._unwritten += route(self.core, self.paper, self.core.shutdown(_now_ms()), _now_ms())
        deadline = time.monotonic() + self.settings.shutdown_timeout_s
        while self.core.trades and time.monotonic() < deadline:
            await self._step(reader, writes)
        await self._write(writes)
        if self._acks:
            with contextlib.suppress(RedisError, OSError):
                for stream, ids in self._acks.items():
                    await reader.ack(stream, ids)
        for trade in self.core.trades.values():
            log.error("trade %s (%s %s/%s) is still %s at shutdown: long %s, short %s", trade.id, trade.taken.symbol,
                      trade.taken.long_venue, trade.taken.short_venue, trade.status, trade.held["long"],
                      trade.held["short"])

    async def _step(self, reader: ConsumerGroup, writes: RespConnection) -> None:
        """Write what is held; read a batch (acking the last); run it through the core."""
        try:
            if self._unwritten:
                await self._write(writes)
            deadline = self.core.next_deadline_ms()
            block = 200 if deadline is None else max(1, min(200, deadline - _now_ms()))
            acks, self._acks = self._acks, {}
            try:
                entries = await reader.read(count=500, block_ms=block, acks=acks)
            except BaseException:
                self._acks = acks
                raise
        except (RedisError, OSError) as exc:
            self.counts["redis_errors"] += 1
            if self.counts["redis_errors"] % 30 == 1:
                log.warning("redis unavailable: %s; %d facts held, retrying", exc, len(self._unwritten))
            await asyncio.sleep(1.0)
            return
        self._unwritten += self.handle(entries, _now_ms())
        for entry in entries:
            self._acks.setdefault(entry.stream, []).append(entry.id)
        with contextlib.suppress(RedisError, OSError):
            await self._write(writes)

    def handle(self, entries: list[Entry], now_ms: int) -> list[f.AnyFact]:
        out: list[f.AnyFact] = []
        for entry in entries:
            if entry.stream == self.signal_stream:
                out += self._signal(entry, now_ms)
                continue
            try:
                event = from_fields(entry.fields)
            except CodecError:
                self.counts["bad_market_entries"] += 1
                continue
            out += market_event(self.core, self.paper, event, now_ms)
        return out + route(self.core, self.paper, self.core.step(now_ms), now_ms)

    def _signal(self, entry: Entry, now_ms: int) -> list[f.AnyFact]:
        self.counts["signals"] += 1
        try:
            signal = parse_signal(entry.fields)
        except msgspec.ValidationError as exc:
            self.counts["bad_signals"] += 1
            log.warning("skipped signal entry %s: %s", entry.id, exc)
            return []
        facts = route(self.core, self.paper, self.core.on_signal(signal, now_ms), now_ms)
        for fact in facts:
            if isinstance(fact, f.OrderPlaced):
                self.order_latency.observe_ns(max(0, time.time_ns() - signal.created_ms * 1_000_000))
                break
            if isinstance(fact, f.SignalRejected):
                log.info("signal %s rejected: %s %s", signal.id, fact.reason, fact.detail)
        return facts

    async def _write(self, conn: RespConnection) -> None:
        """The held facts and the read models they change, in one MULTI/EXEC; then forgotten."""
        facts = self._unwritten
        if not facts:
            return
        cmds = [("XADD", self.events_stream, "*", *[x for kv in f.to_fields(fact).items() for x in kv])
                for fact in facts]
        cmds += self.projector.writes(self.core, facts)
        packed = pack_command("MULTI") + b"".join(pack_command(*c) for c in cmds) + pack_command("EXEC")
        replies = await conn.execute(packed, len(cmds) + 2)
        result = replies[-1]
        errors = [r for r in replies[:-1] if isinstance(r, RedisReplyError)]
        errors += [r for r in (result or []) if isinstance(r, RedisReplyError)]
        if errors or result is None:
            raise RedisError(f"writing {len(facts)} facts failed: {errors[0] if errors else 'transaction aborted'}")
        self._unwritten = []
        self.counts["facts"] += len(facts)
        for fact in facts:
            self._log(fact)

    def _log(self, fact: f.AnyFact) -> None:
        match fact:
            case f.SignalTaken():
                log.info("trade %s: %s long %s / short %s, %s (%s USD), %s leg first", fact.trade_id, fact.symbol,
                         fact.long_venue, fact.short_venue, fact.qty, fact.size_usd, fact.harder)
            case f.LegOut():
                log.warning("trade %s: leg-out in %s, %s filled, %s not: %s", fact.trade_id, fact.phase,
                            fact.filled_leg, fact.unfilled_leg, fact.action)
            case f.TradeActive():
                log.info("trade %s active: long %s @ %s, short %s @ %s", fact.trade_id, fact.long_qty, fact.long_avg,
                         fact.short_qty, fact.short_avg)
            case f.ExitStarted():
                log.info("trade %s exiting: %s", fact.trade_id, fact.reason)
            case f.TradeClosed():
                log.info("trade %s %s (%s): PnL %s USD, fees %s, leg-out loss %s", fact.trade_id, fact.outcome,
                         fact.reason, fact.pnl_usd, fact.fees_usd, fact.leg_out_loss_usd)

    # ------------------------------------------------------------------ metrics

    def register_metrics(self, registry) -> None:
        registry.register(metrics.CallbackCollector(self._families))

    def _families(self):
        mode = {"mode": self.core.config.mode, "execution": self.settings.execution}
        p = self.core.portfolio
        yield metrics.counter("arb_executor_signals_total", "Signals read", mode, self.counts["signals"])
        yield metrics.counter_by("arb_executor_rejections_total", "Signals not taken, by reason", mode, "reason",
                                 dict(self.core.rejections))
        yield metrics.counter("arb_executor_facts_total", "Facts written to the events stream", mode,
                              self.counts["facts"])
        yield metrics.counter("arb_executor_leg_outs_total", "Leg-out events", mode, p.leg_out_count)
        yield metrics.counter("arb_executor_emergency_closes_total", "Trades closed by the emergency close", mode,
                              p.emergency_closes)
        yield metrics.gauge("arb_executor_active_trades", "Trades open", mode, len(self.core.trades))
        yield metrics.gauge("arb_executor_available_capital_usd", "Capital not reserved by a trade", mode,
                            float(p.available))
        yield metrics.gauge("arb_executor_cumulative_pnl_usd", "PnL of every closed trade", mode,
                            float(p.cumulative_pnl))
        yield metrics.gauge("arb_executor_unwritten_facts", "Facts held while Redis is unavailable", mode,
                            len(self._unwritten))
        yield self.order_latency.family("arb_executor_signal_to_order_seconds",
                                        "Signal created to its first order sent", mode)
