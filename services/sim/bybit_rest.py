"""Bybit V5 public market REST over the simulated market, in Bybit's envelope
(shared/docs/protocol-bybit-v5.md §5): `/v5/market/tickers`, `orderbook`,
`instruments-info`, `kline`, `funding/history`.

Each handler takes the model and the query parameters and returns `(retCode, retMsg,
result)`; `envelope()` wraps that as Bybit does. Bad parameters answer 10001 with a
message, as the venue does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal

from services.sim.bybit_public import BybitPublicFrames
from services.sim.market import MarketModel, fold_bars, format_rate

Answer = tuple[int, str, dict]
MAX_ORDER_LOTS = 1_500_000  # instruments-info's maxOrderQty, in lots
# kline intervals -> bar length in ms, or a week from Monday, or a calendar month
_INTERVALS = {**{k: int(k) * 60_000 for k in ("1", "3", "5", "15", "30", "60", "120", "240", "360", "720")},
              "D": 86_400_000, "W": "week", "M": "month"}


class ParamError(ValueError):
    """A request Bybit would refuse with retCode 10001."""


CATEGORIES = ("spot", "linear", "inverse", "option")
# orderbook `limit` per category: (lowest, highest, default), as Bybit's docs give them
BOOK_LIMITS = {"spot": (1, 1000, 1), "linear": (1, 1000, 25), "inverse": (1, 1000, 25), "option": (1, 25, 1)}


class Unlisted(Exception):
    """A category Bybit has and the simulator does not trade: answered as Bybit answers one
    with nothing in it, retCode 0 and an empty list."""

    def __init__(self, category: str) -> None:
        super().__init__(category)
        self.category = category

    def result(self) -> dict:
        return {"category": self.category, "list": [], "nextPageCursor": ""}


def envelope(ret_code: int, ret_msg: str, result: dict, now_ms: int) -> dict:
    return {"retCode": ret_code, "retMsg": ret_msg, "result": result, "retExtInfo": {}, "time": now_ms}


def category_param(query: Mapping[str, str], default: str | None = None) -> str:
    category = query.get("category") or default
    if not category:
        raise ParamError("params error: category is required")
    if category not in CATEGORIES:
        raise ParamError(f"params error: category {category} is invalid")
    return category


def require_traded(query: Mapping[str, str]) -> None:
    """An order or a setting in a category the simulator does not trade is refused."""
    category = category_param(query)
    if category != "linear":
        raise ParamError(f"params error: category {category} is not traded by this simulator (linear only)")


def require_linear(query: Mapping[str, str], default: str | None = None) -> None:
    """Linear is what the simulator trades; another of Bybit's categories is `Unlisted`."""
    category = category_param(query, default)
    if category != "linear":
        raise Unlisted(category)


def symbol_param(model: MarketModel, query: Mapping[str, str], required: bool) -> str | None:
    symbol = query.get("symbol")
    if not symbol:
        if required:
            raise ParamError("params error: symbol is required")
        return None
    if symbol not in model.states:
        raise ParamError("params error: symbol invalid")
    return symbol


def int_param(query: Mapping[str, str], name: str, default: int | None, low: int, high: int) -> int | None:
    text = query.get(name)
    if text is None:
        return default
    if not text.lstrip("-").isdigit() or not low <= int(text) <= high:
        raise ParamError(f"params error: {name} must be an integer in [{low}, {high}]")
    return int(text)


def tickers(model: MarketModel, frames: BybitPublicFrames, query: Mapping[str, str]) -> Answer:
    require_linear(query)
    symbol = symbol_param(model, query, required=False)
    items = []
    for name in [symbol] if symbol else sorted(model.states):
        state = model.states[name]
        fields = frames.ticker_fields(state)
        mark, index = Decimal(fields["markPrice"]), Decimal(fields["indexPrice"])
        items.append({**fields, "basis": str(mark - index), "basisRate": "", "deliveryFeeRate": "",
                      "deliveryTime": "0", "predictedDeliveryPrice": ""})
    return 0, "OK", {"category": "linear", "list": items}


def orderbook(model: MarketModel, frames: BybitPublicFrames, query: Mapping[str, str]) -> Answer:
    category = category_param(query)
    low, high, default = BOOK_LIMITS[category]
    limit = int_param(query, "limit", default, low, high)
    if category != "linear":  # a book of nothing: the simulator lists no such instrument
        if not query.get("symbol"):
            raise ParamError("params error: symbol is required")
        return 0, "OK", {"s": query["symbol"], "b": [], "a": [], "ts": model.now_ms, "u": 0, "seq": 0,
                         "cts": model.now_ms}
    symbol = symbol_param(model, query, required=True)
    state = model.states[symbol]
    inst = state.inst
    bids = sorted(state.bids.items(), reverse=True)[:limit]
    asks = sorted(state.asks.items())[:limit]
    return 0, "OK", {
        "s": symbol,
        "b": [[inst.price(p), inst.size(n)] for p, n in bids],
        "a": [[inst.price(p), inst.size(n)] for p, n in asks],
        "ts": model.now_ms,
        "u": frames.book_update_id(symbol),
        "seq": frames.book_update_id(symbol),
        "cts": model.now_ms - 1,
    }


