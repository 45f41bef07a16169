"""`arb strategy`: md:* streams -> the strategy core -> signals and rankings in Redis.

It reads the market-data streams with the consumer group `strategy` (with `--shard K/N`, shard
K's only, while it holds that shard's lease: lease.py), hands each event to the
core, writes the signals it decides (XADD `strategy:signals`, never trimmed here: the
executor owns what it has not read), then acks what it read, in the same round trip as the
next read. Once a second it reads every
venue's latency verdict (`strategy:latency:{venue}`, written by `arb latency`; missing or
older than 5 s counts as stale), scans, writes the top 20 to `strategy:opportunities:{ms}`
(a list of JSON objects, 60 s TTL; `strategy:opportunities:latest` names the newest) and
logs the top 20, one line each, when the ranking changes and at least once a minute. A shard's
worker writes its own ranking to `strategy:shard:{K}:opportunities` (same TTL) and the top 20
of every shard's into those keys. Redis
being down pauses it; nothing read is acked unhandled.

It also reads the executor's facts (`strategy:events`, from when it starts): a pair whose
signal became a trade gets no new signal until the trade closes, and a pair whose signal was
turned down may be signalled again (after the cooldown).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from dataclasses import asdict

from redis.exceptions import RedisError

from services.strategy.core import StrategyCore, SyntheticConfig
from services.strategy.lease import Lease
from services.strategy.scanner import Opportunity, ScanConfig, ScanResult, merge_top, top_text
from services.strategy.signals import Signal, SignalGate, pair_of
from shared import metrics, redis_io
from shared.bus import ConsumerGroup, Entry, consumer_group
from shared.codec import CodecError, from_fields, plain_text
from shared.metrics import LatencyHistogram
from shared.resp import RedisReplyError, RespConnection, pack_command, pack_with_fields
from shared.settings import Settings
from shared.shards import Shard

log = logging.getLogger("arb.strategy")
GROUP = "strategy"
OPPORTUNITIES_TTL_S = 60
LATENCY_FRESH_MS = 5_000


def _id_ms(entry_id: str) -> int:
    return int(entry_id.partition("-")[0])


def opportunity_fields(o: Opportunity) -> dict[str, str]:
    """Flat text fields, numbers as plain decimals (0.00005, never 5e-05), as redis-cli shows them."""
    out = {k: plain_text(v) for k, v in asdict(o).items() if k != "scores"}
    out.update({f"score_{k}": plain_text(round(v, 4)) for k, v in o.scores.items()})
    return out


def scan_config(s: Settings) -> ScanConfig:
    return ScanConfig(position_usd=float(s.estimated_position_size), depth_bps=s.strategy_depth_bps,
                      scorer=s.strategy_scorer, min_spread_bps=s.minimum_spread_bps)


class StrategyService:
    def __init__(self, settings: Settings, mode: str = "cross", consumer: str = "strategy-1",
                 shard: Shard | None = None) -> None:
        s = self.settings = settings
        if shard is not None and shard.count != s.md_shards:
            raise ValueError(f"shard {shard}: the ingestors write MD_SHARDS={s.md_shards} shards; set MD_SHARDS="
                             f"{shard.count} for every service, or name a shard of {s.md_shards}")
        self.shard = shard
        symbols = [x for x in s.symbols_to_trade if shard is None or shard.owns(x)]
        synthetic = SyntheticConfig(s.synthetic_venue, s.synthetic_spread_bps, s.synthetic_funding_delta)
        self.core = StrategyCore(
            mode, scan_config(s),
            SignalGate(int(s.signal_cooldown_s * 1000), int(s.signal_pending_ttl_s * 1000)),
            symbols=symbols if mode == "synthetic" else None, synthetic=synthetic,
            max_event_age_ms=s.strategy_max_event_age_ms)
        p = s.redis_key_prefix
        self.events_stream = p + s.stream_events  # the executor's facts: which pairs have a trade open
        md = s.md_streams(shard.index).values() if shard is not None else s.all_md_streams()
        self.streams = [*md, self.events_stream]
        self.lease: Lease | None = None  # with a shard: held while this worker decides for it
        self._pairs: dict[str, tuple[str, str, str]] = {}  # trade id -> its signal's pair
        self.signal_stream = p + s.stream_signals
        self.prefix = p
        self.consumer = consumer  # stable, so a restart re-reads what it had not acked
        self.queue_latency = LatencyHistogram()  # XADD (stream id) -> consumed
        self.decision_latency = LatencyHistogram()  # consumed -> decided
        self.receipt_latency = LatencyHistogram()  # the ingestor's receipt (receive_ts_us) -> decided
        self.rejections: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()  # consumed, bad_entries, signals, scans, opportunities
        self.last_scan: ScanResult | None = None
        self._top: list[tuple] = []  # the ranking last logged, and when: again on a change or a minute on
        self._top_logged_ms = 0
        self._acks: dict[str, list[str]] = {}  # handled, to ack with the next read
        self.halted = False  # the executor halted trading (a safety stop or arb stop --emergency)
        self.lag: dict[str, int] = {}  # md stream -> entries not yet read by the group
        # signal id -> the event that decided it: its exchange stamp, its entry (identity; the stamp
        # is not one: every frame of a venue's update can carry the same ms), when the ingestor
        # received its frame and when this service took it up (wall-clock us: the traced path)
        self._source: dict[str, tuple[int, str, str, int, int]] = {}
        self._next_claim = 0.0  # monotonic time of the next takeover round

    async def run(self, stop: asyncio.Event) -> None:
        # decode_responses: hiredis turns the entries' bytes into text in C, cheaper than per field here
        client = redis_io.client(self.settings, socket_timeout=5, socket_connect_timeout=5, decode_responses=True)
        # the hot paths talk over lean connections (shared/resp.py): reads, signal writes, the scan
        writes, scans = (redis_io.lean(self.settings, "utf-8") for _ in range(2))
        group = consumer_group(client, GROUP, self.consumer, self.streams,
                               fast_factory=lambda: redis_io.lean(self.settings, "utf-8"),
                               cluster=self.settings.redis_cluster)
        if self.shard is not None:
            self.lease = Lease(client, self.prefix, self.shard, self.consumer, self.settings.strategy_claim_idle_ms)
        log.info("strategy (%s, %s scorer%s) reading %s as %s/%s; signals to %s", self.core.mode,
                 self.settings.strategy_scorer, f", shard {self.shard}" if self.shard else "",
                 ",".join(self.streams), GROUP, self.consumer, self.signal_stream)
        scanner = asyncio.ensure_future(self._scan_loop(scans, stop))
        keeper: asyncio.Future | None = None
        try:
            down_since = None
            while not stop.is_set():
                try:
                    if self.lease is not None and not self.lease.token:
                        if not await self.lease.wait_take(stop):
                            break
                        log.info("shard %s: lease taken, fencing token %d", self.shard, self.lease.token)
                        keeper = asyncio.ensure_future(self.lease.keep(stop))
                    await group.ensure()
                    if down_since is not None:
                        log.info("redis is back after %.0f s", time.monotonic() - down_since)
                        down_since = None
                    while not stop.is_set() and (self.lease is None or self.lease.token):
                        await self._step(writes, group)
                except (RedisError, OSError) as exc:
                    self.counts["redis_errors"] += 1
                    if down_since is None or self.counts["redis_errors"] % 30 == 0:  # first, then every ~30 s
                        log.warning("redis unavailable: %s; retrying every second", exc)
                    down_since = down_since or time.monotonic()
                    await _sleep_or_stop(stop, 1.0)
        finally:
            for task in (scanner, keeper):
                if task is not None:
                    task.cancel()
            await asyncio.gather(*(t for t in (scanner, keeper) if t is not None), return_exceptions=True)
            if self._acks:  # what was handled last
                with contextlib.suppress(RedisError, OSError):
                    for stream, ids in self._acks.items():
                        await group.ack(stream, ids)
            if self.lease is not None:
                await self.lease.release()
            await group.close()
            await client.aclose()
            for conn in (writes, scans):
                await conn.close()
        log.info("strategy stopped: %s", dict(self.counts))

    async def _step(self, writes: RespConnection, group: ConsumerGroup) -> None:
        """Read (acking what the last step handled in the same round trip), decide, write."""
        acks, self._acks = self._acks, {}
        entries = await group.read(count=1000, block_ms=200, acks=acks)
        if time.monotonic() >= self._next_claim:
            entries += await self._take_over(group)
        if not entries:
            return
        signals = self.handle(entries)
        if signals:
            _check(await writes.execute(b"".join(pack_with_fields(("XADD", self.signal_stream, "*"),
                                                                  self.signal_fields(s)) for s in signals),
                                        len(signals)))
            for signal in signals:
                o = signal.opportunity
                log.info("signal %s: long %s @ %s, short %s @ %s, spread %.1f bps, confidence %d, "
                         "profit after slippage $%.2f", signal.id, o.long_venue, o.long_price, o.short_venue,
                         o.short_price, o.spread_bps, o.confidence, o.projected_profit_after_slippage_usd)
        for entry in entries:  # handled and its signals written: acked with the next read
            self._acks.setdefault(entry.stream, []).append(entry.id)

    async def _take_over(self, group: ConsumerGroup) -> list[Entry]:
        """Entries another consumer of the group read and left unacked for STRATEGY_CLAIM_IDLE_MS
        (it died): now this one's, handled like the rest. Being that old they update the market
        state and decide nothing (STRATEGY_MAX_EVENT_AGE_MS). IDs trimmed before anyone acked
        them are counted as `claim_deleted`."""
        idle = self.settings.strategy_claim_idle_ms
        self._next_claim = time.monotonic() + idle / 4000
        taken: list[Entry] = []
        for stream in self.streams:
            claimed, deleted = await group.reclaim(stream, idle, count=1000)
            taken += claimed
            self.counts["claim_deleted"] += len(deleted)
        if taken:
            self.counts["claimed"] += len(taken)
            log.warning("took over %d entries another strategy consumer left unacked for %d ms", len(taken), idle)
        return taken

    def handle(self, entries: list[Entry]) -> list[Signal]:
        """Feed entries to the core; the signals it decided."""
        core, signals = self.core, []
        for entry in entries:
            if entry.stream == self.events_stream:
                self._executor_fact(entry.fields)
                continue
            consumed_ns, wall_ns = time.perf_counter_ns(), time.time_ns()
            now_ms = wall_ns // 1_000_000
            self.counts["consumed"] += 1
            self.queue_latency.observe_ns(max(0, now_ms - _id_ms(entry.id)) * 1_000_000)
            try:
                event = from_fields(entry.fields)
            except CodecError as exc:
                self.counts["bad_entries"] += 1
                if self.counts["bad_entries"] == 1:
                    log.warning("skipped %s %s: %s (further ones are counted)", entry.stream, entry.id, exc)
                continue
            for signal in core.on_event(event, now_ms):
                self._source[signal.id] = (event.exchange_ts_ms, entry.stream, entry.id, event.receive_ts_us,
                                           wall_ns // 1000)
                signals.append(signal)
            self.decision_latency.observe_ns(time.perf_counter_ns() - consumed_ns)
            self.receipt_latency.observe_ns(max(0, time.time_ns() - event.receive_ts_us * 1000))
        if self.halted and signals:
            self.core.held["trading_halted"] += len(signals)
            for signal in signals:
                del self._source[signal.id]
            return []
        self.counts["signals"] += len(signals)
        return signals

    def _executor_fact(self, fields: dict[str, str]) -> None:
        """A trade opened holds its pair until it closes; a signal the executor turned down
        frees its pair at once (the cooldown still applies); while trading is halted, no signal
        is written."""
        kind = fields.get("type")
        gate = self.core.gate
        if kind == "signal_taken":
            pair = (fields["symbol"], fields["signal_long_venue"], fields["signal_short_venue"])
            self._pairs[fields["trade_id"]] = pair
            gate.trade_opened(pair)
        elif kind == "trade_closed" and fields.get("trade_id") in self._pairs:
            gate.trade_closed(self._pairs.pop(fields["trade_id"]))
        elif kind in ("trading_halted", "trading_resumed"):
            self.halted = kind == "trading_halted"
        elif kind == "signal_rejected" and (pair := pair_of(fields.get("signal_id", ""))) is not None:
            gate.pending.pop(pair, None)

    def signal_fields(self, signal: Signal) -> dict[str, str]:
        """The signal as written; `source_stream` and `source_entry_id` name the market-data entry
        that decided it (unique, unlike its exchange stamp), `source_receive_us` when the ingestor
        received the venue frame it came in and `source_read_us` when this service took it up:
        with `created_us` and the executor's own times, one frame's path to the order it caused."""
        exchange_ms, stream, entry_id, receive_us, read_us = self._source.pop(signal.id, (0, "", "", 0, 0))
        source = {"source_stream": stream, "source_entry_id": entry_id, "source_receive_us": str(receive_us),
                  "source_read_us": str(read_us)} if entry_id else {}
        fence = {"shard": str(self.shard), "fence": str(self.lease.token)} if self.lease is not None else {}
        return {"id": signal.id, "mode": self.core.mode, "created_ms": str(signal.created_ms), **fence,
                "created_us": str(time.time_ns() // 1000),
                **({"source_exchange_ts_ms": str(exchange_ms)} if exchange_ms else {}), **source,
                "position_usd": plain_text(self.core.config.position_usd), **opportunity_fields(signal.opportunity)}

    async def _scan_loop(self, conn: RespConnection, stop: asyncio.Event) -> None:
        every, failing = self.settings.strategy_scan_interval_s, False
        while not stop.is_set():
            await _sleep_or_stop(stop, every)
            try:
                await self.scan_once(conn)
                failing = False
            except (RedisError, OSError) as exc:
                self.counts["redis_errors"] += 1
                if not failing:  # once per outage; the read loop reports it too
                    log.warning("scan could not reach redis: %s", exc)
                failing = True

    async def read_lag(self, conn: RespConnection) -> None:
        """How far the group `strategy` is behind on each md:* stream (Redis's own `lag`)."""
        streams = self.streams[:-1]  # not the executor's facts
        replies = _check(await conn.execute(b"".join(pack_command("XINFO", "GROUPS", s) for s in streams),
                                            len(streams)))
        for stream, groups in zip(streams, replies, strict=True):
            for g in groups or []:
                fields = dict(zip(g[::2], g[1::2], strict=False))
                if fields.get("name") == GROUP and fields.get("lag") is not None:
                    self.lag[stream] = int(fields["lag"])

    async def scan_once(self, conn: RespConnection) -> ScanResult | None:
        """Scan, write the ranking (with a shard: the top of every shard's), log it; None on a
        standby, which has no market state to rank."""
        if self.lease is not None and not self.lease.token:
            return None
        await self.read_lag(conn)
        now_ms = time.time_ns() // 1_000_000
        self.core.set_stale(await self.read_stale(conn, now_ms))
        result = self.last_scan = self.core.scan(now_ms)
        self.rejections.update(result.rejections)
        self.counts["scans"] += 1
        self.counts["opportunities"] += len(result.opportunities)
        ranking = [opportunity_fields(o) for o in result.opportunities]
        if self.shard is not None:
            ranking = await self._merge(conn, ranking)
        if ranking:
            key, ttl = f"{self.prefix}strategy:opportunities:{now_ms}", str(OPPORTUNITIES_TTL_S)
            _check(await conn.execute(
                pack_command("RPUSH", key, *(json.dumps(o) for o in ranking))
                + pack_command("EXPIRE", key, ttl)
                + pack_command("SET", f"{self.prefix}strategy:opportunities:latest", key, "EX", ttl), 3))
        top = [(o.symbol, o.long_venue, o.short_venue) for o in result.opportunities]
        if top != self._top or now_ms - self._top_logged_ms >= OPPORTUNITIES_TTL_S * 1000:
            self._top, self._top_logged_ms = top, now_ms
            log.info("%s", top_text(result))
        return result

    async def _merge(self, conn: RespConnection, own: list[dict[str, str]]) -> list[dict[str, str]]:
        """This shard's ranking written to its key (an empty one too: it replaces an older), and
        the top 20 of every shard's that has one."""
        keys = [f"{self.prefix}strategy:shard:{{{k}}}:opportunities" for k in range(self.shard.count)]
        replies = _check(await conn.execute(
            pack_command("SET", keys[self.shard.index], json.dumps(own), "EX", str(OPPORTUNITIES_TTL_S))
            + b"".join(pack_command("GET", key) for key in keys), 1 + len(keys)))
        return merge_top([json.loads(r) for r in replies[1:] if r is not None], self.core.config.top_n)

    async def read_stale(self, conn: RespConnection, now_ms: int) -> dict[str, bool]:
        venues = sorted({v for venues in self.core.state.by_symbol.values() for v in venues})
        if self.core.mode == "synthetic" or not venues:
            return {}
        replies = _check(await conn.execute(b"".join(
            pack_command("HMGET", f"{self.prefix}strategy:latency:{v}", "is_stale", "local_time_ms")
            for v in venues), len(venues)))
        stale = {}
        for venue, (flag, at) in zip(venues, replies, strict=True):
            fresh = at is not None and now_ms - int(at) <= LATENCY_FRESH_MS
            stale[venue] = not (fresh and flag == "0")
        return stale

    def register_metrics(self, registry) -> None:
        registry.register(metrics.CallbackCollector(self._families))

    def _families(self):
        mode = {"mode": self.core.mode}
        c = self.counts
        yield metrics.counter("arb_strategy_events_total", "Market events consumed", mode, c["consumed"])
        yield metrics.counter("arb_strategy_bad_entries_total", "Stream entries that were not events", mode,
                              c["bad_entries"])
        yield metrics.counter("arb_strategy_signals_total", "Signals written", mode, c["signals"])
        yield metrics.counter("arb_strategy_claimed_total", "Entries taken over from a consumer that left them unacked",
                              mode, c["claimed"])
        yield metrics.counter("arb_strategy_claim_deleted_total", "Entries trimmed before any consumer acked them "
                              "(XAUTOCLAIM's deleted IDs)", mode, c["claim_deleted"])
        yield metrics.counter("arb_strategy_scans_total", "Scans of every symbol and pair", mode, c["scans"])
        yield metrics.counter_by("arb_strategy_rejections_total", "Pairs rejected by a scan, by first reason", mode,
                                 "reason", dict(self.rejections))
        yield metrics.counter_by("arb_strategy_held_total", "Opportunities not signalled, by why", mode, "why",
                                 dict(self.core.held))
        yield metrics.gauge_by("arb_stream_lag_entries", "Entries added to a stream that the group has not read",
                               {"group": GROUP}, "stream", self.lag)
        if self.lease is not None:
            yield metrics.gauge("arb_strategy_shard_lease", "This worker's fencing token on its shard while it holds "
                                "the shard's lease; 0 on a standby", {**mode, "shard": str(self.shard)},
                                self.lease.token)
        yield metrics.gauge("arb_strategy_opportunities", "Opportunities in the latest scan", mode,
                            len(self.last_scan.opportunities) if self.last_scan else 0)
        yield self.queue_latency.family("arb_strategy_queue_seconds", "XADD to consumed by the strategy", mode)
        yield self.decision_latency.family("arb_strategy_decision_seconds", "Consumed to decided, per event", mode)
        yield self.receipt_latency.family("arb_strategy_receipt_to_decision_seconds",
                                          "Venue frame received by the ingestor to decided, per event", mode)


def _check(replies: list) -> list:
    """Redis's replies, raising the first error one as RedisError."""
    for reply in replies:
        if isinstance(reply, RedisReplyError):
            raise RedisError(str(reply))
    return replies


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
