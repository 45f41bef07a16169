"""One typed settings object for every service, read from env vars and `.env`.

Env names are the specification's own (`SYNTHETIC_SPREAD_BPS`, `SYMBOLS_TO_TRADE`,
`BYBIT_DEMO_API_KEY`, ...), without a prefix. `load_settings` validates at start and turns a
bad value into a `ConfigError` whose lines name the variable, the value and what is allowed;
secrets are `SecretStr`, so they never appear in a repr, a log line or an error.
"""

from __future__ import annotations

import os
import re
from decimal import Decimal
from typing import Annotated, Any, Literal, NamedTuple

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.shards import MAX_SHARDS, shard_of, tagged

VenueEnv = Literal["mainnet", "testnet", "demo", "sim"]
Environment = Literal["development", "staging", "production"]

# The deployment guide's environments, as defaults that explicit settings override. Its
# development size ($10) buys no lot of BTC, ETH or SOL at Bybit, so development (the
# simulator's money) has no cap; staging (demo) and production (mainnet) keep the guide's.
ENVIRONMENTS: dict[str, dict[str, Any]] = {
    "development": {"venue_env": "sim", "position_size_limit": None},
    "staging": {"venue_env": "demo", "position_size_limit": Decimal(50)},
    "production": {"venue_env": "mainnet", "position_size_limit": Decimal(100)},
}

_SYMBOL = re.compile(r"^[A-Z0-9]{2,40}$")
UNIVERSE = "ALL"  # SYMBOLS_TO_TRADE=all

_STOP_RULES = ("the stop rules, which are always on: MAX_DAILY_LOSS, MAX_WEEKLY_LOSS, MAX_MONTHLY_LOSS, "
               "SAFETY_MAX_FAILURES, SAFETY_MIN_SUCCESS_RATE, SAFETY_MAX_P99_MS, SAFETY_MAX_API_ERRORS "
               "(0 turns one off)")
# Names the seeds and the deployment guide give to settings this system spells otherwise (or
# has no use for yet). Given at start, each is refused with what to set instead, so a value
# under the guide's name is never ignored in silence.
REPLACED: dict[str, str] = {
    "POSITION_SIZE": "ESTIMATED_POSITION_SIZE (USD per trade; POSITION_SIZE_LIMIT caps it)",
    "BYBIT_API_URL": "VENUE_ENV (demo, testnet or mainnet), or BYBIT_REST_URL for another host",
    "ENABLE_DEBUG_LOGGING": "LOG_LEVEL=DEBUG",
    "RUST_LOG": "LOG_LEVEL (DEBUG, INFO, WARNING or ERROR)",
    "ENABLE_EMERGENCY_STOP": _STOP_RULES,
    "ENABLE_ALL_SAFETY_FEATURES": _STOP_RULES,
}


class ConfigError(Exception):
    """A setting is missing or invalid; `str()` is one line per bad variable."""


class TradingEndpoints(NamedTuple):
    """A venue's trading hosts in a venue environment (market data: `venue_hosts`)."""

    rest: str
    ws_private: str  # Binance's is the stream host: the client adds /private/ws?listenKey=...


