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
import functools
import itertools
import logging
import time
from collections import Counter

import aiohttp
import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from services.executor import facts as f
from services.executor.core import ExecConfig, ExecutorCore, SignalIn, parse_signal
from services.executor.live import LiveExecution, VenueExecution
from services.executor.paper import PaperExecution
from services.executor.projection import Projector, close_text, marks, settled_leg_outs
from services.executor.safety import SafetyLimits
from services.executor.sizing import Grid, Sizing, at_step
from services.ingestor.service import listings, load_symbols, venue_hosts
from shared import metrics, redis_io
from shared.bus import ConsumerGroup, Entry, consumer_group
from shared.codec import CodecError, from_fields
from shared.failpoints import ARMED, failpoint
from shared.instruments import Instrument, SymbolMap
from shared.metrics import LatencyHistogram
from shared.resp import RedisReplyError, RespConnection, pack_command
from shared.rest import RestError
from shared.settings import ConfigError, Settings
from shared.venues import TRADING, trading_client, venue
from shared.venues.protocol import NoSuchEnvironment, VenueError
from shared.venues.trading import KEY_REFUSED, OutcomeUnknown, PrivateStream, Refused, VenueTrading
from shared.ws import Stopped, unless_stopped

log = logging.getLogger("arb.executor")
GROUP = "executor"
REPLAY_CHUNK = 5_000
# a signal handed to this consumer this often without being acked killed every start that read
# it (or its batch): it is decided as rejected, unread, so that it cannot keep the executor down
MAX_DELIVERIES = 5
MARK_INTERVAL_MS = 1_000  # strategy:marks is replaced this often (seed: the spread every second)


def grid_of(inst: Instrument) -> Grid | None:
    """The order grid in base units, or None for an instrument without one (or inverse)."""
    if inst.tick is None or inst.lot is None or inst.inverse:
        return None
    lot = inst.lot * inst.contract_size
    return Grid(inst.tick, lot, max(lot, (inst.min_size or 0) * inst.contract_size))


def live_venues(s: Settings, mode: str) -> list[str]:
    """The venues live execution trades at: synthetic, SYNTHETIC_VENUE; cross, EXECUTOR_VENUES.
    ConfigError for one without a live trading client."""
    names = [s.synthetic_venue] if mode == "synthetic" else list(s.executor_venues)
    if missing := [n for n in names if n not in TRADING]:
        raise ConfigError(f"EXECUTION=live trades at {', '.join(TRADING)} only; {', '.join(missing)} has no live "
                          f"trading yet: set EXECUTOR_VENUES to venues among {', '.join(TRADING)} (e.g. bybit,okx)")
    return names


def hedge_mode_venues(s: Settings, mode: str) -> frozenset[str]:
    """Live, every venue traded at holds each side of a symbol as its own position (Bybit's
    positionIdx 1 and 2, OKX's long/short mode): synthetic trading's two legs at one venue, and
    cross trades in opposite directions on one symbol, would otherwise net into one position."""
    return frozenset(live_venues(s, mode)) if s.execution == "live" else frozenset()


def order_rates(s: Settings, mode: str) -> dict[str, tuple[int, int]]:
    """Each live venue's order-create budget as (orders, window ms) with the client's margin;
    Bybit's is ORDER_RATE_LIMIT_PER_S (order_rate_per_s)."""
    if s.execution != "live":
        return {}
    out = {}
    for name in live_venues(s, mode):
        count, window_s = trading_client(name).order_rate
        if name != "bybit":
            out[name] = (count, int(window_s * 1000) + 100)
    return out


def exec_config(s: Settings, mode: str) -> ExecConfig:
    hold_s = s.synthetic_hold_s if mode == "synthetic" else s.exit_max_hold_s
    return ExecConfig(mode=mode, synthetic_venue=s.synthetic_venue, paper=s.execution == "paper",
                      hedge_mode_venues=hedge_mode_venues(s, mode),
                      starting_capital=s.starting_capital, max_concurrent_trades=s.max_concurrent_trades,
                      leg_timeout_ms=s.leg_timeout_ms, limit_slippage_bps=s.limit_slippage_bps,
                      signal_max_age_ms=s.signal_max_age_ms,
                      max_hold_ms=int(hold_s * 1000),
                      sizing=Sizing(s.estimated_position_size, s.max_trade_risk, s.position_size_limit),
                      order_rate_per_s=s.order_rate_limit_per_s if s.execution == "live" else None,
                      order_rates=order_rates(s, mode),
                      safety=SafetyLimits(max_daily_loss=s.max_daily_loss, max_weekly_loss=s.max_weekly_loss,
                                          max_monthly_loss=s.max_monthly_loss, max_failures=s.safety_max_failures,
                                          failure_window_ms=int(s.safety_failure_window_s * 1000),
                                          min_success_rate=s.safety_min_success_rate,
                                          success_window=s.safety_success_window, max_p99_ms=s.safety_max_p99_ms,
                                          latency_samples=s.safety_latency_samples,
                                          max_api_errors=s.safety_max_api_errors, on_stop=s.safety_on_stop))


