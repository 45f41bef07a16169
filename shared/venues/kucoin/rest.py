"""KuCoin futures public REST: hosts, active contracts, server time and the connect token (pure).

    GET /api/v1/contracts/active -> {"code":"200000","data":[{"symbol":"XBTUSDTM","type":"FFWCSX",
        "baseCurrency":"XBT","quoteCurrency":"USDT","settleCurrency":"USDT","multiplier":0.001,"lotSize":1,
        "tickSize":0.1,"status":"Open","isInverse":false,"fundingRateGranularity":28800000,..}]}
    GET /api/v1/timestamp -> {"code":"200000","data":1546837113087}
    POST /api/v1/bullet-public -> {"code":"200000","data":{"token":"..","instanceServers":[
        {"endpoint":"wss://ws-api-futures.kucoin.com/","protocol":"websocket","pingInterval":18000,..}]}}

Perpetuals are type FFWCSX; `XBTUSDTM` maps to BTCUSDT. Sizes are lots of `multiplier` base
coins each (0.001 BTC). Every WebSocket connection needs a fresh token from bullet-public.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from shared.instruments import Instrument, canonical
from shared.venues.protocol import Hosts, RestCall, VenueError, envelope_data

VENUE = "kucoin"
HOSTS = {"mainnet": Hosts("https://api-futures.kucoin.com", "wss://ws-api-futures.kucoin.com")}
INSTRUMENTS = (RestCall("/api/v1/contracts/active"),)
SERVER_TIME = RestCall("/api/v1/timestamp")
BULLET = RestCall("/api/v1/bullet-public", json={})
TIME_POLL_MIN_MS = 100  # public weight 2 of 2,000 per 30 s


class _Contract(msgspec.Struct):
    symbol: str
    type: str
    baseCurrency: str
    quoteCurrency: str
    multiplier: Decimal
    lotSize: Decimal
    tickSize: Decimal
    status: str
    isInverse: bool = False
    fundingRateGranularity: int | None = None


class _Server(msgspec.Struct):
    endpoint: str
    pingInterval: int = 18000


class _Bullet(msgspec.Struct):
    token: str
    instanceServers: list[_Server]



_contracts = msgspec.json.Decoder(list[_Contract], strict=False).decode
_bullet = msgspec.json.Decoder(_Bullet).decode
_time = msgspec.json.Decoder(int).decode


def _data(body: bytes) -> msgspec.Raw:
    return envelope_data(body, "200000", VENUE)


def instruments(bodies: list[bytes]) -> list[Instrument]:
    return [
        Instrument(venue=VENUE, symbol=canonical(c.baseCurrency), venue_symbol=c.symbol, contract_size=c.multiplier,
                   tick=c.tickSize, lot=c.lotSize, min_size=c.lotSize,
                   funding_interval_min=c.fundingRateGranularity // 60_000 if c.fundingRateGranularity else None)
        for c in _contracts(_data(bodies[0]))
        if c.type == "FFWCSX" and c.status == "Open" and not c.isInverse and c.quoteCurrency == "USDT"
    ]


def server_time_ms(body: bytes) -> int:
    return _time(_data(body))


def connect_url(body: bytes, connect_id: str) -> str:
    """The WebSocket URL a bullet-public answer grants."""
    bullet = _bullet(_data(body))
    if not bullet.instanceServers:
        raise VenueError("kucoin bullet-public named no instance server")
    return f"{bullet.instanceServers[0].endpoint}?token={bullet.token}&connectId={connect_id}"
