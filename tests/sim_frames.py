"""The simulator's market in each venue's wire format, without sockets: what the venue
parsers are benchmarked and fuzzed on, for the venues that have no recording offline too."""

from __future__ import annotations

import json

from services.sim.market import MarketModel
from services.sim.server import DIALECTS
from shared.venues import venue

# what each venue's feed subscribes, as the simulator's dialects name topics
SIM_TOPICS = {
    "bybit": ("tickers.{S}", "orderbook.50.{S}", "publicTrade.{S}"),
    "binance": ("{s}@bookTicker", "{s}@depth20@100ms", "{s}@aggTrade", "{s}@markPrice@1s"),
    "okx": ("tickers:{B}-USDT-SWAP", "books5:{B}-USDT-SWAP", "trades:{B}-USDT-SWAP", "funding-rate:{B}-USDT-SWAP",
            "mark-price:{B}-USDT-SWAP", "index-tickers:{B}-USDT-SWAP", "open-interest:{B}-USDT-SWAP"),
    "bitget": ("ticker:{S}", "books15:{S}", "trade:{S}"),
    "hyperliquid": ("bbo:{B}", "l2Book:{B}", "trades:{B}", "activeAssetCtx:{B}"),
    "gate": ("futures.book_ticker:{B}_USDT", "futures.tickers:{B}_USDT", "futures.order_book:{B}_USDT",
             "futures.trades:{B}_USDT"),
    "kucoin": ("/contractMarket/tickerV2:{K}USDTM", "/contractMarket/level2Depth50:{K}USDTM",
               "/contractMarket/execution:{K}USDTM", "/contract/instrument:{K}USDTM"),
    "paradex": ("bbo.{B}-USD-PERP", "markets_summary.{B}-USD-PERP", "order_book.{B}-USD-PERP.snapshot@15@100ms",
                "trades.{B}-USD-PERP"),
}


SIM_SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def simulated_frames(venue_name: str, symbols: list[str], seconds: float = 60.0) -> list[bytes]:
    """A minute of the simulator's market in `venue_name`'s wire format (Binance's combined)."""
    model = MarketModel(symbols, seed=3, start_ms=1_800_000_000_000)
    dialect = DIALECTS[venue_name](model)
    topics = {t.format(S=s, s=s.lower(), B=s.removesuffix("USDT"), K=s.removesuffix("USDT").replace("BTC", "XBT"))
              for s in symbols for t in SIM_TOPICS[venue_name]}
    sent = [(t, f) for t in sorted(topics) for f in dialect.snapshot(t)]  # what a subscribe answers first
    for _ in range(int(seconds * 50)):
        model.step(model.now_ms + 20)
        sent += [(topic, f) for topic, out in dialect.step_frames(topics).items() for f in out]
    return [b'{"stream":"%s","data":%s}' % (t.encode(), f) if venue_name == "binance" else f for t, f in sent]


def sim_instruments(name: str, symbols: list[str]) -> list[bytes]:
    """The simulator's answers to the venue's instruments calls, as its REST sends them."""
    dialect = DIALECTS[name](MarketModel(symbols, seed=3))
    get, post = dialect.rest(), dialect.rest_post()
    answers = [post[c.path](dict(c.json)) if c.json else get[c.path](dict(c.params))
               for c in venue(name).rest.INSTRUMENTS]
    return [json.dumps(body).encode() for _, body in answers]
