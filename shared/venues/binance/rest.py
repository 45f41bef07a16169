"""Binance USD-M public REST: hosts, instruments, funding intervals and server time (pure).

    GET /fapi/v1/exchangeInfo -> {"symbols":[{"symbol":"BTCUSDT","contractType":"PERPETUAL",
        "status":"TRADING","baseAsset":"BTC","quoteAsset":"USDT","filters":[
        {"filterType":"PRICE_FILTER","tickSize":"0.10"},{"filterType":"LOT_SIZE","stepSize":"0.001","minQty":"0.001"}]}]}
    GET /fapi/v1/fundingInfo  -> [{"symbol":"BLZUSDT","fundingIntervalHours":4,..}]  (only symbols
        whose funding was adjusted; the rest settle every 8 h)
    GET /fapi/v1/time         -> {"serverTime":1499827319559}

Errors come as HTTP 4xx with {"code":-1121,"msg":"Invalid symbol."}. Sizes are base units.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from shared.instruments import Instrument, canonical
from shared.venues.protocol import Hosts, RestCall

VENUE = "binance"
HOSTS = {
    "mainnet": Hosts("https://fapi.binance.com", "wss://fstream.binance.com"),
    "testnet": Hosts("https://demo-fapi.binance.com", "wss://fstream.binancefuture.com"),
}
INSTRUMENTS = (RestCall("/fapi/v1/exchangeInfo"), RestCall("/fapi/v1/fundingInfo"))
SERVER_TIME = RestCall("/fapi/v1/time")
TIME_POLL_MIN_MS = 100  # weight 1 of 2,400 per minute per IP
DEFAULT_FUNDING_MIN = 480


class _Filter(msgspec.Struct):
    filterType: str
    tickSize: Decimal | None = None
    stepSize: Decimal | None = None
    minQty: Decimal | None = None


class _Symbol(msgspec.Struct):
    symbol: str
    contractType: str
    status: str
    baseAsset: str
    quoteAsset: str
    filters: list[_Filter] = []


class _ExchangeInfo(msgspec.Struct):
    symbols: list[_Symbol]


class _FundingInfo(msgspec.Struct):
    symbol: str
    fundingIntervalHours: int


class _Time(msgspec.Struct):
    serverTime: int


_exchange_info = msgspec.json.Decoder(_ExchangeInfo, strict=False).decode
_funding_info = msgspec.json.Decoder(list[_FundingInfo], strict=False).decode
_time = msgspec.json.Decoder(_Time).decode


def instruments(bodies: list[bytes]) -> list[Instrument]:
    intervals = {f.symbol: f.fundingIntervalHours * 60 for f in _funding_info(bodies[1])}
    out = []
    for s in _exchange_info(bodies[0]).symbols:
        if s.contractType != "PERPETUAL" or s.status != "TRADING" or s.quoteAsset != "USDT":
            continue
        price = next((f for f in s.filters if f.filterType == "PRICE_FILTER"), None)
        lot = next((f for f in s.filters if f.filterType == "LOT_SIZE"), None)
        out.append(Instrument(
            venue=VENUE, symbol=canonical(s.baseAsset), venue_symbol=s.symbol,
            tick=price.tickSize if price else None, lot=lot.stepSize if lot else None,
            min_size=lot.minQty if lot else None,
            funding_interval_min=intervals.get(s.symbol, DEFAULT_FUNDING_MIN)))
    return out


def server_time_ms(body: bytes) -> int:
    return _time(body).serverTime
