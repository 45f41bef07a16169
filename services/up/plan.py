"""What `arb up` runs in a mode (pure): the refusals of a bad configuration, and the workers in
the order they start. The executor comes up before the strategy, so that no signal waits for it."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.settings import Settings
from shared.venues import TITLES, TRADING

MODES = ("synthetic", "cross", "live")
PINNED = ("strategy", "executor")  # the latency-critical workers, each on a CPU of its own


@dataclass
class Worker:
    name: str
    argv: list[str]
    cpu: int | None = None
    metrics_port: int | None = None
    health: str | None = None  # its health key's service name (None: checked another way)
    proc: object | None = None  # its asyncio.subprocess.Process once started


@dataclass
class Plan:
    mode: str
    execution: str
    strategy_mode: str
    venues: list[str]
    workers: list[Worker] = field(default_factory=list)


def missing_keys(s: Settings, venues: list[str]) -> list[str]:
    """What live trading at `venues` on VENUE_ENV lacks: each venue's API keys, named."""
    return [f"orders at {TITLES.get(v, v)} on VENUE_ENV={s.venue_env}: set {s.credential_names(v)}"
            for v in venues if s.trading_credentials(v) is None]


def refusals(s: Settings, mode: str, confirm_mainnet: bool, execution: str | None = None,
             venues: list[str] | None = None) -> list[str]:
    """Why `mode` (with `execution`, cross mode's choice, trading `venues`) may not run with these
    settings (empty: it may)."""
    if mode not in MODES:
        return [f"--mode: {mode!r} is not one of: {', '.join(MODES)}"]
    if execution not in (None, "paper", "live"):
        return [f"--execution: {execution!r} is not one of: paper, live"]
    if mode != "cross" and execution == "paper":
        return [f"--execution paper: {mode} mode places real orders (at the simulator on VENUE_ENV=sim); paper "
                "execution is cross mode's (--mode cross)"]
    live = mode != "cross" or execution == "live"
    out = []
    if mode == "synthetic" and s.venue_env == "mainnet":
        out.append("synthetic mode trades made-up opportunities; on VENUE_ENV=mainnet that spends real money "
                   "on them. Use VENUE_ENV=sim, demo or testnet, or --mode live")
    if mode == "cross" and live:
        if unsupported := [v for v in venues or [] if v not in TRADING]:
            out.append(f"--execution live: no live trading at {', '.join(unsupported)} yet; live trading is at "
                       f"{', '.join(TRADING)} (e.g. --venues bybit,okx)")
        out += [f"{mode} mode places {why}" for why in missing_keys(s, [v for v in venues or [] if v in TRADING])]
    elif live:
        out += [f"{mode} mode places {why}" for why in missing_keys(s, ["bybit"])]
    if live and mode != "synthetic":
        what = "live mode" if mode == "live" else "live execution"
        if s.venue_env == "mainnet" and not confirm_mainnet:
            out.append(f"{what} on VENUE_ENV=mainnet trades real money: add --confirm-mainnet")
        missing = [name for name, value in (("MAX_DAILY_LOSS", s.max_daily_loss),
                                            ("POSITION_SIZE_LIMIT", s.position_size_limit)) if value is None]
        if missing and (mode == "live" or s.venue_env != "sim"):  # cross on the simulator: no money at stake
            out.append(f"{what} needs the safety limits set: {', '.join(missing)} (USD), e.g. "
                       f"MAX_DAILY_LOSS=50 POSITION_SIZE_LIMIT=10 (deployment guide, phase 3)")
    return out


def plan(s: Settings, mode: str, venues: list[str], cpus: list[int], metrics_port: int,
         free=lambda port: True, confirm_mainnet: bool = False, execution: str | None = None) -> Plan:
    """The workers of `mode`, in the order they start: the market data and the latency monitor,
    then the executor (ready once it has replayed its facts and reconciled with the venue), then
    the strategy (with MD_SHARDS, one worker per shard). Synthetic and live trade SYMBOLS_TO_TRADE
    on Bybit alone (both legs there); cross reads `venues` and trades on paper, or with
    `execution="live"` at those venues."""
    single = mode in ("synthetic", "live")
    p = Plan(mode=mode, execution="live" if single else execution or "paper",
             strategy_mode="synthetic" if single else "cross",
             venues=[s.synthetic_venue] if single else venues)
    pins = dict(zip(PINNED, cpus[-2:], strict=False)) if len(cpus) >= 4 else {}
    port = metrics_port

    def add(name: str, argv: list[str], health_name: str | None) -> None:
        nonlocal port
        while not free(port):
            port += 1
        p.workers.append(Worker(name, argv, pins.get(name), port, health_name))
        port += 1

    symbols = ",".join(s.symbols_to_trade)
    for v in p.venues:
        add(f"ingest-{v}", ["ingest", "--venue", v, "--symbols", symbols], f"ingest-{v}")
    add("latency", ["latency", "--venues", ",".join(p.venues)], "latency")
    add("executor", ["executor", "--mode", p.strategy_mode, "--execution", p.execution]
        + (["--confirm-mainnet"] if confirm_mainnet else []), "executor")
    if s.md_shards == 1:
        add("strategy", ["strategy", "--mode", p.strategy_mode], "strategy")
    for k in range(s.md_shards if s.md_shards > 1 else 0):  # one worker per shard, each holding its lease
        add(f"strategy-{k}", ["strategy", "--mode", p.strategy_mode, "--shard", f"{k}/{s.md_shards}"],
            f"strategy-{k}")
    for w in p.workers:
        w.argv += ["--metrics-port", str(w.metrics_port)] + (["--cpu", str(w.cpu)] if w.cpu is not None else [])
    return p
