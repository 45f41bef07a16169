"""Paradex public REST: hosts, perpetual markets and server time (pure).

    GET /v1/markets -> {"results":[{"symbol":"BTC-USD-PERP","base_currency":"BTC","quote_currency":"USD",
        "settlement_currency":"USDC","asset_kind":"PERP","order_size_increment":"0.001",
        "price_tick_size":"0.1","funding_period_hours":8,..}]}
    GET /v1/system/time -> {"server_time":"1681493415023"}

Perps are USDC-settled and quoted in USD: `BTC-USD-PERP` maps to BTCUSDT. Sizes are coins.
Errors come as HTTP 4xx with {"error":"..","message":".."}.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from shared.instruments import Instrument, canonical
from shared.venues.protocol import Hosts, RestCall

VENUE = "paradex"
HOSTS = {
    "mainnet": Hosts("https://api.prod.paradex.trade", "wss://ws.api.prod.paradex.trade"),
    "testnet": Hosts("https://api.testnet.paradex.trade", "wss://ws.api.testnet.paradex.trade"),
}
INSTRUMENTS = (RestCall("/v1/markets"),)
SERVER_TIME = RestCall("/v1/system/time")
TIME_POLL_MIN_MS = 100


class _Market(msgspec.Struct):
    symbol: str
    base_currency: str
    settlement_currency: str
    asset_kind: str
    order_size_increment: Decimal
    price_tick_size: Decimal
    funding_period_hours: int = 8


class _Markets(msgspec.Struct):
    results: list[_Market]


class _Time(msgspec.Struct):
    server_time: int


_markets = msgspec.json.Decoder(_Markets, strict=False).decode
_time = msgspec.json.Decoder(_Time, strict=False).decode


def instruments(bodies: list[bytes]) -> list[Instrument]:
    return [Instrument(venue=VENUE, symbol=canonical(m.base_currency), venue_symbol=m.symbol,
                       quote=m.settlement_currency, tick=m.price_tick_size, lot=m.order_size_increment,
                       min_size=m.order_size_increment, funding_interval_min=m.funding_period_hours * 60)
            for m in _markets(bodies[0]).results if m.asset_kind == "PERP"]


def server_time_ms(body: bytes) -> int:
    return _time(body).server_time