# Each trading venue's hosts per venue environment (shared/docs/protocol-bybit-v5.md section 1;
# protocol-trading-okx-bitget-binance.md sections 2.1, 3.1, 4.1). Bybit's demo has no public
# stream (its market data is mainnet's); OKX's and Bitget's demo is the live REST host with a
# demo header and a private stream of its own; Binance's demo has hosts of its own (its
# user-data stream host is UNSURE: demo-fstream.binance.com, which clients use, is the default).
# Only Bybit has a testnet apart from its demo: at the others testnet is their demo.
TRADING_HOSTS: dict[str, dict[str, TradingEndpoints]] = {
    "bybit": {
        "mainnet": TradingEndpoints("https://api.bybit.com", "wss://stream.bybit.com/v5/private"),
        "testnet": TradingEndpoints("https://api-testnet.bybit.com", "wss://stream-testnet.bybit.com/v5/private"),
        "demo": TradingEndpoints("https://api-demo.bybit.com", "wss://stream-demo.bybit.com/v5/private"),
    },
    "okx": {
        "mainnet": TradingEndpoints("https://www.okx.com", "wss://ws.okx.com:8443/ws/v5/private"),
        "demo": TradingEndpoints("https://www.okx.com", "wss://wspap.okx.com:8443/ws/v5/private"),
    },
    "bitget": {
        "mainnet": TradingEndpoints("https://api.bitget.com", "wss://ws.bitget.com/v2/ws/private"),
        "demo": TradingEndpoints("https://api.bitget.com", "wss://wspap.bitget.com/v2/ws/private"),
    },
    "binance": {
        "mainnet": TradingEndpoints("https://fapi.binance.com", "wss://fstream.binance.com"),
        "demo": TradingEndpoints("https://demo-fapi.binance.com", "wss://demo-fstream.binance.com"),
    },
}
# the simulator's private stream path per venue (all on SIM_HOST:SIM_PORT)
_SIM_PRIVATE_PATH = {"bybit": "/v5/private", "okx": "/ws/v5/private", "bitget": "/v2/ws/private", "binance": ""}
# what each venue's key is made of, after the key itself: OKX and Bitget sign with a passphrase too
CREDENTIAL_PARTS = {"bybit": ("secret",), "okx": ("secret", "passphrase"), "bitget": ("secret", "passphrase"),
                    "binance": ("secret",)}
_HOST = re.compile(r"^[A-Za-z0-9.-]+:\d{1,5}$")
_URL = {"http": re.compile(r"^https?://[^/\s]+$"), "ws": re.compile(r"^wss?://[^/\s]+$")}