async def read_facts(client: aioredis.Redis, stream: str):
    """Every fact of `stream`, oldest first, read in chunks."""
    start = "-"
    while True:
        chunk = await client.xrange(stream, start, "+", count=REPLAY_CHUNK)
        for _, fields in chunk:
            yield f.from_fields(fields)
        if len(chunk) < REPLAY_CHUNK:
            return
        start = "(" + chunk[-1][0]


TRACE = {  # the traced path's histograms (arb_trace_{name}_seconds): the whole, then its stages in order
    "frame_to_order": "Venue frame received by the ingestor to the first order sent of the trade its event decided",
    "frame_to_strategy": "Traced path: venue frame received to the strategy taking its event up (parse, XADD, read)",
    "strategy_to_signal": "Traced path: event taken up by the strategy to its signal written (decision)",
    "signal_to_executor": "Traced path: signal written to read by the executor",
    "executor_to_order": "Traced path: signal read by the executor to the trade's first order sent",
}


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def _connected(stream: PrivateStream, task: asyncio.Future, name: str) -> None:
    """Until `stream` is connected; ConfigError when its task ends first (its key refused)."""
    waiter = asyncio.ensure_future(stream.connected.wait())
    try:
        await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise ConfigError(f"{name}'s private stream refused the API key: {task.exception()}")


async def _pipeline(conn: RespConnection, cmds: list[tuple], what: str) -> None:
    """`cmds` pipelined (each to its node on a cluster); RedisError when any failed."""
    if not cmds:
        return
    replies = await conn.execute(b"".join(pack_command(*c) for c in cmds), len(cmds))
    if errors := [r for r in replies if isinstance(r, RedisReplyError)]:
        raise RedisError(f"writing {what} failed: {errors[0]}")


async def _transaction(conn: RespConnection, cmds: list[tuple], what: str) -> None:
    """`cmds` in one MULTI/EXEC; RedisError when any of them, or the transaction, failed."""
    packed = pack_command("MULTI") + b"".join(pack_command(*c) for c in cmds) + pack_command("EXEC")
    _check_transaction(await conn.execute(packed, len(cmds) + 2), what)


def _check_transaction(replies: list, what: str) -> None:
    result = replies[-1]
    errors = [r for r in replies[:-1] if isinstance(r, RedisReplyError)]
    errors += [r for r in (result or []) if isinstance(r, RedisReplyError)]
    if errors or result is None:
        raise RedisError(f"writing {what} failed: {errors[0] if errors else 'transaction aborted'}")


