"""Gate API v4 futures REST: hosts, USDT contracts and server time (pure).

    GET /api/v4/futures/usdt/contracts -> [{"name":"BTC_USDT","type":"direct","quanto_multiplier":"0.0001",
        "order_price_round":"0.1","order_size_min":1,"funding_interval":28800,"in_delisting":false,..}]
    GET /api/v4/spot/time -> {"server_time":1597026383085}

Futures sizes are contracts of `quanto_multiplier` base coins (0.0001 BTC); the funding
interval is in seconds. Errors come as HTTP 4xx with {"label":"..","message":".."}.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from shared.instruments import Instrument, canonical
from shared.venues.protocol import Hosts, RestCall

VENUE = "gate"
HOSTS = {
    "mainnet": Hosts("https://api.gateio.ws", "wss://fx-ws.gateio.ws"),
    "testnet": Hosts("https://fx-api-testnet.gateio.ws", "wss://fx-ws-testnet.gateio.ws"),
}
INSTRUMENTS = (RestCall("/api/v4/futures/usdt/contracts"),)
SERVER_TIME = RestCall("/api/v4/spot/time")
TIME_POLL_MIN_MS = 100  # public endpoints: 200 requests / 10 s per IP


class _Contract(msgspec.Struct):
    name: str
    quanto_multiplier: Decimal
    order_price_round: Decimal
    order_size_min: Decimal
    funding_interval: int
    in_delisting: bool = False
    type: str = "direct"


class _Time(msgspec.Struct):
    server_time: int


_contracts = msgspec.json.Decoder(list[_Contract], strict=False).decode
_time = msgspec.json.Decoder(_Time).decode


def instruments(bodies: list[bytes]) -> list[Instrument]:
    out = []
    for c in _contracts(bodies[0]):
        base, _, quote = c.name.partition("_")
        if c.in_delisting or c.type != "direct" or quote != "USDT":
            continue
        out.append(Instrument(venue=VENUE, symbol=canonical(base), venue_symbol=c.name,
                              contract_size=c.quanto_multiplier, tick=c.order_price_round, lot=Decimal(1),
                              min_size=c.order_size_min, funding_interval_min=c.funding_interval // 60))
    return out


def server_time_ms(body: bytes) -> int:
    return _time(body).server_time
