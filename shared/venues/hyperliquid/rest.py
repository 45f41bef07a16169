"""Hyperliquid public info API: hosts, the perp universe and a server time (pure).

    POST /info {"type":"meta"} -> {"universe":[{"name":"BTC","szDecimals":5,"maxLeverage":40},
        {"name":"kPEPE","szDecimals":0,..},{"name":"OLD","isDelisted":true,..}]}
    POST /info {"type":"l2Book","coin":"BTC"} -> {"coin":"BTC","time":1761786491067,"levels":[[..],[..]]}

Perps are USDC-margined and named by coin: `BTC` maps to BTCUSDT, `kPEPE` (1,000 PEPE) to
1000PEPEUSDT as other venues name it. Sizes are coins; the size step is 10^-szDecimals; prices
have no fixed tick (five significant figures). Funding settles every hour. Hyperliquid has no
time endpoint: the `time` of a BTC book snapshot is the server's clock; it weighs 2 of 1,200
per minute, so it is polled at most once a second.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from shared.instruments import Instrument, canonical
from shared.venues.protocol import Hosts, RestCall

VENUE = "hyperliquid"
HOSTS = {
    "mainnet": Hosts("https://api.hyperliquid.xyz", "wss://api.hyperliquid.xyz"),
    "testnet": Hosts("https://api.hyperliquid-testnet.xyz", "wss://api.hyperliquid-testnet.xyz"),
}
INSTRUMENTS = (RestCall("/info", json={"type": "meta"}),)
SERVER_TIME = RestCall("/info", json={"type": "l2Book", "coin": "BTC"})
TIME_POLL_MIN_MS = 1000
FUNDING_INTERVAL_MIN = 60


class _Asset(msgspec.Struct):
    name: str
    szDecimals: int
    isDelisted: bool = False


class _Meta(msgspec.Struct):
    universe: list[_Asset]


class _Book(msgspec.Struct):
    time: int


_meta = msgspec.json.Decoder(_Meta).decode
_book = msgspec.json.Decoder(_Book).decode


def canonical_coin(name: str) -> str:
    """`BTC` -> BTCUSDT, `kPEPE` -> 1000PEPEUSDT."""
    return canonical("1000" + name[1:] if name.startswith("k") and name[1:].isupper() else name)


def instruments(bodies: list[bytes]) -> list[Instrument]:
    return [Instrument(venue=VENUE, symbol=canonical_coin(a.name), venue_symbol=a.name, quote="USDC",
                       lot=Decimal(1).scaleb(-a.szDecimals), funding_interval_min=FUNDING_INTERVAL_MIN)
            for a in _meta(bodies[0]).universe if not a.isDelisted]


def server_time_ms(body: bytes) -> int:
    return _book(body).time
