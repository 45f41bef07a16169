"""Bybit V5 public REST: hosts, the linear instruments list and the server time (pure).

    GET /v5/market/instruments-info?category=linear&limit=1000
        {"retCode":0,"result":{"list":[{"symbol":"BTCUSDT","contractType":"LinearPerpetual",
         "status":"Trading","baseCoin":"BTC","quoteCoin":"USDT","fundingInterval":480,
         "priceFilter":{"tickSize":"0.10"},"lotSizeFilter":{"qtyStep":"0.001","minOrderQty":"0.001"}}],
         "nextPageCursor":""}}
    GET /v5/market/time -> {"retCode":0,"result":{"timeSecond":"1688639403","timeNano":"1688639403423213947"},..}

Only live USDT perpetuals are listed (dated futures and USDC perps are left out); Bybit's
names are the canonical ones and its sizes are base units.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from shared.instruments import Instrument
from shared.venues.protocol import Hosts, RestCall, VenueError

VENUE = "bybit"
HOSTS = {
    "mainnet": Hosts("https://api.bybit.com", "wss://stream.bybit.com"),
    "testnet": Hosts("https://api-testnet.bybit.com", "wss://stream-testnet.bybit.com"),
}
INSTRUMENTS = (RestCall("/v5/market/instruments-info", {"category": "linear", "limit": "1000"}),)
SERVER_TIME = RestCall("/v5/market/time")
TIME_POLL_MIN_MS = 100  # IP limit 600 requests / 5 s across all public endpoints


class _PriceFilter(msgspec.Struct):
    tickSize: Decimal


class _LotFilter(msgspec.Struct):
    qtyStep: Decimal
    minOrderQty: Decimal


class _Item(msgspec.Struct):
    symbol: str
    contractType: str
    status: str
    baseCoin: str
    quoteCoin: str
    priceFilter: _PriceFilter
    lotSizeFilter: _LotFilter
    fundingInterval: int = 0


class _Instruments(msgspec.Struct):
    items: list[_Item] = msgspec.field(name="list")


class _Time(msgspec.Struct):
    timeNano: int


class _Envelope(msgspec.Struct):
    retCode: int
    retMsg: str = ""
    result: msgspec.Raw = msgspec.Raw(b"null")


_envelope = msgspec.json.Decoder(_Envelope).decode
_instruments = msgspec.json.Decoder(_Instruments, strict=False).decode
_time = msgspec.json.Decoder(_Time, strict=False).decode


def _result(body: bytes) -> msgspec.Raw:
    env = _envelope(body)
    if env.retCode != 0:
        raise VenueError(f"bybit retCode {env.retCode}: {env.retMsg}")
    return env.result


def instruments(bodies: list[bytes]) -> list[Instrument]:
    return [
        Instrument(venue=VENUE, symbol=item.symbol, venue_symbol=item.symbol, quote=item.quoteCoin,
                   tick=item.priceFilter.tickSize, lot=item.lotSizeFilter.qtyStep,
                   min_size=item.lotSizeFilter.minOrderQty, funding_interval_min=item.fundingInterval or None)
        for item in _instruments(_result(bodies[0])).items
        if item.contractType == "LinearPerpetual" and item.status == "Trading" and item.quoteCoin == "USDT"
    ]


def server_time_ms(body: bytes) -> int:
    return _time(_result(body)).timeNano // 1_000_000