class ExecutorService:
    def __init__(self, settings: Settings, mode: str = "cross", consumer: str = "executor-1",
                 grids: dict[tuple[str, str], Grid] | None = None) -> None:
        self.settings = s = settings
        self.core = ExecutorCore(exec_config(s, mode), dict(grids or {}))
        self.execution: PaperExecution | LiveExecution = PaperExecution(self.core)
        self.projector = Projector(s.redis_key_prefix)
        p = s.redis_key_prefix
        self.signal_stream = p + s.stream_signals
        self.events_stream = p + s.stream_events
        self.control_stream = p + s.stream_control
        self.md = s.all_md_streams()
        self.consumer = consumer
        self._grids_given = grids is not None
        self.instruments: dict[str, list[Instrument]] = {}  # venue -> its instruments, as loaded
        self.private: dict[str, PrivateStream] = {}  # live: each venue's private stream
        self.counts: Counter[str] = Counter()
        self.order_latency = LatencyHistogram()  # signal created -> its first order sent
        self.read_to_order = LatencyHistogram()  # signal read by the executor -> its first order sent
        self.venue_latency = LatencyHistogram()  # order sent -> the venue's first answer
        self.replication_wait = LatencyHistogram()  # cluster: facts written -> WAIT answered by the replicas
        self._attached = s.redis_wait_replicas  # replicas the events stream's master had at the last write
        self.end_to_end = LatencyHistogram()  # the deciding event's exchange stamp -> the venue's first answer
        self._source_ms: dict[str, int] = {}  # trade id -> its signal's source exchange stamp (ms)
        self._unwritten: list[f.AnyFact] = []
        self._unprojected: list[tuple] = []  # cluster: read-model writes that failed after their facts were written
        self._acks: dict[str, list[str]] = {}
        self._read: asyncio.Future | None = None
        self._read_acks: dict[str, list[str]] = {}  # acked by the read in flight
        self._signal_read_ns: dict[str, tuple[int, int, SignalIn]] = {}  # trade id -> (created ns, read ns, signal)
        # the traced path, per trade with a source event: its venue frame received -> its first order sent,
        # and the four stages that add up to it
        self.trace = {name: LatencyHistogram() for name in TRACE}
        self._sent_ns: dict[str, int] = {}  # order link id -> when it went out, until the venue first answers
        self.ready = asyncio.Event()  # replayed and reconciled: reading
        self.marks: dict[str, str] = {}  # as last written to strategy:marks
        self._marks_due = 0
        self._marked: frozenset[str] = frozenset()  # the open trades it valued

    # ------------------------------------------------------------------ start

    async def load_grids(self, http: aiohttp.ClientSession, venues: list[str], stop: asyncio.Event,
                         grids: bool = True) -> None:
        """The instruments of `venues`, and (`grids`) their order grids (venues that do not answer
        are logged, and their signals rejected as no_instrument)."""
        for name in venues:
            v = venue(name)
            try:
                symbols = await asyncio.wait_for(load_symbols(v, venue_hosts(self.settings, v), http), 15)
            except (RestError, VenueError, NoSuchEnvironment, TimeoutError) as exc:
                log.warning("%s: no instruments list (%s); its signals will be rejected", name, exc)
                continue
            self.instruments[name] = list(symbols.by_symbol.values())
            for inst in self.instruments[name] if grids else []:
                grid = grid_of(inst)
                if grid is not None:
                    self.core.grids[name, inst.symbol] = grid
            if stop.is_set():
                return

    def _client(self, name: str, http: aiohttp.ClientSession) -> VenueTrading:
        """`name`'s trading client on VENUE_ENV's hosts (its instruments loaded already);
        ConfigError naming the settings when its key is not set."""
        s = self.settings
        credentials = s.trading_credentials(name)
        if credentials is None:
            raise ConfigError(f"EXECUTION=live on VENUE_ENV={s.venue_env} needs {name}'s API key: set "
                              f"{s.credential_names(name)}")
        hosts = s.trading_endpoints(name)
        return trading_client(name).for_account(http, hosts.rest, hosts.ws_private, credentials,
                                                self.instruments.get(name, []), s.demo_keys(name),
                                                **s.trading_options(name))

    async def _start_trading(self, name: str, http: aiohttp.ClientSession, stop: asyncio.Event) -> VenueTrading:
        """A venue's trading client, ready: its instruments, its clock offset, a key that is safe to
        trade with, the position mode it trades in. Retried every 5 s while the venue does not
        answer; a key the venue refuses is a ConfigError."""
        s = self.settings
        for attempt in itertools.count():
            try:
                if name not in self.instruments:
                    await self.load_grids(http, [name], stop, grids=not self._grids_given)
                    if name not in self.instruments:
                        raise OutcomeUnknown("no instruments list")
                trading = self._client(name, http)
                offset = await trading.sync_time()
                await trading.prepare()  # first: Bitget's demo may trade other symbols than its market data
                if (problems := await trading.key_problems()) and not s.allow_unsafe_api_key:
                    raise ConfigError(f"the {name} API key for VENUE_ENV={s.venue_env} is unsafe to trade with: "
                                      f"{'; '.join(problems)}. Make a key with Read and Trade only, bound to this "
                                      "machine's IP, or set ALLOW_UNSAFE_API_KEY=true to accept the risk")
                if name in self.core.config.hedge_mode_venues:
                    await trading.ensure_position_mode(s.symbols_to_trade)
                log.info("%s trading: %r; clock offset %d ms", name, trading, offset)
                return trading
            except Refused as exc:
                if exc.kind in KEY_REFUSED:
                    raise ConfigError(f"{name} refused the API key for VENUE_ENV={s.venue_env}: {exc}") from None
                if attempt % 12 == 0:
                    log.error("cannot start trading at %s: %s; retrying every 5 s", name, exc)
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError, KeyError, OutcomeUnknown) as exc:
                if attempt % 12 == 0:  # the first time, then every minute
                    log.error("cannot start trading at %s: %s: %s; retrying every 5 s", name, type(exc).__name__, exc)
            await unless_stopped(asyncio.sleep(5), stop)
        raise AssertionError("unreachable")

    async def _live(self, http: aiohttp.ClientSession, stop: asyncio.Event) -> list[PrivateStream]:
        """Each live venue's trading client, ready, and its private stream."""
        venues = {}
        for name in live_venues(self.settings, self.core.config.mode):
            venues[name] = VenueExecution(await self._start_trading(name, http, stop), on_sent=self.order_sent)
        live = LiveExecution(self.core, venues)
        self.execution = live
        self.private = {name: v.trading.private_stream(functools.partial(live.on_message, name),
                                                       functools.partial(live.on_connected, name))
                        for name, v in venues.items()}
        return list(self.private.values())

    def _stream_ended(self, name: str, stop: asyncio.Event, task: asyncio.Future) -> None:
        """A venue's private stream stopped while trading (its key refused on a reconnect): its
        fills would go unheard, so no new trade is taken until the operator has looked."""
        if stop.is_set() or task.cancelled():
            return
        why = task.exception() or "it ended"
        log.error("%s: the private stream stopped (%s); no signal is taken until it is fixed and `arb resume`",
                  name, why)
        now = _now_ms()
        self._unwritten += self.execution.route(self.core.halt(
            "venue_stream", f"{name}'s private stream stopped: {why}", now, action="keep"), now)

    async def replay(self, client: aioredis.Redis) -> int:
        """Every fact of the events stream into the core; how many."""
        n = 0
        async for fact in read_facts(client, self.events_stream):
            self.core.apply(fact)
            for _ in settled_leg_outs(self.core, fact):
                self.projector.leg_out_id(fact.ts_ms)  # the next leg-out entry id follows on
            n += 1
        return n

    async def warm_up(self, client: aioredis.Redis, per_stream: int = 1_000) -> int:
        """The newest tickers and books already in md:*, into the market state only (no fills,
        no funding): a signal read right after a start finds its venues quoted."""
        events = []
        for stream in (name for k in range(self.settings.md_shards)
                       for kind, name in self.settings.md_streams(k).items() if kind in ("ticker", "book")):
            for _, fields in reversed(await client.xrevrange(stream, "+", "-", count=per_stream)):
                with contextlib.suppress(CodecError):
                    events.append(from_fields(fields))
        for event in sorted(events, key=lambda e: e.receive_ts_us):
            self.core.market.apply(event)
        return len(events)

    # ------------------------------------------------------------------ run

    async def run(self, stop: asyncio.Event) -> None:
        s = self.settings
        client = redis_io.client(s, socket_timeout=5, socket_connect_timeout=5, decode_responses=True)
        writes = redis_io.lean(s, "utf-8")
        groups = []
        http = aiohttp.ClientSession()
        private_tasks: list[asyncio.Future] = []
        try:
            live = s.execution == "live"
            if not self._grids_given and not live:
                await self.load_grids(http, s.executor_venues, stop)
            if live:
                streams = await self._live(http, stop)
                private_tasks = [asyncio.ensure_future(stream.run(stop)) for stream in streams]
                for name, task in zip(self.private, private_tasks, strict=True):
                    await unless_stopped(_connected(self.private[name], task, name), stop)
                    task.add_done_callback(functools.partial(self._stream_ended, name, stop))
            await self._redis_ready(client, stop)
            n = await self.replay(client)
            p = self.core.portfolio
            log.info("executor (%s, %s): %d facts replayed; %d trades open, available $%s, cumulative PnL $%s",
                     self.core.config.mode, s.execution, n, len(self.core.trades), p.available, p.cumulative_pnl)
            await ConsumerGroup(client, GROUP, self.consumer, [self.signal_stream, self.control_stream],
                                start_id="0").ensure()
            await ConsumerGroup(client, GROUP, self.consumer, self.md, start_id="$").ensure()
            await self._dead_letter(client, writes)
            await self.warm_up(client)
            def group(streams: list[str]):
                groups.append(consumer_group(client, GROUP, self.consumer, streams, cluster=s.redis_cluster,
                                             fast_factory=lambda: redis_io.lean(s, "utf-8")))
                return groups[-1]

            reader = group([self.control_stream, self.signal_stream, *self.md])
            market_only = group(self.md)
            self._unwritten += await self.execution.reconcile(_now_ms())
            await self._write(writes)
            if self.core.halted:
                log.error("not taking signals: %s", self.core.halted)
            if live:  # after the replay: the ledger's entries the facts hold are known by then
                private_tasks.append(asyncio.ensure_future(self.execution.poll_funding(stop)))
            if not self._grids_given:
                private_tasks.append(asyncio.ensure_future(self._relist(http, stop, new_grids=not live)))
            self.ready.set()
            while not stop.is_set():
                await self._step(reader, writes)
            await self._cancel_read()
            with contextlib.suppress(RedisError, OSError):  # signals and commands handled: acked before the close
                for stream, ids in self._acks.items():
                    await reader.ack(stream, ids)
                self._acks = {}
            await reader.close()  # its readers stop: the shutdown reads the market data alone
            await self._shutdown(market_only, writes)
        except Stopped:
            pass
        finally:
            await self._cancel_read()
            await self.execution.close()
            for task in private_tasks:
                task.cancel()
            await asyncio.gather(*private_tasks, return_exceptions=True)
            await http.close()
            for g in groups:
                await g.close()
            await client.aclose()
            await writes.close()
        log.info("executor stopped: %s", dict(self.counts))

    async def _relist(self, http: aiohttp.ClientSession, stop: asyncio.Event, new_grids: bool) -> None:
        """Every UNIVERSE_REFRESH_S, the venues' instruments lists again: a symbol a venue no
        longer lists makes its open trades there exit (`delisted`); one newly listed gets its
        order grid (`new_grids`: on paper; a live client learns its instruments at start)."""
        s = self.settings
        lists = listings(s, s.executor_venues)
        for name, instruments in self.instruments.items():
            lists.maps[name] = SymbolMap(name, instruments)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), s.universe_refresh_s)
            if stop.is_set():
                return
            before = {name: set(m.by_symbol) for name, m in lists.maps.items()}
            for name, why in (await lists.read(http)).items():
                log.warning("%s: instruments list unavailable (%s); its last one stands", name, why)
            for name, listed in lists.maps.items():
                now = set(listed.by_symbol)
                gone, added = before.get(name, now) - now, now - before.get(name, set())
                self.core.delisted -= {(name, symbol) for symbol in now}
                self.core.delisted |= {(name, symbol) for symbol in gone}
                held = sorted(t.id for t in self.core.trades.values() if (name, t.taken.symbol) in self.core.delisted)
                if gone:
                    log.warning("%s delisted %s; open trades there exit: %s", name, ",".join(sorted(gone)),
                                ",".join(held) or "none")
                for symbol in gone - {t.taken.symbol for t in self.core.trades.values()}:  # a held one exits on it
                    self.core.grids.pop((name, symbol), None)
                for symbol in added if new_grids else ():
                    if (grid := grid_of(listed.get(symbol))) is not None:
                        self.core.grids[name, symbol] = grid
                self.instruments[name] = list(listed.by_symbol.values())

    async def _dead_letter(self, client: aioredis.Redis, writes: RespConnection) -> None:
        """Signals this consumer has been handed MAX_DELIVERIES times and never acked: each start
        that read them died before it could. They are rejected (`redelivered`) without being
        handled, and acked, so one entry that kills the executor cannot stop it for good."""
        pending = await client.xpending_range(self.signal_stream, GROUP, "-", "+", 10_000, consumername=self.consumer)
        doomed = [p["message_id"] for p in pending if p["times_delivered"] >= MAX_DELIVERIES]
        if not doomed:
            return
        now = _now_ms()
        for entry_id in doomed:
            found = await client.xrange(self.signal_stream, entry_id, entry_id)
            fields = found[0][1] if found else {}
            fact = f.SignalRejected(ts_ms=now, signal_id=str(fields.get("id") or entry_id),
                                    symbol=str(fields.get("symbol", "")), reason="redelivered",
                                    detail=f"handed to {self.consumer} {MAX_DELIVERIES}+ times, never acked")
            self.core.apply(fact)
            self._unwritten.append(fact)
        await self._write(writes)
        await client.xack(self.signal_stream, GROUP, *doomed)
        log.error("rejected %d signals that every start since died on (delivered %d+ times): %s", len(doomed),
                  MAX_DELIVERIES, ", ".join(doomed[:5]))

    async def _redis_ready(self, client: aioredis.Redis, stop: asyncio.Event) -> None:
        """Wait for Redis before replaying (a start while it is down waits, and says so)."""
        for attempt in itertools.count():
            try:
                await client.ping()
                return
            except (RedisError, OSError) as exc:
                if attempt % 30 == 0:
                    log.error("redis unavailable at start (%s); nothing is read or traded until it is; "
                              "retrying every second", exc)
                await unless_stopped(asyncio.sleep(1), stop)

    async def _cancel_read(self) -> None:
        if self._read is not None:
            self._read.cancel()
            await asyncio.gather(self._read, return_exceptions=True)
            self._read = None

    async def _shutdown(self, reader: ConsumerGroup, writes: RespConnection) -> None:
        if self.core.trades:
            log.info("closing %d open trades before stopping", len(self.core.trades))
        now = _now_ms()
        self._unwritten += self.execution.route(self.core.shutdown(now), now)
        deadline = time.monotonic() + self.settings.shutdown_timeout_s
        while self.core.trades and time.monotonic() < deadline:
            await self._step(reader, writes)
        await self._cancel_read()
        with contextlib.suppress(RedisError, OSError):
            await self._write(writes)
            await self._mark(writes, _now_ms())
            for stream, ids in self._acks.items():
                await reader.ack(stream, ids)
        for trade in self.core.trades.values():
            log.error("trade %s (%s %s/%s) is still %s at shutdown: long %s, short %s", trade.id, trade.taken.symbol,
                      trade.taken.long_venue, trade.taken.short_venue, trade.status, trade.held["long"],
                      trade.held["short"])

    async def _step(self, reader: ConsumerGroup, writes: RespConnection) -> None:
        """Write what is held; then whichever comes first of a batch of entries (acking the
        last), a venue report, or the core's next deadline; through the core; written."""
        try:
            await self._write(writes)
        except (RedisError, OSError) as exc:
            return await self._redis_down(exc)
        if self._read is None:
            if self._acks:
                failpoint("before_ack")
            self._read_acks, self._acks = self._acks, {}
            self._read = asyncio.ensure_future(reader.read(count=500, block_ms=200, acks=self._read_acks))
        report = asyncio.ensure_future(self.execution.reports.get())
        deadline = self.core.next_deadline_ms()
        timeout = None if deadline is None else max(0.0, (deadline - _now_ms()) / 1000)
        done, _ = await asyncio.wait({self._read, report}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        now = _now_ms()
        facts: list[f.AnyFact] = []
        reports = [report.result()] if report in done else []
        report.cancel()
        while not self.execution.reports.empty():
            reports.append(self.execution.reports.get_nowait())
        for fact in reports:
            facts += self.core.on_report(msgspec.structs.replace(fact, ts_ms=now), now)
        if self._read in done:
            read, self._read = self._read, None
            try:
                entries = read.result()
            except (RedisError, OSError) as exc:
                for stream, ids in self._read_acks.items():  # not acked: with the next read
                    self._acks.setdefault(stream, []).extend(ids)
                self._unwritten += facts
                return await self._redis_down(exc)
            facts += self.handle(entries, now)
            for entry in entries:
                self._acks.setdefault(entry.stream, []).append(entry.id)
        self._unwritten += facts + self.execution.route(self.core.step(now), now)
        with contextlib.suppress(RedisError, OSError):
            await self._write(writes)
            await self._mark(writes, now)

    async def _replicated(self, conn, cmds: list[tuple], what: str) -> None:
        """The facts in one MULTI/EXEC (one slot: the events stream's) and WAIT, in one round
        trip: the executor acts on them once REDIS_WAIT_REPLICAS replicas hold them, so that they
        survive the loss of their master. When the master has fewer replicas attached (right
        after a failover, before the old master comes back as a replica) or they do not answer
        within REDIS_WAIT_TIMEOUT_MS, it goes on rather than leave a trade's legs waiting: the
        facts are counted as unreplicated (`arb_executor_unreplicated_facts_total`) and logged."""
        wanted, started = self.settings.redis_wait_replicas, time.perf_counter_ns()
        timeout_ms = str(self.settings.redis_wait_timeout_ms)
        packed = pack_command("MULTI") + b"".join(pack_command(*c) for c in cmds) + pack_command("EXEC")
        # as many as the master had attached at the last write: none right after a failover, so
        # WAIT does not sit out its timeout on every write until the old master is back
        wait = pack_command("WAIT", str(min(wanted, self._attached)), timeout_ms) + pack_command("INFO", "replication")
        replies = await conn.execute(packed + (wait if wanted else b""), len(cmds) + 2 + (2 if wanted else 0))
        _check_transaction(replies[:len(cmds) + 2], what)
        if not wanted:
            return
        acked, info = replies[-2:]
        if isinstance(acked, RedisReplyError):
            raise RedisError(f"WAIT after {what}: {acked}")
        self.replication_wait.observe_ns(time.perf_counter_ns() - started)
        attached = next((int(line.split(":")[1]) for line in str(info).splitlines()
                         if line.startswith("connected_slaves:")), 0)
        if int(acked) < wanted:
            self.counts["unreplicated_facts"] += len(cmds)
            if self._attached >= wanted or attached != self._attached:  # once per change, not per write
                log.warning("%s: %d of %d replicas hold them (%d attached to the master); going on, counted as "
                            "unreplicated until a replica is back", what, int(acked), wanted, attached)
        elif self._attached < wanted:
            log.info("facts are held by %d replicas again", int(acked))
        self._attached = attached

    async def _mark(self, conn: RespConnection, now_ms: int) -> None:
        """Replace strategy:marks every MARK_INTERVAL_MS, and at once when a trade opened or closed."""
        if now_ms < self._marks_due and self._marked == self.core.trades.keys():
            return
        fields = marks(self.core, now_ms)
        key = self.projector.key("marks")
        await _transaction(conn, [("DEL", key), ("HSET", key, *[x for kv in fields.items() for x in kv])], "marks")
        self.marks, self._marks_due, self._marked = fields, now_ms + MARK_INTERVAL_MS, frozenset(self.core.trades)

    async def _redis_down(self, exc: Exception) -> None:
        self.counts["redis_errors"] += 1
        if self.counts["redis_errors"] % 30 == 1:
            log.warning("redis unavailable: %s; %d facts held, retrying", exc, len(self._unwritten))
        await asyncio.sleep(1.0)

    def handle(self, entries: list[Entry], now_ms: int) -> list[f.AnyFact]:
        out: list[f.AnyFact] = []
        for entry in entries:
            if entry.stream == self.signal_stream:
                out += self._signal(entry, now_ms)
                continue
            if entry.stream == self.control_stream:
                out += self._command(entry, now_ms)
                continue
            try:
                event = from_fields(entry.fields)
            except CodecError:
                self.counts["bad_market_entries"] += 1
                continue
            out += self.execution.market(event, now_ms)
        return out

    def _command(self, entry: Entry, now_ms: int) -> list[f.AnyFact]:
        """An operator's command: `halt` (arb stop --emergency) or `resume` (arb resume)."""
        command, by = entry.fields.get("command"), entry.fields.get("by", "operator")
        if command == "halt":
            action = entry.fields.get("action") or None
            detail = entry.fields.get("detail") or f"arb stop --emergency ({by})"
            return self.execution.route(self.core.halt("manual", detail, now_ms, action), now_ms)
        if command == "resume":
            return self.execution.route(self.core.resume(now_ms, by), now_ms)
        self.counts["bad_commands"] += 1
        log.warning("skipped control entry %s: unknown command %r", entry.id, command)
        return []

    def _signal(self, entry: Entry, now_ms: int) -> list[f.AnyFact]:
        self.counts["signals"] += 1
        try:
            signal = parse_signal(entry.fields)
        except msgspec.ValidationError as exc:
            self.counts["bad_signals"] += 1
            log.warning("skipped signal entry %s: %s", entry.id, exc)
            return []
        failpoint("signal_read")
        read_ns = time.time_ns()
        facts = self.execution.route(self.core.on_signal(signal, now_ms), now_ms)
        for fact in facts:
            if isinstance(fact, f.SignalTaken):
                created_ns = signal.created_us * 1000 if signal.created_us else signal.created_ms * 1_000_000
                self._signal_read_ns[fact.trade_id] = (created_ns, read_ns, signal)
                if signal.source_exchange_ts_ms:
                    self._source_ms[fact.trade_id] = signal.source_exchange_ts_ms
            elif isinstance(fact, f.SignalRejected):
                log.info("signal %s rejected: %s %s", signal.id, fact.reason, fact.detail)
        return facts

    async def _write(self, conn: RespConnection) -> None:
        """The held facts and the read models they change, in one MULTI/EXEC; then the orders
        they describe are sent."""
        facts = self._unwritten
        if not facts:
            return
        cmds = [("XADD", self.events_stream, "*", *[x for kv in f.to_fields(fact).items() for x in kv])
                for fact in facts]
        projection = self.projector.writes(self.core, facts)
        failpoint("before_write")
        if self.settings.redis_cluster:  # the read models live in other slots: no transaction spans them
            await self._replicated(conn, cmds, f"{len(facts)} facts")
            self._unwritten = []  # written: never again, whatever the read models do next
            self._unprojected += projection
            try:
                await _pipeline(conn, self._unprojected, "the read models")
                self._unprojected = []
            except (RedisError, OSError) as exc:  # kept for the next write; rebuilt from the facts on start
                log.warning("read models not written (%s); again with the next facts", exc)
        else:
            await _transaction(conn, cmds + projection, f"{len(facts)} facts")
        self._unwritten = []
        failpoint("after_write")
        for fact in facts if ARMED else ():
            if isinstance(fact, f.OrderFilled) and fact.link_id[-2:] in ("E1", "E2"):
                failpoint("after_leg1" if fact.link_id.endswith("E1") else "after_leg2")
        self.execution.dispatch(facts)
        self.counts["facts"] += len(facts)
        for fact in facts:
            if isinstance(fact, f.OrderPlaced) and self.settings.execution == "paper":
                self.order_sent(fact)  # paper orders were "sent" by now, in-process
            elif isinstance(fact, f.OrderAcked | f.OrderFilled | f.OrderClosed) and (
                    sent := self._sent_ns.pop(fact.link_id, None)):  # the venue's first word on the order
                now_ns = time.time_ns()
                order = self.core.by_link.get(fact.link_id)
                venue = order.orders[fact.link_id].placed.venue if order else ""
                self.core.safety.observe_latency_ms((now_ns - sent) / 1e6, venue)
                self.venue_latency.observe_ns(now_ns - sent)
                if (source := self._source_ms.pop(fact.trade_id, None)) is not None:  # the trade's first answer
                    self.end_to_end.observe_ns(max(0, now_ns - source * 1_000_000))
            self._log(fact)

    def order_sent(self, order: f.OrderPlaced) -> None:
        """The moment an order goes out: the first of a trade ends its signal's latency, and the
        venue's first answer to it will give the round trip the latency stop watches."""
        sent_ns = self._sent_ns[order.link_id] = time.time_ns()
        times = self._signal_read_ns.pop(order.trade_id, None)
        if times is None:
            return
        created_ns, read_ns, signal = times
        self.order_latency.observe_ns(max(0, sent_ns - created_ns))
        self.read_to_order.observe_ns(sent_ns - read_ns)
        if signal.source_receive_us and signal.source_read_us:  # one frame's path, on one clock
            frame_ns, strategy_ns = signal.source_receive_us * 1000, signal.source_read_us * 1000
            for name, ns in (("frame_to_order", sent_ns - frame_ns), ("frame_to_strategy", strategy_ns - frame_ns),
                             ("strategy_to_signal", created_ns - strategy_ns),
                             ("signal_to_executor", read_ns - created_ns), ("executor_to_order", sent_ns - read_ns)):
                self.trace[name].observe_ns(max(0, ns))

    def _log(self, fact: f.AnyFact) -> None:
        match fact:
            case f.SignalTaken():
                log.info("trade %s: %s long %s / short %s, %s (%s USD) at a spread of %.1f bps, projected %s USD; "
                         "%s leg first", fact.trade_id, fact.symbol, fact.long_venue, fact.short_venue, fact.qty,
                         fact.size_usd, fact.entry_spread_bps, fact.projected_profit_usd, fact.harder)
            case f.LegOut():
                log.warning("trade %s: leg-out in %s, %s filled, %s not: %s", fact.trade_id, fact.phase,
                            fact.filled_leg, fact.unfilled_leg, fact.action)
            case f.TradeActive():
                taken = (self.core.trades.get(fact.trade_id) or self.core.closed[fact.trade_id]).taken
                log.info("trade %s active: long %s @ %s, short %s @ %s", fact.trade_id, fact.long_qty,
                         at_step(fact.long_avg, taken.long_price), fact.short_qty,
                         at_step(fact.short_avg, taken.short_price))
            case f.ExitStarted():
                log.info("trade %s exiting: %s", fact.trade_id, fact.reason)
            case f.PositionGone():
                log.warning("trade %s: %s of its %s leg is no longer at the venue, closed outside this system (%s); "
                            "taken as closed at %s (%s)", fact.trade_id, fact.qty, fact.leg, fact.detail, fact.price,
                            fact.price_source)
            case f.TradingHalted():
                log.error("TRADING HALTED (%s): %s; open trades: %s", fact.reason, fact.detail,
                          "closing at market" if fact.action == "close" else "kept, hedged")
            case f.TradingResumed():
                log.warning("trading resumed by %s", fact.by)
            case f.TradeClosed():
                log.info("trade %s %s (%s): %s", fact.trade_id, fact.outcome, fact.reason,
                         close_text(self.core.closed[fact.trade_id]))

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
        halt = self.core.stopped
        yield metrics.gauge("arb_executor_trading_halted", "1 while a safety stop or the kill switch holds trading",
                            mode, 1 if halt else 0)
        yield metrics.gauge_by("arb_executor_halt_reason", "1 for the reason of the halt in force (none: no sample)",
                               mode, "reason", {halt.reason: 1} if halt else {})
        yield metrics.counter_by("arb_executor_emergency_stops_total", "Trading halts, by reason", mode, "reason",
                                 dict(self.core.safety.stops))
        yield metrics.gauge("arb_executor_active_trades", "Trades open", mode, len(self.core.trades))
        yield metrics.gauge("arb_executor_available_capital_usd", "Capital not reserved by a trade", mode,
                            float(p.available))
        yield metrics.gauge("arb_executor_cumulative_pnl_usd", "PnL of every closed trade", mode,
                            float(p.cumulative_pnl))
        if marked := self.marks:
            yield metrics.gauge("arb_executor_unrealised_pnl_usd", "The open trades' PnL if closed now at the touch",
                                mode, float(marked["unrealised_pnl_usd"]))
            yield metrics.gauge("arb_executor_equity_usd", "Starting capital + closed PnL + unrealised PnL", mode,
                                float(marked["equity_usd"]))
        tally = self.core.tally.counts
        for name, doc in (("trades_executed", "Signals taken: trades begun"),
                          ("trades_successful", "Entries that filled both legs without a leg-out"),
                          ("trades_failed", "Entries that did not fill both legs (refused, timed out, leg-out)"),
                          ("orders_placed", "Orders sent (written first as facts)"),
                          ("timeouts", "Entries whose harder leg was unfilled at the leg timeout"),
                          ("cancellations", "Orders closed by a cancel"),
                          ("partial_fills", "Orders cancelled after a partial fill"),
                          ("order_rejections", "Orders the venue refused")):
            yield metrics.counter(f"arb_executor_{name}_total", doc, mode, tally[name])
        yield metrics.gauge("arb_executor_open_exposure_usd", "Capital reserved by open trades", mode,
                            float(p.open_exposure))
        yield metrics.gauge("arb_executor_starting_capital_usd", "STARTING_CAPITAL", mode, float(p.starting_capital))
        yield self.core.tally.hedge.family("arb_executor_hedge_seconds", "Leg-out to the trade standing hedged",
                                           mode)
        yield self.end_to_end.family("arb_executor_end_to_end_seconds",
                                     "The exchange's stamp on the event that decided a signal to the venue's first "
                                     "answer to its trade's first order (venue clock vs ours)", mode)
        yield self.venue_latency.family("arb_executor_order_ack_seconds",
                                        "Order sent to the venue's first answer (ack, fill or refusal)", mode)
        if self.settings.redis_cluster:
            yield metrics.counter("arb_executor_unreplicated_facts_total", "Facts acted on before REDIS_WAIT_REPLICAS "
                                  "replicas held them (no replica attached, or none answered in time)", mode,
                                  self.counts["unreplicated_facts"])
            yield self.replication_wait.family("arb_executor_fact_replication_seconds",
                                               "Facts written to WAIT answered by REDIS_WAIT_REPLICAS replicas", mode)
        if isinstance(self.execution, LiveExecution):
            yield metrics.counter_by("arb_executor_bad_venue_rows_total",
                                     "Malformed rows from the venue, skipped, by kind", mode, "kind",
                                     {f"{name}:{kind}": n for name, v in self.execution.venues.items()
                                      for kind, n in v.bad_rows.items()})
        yield metrics.gauge("arb_executor_unwritten_facts", "Facts held while Redis is unavailable", mode,
                            len(self._unwritten))
        for name, doc in TRACE.items():
            yield self.trace[name].family(f"arb_trace_{name}_seconds", doc, mode)
        yield self.order_latency.family("arb_executor_signal_to_order_seconds",
                                        "Signal created by the strategy to its first order sent", mode)
        yield self.read_to_order.family("arb_executor_read_to_order_seconds",
                                        "Signal read by the executor to its first order sent", mode)