def instruments_info(model: MarketModel, frames: BybitPublicFrames, query: Mapping[str, str]) -> Answer:
    """Paged as Bybit does: `limit` rows (1..1000, default 500), then `nextPageCursor` for the
    request of the next page ('' on the last); this cursor is the next page's first symbol."""
    require_linear(query)
    symbol = symbol_param(model, query, required=False)
    limit = int_param(query, "limit", 500, 1, 1000)
    listed = model.listed("bybit")
    names = ([symbol] if symbol in listed else []) if symbol else listed
    if cursor := query.get("cursor"):
        if cursor not in names:
            raise ParamError("params error: cursor invalid")
        names = names[names.index(cursor):]
    names, rest = names[:limit], names[limit:]
    items = []
    for name in names:
        inst = model.states[name].inst
        base = name.removesuffix("USDT")
        items.append({
            "symbol": name, "contractType": "LinearPerpetual", "status": "Trading", "baseCoin": base,
            "quoteCoin": "USDT", "launchTime": "1584230400000", "deliveryTime": "0", "deliveryFeeRate": "",
            "priceScale": str(-inst.tick.as_tuple().exponent),
            "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
            "priceFilter": {"minPrice": str(inst.tick), "maxPrice": str(inst.tick * 19_999_998),
                            "tickSize": str(inst.tick)},
            "lotSizeFilter": {"maxOrderQty": str(inst.lot * MAX_ORDER_LOTS), "minOrderQty": str(inst.lot),
                              "qtyStep": str(inst.lot), "postOnlyMaxOrderQty": str(inst.lot * MAX_ORDER_LOTS),
                              "maxMktOrderQty": str(inst.lot * 150_000), "minNotionalValue": "5"},
            "unifiedMarginTrade": True, "fundingInterval": inst.funding_interval_h * 60, "settleCoin": "USDT",
            "copyTrading": "both", "upperFundingRate": "0.005", "lowerFundingRate": "-0.005",
            "isPreListing": False, "preListingInfo": None,
            "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
            "displayName": "", "symbolType": "", "forbidUplWithdrawal": False, "symbolId": listed.index(name) + 1,
        })
    return 0, "OK", {"category": "linear", "list": items, "nextPageCursor": rest[0] if rest else ""}


def kline(model: MarketModel, frames: BybitPublicFrames, query: Mapping[str, str]) -> Answer:
    """Bars since the simulator started, newest first: [start, open, high, low, close,
    volume, turnover], all strings. Without `category`, linear (Bybit's default)."""
    require_linear(query, default="linear")
    symbol = symbol_param(model, query, required=True)
    interval = query.get("interval")
    if interval not in _INTERVALS:
        raise ParamError(f"params error: interval must be one of {', '.join(_INTERVALS)}")
    limit = int_param(query, "limit", 200, 1, 1000)
    start = int_param(query, "start", 0, 0, 2**62)
    end = int_param(query, "end", 2**62, 0, 2**62)
    inst = model.states[symbol].inst
    rows = [b for b in reversed(fold_bars(model.states[symbol].bars, _INTERVALS[interval])) if start <= b[0] <= end]
    rows = rows[:limit]
    return 0, "OK", {"symbol": symbol, "category": "linear", "list": [
        [str(t), inst.price(o), inst.price(h), inst.price(low), inst.price(c), inst.size(lots), f"{turnover:.4f}"]
        for t, o, h, low, c, lots, turnover in rows]}


def funding_history(model: MarketModel, frames: BybitPublicFrames, query: Mapping[str, str]) -> Answer:
    """Funding rates settled since the simulator started, newest first."""
    require_linear(query)
    symbol = symbol_param(model, query, required=True)
    if "startTime" in query and "endTime" not in query:
        raise ParamError("params error: startTime cannot be passed without endTime")
    limit = int_param(query, "limit", 200, 1, 200)
    start = int_param(query, "startTime", 0, 0, 2**62)
    end = int_param(query, "endTime", 2**62, 0, 2**62)
    rows = [(t, r) for t, r in reversed(model.states[symbol].fundings) if start <= t <= end][:limit]
    return 0, "OK", {"category": "linear", "list": [
        {"symbol": symbol, "fundingRate": format_rate(r), "fundingRateTimestamp": str(t)}
        for t, r in rows]}


HANDLERS: dict[str, Callable[[MarketModel, BybitPublicFrames, Mapping[str, str]], Answer]] = {
    "/v5/market/tickers": tickers,
    "/v5/market/orderbook": orderbook,
    "/v5/market/instruments-info": instruments_info,
    "/v5/market/kline": kline,
    "/v5/market/funding/history": funding_history,
}