class Settings(BaseSettings):
    """Everything configurable, with the defaults a first run on one machine needs."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", validate_default=True
    )

    # --- environment (deployment guide: development, staging, production) -------------
    environment: Environment = Field(
        "development", description="presets VENUE_ENV and POSITION_SIZE_LIMIT (see ENVIRONMENTS); "
        "explicit settings win")

    # --- venue environment -------------------------------------------------------------
    venue_env: VenueEnv = Field("sim", description="endpoint set: mainnet, testnet, demo or sim")
    sim_host: str = "127.0.0.1"
    sim_port: int = Field(8790, ge=1, le=65535)
    sim_step_ms: int = Field(20, ge=1, le=10_000, description="arb sim: how often the market moves and every "
                             "subscribed topic is pushed (5: four times the default message rate)")
    venue_hosts: Annotated[dict[str, tuple[str, str]], NoDecode] = Field(
        default_factory=dict,
        description="per venue market-data hosts instead of VENUE_ENV's: "
        "okx=127.0.0.1:9000 or okx=https://www.okx.com|wss://ws.okx.com:8443, comma-separated")
    bybit_rest_url: str | None = Field(None, description="overrides Bybit's trading REST host of VENUE_ENV")
    bybit_ws_private_url: str | None = None
    okx_rest_url: str | None = Field(None, description="overrides OKX's trading REST host (www.okx.com; some "
                                     "regions need eea.okx.com, us.okx.com or openapi.okx.com)")
    okx_ws_private_url: str | None = None
    bitget_rest_url: str | None = Field(None, description="overrides Bitget's trading REST host (api.bitget.com)")
    bitget_ws_private_url: str | None = None
    bitget_demo_product_type: Literal["auto", "USDT-FUTURES", "SUSDT-FUTURES"] = Field(
        "auto", description="Bitget demo's contracts: USDT-FUTURES with plain symbols (BTCUSDT), or the older "
        "SUSDT-FUTURES with S-prefixed ones (SBTCSUSDT); auto asks Bitget at start which it lists")
    binance_rest_url: str | None = Field(None, description="overrides Binance USD-M's trading REST host "
                                         "(fapi.binance.com; demo: demo-fapi.binance.com)")
    binance_ws_private_url: str | None = Field(None, description="overrides Binance's user-data stream host "
                                               "(fstream.binance.com; demo: demo-fstream.binance.com, or "
                                               "fstream.binancefuture.com as Binance's docs print it)")
    binance_spot_url: str | None = Field(None, description="where Binance's key permissions are read "
                                         "(/sapi/v1/account/apiRestrictions): https://api.binance.com on mainnet; "
                                         "the demo has none, so its key's withdraw and IP settings are not checked")
    binance_recv_window_ms: int = Field(5000, ge=1, le=60_000, description="Binance's recvWindow: how late a "
                                        "signed request may arrive")

    # --- credentials (never printed) ---------------------------------------------------
    bybit_demo_api_key: SecretStr | None = None
    bybit_demo_api_secret: SecretStr | None = None
    bybit_api_key: SecretStr | None = None
    bybit_api_secret: SecretStr | None = None
    allow_unsafe_api_key: bool = Field(False, description="trade with a key that may move funds or is bound to "
                                       "no IP (refused otherwise)")
    sim_api_key: str = Field("sim-api-key", description="the key the simulator accepts")
    sim_api_secret: SecretStr = SecretStr("sim-api-secret")
    sim_api_passphrase: SecretStr = SecretStr("sim-passphrase")
    okx_demo_api_key: SecretStr | None = None
    okx_demo_api_secret: SecretStr | None = None
    okx_demo_api_passphrase: SecretStr | None = None
    okx_api_key: SecretStr | None = None
    okx_api_secret: SecretStr | None = None
    okx_api_passphrase: SecretStr | None = None
    bitget_demo_api_key: SecretStr | None = None
    bitget_demo_api_secret: SecretStr | None = None
    bitget_demo_api_passphrase: SecretStr | None = None
    bitget_api_key: SecretStr | None = None
    bitget_api_secret: SecretStr | None = None
    bitget_api_passphrase: SecretStr | None = None
    binance_demo_api_key: SecretStr | None = None
    binance_demo_api_secret: SecretStr | None = None
    binance_api_key: SecretStr | None = None
    binance_api_secret: SecretStr | None = None

    # --- synthetic test mode (seeds/synthetic-test-mode-tasks.md task 1) ---------------
    # The seed's 15 bps / 0.0001 can never qualify (services/strategy/synthetic.py shows why);
    # these are the smallest round values whose opportunities do.
    synthetic_spread_bps: float = Field(50.0, gt=0, le=10_000)
    synthetic_funding_delta: float = Field(0.01, gt=0, lt=1)
    estimated_position_size: Decimal = Field(
        Decimal(1000), gt=0, description="USD per trade: the size the executor trades (paper, live and "
        "backtest) within the seed's limits and MAX_TRADE_RISK, and the size the strategy prices opportunities at")
    max_concurrent_trades: int = Field(3, ge=1, le=1000)
    symbols_to_trade: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["BTCUSDT", "ETHUSDT", "SOLUSDT"],
        description="comma-separated symbols, or all: every USDT perpetual listed on two or more UNIVERSE_VENUES")
    universe_venues: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="with SYMBOLS_TO_TRADE=all: the venues whose listings make the universe "
        "(a symbol on two or more of them is in it); empty: EXECUTOR_VENUES")
    universe_refresh_s: float = Field(300.0, gt=0, description="how often the venues' instruments lists are read "
                                      "again: a listed symbol is picked up, a delisted one dropped (and its trade "
                                      "closed)")
    sim_universe: int = Field(300, ge=1, le=5000, description="arb sim with SYMBOLS_TO_TRADE=all: made-up "
                              "perpetuals SIM0USDT ... it serves beside BTC, ETH, SOL and DOGE")

    # --- Redis and streams -------------------------------------------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_cluster: bool = Field(False, description="REDIS_URL names a node of a Redis Cluster: every service "
                                "routes by slot (arb up --redis-cluster sets it)")
    redis_wait_replicas: int = Field(1, ge=0, le=5, description="on a Redis Cluster: replicas that must hold the "
                                     "executor's facts (WAIT) before it acts on them (0: none)")
    redis_wait_timeout_ms: int = Field(1000, ge=10, le=4_000, description="on a Redis Cluster: how long the "
                                       "executor waits for those replicas before it goes on, counting the facts "
                                       "as unreplicated")
    redis_key_prefix: str = Field("", description="namespace for every key and stream written")
    stream_tickers: str = "md:tickers"
    stream_books: str = "md:books"
    stream_trades: str = "md:trades"
    stream_liquidations: str = "md:liquidations"
    md_stream_maxlen: int = Field(100_000, ge=100, description="approximate cap per md:* stream")
    md_shards: int = Field(1, ge=1, le=MAX_SHARDS, description="market-data shards: each symbol's events go to its "
                           "shard's streams (md:{K}:tickers ...), read by `arb strategy --shard K/N`")

    # --- ingestor ----------------------------------------------------------------------
    book_levels: int = Field(25, ge=1, le=200, description="levels per side in md:books")
    ingest_batch_max: int = Field(1000, ge=1, le=100_000)
    ingest_buffer_max: int = Field(100_000, ge=1000, description="events held while Redis is down")
    ws_ping_interval_s: float = Field(20.0, gt=0)
    ws_idle_timeout_s: float = Field(30.0, gt=0, description="reconnect after this much silence")
    reconnect_initial_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)

    # --- strategy (seeds/spread-arbitrage-design.md sections 3 and 4) -------------------
    strategy_scorer: Literal["confluence", "dashboard"] = "confluence"
    strategy_depth_bps: float = Field(10.0, gt=0, le=500, description="depth window of the hard constraint")
    minimum_spread_bps: float = Field(5.0, ge=0, le=10_000, description="cross mode: the least spread an "
                                      "opportunity may have, whatever its fees (deployment guide, live: 20)")
    strategy_scan_interval_s: float = Field(1.0, gt=0, le=60)
    strategy_claim_idle_ms: int = Field(10_000, ge=100, le=3_600_000, description="entries another strategy "
                                        "consumer left unacked this long are taken over (XAUTOCLAIM)")
    strategy_max_event_age_ms: int = Field(2_000, ge=1, description="an older market event (the ingestor's "
                                           "receipt) updates the market state but decides no signal")
    signal_cooldown_s: float = Field(60.0, ge=0, description="per symbol, after each signal")
    signal_pending_ttl_s: float = Field(30.0, gt=0, description="a signal no trade answered stops blocking")
    stream_signals: str = "strategy:signals"
    synthetic_venue: str = Field("bybit", description="the venue whose mid synthetic mode uses")

    # --- executor (seeds/spread-arbitrage-design.md sections 5-8) ------------------------
    execution: Literal["paper", "live"] = Field(
        "paper", description="paper: fills modelled from market data; live: orders at Bybit (VENUE_ENV)")
    starting_capital: Decimal = Field(Decimal(20_000), gt=0, description="USD the portfolio starts with")
    stream_events: str = Field("strategy:events", description="every executor fact; never trimmed")
    executor_venues: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["bybit", "binance", "okx"],
        description="venues whose order grids the executor loads (cross mode trades only these)")
    leg_timeout_ms: int = Field(500, ge=50, le=60_000, description="wait for a leg's fill before cancel or hedge")
    order_rate_limit_per_s: int = Field(10, ge=6, le=1000, description="live: the venue's order creates per "
                                        "second (Bybit linear: 10); a signal is taken only with room for both legs "
                                        "and a leg-out's 4 orders")
    limit_slippage_bps: float = Field(5.0, ge=0, le=100, description="how far past the touch a limit may take")
    signal_max_age_ms: int = Field(2_000, ge=1, description="older signals are rejected as stale")
    exit_max_hold_s: float = Field(8 * 3600.0, gt=0, description="exit a trade held this long")
    synthetic_hold_s: float = Field(30.0, gt=0, description="synthetic mode: exit a trade held this long")
    shutdown_timeout_s: float = Field(10.0, gt=0, description="time to close active trades on stop")
    stream_control: str = Field("strategy:control", description="operator commands: arb stop --emergency, "
                                "arb resume")

    # --- safety (deployment guide, phase 3; services/executor/safety.py) ---------------
    max_trade_risk: Decimal = Field(Decimal("0.01"), gt=0, le=1, description="share of the account one trade "
                                    "may lose at its stop loss (deployment guide: never more than 1 %)")
    position_size_limit: Decimal | None = Field(None, gt=0, description="USD one trade may reserve at most")
    max_daily_loss: Decimal | None = Field(None, gt=0, description="USD realised loss per UTC day that "
                                           "stops trading")
    max_weekly_loss: Decimal | None = Field(None, gt=0, description="USD realised loss per UTC week (from Monday) "
                                            "that stops trading")
    max_monthly_loss: Decimal | None = Field(None, gt=0, description="USD realised loss per UTC calendar month "
                                             "that stops trading")
    safety_max_failures: int = Field(3, ge=0, description="failed trades within the window that stop "
                                     "trading (0: off)")
    safety_failure_window_s: float = Field(60.0, gt=0)
    safety_min_success_rate: float = Field(0.90, ge=0, le=1, description="share of entries filling both legs "
                                           "(0: off)")
    safety_success_window: int = Field(20, ge=1, description="entries the success rate is taken over")
    safety_max_p99_ms: float = Field(50.0, ge=0, description="p99 order sent -> the venue's first answer (0: off)")
    safety_latency_samples: int = Field(20, ge=1, le=100, description="orders before the p99 is judged")
    safety_max_api_errors: int = Field(5, ge=0, description="orders refused by a venue within the window "
                                       "(0: off)")
    safety_on_stop: Literal["close", "keep"] = Field(
        "close", description="on a stop: close the open trades at market, or keep them running hedged")

    # --- exchange latency monitor (seeds/spread-arbitrage-design.md section 2) ---------
    latency_poll_ms: int = Field(100, ge=10, le=60_000, description="server-time poll period per venue")
    latency_window_s: float = Field(10.0, gt=0, le=3600, description="rolling average window")
    latency_stale_ms: float = Field(200.0, gt=0, description="a venue is stale above this average latency")

    # --- process -----------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(None, ge=1, le=65535)

    @model_validator(mode="after")
    def _environment_defaults(self) -> Settings:
        for name, value in ENVIRONMENTS[self.environment].items():
            if name not in self.model_fields_set:
                object.__setattr__(self, name, value)
        return self

    @field_validator("symbols_to_trade", mode="before")
    @classmethod
    def _split_symbols(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            value = [str(v).strip().upper() for v in value]
            bad = [v for v in value if not _SYMBOL.match(v)]
            if bad:
                raise ValueError(f"symbols are 2-40 letters or digits like BTCUSDT, not {bad[0]!r}")
            if not value:
                raise ValueError("at least one symbol, e.g. BTCUSDT,ETHUSDT")
            if UNIVERSE in value and len(value) > 1:
                raise ValueError("'all' stands alone: every USDT perpetual listed on two or more of the venues")
            return list(dict.fromkeys(value))
        return value

    @field_validator("redis_key_prefix", "stream_tickers", "stream_books", "stream_trades", "stream_liquidations",
                     "stream_signals", "stream_events", "stream_control")
    @classmethod
    def _no_hash_tag(cls, value: str) -> str:
        if "{" in value or "}" in value:
            raise ValueError("no { or }: Redis reads them as a hash tag, and the market-data streams carry their "
                             "shard's (md:{0}:tickers)")
        return value

    @field_validator("executor_venues", "universe_venues", mode="before")
    @classmethod
    def _split_venues(cls, value: Any, info: ValidationInfo) -> Any:
        from shared.venues import NAMES

        if isinstance(value, str):
            value = [part.strip().lower() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            unknown = [v for v in value if v not in NAMES]
            if unknown:
                raise ValueError(f"unknown venue {unknown[0]!r}; known: {', '.join(NAMES)}")
            if not value and info.field_name == "executor_venues":
                raise ValueError("at least one venue, e.g. bybit,binance,okx")
        return value

    @field_validator("venue_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        hosts = {}
        for part in filter(None, (p.strip() for p in value.split(","))):
            name, sep, where = part.partition("=")
            if not sep or not name.strip():
                raise ValueError(f"{part!r} is not venue=host:port or venue=https://rest|wss://ws")
            where = where.strip()
            if _HOST.match(where):
                hosts[name.strip().lower()] = (f"http://{where}", f"ws://{where}")
                continue
            rest, _, ws = where.partition("|")
            if not (_URL["http"].match(rest) and _URL["ws"].match(ws)):
                raise ValueError(f"{part!r}: give host:port, or an http(s) and a ws(s) base URL without a path "
                                 f"joined by |, like okx=https://www.okx.com|wss://ws.okx.com:8443")
            hosts[name.strip().lower()] = (rest, ws)
        from shared.venues import NAMES

        if unknown := sorted(set(hosts) - set(NAMES)):
            raise ValueError(f"names no venue {unknown[0]!r}; venues: {', '.join(NAMES)}")
        return hosts

    @field_validator("strategy_max_event_age_ms")
    @classmethod
    def _below_claim_idle(cls, value: int, info: Any) -> int:
        idle = info.data.get("strategy_claim_idle_ms")
        if idle is not None and value >= idle:
            raise ValueError(f"must be below STRATEGY_CLAIM_IDLE_MS ({idle}): an entry taken over from a dead "
                             "strategy worker is at least that old, and must be too old to decide a signal that "
                             "worker may have decided already")
        return value

    @field_validator("synthetic_venue")
    @classmethod
    def _known_venue(cls, value: str) -> str:
        from shared.venues import NAMES

        if value not in NAMES:
            raise ValueError(f"no venue {value!r}; venues: {', '.join(NAMES)}")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not re.match(r"^(rediss?|unix)://", value):
            raise ValueError("a Redis URL: redis://[user:password@]host:port/db, rediss://... or unix:///path")
        return value

    @field_validator("bybit_ws_private_url", "okx_ws_private_url", "bitget_ws_private_url", "binance_ws_private_url")
    @classmethod
    def _ws_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^wss?://[^/\s]+", value):
            raise ValueError("a WebSocket URL like wss://stream.bybit.com/v5/private")
        return value

    @field_validator("bybit_rest_url", "okx_rest_url", "bitget_rest_url", "binance_rest_url", "binance_spot_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("an HTTP URL like https://api.bybit.com")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    def trading_endpoints(self, venue: str) -> TradingEndpoints:
        """`venue`'s trading hosts for `venue_env` (the simulator's on sim), with its
        <VENUE>_REST_URL / <VENUE>_WS_PRIVATE_URL overrides applied."""
        if self.venue_env == "sim":
            base = f"{self.sim_host}:{self.sim_port}"
            hosts = TradingEndpoints(f"http://{base}", f"ws://{base}{_SIM_PRIVATE_PATH[venue]}")
        else:
            by_env = TRADING_HOSTS[venue]
            hosts = by_env.get(self.venue_env) or by_env["demo"]
        return TradingEndpoints(getattr(self, f"{venue}_rest_url") or hosts.rest,
                                getattr(self, f"{venue}_ws_private_url") or hosts.ws_private)

    @property
    def sim_address(self) -> str:
        return f"{self.sim_host}:{self.sim_port}"

    def demo_keys(self, venue: str) -> bool:
        """Whether `venue`'s demo key is the one used: VENUE_ENV=demo, and testnet where the venue
        has no testnet apart from its demo (all but Bybit)."""
        return self.venue_env == "demo" or (self.venue_env == "testnet" and "testnet" not in TRADING_HOSTS[venue])

    def credential_names(self, venue: str) -> str:
        """The settings `venue`'s key is read from on `venue_env`, for an error that names them."""
        prefix = f"{venue.upper()}_{'DEMO_' if self.demo_keys(venue) else ''}API_"
        parts = ("KEY", *(p.upper() for p in CREDENTIAL_PARTS[venue]))
        return ", ".join(prefix + p for p in parts[:-1]) + " and " + prefix + parts[-1]

    def trading_credentials(self, venue: str) -> tuple[str, ...] | None:
        """`venue`'s API key, secret (and passphrase) for `venue_env`, or None unless all are set;
        on sim the simulator's. Secrets are revealed here only, for signing."""
        if self.venue_env == "sim":
            sim = {"secret": self.sim_api_secret, "passphrase": self.sim_api_passphrase}
            return (self.sim_api_key, *(sim[p].get_secret_value() for p in CREDENTIAL_PARTS[venue]))
        prefix = f"{venue}_{'demo_' if self.demo_keys(venue) else ''}api_"
        values = [getattr(self, prefix + p) for p in ("key", *CREDENTIAL_PARTS[venue])]
        return tuple(v.get_secret_value() for v in values) if all(values) else None

    def trading_options(self, venue: str) -> dict[str, Any]:
        """`venue`'s own settings for its trading client (VenueTrading.for_account)."""
        if venue == "bitget":
            demo_type = None if self.bitget_demo_product_type == "auto" else self.bitget_demo_product_type
            return {"product_type": demo_type if self.demo_keys(venue) else None}
        if venue == "binance":  # its key's permissions are read at its spot host (none on the demo)
            spot = {"mainnet": "https://api.binance.com", "sim": f"http://{self.sim_host}:{self.sim_port}"}
            return {"recv_window_ms": self.binance_recv_window_ms,
                    "spot_url": self.binance_spot_url if self.binance_spot_url is not None
                    else spot.get(self.venue_env, "")}
        return {}

    @property
    def universe(self) -> bool:
        """SYMBOLS_TO_TRADE=all: the symbols come from the venues' listings, not from here."""
        return self.symbols_to_trade == [UNIVERSE]

    def universe_from(self) -> list[str]:
        """The venues whose listings make the universe."""
        return self.universe_venues or self.executor_venues

    def md_streams(self, shard: int = 0) -> dict[str, str]:
        """Event type -> stream name (with the key prefix) for shard `shard`'s market-data
        streams (shared/shards.py: `md:{0}:tickers` ...)."""
        p = self.redis_key_prefix
        return {
            "ticker": p + tagged(self.stream_tickers, shard),
            "book": p + tagged(self.stream_books, shard),
            "trade": p + tagged(self.stream_trades, shard),
            "liquidation": p + tagged(self.stream_liquidations, shard),
        }

    def md_route(self, symbol: str) -> dict[str, str]:
        """Event type -> stream for `symbol`'s events: its shard's streams."""
        return self.md_streams(shard_of(symbol, self.md_shards))

    def all_md_streams(self) -> list[str]:
        """Every shard's market-data streams."""
        return [name for k in range(self.md_shards) for name in self.md_streams(k).values()]


