"""Bitget v2 public REST: hosts, USDT-futures contracts and server time (pure).

    GET /api/v2/mix/market/contracts?productType=USDT-FUTURES -> {"code":"00000","msg":"success",
        "data":[{"symbol":"BTCUSDT","baseCoin":"BTC","quoteCoin":"USDT","symbolType":"perpetual",
        "symbolStatus":"normal","pricePlace":"1","priceEndStep":"1","sizeMultiplier":"0.001",
        "minTradeNum":"0.001","fundInterval":"8",..}]}
    GET /api/v2/public/time -> {"code":"00000","msg":"success","data":{"serverTime":"1688008631614"}}

The price step is `priceEndStep` at `pricePlace` decimals; sizes are base coins.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from shared.instruments import Instrument, canonical
from shared.venues.protocol import Hosts, RestCall, envelope_data

VENUE = "bitget"
PRODUCT_TYPE = "USDT-FUTURES"
HOSTS = {"mainnet": Hosts("https://api.bitget.com", "wss://ws.bitget.com")}
INSTRUMENTS = (RestCall("/api/v2/mix/market/contracts", {"productType": PRODUCT_TYPE}),)
SERVER_TIME = RestCall("/api/v2/public/time")
TIME_POLL_MIN_MS = 100  # 20 requests / s per IP


class _Contract(msgspec.Struct):
    symbol: str
    baseCoin: str
    quoteCoin: str
    symbolType: str
    symbolStatus: str
    pricePlace: int
    priceEndStep: int
    sizeMultiplier: Decimal
    minTradeNum: Decimal
    fundInterval: int | None = None


class _Time(msgspec.Struct):
    serverTime: int



_contracts = msgspec.json.Decoder(list[_Contract], strict=False).decode
_time = msgspec.json.Decoder(_Time, strict=False).decode


def _data(body: bytes) -> msgspec.Raw:
    return envelope_data(body, "00000", VENUE)


def instruments(bodies: list[bytes]) -> list[Instrument]:
    return [
        Instrument(venue=VENUE, symbol=canonical(c.baseCoin), venue_symbol=c.symbol,
                   tick=Decimal(c.priceEndStep).scaleb(-c.pricePlace), lot=c.sizeMultiplier, min_size=c.minTradeNum,
                   funding_interval_min=c.fundInterval * 60 if c.fundInterval else None)
        for c in _contracts(_data(bodies[0]))
        if c.symbolType == "perpetual" and c.symbolStatus == "normal" and c.quoteCoin == "USDT"
    ]


def server_time_ms(body: bytes) -> int:
    return _time(_data(body)).serverTime
