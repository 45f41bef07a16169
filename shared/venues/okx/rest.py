"""OKX v5 public REST: hosts, swap instruments and server time (pure).

    GET /api/v5/public/instruments?instType=SWAP -> {"code":"0","msg":"","data":[{"instId":"BTC-USDT-SWAP",
        "ctType":"linear","ctVal":"0.01","ctValCcy":"BTC","settleCcy":"USDT","tickSz":"0.1","lotSz":"1",
        "minSz":"1","state":"live",..}]}
    GET /api/v5/public/time -> {"code":"0","msg":"","data":[{"ts":"1597026383085"}]}

Swap sizes are contracts: a linear contract is `ctVal` base coins (0.01 BTC), an inverse one
`ctVal` USD. Linear swaps map to BASE+settle (`BTC-USDT-SWAP` -> BTCUSDT), inverse ones to
BASE+USD (`BTC-USD-SWAP` -> BTCUSD). Funding intervals come with every funding-rate push.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from shared.instruments import Instrument, canonical
from shared.venues.protocol import Hosts, RestCall, envelope_data

VENUE = "okx"
HOSTS = {
    "mainnet": Hosts("https://www.okx.com", "wss://ws.okx.com:8443"),
    "testnet": Hosts("https://www.okx.com", "wss://wspap.okx.com:8443"),  # demo trading: same REST host
}
INSTRUMENTS = (RestCall("/api/v5/public/instruments", {"instType": "SWAP"}),)
SERVER_TIME = RestCall("/api/v5/public/time")
TIME_POLL_MIN_MS = 200  # 10 requests / 2 s per IP


class _Instrument(msgspec.Struct):
    instId: str
    ctType: str
    ctVal: Decimal
    ctValCcy: str
    settleCcy: str
    tickSz: Decimal
    lotSz: Decimal
    minSz: Decimal
    state: str


class _Time(msgspec.Struct):
    ts: int



_instruments = msgspec.json.Decoder(list[_Instrument], strict=False).decode
_time = msgspec.json.Decoder(list[_Time], strict=False).decode


def _data(body: bytes) -> msgspec.Raw:
    return envelope_data(body, "0", VENUE)


def instruments(bodies: list[bytes]) -> list[Instrument]:
    out = []
    for i in _instruments(_data(bodies[0])):
        base, quote, _ = i.instId.split("-", 2)
        if i.state != "live" or i.ctType not in ("linear", "inverse"):
            continue
        inverse = i.ctType == "inverse"
        out.append(Instrument(
            venue=VENUE, symbol=canonical(base, quote), venue_symbol=i.instId, quote=quote,
            contract_size=i.ctVal, inverse=inverse, tick=i.tickSz, lot=i.lotSz, min_size=i.minSz))
    return out


def server_time_ms(body: bytes) -> int:
    return _time(_data(body))[0].ts