def _describe(error: dict[str, Any], origins: dict[str, str]) -> str:
    field = str(error["loc"][0]) if error["loc"] else "?"
    name = origins.get(field, field.upper())
    secret = field in Settings.model_fields and "SecretStr" in repr(
        Settings.model_fields[field].annotation
    )
    value = "***" if secret else repr(error.get("input"))
    allowed = error["msg"]
    if error["type"] == "literal_error":
        allowed = "allowed: " + error["ctx"]["expected"]
    allowed = allowed.removeprefix("Value error, ")
    return f"config error: {name}={value} is invalid: {allowed}"


def _replaced_names() -> list[str]:
    """The error lines for names in REPLACED given in the environment or in `.env`."""
    given = set(os.environ)
    if os.path.isfile(".env"):
        given |= set(dotenv_values(".env"))
    return [f"config error: {name} is not a setting of this system; set {instead}"
            for name, instead in REPLACED.items() if name in given]


def load_settings(cli: dict[str, tuple[str, Any]] | None = None) -> Settings:
    """Read and validate settings; `cli` maps field -> (option name, value) overrides.

    Raises ConfigError naming each bad variable (or command-line option), and each name of
    REPLACED that is given."""
    if replaced := _replaced_names():
        raise ConfigError("\n".join(replaced))
    cli = {k: v for k, v in (cli or {}).items() if v[1] is not None}
    try:
        return Settings(**{field: value for field, (_, value) in cli.items()})
    except ValidationError as exc:
        origins = {field: option for field, (option, _) in cli.items()}
        lines = dict.fromkeys(_describe(e, origins) for e in exc.errors())
        raise ConfigError("\n".join(lines)) from None
