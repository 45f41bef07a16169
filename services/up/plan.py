"""What `arb up` runs in a mode (pure): the refusals of a bad configuration, and the workers in
the order they start. The executor comes up before the strategy, so that no signal waits for it."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.settings import Settings

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


def refusals(s: Settings, mode: str, confirm_mainnet: bool) -> list[str]:
    """Why `mode` may not run with these settings (empty: it may)."""
    if mode not in MODES:
        return [f"--mode: {mode!r} is not one of: {', '.join(MODES)}"]
    out = []
    if mode == "synthetic" and s.venue_env == "mainnet":
        out.append("synthetic mode trades made-up opportunities; on VENUE_ENV=mainnet that spends real money "
                   "on them. Use VENUE_ENV=sim, demo or testnet, or --mode live")
    if mode in ("synthetic", "live") and s.bybit_credentials() is None:
        keys = "BYBIT_DEMO_API_KEY and BYBIT_DEMO_API_SECRET" if s.venue_env == "demo" else \
            "BYBIT_API_KEY and BYBIT_API_SECRET"
        out.append(f"{mode} mode places orders at Bybit on VENUE_ENV={s.venue_env}: set {keys}")
    if mode == "live":
        if s.venue_env == "mainnet" and not confirm_mainnet:
            out.append("live mode on VENUE_ENV=mainnet trades real money: add --confirm-mainnet")
        missing = [name for name, value in (("MAX_DAILY_LOSS", s.max_daily_loss),
                                            ("POSITION_SIZE_LIMIT", s.position_size_limit)) if value is None]
        if missing:
            out.append(f"live mode needs the safety limits set: {', '.join(missing)} (USD), e.g. "
                       f"MAX_DAILY_LOSS=50 POSITION_SIZE_LIMIT=10 (deployment guide, phase 3)")
    return out


def plan(s: Settings, mode: str, venues: list[str], cpus: list[int], metrics_port: int,
         free=lambda port: True, confirm_mainnet: bool = False) -> Plan:
    """The workers of `mode`, in the order they start: the market data and the latency monitor,
    then the executor (ready once it has replayed its facts and reconciled with the venue), then
    the strategy. Synthetic and live trade SYMBOLS_TO_TRADE on Bybit alone (both legs there);
    cross reads `venues` and trades on paper."""
    single = mode in ("synthetic", "live")
    p = Plan(mode=mode, execution="live" if single else "paper", strategy_mode="synthetic" if single else "cross",
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
    add("strategy", ["strategy", "--mode", p.strategy_mode], "strategy")
    for w in p.workers:
        w.argv += ["--metrics-port", str(w.metrics_port)] + (["--cpu", str(w.cpu)] if w.cpu is not None else [])
    return p
